"""Mirror engine over real OCI layouts (directory and .tar): cold, no-op, upgrade, resume, multi-arch,
failures, progress events, disk full. No registry needed; the transports here are the real ones,
wrapped only to count the calls the engine makes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wizard.core import mirror
from wizard.core.demo_images import DEMO_TAGS, make_demo_vendor
from wizard.core.errors import Cancelled, WizardError
from wizard.core.events import BlobProgress, Event, ImageProgress, Info, PlanReady
from wizard.core.settings import SERVICES, SOURCE_PREFIX
from wizard.core.transports.archive import (
    ArchiveError,
    OciArchive,
    OciLayoutTransport,
    OciTarTransport,
    open_archive,
)
from wizard.core.transports.base import OCI_INDEX, BlobReader, Descriptor, Manifest, Progress, Transport

TAG1, TAG2 = DEMO_TAGS


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


class Counting(Transport):
    """Delegates to a real transport and records what the engine asked of it."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: Counter[str] = Counter()
        self.put_digests: list[str] = []
        self.bytes_put = 0
        self.lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self.lock:
            self.calls[what] += 1

    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        self._count("resolve")
        return self.inner.resolve(repo, reference)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        self._count("get_manifest")
        return self.inner.get_manifest(repo, reference)

    def find_manifest(self, repo: str, reference: str) -> Manifest | None:
        self._count("find_manifest")
        return self.inner.find_manifest(repo, reference)

    def has_blob(self, repo: str, digest: str) -> bool:
        self._count("has_blob")
        return self.inner.has_blob(repo, digest)

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        self._count("open_blob")
        return self.inner.open_blob(repo, digest)

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        self._count("put_blob")
        self.inner.put_blob(repo, digest, size, reader, progress)
        with self.lock:
            self.put_digests.append(digest)
            self.bytes_put += size

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        self._count("mount_blob")
        return self.inner.mount_blob(repo, digest, from_repo)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        self._count("put_manifest")
        return self.inner.put_manifest(repo, reference, manifest)

    def close(self) -> None:
        self.inner.close()


class SmallChunks(BlobReader):
    def __init__(self, inner: BlobReader, chunk: int, on_chunk: Any = None) -> None:
        self.inner, self.chunk, self.on_chunk, self.size = inner, chunk, on_chunk, inner.size

    def __iter__(self) -> Iterator[bytes]:
        n = 0
        for big in self.inner:
            for i in range(0, len(big), self.chunk):
                n += 1
                if self.on_chunk:
                    self.on_chunk(n)
                yield big[i : i + self.chunk]

    def close(self) -> None:
        self.inner.close()


class ChunkedSource(Counting):
    """Source whose blobs arrive in small chunks; ``on_chunk(n)`` runs before each chunk."""

    def __init__(self, inner: Transport, chunk: int = 16 * 1024, on_chunk: Any = None) -> None:
        super().__init__(inner)
        self.chunk, self.on_chunk = chunk, on_chunk

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        return SmallChunks(super().open_blob(repo, digest), self.chunk, self.on_chunk)


class Events:
    def __init__(self) -> None:
        self.items: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        with self.lock:
            self.items.append(e)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]


def jobs(tag: str, target_prefix: str = "mirror", services: tuple[str, ...] = SERVICES) -> list[mirror.ImageJob]:
    return mirror.make_jobs(services, tag, SOURCE_PREFIX, target_prefix)


def image_blobs(t: Transport, repo: str, ref: str) -> dict[str, int]:
    """Independent walk: every config/layer blob and child manifest of ``repo:ref`` with sizes."""
    out: dict[str, int] = {}

    def visit(m: Manifest) -> None:
        doc = json.loads(m.raw)
        if "manifests" in doc:
            for c in doc["manifests"]:
                visit(t.get_manifest(repo, c["digest"]))
        else:
            for d in [doc["config"], *doc["layers"]]:
                out[d["digest"]] = d["size"]

    visit(t.get_manifest(repo, ref))
    return out


def unique_blob_bytes(t: Transport, tag: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in SERVICES:
        out.update(image_blobs(t, f"{SOURCE_PREFIX}/{s}", tag))
    return out


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob(".tmp-*")]


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vendor") / "layout"
    make_demo_vendor(d, size_mb=4)
    return d


