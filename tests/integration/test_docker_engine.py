"""The Docker-engine mirror strategy against a real dockerd, the seeded vendor registry and targets."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import TAG_NEW, TAG_OLD, TARGET_USER, SeededVendor
from tests.testbed import (
    ECR_PASSWORD,
    ECR_USER,
    Dockerd,
    Registry,
    free_port,
    skopeo_argv,
    skopeo_digest,
    skopeo_inspect_raw,
    skopeo_list_tags,
)
from wizard.core.credentials import Credential, RefreshingCredentials
from wizard.core.errors import Cancelled, RegistryError, WizardError
from wizard.core.events import BlobProgress, Event, ImageProgress, Info
from wizard.core.transports.docker_engine import (
    CAVEAT,
    DockerEngineError,
    DockerEngineMirror,
    ProgressTracker,
    RegistryAuthError,
    normalise_registry_host,
    parse_ref,
    registry_error,
)

pytestmark = pytest.mark.integration

GOOD = Credential(ECR_USER, ECR_PASSWORD)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Recorder:
    """A thread-safe ``emit`` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def engine(dockerd: Dockerd) -> Iterator[DockerEngineMirror]:
    mirror = DockerEngineMirror(base_url=dockerd.docker_host)
    yield mirror
    mirror.close()


def _purge(engine: DockerEngineMirror, refs: list[str]) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):
            engine.client.api.remove_image(ref, force=True)


