"""The bad-input catalogue (issue 7): every way a user or their machine can get it wrong, through the
real console script.

Each case asserts the contract of the README's "Exit codes":

* exactly the documented non-zero exit code (2 bad input · 1 failed · 3 not granted · 4 locked ·
  130 interrupted) — or 0 for the ``.env`` variants that must simply work;
* ONE clear line from the wizard (``currents-wizard: ...``) saying what is wrong and what to do next
  (`` — <hint>`` or a pointer to ``--help``), no traceback; when the failure comes before any step
  starts, that line is all of stderr;
* the ``.env`` byte-identical, and the state file byte-identical (or still absent) — unless a step
  finished, in which case the failing step is recorded as not done and earlier steps stay done.

Cases that need root powers (unreadable files, tmpfs) drop ``CAP_DAC_OVERRIDE`` for the child or
mount a 512 KiB tmpfs; they skip outside CI when the machine does not allow it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import TAG_NEW, TAG_OLD, TARGET_USER, SeededVendor
from tests.faultproxy import ANY, REGISTRY_BLOB_GET, Fault, FaultProxy, Rule, match
from tests.integration.test_crash_resume import Run
from tests.integration.test_faults import base_env, cli_argv, make_onprem, source_env, wizard_lines
from tests.testbed import MotoServer, Registry, create_whoami_only_user, free_port, hold_state_lock, in_ci

pytestmark = pytest.mark.integration

VALID_TARGET = "registry.example.com/currents"
WRONG_PASSWORD = "wrong-pass-8f2c1"
STATE_REL = Path(".currents-wizard") / "state.json"

# Linux capabilities a root child gives up so file modes apply to it (prctl PR_CAPBSET_DROP).
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_dac_caps() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


# ------------------------------------------------------------------------------------------------
# the world a case runs in
# ------------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    tmp: Path
    onprem: Path
    env: dict[str, str]
    moto: MotoServer
    vendor: SeededVendor
    open_reg: Registry
    auth_reg: Registry
    tls_reg: Registry
    refusing_vendor: Registry
    dead: str  # 127.0.0.1:<port nobody listens on>
    tmpfs: Path | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    preexec: Callable[[], None] | None = None

    @property
    def state(self) -> Path:
        return self.onprem / STATE_REL

    def mirror_args(self, target: str, *extra: str) -> list[str]:
        return ["mirror", "--yes", "--tag", TAG_OLD, "--target", target, *extra]


@dataclass(frozen=True)
class Case:
    """One bad input. ``args``/``env``/``setup`` get the :class:`Ctx`; ``code`` is the documented exit.

    ``not_done``: the steps that ran and must not be recorded as done (the state may change only by
    that); empty means the state must stay byte-identical.  ``mentions``: words the line must carry
    (any one of each tuple).  ``secret``: a value that must not appear in the output.
    """

    id: str
    args: Callable[[Ctx], Sequence[str]]
    code: int
    setup: Callable[[Ctx], None] | None = None
    env: Callable[[Ctx], dict[str, str]] | None = None
    not_done: tuple[str, ...] = ()
    mentions: tuple[tuple[str, ...], ...] = ()
    secret: str = ""
    stdin: str = ""


def _run(ctx: Ctx, case: Case) -> subprocess.CompletedProcess[str]:
    env = {**ctx.env, **(case.env(ctx) if case.env else {})}
    return subprocess.run(
        cli_argv(*case.args(ctx)),
        input=case.stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
        preexec_fn=ctx.preexec,
    )


def assert_one_clear_line(out: subprocess.CompletedProcess[str], case_id: str) -> str:
    """The wizard's single final line: what went wrong and what to do next; no traceback."""
    where = f"{case_id}: exit {out.returncode}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, where
    lines = wizard_lines(out.stderr)
    assert len(lines) == 1, f"expected one `currents-wizard:` line — {where}"
    line = lines[0]
    if not any(ln.startswith("==> ") for ln in out.stderr.splitlines()):
        # failed before any step ran: that line is all there is
        assert [ln for ln in out.stderr.splitlines() if ln.strip()] == [line], where
    hint = line.split(" — ", 1)[1].strip() if " — " in line else ""
    assert hint or "--help" in line, f"no next step in {line!r}"
    assert len(line) < 400, f"not one clear line ({len(line)} chars): {line!r}"
    return line


