"""`currents-wizard run --yes` end to end, as CI would run it: a subprocess against moto (IAM/STS/ECR)
and real loopback registries (vendor with moto's ECR token as its password, target open or with auth);
skopeo is the outside oracle for digests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TAG_NEW, TAG_OLD, TARGET_USER, SeededVendor
from tests.testbed import MotoServer, Registry, skopeo_digest

FIXTURES = Path(__file__).resolve().parents[2] / "wizard" / "demo_data"
EXE = shutil.which("currents-wizard")
ROLE = "arn:aws:iam::123456789012:role/CurrentsEcrPull"


def wizard(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "wizard", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture
def onprem(tmp_path: Path) -> Path:
    d = tmp_path / "on-prem"
    d.mkdir()
    for name in (".env.example", "VERSION", "compose.currents.yml"):
        shutil.copyfile(FIXTURES / name, d / name)
    shutil.copyfile(FIXTURES / ".env.example", d / ".env")
    return d


@pytest.fixture
def env(aws_env: MotoServer, seeded_vendor: SeededVendor, onprem: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_WIZARD_")}
    e.update(aws_env.subprocess_env())
    e.update(
        {
            "CURRENTS_WIZARD_DIR": str(onprem),
            "CURRENTS_WIZARD_SOURCE_REGISTRY": seeded_vendor.host,
            "CURRENTS_WIZARD_INSECURE_REGISTRY": seeded_vendor.host,
            "CURRENTS_WIZARD_ROLE_ARN": ROLE,
        }
    )
    return e


def target_digests(reg: Registry, path: str, tag: str, creds: tuple[str, str] | None = None) -> dict[str, str]:
    return {
        s: skopeo_digest(f"docker://{reg.host}/{path}/{s}:{tag}", creds=creds)
        for s in ("api", "director", "change-streams", "scheduler", "writer", "webhooks")
    }


def state(onprem: Path) -> dict:
    return json.loads((onprem / ".currents-wizard" / "state.json").read_text())


def test_first_run_rerun_and_upgrade(
    env: dict[str, str], seeded_vendor: SeededVendor, fresh_registry: Registry, onprem: Path
) -> None:
    target = f"http://{fresh_registry.host}/mirror"
    first = wizard("run", "--yes", "--target", target, "--tag", TAG_OLD, env=env)
    assert first.returncode == 0, first.stderr
    assert target_digests(fresh_registry, "mirror", TAG_OLD) == seeded_vendor.digests[TAG_OLD]
    text = (onprem / ".env").read_text()
    assert f"DC_CURRENTS_IMAGE_REPOSITORY={fresh_registry.host}/mirror/\n" in text
    assert f"DC_CURRENTS_IMAGE_TAG={TAG_OLD}\n" in text
    st = state(onprem)
    assert all(r["status"] == "done" for r in st["steps"].values())
    assert {s: r["target_digest"] for s, r in st["images"][TAG_OLD].items()} == seeded_vendor.digests[TAG_OLD]

    again = wizard("run", "--yes", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    plan = wizard("mirror", "--dry-run", "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["bytes_to_copy"] == 0

    up = wizard("run", "--yes", "--tag", TAG_NEW, env=env)
    assert up.returncode == 0, up.stderr
    started = [ln[4:] for ln in up.stderr.splitlines() if ln.startswith("==> ")]
    assert started == ["Mirror images", "Configure .env", "Verify"]
    assert target_digests(fresh_registry, "mirror", TAG_NEW) == seeded_vendor.digests[TAG_NEW]
    assert f"DC_CURRENTS_IMAGE_TAG={TAG_NEW}\n" in (onprem / ".env").read_text()
    plan_line = next(ln for ln in up.stderr.splitlines() if "plan:" in ln)
    assert "6 images" in plan_line


def test_target_with_password_from_stdin(
    env: dict[str, str], seeded_vendor: SeededVendor, registry_factory, onprem: Path
) -> None:  # type: ignore[no-untyped-def]
    reg = registry_factory(auth=TARGET_USER)
    args = (
        "run",
        "--yes",
        "--target",
        f"http://{reg.host}/currents",
        "--target-username",
        TARGET_USER[0],
        "--target-password-stdin",
    )
    bad = wizard(*args, env=env, stdin="wrong-password\n")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert state(onprem)["steps"]["mirror"]["status"] == "failed"
    good = wizard(*args, env=env, stdin=TARGET_USER[1] + "\n")
    assert good.returncode == 0, good.stderr
    assert target_digests(reg, "currents", TAG_OLD, creds=TARGET_USER) == seeded_vendor.digests[TAG_OLD]
    assert TARGET_USER[1] not in (onprem / ".currents-wizard" / "state.json").read_text()


def test_missing_target_fails_fast_naming_the_flag(env: dict[str, str], onprem: Path) -> None:
    out = wizard("run", "--yes", env=env)
    assert out.returncode == 2
    assert "--target" in out.stderr.splitlines()[-1]


def test_access_not_granted_exits_3(env: dict[str, str], registry_factory, onprem: Path) -> None:  # type: ignore[no-untyped-def]
    other = registry_factory(auth=("AWS", "some-other-token"))
    env = {**env, "CURRENTS_WIZARD_SOURCE_REGISTRY": other.host, "CURRENTS_WIZARD_INSECURE_REGISTRY": other.host}
    probe = wizard("probe", env=env)
    assert probe.returncode == 3, probe.stderr
    assert probe.stdout.startswith("not_granted")
    run = wizard("run", "--yes", "--target", "http://127.0.0.1:9/x", env=env)
    assert run.returncode == 3
    assert state(onprem)["steps"]["auth"]["status"] == "failed"


def test_print_commands_and_dry_run_change_nothing(env: dict[str, str], onprem: Path) -> None:
    before = (onprem / ".env").read_bytes()
    out = wizard("run", "--dry-run", "--print-commands", "--target", "registry.example.com/currents", env=env)
    assert out.returncode == 0, out.stderr
    assert "aws sts assume-role" in out.stdout and "login --username AWS --password-stdin" in out.stdout
    assert "would run: policy, share, auth, mirror, configure, verify" in out.stdout
    assert (onprem / ".env").read_bytes() == before
    assert not (onprem / ".currents-wizard" / "state.json").exists()


def test_docker_engine_path(
    env: dict[str, str], seeded_vendor: SeededVendor, fresh_registry: Registry, dockerd, onprem: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {**env, "DOCKER_HOST": dockerd.docker_host}
    out = wizard(
        "run",
        "--yes",
        "--engine",
        "docker",
        "--target",
        f"http://{fresh_registry.host}/viadocker",
        "--services",
        "director,writer",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "re-compress" in out.stderr
    st = state(onprem)
    for s in ("director", "writer"):
        pushed = st["images"][TAG_OLD][s]["target_digest"]
        assert pushed == skopeo_digest(f"docker://{fresh_registry.host}/viadocker/{s}:{TAG_OLD}")


def test_air_gapped_archive_round_trip(
    env: dict[str, str], seeded_vendor: SeededVendor, fresh_registry: Registry, tmp_path: Path, onprem: Path
) -> None:
    """Outside: vendor registry → one .tar file. Inside (no AWS at all): .tar → internal registry."""
    tar = tmp_path / "currents-images.tar"
    out = wizard("mirror", "--yes", "--archive", str(tar), env=env)
    assert out.returncode == 0, out.stderr
    assert tar.is_file() and tar.stat().st_size > 0

    inside = tmp_path / "inside"
    inside.mkdir()
    shutil.copyfile(onprem / ".env.example", inside / ".env")
    shutil.copyfile(onprem / "VERSION", inside / "VERSION")
    no_aws = {k: v for k, v in env.items() if not k.startswith("AWS_") and not k.startswith("CURRENTS_WIZARD_")}
    no_aws["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # any AWS call would fail loudly
    run = wizard(
        "run",
        "--yes",
        "--dir",
        str(inside),
        "--from-archive",
        str(tar),
        "--target",
        f"http://{fresh_registry.host}/internal",
        env=no_aws,
    )
    assert run.returncode == 0, run.stderr
    assert target_digests(fresh_registry, "internal", TAG_OLD) == seeded_vendor.digests[TAG_OLD]
    st = json.loads((inside / ".currents-wizard" / "state.json").read_text())
    assert [st["steps"][s]["status"] for s in ("policy", "share", "auth")] == ["skipped"] * 3
    assert f"DC_CURRENTS_IMAGE_REPOSITORY={fresh_registry.host}/internal/\n" in (inside / ".env").read_text()


def test_target_credentials_from_docker_config(
    env: dict[str, str], seeded_vendor: SeededVendor, registry_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A user already logged in with `docker login`: the wizard uses ~/.docker/config.json, no password flag."""
    import base64

    reg = registry_factory(auth=TARGET_USER)
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    token = base64.b64encode(f"{TARGET_USER[0]}:{TARGET_USER[1]}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))
    out = wizard("run", "--yes", "--target", f"http://{reg.host}/fromconfig", env={**env, "DOCKER_CONFIG": str(cfg)})
    assert out.returncode == 0, out.stderr
    assert target_digests(reg, "fromconfig", TAG_OLD, creds=TARGET_USER) == seeded_vendor.digests[TAG_OLD]
