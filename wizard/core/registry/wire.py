"""An httpx transport on the standard library's ``http.client``: the byte path of blob copies.

httpx's default transport (httpcore + h11) is built for correctness over speed on bulk bodies:
h11 copies every 64 KiB socket read into its receive buffer, slices it out and compacts the
buffer again, and joins every request-body chunk with its framing before the send.  For a mirror
that moves gigabytes on two cores those copies (and the Python work per 64 KiB event) are a
large share of the client's CPU (see ``bench/README.md``).

:class:`WireTransport` keeps httpx as the client — requests, auth, retries, timeouts and error
mapping above it do not change — and replaces only the wire under it with ``http.client``, whose
``HTTPResponse.read1(n)`` fills one object of up to ``n`` bytes straight from the socket (one copy,
one socket read) and whose connection hands each request-body chunk to ``sendall`` as it is.
Response bodies are streamed in such pieces of up to :data:`READ_SIZE` bytes, with no re-chunking.

What it promises the layers above, as httpx's own transport does:

* failures come out as ``httpx.TransportError`` subclasses (``ConnectError``, ``ConnectTimeout``,
  ``ReadTimeout``, ``WriteError``, ``ReadError``, ``RemoteProtocolError``) with the original
  socket/ssl exception as ``__cause__``; exceptions raised by a request-body iterator (a blob
  that fails its digest) pass through untouched;
* a body shorter than its ``Content-Length`` raises ``RemoteProtocolError`` (``http.client`` on
  its own would just stop);
* a server that answers (say 401) and closes before the request body is fully sent: its answer
  is read and returned, not the write error;
* keep-alive connections are reused only after their response was read to the end, and are
  checked for a server-side close before reuse; anything unread or broken is closed.

Response heads are parsed by :class:`_Response`, not by ``http.client``'s own parser, which runs
the ``email`` package's feed parser over every header block: ~60 µs of a ~400 µs request, and a
mirror makes a few hundred small requests (HEADs, upload starts, mounts) whose cost is mostly this
per-request work.

Proxies are not handled here: a client configured with a proxy uses httpx's own transport.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

#: Bytes asked of the socket per response-body piece (matches the blob reader's chunk size).
READ_SIZE = 1 << 20

_DEFAULT_PORTS = {"http": 80, "https": 443}

_Key = tuple[str, str, int]


#: Limits on a response head, as ``http.client``'s own.
MAX_HEADER_LINE = 65536
MAX_HEADERS = 100


class _Headers:
    """A response's header fields, in order: the part of ``email.message.Message`` that
    ``http.client.HTTPResponse`` and this transport use (``get``, ``get_all``, ``items``)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self._fields:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        name = name.lower()
        found = [value for key, value in self._fields if key.lower() == name]
        return found or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)


def _read_header_fields(fp: Any) -> list[tuple[str, str]]:
    """Read header lines up to the blank line: ``(name, value)`` in order, obsolete line folding
    joined with a space, lines without a colon skipped."""
    fields: list[tuple[str, str]] = []
    lines = 0
    while True:
        line = fp.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return fields
        lines += 1
        if lines > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}".strip())
            continue
        name, colon, value = text.partition(":")
        if colon and name.strip():
            fields.append((name.strip(), value.strip()))