# ------------------------------------------------------------------------------------------------
# setups
# ------------------------------------------------------------------------------------------------


def _write(rel: str, data: bytes, mode: int | None = None) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        p = ctx.onprem / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if mode is not None:
            p.chmod(mode)

    return setup


def _valid_state(ctx: Ctx) -> bytes:
    now = "2026-01-01T00:00:00+00:00"
    steps = {s: {"status": "pending"} for s in ("policy", "share", "auth", "mirror", "configure", "verify")}
    doc = {
        "schema_version": 1,
        "created_at": now,
        "updated_at": now,
        "wizard_version": "0.1.0",
        "inputs": {"tag": TAG_OLD, "target": VALID_TARGET, "engine": "registry"},
        "steps": steps,
        "images": {},
        "history": [],
    }
    return json.dumps(doc, indent=2).encode()


def _state_bytes(make: Callable[[bytes], bytes], mode: int = 0o600) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ctx.state.write_bytes(make(_valid_state(ctx)))
        ctx.state.chmod(mode)
        ctx.cleanups.append(lambda: ctx.state.chmod(0o600))

    return setup


def _future_state(raw: bytes) -> bytes:
    doc = json.loads(raw)
    doc["schema_version"] = 99
    return json.dumps(doc).encode()


def _no_caps(then: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    """Run ``then`` and make the child obey file modes (root otherwise reads everything)."""

    def setup(ctx: Ctx) -> None:
        then(ctx)
        ctx.preexec = _drop_dac_caps

    return setup


def _chmod_env(mode: int) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.onprem / ".env").chmod(mode)
        ctx.cleanups.append(lambda: (ctx.onprem / ".env").chmod(0o644))

    return setup


def _chmod_dir(mode: int) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.onprem.chmod(mode)
        ctx.cleanups.append(lambda: ctx.onprem.chmod(0o755))

    return setup


def _remove_env(ctx: Ctx) -> None:
    (ctx.onprem / ".env").unlink()


def _hold_lock(ctx: Ctx) -> None:
    holder = hold_state_lock(ctx.state, seconds=60)
    ctx.cleanups.append(lambda: (holder.kill(), holder.wait()))


def _no_aws_credentials(ctx: Ctx) -> dict[str, str]:
    env = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env["HOME"] = str(ctx.tmp)  # no ~/.aws
    return env


def _limited_user(ctx: Ctx) -> dict[str, str]:
    """An IAM user allowed only sts:GetCallerIdentity, with moto's IAM enforcement on."""
    with ctx.moto.patched_environ():
        keys = create_whoami_only_user(boto3.client("iam"))
    ctx.moto.set_auth(True)
    ctx.cleanups.append(lambda: ctx.moto.set_auth(False))
    return keys


# ------------------------------------------------------------------------------------------------
# the catalogue
# ------------------------------------------------------------------------------------------------


