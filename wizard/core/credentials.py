"""In-memory registry credentials. Never serialised, never logged (repr redacts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # pragma: no cover - trivial
        return f"Credential(username={self.username!r}, password=<redacted>, expires_at={self.expires_at!r})"


class CredentialProvider(Protocol):
    """Gives the credential for one registry; ``refresh`` obtains a new one (e.g. a new ECR token)."""

    def get(self) -> Credential | None: ...

    def refresh(self) -> Credential | None: ...


class StaticCredentials:
    """A fixed credential (or anonymous when ``credential`` is None)."""

    def __init__(self, credential: Credential | None = None) -> None:
        self._credential = credential

    def get(self) -> Credential | None:
        return self._credential

    def refresh(self) -> Credential | None:
        return self._credential


class RefreshingCredentials:
    """Calls ``fetch`` lazily and again on ``refresh``; thread-safe so parallel copies share one token."""

    def __init__(self, fetch: Callable[[], Credential]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._credential: Credential | None = None
        self.refreshes = 0

    def get(self) -> Credential | None:
        with self._lock:
            if self._credential is None:
                self._credential = self._fetch()
            return self._credential

    def refresh(self) -> Credential | None:
        with self._lock:
            self._credential = self._fetch()
            self.refreshes += 1
            return self._credential
