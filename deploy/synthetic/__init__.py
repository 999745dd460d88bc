"""Synthetic hospital submissions for load, end-to-end and demo runs: `generate(GeneratorConfig(...))`."""

from deploy.synthetic.generator import ErrorClass, GeneratorConfig, Item, Kind, generate

__all__ = ["ErrorClass", "GeneratorConfig", "Item", "Kind", "generate"]
