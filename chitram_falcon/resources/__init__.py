"""Falcon resources: each parses a request, calls the SDK once or twice, and renders."""
