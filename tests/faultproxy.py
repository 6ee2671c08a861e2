"""A fault-injecting reverse proxy on loopback, for reliability tests (issue 7).

Sits between a client (the wizard) and a real upstream server (a Debian ``docker-registry``, or
``moto_server``), forwards every request, and injects faults on the requests a test picks::

    with FaultProxy(vendor.url, upstream_auth=vendor.auth) as proxy:
        proxy.add(Rule(Fault.reset(after=100_000), BLOB_GET, nth=(1, 3)))      # deterministic
        proxy.add(Rule(Fault.status(503), ANY, probability=0.1))              # seeded random
        ... point the client at proxy.url ...
        proxy.injected["reset"], proxy.download_bytes[digest], proxy.uploads_completed

Faults (:class:`Fault`): ``reset`` (TCP RST after N body bytes, of the response — or of the
request body for uploads), ``status`` (500/502/503 with a JSON error), ``retry_after`` (429 with
``Retry-After``), ``truncate`` (fewer bytes than ``Content-Length``, then FIN), ``slow`` (body in
small pieces with pauses), ``unauthorized`` (401 with the upstream's own ``WWW-Authenticate``, as
an expired token gets), ``delay`` (wait, then forward normally), ``drop`` (forward, then close
without an answer: the upstream did the work but the client never hears of it), ``slow_answer``
(forward, then wait before answering: a registry slow to commit an upload).

Also:

* ``redirect_blobs=True``: blob GETs answer ``307`` to a second "storage" listener that serves the
  blob (fetched from the upstream with ``upstream_auth``, ``Range`` honoured) but answers ``400`` to
  any request carrying an ``Authorization`` header, as S3 does for pre-signed URLs.
* credential translation (:meth:`FaultProxy.accept_only`): the proxy accepts only the given Basic
  credentials from the client and sends ``upstream_auth`` upstream; rotating the accepted set
  mid-run is a token expiry the client can only survive by calling ``refresh()``.
* counters: ``injected`` (per fault kind), ``download_bytes`` (blob body bytes sent to the client
  per digest), ``upload_bytes`` / ``uploads_completed`` (blob bytes forwarded upstream and ``201``
  answers per ``(repo, digest)``), ``log`` (one :class:`Record` per request, no secrets).
* bounded: every listener stops by itself after ``lifetime`` seconds (and at :meth:`stop`).

Only the standard library; binds 127.0.0.1 on free ports; nothing here imports the product.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_BLOB_RE = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>[a-z0-9]+:[a-fA-F0-9]+)$")
_UPLOAD_RE = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<session>[^/?]*)$")
_MANIFEST_RE = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")
_STORAGE_RE = re.compile(r"^/storage/(?P<digest>[a-z0-9]+:[a-fA-F0-9]+)$")
IO_CHUNK = 64 * 1024
MAX_CAPTURE = 256 * 1024


# ------------------------------------------------------------------------------------------------
# what to inject, and when
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault. Build with the class methods (``Fault.reset(after=1000)``, ``Fault.status(502)``...)."""

    kind: str
    status: int = 0
    after: int | None = None  # body bytes sent before a reset/truncate (None: half the body)
    retry_after: str = "1"
    delay: float = 0.0  # delay: before forwarding; slow: between pieces; slow_answer: before answering
    piece: int = 16 * 1024  # slow: bytes per piece

    KINDS = ("reset", "status", "retry_after", "truncate", "slow", "unauthorized", "delay", "drop", "slow_answer")

    @classmethod
    def reset(cls, after: int | None = None) -> Fault:
        return cls("reset", after=after)

    @classmethod
    def error(cls, code: int = 503) -> Fault:
        """An HTTP error answer (500/502/503...) with a registry-style JSON body."""
        return cls("status", status=code)

    @classmethod
    def too_many(cls, retry_after: str = "1") -> Fault:
        return cls("retry_after", status=429, retry_after=retry_after)

    @classmethod
    def truncate(cls, after: int | None = None) -> Fault:
        return cls("truncate", after=after)

    @classmethod
    def slow(cls, piece: int = 16 * 1024, delay: float = 0.02) -> Fault:
        return cls("slow", piece=piece, delay=delay)

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls("unauthorized", status=401)

    @classmethod
    def pause(cls, seconds: float) -> Fault:
        return cls("delay", delay=seconds)

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def slow_answer(cls, seconds: float) -> Fault:
        """Forward the request (body and all), then wait before answering: a slow commit."""
        return cls("slow_answer", delay=seconds)


