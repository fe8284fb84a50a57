"""Projector runner and dept_feeds against a real nats-server and real SQLite / PostgreSQL."""
