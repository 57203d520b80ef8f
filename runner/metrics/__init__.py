"""The Value Alignment Tax and the statistics over stored judgments (METRICS.md)."""
