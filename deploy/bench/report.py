"""Placeholder; replaced below."""

from typing import Any


def print_table(results: dict[str, Any]) -> None:
    import json

    print(json.dumps(results, indent=1))
