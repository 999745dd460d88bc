"""API tokens for hospitals and registry staff, shared by every service's HTTP API.

Tokens are random (256 bits) and only their SHA-256 digests are stored, in a JSON file whose path comes
from `REGISTRY_TOKENS_FILE`: a leaked file does not reveal a usable token, and with that much entropy a
fast hash is as good as a slow one. Lookup compares digests in constant time over every entry, so an
unknown token takes as long to refuse as a known one takes to accept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import VAR_DIR


class Role(StrEnum):
    HOSPITAL = "hospital"
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    hospital_id: str | None  # set for hospital tokens

    def may_see(self, hospital_id: str) -> bool:
        return self.role is Role.STAFF or self.hospital_id == hospital_id


class TokenEntry(BaseModel):
    name: str
    role: Role
    hospital_id: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")
    tokens_file: Path = VAR_DIR / "tokens.json"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]

    @staticmethod
    def entries_in(path: Path) -> list[TokenEntry]:
        if not path.exists():
            return []
        return [TokenEntry.model_validate(item) for item in json.loads(path.read_text())]

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        return cls(cls.entries_in(path))

    def authenticate(self, token: str) -> Principal | None:
        candidate = hashlib.sha256(token.encode()).digest()
        found: TokenEntry | None = None
        for stored, entry in self._entries:  # no early exit: same work for every token
            if hmac.compare_digest(stored, candidate):
                found = entry
        if found is None:
            return None
        return Principal(found.name, found.role, found.hospital_id)


def issue_token(path: Path, name: str, role: Role, hospital_id: str | None = None) -> str:
    """Create a token, store its digest in `path`, and return the token (shown once, never stored)."""
    token = secrets.token_urlsafe(32)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["name"] != name]
    entries.append(TokenEntry(name=name, role=role, hospital_id=hospital_id, sha256=digest(token)).model_dump())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))
    path.chmod(0o600)
    return token


_bearer = HTTPBearer(auto_error=False, description="A hospital or staff API token")


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: 401 for a missing or unknown token. The app keeps its `TokenStore` on
    `app.state.tokens`. Async although it never awaits: FastAPI runs a plain `def` dependency in a worker
    thread, and the hop there and back cost more than the few microseconds of hashing."""
    store: TokenStore = request.app.state.tokens
    principal = store.authenticate(credentials.credentials) if credentials else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or unknown API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


async def require_staff(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.role is not Role.STAFF:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "registry staff only")
    return principal


def require_hospital_access(principal: Principal, hospital_id: str) -> None:
    if not principal.may_see(hospital_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token may not act for hospital {hospital_id!r}")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
StaffPrincipal = Annotated[Principal, Depends(require_staff)]
