"""The registry client against real Debian ``docker-registry`` (distribution 2.8) on loopback.

Independent oracle: ``skopeo inspect --raw`` (sha256 of the bytes skopeo reads).  Faults are
injected by a small reverse proxy in this file; Bearer auth uses distribution's real ``token``
auth with a tiny JWT token server started here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import imagegen
from tests.conftest import TARGET_USER, SeededVendor
from tests.testbed import Registry, make_self_signed_cert, skopeo_digest
from wizard.core.credentials import Credential, StaticCredentials
from wizard.core.errors import RegistryError
from wizard.core.registry import (
    BlobVerificationError,
    RegistryAuthError,
    RegistryClient,
    RegistryConnectionError,
    RegistryEndpoint,
    RegistryHTTPError,
    RetryPolicy,
)
from wizard.core.settings import Settings
from wizard.core.transports.base import INDEX_TYPES, BlobReader, Manifest
from wizard.core.transports.registry import RegistryTransport

FAST = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05, max_retry_after=2.0)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def client_for(
    reg: Registry | str,
    credentials: Any = None,
    *,
    retry: RetryPolicy = FAST,
    ca_file: Path | None = None,
    role: str = "target",
) -> RegistryClient:
    """A client for a testbed registry (its URL) or an address (``http://`` = plain HTTP)."""
    spec = reg.url if isinstance(reg, Registry) else reg
    return RegistryClient(RegistryEndpoint.parse(spec, ca_file=ca_file, role=role), credentials, retry=retry)


class BytesReader(BlobReader):
    """A blob from memory, handed on in ``chunk`` pieces."""

    def __init__(self, data: bytes, chunk: int = 1 << 20) -> None:
        self.data, self.chunk, self.size = data, chunk, len(data)

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            yield self.data[i : i + self.chunk]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(client: RegistryClient, repo: str, tag: str, image: imagegen.Image) -> str:
    """Blobs, children by digest, then the top manifest under ``tag`` — with our client."""
    for sub in image.walk():
        for blob in sub.blobs:
            if not client.has_blob(repo, blob.digest):
                client.put_blob(repo, blob.digest, blob.size, BytesReader(blob.data), None)
        reference = tag if sub is image else sub.digest
        client.put_manifest(repo, reference, Manifest(sub.raw, sub.media_type))
    return image.digest


def copy_image(
    src: RegistryClient,
    src_repo: str,
    dst: RegistryClient,
    dst_repo: str,
    reference: str,
    *,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> str:
    """What the mirror engine does, minimally: blobs in parallel, children, then the top manifest."""
    top = src.get_manifest(src_repo, reference)
    manifests: list[tuple[str, Manifest]] = []
    blobs: dict[str, int] = {}

    def walk(m: Manifest, ref: str) -> None:
        doc = json.loads(m.raw)
        if m.media_type in INDEX_TYPES:
            for d in doc["manifests"]:
                walk(src.get_manifest(src_repo, d["digest"]), d["digest"])
        else:
            for d in [doc["config"], *doc["layers"]]:
                blobs[d["digest"]] = d["size"]
        manifests.append((ref, m))

    walk(top, reference)

    def copy_blob(item: tuple[str, int]) -> None:
        digest, size = item
        if dst.has_blob(dst_repo, digest):
            return
        with src.open_blob(src_repo, digest) as reader:
            dst.put_blob(dst_repo, digest, size, reader, progress)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy_blob, sorted(blobs.items(), key=lambda kv: -kv[1])))
    digest = ""
    for ref, m in manifests:
        digest = dst.put_manifest(dst_repo, ref, m)
    return digest


def uploads_left(reg: Registry, repo: str) -> list[str]:
    """Upload sessions still open in the registry's storage for ``repo``.

    distribution 2.8 answers DELETE by removing a session's ``data`` and ``startedat`` (the
    folder itself stays until its purge job), so an open session is one with ``startedat``.
    """
    d = reg.storage / "docker/registry/v2/repositories" / repo / "_uploads"
    return sorted(p.name for p in d.iterdir() if (p / "startedat").exists()) if d.is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConfiguredRegistry(Registry):
    """A testbed registry with extra ``http:`` lines and/or an ``auth:`` block in its config."""

    def __init__(self, *, http_lines: tuple[str, ...] = (), auth_lines: tuple[str, ...] = (), **kw: Any) -> None:
        self._http_lines, self._auth_lines = http_lines, auth_lines
        super().__init__(**kw)

    def _write_config(self) -> None:
        super()._write_config()
        path = self.workdir / "config.yml"
        lines = path.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("  secret:")) + 1
        lines[at:at] = [f"  {x}" for x in self._http_lines]
        if self._auth_lines:
            lines += ["auth:", *(f"  {x}" for x in self._auth_lines)]
        path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# fault-injecting reverse proxy
