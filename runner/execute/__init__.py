"""Stage 3: sending requests (online, worker pool or provider batch), rate gating, parsing, providers."""