def _jobs(seeded: SeededVendor, target: Registry, tag: str, services: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    return {s: (seeded.ref(s, tag), f"{target.host}/mirror/{s}:{tag}") for s in services}


def test_mirror_all_six_then_upgrade_one(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    services = seeded_vendor.services
    _purge(engine, [seeded_vendor.ref(s, t) for s in services for t in seeded_vendor.tags])
    rec = Recorder()
    digests = engine.mirror_all(_jobs(seeded_vendor, fresh_registry, TAG_OLD, services), GOOD, None, rec)

    # Every image arrived; the digest we report is what the target serves (skopeo as oracle).
    assert set(digests) == set(services)
    for svc in services:
        ref = f"{fresh_registry.host}/mirror/{svc}"
        assert skopeo_list_tags(ref) == [TAG_OLD]
        assert skopeo_digest(f"{ref}:{TAG_OLD}") == digests[svc]

    # The caveat is real: the multi-arch api index became one linux/amd64 docker manifest with
    # re-compressed layers, but the same image config (same content).
    api = json.loads(skopeo_inspect_raw(f"{fresh_registry.host}/mirror/api:{TAG_OLD}"))
    assert api["mediaType"] == DOCKER_MANIFEST
    assert digests["api"] != seeded_vendor.digests[TAG_OLD]["api"]
    amd64 = seeded_vendor.images[TAG_OLD]["api"].children[0]
    assert amd64.platform == {"os": "linux", "architecture": "amd64"}
    assert api["config"]["digest"] == amd64.blobs[0].digest
    assert {layer["digest"] for layer in api["layers"]}.isdisjoint(b.digest for b in amd64.layers)

    # Progress: caveat, plan, per-layer pull and push progress, a digest per image.
    assert rec.of(Info)[0].message == CAVEAT and rec.of(Info)[0].level == "warning"
    images = rec.of(ImageProgress)
    assert [e.service for e in images if e.state == "planned"] == list(services)
    done = {e.service: e for e in images if e.state == "done"}
    assert {s: e.digest for s, e in done.items()} == digests
    assert all(e.blobs_total == 4 and e.blobs_done == 4 for e in done.values())
    blobs = rec.of(BlobProgress)
    states = {e.state for e in blobs}
    assert {"waiting", "copying", "done"} <= states
    assert states & {"mounted", "exists"}, "layers shared between the six images should not be pushed twice"
    assert any(e.state == "copying" and 0 < e.done <= e.total for e in blobs)

    # Upgrade: only the app layer of the new tag moves; the other three already exist there.
    rec2 = Recorder()
    jobs = _jobs(seeded_vendor, fresh_registry, TAG_NEW, ("director",))
    new = engine.mirror_image(*jobs["director"], GOOD, None, rec2, service="director")
    assert skopeo_digest(f"{fresh_registry.host}/mirror/director:{TAG_NEW}") == new
    start = next(i for i, e in enumerate(rec2.events) if isinstance(e, ImageProgress) and "pushing" in e.message)
    pull_final = {e.digest: e.state for e in rec2.events[:start] if isinstance(e, BlobProgress)}
    push_final = {e.digest: e.state for e in rec2.events[start:] if isinstance(e, BlobProgress)}
    assert sorted(pull_final.values()) == ["done", "exists", "exists", "exists"]
    assert sorted(push_final.values()) == ["done", "exists", "exists", "exists"]


def test_source_credential_refreshed_once_on_401(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    issued = iter([Credential(ECR_USER, "expired-token"), GOOD])
    provider = RefreshingCredentials(lambda: next(issued))
    rec = Recorder()
    digest = engine.mirror_image(
        seeded_vendor.ref("scheduler", TAG_OLD), f"{fresh_registry.host}/r/scheduler:{TAG_OLD}", provider, None, rec
    )
    assert provider.refreshes == 1
    assert skopeo_digest(f"{fresh_registry.host}/r/scheduler:{TAG_OLD}") == digest
    assert any("fetching a new one" in e.message for e in rec.of(Info))


def test_bad_source_password_is_a_clear_error(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    rec = Recorder()
    bad = Credential(ECR_USER, "wrong-secret-value")
    with pytest.raises(RegistryAuthError) as info:
        engine.mirror_image(
            seeded_vendor.ref("writer", TAG_OLD), f"{fresh_registry.host}/x/writer:{TAG_OLD}", bad, None, rec
        )
    err = info.value
    assert "refused the login" in err.message and "401" in err.message
    assert "log in again" in err.hint
    assert "wrong-secret-value" not in str(err) and "\n" not in str(err)
    assert rec.of(ImageProgress)[-1].state == "failed"


def test_missing_tag_is_a_clear_error(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    with pytest.raises(RegistryError) as info:
        engine.mirror_image(seeded_vendor.ref("writer", "no-such-tag"), f"{fresh_registry.host}/x/writer:t", GOOD, None)
    assert not isinstance(info.value, RegistryAuthError)
    assert "not found" in info.value.message and "no-such-tag" in info.value.message
    assert "--tag" in info.value.hint


def test_push_needs_target_credentials(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, auth_registry: Registry
) -> None:
    target = f"{auth_registry.host}/pushauth/webhooks:{TAG_OLD}"
    # The SDK does not raise on push errors; the strategy must.
    with pytest.raises(RegistryAuthError) as info:
        engine.mirror_image(seeded_vendor.ref("webhooks", TAG_OLD), target, GOOD, None)
    assert auth_registry.host in info.value.message
    assert f"docker login {auth_registry.host}" in info.value.hint

    digest = engine.mirror_image(seeded_vendor.ref("webhooks", TAG_OLD), target, GOOD, Credential(*TARGET_USER))
    assert skopeo_digest(target, creds=TARGET_USER) == digest


def test_wrong_target_password(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, auth_registry: Registry
) -> None:
    with pytest.raises(RegistryAuthError) as info:
        engine.mirror_image(
            seeded_vendor.ref("webhooks", TAG_OLD),
            f"{auth_registry.host}/wrongpw/webhooks:{TAG_OLD}",
            GOOD,
            Credential(TARGET_USER[0], "not-the-password"),
        )
    assert "not-the-password" not in str(info.value)
    assert "--target-username" in info.value.hint


def test_unreachable_target(engine: DockerEngineMirror, seeded_vendor: SeededVendor) -> None:
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError) as info:
        engine.mirror_image(seeded_vendor.ref("director", TAG_OLD), f"{host}/x/director:{TAG_OLD}", GOOD, None)
    assert "cannot reach" in info.value.message and host in info.value.message


def test_platform_is_honoured(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    target = f"{fresh_registry.host}/arm/api:{TAG_OLD}"
    engine.mirror_image(seeded_vendor.ref("api", TAG_OLD), target, GOOD, None, platform="linux/arm64")
    res = subprocess.run(skopeo_argv(["inspect"], target), capture_output=True, timeout=60, check=True)
    assert json.loads(res.stdout)["Architecture"] == "arm64"


def test_cancel_stops_the_transfer(
    engine: DockerEngineMirror, seeded_vendor: SeededVendor, fresh_registry: Registry
) -> None:
    cancel = threading.Event()
    cancel.set()
    src, dst = seeded_vendor.ref("api", TAG_NEW), f"{fresh_registry.host}/c/api:{TAG_NEW}"
    with pytest.raises(Cancelled):
        engine.mirror_image(src, dst, GOOD, None, cancel=cancel)

    cancel.clear()
    _purge(engine, [src])

    def emit(event: Event) -> None:
        if isinstance(event, BlobProgress):
            cancel.set()

    with pytest.raises(Cancelled):
        engine.mirror_image(src, dst, GOOD, None, emit, cancel)
    assert fresh_registry.request("GET", f"/v2/c/api/manifests/{TAG_NEW}")[0] == 404


@pytest.mark.parametrize("via_env", [False, True])
def test_no_daemon_is_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch, via_env: bool) -> None:
    dead = f"unix://{tmp_path}/dead.sock"
    if via_env:
        monkeypatch.setenv("DOCKER_HOST", dead)
        mirror = DockerEngineMirror()
    else:
        mirror = DockerEngineMirror(base_url=dead)
    with pytest.raises(DockerEngineError) as info:
        mirror.mirror_all({"api": ("127.0.0.1:1/a/api:t", "127.0.0.1:2/b/api:t")}, GOOD, None)
    assert "cannot reach the Docker engine" in info.value.message and dead in info.value.message
    assert "DOCKER_HOST" in info.value.hint and "--engine registry" in info.value.hint
    assert isinstance(info.value, WizardError)


# -- pure logic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:5001",
        "127.0.0.1:5001/currents/on-prem",
        "127.0.0.1:5001/currents/on-prem/",
        "http://127.0.0.1:5001",
        "https://127.0.0.1:5001/currents/on-prem/",
        "127.0.0.1:5001/v2/",
    ],
)
def test_normalise_registry_host(value: str) -> None:
    assert normalise_registry_host(value) == "127.0.0.1:5001"


def test_parse_ref() -> None:
    r = parse_ref("http://127.0.0.1:5001/currents/on-prem/api:2026-01-26-001")
    assert (r.registry, r.repository, r.reference, r.name) == (
        "127.0.0.1:5001",
        "127.0.0.1:5001/currents/on-prem/api",
        "2026-01-26-001",
        "api",
    )
    d = parse_ref("reg.example.com/x/api@sha256:" + "a" * 64)
    assert d.is_digest and str(d) == "reg.example.com/x/api@sha256:" + "a" * 64
    assert parse_ref("127.0.0.1:5001/x/api").reference == "latest"
    with pytest.raises(DockerEngineError):
        parse_ref("api:latest")


def test_tracker_with_recorded_engine_events() -> None:
    out: list[Event] = []
    clock: Callable[[], float] = iter(range(1000)).__next__  # type: ignore[assignment]
    pull = ProgressTracker("webhooks", "pull", out.append, clock=lambda: float(clock()))
    for ev in [
        {"status": "Pulling from currents/on-prem/webhooks", "id": "big"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "4006e22fbb54"},
        {"status": "Already exists", "progressDetail": {}, "id": "eb90d7338310"},
        {"status": "Downloading", "progressDetail": {"current": 269312, "total": 25171863}, "id": "4006e22fbb54"},
        {"status": "Download complete", "progressDetail": {}, "id": "4006e22fbb54"},
        {"status": "Extracting", "progressDetail": {"current": 14417920, "total": 25171863}, "id": "4006e22fbb54"},
        {"status": "Pull complete", "progressDetail": {}, "id": "4006e22fbb54"},
        {"status": "Extracting", "progressDetail": {"current": 1, "total": 25171863}, "id": "4006e22fbb54"},
        {"status": "Digest: sha256:" + "3" * 64},
        {"status": "Status: Downloaded newer image for 127.0.0.1:5001/currents/on-prem/webhooks:big"},
    ]:
        pull.handle(ev)
    assert "big" not in pull.layers
    assert pull.layers["4006e22fbb54"].state == "done"
    assert pull.totals() == (25171863, 25171863, 2, 2)
    assert pull.digest == "sha256:" + "3" * 64
    blob_states = [(e.digest, e.state, e.done) for e in out if isinstance(e, BlobProgress)]
    assert blob_states[:4] == [
        ("4006e22fbb54", "waiting", 0),
        ("eb90d7338310", "exists", 0),
        ("4006e22fbb54", "copying", 269312),
        ("4006e22fbb54", "copying", 25171863),
    ]

    push_events: list[Event] = []
    push = ProgressTracker("webhooks", "push", push_events.append)
    for ev in [
        {"status": "The push refers to repository [127.0.0.1:5002/x/webhooks]"},
        {"status": "Preparing", "progressDetail": {}, "id": "fd58dc0fd29d"},
        {"status": "Pushing", "progressDetail": {"current": 68608, "total": 6291473}, "id": "fd58dc0fd29d"},
        {"status": "Pushed", "progressDetail": {}, "id": "fd58dc0fd29d"},
        {"status": "Layer already exists", "progressDetail": {}, "id": "f4e59374750f"},
        {"status": "Mounted from sdk/webhooks", "progressDetail": {}, "id": "a8b697b8db36"},
        {"status": "big: digest: sha256:" + "2" * 64 + " size: 1163"},
        {"progressDetail": {}, "aux": {"Tag": "big", "Digest": "sha256:" + "2" * 64, "Size": 1163}},
    ]:
        push.handle(ev)
    assert {k: v.state for k, v in push.layers.items()} == {
        "fd58dc0fd29d": "done",
        "f4e59374750f": "exists",
        "a8b697b8db36": "mounted",
    }
    assert push.digest == "sha256:" + "2" * 64
    assert push.totals() == (6291473, 6291473, 3, 3)


def test_error_mapping_does_not_mistake_ports_for_status_codes() -> None:
    msg = "manifest for 127.0.0.1:54011/x/api:nope not found: manifest unknown: manifest unknown"
    err = registry_error(msg, host="127.0.0.1:54011", ref="x", action="pull", source=True)
    assert not isinstance(err, RegistryAuthError) and "not found" in err.message
    denied = registry_error(
        "denied: not authorized to perform ecr:BatchGetImage", host="h", ref="r", action="pull", source=True
    )
    assert denied.exit_code == 3  # AccessNotGranted
    http = registry_error(
        "http: server gave HTTP response to HTTPS client", host="reg:5000", ref="r", action="push", source=False
    )
    assert "insecure-registries" in http.hint
