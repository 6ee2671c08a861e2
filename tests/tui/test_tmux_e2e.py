"""End to end: the real ``currents-wizard --demo`` console script inside tmux, driven by keys
(send-keys) and read from the screen (capture-pane), from the welcome screen to Done and quit."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or shutil.which("currents-wizard") is None,
    reason="needs tmux and the installed currents-wizard console script",
)


class Tmux:
    """One detached tmux session on a private server socket."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.socket = name

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-u", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=30
        )

    def start(self, command: str, width: int = 120, height: int = 40) -> None:
        self.run("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        out = self.run("capture-pane", "-p", "-t", self.name, check=False)
        return out.stdout

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.2)
        size = self.run("display", "-p", "-t", self.name, "#{window_width}x#{window_height}", check=False).stdout
        raise AssertionError(f"{pattern!r} did not appear within {timeout}s; window {size.strip()}; screen:\n{screen}")

    def kill(self) -> None:
        socket = self.run("display", "-p", "#{socket_path}", check=False).stdout.strip()
        self.run("kill-session", "-t", self.name, check=False)
        self.run("kill-server", check=False)
        if socket.endswith("/" + self.socket):
            Path(socket).unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux(f"cw-e2e-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield session
    finally:
        session.kill()


def wizard_command(folder: Path, status: Path, pace: float) -> str:
    command = (
        # COLUMNS/LINES leak in from pytest and would pin the app to 80x24.
        f"env -u COLUMNS -u LINES CURRENTS_WIZARD_DEMO_PACE={pace} LANG=C.UTF-8 "
        f"currents-wizard --demo --dir {shlex.quote(str(folder))}"
        f"; echo $? > {shlex.quote(str(status))}; sleep 30"
    )
    return f"sh -c {shlex.quote(command)}"


def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.read_text()


def test_demo_in_tmux_from_welcome_to_done(tmux: Tmux, tmp_path: Path) -> None:
    folder = tmp_path / "onprem"
    folder.mkdir()
    status = tmp_path / "exit-status"
    tmux.start(wizard_command(folder, status, pace=0.05))

    tmux.wait_for(r"DEMO · offline")
    tmux.wait_for(r"Start setup →")
    tmux.keys("C-n")
    tmux.wait_for(r"IAM policy for your pull role")
    tmux.keys("C-n")  # save the policy and continue
    tmux.wait_for(r"Share your role ARN")
    tmux.wait_for(r"Please grant our IAM role")  # the ARN is filled in: the message shows
    tmux.keys("C-n")
    tmux.wait_for(r"3 · Authenticate")
    tmux.keys("C-n")  # Authenticate
    tmux.wait_for(r"Signed in; Currents has granted access")
    tmux.keys("C-n")
    tmux.wait_for(r"Mirror the images into your registry")
    tmux.keys("C-n")  # Start mirror
    screen = tmux.wait_for(r"6/6 images", timeout=120)
    assert screen.count("✔ done") >= 6
    tmux.keys("C-n")
    tmux.wait_for(r"Point your \.env at the mirror")
    tmux.keys("C-n")  # Write .env
    tmux.wait_for(r"Backup:")
    tmux.keys("C-n")
    screen = tmux.wait_for(r"Done — Currents \S+ is ready", timeout=60)
    assert "docker compose pull && docker compose up -d" in screen
    assert screen.count("✔ verified") == 6
    tmux.keys("C-q")
    assert wait_for_file(status).strip() == "0"

    env = (folder / ".env").read_text()
    assert "DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com/currents/" in env
    state = json.loads((folder / ".currents-wizard" / "state.json").read_text())
    assert {s["status"] for s in state["steps"].values()} == {"done"}


def test_quit_mid_mirror_in_tmux_then_resume(tmp_path: Path) -> None:
    """Ctrl+Q while images are copying exits 0; the next start resumes the mirror and finishes it."""
    folder = tmp_path / "onprem"
    folder.mkdir()
    state_file = folder / ".currents-wizard" / "state.json"

    def run(pace: float, status: Path, drive: Callable[[Tmux], None]) -> None:
        session = Tmux(f"cw-e2e-{os.getpid()}-{time.monotonic_ns()}")
        try:
            session.start(wizard_command(folder, status, pace=pace))
            drive(session)
            assert wait_for_file(status, timeout=60).strip() == "0"
        finally:
            session.kill()

    def first_steps(t: Tmux) -> None:  # quick pace: policy, share, auth, then quit on the mirror screen
        t.wait_for(r"Start setup →")
        t.keys("C-n")
        t.wait_for(r"IAM policy for your pull role")
        t.keys("C-n")
        t.wait_for(r"Please grant our IAM role")
        t.keys("C-n")
        t.wait_for(r"3 · Authenticate")
        t.keys("C-n")
        t.wait_for(r"Signed in; Currents has granted access")
        t.keys("C-n")
        t.wait_for(r"Mirror the images into your registry")
        t.keys("C-q")

    def quit_while_copying(t: Tmux) -> None:  # slow pace: quit once bytes are moving
        t.wait_for(r"Resume: Mirror images →")
        t.keys("C-n")
        t.wait_for(r"Mirror the images into your registry")
        t.keys("C-n")
        screen = t.wait_for(r"⇣ copying", timeout=90)
        assert "6/6 images" not in screen
        t.keys("C-q")

    def finish(t: Tmux) -> None:
        t.wait_for(r"Resume: Mirror images →")
        t.keys("C-n")
        t.wait_for(r"interrupted last time")
        t.keys("C-n")
        t.wait_for(r"6/6 images", timeout=120)
        t.keys("C-q")

    run(0.05, tmp_path / "exit-1", first_steps)
    steps = json.loads(state_file.read_text())["steps"]
    assert [steps[s]["status"] for s in ("policy", "share", "auth", "mirror")] == ["done"] * 3 + ["pending"]

    run(12, tmp_path / "exit-2", quit_while_copying)
    mirror = json.loads(state_file.read_text())["steps"]["mirror"]
    assert mirror["status"] == "pending" and mirror.get("summary", "").startswith("interrupted"), mirror

    run(0.05, tmp_path / "exit-3", finish)
    assert json.loads(state_file.read_text())["steps"]["mirror"]["status"] == "done"