@pytest.fixture
def source(vendor: Path) -> Counting:
    return Counting(OciLayoutTransport(vendor, create=False))


@pytest.fixture
def target(tmp_path: Path) -> Counting:
    return Counting(OciLayoutTransport(tmp_path / "target"))


# ------------------------------------------------------------------------------------------------
# demo images + archive basics
# ------------------------------------------------------------------------------------------------


def test_demo_vendor_is_deterministic_and_shaped(tmp_path: Path, vendor: Path) -> None:
    info = make_demo_vendor(tmp_path / "again", size_mb=4)
    src = OciLayoutTransport(vendor, create=False)
    assert info["images"][TAG1]["api"] == src.resolve(f"{SOURCE_PREFIX}/api", TAG1).digest  # type: ignore[union-attr]
    assert 3e6 < info["bytes"] < 5.5e6
    api = src.get_manifest(f"{SOURCE_PREFIX}/api", TAG1)
    assert api.media_type == OCI_INDEX
    plats = [m.get("platform") for m in json.loads(api.raw)["manifests"]]
    assert {"os": "linux", "architecture": "arm64", "variant": "v8"} in plats
    # the second tag changes exactly one layer per service (single-arch image)
    d1 = json.loads(src.get_manifest(f"{SOURCE_PREFIX}/director", TAG1).raw)["layers"]
    d2 = json.loads(src.get_manifest(f"{SOURCE_PREFIX}/director", TAG2).raw)["layers"]
    assert sum(a["digest"] != b["digest"] for a, b in zip(d1, d2, strict=True)) == 1
    contents = src.contents()
    assert contents is not None and contents["services"] == sorted(SERVICES)
    api_entry = next(i for i in contents["images"] if i["service"] == "api" and i["tag"] == TAG1)
    assert api_entry["platforms"] == ["linux/amd64", "linux/arm64/v8"] and api_entry["size"] > 0


def test_archive_rejects_bad_blob_and_leaves_nothing(tmp_path: Path) -> None:
    layout = OciLayoutTransport(tmp_path / "l")
    data = b"hello world" * 1000
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ArchiveError, match="digest mismatch"):
        layout.put_blob_bytes(wrong, data)
    assert not layout.has_blob("x", wrong)
    assert list((tmp_path / "l" / "blobs" / "sha256").iterdir()) == []
    with pytest.raises(ArchiveError, match="malformed"):
        layout.has_blob("x", "sha256:../../etc/passwd")
    with pytest.raises(ArchiveError, match="not an OCI image layout"):
        OciLayoutTransport(tmp_path / "missing", create=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ArchiveError, match="not empty"):
        OciLayoutTransport(tmp_path / "junk")


def test_layout_is_readable_by_skopeo(vendor: Path) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo not installed")
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{vendor}:{SOURCE_PREFIX}/api:{TAG1}"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    src = OciLayoutTransport(vendor, create=False)
    assert Manifest(out, OCI_INDEX).digest == src.resolve(f"{SOURCE_PREFIX}/api", TAG1).digest  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------
# mirror engine
# ------------------------------------------------------------------------------------------------


def test_cold_mirror_moves_each_unique_blob_once(source: Counting, target: Counting) -> None:
    ev = Events()
    p = mirror.plan(source, target, jobs(TAG1), ev)
    expected = unique_blob_bytes(source.inner, TAG1)
    assert p.bytes_to_copy == sum(expected.values())
    assert p.blobs_to_copy == len(expected)
    assert json.loads(json.dumps(p.to_json()))["images_to_copy"] == 6
    assert "6 of 6 images to copy" in p.describe()
    assert ev.of(PlanReady)[0].bytes_to_copy == p.bytes_to_copy
    assert target.calls["put_blob"] == 0 and target.calls["put_manifest"] == 0  # planning writes nothing

    result = mirror.execute(p, source, target, ev, threading.Event(), parallel=4)
    assert result.ok, [i.message for i in result.failed]
    assert sorted(target.put_digests) == sorted(expected)  # every unique blob sent exactly once
    assert result.bytes_copied == target.bytes_put == sum(expected.values())
    assert result.blobs_mounted > 0  # shared layers were mounted into the other repos
    checks = mirror.verify(result, target.inner)
    assert set(checks) == set(SERVICES) and all(c.ok for c in checks.values())
    for s in SERVICES:
        src = source.inner.get_manifest(f"{SOURCE_PREFIX}/{s}", TAG1)
        assert target.inner.get_manifest(f"mirror/{s}", TAG1).raw == src.raw

    # progress: final states, per-blob bounded rate, totals add up
    done = [e for e in ev.of(ImageProgress) if e.state == "done"]
    assert {e.service for e in done} == set(SERVICES)
    assert all(e.done_bytes == e.total_bytes > 0 for e in done)
    stats = mirror.MirrorStats()
    for e in ev.items:
        stats.update(e)
    assert stats.done_bytes == stats.total_bytes == p.bytes_to_copy
    assert stats.images_finished == 6 and stats.fraction == 1.0


