"""The console script as a user runs it: a subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed import hold_state_lock

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "currents-onprem"
if not FIXTURES.exists():  # CI runs in another folder with shared/ beside the clone
    FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "currents-onprem"
SEED = FIXTURES.parent.parent / "seed" / "container-images.md"
EXE = shutil.which("currents-wizard")


def run(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "wizard", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_WIZARD_")}
    full_env.update(env or {})
    return subprocess.run(
        cmd, cwd=cwd, input=stdin, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


@pytest.fixture
def onprem(tmp_path: Path) -> Path:
    d = tmp_path / "on-prem"
    d.mkdir()
    for name in (".env.example", "VERSION", "compose.currents.yml"):
        shutil.copyfile(FIXTURES / name, d / name)
    shutil.copyfile(FIXTURES / ".env.example", d / ".env")
    return d


def test_console_script_is_installed() -> None:
    assert EXE, "pip install -e . should put currents-wizard on PATH"


def test_help_and_version() -> None:
    out = run("--help")
    assert out.returncode == 0 and "currents-wizard" in out.stdout and "CURRENTS_WIZARD_" in out.stdout
    for sub in ("run", "policy", "role", "probe", "login", "mirror", "configure", "verify", "status", "reset"):
        r = run(sub, "--help")
        assert r.returncode == 0, sub
        assert "--dir" in r.stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("currents-wizard ")


def test_policy_prints_valid_arns_only() -> None:
    out = run("policy")
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    resources = [
        r for st in doc["Statement"] for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])
    ]
    assert "*" in resources
    assert "arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/api" in resources
    assert not [r for r in resources if r != "*" and ":repository/" not in r]
    assert "not" in out.stderr.lower() and "repository/" in out.stderr


def test_policy_check_flags_the_seed_policy(tmp_path: Path) -> None:
    text = SEED.read_text()
    start = text.index("```json") + len("```json")
    seed_policy = text[start : text.index("```", start)]
    f = tmp_path / "seed.json"
    f.write_text(seed_policy)
    out = run("policy", "--check", str(f))
    assert out.returncode == 1
    assert out.stdout.count("error") >= 6 and "currents/on-prem/api/*" in out.stdout
    good = tmp_path / "good.json"
    good.write_text(run("policy").stdout)
    ok = run("policy", "--check", str(good))
    assert ok.returncode == 0, ok.stdout


def test_configure_edits_only_two_lines(onprem: Path) -> None:
    before = (onprem / ".env").read_bytes()
    out = run(
        "configure",
        "--dir",
        str(onprem),
        "--repository",
        "registry.example.com/currents",
        "--tag",
        "2026-02-10-001",
        "--yes",
    )
    assert out.returncode == 0, out.stderr
    after = (onprem / ".env").read_bytes()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert sorted(b for _, b in changed) == [
        b"DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/",
        b"DC_CURRENTS_IMAGE_TAG=2026-02-10-001",
    ]
    assert list(onprem.glob(".env.bak-*")), "a backup is written first"
    status = run("status", "--dir", str(onprem), "--json")
    data = json.loads(status.stdout)
    assert data["steps"]["configure"]["status"] == "done"
    assert data["inputs"]["target"] == "registry.example.com/currents"


def test_bad_input_is_one_line_exit_2_and_nothing_written(onprem: Path) -> None:
    before = (onprem / ".env").read_bytes()
    cases = [
        ("configure", "--dir", str(onprem), "--repository", "Bad Registry/x", "--yes"),
        ("configure", "--dir", str(onprem), "--repository", "r.example.com/x", "--tag=-bad", "--yes"),
        ("status", "--dir", str(onprem / "missing")),
        ("run", "--dir", str(onprem), "--services", "api,web", "--yes"),
        ("run", "--dir", str(onprem), "--region", "mars-1", "--yes"),
        ("run", "--dir", str(onprem), "--role-arn", "arn:aws:iam::12:role/x", "--yes"),
        ("mirror", "--dir", str(onprem), "--engine", "podman"),
        ("--dir", str(onprem), "--no-such-flag"),
    ]
    for args in cases:
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "error:" in lines[0], (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert (onprem / ".env").read_bytes() == before
    assert not (onprem / ".currents-wizard" / "state.json").exists()


def test_env_vars_are_read(onprem: Path) -> None:
    out = run(
        "configure",
        "--yes",
        env={
            "CURRENTS_WIZARD_DIR": str(onprem),
            "CURRENTS_WIZARD_REPOSITORY": "reg.example.com/env",
            "CURRENTS_WIZARD_TAG": "staging",
        },
    )
    assert out.returncode == 0, out.stderr
    assert b"DC_CURRENTS_IMAGE_REPOSITORY=reg.example.com/env/" in (onprem / ".env").read_bytes()


def test_interactive_without_terminal_refuses(onprem: Path) -> None:
    out = run("--dir", str(onprem), stdin="")
    assert out.returncode == 2 and "run --yes" in out.stderr


def test_run_needs_yes(onprem: Path) -> None:
    out = run("run", "--dir", str(onprem), stdin="")
    assert out.returncode == 2 and "--yes" in out.stderr


def test_second_run_is_refused_with_exit_4(onprem: Path) -> None:
    holder = hold_state_lock(onprem / ".currents-wizard" / "state.json", seconds=30)
    try:
        out = run("configure", "--dir", str(onprem), "--repository", "r.example.com/x", "--yes")
        assert out.returncode == 4 and "another currents-wizard run" in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_reset_keeps_env(onprem: Path) -> None:
    run("configure", "--dir", str(onprem), "--repository", "r.example.com/x", "--yes")
    env_before = (onprem / ".env").read_bytes()
    out = run("reset", "--dir", str(onprem), "--yes")
    assert out.returncode == 0
    assert not (onprem / ".currents-wizard" / "state.json").exists()
    assert (onprem / ".env").read_bytes() == env_before