@dataclass
class Request:
    """What a rule sees of a request."""

    listener: str  # "registry" | "storage"
    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]  # lower-case names

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


Match = Callable[[Request], bool]


def match(
    method: str | tuple[str, ...] | None = None,
    path: str | None = None,
    header: tuple[str, str] | None = None,
    listener: str | None = "registry",
) -> Match:
    """A request predicate: method(s), a regex searched in ``path?query``, a header regex, the listener."""
    methods = (method,) if isinstance(method, str) else method
    rx = re.compile(path) if path else None
    hname, hrx = (header[0].lower(), re.compile(header[1])) if header else (None, None)

    def pred(req: Request) -> bool:
        if listener is not None and req.listener != listener:
            return False
        if methods and req.method not in methods:
            return False
        if rx and not rx.search(req.target):
            return False
        return hname is None or hrx is None or bool(hrx.search(req.headers.get(hname, "")))

    return pred


ANY: Match = match(listener=None)
BLOB_GET: Match = match("GET", r"/blobs/sha256:", listener=None)  # registry GETs and storage GETs
REGISTRY_BLOB_GET: Match = match("GET", r"/blobs/sha256:")
MANIFEST: Match = match(("GET", "HEAD", "PUT"), r"/manifests/")
UPLOAD: Match = match(("POST", "PATCH", "PUT"), r"/blobs/uploads/")
UPLOAD_BODY: Match = match(("PATCH", "PUT"), r"/blobs/uploads/")
STORAGE: Match = match(listener="storage")


def for_repo(repo: str, inner: Match = ANY) -> Match:
    """``inner`` restricted to requests on repository ``repo`` (``/v2/<repo>/...``, or storage ``?repo=``)."""
    prefix = f"/v2/{repo}/"

    def pred(req: Request) -> bool:
        in_repo = req.path.startswith(prefix) or parse_qs(req.query).get("repo", [""])[0] == repo
        return in_repo and inner(req)

    return pred


def for_digests(digests: set[str] | frozenset[str], inner: Match = ANY) -> Match:
    """``inner`` restricted to blob requests (GET/HEAD, storage, upload PUT ``?digest=``) for ``digests``."""

    def pred(req: Request) -> bool:
        if not inner(req):
            return False
        m = _BLOB_RE.match(req.path) or _STORAGE_RE.match(req.path)
        if m:
            return m.group("digest") in digests
        return parse_qs(req.query).get("digest", [""])[0] in digests

    return pred


@dataclass
class Rule:
    """Inject ``fault`` (or one of ``faults``, picked by the seeded RNG) on matching requests.

    ``nth``: only the n-th matching requests (1-based); ``probability``: each (remaining) match
    fires with this chance; ``times``: at most this many injections (None: no limit).
    """

    fault: Fault | None = None
    when: Match = ANY
    nth: tuple[int, ...] | None = None
    probability: float = 1.0
    times: int | None = None
    faults: tuple[Fault, ...] = ()
    name: str = ""
    seen: int = 0
    fired: int = 0

    def choices(self) -> tuple[Fault, ...]:
        return self.faults or ((self.fault,) if self.fault else ())


def chaos_faults(body_bytes: int = 40_000) -> tuple[Fault, ...]:
    """A mixed bag for random schedules: every kind that a client must survive by retrying."""
    return (
        Fault.reset(after=body_bytes),
        Fault.reset(after=0),
        Fault.error(500),
        Fault.error(502),
        Fault.error(503),
        Fault.too_many("1"),
        Fault.truncate(after=body_bytes),
        Fault.slow(piece=32 * 1024, delay=0.01),
        Fault.drop(),
    )


# ------------------------------------------------------------------------------------------------
# bookkeeping
# ------------------------------------------------------------------------------------------------


