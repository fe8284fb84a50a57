"""Streamlit dashboard; talks to the gateway over HTTP only (built in issue 7)."""
