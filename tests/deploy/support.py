"""What the deployment tests share: paths, the services' settings classes, and checking an environment
against them the way a service does at start-up."""

from __future__ import annotations

import base64
import importlib
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import AliasChoices

from shared.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
MONITORING = DEPLOY / "monitoring"
RUNBOOK = REPO / "docs" / "runbook.md"
SERVICES = ("intake", "validation", "stats", "export")

# Variables the platform's settings read: cleared around a settings check so the test's own
# environment (a developer's shell, CI) cannot make a missing variable look set.
_OWNED_PREFIXES = ("INTAKE_", "VALIDATION_", "STATS_", "EXPORT_", "KAFKA_", "REGISTRY_", "DATABASE_URL")


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
        and value.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"services.{service}.settings should define one settings class, found {classes}"
    return classes[0]


def required_variables(service: str) -> list[tuple[str, ...]]:
    """For each setting without a default: the environment variables any one of which provides it."""
    cls = settings_class(service)
    prefix = cls.model_config.get("env_prefix", "")
    required = []
    for name, field in cls.model_fields.items():
        if not field.is_required():
            continue
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            required.append(tuple(str(choice) for choice in alias.choices))
        elif isinstance(alias, str):
            required.append((alias,))
        else:
            required.append((f"{prefix}{name}".upper(),))
    return required


def fake_secret(name: str) -> str:
    """A value of the right shape for a secret variable or Secret key, never a real one."""
    lowered = name.lower()
    if "database" in lowered or lowered.endswith("_url") or lowered.endswith("-url"):
        return "postgresql+asyncpg://user:password@postgres:5432/db"
    if "password" in lowered:
        return secrets.token_hex(12)
    if lowered.endswith(".json"):
        return "[]"
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@contextmanager
def isolated_environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(_OWNED_PREFIXES):
                del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_service_settings(service: str, env: Mapping[str, str]) -> ServiceSettings:
    """The service's settings as it would load them from exactly `env` (SettingsError if it would refuse)."""
    from shared.settings import load_settings

    with isolated_environment(env):
        return load_settings(settings_class(service))


def github_anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown document (and explicit <a id>s)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not (match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    anchors |= set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    return anchors
