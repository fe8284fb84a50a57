"""Read side: projector runner, read models, KPI formulas and queries (built in issue 5)."""
