"""The stats service."""
