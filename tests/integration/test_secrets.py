"""Secret hygiene (issue 7): run the whole flow with known secret values and look for them everywhere.

The secrets are the real ones of the run, not guesses:

* the STS ``SecretAccessKey`` and ``SessionToken`` moto returned for the assumed role, and the ECR
  ``authorizationToken`` (and the password inside it, ``513558712013-auth-token``) — read from the
  answers themselves by a recording proxy between the wizard and moto;
* the target registry password the test chose (and ``base64(user:password)``, the Basic header).

None may appear in the state folder, the log files, the ``.env``, its backups, the other files of
the on-prem folder, the Docker client config, the captured terminal output (with ``--verbose``),
or the argv of any process on the machine while the run goes on (``/proc/*/cmdline`` is polled).
The state folder is 0700, the state file and the logs are 0600, and the rewritten ``.env`` and its
backups keep the ``.env``'s own (private) mode.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TAG_NEW, TAG_OLD, SeededVendor
from tests.faultproxy import REGISTRY_BLOB_GET, Fault, FaultProxy, Rule, match
from tests.integration.test_faults import base_env, cli_argv, make_onprem, oracle_digests, source_env
from tests.testbed import ECR_PASSWORD, MotoServer

pytestmark = pytest.mark.integration

TARGET_USER = "ci-bot"
TARGET_PASSWORD = "Tgt-Secret-Pw-93c1f0"
WRONG_PASSWORD = "Wrong-Secret-Pw-77ab2"
MOTO_SESSION_TOKEN_PREFIX = "FQoGZXIvYXdzE"  # every session token moto hands out starts so


# ------------------------------------------------------------------------------------------------
# watching
# ------------------------------------------------------------------------------------------------


class ArgvWatch:
    """Polls ``/proc/*/cmdline`` of every process every few ms and keeps each distinct argv seen."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.seen: set[bytes] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="argv-watch")

    def _loop(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read()
                except OSError:
                    continue
                if argv:
                    self.seen.add(argv)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def secrets_from_aws(proxy: FaultProxy) -> dict[str, str]:
    """The temporary credentials and ECR tokens moto actually returned during the run."""
    found: dict[str, str] = {}
    for _target, _req, body in proxy.captured:
        text = body.decode("utf-8", "replace")
        for n, m in enumerate(re.findall(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", text)):
            found[f"sts secret key {n}"] = m
        for n, m in enumerate(re.findall(r"<SessionToken>([^<]+)</SessionToken>", text)):
            found[f"sts session token {n}"] = m
        if text.startswith("{") and "authorizationToken" in text:
            for n, item in enumerate(json.loads(text).get("authorizationData", [])):
                token = item["authorizationToken"]
                found[f"ecr token {n}"] = token
                found[f"ecr password {n}"] = base64.b64decode(token).decode().split(":", 1)[1]
    return found


def variants(secrets: dict[str, str]) -> dict[str, str]:
    """Each secret plus the forms it could leak in (Basic header, URL-encoded, 16-char slices)."""
    out = dict(secrets)
    for name, value in secrets.items():
        out[f"{name} (url-encoded)"] = value.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
        if len(value) >= 40:  # a long token cut or wrapped in a message still leaks its middle
            out[f"{name} (middle)"] = value[len(value) // 2 - 8 : len(value) // 2 + 8]
    return {k: v for k, v in out.items() if len(v) >= 8}


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def leaks(secrets: dict[str, str], texts: dict[str, bytes]) -> list[str]:
    found = []
    for where, data in texts.items():
        for name, value in secrets.items():
            if value.encode() in data:
                found.append(f"{name} in {where}")
    return found


def assert_private_modes(onprem: Path, env_mode: int) -> None:
    state_dir = onprem / ".currents-wizard"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700, oct(state_dir.stat().st_mode)
    for p in [state_dir / "state.json", *state_dir.glob("wizard.log*")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
    assert (state_dir / "wizard.log").exists()
    for p in [onprem / ".env", *onprem.glob(".env.bak-*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & ~env_mode == 0, f"{p.name} is {mode:04o}, more open than the .env's {env_mode:04o}"


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def world(
    tmp_path: Path, aws_env: MotoServer, seeded_vendor: SeededVendor, registry_factory: Any
) -> Iterator[dict[str, Any]]:
    target = registry_factory(auth=(TARGET_USER, TARGET_PASSWORD))
    onprem = make_onprem(tmp_path / "on-prem")
    (onprem / ".env").chmod(0o600)  # a real .env holds the deployment's own secrets
    with (
        FaultProxy(aws_env.endpoint, capture=match(listener=None), lifetime=300) as aws,
        FaultProxy(seeded_vendor.registry.url, upstream_auth=seeded_vendor.auth, lifetime=300) as src,
    ):
        env = {**base_env(aws_env, onprem, aws.url), **source_env(src.host)}
        env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
        (tmp_path / "docker-config").mkdir()
        (tmp_path / "docker-config" / "config.json").write_text("{}\n")
        yield {"onprem": onprem, "env": env, "aws": aws, "source": src, "target": target, "tmp": tmp_path}


def run_watched(argv: list[str], env: dict[str, str], stdin: str, watch: ArgvWatch) -> subprocess.CompletedProcess[str]:
    """Run the wizard while ``watch`` polls argv; make sure the watcher saw it running."""
    before = watch.samples
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=240, check=False)
    deadline = time.monotonic() + 2
    while watch.samples < before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    return out


def common_secrets(world: dict[str, Any]) -> dict[str, str]:
    secrets = secrets_from_aws(world["aws"])
    assert any(k.startswith("sts session token") for k in secrets), "no AssumeRole answer was recorded"
    assert any(k.startswith("ecr password") for k in secrets), "no ECR token answer was recorded"
    for k, v in secrets.items():
        if k.startswith("sts session token"):
            assert v.startswith(MOTO_SESSION_TOKEN_PREFIX), k
        if k.startswith("ecr password"):
            assert v == ECR_PASSWORD
    secrets["target password"] = TARGET_PASSWORD
    secrets["target basic header"] = base64.b64encode(f"{TARGET_USER}:{TARGET_PASSWORD}".encode()).decode()
    secrets["wrong target password"] = WRONG_PASSWORD
    secrets["vendor basic header"] = base64.b64encode(f"AWS:{ECR_PASSWORD}".encode()).decode()
    return variants(secrets)


def assert_no_leaks(world: dict[str, Any], outputs: dict[str, str], watch: ArgvWatch) -> dict[str, str]:
    secrets = common_secrets(world)
    onprem: Path = world["onprem"]
    texts: dict[str, bytes] = {str(p.relative_to(world["tmp"])): p.read_bytes() for p in files_under(onprem)}
    texts.update({f"docker config {p.name}": p.read_bytes() for p in files_under(world["tmp"] / "docker-config")})
    texts.update({name: text.encode() for name, text in outputs.items()})
    texts.update({f"argv #{i}": argv.replace(b"\0", b" ") for i, argv in enumerate(sorted(watch.seen))})
    assert any(b"currents-wizard" in a or b"wizard" in a for a in watch.seen), "the argv watcher never saw the run"
    found = leaks(secrets, texts)
    # the session-token pattern, whatever its value
    for where, data in texts.items():
        if MOTO_SESSION_TOKEN_PREFIX.encode() in data:
            found.append(f"an STS session token ({MOTO_SESSION_TOKEN_PREFIX}…) in {where}")
    assert not found, "secrets leaked:\n" + "\n".join(sorted(set(found)))
    return secrets


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------


def test_full_flow_registry_engine_leaks_nothing(world: dict[str, Any], seeded_vendor: SeededVendor) -> None:
    """First a refused password, then the full ``run --yes --verbose`` (password on stdin) with an
    expired-token 401 mid-copy (so the refresh path runs too), then an upgrade."""
    env, onprem, target, src = world["env"], world["onprem"], world["target"], world["source"]
    base = ["run", "--yes", "--verbose", "--target", f"http://{target.host}/currents"]
    base += ["--target-username", TARGET_USER, "--target-password-stdin"]
    src.add(Rule(Fault.pause(2.5), match("GET", r"/manifests/"), nth=(1,)))  # the token ages a little
    src.add(Rule(Fault.unauthorized(), REGISTRY_BLOB_GET, nth=(3,)))
    outputs: dict[str, str] = {}
    with ArgvWatch() as watch:
        bad = run_watched(cli_argv(*base, "--tag", TAG_OLD), env, WRONG_PASSWORD + "\n", watch)
        outputs.update({"stdout (wrong password)": bad.stdout, "stderr (wrong password)": bad.stderr})
        assert bad.returncode == 1, bad.stderr
        good = run_watched(cli_argv(*base, "--tag", TAG_OLD), env, TARGET_PASSWORD + "\n", watch)
        outputs.update({"stdout": good.stdout, "stderr": good.stderr})
        assert good.returncode == 0, good.stderr
        up = run_watched(cli_argv(*base, "--tag", TAG_NEW), env, TARGET_PASSWORD + "\n", watch)
        outputs.update({"stdout (upgrade)": up.stdout, "stderr (upgrade)": up.stderr})
        assert up.returncode == 0, up.stderr
        status = run_watched(cli_argv("status", "--json"), env, "", watch)
        outputs["status --json"] = status.stdout + status.stderr
    assert src.injected["unauthorized"] == 1
    creds = (TARGET_USER, TARGET_PASSWORD)
    assert oracle_digests(target, "currents", TAG_NEW, creds=creds) == seeded_vendor.digests[TAG_NEW]
    secrets = assert_no_leaks(world, outputs, watch)
    assert sum(1 for k in secrets if k.startswith("sts session token") and "(" not in k) >= 1
    assert_private_modes(onprem, env_mode=0o600)
    assert list(onprem.glob(".env.bak-*")), "configure wrote no backup"


def test_docker_engine_never_gets_a_password_in_argv(
    world: dict[str, Any], seeded_vendor: SeededVendor, dockerd: Any
) -> None:
    """``--engine docker``: logins go through the Engine API, never ``docker login -p`` or a file;
    the target password comes from the environment variable."""
    env = {**world["env"], "DOCKER_HOST": dockerd.docker_host, "CURRENTS_WIZARD_TARGET_PASSWORD": TARGET_PASSWORD}
    target = world["target"]
    argv = cli_argv(
        "run", "--yes", "--verbose", "--engine", "docker", "--services", "director,writer",
        "--target", f"http://{target.host}/viadocker", "--target-username", TARGET_USER, "--tag", TAG_OLD,
    )  # fmt: skip
    with ArgvWatch() as watch:
        out = run_watched(argv, env, "", watch)
    assert out.returncode == 0, out.stderr
    assert_no_leaks(world, {"stdout": out.stdout, "stderr": out.stderr}, watch)
    assert_private_modes(world["onprem"], env_mode=0o600)


def test_the_detectors_find_a_planted_secret(tmp_path: Path) -> None:
    """The oracle itself: a secret in a file and in a short-lived process's argv is reported."""
    secret = MOTO_SESSION_TOKEN_PREFIX + "planted-0123456789abcdef0123456789abcdef"
    (tmp_path / "state.json").write_text(json.dumps({"token": secret}))
    with ArgvWatch() as watch:
        subprocess.run(["sh", "-c", "sleep 0.2", "sh", secret[-20:]], check=True)
        time.sleep(0.05)
    texts = {str(p): p.read_bytes() for p in files_under(tmp_path)}
    texts.update({f"argv {i}": a.replace(b"\0", b" ") for i, a in enumerate(watch.seen)})
    found = leaks(variants({"token": secret, "tail": secret[-20:]}), texts)
    assert any("state.json" in f for f in found) and any("argv" in f for f in found), found