class _Response(http.client.HTTPResponse):
    """``http.client``'s response with a plain header parser (see the module notes); the framing
    rules after it (chunked, ``Content-Length``, bodiless statuses and HEAD, keep-alive) are the
    standard library's, restated."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            _read_header_fields(self.fp)  # a 100 Continue's own head
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _Headers(_read_header_fields(self.fp))  # type: ignore[assignment]
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")  # type: ignore[assignment]
        self.chunk_left = None  # type: ignore[attr-defined]
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                n = int(length)
            except ValueError:
                n = -1
            self.length = n if n >= 0 else None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


def _connection_dropped(sock: socket.socket | None) -> bool:
    """True when an idle keep-alive socket is unusable: closed by the server (readable = EOF or junk).

    ``poll``, not ``select``: it has no limit on descriptor numbers.
    """
    if sock is None:
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _read_error(exc: BaseException) -> httpx.TransportError:
    if isinstance(exc, socket.timeout | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, http.client.IncompleteRead):
        missing = "" if exc.expected is None else f", {exc.expected} more expected"
        return httpx.RemoteProtocolError(
            f"peer closed connection without sending complete message body: {len(exc.partial or b'')} bytes "
            f"read{missing}"
        )
    if isinstance(exc, http.client.RemoteDisconnected):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(f"{exc.__class__.__name__}: {exc}")
    return httpx.ReadError(f"{exc.__class__.__name__}: {exc}")


def _write_error(exc: BaseException) -> httpx.TransportError:
    """The httpx error for a failed send, with ``exc`` as its cause (it may be raised later, see ``_exchange``)."""
    err: httpx.TransportError
    if isinstance(exc, socket.timeout | TimeoutError):
        err = httpx.WriteTimeout(str(exc) or "timed out")
    else:
        err = httpx.WriteError(f"{exc.__class__.__name__}: {exc}")
    err.__cause__ = exc
    return err


def _connect_error(exc: BaseException) -> httpx.TransportError:
    if isinstance(exc, socket.timeout | TimeoutError):
        return httpx.ConnectTimeout(str(exc) or "timed out")
    return httpx.ConnectError(str(exc) or exc.__class__.__name__)


class _ResponseBody(httpx.SyncByteStream):
    """A response body read from ``http.client`` in pieces of up to :data:`READ_SIZE`; gives the connection
    back to the pool when read to the end, closes it otherwise."""

    def __init__(
        self, pool: WireTransport, key: _Key, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse
    ) -> None:
        self._pool = pool
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._resp = resp
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        resp = self._resp
        try:
            while True:
                try:
                    # read1: one socket read per piece, so bytes received before a reset are never lost
                    data = resp.read1(READ_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _read_error(exc) from exc
                if not data:
                    break
                yield data
        except BaseException:
            self._discard()
            raise
        if resp.length:  # http.client stops quietly at EOF; a short body is an error here
            self._discard()
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body: {resp.length} bytes missing"
            )
        self._complete = True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        resp = self._resp
        finished = self._complete or (resp.length == 0 and not resp.chunked)
        resp.close()
        if finished and not resp.will_close and conn.sock is not None:
            self._pool._release(self._key, conn)
        else:
            conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._resp.close()
        if conn is not None:
            conn.close()


class WireTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client`` with a keep-alive pool; thread-safe.

    ``ssl_context`` is called once, on the first ``https`` request (a plain-HTTP registry that never
    redirects to https storage never builds one).
    """

    def __init__(
        self,
        ssl_context: Callable[[], ssl.SSLContext | bool],
        *,
        max_idle_per_host: int = 16,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self._max_idle = max_idle_per_host
        self._expiry = keepalive_expiry
        self._idle: dict[_Key, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- pool -----------------------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                ctx = self._ssl_factory()
                if ctx is False:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                elif ctx is True:
                    ctx = ssl.create_default_context()
                assert isinstance(ctx, ssl.SSLContext)
                self._ssl = ctx
            return self._ssl

    def _checkout(self, key: _Key) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        stale: list[http.client.HTTPConnection] = []
        found: http.client.HTTPConnection | None = None
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn, since = idle.pop()
                if now - since > self._expiry:
                    stale.append(conn)
                    continue
                found = conn
                break
        for conn in stale:
            conn.close()
        if found is not None and _connection_dropped(found.sock):
            found.close()
            return self._checkout(key)
        return found

    def _release(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append((conn, time.monotonic()))
                    return
        conn.close()

    def _connect(
        self, key: _Key, connect_timeout: float | None, io_timeout: float | None
    ) -> http.client.HTTPConnection:
        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        conn.response_class = _Response
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise _connect_error(exc) from exc
        assert conn.sock is not None
        conn.sock.settimeout(io_timeout)
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()

    # -- one request ----------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
        key: _Key = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        io_timeout = timeouts.get("read")
        conn = self._checkout(key)
        if conn is None:
            conn = self._connect(key, timeouts.get("connect"), io_timeout)
        elif conn.sock is not None:
            conn.sock.settimeout(io_timeout)  # this request's timeout, not the one it was opened with
        try:
            resp = self._exchange(conn, request)
        except BaseException:
            conn.close()
            raise
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.getheaders()]
        return httpx.Response(
            resp.status,
            headers=headers,
            stream=_ResponseBody(self, key, conn, resp),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": resp.reason.encode("latin-1", "replace")},
        )

    def _exchange(self, conn: http.client.HTTPConnection, request: httpx.Request) -> http.client.HTTPResponse:
        """Send ``request`` on ``conn`` and read the answer's status line and headers."""
        chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
        write_failure: httpx.TransportError | None = None
        try:
            conn.putrequest(
                request.method, request.url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.raw:
                conn.putheader(name, value)
            conn.endheaders()
        except OSError as exc:
            write_failure = _write_error(exc)
        if write_failure is None:
            sock = conn.sock
            assert sock is not None
            # Exceptions of the body iterator itself (a blob failing its digest) pass through as they are.
            for chunk in request.stream:
                if not chunk:
                    continue
                try:
                    if chunked:
                        sock.sendall(b"%x\r\n" % len(chunk))
                        sock.sendall(chunk)
                        sock.sendall(b"\r\n")
                    else:
                        sock.sendall(chunk)
                except OSError as exc:
                    write_failure = _write_error(exc)
                    break
            if write_failure is None and chunked:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except OSError as exc:
                    write_failure = _write_error(exc)
        try:
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            # A server may answer early (401, 413) and close before reading the whole body: its
            # answer is what matters. Without one, the write failure is the error to report.
            if write_failure is not None:
                raise write_failure from write_failure.__cause__
            raise _read_error(exc) from exc


__all__ = ["READ_SIZE", "WireTransport"]