def test_noop_rerun_moves_nothing_at_one_request_per_side(source: Counting, target: Counting) -> None:
    mirror.mirror(source, target, jobs(TAG1))
    source.calls.clear()
    target.calls.clear()
    before = target.bytes_put
    ev = Events()
    p = mirror.plan(source, target, jobs(TAG1), ev)
    assert [i.action for i in p.images] == ["skip"] * 6
    assert p.bytes_to_copy == 0
    result = mirror.execute(p, source, target, ev)
    assert result.ok and result.bytes_copied == 0
    assert target.bytes_put == before
    assert dict(target.calls) == {"resolve": 6}
    assert dict(source.calls) == {"find_manifest": 6}
    assert {e.state for e in ev.of(ImageProgress)} == {"skipped"}


def test_upgrade_moves_only_changed_blobs(source: Counting, target: Counting) -> None:
    mirror.mirror(source, target, jobs(TAG1))
    first = target.bytes_put
    old = unique_blob_bytes(source.inner, TAG1)
    new = unique_blob_bytes(source.inner, TAG2)
    changed = {d: s for d, s in new.items() if d not in old}
    assert changed and len(changed) < len(new)
    result = mirror.mirror(source, target, jobs(TAG2))
    assert result.ok
    assert result.bytes_copied == target.bytes_put - first == sum(changed.values())
    assert result.bytes_copied < 0.3 * sum(new.values())
    assert all(c.ok for c in mirror.verify(result, target.inner).values())
    assert target.inner.list_tags("mirror/api") == [TAG1, TAG2]


def test_multiarch_index_and_attestations_preserved(source: Counting, target: Counting) -> None:
    mirror.mirror(source, target, jobs(TAG1, services=("api",)))
    src = source.inner.get_manifest(f"{SOURCE_PREFIX}/api", TAG1)
    got = target.inner.get_manifest("mirror/api", TAG1)
    assert got.raw == src.raw and got.media_type == OCI_INDEX
    children = json.loads(src.raw)["manifests"]
    assert len(children) == 3  # amd64, arm64/v8, attestation
    for c in children:
        assert target.inner.get_manifest("mirror/api", c["digest"]).digest == c["digest"]
        for d, _ in image_blobs(target.inner, "mirror/api", c["digest"]).items():
            assert target.inner.has_blob("mirror/api", d)
    p = mirror.plan(source, target, jobs(TAG1, services=("api",)))
    assert p.images[0].action == "skip"


