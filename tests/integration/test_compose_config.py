"""A real reader of the written .env: Debian's docker-compose renders the Currents compose file.

``docker-compose -f compose.currents.yml --env-file .env config`` needs no Docker engine; it
resolves ``${DC_CURRENTS_IMAGE_REPOSITORY}<image>:${DC_CURRENTS_IMAGE_TAG}`` for the six services.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.testbed import in_ci
from wizard.core.envfile import apply_env_update, plan_env_update, tag_mismatch_warning

pytestmark = pytest.mark.integration

# The real Currents files (currents-dev/docker, on-prem/2026-01-26-001), bundled unchanged in the package.
ONPREM = Path(__file__).resolve().parents[2] / "wizard" / "demo_data"
REPOSITORY = "127.0.0.1:5002/mirror/"
TAG = "2026-02-10-001"
# compose service -> Currents image name
SERVICE_IMAGES = {
    "director": "director",
    "api": "api",
    "changestreams-worker": "change-streams",
    "write-worker": "writer",
    "scheduler": "scheduler",
    "webhooks": "webhooks",
}


@pytest.fixture(scope="module")
def compose_bin() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        if in_ci():
            pytest.fail("docker-compose is not installed (Debian package docker-compose)")
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """compose.currents.yml + .env (from .env.example) + VERSION, as in a customer's on-prem folder."""
    shutil.copyfile(ONPREM / "compose.currents.yml", tmp_path / "compose.currents.yml")
    (tmp_path / ".env").write_bytes((ONPREM / ".env.example").read_bytes())
    (tmp_path / ".env.example").write_bytes((ONPREM / ".env.example").read_bytes())
    (tmp_path / "VERSION").write_bytes((ONPREM / "VERSION").read_bytes())
    return tmp_path


def compose_config(compose_bin: str, folder: Path) -> str:
    # A clean environment: no DOCKER_HOST, and no DC_* variable that would override the .env.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env["HOME"] = str(folder)
    proc = subprocess.run(
        [compose_bin, "-f", "compose.currents.yml", "--env-file", ".env", "config"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def service_images(config: str) -> dict[str, str]:
    """``services.<name>.image`` from compose's YAML output (its layout is fixed: 2/4-space indents)."""
    images: dict[str, str] = {}
    section = service = None
    for line in config.splitlines():
        if re.match(r"^\S", line):
            section = line.rstrip(":")
            service = None
        elif section == "services" and (m := re.match(r"^  ([\w.-]+):\s*$", line)):
            service = m.group(1)
        elif section == "services" and service and (m := re.match(r"^    image:\s*(\S+)\s*$", line)):
            images[service] = m.group(1).strip("'\"")
    return images


def test_written_env_resolves_to_the_mirror(compose_bin: str, checkout: Path) -> None:
    before = compose_config(compose_bin, checkout)
    assert service_images(before) == {
        svc: f"513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/{image}:2026-01-26-001"
        for svc, image in SERVICE_IMAGES.items()
    }

    change = plan_env_update(checkout / ".env", "127.0.0.1:5002/mirror", TAG)
    backup = apply_env_update(change)
    assert backup is not None and backup.exists()
    assert tag_mismatch_warning(checkout, TAG) is not None  # VERSION says 2026-01-26-001

    after = compose_config(compose_bin, checkout)
    assert service_images(after) == {svc: f"{REPOSITORY}{image}:{TAG}" for svc, image in SERVICE_IMAGES.items()}

    # Everything else compose sees is unchanged: only image lines and the two variables
    # (which env_file: .env also passes into each container's environment) differ.
    old_lines, new_lines = before.splitlines(), after.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(changed) == 6 * 3
    for _, new in changed:
        assert re.match(r"^\s+(image|DC_CURRENTS_IMAGE_REPOSITORY|DC_CURRENTS_IMAGE_TAG):", new), new


def test_crlf_export_and_quotes_still_resolve(compose_bin: str, checkout: Path) -> None:
    text = (ONPREM / ".env.example").read_text()
    text = text.replace("DC_CURRENTS_IMAGE_REPOSITORY=", "export DC_CURRENTS_IMAGE_REPOSITORY=")
    text = text.replace("DC_CURRENTS_IMAGE_TAG=2026-01-26-001", 'DC_CURRENTS_IMAGE_TAG="2026-01-26-001"')
    (checkout / ".env").write_bytes(text.replace("\n", "\r\n").encode())

    apply_env_update(plan_env_update(checkout / ".env", REPOSITORY, TAG), backup=False)
    data = (checkout / ".env").read_bytes()
    assert b"export DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\r\n" in data
    assert b'DC_CURRENTS_IMAGE_TAG="2026-02-10-001"\r\n' in data
    assert data.count(b"\r\n") == data.count(b"\n")

    images = service_images(compose_config(compose_bin, checkout))
    assert images == {svc: f"{REPOSITORY}{image}:{TAG}" for svc, image in SERVICE_IMAGES.items()}
