"""Registry authentication pieces: ``WWW-Authenticate`` parsing, scopes, token and credential state.

The network side (asking the token realm) lives in :mod:`.client`; this module is pure logic plus
a small thread-safe store.  Nothing here ever formats a secret into a string other than the
``Authorization`` header value itself.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from wizard.core.credentials import Credential, CredentialProvider

_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class Challenge:
    """One challenge from a ``WWW-Authenticate`` header; ``scheme`` is lower-case."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def error(self) -> str:
        return self.params.get("error", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter split on spaces (several scopes may be asked for at once)."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)

    def same_server(self, other: Challenge | None) -> bool:
        """True when ``other`` asks for the same kind of login (scheme, realm, service)."""
        return (
            other is not None
            and other.scheme == self.scheme
            and other.realm == self.realm
            and other.service == self.service
        )


def parse_www_authenticate(header: str | None) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` into challenges (RFC 7235; tolerant of sloppy servers).

    >>> parse_www_authenticate('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"')[0].realm
    'https://a/token'
    """
    if not header:
        return []
    out: list[Challenge] = []
    current: Challenge | None = None
    s, n, pos = header, len(header), 0
    while pos < n:
        while pos < n and s[pos] in " \t,":
            pos += 1
        if pos >= n:
            break
        m = _TOKEN_CHARS.match(s, pos)
        if not m:
            pos += 1
            continue
        name = m.group(0)
        j = m.end()
        while j < n and s[j] in " \t":
            j += 1
        if current is not None and j < n and s[j] == "=" and not name.endswith("="):
            j += 1
            while j < n and s[j] in " \t":
                j += 1
            if j < n and s[j] == '"':
                value_chars: list[str] = []
                j += 1
                while j < n and s[j] != '"':
                    if s[j] == "\\" and j + 1 < n:
                        j += 1
                    value_chars.append(s[j])
                    j += 1
                value = "".join(value_chars)
                j += 1  # closing quote (or end of header)
            else:
                start = j
                while j < n and s[j] not in ", \t":
                    j += 1
                value = s[start:j]
            current.params[name.lower()] = value
            pos = j
        else:
            current = Challenge(scheme=name.lower(), params={})
            out.append(current)
            pos = j
    return out


def pick_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge we can answer: Bearer first (it is what token registries want), then Basic."""
    chosen: Challenge | None = None
    for ch in challenges:
        if ch.scheme == "bearer":
            return ch
        if ch.scheme == "basic" and chosen is None:
            chosen = ch
    return chosen


def repository_scope(repo: str, push: bool = False) -> str:
    """``repository:<repo>:pull`` or ``repository:<repo>:pull,push``."""
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Sort and de-duplicate scopes, merging actions of the same resource (``pull`` + ``push``)."""
    actions: dict[str, set[str]] = {}
    order: list[str] = []
    for scope in scopes:
        resource, sep, acts = scope.rpartition(":")
        if not sep or not resource:
            resource, acts = scope, ""
        if resource not in actions:
            actions[resource] = set()
            order.append(resource)
        actions[resource].update(a for a in acts.split(",") if a)
    out = []
    for resource in sorted(order):
        acts = sorted(actions[resource], key=lambda a: (a != "pull", a))
        out.append(f"{resource}:{','.join(acts)}" if acts else resource)
    return tuple(out)


def basic_authorization(credential: Credential) -> str:
    """The ``Authorization`` header value for HTTP Basic (ECR: user ``AWS``, password = token)."""
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_token_response(body: bytes) -> tuple[str, float]:
    """``(token, expires_in_seconds)`` from a token server's JSON answer; raises ValueError."""
    doc = json.loads(body.decode("utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("token response is not a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("token response has no token")
    expires = doc.get("expires_in")
    try:
        expires_in = float(expires) if expires is not None else 60.0
    except (TypeError, ValueError):
        expires_in = 60.0
    # The Docker token spec: "at least 60 seconds" when absent or smaller.
    return token, max(expires_in, 60.0)


class AuthState:
    """What one client knows about logging in: the server's challenge, the credential, tokens.

    Thread-safe.  ``generation`` increases on each credential refresh, so a burst of 401s from
    parallel requests made with the same (stale) credential leads to one ``refresh()`` only.
    """

    def __init__(self, provider: CredentialProvider | None) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self.fetch_lock = threading.Lock()  # serialises token fetches (no duplicate requests)
        self._challenge: Challenge | None = None
        self._credential: Credential | None = None
        self._loaded = False
        self.generation = 0
        self.refreshes = 0
        self._tokens: dict[tuple[str, ...], tuple[str, float, int]] = {}

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def learn(self, challenge: Challenge) -> None:
        with self._lock:
            if not challenge.same_server(self._challenge):
                self._tokens.clear()
            self._challenge = challenge

    def credential(self) -> tuple[Credential | None, int]:
        """The current credential (loaded lazily from the provider) and its generation."""
        with self._lock:
            if not self._loaded and self._provider is not None:
                self._credential = self._provider.get()
                self._loaded = True
            return self._credential, self.generation

    def refresh(self, seen_generation: int) -> None:
        """Ask the provider for a new credential unless someone did since ``seen_generation``."""
        with self._lock:
            if seen_generation != self.generation or self._provider is None:
                return
            self._credential = self._provider.refresh()
            self._loaded = True
            self.generation += 1
            self.refreshes += 1
            self._tokens.clear()

    def token(self, key: tuple[str, ...]) -> tuple[str, int] | None:
        """A cached, unexpired bearer token for ``key`` and the credential generation it came from."""
        with self._lock:
            hit = self._tokens.get(key)
            if hit is None:
                return None
            token, expires_at, gen = hit
            if time.monotonic() >= expires_at or gen != self.generation:
                del self._tokens[key]
                return None
            return token, gen

    def store_token(self, key: tuple[str, ...], token: str, expires_in: float, generation: int) -> None:
        # Renew a little early so a token never expires between our check and the server's.
        margin = min(30.0, expires_in / 4)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + expires_in - margin, generation)

    def drop_token(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._tokens.pop(key, None)
