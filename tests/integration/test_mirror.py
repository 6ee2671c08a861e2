"""The mirror engine against real loopback registries (Debian docker-registry), with skopeo as the
independent digest oracle: cold / no-op / upgrade with byte counts, multi-arch preserved, an archive
round trip (registry → .tar → second registry), an interrupted run resumed, a refused target."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import imagegen
from tests.conftest import TAG_NEW, TAG_OLD, TARGET_USER, SeededVendor
from tests.faultproxy import Fault, FaultProxy, Rule, match
from tests.testbed import Registry, skopeo_digest, skopeo_inspect_raw
from tests.unit.test_mirror_archive import ChunkedSource, Counting, Events
from wizard.core import mirror
from wizard.core.credentials import Credential, StaticCredentials
from wizard.core.errors import Cancelled
from wizard.core.events import ImageProgress
from wizard.core.settings import SERVICES, SOURCE_PREFIX
from wizard.core.transports.archive import OciArchive, OciTarTransport, open_archive
from wizard.core.transports.registry import RegistryTransport

pytestmark = pytest.mark.integration


def connect(reg: Registry, auth: tuple[str, str] | None = None) -> RegistryTransport:
    creds = StaticCredentials(Credential(*auth)) if auth else None
    return RegistryTransport.for_host(reg.url, credentials=creds)


@pytest.fixture
def vendor(seeded_vendor: SeededVendor) -> Iterator[Counting]:
    t = Counting(connect(seeded_vendor.registry, seeded_vendor.auth))
    yield t
    t.close()


def jobs(tag: str, prefix: str = "mirror", services: tuple[str, ...] = SERVICES) -> list[mirror.ImageJob]:
    return mirror.make_jobs(services, tag, SOURCE_PREFIX, prefix)


def assert_oracle(reg: Registry, prefix: str, tag: str, expected: dict[str, str]) -> None:
    for s, digest in expected.items():
        assert skopeo_digest(f"{reg.host}/{prefix}/{s}:{tag}") == digest, s


def test_cold_noop_upgrade_registry_to_registry(
    seeded_vendor: SeededVendor, vendor: Counting, fresh_registry: Registry
) -> None:
    target = Counting(connect(fresh_registry))
    ev = Events()
    old = imagegen.unique_blob_sizes(seeded_vendor.images[TAG_OLD].values())

    # cold: each unique blob crosses once; everything else is a cross-repo mount
    result = mirror.mirror(vendor, target, jobs(TAG_OLD), ev)
    assert result.ok, [i.message for i in result.failed]
    assert sorted(target.put_digests) == sorted(old)
    assert result.bytes_copied == target.bytes_put == sum(old.values())
    assert result.blobs_mounted > 0
    assert_oracle(fresh_registry, "mirror", TAG_OLD, seeded_vendor.digests[TAG_OLD])
    assert all(c.ok for c in mirror.verify(result, target).values())
    assert {e.service for e in ev.of(ImageProgress) if e.state == "done"} == set(SERVICES)

    # no-op: one request per image on each side, nothing moves
    vendor.calls.clear()
    target.calls.clear()
    before = target.bytes_put
    again = mirror.mirror(vendor, target, jobs(TAG_OLD))
    assert again.ok and again.bytes_copied == 0 and target.bytes_put == before
    # (the source is read with one GET per image, the target checked with one HEAD)
    assert dict(target.calls) == {"resolve": 6} and dict(vendor.calls) == {"find_manifest": 6}
    assert all(i.state == "skipped" for i in again.images.values())

    # upgrade: only the changed blobs move
    new = imagegen.unique_blob_sizes(seeded_vendor.images[TAG_NEW].values())
    changed = {d: s for d, s in new.items() if d not in old}
    upgrade = mirror.mirror(vendor, target, jobs(TAG_NEW))
    assert upgrade.ok
    assert upgrade.bytes_copied == target.bytes_put - before == sum(changed.values())
    assert upgrade.bytes_copied < 0.3 * sum(new.values())
    assert_oracle(fresh_registry, "mirror", TAG_NEW, seeded_vendor.digests[TAG_NEW])
    target.close()


def test_multiarch_index_with_attestations_is_byte_identical(
    seeded_vendor: SeededVendor, vendor: Counting, fresh_registry: Registry
) -> None:
    target = connect(fresh_registry)
    result = mirror.mirror(vendor, target, jobs(TAG_OLD, services=("api",)))
    assert result.ok
    api = seeded_vendor.images[TAG_OLD]["api"]
    assert api.is_index and len(api.children) == 4  # amd64, arm64/v8 and their attestations
    raw = skopeo_inspect_raw(f"{fresh_registry.host}/mirror/api:{TAG_OLD}")
    assert raw == api.raw
    for child in api.children:
        assert skopeo_digest(f"{fresh_registry.host}/mirror/api@{child.digest}") == child.digest
    assert result.plan.images[0].platforms == ["linux/amd64", "linux/arm64/v8"]
    target.close()


def test_nested_index_children_arrive_before_their_index(registry_factory: Callable[..., Registry]) -> None:
    """An index whose children are an index and an image: the image manifests go up side by side,
    then the inner index, then the top; every digest is kept (skopeo reads them back)."""
    inner = imagegen.build_index("nested", TAG_OLD, attestations=False, image_size=4096)
    single = imagegen.build_single("nested", TAG_OLD, image_size=4096, seed="other")
    top_doc = {
        "schemaVersion": 2,
        "mediaType": imagegen.OCI_INDEX,
        "manifests": [inner.descriptor(), single.descriptor(platform={"os": "linux", "architecture": "s390x"})],
    }
    top = imagegen.Image("nested", TAG_OLD, imagegen.OCI_INDEX, imagegen.canonical(top_doc), children=(inner, single))
    source_reg, target_reg = registry_factory(), registry_factory()
    imagegen.push_images(source_reg.url, "src", TAG_OLD, images={"nested": top})
    source, target = connect(source_reg), connect(target_reg)
    job = mirror.ImageJob(service="nested", source_repo="src/nested", target_repo="dst/nested", tag=TAG_OLD)
    result = mirror.mirror(source, target, [job])
    source.close()
    target.close()
    assert result.ok, result.failed
    assert skopeo_inspect_raw(f"{target_reg.host}/dst/nested:{TAG_OLD}") == top.raw
    for m in top.walk():
        assert skopeo_digest(f"{target_reg.host}/dst/nested@{m.digest}") == m.digest


def test_registry_to_tar_to_second_registry(
    seeded_vendor: SeededVendor,
    vendor: Counting,
    registry_factory: Callable[..., Registry],
    tmp_path: Path,
) -> None:
    tar_path = tmp_path / "currents.tar"
    out = open_archive(tar_path, create=True)
    assert isinstance(out, OciArchive)
    r1 = mirror.mirror(vendor, out, jobs(TAG_OLD, prefix=SOURCE_PREFIX))
    assert r1.ok, [i.message for i in r1.failed]
    out.close()
    assert tar_path.is_file()

    site = registry_factory(auth=TARGET_USER)  # the air-gapped site's own registry, with auth
    src = open_archive(tar_path)
    assert isinstance(src, OciTarTransport)
    target = Counting(connect(site, TARGET_USER))
    r2 = mirror.mirror(src, target, jobs(TAG_OLD, prefix="internal"))
    assert r2.ok, [i.message for i in r2.failed]
    assert r2.bytes_copied == sum(imagegen.unique_blob_sizes(seeded_vendor.images[TAG_OLD].values()).values())
    for s, digest in seeded_vendor.digests[TAG_OLD].items():
        raw = skopeo_inspect_raw(f"{site.host}/internal/{s}:{TAG_OLD}", creds=TARGET_USER)
        assert imagegen.sha256(raw) == digest, s
    target.close()


def test_interrupted_run_resumes_without_resending(seeded_vendor: SeededVendor, fresh_registry: Registry) -> None:
    cancel = threading.Event()
    seen = Counter[str]()

    def on_chunk(n: int) -> None:
        seen["chunks"] += 1
        if seen["chunks"] == 30:
            cancel.set()

    src = ChunkedSource(connect(seeded_vendor.registry, seeded_vendor.auth), chunk=8 * 1024, on_chunk=on_chunk)
    target = Counting(connect(fresh_registry))
    p = mirror.plan(src, target, jobs(TAG_OLD))
    with pytest.raises(Cancelled) as info:
        mirror.execute(p, src, target, cancel=cancel, parallel=1)
    assert info.value.result.cancelled  # type: ignore[attr-defined]
    first = set(target.put_digests)
    assert first and len(first) < p.blobs_to_copy

    src2 = Counting(connect(seeded_vendor.registry, seeded_vendor.auth))
    target2 = Counting(connect(fresh_registry))
    p2 = mirror.plan(src2, target2, jobs(TAG_OLD))
    assert all(p2.blobs[d].action != "copy" for d in first if d in p2.blobs)  # found by HEAD, not re-sent
    result = mirror.execute(p2, src2, target2)
    assert result.ok
    assert not set(target2.put_digests) & first
    assert target.bytes_put + target2.bytes_put == p.bytes_to_copy
    assert_oracle(fresh_registry, "mirror", TAG_OLD, seeded_vendor.digests[TAG_OLD])
    for t in (src, target, src2, target2):
        t.close()


def test_refused_target_fails_each_image_with_a_message(
    seeded_vendor: SeededVendor, vendor: Counting, auth_registry: Registry
) -> None:
    target = connect(auth_registry, ("wizard", "wrong-password"))
    p = mirror.plan(vendor, target, jobs(TAG_OLD, prefix="refused"))
    result = mirror.execute(p, vendor, target)
    assert not result.ok
    assert all(r.state == "failed" and "refused the credentials" in r.message for r in result.images.values())
    assert not any("wrong-password" in r.message for r in result.images.values())
    target.close()


def test_a_slow_commit_does_not_hold_a_byte_stream(seeded_vendor: SeededVendor, fresh_registry: Registry) -> None:
    """With one byte stream, a blob whose upload is fully sent but not yet answered (the registry
    committing it: on S3-backed registries and busy disks this takes a while) lets the next blob
    start; the old way, the stream idled until the answer came."""
    pause = 1.5
    with FaultProxy(fresh_registry.url, lifetime=120) as proxy:
        proxy.add(Rule(Fault.slow_answer(pause), match("PUT", r"/blobs/uploads/.*digest="), nth=(1,)))
        src = connect(seeded_vendor.registry, seeded_vendor.auth)
        dst = RegistryTransport.for_host(proxy.url)
        services = ("director",)
        p = mirror.plan(src, dst, jobs(TAG_OLD, prefix="slowcommit", services=services))
        assert p.blobs_to_copy >= 3
        result = mirror.execute(p, src, dst, parallel=1)
        src.close()
        dst.close()
        log = list(proxy.log)
    assert result.ok, [i.message for i in result.failed]
    slow = next(r for r in log if r.fault == "slow_answer")
    answered = slow.t + pause
    uploads = [r for r in log if r.method == "POST" and "/blobs/uploads/" in r.target]
    started_meanwhile = [r for r in uploads if slow.t < r.t < answered]
    assert started_meanwhile, [(round(r.t - slow.t, 2), r.method, r.target[:60]) for r in log]
    puts = [r for r in log if r.method == "PUT" and "/blobs/uploads/" in r.target]
    assert len(puts) == p.blobs_to_copy  # every blob sent once: nothing was redone
    assert_oracle(fresh_registry, "slowcommit", TAG_OLD, {"director": seeded_vendor.digests[TAG_OLD]["director"]})