def test_cancel_mid_blob_then_resume_sends_nothing_twice(vendor: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    chunks = Counter[str]()

    def on_chunk(n: int) -> None:
        chunks["n"] += 1
        if chunks["n"] == 40:  # well inside the run: some blobs finished, one in flight
            cancel.set()

    src = ChunkedSource(OciLayoutTransport(vendor, create=False), chunk=16 * 1024, on_chunk=on_chunk)
    tgt = Counting(OciLayoutTransport(tmp_path / "t"))
    p = mirror.plan(src, tgt, jobs(TAG1))
    with pytest.raises(Cancelled) as info:
        mirror.execute(p, src, tgt, cancel=cancel, parallel=1)
    partial = info.value.result  # type: ignore[attr-defined]
    assert partial.cancelled and not partial.ok
    first = set(tgt.put_digests)
    assert first and len(first) < p.blobs_to_copy
    assert no_temp_files(tmp_path / "t")  # the blob in flight left nothing behind
    stored = {p_.name for p_ in (tmp_path / "t" / "blobs" / "sha256").iterdir()}
    assert {d[7:] for d in first} <= stored

    src2 = Counting(OciLayoutTransport(vendor, create=False))
    tgt2 = Counting(OciLayoutTransport(tmp_path / "t"))
    result = mirror.mirror(src2, tgt2, jobs(TAG1))
    assert result.ok
    assert not (set(tgt2.put_digests) & first)  # finished blobs are not sent again
    assert tgt.bytes_put + tgt2.bytes_put == p.bytes_to_copy
    assert all(c.ok for c in mirror.verify(result, tgt2.inner).values())


def test_one_bad_image_does_not_stop_the_others(source: Counting, tmp_path: Path) -> None:
    class Flaky(Counting):
        def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
            if repo == "mirror/writer":
                for _ in reader:
                    break
                raise WizardError("injected failure for writer")
            super().put_blob(repo, digest, size, reader, progress)

        def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
            return False if repo == "mirror/writer" else super().mount_blob(repo, digest, from_repo)

        def has_blob(self, repo: str, digest: str) -> bool:
            return False if repo == "mirror/writer" else super().has_blob(repo, digest)

    tgt = Flaky(OciLayoutTransport(tmp_path / "t"))
    js = [*jobs(TAG1), mirror.ImageJob("nope", f"{SOURCE_PREFIX}/nope", "mirror/nope", TAG1)]
    ev = Events()
    p = mirror.plan(source, tgt, js, ev)
    assert p.image("nope").action == "failed" and "not found" in p.image("nope").message
    result = mirror.execute(p, source, tgt, ev)
    assert not result.ok
    states = {k: r.state for k, r in result.images.items()}
    assert states == {**{s: "done" for s in SERVICES if s != "writer"}, "writer": "failed", "nope": "failed"}
    assert "injected failure" in result.images["writer"].message
    checks = mirror.verify(result, tgt.inner)
    assert [k for k, c in checks.items() if not c.ok] == ["writer", "nope"]
    assert any(isinstance(e, ImageProgress) and e.service == "writer" and e.state == "failed" for e in ev.items)


def test_transient_copy_failure_is_retried(source: Counting, tmp_path: Path) -> None:
    class OnceBroken(Counting):
        def __init__(self, inner: Transport) -> None:
            super().__init__(inner)
            self.failed: set[str] = set()

        def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
            if digest not in self.failed:
                self.failed.add(digest)
                for _ in reader:
                    break
                raise WizardError("connection reset (injected)")
            super().put_blob(repo, digest, size, reader, progress)

    tgt = OnceBroken(OciLayoutTransport(tmp_path / "t"))
    ev = Events()
    result = mirror.mirror(source, tgt, jobs(TAG1, services=("director",)), ev)
    assert result.ok and result.blobs_copied == len(tgt.failed) == 5
    warnings = [e for e in ev.of(Info) if e.level == "warning"]
    assert len(warnings) == 5 and "connection reset" in warnings[0].message


def test_refused_mounts_fall_back_to_copies_and_totals_follow(source: Counting, tmp_path: Path) -> None:
    class NoMount(Counting):
        def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
            self._count("mount_blob")
            return False

        def has_blob(self, repo: str, digest: str) -> bool:  # repo-scoped, like a registry
            return False

    tgt = NoMount(OciLayoutTransport(tmp_path / "t"))
    ev = Events()
    two = ("director", "webhooks")  # share base + runtime
    result = mirror.mirror(source, tgt, jobs(TAG1, services=two), ev)
    assert result.ok and tgt.calls["mount_blob"] >= 2
    per_image = sum(sum(image_blobs(source.inner, f"{SOURCE_PREFIX}/{s}", TAG1).values()) for s in two)
    assert result.bytes_copied == per_image
    stats = mirror.MirrorStats()
    for e in ev.items:
        stats.update(e)
    assert stats.done_bytes == stats.total_bytes == per_image


def test_progress_events_are_rate_limited(vendor: Path, tmp_path: Path) -> None:
    src = ChunkedSource(OciLayoutTransport(vendor, create=False), chunk=1024)  # thousands of chunks
    tgt = OciLayoutTransport(tmp_path / "t")
    ev = Events()
    result = mirror.mirror(src, tgt, jobs(TAG1), ev, parallel=2)
    assert result.ok
    secs = result.seconds
    by_blob = Counter(e.digest for e in ev.of(BlobProgress))
    chunks_biggest = max(result.plan.blobs.values(), key=lambda b: b.size).size // 1024
    assert max(by_blob.values()) <= secs / mirror.EMIT_INTERVAL + 6 < chunks_biggest
    finals: dict[str, BlobProgress] = {}
    for e in ev.of(BlobProgress):
        finals[e.digest] = e
    assert all(e.state in ("done", "mounted") for e in finals.values())
    assert all(e.done == e.total for e in finals.values())
    per_image = Counter(e.service for e in ev.of(ImageProgress))
    assert max(per_image.values()) <= secs / mirror.EMIT_INTERVAL + 20


def test_stats_speed_and_eta() -> None:
    now = [0.0]
    st = mirror.MirrorStats(clock=lambda: now[0])
    st.update(PlanReady(images=({"key": "api"},), bytes_to_copy=1000, blobs_to_copy=1))
    assert st.eta is None and st.total_bytes == 1000
    st.update(BlobProgress("api", "sha256:a", 0, 1000, "waiting"))
    now[0] = 2.0
    st.update(BlobProgress("api", "sha256:a", 400, 1000, "copying"))
    assert st.speed == pytest.approx(200.0) and st.eta == pytest.approx(3.0)
    st.update(ImageProgress("api", "done"))
    assert st.images_finished == 1


# ------------------------------------------------------------------------------------------------
# .tar archives
# ------------------------------------------------------------------------------------------------


def test_tar_round_trip_and_incremental_update(vendor: Path, tmp_path: Path) -> None:
    src = OciLayoutTransport(vendor, create=False)
    tar_path = tmp_path / "currents.tar"
    out = open_archive(tar_path, create=True)
    assert isinstance(out, OciArchive)
    r1 = mirror.mirror(src, out, jobs(TAG1, target_prefix=SOURCE_PREFIX))
    assert r1.ok
    out.close()
    assert tar_path.is_file() and not (tmp_path / "currents.tar.partial").exists()
    with tarfile.open(tar_path) as tf:
        names = tf.getnames()
    assert names[:3] == ["oci-layout", "index.json", "contents.json"]

    back = open_archive(tar_path)
    assert isinstance(back, OciTarTransport)
    contents = back.contents()
    assert contents is not None and contents["services"] == sorted(SERVICES) and contents["tags"] == [TAG1]

    # archive -> a second "registry" (layout), digests equal
    second = Counting(OciLayoutTransport(tmp_path / "site"))
    r2 = mirror.mirror(back, second, jobs(TAG1, target_prefix="internal"))
    assert r2.ok
    for s in SERVICES:
        want = src.resolve(f"{SOURCE_PREFIX}/{s}", TAG1)
        assert want is not None
        assert second.inner.resolve(f"internal/{s}", TAG1) == want

    # no-op into the existing tar: nothing unpacked, nothing rewritten
    mtime = tar_path.stat().st_mtime_ns
    again = open_archive(tar_path, create=True)
    r3 = mirror.mirror(src, again, jobs(TAG1, target_prefix=SOURCE_PREFIX))
    again.close()
    assert r3.bytes_copied == 0 and tar_path.stat().st_mtime_ns == mtime
    assert not (tmp_path / "currents.tar.partial").exists()

    # upgrade into the tar: only the changed blobs move, both tags inside afterwards
    upd = open_archive(tar_path, create=True)
    r4 = mirror.mirror(src, upd, jobs(TAG2, target_prefix=SOURCE_PREFIX))
    upd.close()
    changed = set(unique_blob_bytes(src, TAG2)) - set(unique_blob_bytes(src, TAG1))
    assert r4.ok and r4.blobs_copied == len(changed)
    final = OciTarTransport(tar_path)
    assert final.list_tags(f"{SOURCE_PREFIX}/api") == [TAG1, TAG2]
    assert all(c.ok for c in mirror.verify(r4, final).values())


def test_tar_not_written_before_an_image_is_complete(vendor: Path, tmp_path: Path) -> None:
    empty = open_archive(tmp_path / "none.tar", create=True)
    empty.close()  # nothing happened: no tar, no staging folder
    assert list(tmp_path.iterdir()) == []

    cancel = threading.Event()
    chunks = Counter[str]()

    def on_chunk(_n: int) -> None:
        chunks["n"] += 1
        if chunks["n"] == 40:  # after the first blobs, before the first complete image
            cancel.set()

    src = ChunkedSource(OciLayoutTransport(vendor, create=False), on_chunk=on_chunk)
    out = open_archive(tmp_path / "partial.tar", create=True)
    with pytest.raises(Cancelled):
        mirror.mirror(src, out, jobs(TAG1, target_prefix=SOURCE_PREFIX), cancel=cancel, parallel=1)
    out.close()  # blobs but no complete image: staging kept for the re-run, no tar yet
    assert not (tmp_path / "partial.tar").exists() and (tmp_path / "partial.tar.partial").is_dir()
    again = open_archive(tmp_path / "partial.tar", create=True)
    result = mirror.mirror(OciLayoutTransport(vendor, create=False), again, jobs(TAG1, target_prefix=SOURCE_PREFIX))
    again.close()
    cold = sum(unique_blob_bytes(OciLayoutTransport(vendor, create=False), TAG1).values())
    assert result.ok and 0 < result.bytes_copied < cold  # the staged blobs were kept and used
    assert OciTarTransport(tmp_path / "partial.tar").list_tags(f"{SOURCE_PREFIX}/api") == [TAG1]
    assert not (tmp_path / "partial.tar.partial").exists()


def test_tar_source_rejects_writes_and_gzip(tmp_path: Path, vendor: Path) -> None:
    from wizard.core.transports.archive import pack_layout

    tar_path = pack_layout(vendor, tmp_path / "v.tar")
    ro = OciTarTransport(tar_path)
    with pytest.raises(ArchiveError, match="read-only"):
        ro.put_manifest("x", "t", Manifest(b"{}", OCI_INDEX))
    gz = tmp_path / "v.tar.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\0" * 100)
    with pytest.raises(ArchiveError, match="gzip"):
        open_archive(gz)
    with pytest.raises(ArchiveError, match="does not exist"):
        open_archive(tmp_path / "nope.tar")


