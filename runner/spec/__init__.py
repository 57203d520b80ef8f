"""Stage 1: the content types (values, scenes, actions, strategies, entries, releases), loading and checks."""
