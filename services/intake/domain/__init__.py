"""Intake's rules as plain functions over pydantic models and dataclasses: no I/O, tested directly."""