@dataclass
class Record:
    """One request as the proxy saw it (no header values except a few harmless ones)."""

    seq: int
    t: float
    listener: str
    method: str
    target: str
    fault: str = ""
    status: int = 0  # what the client was told (0: no answer)
    upstream_status: int = 0
    bytes_in: int = 0  # request body bytes forwarded upstream
    bytes_out: int = 0  # response body bytes sent to the client
    range: str = ""
    has_auth: bool = False
    amz_target: str = ""


class _Stop(Exception):
    """The connection was cut on purpose; stop handling it."""


def _rst(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _fin(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------------------------------------
# the proxy
# ------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, proxy: FaultProxy, listener: str) -> None:
        self.proxy = proxy
        self.listener = listener
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: faults are expected
        self.proxy._errors += 1


class FaultProxy:
    """A reverse proxy for ``upstream`` (``http://127.0.0.1:PORT``) with scripted faults.

    ``upstream_auth``: the upstream's Basic credentials, used by the storage listener and by
    credential translation.  ``seed``: for probability rules.  ``lifetime``: seconds after which
    the listeners stop by themselves.  Thread-safe; use as a context manager or call :meth:`stop`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        upstream_auth: tuple[str, str] | None = None,
        seed: int = 0,
        lifetime: float = 600.0,
        redirect_blobs: bool = False,
        capture: Match | None = None,
    ) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.scheme != "http":
            raise ValueError("FaultProxy forwards to plain-HTTP upstreams only")
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_auth = upstream_auth
        self.redirect_blobs = redirect_blobs
        self.capture = capture
        self.rng = random.Random(seed)
        self.rules: list[Rule] = []
        self.lock = threading.RLock()
        self.log: list[Record] = []
        self.injected: Counter[str] = Counter()
        self.download_bytes: Counter[str] = Counter()
        self.upload_bytes: Counter[tuple[str, str]] = Counter()
        self.uploads_completed: Counter[tuple[str, str]] = Counter()
        self.storage_served: Counter[str] = Counter()
        self.storage_auth_rejected = 0
        self.rejected_credentials = 0
        self.captured: list[tuple[str, bytes, bytes]] = []  # (target, request body, response body)
        self.challenge = 'Basic realm="Registry Realm"'
        self._accepted: set[str] | None = None
        self._session_bytes: Counter[str] = Counter()
        self._seq = 0
        self._errors = 0
        self._stopped = threading.Event()
        self.registry = _Server(self, "registry")
        self.storage = _Server(self, "storage")
        self._threads = [
            threading.Thread(
                target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name=f"fp-{s.listener}"
            )
            for s in (self.registry, self.storage)
        ]
        for t in self._threads:
            t.start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.registry.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (a registry host as the wizard takes it)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.storage.server_address[1]}"

    # -- scripting -----------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (faults stop; counters stay)."""
        with self.lock:
            self.rules.clear()

    def chaos(self, probability: float, when: Match = ANY, faults: tuple[Fault, ...] | None = None) -> Rule:
        """A seeded random schedule: each matching request gets a random fault with ``probability``."""
        return self.add(Rule(when=when, probability=probability, faults=faults or chaos_faults(), name="chaos"))

    def accept_only(self, *credentials: tuple[str, str]) -> None:
        """Credential translation: accept only these Basic credentials from clients (others get
        401), and send ``upstream_auth`` upstream instead.  No argument: translation off."""
        with self.lock:
            self._accepted = {basic(u, p) for u, p in credentials} if credentials else None

    def _pick(self, req: Request) -> tuple[Fault | None, str]:
        with self.lock:
            for rule in self.rules:
                if not rule.when(req):
                    continue
                rule.seen += 1
                if rule.nth is not None and rule.seen not in rule.nth:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                    continue
                options = rule.choices()
                if not options:
                    continue
                fault = options[0] if len(options) == 1 else self.rng.choice(options)
                rule.fired += 1
                self.injected[fault.kind] += 1
                return fault, rule.name
            return None, ""

    def _record(self, req: Request) -> Record:
        with self.lock:
            self._seq += 1
            rec = Record(
                seq=self._seq,
                t=time.monotonic(),
                listener=req.listener,
                method=req.method,
                target=req.target,
                range=req.headers.get("range", ""),
                has_auth="authorization" in req.headers,
                amz_target=req.headers.get("x-amz-target", ""),
            )
            self.log.append(rec)
            return rec

    # -- queries for tests ---------------------------------------------------------------------
    def records(self, when: Callable[[Record], bool] | None = None) -> list[Record]:
        with self.lock:
            return [r for r in self.log if when is None or when(r)]

    def count(self, when: Callable[[Record], bool]) -> int:
        return len(self.records(when))

    def uploaded_digests(self, repo_prefix: str = "") -> set[str]:
        """Digests with at least one completed upload (``201``) into a repo under ``repo_prefix``."""
        with self.lock:
            return {d for (repo, d), n in self.uploads_completed.items() if n and repo.startswith(repo_prefix)}

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary (for failure messages)."""
        with self.lock:
            return {
                "requests": len(self.log),
                "injected": dict(self.injected),
                "storage_served": sum(self.storage_served.values()),
                "storage_auth_rejected": self.storage_auth_rejected,
                "rejected_credentials": self.rejected_credentials,
                "uploads_completed": sum(self.uploads_completed.values()),
            }

    # -- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._timer.cancel()
        for s in (self.registry, self.storage):
            with contextlib.suppress(Exception):
                s.shutdown()
            with contextlib.suppress(Exception):
                s.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultProxy({self.url} -> http://{self.upstream_host}:{self.upstream_port})"

    # -- upstream ------------------------------------------------------------------------------
    def _upstream(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # every method goes the same way
    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy

    def _request_body(self) -> Iterator[bytes]:
        """The request body as chunks (Content-Length or chunked), read lazily."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, IO_CHUNK))
                    if not data:
                        raise _Stop()
                    left -= len(data)
                    yield data
                self.rfile.readline(3)
            return
        left = int(self.headers.get("Content-Length", "0") or 0)
        while left > 0:
            data = self.rfile.read(min(left, IO_CHUNK))
            if not data:
                raise _Stop()
            left -= len(data)
            yield data

    def _has_body(self) -> bool:
        return (
            "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            or int(self.headers.get("Content-Length", "0") or 0) > 0
        )

    def _drain(self) -> None:
        for _ in self._request_body():
            pass

    def _reply(self, rec: Record, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response_only(status)
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        rec.status = status
        rec.bytes_out += len(body) if self.command != "HEAD" else 0

    def _error_body(self, status: int, code: str, message: str) -> bytes:
        return json.dumps({"errors": [{"code": code, "message": message, "detail": "injected by faultproxy"}]}).encode()

    def _cut(self, rst: bool = True) -> None:
        self.close_connection = True
        (_rst if rst else _fin)(self.connection)
        raise _Stop()

    # -- main ------------------------------------------------------------------------------------
    def _handle(self) -> None:
        try:
            self._handle_inner()
        except _Stop:
            self.close_connection = True
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.close()

    def _handle_inner(self) -> None:
        proxy = self.proxy
        parts = urlsplit(self.path)
        req = Request(
            listener=self.server.listener,
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        rec = proxy._record(req)
        fault, _rule = proxy._pick(req)
        rec.fault = fault.kind if fault else ""

        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind in ("status", "retry_after", "unauthorized"):
            self._drain()
            if fault.kind == "status":
                code = {500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}.get(fault.status, "UNKNOWN")
                self._reply(rec, fault.status, self._error_body(fault.status, code, "injected server error"))
            elif fault.kind == "retry_after":
                self._reply(
                    rec,
                    429,
                    self._error_body(429, "TOOMANYREQUESTS", "too many requests"),
                    {"Retry-After": fault.retry_after},
                )
            else:
                self._reply(
                    rec,
                    401,
                    self._error_body(401, "UNAUTHORIZED", "authentication required"),
                    {"WWW-Authenticate": proxy.challenge},
                )
            return

        if req.listener == "storage":
            self._storage(req, rec, fault)
            return

        # credential translation: only accepted Basic credentials pass; upstream gets the real ones
        out_headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if proxy._accepted is not None and "authorization" in req.headers:
            if req.headers["authorization"] not in proxy._accepted:
                with proxy.lock:
                    proxy.rejected_credentials += 1
                self._drain()
                self._reply(
                    rec,
                    401,
                    self._error_body(401, "UNAUTHORIZED", "authentication required"),
                    {"WWW-Authenticate": proxy.challenge},
                )
                return
            if proxy.upstream_auth:
                out_headers = {k: v for k, v in out_headers.items() if k.lower() != "authorization"}
                out_headers["Authorization"] = basic(*proxy.upstream_auth)

        blob = _BLOB_RE.match(req.path)
        if proxy.redirect_blobs and blob and req.method == "GET":
            if "authorization" not in req.headers and proxy.upstream_auth:
                self._drain()
                self._reply(
                    rec,
                    401,
                    self._error_body(401, "UNAUTHORIZED", "authentication required"),
                    {"WWW-Authenticate": proxy.challenge},
                )
                return
            location = (
                f"{proxy.storage_url}/storage/{blob.group('digest')}?repo={quote(blob.group('repo'), safe='')}"
                f"&X-Amz-Signature={proxy.rng.getrandbits(64):016x}"
            )
            self._reply(rec, 307, b"", {"Location": location})
            return

        self._forward(req, rec, fault, out_headers)

    # -- forwarding ------------------------------------------------------------------------------
    def _forward(self, req: Request, rec: Record, fault: Fault | None, headers: dict[str, str]) -> None:
        proxy = self.proxy
        upload = _UPLOAD_RE.match(req.path)
        digest_q = parse_qs(req.query).get("digest", [""])[0]
        session = upload.group("session") if upload else ""
        capture = proxy.capture is not None and proxy.capture(req)
        conn = proxy._upstream()
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            has_body = self._has_body()
            for k, v in headers.items():
                if has_body and k.lower() == "content-length" and "chunked" in req.headers.get("transfer-encoding", ""):
                    continue
                conn.putheader(k, v)
            chunked_out = has_body and "chunked" in req.headers.get("transfer-encoding", "").lower()
            if chunked_out:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            sent_body = bytearray() if capture else None
            limit = None
            if fault is not None and fault.kind == "reset" and has_body:
                length = int(req.headers.get("content-length", "0") or 0)
                limit = fault.after if fault.after is not None else length // 2
            for data in self._request_body():
                if limit is not None and rec.bytes_in + len(data) > limit:
                    part = data[: max(0, limit - rec.bytes_in)]
                    if part:
                        conn.send(part)
                        rec.bytes_in += len(part)
                        self._count_upload(session, len(part))
                    conn.close()
                    self._cut(rst=True)
                conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked_out else data)
                rec.bytes_in += len(data)
                if session:
                    self._count_upload(session, len(data))
                if sent_body is not None and len(sent_body) < MAX_CAPTURE:
                    sent_body += data
            if chunked_out:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            rec.upstream_status = resp.status
            if resp.status == 401 and resp.getheader("WWW-Authenticate"):
                proxy.challenge = str(resp.getheader("WWW-Authenticate"))
            if upload and self.command == "PUT" and digest_q:
                with proxy.lock:
                    n = proxy._session_bytes.pop(session, 0)
                    if n:
                        proxy.upload_bytes[(upload.group("repo"), digest_q)] += n
                    if resp.status == 201 and n:
                        proxy.uploads_completed[(upload.group("repo"), digest_q)] += 1
            if fault is not None and fault.kind == "drop":
                resp.read()
                self._cut(rst=False)
            if fault is not None and fault.kind == "slow_answer":
                time.sleep(fault.delay)
            self._relay(req, rec, resp, fault, capture, bytes(sent_body or b""))
        finally:
            conn.close()

    def _count_upload(self, session: str, n: int) -> None:
        with self.proxy.lock:
            self.proxy._session_bytes[session] += n

    def _relay(
        self,
        req: Request,
        rec: Record,
        resp: http.client.HTTPResponse,
        fault: Fault | None,
        capture: bool,
        sent_body: bytes,
    ) -> None:
        """Send the upstream's answer to the client, applying a body fault."""
        length_header = resp.getheader("Content-Length")
        head_only = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        if length_header is None and not head_only:
            body: bytes | None = resp.read()  # small (JSON errors); send with a length
        else:
            body = None
        total = len(body) if body is not None else int(length_header or 0)
        if fault is not None and fault.kind in ("reset", "truncate") and (head_only or total == 0):
            resp.read()
            self._cut(rst=fault.kind == "reset")  # no body to cut: the answer is lost instead
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or (body is not None and k.lower() == "content-length"):
                continue
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        rec.status = resp.status
        if head_only:
            return
        digest = ""
        m = _BLOB_RE.match(req.path) or _STORAGE_RE.match(req.path)
        if m and self.command == "GET" and 200 <= resp.status < 300:
            digest = m.group("digest")
        cut_at: int | None = None
        if fault is not None and fault.kind in ("reset", "truncate"):
            cut_at = fault.after if fault.after is not None else total // 2
            cut_at = min(cut_at, max(0, total - 1))
        captured = bytearray() if capture else None

        def chunks() -> Iterator[bytes]:
            if body is not None:
                yield body
                return
            while True:
                data = resp.read(IO_CHUNK)
                if not data:
                    return
                yield data

        sent = 0
        for data in chunks():
            if cut_at is not None and sent + len(data) > cut_at:
                part = data[: cut_at - sent]
                if part:
                    self._send(rec, part, digest)
                    sent += len(part)
                time.sleep(0.05)  # let the client read what it got before the cut
                self._cut(rst=fault is not None and fault.kind == "reset")
            if fault is not None and fault.kind == "slow":
                for i in range(0, len(data), fault.piece):
                    self._send(rec, data[i : i + fault.piece], digest)
                    time.sleep(fault.delay)
            else:
                self._send(rec, data, digest)
            sent += len(data)
            if captured is not None and len(captured) < MAX_CAPTURE:
                captured += data
        if captured is not None:
            with self.proxy.lock:
                self.proxy.captured.append((req.target, sent_body, bytes(captured)))

    def _send(self, rec: Record, data: bytes, digest: str) -> None:
        self.wfile.write(data)
        rec.bytes_out += len(data)
        if digest:
            with self.proxy.lock:
                self.proxy.download_bytes[digest] += len(data)

    # -- the storage listener ------------------------------------------------------------------------
    def _storage(self, req: Request, rec: Record, fault: Fault | None) -> None:
        proxy = self.proxy
        m = _STORAGE_RE.match(req.path)
        if not m or req.method not in ("GET", "HEAD"):
            self._drain()
            self._reply(rec, 404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"})
            return
        if "authorization" in req.headers:
            with proxy.lock:
                proxy.storage_auth_rejected += 1
            self._reply(
                rec,
                400,
                b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the "
                b"X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization "
                b"header should be specified</Message></Error>",
                {"Content-Type": "application/xml"},
            )
            return
        repo = parse_qs(req.query).get("repo", [""])[0]
        headers = {"Host": f"{proxy.upstream_host}:{proxy.upstream_port}"}
        if proxy.upstream_auth:
            headers["Authorization"] = basic(*proxy.upstream_auth)
        if "range" in req.headers:
            headers["Range"] = req.headers["range"]
        conn = proxy._upstream()
        try:
            conn.request(req.method, f"/v2/{repo}/blobs/{m.group('digest')}", headers=headers)
            resp = conn.getresponse()
            rec.upstream_status = resp.status
            if resp.status in (200, 206):
                with proxy.lock:
                    proxy.storage_served[m.group("digest")] += 1
            self._relay(req, rec, resp, fault, False, b"")
        finally:
            conn.close()


__all__ = [
    "ANY",
    "BLOB_GET",
    "MANIFEST",
    "REGISTRY_BLOB_GET",
    "STORAGE",
    "UPLOAD",
    "UPLOAD_BODY",
    "Fault",
    "FaultProxy",
    "Record",
    "Request",
    "Rule",
    "basic",
    "chaos_faults",
    "for_digests",
    "for_repo",
    "match",
]
