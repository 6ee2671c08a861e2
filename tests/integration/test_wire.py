"""The http.client wire under httpx (wizard/core/registry/wire.py), against real loopback sockets.

A small scripted HTTP/1.1 server (raw sockets, one thread per connection) plays the odd server
behaviours a registry, a proxy or a storage host shows in the field; the registry-level behaviour
over this transport is covered by test_registry_client.py and test_faults.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.testbed import make_self_signed_cert
from wizard.core.registry.client import RegistryClient
from wizard.core.registry.endpoint import RegistryEndpoint
from wizard.core.registry.wire import READ_SIZE, WireTransport

Handler = Callable[[socket.socket, bytes, bytes], bool]  # (conn, head, body) -> keep the connection open


class ScriptServer:
    """Accepts connections on 127.0.0.1; reads a request head (and a Content-Length body unless the
    route says not to) and lets the route answer. Counts connections and records requests."""

    def __init__(self, routes: dict[str, Handler], read_body: bool = True) -> None:
        self.routes = routes
        self.read_body = read_body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                route = self.routes[path.split("?")[0]]
                body = b""
                length = _header(head, b"content-length")
                if self.read_body and getattr(route, "reads_body", True):
                    if length is not None:
                        while len(buf) < int(length):
                            data = conn.recv(65536)
                            if not data:
                                return
                            buf += data
                        body, buf = buf[: int(length)], buf[int(length) :]
                    elif (_header(head, b"transfer-encoding") or b"").lower() == b"chunked":
                        body, buf = _read_chunked(conn, buf)
                self.requests.append((head, body))
                if not route(conn, head, body):
                    return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def _read_chunked(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        while b"\r\n" not in buf:
            buf += conn.recv(65536)
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line, 16)
        while len(buf) < size + 2:
            buf += conn.recv(65536)
        body, buf = body + buf[:size], buf[size + 2 :]
        if size == 0:
            return body, buf


def answer(status: str, body: bytes = b"", headers: str = "", keep: bool = True) -> Handler:
    def route(conn: socket.socket, head: bytes, _body: bytes) -> bool:
        extra = "" if keep else "Connection: close\r\n"
        conn.sendall(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}{headers}\r\n".encode() + body
            if head.split(b" ", 1)[0] != b"HEAD"
            else f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}{headers}\r\n".encode()
        )
        return keep

    return route


@pytest.fixture
def servers() -> Iterator[list[ScriptServer]]:
    started: list[ScriptServer] = []
    yield started
    for s in started:
        s.close()


def client(**kw: object) -> httpx.Client:
    return httpx.Client(transport=WireTransport(lambda: False), timeout=kw.pop("timeout", 5.0))  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection_and_bodies_arrive_whole(servers: list[ScriptServer]) -> None:
    big = bytes(range(256)) * (3 * READ_SIZE // 256 + 123)  # > 3 read pieces, not a multiple
    srv = ScriptServer({"/small": answer("200 OK", b"hello"), "/big": answer("200 OK", big)})
    servers.append(srv)
    with client() as c:
        assert c.get(f"{srv.url}/small").content == b"hello"
        with c.stream("GET", f"{srv.url}/big") as r:
            pieces = list(r.iter_raw())
        assert b"".join(pieces) == big
        assert max(len(p) for p in pieces) <= READ_SIZE
        assert c.head(f"{srv.url}/small").headers["content-length"] == "5"
        assert c.get(f"{srv.url}/small").content == b"hello"
    assert srv.connections == 1
    assert len(srv.requests) == 4


def test_request_bodies_with_length_and_chunked(servers: list[ScriptServer]) -> None:
    srv = ScriptServer({"/put": answer("201 Created")})
    servers.append(srv)
    data = [b"a" * 70000, b"", b"b" * 5, b"c" * 300000]
    with client() as c:
        r = c.put(f"{srv.url}/put", content=iter(data), headers={"Content-Length": str(sum(map(len, data)))})
        assert r.status_code == 201
        r = c.put(f"{srv.url}/put", content=iter(data))  # no length: chunked framing
        assert r.status_code == 201
    (h1, b1), (h2, b2) = srv.requests
    assert b1 == b2 == b"".join(data)
    assert _header(h1, b"transfer-encoding") is None
    assert _header(h2, b"transfer-encoding") == b"chunked"
    assert srv.connections == 1


def test_short_body_raises_protocol_error_and_is_not_reused(servers: list[ScriptServer]) -> None:
    def short(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 40000)
        return False  # then close: 60000 bytes never come

    srv = ScriptServer({"/short": short, "/ok": answer("200 OK", b"fine")})
    servers.append(srv)
    with client() as c:
        got = 0
        with (
            pytest.raises(httpx.RemoteProtocolError, match="60000 bytes missing"),
            c.stream("GET", f"{srv.url}/short") as r,
        ):
            for piece in r.iter_raw():
                got += len(piece)
        assert got == 40000  # every byte that did arrive was handed on (a resume can start there)
        assert c.get(f"{srv.url}/ok").content == b"fine"
    assert srv.connections == 2


def test_early_answer_beats_the_write_error(servers: list[ScriptServer]) -> None:
    """A server that answers 401 after the head and closes without reading the body: the caller
    sees the 401 (to refresh credentials), not a broken pipe."""

    def deny(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied")
        conn.shutdown(socket.SHUT_WR)
        return False

    deny.reads_body = False  # type: ignore[attr-defined]
    srv = ScriptServer({"/upload": deny})
    servers.append(srv)
    body = [b"z" * (1 << 20)] * 64  # 64 MiB: far more than the socket buffers take
    with client() as c:
        r = c.put(f"{srv.url}/upload", content=iter(body), headers={"Content-Length": str(64 << 20)})
    assert r.status_code == 401
    assert r.content == b"denied"


def test_body_iterator_errors_pass_through_untouched(servers: list[ScriptServer]) -> None:
    class DigestMismatch(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"x" * 1000
        raise DigestMismatch("bad blob")

    srv = ScriptServer({"/put": answer("201 Created"), "/ok": answer("200 OK", b"ok")}, read_body=False)
    servers.append(srv)
    with client() as c:
        with pytest.raises(DigestMismatch):
            c.put(f"{srv.url}/put", content=body(), headers={"Content-Length": "5000"})
        assert c.get(f"{srv.url}/ok").status_code == 200
    assert srv.connections == 2  # the half-sent connection was thrown away


def test_server_closed_idle_connection_is_not_reused(servers: list[ScriptServer]) -> None:
    srv = ScriptServer({"/once": answer("200 OK", b"one", keep=False), "/bye": answer("200 OK", b"two")})
    servers.append(srv)
    with client() as c:
        assert c.get(f"{srv.url}/once").content == b"one"  # Connection: close
        assert c.get(f"{srv.url}/bye").content == b"two"
        assert c.get(f"{srv.url}/bye").content == b"two"
    assert srv.connections == 2


def test_idle_connection_closed_by_the_server_is_noticed(servers: list[ScriptServer]) -> None:
    """A keep-alive connection the server dropped while it sat in the pool (its idle timeout) is
    replaced before use, not written to and failed."""

    def answer_then_hang_up(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # no "Connection: close"
        return False  # ... and then it closes

    srv = ScriptServer({"/ok": answer_then_hang_up})
    servers.append(srv)
    with client() as c:
        for _ in range(3):
            assert c.get(f"{srv.url}/ok").content == b"ok"
            time.sleep(0.1)  # the server's FIN arrives while the connection is idle in the pool
    assert srv.connections == 3


def test_unread_response_closes_its_connection(servers: list[ScriptServer]) -> None:
    srv = ScriptServer({"/big": answer("200 OK", b"y" * 500000), "/ok": answer("200 OK", b"ok")})
    servers.append(srv)
    with client() as c:
        with c.stream("GET", f"{srv.url}/big") as r:
            assert r.status_code == 200  # closed without reading the body
        assert c.get(f"{srv.url}/ok").content == b"ok"
        assert c.get(f"{srv.url}/ok").content == b"ok"
    assert srv.connections == 2


def test_chunked_response_is_read(servers: list[ScriptServer]) -> None:
    def chunked(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return True

    srv = ScriptServer({"/c": chunked})
    servers.append(srv)
    with client() as c:
        assert c.get(f"{srv.url}/c").content == b"hello world"
        assert c.get(f"{srv.url}/c").content == b"hello world"
    assert srv.connections == 1


def test_truncated_chunked_response_raises_protocol_error(servers: list[ScriptServer]) -> None:
    def cut(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        return False  # then close: no next chunk size, no last chunk

    srv = ScriptServer({"/cut": cut, "/ok": answer("200 OK", b"fine")})
    servers.append(srv)
    with client() as c:
        got = b""
        with (
            pytest.raises(httpx.RemoteProtocolError, match=r"without sending complete message body: 0 bytes read$"),
            c.stream("GET", f"{srv.url}/cut") as r,
        ):
            for piece in r.iter_raw():
                got += piece
        assert got == b"hello"
        assert c.get(f"{srv.url}/ok").content == b"fine"
    assert srv.connections == 2


def raw_answer(data: bytes, keep: bool = True) -> Handler:
    def route(conn: socket.socket, head: bytes, body: bytes) -> bool:
        conn.sendall(data)
        return keep

    return route


def test_response_heads_order_duplicates_folding_junk_and_continue(servers: list[ScriptServer]) -> None:
    """The transport's own head parser. Two deliberate differences from ``http.client``'s: a folded
    line is joined with one space (RFC 9112 §5.2), and a line that is not a header is skipped
    (the email parser would take it and every header after it as body)."""
    odd = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Dup: a\r\nx-dup: b\r\nX-Fold: one\r\n\t two\r\n"
        b'not a header line\r\n: no name\r\nWWW-Authenticate:  Bearer realm="r",service="s"  \r\n\r\nok'
    )
    srv = ScriptServer(
        {
            "/odd": raw_answer(odd),
            "/continue": raw_answer(
                b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
            ),
            "/nocontent": raw_answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
        }
    )
    servers.append(srv)
    with client() as c:
        r = c.get(f"{srv.url}/odd")
        assert r.content == b"ok"
        assert r.headers.get_list("x-dup") == ["a", "b"]
        assert r.headers["x-fold"] == "one two"
        assert r.headers["www-authenticate"] == 'Bearer realm="r",service="s"'
        assert [k for k, _ in r.headers.multi_items()] == [
            "content-length",
            "x-dup",
            "x-dup",
            "x-fold",
            "www-authenticate",
        ]
        r = c.put(f"{srv.url}/continue", content=b"x")
        assert r.status_code == 201 and "x-skip" not in r.headers
        assert c.get(f"{srv.url}/nocontent").status_code == 204  # no body, no length: still reusable
        assert c.get(f"{srv.url}/odd").content == b"ok"
    assert srv.connections == 1


def test_oversized_or_unframed_heads(servers: list[ScriptServer]) -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"Content-Length: 0\r\n\r\n"
    long_line = b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70000 + b"\r\nContent-Length: 0\r\n\r\n"
    srv = ScriptServer(
        {
            "/many": raw_answer(many),
            "/long": raw_answer(long_line),
            "/old": raw_answer(b"HTTP/1.0 200 OK\r\n\r\nto the end", keep=False),
            "/ok": answer("200 OK", b"ok"),
        }
    )
    servers.append(srv)
    with client() as c:
        with pytest.raises(httpx.RemoteProtocolError, match="more than 100 headers"):
            c.get(f"{srv.url}/many")
        with pytest.raises(httpx.RemoteProtocolError, match="LineTooLong"):
            c.get(f"{srv.url}/long")
        assert c.get(f"{srv.url}/old").content == b"to the end"  # HTTP/1.0, no length: read to close
        assert c.get(f"{srv.url}/ok").content == b"ok"
    assert srv.connections == 4  # none of the first three connections was reused


def test_registry_client_heads_share_a_connection_and_keep_no_cookies(servers: list[ScriptServer]) -> None:
    """HEAD answers (never read, only closed) give their connection back; registries need no
    cookies (docker and skopeo keep none), so a Set-Cookie is never sent back."""
    digest = "sha256:" + "ab" * 32
    cookie = "Set-Cookie: session=abc; Path=/\r\n"
    srv = ScriptServer({f"/v2/r/blobs/{digest}": answer("404 Not Found", headers=cookie)})
    servers.append(srv)
    with RegistryClient(RegistryEndpoint.parse(srv.url)) as reg:
        assert reg.has_blob("r", digest) is False
        assert reg.has_blob("r", digest) is False
    assert len(srv.requests) == 2
    assert srv.connections == 1
    assert all(_header(head, b"cookie") is None for head, _ in srv.requests)


def test_connect_refused_and_read_timeout_map_to_httpx_errors(servers: list[ScriptServer]) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with client() as c, pytest.raises(httpx.ConnectError) as refused:
        c.get(f"http://127.0.0.1:{port}/")
    assert isinstance(refused.value.__cause__, ConnectionRefusedError)

    def silent(conn: socket.socket, head: bytes, body: bytes) -> bool:
        threading.Event().wait(2)
        return False

    srv = ScriptServer({"/slow": silent})
    servers.append(srv)
    with client(timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        c.get(f"{srv.url}/slow")


def test_a_reused_connection_takes_each_request_s_timeout(servers: list[ScriptServer]) -> None:
    def silent(conn: socket.socket, head: bytes, body: bytes) -> bool:
        threading.Event().wait(10)
        return False

    srv = ScriptServer({"/ok": answer("200 OK", b"ok"), "/silent": silent})
    servers.append(srv)
    with client(timeout=8.0) as c:
        assert c.get(f"{srv.url}/ok").content == b"ok"  # opens the connection with an 8 s timeout
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get(f"{srv.url}/silent", timeout=0.3)  # same connection, from the pool
        assert time.monotonic() - started < 4  # 0.3 s, not the 8 s it was opened with
    assert srv.connections == 1


def test_tls_verified_with_the_ca_and_refused_without(tmp_path: Path, servers: list[ScriptServer]) -> None:
    cert, key = make_self_signed_cert(tmp_path, names=("127.0.0.1",))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    raw = socket.create_server(("127.0.0.1", 0))
    port = raw.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = raw.accept()
            except OSError:
                return
            try:
                tls = server_ctx.wrap_socket(conn, server_side=True)
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                tls.close()
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(transport=WireTransport(lambda: trusted)) as c:
            assert c.get(f"https://127.0.0.1:{port}/").content == b"secret"
        with (
            httpx.Client(transport=WireTransport(ssl.create_default_context)) as c,
            pytest.raises(httpx.ConnectError) as untrusted,
        ):
            c.get(f"https://127.0.0.1:{port}/")
        assert isinstance(untrusted.value.__cause__, ssl.SSLCertVerificationError)
    finally:
        raw.close()
