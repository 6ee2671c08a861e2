"""An OCI Distribution (Docker Registry HTTP API v2) client on ``httpx``.

One :class:`RegistryClient` talks to one registry host and is safe to share between threads
(the mirror engine uses one per side from 4-8 threads).  What it does, per request:

* **auth** — anonymous until the server answers 401; then Basic (ECR: ``AWS:<token>``) or the
  Bearer token flow from ``WWW-Authenticate`` (per-repository scopes, tokens cached per scope,
  Basic credentials sent to the realm only).  On 401/403 after credentials were sent, the
  credential provider's ``refresh()`` is called once (once per burst across threads) and the
  request is repeated.
* **retries** — exponential backoff with jitter on connection errors, resets, timeouts,
  truncated bodies, digest mismatches on read, 408/429 (``Retry-After`` honoured, capped) and
  500/502/503/504, within a bounded per-request budget (:class:`RetryPolicy`).
* **integrity** — manifests are kept as raw bytes and checked against ``Docker-Content-Digest``
  and digest references; blobs are hashed while streaming and checked *before* their last chunk
  is handed on, so a corrupt blob never completes an upload.
* **blobs** — streamed monolithic uploads (POST, then one PUT to the ``Location`` exactly as
  returned plus ``digest=``), cross-repository mounts, downloads that follow storage redirects
  without the ``Authorization`` header and resume with ``Range`` after a dropped connection.

Performance notes (see ``bench/README.md``): without a proxy, httpx runs over
:class:`~wizard.core.registry.wire.WireTransport` (``http.client``), which reads blob bodies in
pieces of up to 1 MiB straight from the socket and sends request bodies as they come, without
h11's buffer copies; pieces are handed on as they are (never joined), one hash per byte (a blob
read from a registry is verified by the reader, so ``put_blob`` does not hash it again) and no
per-chunk work besides hashing and the write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from wizard import __version__
from wizard.core.credentials import CredentialProvider
from wizard.core.errors import RegistryError
from wizard.core.registry import _lean_imports
from wizard.core.registry.auth import (
    AuthState,
    Challenge,
    basic_authorization,
    merge_scopes,
    parse_token_response,
    parse_www_authenticate,
    pick_challenge,
    repository_scope,
)
from wizard.core.registry.endpoint import RegistryEndpoint
from wizard.core.registry.errors import (
    BlobVerificationError,
    ManifestVerificationError,
    RegistryConnectionError,
    RegistryHTTPError,
    auth_error,
    http_error,
    is_retryable_transport_error,
    transport_error,
)
from wizard.core.registry.retry import RETRY_STATUSES, RetryPolicy
from wizard.core.registry.wire import WireTransport
from wizard.core.transports.base import (
    ACCEPT_MANIFESTS,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1_SIGNED,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    BlobReader,
    Descriptor,
    Manifest,
    Progress,
)

log = logging.getLogger(__name__)

#: A blob reader holds back received pieces until it has this many bytes (then hands them on, as
#: they are): a blob smaller than this is verified before any of it is handed on.
CHUNK_SIZE = 1 << 20
#: ``progress`` is called at most once per this many bytes (plus once at the end of a blob).
PROGRESS_STEP = 1 << 20
#: Refuse manifests larger than this (the distribution spec suggests 4 MiB).
MAX_MANIFEST_BYTES = 4 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


# ------------------------------------------------------------------------------------------
# small pure helpers (unit-tested)
# ------------------------------------------------------------------------------------------


def join_location(request_url: str, location: str) -> str:
    """Resolve an upload ``Location`` (absolute, or relative to the request) keeping its query."""
    return urljoin(request_url, location.strip())


def with_query_param(url: str, name: str, value: str) -> str:
    """Append ``name=value`` (value percent-encoded) to ``url``, keeping its query as it is."""
    base, hash_sep, fragment = url.partition("#")
    sep = ("" if base.endswith(("?", "&")) else "&") if "?" in base else "?"
    out = f"{base}{sep}{name}={quote(value, safe='')}"
    return out + hash_sep + fragment


def parse_link_next(header: str | None) -> str | None:
    """The ``rel="next"`` target from a ``Link`` header (tag list pagination)."""
    if not header:
        return None
    for part in header.split(","):
        m = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return m.group(1)
    return None


def is_digest(reference: str) -> bool:
    return ":" in reference and bool(_DIGEST_RE.match(reference))


def new_hasher(digest: str) -> Any:
    """A hashlib object for ``digest``'s algorithm (``sha256``, ``sha512``, ...)."""
    algo = digest.split(":", 1)[0]
    try:
        return hashlib.new(algo)
    except ValueError as exc:
        raise BlobVerificationError(
            f"unsupported digest algorithm in {digest}", "only sha256/sha512 digests are supported"
        ) from exc


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def detect_media_type(raw: bytes, content_type: str = "") -> str:
    """The manifest's media type: the served ``Content-Type`` if it is a manifest type, else from the JSON."""
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in MANIFEST_TYPES or ct == DOCKER_MANIFEST_V1_SIGNED:
        return ct
    try:
        doc = json.loads(raw)
    except ValueError:
        return ct or "application/octet-stream"
    if isinstance(doc, dict):
        mt = doc.get("mediaType")
        if isinstance(mt, str) and mt:
            return mt
        if doc.get("schemaVersion") == 1:
            return DOCKER_MANIFEST_V1_SIGNED
        if "manifests" in doc:
            return OCI_INDEX
        if "config" in doc or "layers" in doc:
            return OCI_MANIFEST
    return ct or "application/octet-stream"


