#!/usr/bin/env python3
"""What any client could reach here: the target registry's ingest floor and a minimal raw-socket copier.

Run on demand (not part of pytest), as root on the testbed machine, from the repository root::

    python bench/floor_bench.py --size-mb 300 --trials 3

It seeds the same images as ``mirror_bench.py`` into a basic-auth vendor registry, then times, each
trial against a fresh empty target registry:

* **ingest** — the tag's unique blobs pushed from memory with raw sockets (6 streams, POST + one PUT
  each, no client hashing): the target registry's own cost, the floor for any tool;
* **rawcopy** — vendor → target with raw sockets, 6 streams, 1 MiB ``recv_into`` buffers, sha256 of
  every blob checked while streaming, no manifests, plan, mounts or retries: about the least client
  CPU a Python copier can spend.

Both run in this process (no interpreter start-up). Compare with the engine's ``copy`` time and CPU in
``mirror_bench.py`` (which also plans, mounts, pushes manifests and survives faults).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import queue
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mirror_bench  # noqa: E402

ACCEPT = ",".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
STREAMS = 6
CHUNK = 1 << 20


class Conn:
    """One keep-alive HTTP/1.1 connection, just enough for the happy path of these two measurements."""

    def __init__(self, hostport: str) -> None:
        host, port = hostport.rsplit(":", 1)
        self.hostport = hostport
        self.sock = socket.create_connection((host, int(port)))
        self.file = self.sock.makefile("rb")

    def request(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        body: Iterable[bytes | memoryview] | None = None,
        length: int | None = None,
    ) -> tuple[int, dict[str, str]]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.hostport}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        if length is not None:
            head += f"Content-Length: {length}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        for chunk in body or ():
            self.sock.sendall(chunk)
        status = int(self.file.readline().split()[1])
        out: dict[str, str] = {}
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            out[k.strip().lower()] = v.strip()
        return status, out

    def body(self, n: int) -> Iterator[memoryview]:
        buf = memoryview(bytearray(CHUNK))
        left = n
        while left:
            k = self.file.readinto(buf[: min(left, CHUNK)])
            if not k:
                raise OSError("connection closed mid-body")
            yield buf[:k]
            left -= k

    def skip_body(self, headers: dict[str, str]) -> None:
        n = int(headers.get("content-length", "0") or 0)
        if n:
            self.file.read(n)

    def start_upload(self, repo: str) -> str:
        status, headers = self.request("POST", f"/v2/{repo}/blobs/uploads/", length=0)
        self.skip_body(headers)
        if status != 202:
            raise RuntimeError(f"POST upload: HTTP {status}")
        loc = headers["location"]
        return loc.split(self.hostport, 1)[1] if "://" in loc else loc

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def unique_blobs(vendor: Any, auth: tuple[str, str], tag: str) -> tuple[str, list[tuple[str, str, int]]]:
    """``(authorization, [(repo, digest, size), ...])`` of one tag, largest first."""
    import httpx

    authz = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    blobs: dict[str, tuple[str, int]] = {}
    with httpx.Client(headers={"Authorization": authz}, trust_env=False) as c:

        def walk(repo: str, ref: str) -> None:
            doc = c.get(f"{vendor.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}).json()
            if "manifests" in doc:
                for child in doc["manifests"]:
                    walk(repo, child["digest"])
                return
            for d in [doc["config"], *doc["layers"]]:
                blobs.setdefault(d["digest"], (repo, int(d["size"])))

        from tests.imagegen import SERVICES

        for svc in SERVICES:
            walk(f"{mirror_bench.PREFIX}/{svc}", tag)
    items = sorted(((repo, d, n) for d, (repo, n) in blobs.items()), key=lambda x: -x[2])
    return authz, items


def in_streams(items: list[tuple[str, str, int]], work: Any) -> None:
    """Run ``work(jobs)`` in ``STREAMS`` threads; ``jobs`` yields the items left, shared by all."""
    q: queue.SimpleQueue[tuple[str, str, int]] = queue.SimpleQueue()
    for it in items:
        q.put(it)
    errors: list[BaseException] = []

    def jobs() -> Iterator[tuple[str, str, int]]:
        while True:
            try:
                yield q.get_nowait()
            except queue.Empty:
                return

    def run() -> None:
        try:
            work(jobs())
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(STREAMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def ingest(target: Any, items: list[tuple[str, str, int]], data: dict[str, bytes]) -> None:
    def work(jobs: Iterator[tuple[str, str, int]]) -> None:
        conn = Conn(target.host)
        try:
            for _, digest, n in jobs:
                loc = conn.start_upload(f"floor/{digest[7:19]}")
                mv = memoryview(data[digest])
                chunks = (mv[i : i + CHUNK] for i in range(0, n, CHUNK))
                status, headers = conn.request("PUT", f"{loc}&digest={digest}", body=chunks, length=n)
                conn.skip_body(headers)
                if status != 201:
                    raise RuntimeError(f"PUT blob: HTTP {status}")
        finally:
            conn.close()

    in_streams(items, work)


def rawcopy(vendor: Any, target: Any, items: list[tuple[str, str, int]], authz: str) -> None:
    def work(jobs: Iterator[tuple[str, str, int]]) -> None:
        src, dst = Conn(vendor.host), Conn(target.host)
        try:
            for repo, digest, n in jobs:
                loc = dst.start_upload(f"raw/{repo.rsplit('/', 1)[-1]}")
                status, headers = src.request("GET", f"/v2/{repo}/blobs/{digest}", headers=[("Authorization", authz)])
                if status != 200:
                    raise RuntimeError(f"GET blob: HTTP {status}")
                h = hashlib.sha256()

                def chunks(h: Any = h, size: int = int(headers["content-length"])) -> Iterator[memoryview]:
                    for mv in src.body(size):
                        h.update(mv)
                        yield mv

                status, headers = dst.request("PUT", f"{loc}&digest={digest}", body=chunks(), length=n)
                dst.skip_body(headers)
                if status != 201 or "sha256:" + h.hexdigest() != digest:
                    raise RuntimeError(f"PUT blob: HTTP {status}")
        finally:
            src.close()
            dst.close()

    in_streams(items, work)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=300, help="unique bytes of one tag (default 300)")
    ap.add_argument("--trials", type=int, default=3)
    a = ap.parse_args(argv)
    from tests import testbed

    auth = (testbed.ECR_USER, testbed.ECR_PASSWORD)  # the testbed's fake ECR token, not a secret
    rows: dict[str, list[tuple[float, float, float, float]]] = {"ingest": [], "rawcopy": []}
    try:
        vendor = testbed.Registry(auth=auth)
        print(f"vendor registry {vendor.url}; generating and pushing ~{a.size_mb:.0f} MB × 2 tags ...", flush=True)
        mirror_bench.seed_vendor(vendor, a.size_mb, auth)
        authz, items = unique_blobs(vendor, auth, mirror_bench.TAG_OLD)
        print(f"  {len(items)} unique blobs, {sum(n for _, _, n in items) / 1e6:.0f} MB", flush=True)
        import httpx

        with httpx.Client(headers={"Authorization": authz}, trust_env=False) as c:
            data = {d: c.get(f"{vendor.url}/v2/{repo}/blobs/{d}").content for repo, d, _ in items}
        for trial in range(a.trials):
            for mode in ("ingest", "rawcopy") if trial % 2 == 0 else ("rawcopy", "ingest"):
                target = testbed.Registry()
                try:
                    os.sync()  # no writeback left from the previous run (as in mirror_bench.py)
                    tc, vc = mirror_bench.process_cpu(target.pid), mirror_bench.process_cpu(vendor.pid)
                    cc, t = time.process_time(), time.monotonic()
                    if mode == "ingest":
                        ingest(target, items, data)
                    else:
                        rawcopy(vendor, target, items, authz)
                    row = (
                        time.monotonic() - t,
                        time.process_time() - cc,
                        mirror_bench.process_cpu(target.pid) - tc,
                        mirror_bench.process_cpu(vendor.pid) - vc,
                    )
                finally:
                    target.stop()
                rows[mode].append(row)
                print(
                    f"  trial {trial + 1} {mode:<8} {row[0]:6.2f} s  cpu client {row[1]:.2f} s, target {row[2]:.2f} s, "
                    f"vendor {row[3]:.2f} s (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        testbed.stop_all()
    print()
    print(f"Medians over {a.trials} trials (blobs only, in-process; seconds):")
    print(f"  {'mode':<8} {'wall':>6} {'client':>7} {'target':>7} {'vendor':>7}")
    for mode, rs in rows.items():
        m = [statistics.median(col) for col in zip(*rs, strict=True)]
        print(f"  {mode:<8} {m[0]:6.2f} {m[1]:7.2f} {m[2]:7.2f} {m[3]:7.2f}")
    print(json.dumps({k: [list(r) for r in v] for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
