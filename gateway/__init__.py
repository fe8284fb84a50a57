"""FastAPI gateway: commands, queries, feeds, Open311 (built in issue 6)."""
