"""Metrics, logs and health: what every service exposes the same way."""
