"""`make bench`: every figure next to a raw limit measured in the same run (see report.py)."""