# --------------------------------------------------------------------------------------------


@dataclass
class Rule:
    """Apply ``action`` to the next ``times`` requests matching ``method`` and ``path`` (regex)."""

    method: str
    path: str
    action: str  # 503 | 429 | reset | truncate | corrupt | strip-digest | redirect
    times: int = 1
    fired: int = 0
    extra: dict[str, str] = field(default_factory=dict)


class FaultProxy:
    """HTTP/1.1 reverse proxy to a registry that misbehaves on purpose, per :class:`Rule`."""

    def __init__(self, upstream: Registry, rules: list[Rule] | None = None) -> None:
        self.upstream = upstream
        self.rules = list(rules or [])
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str, bool]] = []  # method, path, action, had Authorization
        self.ranges: list[tuple[str, str]] = []  # path, Range header
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def finish(self) -> None:
                with contextlib.suppress(OSError):
                    super().finish()

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy.match(self.command, self.path)
                action = rule.action if rule else ""
                if len(body) < length:  # the client stopped mid-body: never forward a short body
                    action = "short-body"
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, action, "Authorization" in self.headers))
                    if self.headers.get("Range"):
                        proxy.ranges.append((self.path, self.headers["Range"]))
                if action in ("reset", "short-body"):
                    return self._reset()
                if action in ("503", "429"):
                    payload = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                    self.send_response(int(action))
                    if action == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return None
                if action == "redirect":
                    self.send_response(307)
                    self.send_header("Location", rule.extra["location"] if rule else "")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port, timeout=30)
                hop = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                conn.request(self.command, self.path, body=body if length else None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action == "corrupt" and data:
                    data = data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    lk = k.lower()
                    if lk in hop or lk in ("date", "server", "content-length"):
                        continue
                    if action == "strip-digest" and lk == "docker-content-digest":
                        continue
                    self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                    self.end_headers()
                    return None
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    return self._reset()
                self.wfile.write(data)
                return None

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def match(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.fired < rule.times and rule.method == method and re.search(rule.path, path):
                    rule.fired += 1
                    return rule
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxies() -> Iterator[list[FaultProxy]]:
    made: list[FaultProxy] = []
    yield made
    for p in made:
        p.close()


# --------------------------------------------------------------------------------------------
# anonymous round trips, digests, pagination, mounts
# --------------------------------------------------------------------------------------------


def test_anonymous_blob_and_manifest_round_trip(fresh_registry: Registry) -> None:
    img = imagegen.build_single("api", "rt", image_size=3 << 20, seed="roundtrip")
    repo = "rt/api"
    progress: list[int] = []
    with client_for(fresh_registry) as c:
        assert c.resolve(repo, "v1") is None
        for blob in img.blobs:
            assert not c.has_blob(repo, blob.digest)
            c.put_blob(repo, blob.digest, blob.size, BytesReader(blob.data, chunk=300_000), progress.append)
            assert c.has_blob(repo, blob.digest)
        digest = c.put_manifest(repo, "v1", Manifest(img.raw, img.media_type))
        assert digest == img.digest
        desc = c.resolve(repo, "v1")
        assert desc is not None and desc.digest == img.digest and desc.size == len(img.raw)
        assert desc.media_type == img.media_type
        got = c.get_manifest(repo, "v1")
        assert got.raw == img.raw and got.media_type == img.media_type
        assert c.get_manifest(repo, img.digest).raw == img.raw
        big = max(img.blobs, key=lambda b: b.size)
        with c.open_blob(repo, big.digest) as reader:
            chunks = list(reader)
        assert b"".join(chunks) == big.data and reader.size == big.size
        # pieces are handed on as the socket delivers them (never joined: that would copy every byte),
        # each up to the 1 MiB read size; only the held-back tail (checked against the digest before it
        # is handed on) is joined, so no chunk reaches 2 MiB. How large pieces get depends on timing.
        assert max((len(x) for x in chunks[:-1]), default=0) <= 1 << 20
        assert len(chunks[-1]) < 2 << 20
        assert c.list_tags(repo) == ["v1"]
        assert c.list_tags("rt/none") == []
        with pytest.raises(RegistryHTTPError, match="not found") as err:
            c.get_manifest(repo, "nope")
        assert err.value.status == 404 and "MANIFEST_UNKNOWN" in err.value.codes
    # progress is coalesced (≥ 1 MiB per call except a blob's last) and sums to the bytes sent
    assert sum(progress) == sum(b.size for b in img.blobs)
    assert len(progress) <= sum(b.size // (1 << 20) + 1 for b in img.blobs)
    assert skopeo_digest(f"{fresh_registry.host}/{repo}:v1") == img.digest


def test_list_tags_follows_pagination(fresh_registry: Registry) -> None:
    img = imagegen.build_single("scheduler", "pg", image_size=4096, seed="pages")
    tags = [f"t{i}" for i in range(5)]
    with client_for(fresh_registry) as c:
        push_image(c, "pg/s", tags[0], img)
        for t in tags[1:]:
            c.put_manifest("pg/s", t, Manifest(img.raw, img.media_type))
        assert sorted(c.list_tags("pg/s", page_size=2)) == tags
        assert c.stats.requests > 0


def test_mount_201_and_fallback_202(fresh_registry: Registry) -> None:
    data = b"shared layer " * 5000
    digest = sha(data)
    with client_for(fresh_registry) as c:
        c.put_blob("m/a", digest, len(data), BytesReader(data), None)
        assert c.mount_blob("m/b", digest, "m/a") is True
        assert c.has_blob("m/b", digest)
        # The source repository lacks the blob: the registry opens an upload (202), which we cancel.
        assert c.mount_blob("m/c", digest, "m/empty") is False
        assert not c.has_blob("m/c", digest)
    assert uploads_left(fresh_registry, "m/c") == []
    status, _, _ = fresh_registry.request("POST", "/v2/m/c/blobs/uploads/")
    assert status == 202 and len(uploads_left(fresh_registry, "m/c")) == 1  # the check can see a session


def test_manifest_list_and_oci_index_with_attestations_keep_digests(
    seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    tag = seeded_vendor.tags[0]
    docker_list = imagegen.build_index("director", tag, fmt="docker", attestations=False, seed="dlist")
    with (
        client_for(seeded_vendor.registry, StaticCredentials(Credential(*seeded_vendor.auth)), role="source") as src,
        client_for(fresh_registry) as dst,
    ):
        push_image(src, "extra/director-list", tag, docker_list)
        copies = {
            "api": (seeded_vendor.repo("api"), "mirror/api"),  # OCI index with attestations
            "webhooks": (seeded_vendor.repo("webhooks"), "mirror/webhooks"),  # OCI manifest
            "writer": (seeded_vendor.repo("writer"), "mirror/writer"),  # Docker v2 manifest
            "list": ("extra/director-list", "mirror/director-list"),  # Docker manifest list
        }
        with ThreadPoolExecutor(4) as pool:  # one client shared by several threads
            futures = {k: pool.submit(copy_image, src, s, dst, d, tag) for k, (s, d) in copies.items()}
            results = {k: f.result() for k, f in futures.items()}
        index = dst.get_manifest("mirror/api", tag)
        assert index.media_type == imagegen.OCI_INDEX
        kinds = [m.get("annotations", {}).get("vnd.docker.reference.type") for m in json.loads(index.raw)["manifests"]]
        assert kinds.count("attestation-manifest") == 2
    expected = {
        "api": seeded_vendor.digests[tag]["api"],
        "webhooks": seeded_vendor.digests[tag]["webhooks"],
        "writer": seeded_vendor.digests[tag]["writer"],
        "list": docker_list.digest,
    }
    assert results == expected
    for key, (_, dst_repo) in copies.items():
        assert skopeo_digest(f"{fresh_registry.host}/{dst_repo}:{tag}") == expected[key], key
    # every child of the index arrived under its own digest
    for child in seeded_vendor.images[tag]["api"].children:
        assert skopeo_digest(f"{fresh_registry.host}/mirror/api@{child.digest}") == child.digest


def test_registry_transport_for_host(seeded_vendor: SeededVendor, fresh_registry: Registry) -> None:
    settings = Settings(source_registry=f"http://{seeded_vendor.host}", insecure_registries=(fresh_registry.host,))
    src = RegistryTransport.for_host(
        settings.vendor_registry, settings, StaticCredentials(Credential(*seeded_vendor.auth))
    )
    dst = RegistryTransport.for_host(fresh_registry.host, settings, None)
    try:
        assert src.endpoint.role == "source" and dst.endpoint.role == "target"
        assert dst.endpoint.scheme == "http" and dst.warnings and "plain HTTP" in dst.warnings[0]
        tag = seeded_vendor.tags[1]
        desc = src.resolve(seeded_vendor.repo("scheduler"), tag)
        assert desc is not None and desc.digest == seeded_vendor.digests[tag]["scheduler"]
        assert src.list_tags(seeded_vendor.repo("scheduler")) == sorted(seeded_vendor.tags)
    finally:
        src.close()
        dst.close()


def test_relative_upload_locations(tmp_path: Path) -> None:
    reg = ConfiguredRegistry(http_lines=("relativeurls: true",), workdir=tmp_path / "rel")
    try:
        data = b"relative" * 40000
        with client_for(reg) as c:
            status, headers, _ = reg.request("POST", "/v2/r/x/blobs/uploads/")
            assert status == 202 and headers["Location"].startswith("/v2/")  # the registry really is relative
            c.put_blob("r/x", sha(data), len(data), BytesReader(data), None)
            with c.open_blob("r/x", sha(data)) as r:
                assert b"".join(r) == data
    finally:
        reg.stop()


# --------------------------------------------------------------------------------------------
# integrity
# --------------------------------------------------------------------------------------------


class LyingReader(BytesReader):
    """Claims its bytes were verified as ``digest`` (like a registry reader) when they were not."""

    def __init__(self, data: bytes, digest: str) -> None:
        super().__init__(data)
        self.verified_digest = digest


def test_wrong_digest_is_aborted_and_reported(fresh_registry: Registry, proxies: list[FaultProxy]) -> None:
    data = b"payload" * 200_000  # 1.4 MB: two chunks
    wrong = sha(data + b"x")
    sent: list[int] = []
    observer = FaultProxy(fresh_registry)  # no faults: it records what reaches the registry
    proxies.append(observer)
    with client_for(f"http://{observer.host}") as c:
        # Client-side check: the hash is compared before the last chunk leaves, then the session is cancelled.
        with pytest.raises(BlobVerificationError, match="does not match its digest"):
            c.put_blob("dg/a", wrong, len(data), BytesReader(data), sent.append)
        assert not c.has_blob("dg/a", wrong)
        assert sum(sent) == 0  # progress taken back
        # Size check before anything is sent.
        with pytest.raises(BlobVerificationError, match="descriptor says"):
            c.put_blob("dg/a", sha(data), len(data) + 1, BytesReader(data), None)
        # Server-side check when the reader vouches for bytes it did not verify: 400 DIGEST_INVALID.
        with pytest.raises(RegistryHTTPError) as err:
            c.put_blob("dg/b", wrong, len(data), LyingReader(data, wrong), None)
        assert err.value.status == 400 and "DIGEST_INVALID" in err.value.codes
        assert "digest" in err.value.hint
        assert not c.has_blob("dg/b", wrong)
    calls = [(m, urlsplit(p).path, a) for m, p, a, _ in observer.seen if "/dg/a/" in p]
    puts = [(path, a) for m, path, a in calls if m == "PUT"]
    assert len(puts) == 1 and puts[0][1] == "short-body"  # the last chunk never left the client
    assert ("DELETE", puts[0][0], "") in calls  # and the session was cancelled
    # (distribution 2.8 refuses that DELETE once part of a body was written — its upload state no
    # longer matches — and purges the session itself later; a session with no bytes is removed:
    # see test_mount_201_and_fallback_202.)


# --------------------------------------------------------------------------------------------
# basic auth, refresh, TLS, connection errors
# --------------------------------------------------------------------------------------------


def test_basic_auth_good_and_wrong_password(auth_registry: Registry) -> None:
    data = b"basic-auth blob" * 1000
    with client_for(auth_registry, StaticCredentials(Credential(*TARGET_USER))) as c:
        c.put_blob("ba/x", sha(data), len(data), BytesReader(data), None)
        assert c.has_blob("ba/x", sha(data))
    with client_for(auth_registry, StaticCredentials(Credential(TARGET_USER[0], "wrong-password"))) as c:
        with pytest.raises(RegistryAuthError) as err:
            c.has_blob("ba/x", sha(data))
        assert "refused the credentials" in err.value.message
        assert "--target-username" in err.value.hint
        assert "wrong-password" not in str(err.value)
    with client_for(auth_registry, None) as c:
        with pytest.raises(RegistryAuthError, match="requires a login") as err:
            c.resolve("ba/x", "latest")
        assert "--target-password-stdin" in err.value.hint


class FlakyProvider:
    """First credential is wrong; ``refresh()`` gives the right one. Counts calls."""

    def __init__(self, user: str, good: str, refresh_is_good: bool = True) -> None:
        self.user, self.good, self.refresh_is_good = user, good, refresh_is_good
        self.gets = 0
        self.refresh_calls = 0
        self._lock = threading.Lock()

    def get(self) -> Credential:
        with self._lock:
            self.gets += 1
        return Credential(self.user, "expired-token")

    def refresh(self) -> Credential:
        with self._lock:
            self.refresh_calls += 1
        time.sleep(0.05)  # let other threads pile up on the same stale credential
        return Credential(self.user, self.good if self.refresh_is_good else "still-wrong")


def test_refresh_called_once_on_401_even_from_many_threads(auth_registry: Registry) -> None:
    provider = FlakyProvider(*TARGET_USER)
    blobs = [f"refresh blob {i}".encode() * 500 for i in range(8)]
    with client_for(auth_registry, provider) as c:
        c.ping()  # learns the Basic challenge
        barrier = threading.Barrier(8)

        def push(data: bytes) -> bool:
            barrier.wait()
            c.put_blob("rf/x", sha(data), len(data), BytesReader(data), None)
            return c.has_blob("rf/x", sha(data))

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(push, blobs))
        assert c.refreshes == 1
    assert provider.refresh_calls == 1

    hopeless = FlakyProvider(*TARGET_USER, refresh_is_good=False)
    with client_for(auth_registry, hopeless) as c, pytest.raises(RegistryAuthError):
        c.resolve("rf/x", "latest")
    assert hopeless.refresh_calls == 1  # exactly one refresh per request, then a clear error


def test_source_role_wording(auth_registry: Registry) -> None:
    with (
        client_for(auth_registry, StaticCredentials(Credential("AWS", "stale")), role="source") as c,
        pytest.raises(RegistryAuthError) as err,
    ):
        c.resolve("currents/on-prem/api", "staging")
    assert "vendor registry" in err.value.message and "auth step" in err.value.hint


def test_tls_with_and_without_ca(tls_registry: Registry) -> None:
    assert tls_registry.ca_file is not None
    data = b"over tls" * 1000
    with client_for(tls_registry.host, ca_file=tls_registry.ca_file) as c:
        assert c.base_url.startswith("https://")
        c.ping()
        c.put_blob("tls/x", sha(data), len(data), BytesReader(data), None)
        assert c.has_blob("tls/x", sha(data))
    with client_for(tls_registry.host) as c, pytest.raises(RegistryConnectionError) as err:
        c.ping()
    assert "not trusted" in err.value.message and "--ca-file" in err.value.hint
    assert err.value.retryable is False
    # Plain HTTP against a TLS registry is a protocol error, not a hang.
    with client_for(f"http://{tls_registry.host}", retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(RegistryConnectionError) as err:
            c.ping()
        assert "speaks HTTPS" in err.value.message


def test_https_to_plain_http_registry_and_refused_port(target_registry: Registry) -> None:
    with client_for(target_registry.host) as c, pytest.raises(RegistryConnectionError) as err:
        c.ping()
    assert "plain-HTTP" in err.value.message and f"http://{target_registry.host}" in err.value.hint
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with client_for(f"http://{dead}", retry=RetryPolicy(attempts=3, base_delay=0.01)) as c:
        with pytest.raises(RegistryConnectionError) as err:
            c.resolve("x/y", "latest")
        assert c.stats.retries == 2  # the budget was used, then a clear error
    assert "connection refused" in err.value.message and f"running at {dead}" in err.value.hint
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------------------------
# Bearer token flow against distribution's real token auth
# --------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs (x5c header) that distribution 2.8's ``token`` auth accepts."""

    ISSUER = "wizard-test-issuer"
    SERVICE = "wizard-test-registry"

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        self.cert_file, key_file = make_self_signed_cert(workdir, names=("token-issuer",))
        self._key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.user, self.password = user, password
        self.requests: list[tuple[tuple[str, ...], bool]] = []  # scopes, authorised
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                scopes = tuple(query.get("scope", []))
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                ok = auth == expected and query.get("service") == [TokenServer.SERVICE]
                server_self.requests.append((scopes, ok))
                if not ok:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": server_self.token(scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def token(self, scopes: tuple[str, ...]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":") if scope.count(":") == 2 else ("", "", "")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.ISSUER,
            "sub": self.user,
            "aud": self.SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    pytest.importorskip("cryptography")
    tokens = TokenServer(tmp_path / "issuer", "robot", "s3cret-token-pass")
    reg = ConfiguredRegistry(
        auth_lines=(
            "token:",
            f"  realm: {tokens.realm}",
            f"  service: {TokenServer.SERVICE}",
            f"  issuer: {TokenServer.ISSUER}",
            f"  rootcertbundle: {tokens.cert_file}",
        ),
        workdir=tmp_path / "registry",
    )
    try:
        yield reg, tokens
    finally:
        reg.stop()
        tokens.close()


def test_bearer_token_flow_with_scopes_cache_and_refresh(token_registry: tuple[Registry, TokenServer]) -> None:
    reg, tokens = token_registry
    status, headers, _ = reg.request("GET", "/v2/")
    assert status == 401 and headers["Www-Authenticate"].startswith("Bearer ")  # really token auth
    img = imagegen.build_single("writer", "tk", image_size=64 * 1024, seed="bearer")
    provider = FlakyProvider("robot", "s3cret-token-pass")  # first password wrong: one refresh
    with client_for(reg, provider) as c:
        push_image(c, "tk/writer", "v1", img)
        assert c.get_manifest("tk/writer", "v1").raw == img.raw
        assert c.mount_blob("tk/other", img.blobs[1].digest, "tk/writer") is True
        assert c.list_tags("tk/writer") == ["v1"]
        fetches = c.stats.token_fetches
    assert provider.refresh_calls == 1
    granted = [scopes for scopes, ok in tokens.requests if ok]
    assert ("repository:tk/writer:pull,push",) in granted
    assert ("repository:tk/other:pull,push", "repository:tk/writer:pull") in granted  # the mount's two scopes
    # tokens are cached per scope: a handful of fetches for ~15 requests
    assert len(set(granted)) == len(granted) and fetches <= 5
    assert skopeo_digest(f"{reg.host}/tk/writer:v1", creds=("robot", "s3cret-token-pass")) == img.digest

    with client_for(reg, StaticCredentials(Credential("robot", "nope"))) as c, pytest.raises(RegistryAuthError):
        c.resolve("tk/writer", "v1")
    with client_for(reg, None) as c, pytest.raises(RegistryAuthError, match="requires a login"):
        c.resolve("tk/writer", "v1")


# --------------------------------------------------------------------------------------------
# resilience: a proxy that injects 503, 429 + Retry-After, resets, truncation, corruption
# --------------------------------------------------------------------------------------------


def test_copy_survives_injected_faults(registry_factory: Callable[..., Registry], proxies: list[FaultProxy]) -> None:
    source, target = registry_factory(), registry_factory()
    img = imagegen.build_single("api", "faults", image_size=4 << 20, seed="faults")  # layers up to 1.6 MB
    with client_for(source) as direct:
        push_image(direct, "f/api", "v1", img)
    big = max(img.blobs, key=lambda b: b.size).digest
    small = min(img.layers, key=lambda b: b.size).digest
    src_proxy = FaultProxy(
        source,
        [
            Rule("HEAD", r"/manifests/v1$", "503"),
            Rule("GET", r"/manifests/v1$", "corrupt"),  # digest mismatch on read -> read again
            Rule("GET", rf"/blobs/{big}$", "truncate"),  # dropped mid-blob -> resume with Range
            Rule("GET", rf"/blobs/{small}$", "reset"),  # reset before any byte -> retry
        ],
    )
    dst_proxy = FaultProxy(
        target,
        [
            Rule("HEAD", r"/blobs/sha256:", "429"),  # Retry-After: 1
            Rule("POST", r"/blobs/uploads/$", "503"),
            Rule("PUT", r"/blobs/uploads/.*digest=", "reset"),  # body sent, then reset -> whole blob again
            Rule("PUT", r"/manifests/v1$", "reset"),
        ],
    )
    proxies += [src_proxy, dst_proxy]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        time.sleep(s)

    policy = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2.0, sleep=sleep)
    with (
        client_for(f"http://{src_proxy.host}", retry=policy) as src,
        client_for(f"http://{dst_proxy.host}", retry=policy) as dst,
    ):
        desc = src.resolve("f/api", "v1")
        assert desc is not None and desc.digest == img.digest
        moved: list[int] = []
        digest = copy_image(src, "f/api", dst, "f/api", "v1", workers=2, progress=moved.append)
        assert digest == img.digest
        assert src.stats.resumed_reads >= 1
        assert dst.stats.uploads_redone == 1
    for proxy in proxies:
        assert all(r.fired == r.times for r in proxy.rules), [(r.action, r.path, r.fired) for r in proxy.rules]
    assert 1.0 in sleeps  # Retry-After honoured
    assert sum(moved) == sum(b.size for b in img.blobs)  # a redone upload does not count twice
    assert skopeo_digest(f"{target.host}/f/api:v1") == img.digest
    assert uploads_left(target, "f/api") == []
    # the truncated download was resumed from where it stopped (the proxy sent half), not from byte 0
    big_size = max(b.size for b in img.blobs)
    [resumed] = [r for p, r in src_proxy.ranges if big in p]
    start = int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1))  # type: ignore[union-attr]
    assert 0 < start <= big_size // 2


def test_resolve_falls_back_to_get_without_digest_header(fresh_registry: Registry, proxies: list[FaultProxy]) -> None:
    img = imagegen.build_single("webhooks", "nd", image_size=4096, seed="nodigest", fmt="oci")
    with client_for(fresh_registry) as c:
        push_image(c, "nd/w", "v1", img)
    proxy = FaultProxy(fresh_registry, [Rule("HEAD", r"/manifests/v1$", "strip-digest")])
    proxies.append(proxy)
    with client_for(f"http://{proxy.host}") as c:
        desc = c.resolve("nd/w", "v1")
    assert desc is not None and desc.digest == img.digest and desc.media_type == imagegen.OCI_MANIFEST
    assert [m for m, _, _, _ in proxy.seen] == ["HEAD", "GET"]


def test_manifest_corrupted_every_time_is_an_error(fresh_registry: Registry, proxies: list[FaultProxy]) -> None:
    img = imagegen.build_single("writer", "bad", image_size=4096, seed="corrupt")
    with client_for(fresh_registry) as c:
        push_image(c, "bad/w", "v1", img)
    proxy = FaultProxy(fresh_registry, [Rule("GET", r"/manifests/", "corrupt", times=99)])
    proxies.append(proxy)
    with client_for(f"http://{proxy.host}") as c, pytest.raises(RegistryError, match="hash to"):
        c.get_manifest("bad/w", "v1")


def test_blob_redirect_drops_authorization(auth_registry: Registry, proxies: list[FaultProxy]) -> None:
    data = b"stored elsewhere" * 4000
    digest = sha(data)
    storage_seen: list[bool] = []

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            storage_seen.append("Authorization" in self.headers)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    try:
        location = f"http://127.0.0.1:{storage.server_address[1]}/bucket/{digest}?X-Amz-Signature=abc"
        proxy = FaultProxy(auth_registry, [Rule("GET", r"/blobs/sha256:", "redirect", extra={"location": location})])
        proxies.append(proxy)
        with client_for(f"http://{proxy.host}", StaticCredentials(Credential(*TARGET_USER))) as c:
            c.ping()
            with c.open_blob("rd/x", digest) as reader:
                assert b"".join(reader) == data
    finally:
        storage.shutdown()
        storage.server_close()
    assert storage_seen == [False]  # the storage never saw our credentials
    assert [auth for m, p, _, auth in proxy.seen if "/blobs/" in p] == [True]  # the registry did