def run_yes(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ["run", "--yes", "--target", VALID_TARGET, *extra]


def configure(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ["configure", "--yes", "--repository", VALID_TARGET, "--tag", TAG_NEW, *extra]


CASES: list[Case] = [
    # -- malformed values: refused before anything is written -----------------------------------
    Case("role-arn-short-account", run_yes("--role-arn", "arn:aws:iam::12:role/CurrentsEcrPull"), 2,
         mentions=(("role ARN",),)),
    Case("role-arn-is-a-user", run_yes("--role-arn", "arn:aws:iam::123456789012:user/bob"), 2),
    Case("role-arn-bare-name", run_yes("--role-arn", "CurrentsEcrPull"), 2),
    Case("vendor-account-11-digits", run_yes("--vendor-account", "51355871201"), 2, mentions=(("account",),)),
    Case("region-unknown", run_yes("--region", "mars-1"), 2, mentions=(("region",),)),
    Case("region-uppercase", run_yes("--region", "US-EAST-1"), 2),
    Case("tag-leading-dash", run_yes("--tag=-bad"), 2, mentions=(("tag",),)),
    Case("tag-too-long", run_yes("--tag", "a" * 129), 2),
    Case("tag-with-slash", run_yes("--tag", "v1/2"), 2),
    Case("source-registry-ftp", run_yes("--source-registry", "ftp://vendor.example.com"), 2),
    Case("source-registry-port-too-big", run_yes("--source-registry", "vendor.example.com:99999"), 2),
    Case("target-uppercase-path", lambda c: ["run", "--yes", "--target", "registry.example.com/Currents"], 2,
         mentions=(("Currents",),)),
    Case("target-space-in-path", lambda c: ["run", "--yes", "--target", "registry.example.com/cur rents"], 2),
    Case("target-leading-dash-component", lambda c: ["run", "--yes", "--target", "registry.example.com/-x"], 2),
    Case("target-empty-component", lambda c: ["run", "--yes", "--target", "registry.example.com/a//b"], 2),
    Case("target-ftp-scheme", lambda c: ["run", "--yes", "--target", "ftp://registry.example.com/x"], 2),
    Case("target-underscore-host", lambda c: ["run", "--yes", "--target", "reg_istry.example.com/x"], 2),
    Case("unknown-service", run_yes("--services", "api,web"), 2, mentions=(("web",),)),
    Case("no-service", run_yes("--services", ","), 2),
    Case("unknown-engine", run_yes("--engine", "podman"), 2),
    Case("unknown-step", run_yes("--steps", "policy,deploy"), 2, mentions=(("deploy",),)),
    Case("unknown-flag", run_yes("--no-such-flag"), 2),
    Case("run-without-yes", lambda c: ["run", "--target", VALID_TARGET], 2, mentions=(("--yes",),)),
    Case("interactive-without-terminal", lambda c: [], 2, mentions=(("run --yes", "--plain"),)),
    Case("missing-target", lambda c: ["run", "--yes"], 2, mentions=(("--target",),)),
    Case("ca-file-missing", run_yes("--ca-file", "/nonexistent/ca.pem"), 2, mentions=(("--ca-file",),)),
    Case("ca-file-not-pem", lambda c: c.mirror_args(f"{c.tls_reg.host}/x", "--ca-file", f"{c.tmp}/garbage.pem"), 2,
         setup=lambda c: (c.tmp / "garbage.pem").write_text("not a certificate\n"), not_done=("mirror",),
         mentions=(("CA",),)),
    # -- files and folders ----------------------------------------------------------------------
    Case("dir-missing", lambda c: ["run", "--yes", "--dir", str(c.tmp / "nope"), "--target", VALID_TARGET], 2,
         mentions=(("--dir",),)),
    Case("dir-is-a-file", lambda c: ["run", "--yes", "--dir", str(c.onprem / ".env"), "--target", VALID_TARGET], 2),
    Case("env-missing", configure(), 2, setup=_remove_env, mentions=(("--create-env", ".env.example"),)),
    Case("env-file-in-missing-folder", configure("--env-file", "/nonexistent/dir/.env"), 2),
    Case("env-file-is-a-folder", lambda c: [*configure()(c), "--env-file", str(c.tmp)], 2),
    Case("env-read-only", configure(), 2, setup=_chmod_env(0o444), not_done=("configure",),
         mentions=(("read-only",),)),
    Case("env-unreadable", configure(), 2, setup=_no_caps(_chmod_env(0o000)), mentions=(("permission", "read"),)),
    Case("folder-read-only", configure(), 2, setup=_no_caps(_chmod_dir(0o555))),
    Case("folder-unreadable", configure(), 2, setup=_no_caps(_chmod_dir(0o000))),
    # -- state ----------------------------------------------------------------------------------
    Case("state-corrupt", run_yes(), 2, setup=_state_bytes(lambda raw: b"{not json at all"),
         mentions=(("corrupt",), ("reset", "move it aside"))),
    Case("state-truncated", run_yes(), 2, setup=_state_bytes(lambda raw: raw[: len(raw) // 2]),
         mentions=(("corrupt",),)),
    Case("state-future-version", run_yes(), 2, setup=_state_bytes(_future_state), mentions=(("newer",),)),
    Case("state-not-an-object", run_yes(), 2, setup=_state_bytes(lambda raw: b"[]")),
    Case("state-unreadable", run_yes(), 2, setup=_no_caps(_state_bytes(lambda raw: raw, mode=0o000)),
         mentions=(("state",),)),
    Case("second-wizard-running", run_yes(), 4, setup=_hold_lock, mentions=(("another",),)),
    # -- AWS ------------------------------------------------------------------------------------
    Case("no-aws-credentials", lambda c: ["run", "--yes", "--target", f"http://{c.open_reg.host}/x"], 1,
         env=_no_aws_credentials, not_done=("auth",), mentions=(("credentials",), ("aws configure", "sso"))),
    Case("aws-access-denied", lambda c: ["run", "--yes", "--target", f"http://{c.open_reg.host}/x"], 1,
         env=_limited_user, not_done=("auth",), mentions=(("denied",), ("sts:AssumeRole",))),
    # -- registries -----------------------------------------------------------------------------
    Case("vendor-registry-down", lambda c: ["run", "--yes", "--target", f"http://{c.open_reg.host}/x"], 1,
         env=lambda c: source_env(c.dead), not_done=("auth",)),
    Case("vendor-refuses-token", lambda c: ["run", "--yes", "--target", f"http://{c.open_reg.host}/x"], 3,
         env=lambda c: source_env(c.refusing_vendor.host), not_done=("auth",)),
    Case("target-registry-down", lambda c: c.mirror_args(f"http://{c.dead}/x"), 1, not_done=("mirror",),
         mentions=(("reach", "connect", "refused"),)),
    Case("target-wrong-password",
         lambda c: c.mirror_args(f"http://{c.auth_reg.host}/x", "--target-username", TARGET_USER[0]), 1,
         env=lambda c: {"CURRENTS_WIZARD_TARGET_PASSWORD": WRONG_PASSWORD}, not_done=("mirror",),
         secret=WRONG_PASSWORD, mentions=(("password", "credentials", "login", "401", "denied", "refused"),)),
    Case("target-wrong-password-stdin",
         lambda c: c.mirror_args(f"http://{c.auth_reg.host}/x", "--target-username", TARGET_USER[0],
                                 "--target-password-stdin"), 1,
         stdin=WRONG_PASSWORD + "\n", not_done=("mirror",), secret=WRONG_PASSWORD,
         mentions=(("password", "credentials", "login", "401", "denied", "refused"),)),
    Case("tls-to-plain-http-registry", lambda c: c.mirror_args(f"{c.open_reg.host}/x"), 1, not_done=("mirror",),
         mentions=(("http://", "--insecure-registry"),)),
    Case("self-signed-without-ca-file", lambda c: c.mirror_args(f"{c.tls_reg.host}/x"), 1, not_done=("mirror",),
         mentions=(("--ca-file",),)),
    Case("no-docker-daemon", lambda c: c.mirror_args(f"http://{c.open_reg.host}/x", "--engine", "docker"), 1,
         env=lambda c: {"DOCKER_HOST": f"unix://{c.tmp}/dead-docker.sock"}, not_done=("mirror",),
         mentions=(("Docker", "docker"),)),
    Case("disk-full-writing-archive",
         lambda c: ["mirror", "--yes", "--tag", TAG_OLD, "--engine", "archive", "--archive", f"{c.tmpfs}/currents.tar"],
         1, not_done=("mirror",), mentions=(("space", "full"),)),
]  # fmt: skip

ENV_VARIANTS: dict[str, tuple[bytes, bytes]] = {
    # name: (old .env, the .env expected after `configure` — every other byte kept)
    "crlf": (
        b"# Currents\r\nMONGO_URI=mongodb://x\r\nDC_CURRENTS_IMAGE_REPOSITORY=old.example.com/c/\r\n"
        b"DC_CURRENTS_IMAGE_TAG=2026-01-26-001\r\nTAIL=1\r\n",
        b"# Currents\r\nMONGO_URI=mongodb://x\r\nDC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/\r\n"
        b"DC_CURRENTS_IMAGE_TAG=2026-02-10-001\r\nTAIL=1\r\n",
    ),
    "export-prefix": (
        b"export A=1\nexport DC_CURRENTS_IMAGE_REPOSITORY=old.example.com/c/\nexport DC_CURRENTS_IMAGE_TAG=x\n",
        b"export A=1\nexport DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/\n"
        b"export DC_CURRENTS_IMAGE_TAG=2026-02-10-001\n",
    ),
    "quoted-values": (
        b'DC_CURRENTS_IMAGE_REPOSITORY="old.example.com/c/"\nDC_CURRENTS_IMAGE_TAG=\'x\'\nPW="a\'b"\n',
        b"DC_CURRENTS_IMAGE_REPOSITORY=\"registry.example.com/currents/\"\nDC_CURRENTS_IMAGE_TAG='2026-02-10-001'\n"
        b'PW="a\'b"\n',
    ),
    "no-trailing-newline": (
        b"A=1\nDC_CURRENTS_IMAGE_REPOSITORY=old.example.com/c/\nDC_CURRENTS_IMAGE_TAG=x",
        b"A=1\nDC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/\nDC_CURRENTS_IMAGE_TAG=2026-02-10-001",
    ),
    "commented-out-keys-untouched": (
        b"# DC_CURRENTS_IMAGE_TAG=keep-me\nDC_CURRENTS_IMAGE_REPOSITORY=old.example.com/c/\n"
        b"DC_CURRENTS_IMAGE_TAG=x\n#DC_CURRENTS_IMAGE_REPOSITORY=also-keep\n",
        b"# DC_CURRENTS_IMAGE_TAG=keep-me\nDC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/\n"
        b"DC_CURRENTS_IMAGE_TAG=2026-02-10-001\n#DC_CURRENTS_IMAGE_REPOSITORY=also-keep\n",
    ),
}
DUPLICATES = (
    b"DC_CURRENTS_IMAGE_TAG=first\nA=1\nDC_CURRENTS_IMAGE_REPOSITORY=old.example.com/c/\nDC_CURRENTS_IMAGE_TAG=second\n"
)


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """A 512 KiB tmpfs (the images are ~1.2 MB): writing the archive there runs out of space."""
    mnt = tmp_path_factory.mktemp("tiny-disk")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def ctx(
    tmp_path: Path,
    aws_env: MotoServer,
    seeded_vendor: SeededVendor,
    target_registry: Registry,
    auth_registry: Registry,
    tls_registry: Registry,
    registry_factory: Any,
    tmpfs: Path | None,
) -> Iterator[Ctx]:
    onprem = make_onprem(tmp_path / "on-prem")
    refusing = _refusing_vendor(registry_factory, seeded_vendor)
    c = Ctx(
        tmp=tmp_path,
        onprem=onprem,
        env={**base_env(aws_env, onprem), **source_env(seeded_vendor.host)},
        moto=aws_env,
        vendor=seeded_vendor,
        open_reg=target_registry,
        auth_reg=auth_registry,
        tls_reg=tls_registry,
        refusing_vendor=refusing,
        dead=f"127.0.0.1:{free_port()}",
        tmpfs=tmpfs,
    )
    yield c
    for fn in reversed(c.cleanups):
        with contextlib.suppress(Exception):
            fn()


_REFUSING: dict[str, Registry] = {}


def _refusing_vendor(registry_factory: Any, vendor: SeededVendor) -> Registry:
    """A vendor registry whose password is not moto's token (Currents has not granted the role)."""
    if "reg" not in _REFUSING:
        _REFUSING["reg"] = registry_factory(auth=("AWS", "a-token-for-someone-else"))
    return _REFUSING["reg"]


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ctx: Ctx) -> None:
    if case.id == "disk-full-writing-archive" and ctx.tmpfs is None:
        if in_ci():
            pytest.fail("cannot mount a tmpfs (needs root)")
        pytest.skip("cannot mount a tmpfs here (needs root)")
    if case.setup:
        case.setup(ctx)
    if ctx.preexec is not None and os.geteuid() != 0:
        pytest.skip("needs root to drop capabilities")
    env_before = (ctx.onprem / ".env").read_bytes() if (ctx.onprem / ".env").exists() else None
    state_before = _read_state(ctx)
    out = _run(ctx, case)
    for fn in reversed(ctx.cleanups):  # give permissions back before looking at the files
        with contextlib.suppress(Exception):
            fn()
    ctx.cleanups.clear()
    assert out.returncode == case.code, f"{case.id}: exit {out.returncode}, expected {case.code}\n{out.stderr[-3000:]}"
    line = assert_one_clear_line(out, case.id)
    for words in case.mentions:
        assert any(w in line for w in words), f"{case.id}: the line should mention {' or '.join(words)}: {line!r}"
    if case.secret:
        assert case.secret not in out.stderr + out.stdout, f"{case.id}: the password was printed"
    env_after = (ctx.onprem / ".env").read_bytes() if (ctx.onprem / ".env").exists() else None
    assert env_after == env_before, f"{case.id}: the .env changed"
    _assert_state(ctx, case, state_before)


def _read_state(ctx: Ctx) -> bytes | None:
    try:
        return ctx.state.read_bytes()
    except FileNotFoundError:
        return None


def _assert_state(ctx: Ctx, case: Case, before: bytes | None) -> None:
    after = _read_state(ctx)
    if not case.not_done:
        assert after == before, f"{case.id}: the state file changed: {(after or b'')[:400]!r}"
        return
    assert after is not None, f"{case.id}: no state recorded"
    steps = json.loads(after)["steps"]
    for sid in case.not_done:
        assert steps[sid]["status"] != "done", f"{case.id}: {sid} recorded as done"
    if before is not None:
        old_done = {s for s, r in json.loads(before)["steps"].items() if r["status"] == "done"}
        assert old_done <= {s for s, r in steps.items() if r["status"] == "done"}


@pytest.mark.parametrize("name", sorted(ENV_VARIANTS))
def test_env_variants_are_edited_in_place(name: str, ctx: Ctx) -> None:
    """Unusual but valid ``.env`` files: only the two values change, every other byte stays."""
    old, new = ENV_VARIANTS[name]
    env_file = ctx.onprem / ".env"
    env_file.write_bytes(old)
    out = _run(ctx, Case(name, configure(), 0))
    assert out.returncode == 0, f"{name}: exit {out.returncode}\n{out.stderr}"
    assert "Traceback" not in out.stderr
    assert env_file.read_bytes() == new
    backups = list(ctx.onprem.glob(".env.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == old


def test_env_with_duplicate_keys(ctx: Ctx) -> None:
    """A key set twice: the value that counts (the last, for docker compose) ends up new; the other
    lines keep their bytes; a re-run changes nothing more."""
    env_file = ctx.onprem / ".env"
    env_file.write_bytes(DUPLICATES)
    out = _run(ctx, Case("dup", configure(), 0))
    assert out.returncode == 0, out.stderr
    lines = env_file.read_bytes().split(b"\n")
    assert lines[1] == b"A=1" and lines[-1] == b"", lines
    tags = [ln for ln in lines if ln.startswith(b"DC_CURRENTS_IMAGE_TAG=")]
    assert tags[-1] == b"DC_CURRENTS_IMAGE_TAG=" + TAG_NEW.encode()
    repos = [ln for ln in lines if ln.startswith(b"DC_CURRENTS_IMAGE_REPOSITORY=")]
    assert repos == [b"DC_CURRENTS_IMAGE_REPOSITORY=" + VALID_TARGET.encode() + b"/"]
    compose = subprocess.run(
        ["docker-compose", "-f", str(ctx.onprem / "compose.currents.yml"), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if compose.returncode == 0:  # docker-compose is the real reader of this file
        assert f"{VALID_TARGET}/api:{TAG_NEW}" in compose.stdout
    again = _run(ctx, Case("dup-again", configure(), 0))
    assert again.returncode == 0 and env_file.read_bytes() == b"\n".join(lines)


# -- Ctrl-C in each step ----------------------------------------------------------------------------

STEP_TITLES = {
    "policy": "==> IAM policy",
    "share": "==> Share role ARN",
    "auth": "==> Authenticate",
    "mirror": "==> Mirror images",
    "configure": "==> Configure .env",
    "verify": "==> Verify",
}
ORDER = list(STEP_TITLES)


@pytest.fixture
def slow_world(ctx: Ctx, seeded_vendor: SeededVendor, registry_factory: Any) -> Iterator[dict[str, FaultProxy]]:
    """moto, the vendor and a fresh target each behind a proxy, so a step can be held up on purpose."""
    target = registry_factory()
    with (
        FaultProxy(ctx.moto.endpoint, lifetime=200) as aws,
        FaultProxy(seeded_vendor.registry.url, upstream_auth=seeded_vendor.auth, lifetime=200) as src,
        FaultProxy(target.url, lifetime=200) as dst,
    ):
        ctx.env.update(base_env(ctx.moto, ctx.onprem, aws.url))
        ctx.env.update(source_env(src.host))
        ctx.env["CURRENTS_WIZARD_TARGET"] = f"http://{dst.host}/ctrlc"
        ctx.env["CURRENTS_WIZARD_TAG"] = TAG_OLD
        yield {"aws": aws, "source": src, "target": dst}


@pytest.mark.parametrize("step", ORDER)
def test_ctrl_c_in_each_step(step: str, ctx: Ctx, slow_world: dict[str, FaultProxy]) -> None:
    """SIGINT while ``step`` runs (held up by a slow answer): exit 130, one line, state kept — the
    step is not recorded as done or failed, earlier steps stay done — and a re-run finishes."""
    before = ORDER[: ORDER.index(step)]
    extra = ["--create-role", "CurrentsEcrPull"] if step == "policy" else []
    if before:
        prep = subprocess.run(
            cli_argv("run", "--yes", "--steps", ",".join(before)), env=ctx.env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert prep.returncode == 0, prep.stderr
    env_before = (ctx.onprem / ".env").read_bytes()
    # hold up the step (or, for the two local steps, the step right after it)
    hold = {
        "policy": ("aws", ANY),
        "share": ("aws", ANY),
        "auth": ("aws", ANY),
        "mirror": ("source", REGISTRY_BLOB_GET),
        "configure": ("target", match("HEAD", r"/manifests/")),
        "verify": ("target", match("HEAD", r"/manifests/")),
    }[step]
    slow_world[hold[0]].add(Rule(Fault.pause(8.0), hold[1], name="hold"))
    run = Run(cli_argv("run", "--yes", *extra), ctx.env)
    try:
        assert run.wait_line(STEP_TITLES[step]) is not None, run.stderr
        time.sleep(0.3 if step not in ("share", "configure") else 0.0)
        assert run.proc.poll() is None, f"the run ended before Ctrl-C: {run.stderr}"
        run.proc.send_signal(signal.SIGINT)
        code = run.finish(timeout=60)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    out = subprocess.CompletedProcess(run.proc.args, code, "", run.stderr)
    assert code == 130, f"Ctrl-C in {step}: exit {code}\n{run.stderr}"
    line = assert_one_clear_line(out, f"ctrl-c-{step}")
    assert "interrupted" in line, line
    state = json.loads(ctx.state.read_text())["steps"]
    for sid in before:
        assert state[sid]["status"] == "done", (sid, state)
    allowed = {"pending", "done"} if step in ("share", "configure") else {"pending"}
    assert state[step]["status"] in allowed, f"after Ctrl-C in {step}: {state[step]}"
    env_now = (ctx.onprem / ".env").read_bytes()
    if step != "configure" or state["configure"]["status"] != "done":
        assert env_now == env_before, "the .env changed although configure did not finish"
    slow_world[hold[0]].clear()
    again = subprocess.run(cli_argv("run", "--yes"), env=ctx.env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, f"re-run after Ctrl-C in {step}: {again.stderr}"
