"""The platform's interface documents, generated from the code and committed under docs/api/:

- `asyncapi.json`: every topic as FastStream describes it (AsyncAPI 3.0): who produces it with which event
  schema, and which consumer group reads it — from `shared.topics` and the event models;
- `openapi-<service>.json`: each service's HTTP API, from its FastAPI app.

`registry docs` writes them; `registry docs --check` (run by the test suite) fails when the committed
documents no longer match the code.
"""

from __future__ import annotations

import base64
import importlib
import json
from pathlib import Path
from typing import Annotated, Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field

from shared.settings import REPO_ROOT
from shared.topics import ALL_TOPICS

DOCS_DIR = REPO_ROOT / "docs" / "api"
SERVICES = ("intake", "validation", "stats", "export")
_PLACEHOLDER_KEY = base64.urlsafe_b64encode(bytes(32)).decode()  # documents only: no app is started


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker("kafka:9092", description="The platform's Apache Kafka cluster")
    for spec in ALL_TOPICS:
        if not spec.events:
            continue
        schema: Any = (
            spec.events[0]
            if len(spec.events) == 1
            else Annotated[Union[*spec.events], Field(discriminator="event_type")]
        )
        about = (
            f"{spec.description} Key: {spec.key.value}. Cleanup: {spec.cleanup.value}; {spec.partitions} partitions."
        )
        broker.publisher(spec.name, title=f"{spec.name}:{spec.producer}", description=about, schema=schema)
        for group in spec.consumer_groups:
            broker.subscriber(spec.name, group_id=group, title=f"{spec.name}:{group}", description=about)(
                _documented(schema)
            )
    specification = AsyncAPI(
        broker,
        title="Childhood cancer registry platform: topics",
        version="1",
        description="Every topic of the platform, its producer, its consumer groups and its events.",
    ).to_specification()
    document: dict[str, Any] = json.loads(specification.to_json())
    return document


def _documented(schema: Any) -> Any:
    """A handler whose only job is to carry the event schema into the document."""

    async def consume(event: Any) -> None:
        return None

    consume.__annotations__ = {"event": schema, "return": None}
    return consume


def openapi_document(service: str) -> dict[str, Any]:
    settings_module = importlib.import_module(f"services.{service}.settings")
    app_module = importlib.import_module(f"services.{service}.app")
    settings_class = next(
        value
        for name, value in vars(settings_module).items()
        if name.endswith("Settings") and getattr(value, "service_name", None) == service
    )
    secrets = {name: _PLACEHOLDER_KEY for name in ("pseudonym_key", "vault_key") if name in settings_class.model_fields}
    settings = settings_class(database_url="sqlite+aiosqlite:///:memory:", **secrets)
    document: dict[str, Any] = app_module.create_app(settings).openapi()
    return document


def documents() -> dict[Path, str]:
    rendered = {DOCS_DIR / "asyncapi.json": asyncapi_document()}
    rendered |= {DOCS_DIR / f"openapi-{service}.json": openapi_document(service) for service in SERVICES}
    return {
        path: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n" for path, doc in rendered.items()
    }


def stale(rendered: dict[Path, str]) -> list[Path]:
    return [path for path, text in rendered.items() if not path.exists() or path.read_text() != text]