def check_repo(repo: str) -> str:
    if not _REPO_RE.match(repo):
        raise RegistryError(
            f"invalid repository path {repo!r}",
            "use lowercase letters, digits and single . _ - between them (e.g. currents/on-prem/api)",
        )
    return repo


def check_reference(reference: str) -> str:
    if not (_TAG_RE.match(reference) or is_digest(reference)):
        raise RegistryError(f"invalid tag or digest {reference!r}", "a tag is 1-128 of [A-Za-z0-9_.-]")
    return reference


# ------------------------------------------------------------------------------------------
# the client
# ------------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    """Counters for tests, benchmarks and ``--verbose`` summaries (thread-safe via ``add``)."""

    requests: int = 0
    retries: int = 0
    token_fetches: int = 0
    refreshes: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    uploads_redone: int = 0
    resumed_reads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


_SSL_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext | bool] = {}
_SSL_LOCK = threading.Lock()


def _ssl_context(endpoint: RegistryEndpoint) -> ssl.SSLContext | bool:
    """``endpoint.ssl_context()``, shared by clients with the same trust settings (each costs ~20 ms of CPU).

    Keyed by the CA file's path, size and mtime, so a replaced file is read again.
    """
    key: tuple[object, ...] = (endpoint.verify, endpoint.ca_file)
    if endpoint.ca_file:
        try:
            st = os.stat(endpoint.ca_file)
            key += (st.st_size, st.st_mtime_ns)
        except OSError:
            return endpoint.ssl_context()  # raises the usual error
    with _SSL_LOCK:
        ctx = _SSL_CONTEXTS.get(key)
        if ctx is None:
            ctx = _SSL_CONTEXTS[key] = endpoint.ssl_context()
        return ctx


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: see :class:`_HttpClient`."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _HttpClient(httpx.Client):
    """``httpx.Client`` without cookies. The distribution API has none, and docker and skopeo keep
    none; httpx would still run every response through ``http.cookiejar`` (~60 µs of a ~400 µs
    request). No ``Set-Cookie`` is kept, so none is ever sent back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("this client keeps no cookies")


class _Redo(Exception):
    """A request with a one-shot (streamed) body failed in a way that a fresh upload may cure."""

    def __init__(self, error: Exception, delay: float = 0.0) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay  # what the server asked us to wait (Retry-After), if anything


@dataclass
class _RequestState:
    """Per-request auth bookkeeping: what was already tried, so nothing loops."""

    learned: bool = False
    token_retry: bool = False
    refreshed: bool = False
    extra_scopes: tuple[str, ...] = ()


class RegistryClient:
    """Talks to one registry. Thread-safe; ``close()`` when done (or use ``with``)."""

    def __init__(
        self,
        endpoint: RegistryEndpoint,
        credentials: CredentialProvider | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.host = endpoint.host
        self.base_url = endpoint.base_url
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._auth = AuthState(credentials)
        timeout = httpx.Timeout(
            connect=endpoint.connect_timeout,
            read=endpoint.read_timeout,
            write=endpoint.read_timeout,
            pool=max(endpoint.read_timeout, 60.0),
        )
        limits = httpx.Limits(
            max_connections=endpoint.max_connections,
            max_keepalive_connections=endpoint.max_connections,
            keepalive_expiry=30.0,
        )
        transport: httpx.BaseTransport | None = None
        if endpoint.proxy is not None:
            _lean_imports.httpcore()  # httpx's own transport, for the proxy
        else:
            # Blob bodies are most of the bytes: http.client under httpx moves them with fewer copies
            # (wire.py). The TLS context is built now for an https registry or a --ca-file (a bad CA
            # file is an input error before any request); for plain HTTP only if a redirect needs it.
            if endpoint.scheme == "https" or endpoint.ca_file:
                _ssl_context(endpoint)
            transport = WireTransport(
                lambda: _ssl_context(endpoint), max_idle_per_host=endpoint.max_connections, keepalive_expiry=30.0
            )
        self._http = _HttpClient(
            verify=_ssl_context(endpoint) if transport is None else True,
            timeout=timeout,
            limits=limits,
            trust_env=False,  # the machine's CA/proxy variables must not override --ca-file
            follow_redirects=False,
            proxy=endpoint.proxy,
            headers={"User-Agent": f"currents-wizard/{__version__}"},
            transport=transport,
        )
        for warning in endpoint.warnings:
            log.info(warning)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url})"

    @property
    def refreshes(self) -> int:
        """How many times the credential provider's ``refresh()`` was called by this client."""
        return self._auth.refreshes

    # -- core request machinery ---------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _authorization(self, scopes: tuple[str, ...], st: _RequestState) -> tuple[str | None, int | None]:
        """The ``Authorization`` value for a request needing ``scopes``, and the credential generation used."""
        challenge = self._auth.challenge
        if challenge is None:
            return None, None
        credential, generation = self._auth.credential()
        if challenge.scheme == "basic":
            if credential is None:
                return None, None
            return basic_authorization(credential), generation
        key = merge_scopes(scopes + st.extra_scopes)
        hit = self._auth.token(key)
        if hit is None:
            with self._auth.fetch_lock:
                hit = self._auth.token(key)
                if hit is None:
                    hit = self._fetch_token(challenge, key, st)
        token, gen = hit
        return f"Bearer {token}", (gen if credential is not None else None)

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...], st: _RequestState) -> tuple[str, int]:
        """Ask the realm for a bearer token for ``scopes`` (Basic credentials, if any, go only here)."""
        realm = challenge.realm
        if not realm:
            raise RegistryError(f"{self.host} asked for a bearer token but named no realm", "report this registry")
        realm_scheme = urlsplit(realm).scheme.lower()
        while True:
            credential, generation = self._auth.credential()
            if credential is not None and realm_scheme == "http" and self.endpoint.scheme == "https":
                raise RegistryError(
                    f"{self.host} wants the password sent to a plain-HTTP token server ({urlsplit(realm).netloc})",
                    "refusing: use an https token realm, or an http:// registry address if this is intended",
                )
            params: list[tuple[str, str]] = []
            if challenge.service:
                params.append(("service", challenge.service))
            params += [("scope", s) for s in scopes]
            headers: dict[str, str] = {}
            if credential is not None:
                params.append(("account", credential.username))
                headers["Authorization"] = basic_authorization(credential)
            self.stats.add(token_fetches=1)
            resp = self._request("GET", realm, params=params, headers=headers, auth=False, what="token request")
            if resp.status_code in (401, 403):
                if credential is not None and not st.refreshed:
                    st.refreshed = True
                    self._auth.refresh(generation)
                    self.stats.add(refreshes=1)
                    continue
                raise auth_error(
                    self.host,
                    "login",
                    resp.status_code,
                    resp.content,
                    role=self.endpoint.role,
                    credentials_sent=credential is not None,
                )
            if resp.status_code != 200:
                raise http_error(self.host, "token request", resp.status_code, resp.content)
            try:
                token, expires_in = parse_token_response(resp.content)
            except ValueError as exc:
                raise RegistryError(
                    f"the token server of {self.host} sent an unusable answer ({exc})",
                    "check the registry's auth setup",
                ) from exc
            self._auth.store_token(scopes, token, expires_in, generation)
            return token, generation

    def _request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        content: Any = None,
        stream: bool = False,
        replayable: bool = True,
        auth: bool = True,
        what: str = "",
        repo: str = "",
        attempts: int | None = None,
    ) -> httpx.Response:
        """Send one logical request: auth, retries, error mapping.

        Returns the final response unless it is 401/403 (raised as auth errors after the one
        refresh) or a retryable status/transport error past the budget (raised).  Other 4xx and
        3xx come back for the caller to interpret.  With ``replayable=False`` (a streamed body),
        anything a repeat could cure raises :class:`_Redo` instead of retrying here.
        """
        policy = self.retry
        budget = attempts or policy.attempts
        st = _RequestState()
        retry = 0
        auth_rounds = 0
        while True:
            hdrs = dict(headers or {})
            cred_gen: int | None = None
            if auth:
                value, cred_gen = self._authorization(scopes, st)
                if value:
                    hdrs["Authorization"] = value
            try:
                request = self._http.build_request(method, url, params=params, headers=hdrs, content=content)
                self.stats.add(requests=1)
                # A HEAD answer has no body: streamed, httpx sets up no reading of it (callers close it).
                resp = self._http.send(request, stream=stream or method == "HEAD")
            except httpx.TransportError as exc:
                err = transport_error(exc, urlsplit(url).netloc or self.host, what or method)
                if not replayable:
                    raise _Redo(err) from exc
                if not is_retryable_transport_error(exc) or retry + 1 >= budget:
                    raise err from exc
                log.debug("retrying %s %s after %s", method, what, exc.__class__.__name__)
                policy.sleep(policy.backoff(retry))
                retry += 1
                self.stats.add(retries=1)
                continue
            status = resp.status_code
            if status in RETRY_STATUSES:
                if not replayable or retry + 1 >= budget:
                    body = resp.read() if method != "HEAD" else b""
                    resp.close()
                    err = http_error(self.host, what or method, status, body, resp.reason_phrase)
                    if not replayable:
                        raise _Redo(err, policy.delay_for(retry, resp.headers.get("retry-after")))
                    raise err
                delay = policy.delay_for(retry, resp.headers.get("retry-after"))
                resp.close()
                log.debug("retrying %s %s after HTTP %s (%.2fs)", method, what, status, delay)
                policy.sleep(delay)
                retry += 1
                self.stats.add(retries=1)
                continue
            if auth and status in (401, 403):
                body = resp.read() if method != "HEAD" else b""
                resp.close()
                auth_rounds += 1
                if auth_rounds > 4:  # defensive: never loop on a confused server
                    raise auth_error(
                        self.host,
                        what,
                        status,
                        body,
                        role=self.endpoint.role,
                        credentials_sent=cred_gen is not None,
                        repo=repo,
                    )
                self._on_denied(resp, body, scopes, cred_gen, "Authorization" in hdrs, st, what, repo)
                if not replayable:
                    raise _Redo(
                        auth_error(
                            self.host,
                            what,
                            status,
                            body,
                            role=self.endpoint.role,
                            credentials_sent=cred_gen is not None,
                            repo=repo,
                        )
                    )
                continue
            return resp

    def _on_denied(
        self,
        resp: httpx.Response,
        body: bytes,
        scopes: tuple[str, ...],
        cred_gen: int | None,
        sent_auth: bool,
        st: _RequestState,
        what: str,
        repo: str,
    ) -> None:
        """Decide how to answer a 401/403: learn the challenge, get a new token, refresh once; else raise."""
        status = resp.status_code
        challenge = pick_challenge(parse_www_authenticate(resp.headers.get("www-authenticate")))
        if status == 401 and challenge is not None:
            # Sent anonymously (first contact, or another thread learned the challenge meanwhile),
            # or the server now wants a different login: learn it and try once more.
            if (not sent_auth or not challenge.same_server(self._auth.challenge)) and not st.learned:
                st.learned = True
                self._auth.learn(challenge)
                if challenge.scheme == "bearer" or self._auth.credential()[0] is not None:
                    return
            if challenge.scheme == "bearer":
                wanted = merge_scopes(scopes + st.extra_scopes + challenge.scopes)
                if challenge.error == "insufficient_scope" and wanted != merge_scopes(scopes + st.extra_scopes):
                    st.extra_scopes = tuple(s for s in wanted if s not in scopes)
                    return
                if not st.token_retry:
                    st.token_retry = True
                    self._auth.drop_token(merge_scopes(scopes + st.extra_scopes))
                    return
        if cred_gen is not None and not st.refreshed:
            st.refreshed = True
            self._auth.refresh(cred_gen)
            self.stats.add(refreshes=1)
            return
        raise auth_error(
            self.host, what, status, body, role=self.endpoint.role, credentials_sent=cred_gen is not None, repo=repo
        )

    def _fail(self, resp: httpx.Response, what: str) -> RegistryHTTPError:
        body = b"" if resp.request.method == "HEAD" else resp.read()
        resp.close()
        if resp.status_code == 400 and b"HTTPS server" in body[:512] and resp.url.scheme == "http":
            raise RegistryConnectionError(
                f"{self.host} speaks HTTPS, not plain HTTP",
                f"use https://{self.host} (with --ca-file if it has a private CA) instead of http://",
                retryable=False,
            )
        return http_error(self.host, what, resp.status_code, body, resp.reason_phrase)

    # -- API ------------------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/``: raises a clear error when the registry is unreachable or refuses the login."""
        resp = self._request("GET", self._url("/v2/"), what="API check")
        if resp.status_code != 200:
            raise self._fail(resp, "API check")

    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        """Descriptor of the manifest at ``reference`` (HEAD), or None when it does not exist."""
        check_repo(repo)
        check_reference(reference)
        what = f"HEAD manifest {repo}:{reference}"
        resp = self._request(
            "HEAD",
            self._url(f"/v2/{repo}/manifests/{reference}"),
            headers={"Accept": ACCEPT_MANIFESTS},
            scopes=(repository_scope(repo),),
            what=what,
            repo=repo,
        )
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, what)
        digest = resp.headers.get("docker-content-digest", "").strip()
        media_type = resp.headers.get("content-type", "").split(";", 1)[0].strip()
        size_header = resp.headers.get("content-length", "")
        if digest and media_type in MANIFEST_TYPES and size_header.isdigit():
            if is_digest(reference) and digest != reference:
                raise ManifestVerificationError(
                    f"{self.host}/{repo}@{reference}: the registry reports digest {digest}",
                    "the registry is inconsistent; try again or check it",
                )
            return Descriptor(media_type, digest, int(size_header))
        # No usable digest from HEAD (some registries): GET the manifest and hash it.
        try:
            manifest = self.get_manifest(repo, reference)
        except RegistryHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return manifest.descriptor

    def find_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest at ``reference`` in one GET (verified like :meth:`get_manifest`), or None on 404."""
        try:
            return self.get_manifest(repo, reference)
        except RegistryHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The raw manifest, verified against ``Docker-Content-Digest`` and a digest reference."""
        check_repo(repo)
        check_reference(reference)
        what = f"GET manifest {repo}:{reference}"
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        last: Exception | None = None
        for attempt in range(max(2, min(3, self.retry.attempts))):
            resp = self._request(
                "GET",
                url,
                headers={"Accept": ACCEPT_MANIFESTS},
                scopes=(repository_scope(repo),),
                what=what,
                repo=repo,
            )
            if resp.status_code == 404:
                err = self._fail(resp, what)
                err.message = f"{self.host}/{repo}:{reference} not found" + (
                    f" ({', '.join(err.codes)})" if err.codes else ""
                )
                raise err
            if resp.status_code != 200:
                raise self._fail(resp, what)
            raw = resp.content
            if len(raw) > MAX_MANIFEST_BYTES:
                raise RegistryError(f"{what}: manifest is larger than 4 MiB", "this is not an image manifest")
            media_type = detect_media_type(raw, resp.headers.get("content-type", ""))
            if media_type == DOCKER_MANIFEST_V1_SIGNED:
                # schema 1 digests cover the payload without its signatures: not sha256(raw).
                return Manifest(raw=raw, media_type=media_type)
            header = resp.headers.get("docker-content-digest", "").strip()
            expected = [d for d in (header, reference if is_digest(reference) else "") if d]
            for d in expected:
                if d.split(":", 1)[0] not in hashlib.algorithms_available:
                    raise ManifestVerificationError(
                        f"{what}: cannot verify digest {d} (unknown algorithm)", "only sha256/sha512 are supported"
                    )
            bad = [d for d in expected if digest_of(raw, d.split(":", 1)[0]) != d]
            if not bad:
                return Manifest(raw=raw, media_type=media_type)
            last = ManifestVerificationError(
                f"{self.host}/{repo}:{reference}: manifest bytes hash to {digest_of(raw)}, expected {bad[0]}",
                "the download was corrupted or the registry is inconsistent; run again",
            )
            log.debug("manifest digest mismatch on %s (attempt %d)", what, attempt + 1)
            self.stats.add(retries=1)
            self.retry.sleep(self.retry.backoff(attempt))
        assert last is not None
        raise last

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        """Store ``manifest`` under a tag or digest; return the digest the registry reports."""
        check_repo(repo)
        check_reference(reference)
        what = f"PUT manifest {repo}:{reference}"
        resp = self._request(
            "PUT",
            self._url(f"/v2/{repo}/manifests/{reference}"),
            content=manifest.raw,
            headers={"Content-Type": manifest.media_type},
            scopes=(repository_scope(repo, push=True),),
            what=what,
            repo=repo,
        )
        if resp.status_code not in (200, 201, 202, 204):
            raise self._fail(resp, what)
        return resp.headers.get("docker-content-digest", "").strip() or manifest.digest

    def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete a manifest by digest (registries may forbid it); True when deleted."""
        check_repo(repo)
        what = f"DELETE manifest {repo}@{digest}"
        resp = self._request(
            "DELETE",
            self._url(f"/v2/{repo}/manifests/{digest}"),
            scopes=(f"repository:{repo}:delete",),
            what=what,
            repo=repo,
        )
        if resp.status_code == 404:
            return False
        if resp.status_code not in (200, 202, 204):
            raise self._fail(resp, what)
        return True

    def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """All tags of ``repo`` (follows ``Link: <...>; rel="next"``); [] when the repository is unknown."""
        check_repo(repo)
        what = f"list tags of {repo}"
        url: str | None = self._url(f"/v2/{repo}/tags/list")
        params: dict[str, int] | None = {"n": page_size} if page_size else None
        tags: list[str] = []
        seen_urls: set[str] = set()
        while url and url not in seen_urls and len(seen_urls) < 1000:
            seen_urls.add(url)
            resp = self._request("GET", url, params=params, scopes=(repository_scope(repo),), what=what, repo=repo)
            if resp.status_code == 404:
                resp.close()
                return tags
            if resp.status_code != 200:
                raise self._fail(resp, what)
            try:
                doc = resp.json()
            except ValueError as exc:
                raise RegistryError(f"{self.host}: {what}: the answer is not JSON", "check the registry") from exc
            tags.extend(t for t in (doc.get("tags") or []) if isinstance(t, str) and t not in tags)
            nxt = parse_link_next(resp.headers.get("link"))
            url = join_location(str(resp.url), nxt) if nxt else None
            params = None  # the next link carries its own query
        return tags

    # -- blobs ----------------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        """True when ``repo`` has the blob (HEAD; a redirect to storage counts as yes)."""
        check_repo(repo)
        what = f"HEAD blob {repo}@{digest[:19]}"
        resp = self._request(
            "HEAD", self._url(f"/v2/{repo}/blobs/{digest}"), scopes=(repository_scope(repo),), what=what, repo=repo
        )
        resp.close()
        if resp.status_code == 200 or resp.status_code in _REDIRECTS:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, what)

    def _open_blob_response(self, repo: str, digest: str, start: int = 0) -> httpx.Response:
        """A streaming GET of the blob (redirects followed without ``Authorization``), from byte ``start``."""
        what = f"GET blob {repo}@{digest[:19]}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        resp = self._request(
            "GET",
            self._url(f"/v2/{repo}/blobs/{digest}"),
            headers=headers,
            scopes=(repository_scope(repo),),
            stream=True,
            what=what,
            repo=repo,
        )
        hops = 0
        while resp.status_code in _REDIRECTS:
            location = resp.headers.get("location")
            resp.close()
            hops += 1
            if not location or hops > _MAX_REDIRECTS:
                raise RegistryError(
                    f"{self.host}: {what}: bad or endless redirect", "check the registry's storage setup"
                )
            # Storage (S3, CloudFront, ...) gets no Authorization header: it would reject or leak it.
            resp = self._request(
                "GET", join_location(str(resp.url), location), headers=headers, stream=True, auth=False, what=what
            )
        if resp.status_code == 404:
            err = self._fail(resp, what)
            err.message = f"{self.host}/{repo}: blob {digest} not found"
            raise err
        if resp.status_code not in (200, 206):
            raise self._fail(resp, what)
        if resp.status_code == 206 and not resp.headers.get("content-range", "").startswith(f"bytes {start}-"):
            resp.close()
            raise RegistryConnectionError(f"{self.host}: {what}: the resumed download starts at the wrong byte")
        return resp

    def open_blob(self, repo: str, digest: str) -> RegistryBlobReader:
        """Stream a blob. The reader verifies the digest before handing on the last chunk."""
        check_repo(repo)
        new_hasher(digest)  # unsupported algorithms fail here, not mid-copy
        resp = self._open_blob_response(repo, digest)
        length = resp.headers.get("content-length", "")
        if not length.isdigit():
            resp.close()
            raise RegistryError(
                f"{self.host}: GET blob {digest[:19]} has no Content-Length", "the registry or a proxy strips it"
            )
        return RegistryBlobReader(self, repo, digest, resp, int(length))

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount. True when mounted (201); False when the registry declined (202 etc.)."""
        check_repo(repo)
        check_repo(from_repo)
        what = f"mount blob {digest[:19]} from {from_repo} into {repo}"
        resp = self._request(
            "POST",
            self._url(f"/v2/{repo}/blobs/uploads/"),
            params={"mount": digest, "from": from_repo},
            scopes=(repository_scope(repo, push=True), repository_scope(from_repo)),
            what=what,
            repo=repo,
        )
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:
            location = resp.headers.get("location")
            if location:
                self._abort_upload(join_location(str(resp.url), location), repo)
            return False
        if 400 <= resp.status_code < 500:
            log.debug("mount refused with HTTP %s; the blob will be copied", resp.status_code)
            return False
        raise self._fail(resp, what)

    def _abort_upload(self, location: str, repo: str) -> None:
        """DELETE an upload session (best effort, one try)."""
        try:
            resp = self._request(
                "DELETE",
                location,
                scopes=(repository_scope(repo, push=True),),
                what="cancel upload",
                repo=repo,
                attempts=1,
            )
            resp.close()
        except Exception as exc:  # the session expires on its own
            log.debug("could not cancel upload session: %s", exc.__class__.__name__)

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress | None = None) -> None:
        """Upload a blob: POST, then one streamed PUT of ``size`` bytes to ``Location`` + ``digest=``.

        The bytes are hashed while streaming (unless ``reader.verified_digest == digest``: a
        registry reader checks them itself) and a mismatch stops the upload before its last
        chunk and cancels the session.  When the upload fails in a way a repeat may cure and the
        reader has ``reopen()``, the whole blob is sent again (bounded by the retry policy);
        ``progress`` then gets a negative number to take back the bytes counted for the failed try.
        """
        check_repo(repo)
        reader_size = getattr(reader, "size", None)
        if isinstance(reader_size, int) and reader_size >= 0 and reader_size != size:
            raise BlobVerificationError(
                f"blob {digest[:19]} is {reader_size} bytes at the source but its descriptor says {size}",
                "the source is inconsistent; check it (nothing was uploaded)",
            )
        current = reader
        policy = self.retry
        try:
            for attempt in range(policy.attempts):
                try:
                    self._upload_once(repo, digest, size, current, progress)
                    return
                except _Redo as redo:
                    error: Exception = redo.error
                    wait = redo.delay
                except BlobVerificationError as exc:
                    if not exc.retryable:
                        raise
                    error, wait = exc, 0.0
                reopen: Callable[[], BlobReader] | None = getattr(current, "reopen", None)
                if reopen is None or attempt + 1 >= policy.attempts:
                    raise error
                log.debug("upload of %s failed (%s); sending it again", digest[:19], error)
                policy.sleep(max(policy.backoff(attempt), wait))
                if current is not reader:
                    current.close()
                current = reopen()
                self.stats.add(uploads_redone=1)
        finally:
            if current is not reader:
                current.close()

    def _upload_once(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress | None) -> None:
        what = f"upload blob {digest[:19]} to {repo}"
        scopes = (repository_scope(repo, push=True),)
        resp = self._request("POST", self._url(f"/v2/{repo}/blobs/uploads/"), scopes=scopes, what=what, repo=repo)
        resp.close()
        if resp.status_code != 202:
            raise self._fail(resp, what)
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{self.host}: {what}: no Location in the answer", "the registry is not OCI compliant")
        session = join_location(str(resp.url), location)
        put_url = with_query_param(session, "digest", digest)
        hasher = None if getattr(reader, "verified_digest", None) == digest else new_hasher(digest)
        expected_hex = digest.split(":", 1)[1]
        counted = 0

        def body() -> Iterator[bytes]:
            nonlocal counted
            sent = 0
            pending = 0
            for chunk in reader:
                n = len(chunk)
                if not n:
                    continue
                sent += n
                if sent > size:
                    raise BlobVerificationError(
                        f"blob {digest[:19]} is longer than its {size} bytes", "the source is inconsistent"
                    )
                if hasher is not None:
                    hasher.update(chunk)
                    if sent == size and hasher.hexdigest() != expected_hex:
                        raise BlobVerificationError(
                            f"blob {digest[:19]} read from the source does not match its digest",
                            "the source data is corrupt; run again",
                        )
                if progress is not None:
                    pending += n
                    if pending >= PROGRESS_STEP:
                        counted += pending
                        progress(pending)
                        pending = 0
                yield chunk
            if sent != size:
                raise BlobVerificationError(
                    f"blob {digest[:19]} ended after {sent} of {size} bytes",
                    "the source is inconsistent",
                    retryable=True,
                )
            if size == 0 and hasher is not None and hasher.hexdigest() != expected_hex:
                raise BlobVerificationError(f"empty blob does not match {digest}", "the descriptor is wrong")
            if progress is not None and pending:
                counted += pending
                progress(pending)

        try:
            resp = self._request(
                "PUT",
                put_url,
                content=body(),
                scopes=scopes,
                replayable=False,
                what=what,
                repo=repo,
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
            resp.close()
            if resp.status_code not in (201, 204):
                raise self._fail(resp, what)
            reported = resp.headers.get("docker-content-digest", "").strip()
            if reported and reported != digest:
                raise BlobVerificationError(
                    f"{self.host} stored blob {digest[:19]} as {reported[:19]}", "the registry is inconsistent"
                )
        except BaseException:
            self._abort_upload(session, repo)
            if progress is not None and counted:
                progress(-counted)
            raise
        self.stats.add(bytes_uploaded=size)


class RegistryBlobReader(BlobReader):
    """A blob streamed from a registry, in the pieces the socket delivers (up to 1 MiB each).

    The sha256 is checked before the final chunk is yielded, so a consumer never sees a complete,
    wrong blob (``verified_digest`` tells ``put_blob`` it need not hash again).  A dropped
    connection resumes with ``Range`` from the byte reached; a digest mismatch with nothing handed
    on yet re-reads from the start; otherwise it raises a retryable :class:`BlobVerificationError`
    and ``reopen()`` gives a fresh reader.
    """

    def __init__(self, client: RegistryClient, repo: str, digest: str, response: httpx.Response, size: int) -> None:
        self._client = client
        self._repo = repo
        self.digest = digest
        self.verified_digest = digest
        self.size = size
        self._response: httpx.Response | None = response
        self._started = False

    def reopen(self) -> RegistryBlobReader:
        """A new reader for the same blob, from the first byte."""
        self.close()
        return self._client.open_blob(self._repo, self.digest)

    def close(self) -> None:
        resp, self._response = self._response, None
        if resp is not None:
            resp.close()

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RegistryError("a blob reader can be read once", "use reopen() for a fresh reader")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        client, policy, size = self._client, self._client.retry, self.size
        expected_hex = self.digest.split(":", 1)[1]
        hasher = new_hasher(self.digest)
        taken = 0  # bytes received, in order (hashed or waiting in buf)
        handed = 0  # bytes already yielded
        buf: list[bytes] = []
        buffered = 0
        skip = 0  # bytes to drop when a server ignored our Range and restarted from 0
        failures = 0
        while True:
            resp = self._response
            if resp is None:
                raise RegistryError("blob reader is closed", "")
            try:
                for raw in resp.iter_raw():
                    if skip:
                        if len(raw) <= skip:
                            skip -= len(raw)
                            continue
                        raw = raw[skip:]
                        skip = 0
                    taken += len(raw)
                    if taken > size:
                        raise BlobVerificationError(
                            f"blob {self.digest[:19]} is longer than its {size} bytes", "the registry is inconsistent"
                        )
                    buf.append(raw)
                    buffered += len(raw)
                    if buffered >= CHUNK_SIZE and taken < size:
                        # handed on piece by piece: joining them would cost a copy of every byte
                        pieces = buf[:]
                        buf.clear()
                        buffered = 0
                        for piece in pieces:
                            hasher.update(piece)
                            handed += len(piece)
                            yield piece
                if taken < size:
                    raise httpx.RemoteProtocolError("body ended early")
            except httpx.TransportError as exc:
                failures += 1
                client.stats.add(resumed_reads=1)
                if failures >= policy.attempts or not is_retryable_transport_error(exc):
                    self.close()
                    raise BlobVerificationError(
                        f"reading blob {self.digest[:19]} from {client.host} failed after {taken} of {size} bytes "
                        f"({exc.__class__.__name__})",
                        "check the network and run again (finished layers are not sent again)",
                        # the reader already spent its budget resuming: an upload must not multiply it
                        retryable=False,
                    ) from exc
                policy.sleep(policy.backoff(failures - 1))
                self._resume(taken)
                if self._response is not None and self._response.status_code == 200:
                    skip = taken
                continue
            out = buf[0] if len(buf) == 1 else b"".join(buf)
            buf.clear()
            buffered = 0
            hasher.update(out)
            if hasher.hexdigest() == expected_hex:
                client.stats.add(bytes_downloaded=size)
                self.close()
                if out:
                    yield out
                return
            # Wrong bytes. Nothing handed on yet (small blob): read it again from the start.
            failures += 1
            if handed == 0 and failures < policy.attempts:
                log.debug("digest mismatch reading %s; reading it again", self.digest[:19])
                policy.sleep(policy.backoff(failures - 1))
                hasher = new_hasher(self.digest)
                taken = 0
                self._resume(0)
                continue
            self.close()
            raise BlobVerificationError(
                f"blob {self.digest[:19]} from {client.host} does not match its digest",
                "the download was corrupted; run again",
                retryable=True,
            )

    def _resume(self, start: int) -> None:
        """Re-open the download from byte ``start`` (``Range``)."""
        self.close()
        try:
            self._response = self._client._open_blob_response(self._repo, self.digest, start=start)
        except RegistryConnectionError as exc:
            raise BlobVerificationError(
                f"reading blob {self.digest[:19]} failed and could not be resumed ({exc.message})",
                exc.hint,
                retryable=True,
            ) from exc


__all__ = [
    "CHUNK_SIZE",
    "PROGRESS_STEP",
    "ClientStats",
    "RegistryBlobReader",
    "RegistryClient",
    "detect_media_type",
    "join_location",
    "parse_link_next",
    "with_query_param",
]

# Keep the Docker media-type names importable from here for callers that build manifests.
_ = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
