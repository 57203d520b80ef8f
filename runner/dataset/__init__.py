"""Making and importing datasets: LLM-drafted specs (generate, draft) and imported scenes (importer)."""
