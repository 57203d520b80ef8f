"""Stage 4: the DuckDB store, its schema migrations, run states, and the shard export/ingest."""
