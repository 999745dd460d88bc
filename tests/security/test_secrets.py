"""Secrets come only from settings (the environment, a Secret), never from the repository: no setting of a
secret has a default, no tracked file holds a key-like value or a secret setting with a literal value,
and the files where local secrets live are git-ignored."""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import inspect
import itertools
import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

pytestmark = [pytest.mark.security]

REPO = Path(__file__).resolve().parents[2]
SETTINGS_MODULES = (
    "shared.settings",
    "shared.auth",
    "services.intake.settings",
    "services.validation.settings",
    "services.stats.settings",
    "services.export.settings",
    "services.stats.dashboard.settings",
)
SECRET_NAME = r"[A-Z][A-Z0-9_]*(?:KEY|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?)S?"
# NAME = value, NAME: value, "NAME": "value", with a value that looks like one (16+ key characters).
SECRET_ASSIGNMENT = re.compile(
    rf"""["']?\b(?P<name>{SECRET_NAME})\b["']?\s*[:=]\s*(?P<quote>["']?)(?P<value>[A-Za-z0-9_\-+/=.]{{16,}})(?P=quote)"""
)
KEY_LIKE = re.compile(r"(?<![A-Za-z0-9_\-+/=])[A-Za-z0-9_\-+/]{32,}={0,2}(?![A-Za-z0-9_\-+/=])")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
LOCAL_SECRET_FILES = (
    "var/secrets.json",
    "var/tokens.json",
    "var/demo-tokens.json",
    "deploy/compose/secrets.env",
    "deploy/compose/tokens/tokens.json",
)


def _tracked_text_files() -> list[tuple[str, str]]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:4096]:
            files.append((name, data.decode("utf-8", "replace")))
    return files


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(value: str) -> bool:
    """High entropy and every character class of base64: what a generated key or token looks like (a
    word, an identifier, a path, a hex digest or a base32 pseudonym does not)."""
    classes = [r"[a-z]", r"[A-Z]", r"[0-9]"]
    return _entropy(value) > 4.0 and all(re.search(c, value) for c in classes)


def _made_up(value: str) -> bool:
    """A test's stand-in key, e.g. base64 of bytes(range(32)): the bytes count up or repeat."""
    try:
        raw = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        return False
    steps = {(b - a) % 256 for a, b in itertools.pairwise(raw)}
    return len(raw) >= 16 and len(steps) == 1


def _placeholder(value: str) -> bool:
    return value.startswith(("${", "$(", "<", "...", "changeme", "change-me", "example", "xxx"))


def test_no_tracked_file_holds_a_key_or_a_secret_setting_with_a_literal_value() -> None:
    files = _tracked_text_files()
    findings = []
    for name, text in files:
        for match in SECRET_ASSIGNMENT.finditer(text):
            value = match["value"]
            if not _placeholder(value) and _random_looking(value) and not _made_up(value):
                findings.append(f"{name}: {match['name']} has a literal value")
        for match in KEY_LIKE.finditer(text):
            if _random_looking(match.group()) and not _made_up(match.group()):
                findings.append(f"{name}: a key-like value {match.group()[:6]}…")
        if PRIVATE_KEY.search(text):
            findings.append(f"{name}: a private key")
    assert not findings, findings
    assert len(files) > 100  # the scan saw the repository


def test_the_scan_recognises_a_key_when_it_sees_one() -> None:
    """The detectors against what they must and must not flag."""
    # The shape `registry secrets new` prints, made here: a literal one would be flagged in this very file.
    real = base64.urlsafe_b64encode(hashlib.sha256(b"an example, not a key").digest()).decode().rstrip("=")
    line = f"INTAKE_VAULT_KEY={real}"
    match = SECRET_ASSIGNMENT.search(line)
    assert match is not None and _random_looking(match["value"]) and not _made_up(match["value"])
    assert KEY_LIKE.search(f'key = "{real}"') is not None
    assert not _random_looking("a3f1c0d2" * 8)  # a sha256 digest in hex
    assert not _random_looking("ptoobda3mfsjh66c7vithjnazlodmnnh")  # a base32 pseudonym
    assert _made_up(base64.urlsafe_b64encode(bytes(range(32))).decode())
    assert _placeholder("${INTAKE_VAULT_KEY:?set it}")


def test_the_files_that_hold_local_secrets_are_ignored_by_git() -> None:
    for name in LOCAL_SECRET_FILES:
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{name} is not git-ignored"
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", name], cwd=REPO, capture_output=True)
        assert tracked.returncode != 0, f"{name} is tracked"


def _settings_classes() -> list[type[BaseSettings]]:
    classes: dict[str, type[BaseSettings]] = {}
    for module_name in SETTINGS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue  # a module some checkouts do not have yet
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls is not BaseSettings:
                classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(classes.values())


def _is_secret(annotation: object) -> bool:
    """SecretStr, also inside `X | None` (pydantic keeps Annotated metadata apart from the annotation)."""
    return annotation is SecretStr or any(_is_secret(arg) for arg in getattr(annotation, "__args__", ()))


def test_every_secret_setting_comes_from_the_environment_with_no_default() -> None:
    """A key with a default would be a key in the repository: every SecretStr setting is required (or
    None when unused, like the file sink's signing key), and the services refuse to start without it."""
    classes = _settings_classes()
    secrets_seen = []
    for cls in classes:
        for name, field in cls.model_fields.items():
            if not _is_secret(field.annotation):
                continue
            secrets_seen.append(f"{cls.__name__}.{name}")
            assert field.default in (PydanticUndefined, None), f"{cls.__name__}.{name} has a default value"
            assert field.default_factory is None, f"{cls.__name__}.{name} has a default factory"
    assert {"IntakeSettings.pseudonym_key", "IntakeSettings.vault_key", "ExportSettings.pseudonym_key"} <= set(
        secrets_seen
    ), secrets_seen
