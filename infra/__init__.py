"""Adapters and the composition root: settings, the event store, calendars, the CLI."""