# ------------------------------------------------------------------------------------------------
# disk full
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_disk_full_is_a_clear_error_and_leaves_no_partial_file(tiny_fs: Path) -> None:
    layout = OciLayoutTransport(tiny_fs / "a")
    data = os.urandom(2 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(ArchiveError) as info:
        layout.put_blob_bytes(digest, data)
    assert info.value.fatal and "disk full" in info.value.message and info.value.hint
    assert list((tiny_fs / "a" / "blobs" / "sha256").iterdir()) == []


def test_disk_full_stops_the_mirror_and_reports_it(vendor: Path, tiny_fs: Path) -> None:
    src = Counting(OciLayoutTransport(vendor, create=False))
    tgt = Counting(OciLayoutTransport(tiny_fs / "a"))
    result = mirror.mirror(src, tgt, jobs(TAG1), parallel=2)
    assert not result.ok
    assert all(r.state == "failed" and "disk full" in r.message for r in result.images.values())
    assert no_temp_files(tiny_fs / "a")
    assert src.calls["open_blob"] < 2 * result.plan.blobs_to_copy  # stopped early, no retries


def test_disk_full_while_packing_tar_keeps_staging(vendor: Path, tmp_path: Path, tiny_fs: Path) -> None:
    # stage on a roomy disk, pack onto the tiny one: the pack fails, nothing half-written remains
    from wizard.core.transports.archive import pack_layout

    with pytest.raises(ArchiveError, match="disk full"):
        pack_layout(vendor, tiny_fs / "x.tar")
    assert list(tiny_fs.iterdir()) == []


def test_a_failing_progress_handler_does_not_break_the_copy(source: Counting, target: Counting) -> None:
    calls = Counter[str]()

    def bad_emit(_e: Event) -> None:
        calls["n"] += 1
        raise RuntimeError("UI bug")

    result = mirror.execute(mirror.plan(source, target, jobs(TAG1), bad_emit), source, target, bad_emit)
    assert result.ok and calls["n"] > 6
    assert all(c.ok for c in mirror.verify(result, target.inner).values())
