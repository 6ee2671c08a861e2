"""The mirror under injected network faults (issue 7): every run ends with all six images
digest-identical at the target (skopeo is the outside oracle), or — when faults never stop — fails
with a summary of what is done and what is not, state intact, and a clean re-run finishes the rest.

The wizard runs as users run it (``currents-wizard mirror --yes`` / ``run --yes`` subprocesses)
against the seeded vendor registry and a fresh target registry, each behind a
:class:`tests.faultproxy.FaultProxy`; moto stands in for STS/ECR (its ECR token is the vendor
registry's password).  A few tests use the core API (``wizard.core.mirror`` + ``RegistryTransport``)
where they need a credential provider the test controls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wizard
from tests import imagegen
from tests.conftest import TAG_OLD, TARGET_USER, SeededVendor
from tests.faultproxy import (
    ANY,
    REGISTRY_BLOB_GET,
    STORAGE,
    UPLOAD_BODY,
    Fault,
    FaultProxy,
    Request,
    Rule,
    for_digests,
    for_repo,
    match,
)
from tests.testbed import MotoServer, Registry, skopeo_digest
from wizard.core import mirror
from wizard.core.credentials import Credential
from wizard.core.registry import RetryPolicy
from wizard.core.settings import SERVICES, SOURCE_PREFIX
from wizard.core.transports.registry import RegistryTransport

pytestmark = pytest.mark.integration

EXE = shutil.which("currents-wizard")
ROLE = "arn:aws:iam::123456789012:role/CurrentsEcrPull"
DEMO_DATA = Path(wizard.__file__).resolve().parent / "demo_data"
PREFIX = "mirror"
GET_AUTH_TOKEN = "GetAuthorizationToken"
GIVE_UP_WITHIN = 120  # seconds: a run facing a dead network must stop and say so within this


# ------------------------------------------------------------------------------------------------
# helpers shared with the other reliability tests (test_crash_resume, test_bad_input, test_secrets)
# ------------------------------------------------------------------------------------------------


def cli_argv(*args: str) -> list[str]:
    return [EXE, *args] if EXE else [sys.executable, "-m", "wizard", *args]


def cli(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the console script as a user would (no TTY), capturing both streams."""
    return subprocess.run(
        cli_argv(*args),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def make_onprem(folder: Path) -> Path:
    """A Currents on-prem folder: ``.env`` (from the example), ``.env.example``, ``VERSION``, compose file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (".env.example", "VERSION", "compose.currents.yml"):
        shutil.copyfile(DEMO_DATA / name, folder / name)
    shutil.copyfile(DEMO_DATA / ".env.example", folder / ".env")
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def base_env(moto: MotoServer, onprem: Path | None = None, aws_endpoint: str | None = None) -> dict[str, str]:
    """The environment of a wizard subprocess: moto for AWS, no stray ``CURRENTS_WIZARD_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_WIZARD_")}
    env.update(moto.subprocess_env())
    if aws_endpoint:
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    env["CURRENTS_WIZARD_ROLE_ARN"] = ROLE
    if onprem is not None:
        env["CURRENTS_WIZARD_DIR"] = str(onprem)
    return env


def source_env(host: str) -> dict[str, str]:
    """Point the vendor registry at a loopback host (plain HTTP)."""
    return {"CURRENTS_WIZARD_SOURCE_REGISTRY": host, "CURRENTS_WIZARD_INSECURE_REGISTRY": host}


def load_state(onprem: Path) -> dict[str, Any]:
    return json.loads((onprem / ".currents-wizard" / "state.json").read_text())


_WIZARD_LINE = re.compile(r"^currents-wizard(?: [a-z]+)?: ")


def wizard_lines(stderr: str) -> list[str]:
    """The wizard's own final lines (``currents-wizard: error: ...``, ``currents-wizard run: error: ...``
    from a subcommand's usage check), not the progress lines."""
    return [ln for ln in stderr.splitlines() if _WIZARD_LINE.match(ln)]


def oracle_digests(
    reg: Registry, prefix: str, tag: str, services: tuple[str, ...] = SERVICES, creds: tuple[str, str] | None = None
) -> dict[str, str]:
    """Manifest digests at the target as skopeo (not the product) reads them; "" when missing."""
    out = {}
    for s in services:
        try:
            out[s] = skopeo_digest(f"{reg.host}/{prefix}/{s}:{tag}", creds=creds)
        except Exception:
            out[s] = ""
    return out


def explain(*proxies: FaultProxy, out: subprocess.CompletedProcess[str] | None = None) -> str:
    text = " | ".join(f"{p!r}: {p.snapshot()}" for p in proxies)
    if out is not None:
        text += f"\nexit {out.returncode}\nstderr:\n{out.stderr[-4000:]}"
    return text


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def onprem(tmp_path: Path) -> Path:
    return make_onprem(tmp_path / "on-prem")


@pytest.fixture
def source_proxy(seeded_vendor: SeededVendor) -> Iterator[FaultProxy]:
    with FaultProxy(seeded_vendor.registry.url, upstream_auth=seeded_vendor.auth, seed=7, lifetime=300) as p:
        yield p


@pytest.fixture
def target_proxy(fresh_registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(fresh_registry.url, seed=11, lifetime=300) as p:
        yield p


@pytest.fixture
def aws_proxy(aws_env: MotoServer) -> Iterator[FaultProxy]:
    """moto behind a proxy: counts ECR token requests (a refresh is one more of them)."""
    with FaultProxy(aws_env.endpoint, lifetime=300) as p:
        yield p


@pytest.fixture
def env(aws_env: MotoServer, aws_proxy: FaultProxy, source_proxy: FaultProxy, onprem: Path) -> dict[str, str]:
    return {**base_env(aws_env, onprem, aws_proxy.url), **source_env(source_proxy.host)}


def mirror_cli(env: dict[str, str], target_proxy: FaultProxy, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("mirror", "--yes", "--tag", TAG_OLD, "--target", f"http://{target_proxy.host}/{PREFIX}", *extra, env=env)


def mirror_ok(env: dict[str, str], source_proxy: FaultProxy, target_proxy: FaultProxy) -> str:
    """Mirror through both proxies and assert it succeeded; returns the proxies' story for later asserts."""
    out = mirror_cli(env, target_proxy)
    note = explain(source_proxy, target_proxy, out=out)
    assert out.returncode == 0, note
    return note


def assert_all_six_identical(reg: Registry, seeded_vendor: SeededVendor, note: str, prefix: str = PREFIX) -> None:
    got = oracle_digests(reg, prefix, TAG_OLD)
    assert got == seeded_vendor.digests[TAG_OLD], note


# ------------------------------------------------------------------------------------------------
# random faults: the run still ends digest-identical
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_random_faults_on_both_sides_cli(
    seed: int,
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
    onprem: Path,
) -> None:
    """Seeded random resets, 5xx, 429s, truncations, slow bodies and lost answers on ~12 % of all
    requests, on the vendor side and the target side at once."""
    source_proxy.rng.seed(seed)
    target_proxy.rng.seed(seed * 101)
    source_proxy.chaos(0.12)
    target_proxy.chaos(0.12)
    note = mirror_ok(env, source_proxy, target_proxy)
    injected = source_proxy.injected + target_proxy.injected
    assert sum(injected.values()) >= 8 and len(injected) >= 4, note  # the faults really happened
    assert_all_six_identical(fresh_registry, seeded_vendor, note)
    st = load_state(onprem)
    assert st["steps"]["mirror"]["status"] == "done"
    assert {s: r["target_digest"] for s, r in st["images"][TAG_OLD].items()} == seeded_vendor.digests[TAG_OLD]


# ------------------------------------------------------------------------------------------------
# each fault on its own, deterministic
# ------------------------------------------------------------------------------------------------


def test_connection_reset_mid_blob_resumes_with_range(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """A reset half-way through each of the three largest blobs: the download resumes from the byte
    reached (``Range``) instead of starting over; a reset mid-upload makes the blob go up again."""
    sizes = imagegen.unique_blob_sizes(seeded_vendor.images[TAG_OLD].values())
    largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:3]
    cut = {d: sizes[d] // 2 for d in largest}
    for d in largest:
        source_proxy.add(Rule(Fault.reset(after=cut[d]), for_digests({d}, REGISTRY_BLOB_GET), nth=(1,)))
    # (uploads of other blobs: a failed upload re-reads its blob from the source, which would blur the count)
    others = set(sizes) - set(largest)
    target_proxy.add(Rule(Fault.reset(after=20_000), for_digests(others, UPLOAD_BODY), nth=(1, 4)))
    note = mirror_ok(env, source_proxy, target_proxy)
    assert source_proxy.injected["reset"] == 3 and target_proxy.injected["reset"] == 2, note
    for d in largest:
        ranged = source_proxy.records(
            lambda r, d=d: d in r.target and r.range.startswith("bytes=") and r.method == "GET"
        )
        assert ranged, f"no Range request after the reset of {d}: {note}"
        start = int(ranged[0].range.split("=", 1)[1].split("-", 1)[0])
        assert 0 < start <= cut[d], ranged[0].range
        # resumed, not restarted: less than one extra copy of the bytes before the cut went over the wire
        assert source_proxy.download_bytes[d] < sizes[d] + cut[d], (d, source_proxy.download_bytes[d], sizes[d])
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


def test_5xx_are_retried_on_both_sides(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """500/502/503 on manifests, blob downloads, upload sessions, blob uploads and manifest PUTs."""
    source_proxy.add(Rule(Fault.error(500), match("GET", r"/manifests/"), nth=(1, 4)))
    source_proxy.add(Rule(Fault.error(503), REGISTRY_BLOB_GET, nth=(2, 5)))
    target_proxy.add(Rule(Fault.error(502), match("POST", r"/blobs/uploads/"), nth=(1, 3)))
    target_proxy.add(Rule(Fault.error(500), match("PUT", r"/blobs/uploads/"), nth=(2,)))
    target_proxy.add(Rule(Fault.error(503), match("PUT", r"/manifests/"), nth=(1,)))
    note = mirror_ok(env, source_proxy, target_proxy)
    assert source_proxy.injected == {"status": 4} and target_proxy.injected == {"status": 4}, note
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


def _wait_after_429(proxy: FaultProxy) -> float:
    """Seconds between the (first) 429 and the next request for the same resource."""
    first = proxy.records(lambda r: r.fault == "retry_after")[0]
    path = first.target.split("?", 1)[0]
    if "/blobs/uploads/" in path:  # an upload is redone in a new session: the next PUT of the same digest
        digest = first.target.split("digest=", 1)[1]
        nxt = proxy.records(lambda r: r.seq > first.seq and r.method == "PUT" and digest in r.target)
    else:
        nxt = proxy.records(lambda r: r.seq > first.seq and r.target.split("?", 1)[0] == path)
    assert nxt, f"no retry after the 429 on {path}"
    return nxt[0].t - first.t


@pytest.mark.parametrize("side", ["download", "manifest", "upload"])
def test_429_retry_after_is_waited_out(
    side: str,
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """``429 Too Many Requests`` with ``Retry-After: 2``: the next try comes no sooner than 2 s later."""
    proxy, when = {
        "download": (source_proxy, REGISTRY_BLOB_GET),
        "manifest": (source_proxy, match("GET", r"/manifests/")),
        "upload": (target_proxy, match("PUT", r"/blobs/uploads/")),
    }[side]
    proxy.add(Rule(Fault.too_many("2"), when, nth=(3,)))
    note = mirror_ok(env, source_proxy, target_proxy)
    assert proxy.injected == {"retry_after": 1}, note
    waited = _wait_after_429(proxy)
    assert waited >= 1.9, f"retried {waited:.2f}s after a 429 with Retry-After: 2 ({side})"
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


def test_truncated_slow_and_lost_answers(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """Bodies shorter than their Content-Length, bodies that trickle in, and answers that never
    come (the upstream did the work; the client must cope with "already there")."""
    source_proxy.add(Rule(Fault.truncate(), REGISTRY_BLOB_GET, nth=(1, 2, 3)))
    source_proxy.add(Rule(Fault.truncate(after=10), match("GET", r"/manifests/"), nth=(2,)))
    source_proxy.add(Rule(Fault.slow(piece=8 * 1024, delay=0.01), REGISTRY_BLOB_GET, nth=(4, 5, 6)))
    target_proxy.add(Rule(Fault.drop(), match("PUT", r"/blobs/uploads/"), nth=(1, 3)))
    target_proxy.add(Rule(Fault.drop(), match("PUT", r"/manifests/"), nth=(2,)))
    target_proxy.add(Rule(Fault.truncate(), match("HEAD", r"/manifests/"), nth=(1,)))
    note = mirror_ok(env, source_proxy, target_proxy)
    assert source_proxy.injected == {"truncate": 4, "slow": 3}, note
    assert target_proxy.injected == {"drop": 3, "truncate": 1}, note
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


def test_expired_token_mid_copy_is_refreshed(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    aws_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """A 401 (with the registry's own challenge) in the middle of the copy, as an expired ECR token
    gets: the wizard asks ECR for a new token through the role and carries on."""
    # The token is a few seconds old when it "expires" (a refresh within ~2 s of a fetch is deduplicated).
    source_proxy.add(Rule(Fault.pause(3.0), match("GET", r"/manifests/"), nth=(1,)))
    source_proxy.add(Rule(Fault.unauthorized(), REGISTRY_BLOB_GET, nth=(4, 12)))
    out = mirror_cli(env, target_proxy)
    note = explain(source_proxy, target_proxy, aws_proxy, out=out)
    assert out.returncode == 0, note
    assert source_proxy.injected["unauthorized"] == 2, note
    token_calls = aws_proxy.count(lambda r: GET_AUTH_TOKEN in r.amz_target)
    assert token_calls >= 2, f"no new ECR token after the 401s ({token_calls} token requests): {note}"
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


class RotatingCredentials:
    """A credential provider whose ``refresh()`` hands out the next password, like a token service."""

    def __init__(self, user: str, passwords: list[str]) -> None:
        self.user, self.passwords, self.index = user, passwords, 0
        self.refreshes = 0
        self.generation = 0
        self._lock = threading.Lock()

    def get(self) -> Credential:
        with self._lock:
            return Credential(self.user, self.passwords[self.index])

    def refresh(self, seen_generation: int | None = None) -> Credential:
        with self._lock:
            if seen_generation is None or seen_generation == self.generation:
                self.index = min(self.index + 1, len(self.passwords) - 1)
                self.generation += 1
                self.refreshes += 1
            return Credential(self.user, self.passwords[self.index])


def test_credentials_that_expire_mid_copy_on_both_sides(seeded_vendor: SeededVendor, registry_factory: Any) -> None:
    """Core API: the vendor token and the target password both stop working part-way through
    (every request with the old one is refused from then on, on all threads); the engine calls
    ``refresh()`` and finishes with the new ones."""
    target_reg = registry_factory(auth=TARGET_USER)
    src_creds = RotatingCredentials("AWS", ["vendor-token-1", "vendor-token-2"])
    dst_creds = RotatingCredentials(TARGET_USER[0], ["target-pass-1", "target-pass-2"])
    with (
        FaultProxy(seeded_vendor.registry.url, upstream_auth=seeded_vendor.auth, lifetime=120) as sp,
        FaultProxy(target_reg.url, upstream_auth=TARGET_USER, lifetime=120) as tp,
    ):
        sp.accept_only(("AWS", "vendor-token-1"))
        tp.accept_only((TARGET_USER[0], "target-pass-1"))

        def expire(proxy: FaultProxy, user: str, new: str, after: int, kind: Any) -> Any:
            seen = [0]

            def pred(req: Request) -> bool:
                if kind(req):
                    seen[0] += 1
                    if seen[0] == after:
                        proxy.accept_only((user, new))  # the old credential is dead from now on
                return False

            return pred

        sp.add(Rule(Fault.unauthorized(), expire(sp, "AWS", "vendor-token-2", 6, REGISTRY_BLOB_GET)))
        tp.add(Rule(Fault.unauthorized(), expire(tp, TARGET_USER[0], "target-pass-2", 5, UPLOAD_BODY)))
        fast = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.5)
        src = RegistryTransport.for_host(sp.url, credentials=src_creds, retry=fast)  # type: ignore[arg-type]
        dst = RegistryTransport.for_host(tp.url, credentials=dst_creds, retry=fast)  # type: ignore[arg-type]
        try:
            result = mirror.mirror(src, dst, mirror.make_jobs(SERVICES, TAG_OLD, SOURCE_PREFIX, "rotated"))
        finally:
            src.close()
            dst.close()
        note = explain(sp, tp) + f" src refreshes={src_creds.refreshes} dst refreshes={dst_creds.refreshes}"
        assert result.ok, [(i.key, i.message) for i in result.failed]
        assert sp.rejected_credentials >= 1 and tp.rejected_credentials >= 1, note
        assert src_creds.refreshes >= 1 and dst_creds.refreshes >= 1, note
        assert src_creds.index == 1 and dst_creds.index == 1
    got = oracle_digests(target_reg, "rotated", TAG_OLD, creds=TARGET_USER)
    assert got == seeded_vendor.digests[TAG_OLD], note


def test_blob_redirect_to_storage_that_rejects_authorization(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
) -> None:
    """Blob GETs answer 307 to a "storage" host that refuses any ``Authorization`` header (400), as
    S3 pre-signed URLs do: the wizard follows without it — and survives a reset at the storage host."""
    source_proxy.redirect_blobs = True
    source_proxy.add(Rule(Fault.reset(after=30_000), match("GET", listener="storage"), nth=(2,)))
    source_proxy.add(Rule(Fault.error(503), STORAGE, nth=(5,)))
    note = mirror_ok(env, source_proxy, target_proxy)
    assert source_proxy.storage_auth_rejected == 0, f"the Authorization header was sent to storage: {note}"
    copied = set(source_proxy.download_bytes)
    assert copied and copied <= set(source_proxy.storage_served), note  # every blob came from storage
    assert source_proxy.injected == {"reset": 1, "status": 1}, note
    redirects = source_proxy.count(lambda r: r.listener == "registry" and r.status == 307)
    assert redirects >= len(copied), note
    assert_all_six_identical(fresh_registry, seeded_vendor, note)


# ------------------------------------------------------------------------------------------------
# faults that never stop
# ------------------------------------------------------------------------------------------------


def test_faults_that_never_stop_fail_with_a_summary_then_a_rerun_finishes(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
    onprem: Path,
) -> None:
    """Every request for one target repository fails, forever: the other five images finish, the run
    fails naming what is not done, the state says exactly that, the ``.env`` is untouched; a clean
    re-run finishes the rest without sending finished blobs again."""
    env_before = (onprem / ".env").read_bytes()
    broken = f"{PREFIX}/writer"
    target_proxy.add(Rule(Fault.error(503), for_repo(broken, ANY), name="writer-down"))
    t0 = time.monotonic()
    out = cli("run", "--yes", "--tag", TAG_OLD, "--target", f"http://{target_proxy.host}/{PREFIX}", env=env)
    elapsed = time.monotonic() - t0
    note = explain(source_proxy, target_proxy, out=out)
    assert out.returncode == 1, note
    assert elapsed < 150, f"giving up took {elapsed:.0f}s"
    assert "Traceback" not in out.stderr, note
    final = wizard_lines(out.stderr)
    assert len(final) == 1 and final[0].startswith("currents-wizard: error:"), note
    assert "writer" in final[0] and " — " in final[0], final  # what is not done, and what to do next
    done_services = [s for s in SERVICES if s != "writer"]
    for s in done_services:  # what is done: each finished image is reported as such
        assert any(ln.split()[:2] == [s, "done"] for ln in out.stderr.splitlines()), (s, note)

    st = load_state(onprem)  # parses, and says exactly what happened
    assert st["steps"]["mirror"]["status"] == "failed"
    assert st["steps"]["configure"]["status"] == "pending" and st["steps"]["verify"]["status"] == "pending"
    images = st["images"][TAG_OLD]
    assert {s for s, r in images.items() if r.get("target_digest")} == set(done_services)
    assert (onprem / ".env").read_bytes() == env_before
    got = oracle_digests(fresh_registry, PREFIX, TAG_OLD)
    assert got["writer"] == "" and all(got[s] == seeded_vendor.digests[TAG_OLD][s] for s in done_services)

    first_uploads = {d for (repo, d), n in target_proxy.uploads_completed.items() if n}
    target_proxy.clear()
    seq0 = len(target_proxy.log)
    again = cli("run", "--yes", env=env)
    note = explain(source_proxy, target_proxy, out=again)
    assert again.returncode == 0, note
    assert_all_six_identical(fresh_registry, seeded_vendor, note)
    resent = {
        r.target.split("digest=", 1)[1]
        for r in target_proxy.log[seq0:]
        if r.method == "PUT" and "/blobs/uploads/" in r.target and "digest=" in r.target
    }
    assert not resent & first_uploads, f"blobs finished in the failed run were sent again: {resent & first_uploads}"
    st = load_state(onprem)
    assert all(r["status"] == "done" for r in st["steps"].values())
    assert f"DC_CURRENTS_IMAGE_TAG={TAG_OLD}" in (onprem / ".env").read_text()


def test_unreachable_vendor_mid_run_fails_cleanly_and_resumes(
    env: dict[str, str],
    seeded_vendor: SeededVendor,
    source_proxy: FaultProxy,
    target_proxy: FaultProxy,
    fresh_registry: Registry,
    onprem: Path,
) -> None:
    """The vendor side goes away for good after the plan (every blob download is reset): the mirror
    fails within its retry budget with one line and a hint; with the network back, a re-run finishes."""
    sizes = imagegen.unique_blob_sizes(seeded_vendor.images[TAG_OLD].values())
    api_only = {b.digest for b in seeded_vendor.images[TAG_OLD]["api"].all_blobs()}
    others = set(sizes) - api_only
    source_proxy.add(Rule(Fault.reset(after=0), for_digests(others, REGISTRY_BLOB_GET), name="down"))
    argv = ("mirror", "--yes", "--tag", TAG_OLD, "--target", f"http://{target_proxy.host}/{PREFIX}")
    try:
        out = cli(*argv, env=env, timeout=GIVE_UP_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the mirror did not give up within {GIVE_UP_WITHIN}s while every download of 24 blobs was cut "
            f"({sum(source_proxy.injected.values())} cuts so far): retries are not bounded — {explain(source_proxy)}"
        )
    note = explain(source_proxy, target_proxy, out=out)
    assert out.returncode == 1, note
    final = wizard_lines(out.stderr)
    assert len(final) == 1 and " — " in final[0] and "Traceback" not in out.stderr, note
    st = load_state(onprem)
    assert st["steps"]["mirror"]["status"] == "failed"
    assert not any(r.get("target_digest") for s, r in st["images"].get(TAG_OLD, {}).items() if s != "api")
    source_proxy.clear()
    again = mirror_cli(env, target_proxy)
    assert again.returncode == 0, explain(source_proxy, target_proxy, out=again)
    assert_all_six_identical(fresh_registry, seeded_vendor, note)
