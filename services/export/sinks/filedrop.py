"""The file-drop sink: batches of operations as JSON-lines files, each with a signed manifest.

The drop directory is export's outbox; the Nordic side reads it and changes nothing in it:

    batch-<sha256>.jsonl          one operation per line, in sequence order:
                                  {"sequence", "operation", "record_id", "record_sha256", "record"}
    batch-<sha256>.manifest.json  written last: a batch without its manifest does not exist

Each file is written to a temporary name, flushed to disk and renamed (atomic on POSIX), so nobody
sees half a file; leftovers of a crash (temporary files, a data file without manifest) are removed when
the sink next starts. The manifests are the sink's own record of what it delivered: operations already
in a manifest are left out of a new batch, so a re-delivery after a crash writes nothing twice at rest,
and a batch's data file is named by its SHA-256, so rewriting the same batch lands on the same name.

The Nordic importer (`read_drop` is the reference): check each manifest's Ed25519 signature with the
public key `registry export public-key` prints, and the data file's SHA-256; then apply operations per
record id in sequence order, each only if its sequence is higher than the last one applied to that
record (deletes too). Batches may thus be imported in any order, and more than once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.export.domain.ledger import Operation
from services.export.domain.record import SCHEMA_NAME, SCHEMA_VERSION, canonical_bytes
from services.export.sinks.base import Held, SinkOperation, SinkUnavailable

FORMAT = "nopho-care-drop"
FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
DATA_SUFFIX = ".jsonl"
TEMP_PREFIX = ".tmp-"


def signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key derived from `EXPORT_SIGNING_KEY` (any length of at least 32 bytes)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"nopho-care-drop-signing\x00" + secret).digest())


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class FileDropSink:
    name = "file"

    def __init__(self, directory: Path, key: Ed25519PrivateKey) -> None:
        self._dir = directory
        self._key = key
        self._delivered: dict[tuple[str, int], str] | None = None  # (record id, sequence) -> batch

    async def deliver(self, operations: Sequence[SinkOperation]) -> str:
        try:
            return await asyncio.to_thread(self._deliver, operations)
        except OSError as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def holdings(self) -> dict[str, Held]:
        return (await asyncio.to_thread(read_drop, self._dir, self._key.public_key())).records

    async def close(self) -> None:
        return None

    def _deliver(self, operations: Sequence[SinkOperation]) -> str:
        delivered = self._index()
        fresh = sorted(
            (op for op in operations if (op.record_id, op.sequence) not in delivered), key=lambda op: op.sequence
        )
        if not fresh:
            return delivered[(operations[0].record_id, operations[0].sequence)]
        data = b"".join(
            canonical_bytes(
                {
                    "sequence": op.sequence,
                    "operation": op.operation.value,
                    "record_id": op.record_id,
                    "record_sha256": op.record_sha256,
                    "record": op.record_json() if op.record is not None else None,
                }
            )
            + b"\n"
            for op in fresh
        )
        digest = hashlib.sha256(data).hexdigest()
        batch = f"batch-{digest}"
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "batch": batch,
            "data_file": batch + DATA_SUFFIX,
            "data_sha256": digest,
            "record_schema": f"{SCHEMA_NAME}/{SCHEMA_VERSION}",
            "created_at": datetime.now(UTC).isoformat(),
            "operations": [
                {"sequence": op.sequence, "record_id": op.record_id, "operation": op.operation.value} for op in fresh
            ],
        }
        public = self._key.public_key()
        manifest["signature"] = {
            "algorithm": "ed25519",
            "key_id": key_id(public),
            "value": base64.b64encode(self._key.sign(canonical_bytes(manifest))).decode(),
        }
        self._write_atomically(self._dir / (batch + DATA_SUFFIX), data)
        self._write_atomically(self._dir / (batch + MANIFEST_SUFFIX), json.dumps(manifest, indent=1).encode())
        _fsync_directory(self._dir)
        for op in fresh:
            delivered[(op.record_id, op.sequence)] = batch
        return batch

    def _index(self) -> dict[tuple[str, int], str]:
        """What earlier batches delivered, from their manifests; the first call also clears crash leftovers."""
        if self._delivered is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            delivered: dict[tuple[str, int], str] = {}
            for path in self._dir.glob("batch-*" + MANIFEST_SUFFIX):
                manifest = json.loads(path.read_bytes())
                for op in manifest["operations"]:
                    delivered[(op["record_id"], op["sequence"])] = manifest["batch"]
            batches = set(delivered.values())
            for path in self._dir.iterdir():
                orphan = path.name.endswith(DATA_SUFFIX) and path.name.removesuffix(DATA_SUFFIX) not in batches
                if orphan or path.name.startswith(TEMP_PREFIX):
                    path.unlink()
            self._delivered = delivered
        return self._delivered

    @staticmethod
    def _write_atomically(path: Path, content: bytes) -> None:
        temporary = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with temporary.open("wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class DropError(Exception):
    """A batch in the drop directory fails verification (signature, checksum or format)."""


@dataclass
class DropContents:
    """The outcome of importing a drop directory: what the Nordic side holds, and what it read."""

    records: dict[str, Held] = field(default_factory=dict)
    batches: int = 0
    operations: int = 0
    # (record id, sequence) pairs found in more than one batch: duplicates at rest.
    duplicates: list[tuple[str, int]] = field(default_factory=list)


def read_drop(directory: Path, public_key: Ed25519PublicKey) -> DropContents:
    """The reference Nordic importer: verify every batch, then apply operations by sequence per record."""
    contents = DropContents()
    if not directory.exists():
        return contents
    seen: set[tuple[str, int]] = set()
    applied: dict[str, int] = {}  # record id -> highest sequence applied, deletes included
    for manifest_path in sorted(directory.glob("batch-*" + MANIFEST_SUFFIX)):
        manifest = json.loads(manifest_path.read_bytes())
        signature = manifest.pop("signature", None)
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION or not signature:
            raise DropError(f"{manifest_path.name}: not a {FORMAT} v{FORMAT_VERSION} manifest")
        try:
            public_key.verify(base64.b64decode(signature["value"]), canonical_bytes(manifest))
        except InvalidSignature as exc:
            raise DropError(f"{manifest_path.name}: bad signature") from exc
        data = (directory / manifest["data_file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest["data_sha256"]:
            raise DropError(f"{manifest['data_file']}: checksum mismatch")
        contents.batches += 1
        for line in data.splitlines():
            op = json.loads(line)
            key = (op["record_id"], op["sequence"])
            contents.operations += 1
            if key in seen:
                contents.duplicates.append(key)
            seen.add(key)
            if op["sequence"] <= applied.get(op["record_id"], 0):
                continue
            applied[op["record_id"]] = op["sequence"]
            if op["operation"] == Operation.UPSERT.value:
                if hashlib.sha256(canonical_bytes(op["record"])).hexdigest() != op["record_sha256"]:
                    raise DropError(f"{manifest['data_file']}: record {op['record_id']} does not match its hash")
                contents.records[op["record_id"]] = Held(
                    op["record_id"], op["sequence"], op["record"], op["record_sha256"]
                )
            else:
                contents.records.pop(op["record_id"], None)
    return contents
