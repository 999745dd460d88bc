"""The validation service."""
