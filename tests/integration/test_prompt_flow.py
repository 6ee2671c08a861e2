"""The plain (questionary) front end, driven for real through prompt_toolkit pipe input.

Keystrokes go into a pipe; prompts render through a VT100 output into a buffer, Rich output into
the same buffer. A feeder thread waits for each question to appear and only then types its answer,
like a person would. The core is real (state store, .env writer, copy engine) over the offline demo
backend (``pace=0``) in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output
from rich.console import Console

from wizard import prompt
from wizard.core import demo
from wizard.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from wizard.core.settings import Settings
from wizard.core.steps import Wizard

OLD, NEW = demo.DEMO_TAGS
ENTER, DOWN, CLEAR, CTRL_C = "\r", "\x1b[B", "\x15", "\x03"
STATE = Path(".currents-wizard") / "state.json"

Script = Sequence[tuple[str, str]]


class Screen:
    """A tiny terminal: applies what prompt_toolkit (VT100) and Rich write to a grid of lines, so a
    test reads what a person would see (prompt_toolkit redraws only the cells that change)."""

    encoding = "utf-8"
    _TOKEN = re.compile(r"\x1b\[([0-9;?]*)[ -/]*([@-~])|\x1b\][^\x07]*\x07|\x1b[=>]|[\r\n\b]|[^\x1b\r\n\b]+")
    _PARTIAL = re.compile(r"\x1b(\[[0-9;?]*[ -/]*|\][^\x07]*)?$")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[list[str]] = [[]]
        self._row = self._col = 0
        self._pending = ""
        self.line = 0  # where the next ``expect`` starts looking (the line of the previous match)

    # -- file-like ---------------------------------------------------------------------------
    def write(self, data: str) -> int:
        with self._lock:
            data = self._pending + data
            tail = self._PARTIAL.search(data)
            self._pending = tail.group(0) if tail else ""
            self._apply(data[: len(data) - len(self._pending)])
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    # -- emulation ---------------------------------------------------------------------------
    def _line(self) -> list[str]:
        while len(self._lines) <= self._row:
            self._lines.append([])
        return self._lines[self._row]

    def _apply(self, data: str) -> None:
        for m in self._TOKEN.finditer(data):
            tok = m.group(0)
            if tok == "\r":
                self._col = 0
            elif tok == "\n":
                self._row, self._col = self._row + 1, 0
            elif tok == "\b":
                self._col = max(0, self._col - 1)
            elif m.group(2):
                params, final = m.group(1), m.group(2)
                n = int(params) if params.isdigit() else 1
                if final == "A":
                    self._row = max(0, self._row - n)
                elif final == "B":
                    self._row += n
                elif final == "C":
                    self._col += n
                elif final == "D":
                    self._col = max(0, self._col - n)
                elif final == "K":
                    del self._line()[self._col :]
                elif final == "J":
                    del self._line()[self._col :]
                    del self._lines[self._row + 1 :]
            elif not tok.startswith("\x1b"):
                line = self._line()
                if len(line) < self._col:
                    line.extend(" " * (self._col - len(line)))
                line[self._col : self._col + len(tok)] = list(tok)
                self._col += len(tok)

    def text(self, from_line: int = 0) -> str:
        with self._lock:
            return "\n".join("".join(line).rstrip() for line in self._lines[from_line:])

    def expect(self, pattern: str, timeout: float = 30.0) -> None:
        """Wait until ``pattern`` (a regex) is on screen, at or below the previous match's line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text(self.line)
            m = rx.search(text)
            if m:
                self.line += text.count("\n", 0, m.start())
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {pattern!r}")


@dataclass
class Session:
    code: int
    screen: Screen
    folder: Path
    errors: list[BaseException] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.screen.text()

    def state(self) -> dict:
        return json.loads((self.folder / STATE).read_text())


def make_wizard(folder: Path, pace: float = 0, size_mb: int = 4, **options: object) -> Wizard:
    settings, backend = demo.prepare(folder, Settings(**options), pace=pace)  # type: ignore[arg-type]
    backend.size_mb = size_mb
    # demo.prepare presets the role ARN and target like flags would (flags win over the state on
    # every open); clear them so the answers given at the prompts are what the state remembers.
    return Wizard(settings.with_(role_arn="", target=""), backend)


def drive(
    folder: Path, script: Script, pace: float = 0, size_mb: int = 4, during: object = None, **options: object
) -> Session:
    """Run ``prompt.run`` on ``folder``, answering ``(question regex, keys)`` pairs in order.

    ``during(screen)`` (optional) runs in the feeder thread after the script is sent.
    If the feeder gets stuck, it closes the input: the flow ends with EOF and the test fails.
    """
    screen = Screen()
    errors: list[BaseException] = []
    with create_pipe_input() as pipe:
        output = Vt100_Output(screen, lambda: Size(rows=60, columns=200), term="xterm", enable_cpr=False)  # type: ignore[arg-type]
        console = Console(file=screen, width=200, force_terminal=False, color_system=None)  # type: ignore[arg-type]

        finished = threading.Event()

        def feed() -> None:
            try:
                for pattern, keys in script:
                    screen.expect(pattern)
                    pipe.send_text(keys)
                if callable(during):
                    during(screen)
                if not finished.wait(60):
                    raise AssertionError("the flow still waits for input after the whole script was typed")
            except BaseException as exc:
                errors.append(exc)
                pipe.close()  # the waiting prompt gets EOF: the flow ends instead of hanging

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            with create_app_session(input=pipe, output=output), make_wizard(folder, pace, size_mb, **options) as wiz:
                code = prompt.run(wiz, console=console)
        finally:
            finished.set()
        feeder.join(timeout=5)
    session = Session(code, screen, folder, errors)
    if errors:
        raise AssertionError(f"{errors[0]}\n--- screen ---\n{session.text}")
    return session


FIRST_RUN: Script = [
    (r"Image tag to mirror", ENTER),
    (r"The role that Currents will grant", ENTER),  # create it
    (r"Role name", ENTER),
    (r"Your role's ARN", ENTER),  # the created role's ARN is the default
    (r"must grant this role access", ENTER),  # check now → granted
    (r"How should the images be copied", ENTER),  # registry
    (r"Your registry", ENTER),  # demo default
    (r"need a username and password", ENTER),  # no
    (r"Copy .* now\?", ENTER),
    (r"Write these changes to", ENTER),
]


def first_run(folder: Path) -> Session:
    s = drive(folder, FIRST_RUN)
    assert s.code == EXIT_OK, s.text
    return s


# ------------------------------------------------------------------------------------------------


def test_first_run_to_done(tmp_path: Path) -> None:
    s = first_run(tmp_path)
    state = s.state()
    assert {sid: rec["status"] for sid, rec in state["steps"].items()} == dict.fromkeys(
        ("policy", "share", "auth", "mirror", "configure", "verify"), "done"
    )
    assert state["inputs"]["tag"] == OLD
    assert state["inputs"]["role_arn"] == "arn:aws:iam::111122223333:role/CurrentsEcrPull"
    assert state["inputs"]["role_name"] == "CurrentsEcrPull"
    env = (tmp_path / ".env").read_text()
    assert f"DC_CURRENTS_IMAGE_REPOSITORY={demo.DEMO_TARGET}/\n" in env
    assert f"DC_CURRENTS_IMAGE_TAG={OLD}\n" in env
    for rec in state["images"][OLD].values():
        assert rec["target_digest"] == rec["source_digest"] and rec["verified_at"]
    text = s.text
    assert "Send this to your Currents contact" in text and "Role ARN:" in text
    assert "+DC_CURRENTS_IMAGE_REPOSITORY=" in text or "-DC_CURRENTS_IMAGE_REPOSITORY" in text  # the diff was shown
    assert re.search(r"total\s+done\s+━+\s+3\.\d MB / 3\.\d MB", text), text  # the total bar, finished
    assert "docker compose pull && docker compose up -d" in text
    assert "Traceback" not in text


def test_step_error_shows_message_and_hint_offers_retry_then_quit(tmp_path: Path) -> None:
    missing = "2027-01-01-001"  # a valid tag that the (demo) vendor registry does not have
    s = drive(
        tmp_path,
        [
            (r"Image tag to mirror", CLEAR + missing + ENTER),
            (r"The role that Currents will grant", ENTER),
            (r"Role name", ENTER),
            (r"Your role's ARN", ENTER),
            (r"must grant this role access", ENTER),  # check now
            (rf"tag '{missing}' does not exist", ""),
            (r"must grant this role access", DOWN + ENTER),  # asked again; continue anyway
            (r"What now\?", ENTER),  # the auth step failed: try again
            (rf"tag '{missing}' does not exist", ""),
            (r"What now\?", DOWN + ENTER),  # quit
        ],
    )
    assert s.code == EXIT_FAILED
    text = s.text
    assert f"✗ tag '{missing}' does not exist in the demo registry" in text
    assert f"try {NEW}" in text  # the hint
    assert "To continue later, run:" in text
    st = s.state()
    assert st["steps"]["auth"]["status"] == "failed" and missing in st["steps"]["auth"]["error"]
    assert st["steps"]["share"]["status"] == "done"


def test_archive_export_then_push_from_archive(tmp_path: Path) -> None:
    script = [step for step in FIRST_RUN if not step[0].startswith(("Your registry", "need", "Write"))]
    at = next(i for i, step in enumerate(script) if step[0].startswith("How should"))
    script[at] = (r"How should the images be copied", DOWN + ENTER)  # archive
    script.insert(at + 1, (r"Archive path", ENTER))
    s = drive(tmp_path, script)
    assert s.code == EXIT_OK, s.text
    st = s.state()
    assert st["inputs"]["engine"] == "archive"
    assert st["inputs"]["archive"] == str(tmp_path / "currents-images.tar")
    assert (tmp_path / "currents-images.tar").is_file()
    assert st["steps"]["mirror"]["status"] == "done"
    assert st["steps"]["configure"]["status"] == st["steps"]["verify"]["status"] == "skipped"
    assert "--from-archive" in s.text
    assert "DC_CURRENTS_IMAGE_REPOSITORY=registry.example.com" not in (tmp_path / ".env").read_text()
    # inside the isolated network: push from the archive; no AWS steps are asked
    inner = tmp_path / "inner"
    inner.mkdir()
    s = drive(
        inner,
        [
            (r"Image tag to mirror", ENTER),
            (r"How should the images be copied", ENTER),  # registry
            (r"Your registry", CLEAR + "registry.internal/currents" + ENTER),
            (r"need a username and password", ENTER),
            (r"Copy 6 images .* now\?", ENTER),
            (r"Write these changes to", ENTER),
        ],
        from_archive=tmp_path / "currents-images.tar",
    )
    assert s.code == EXIT_OK, s.text
    st = s.state()
    assert [st["steps"][sid]["status"] for sid in ("policy", "share", "auth")] == ["skipped"] * 3
    assert all(st["steps"][sid]["status"] == "done" for sid in ("mirror", "configure", "verify"))
    assert "DC_CURRENTS_IMAGE_REPOSITORY=registry.internal/currents/\n" in (inner / ".env").read_text()
    assert "Role name" not in s.text and "Your role's ARN" not in s.text and "Step 3/6" not in s.text


def test_rerun_offers_earlier_answers_as_defaults(tmp_path: Path) -> None:
    arn = "arn:aws:iam::123456789012:role/ci/puller"
    target = "mirror.internal:5000/acme/currents"
    password = "s3cret-pass-42"
    # 1: bring our own role, then stop until "Currents confirms"
    s = drive(
        tmp_path,
        [
            (r"Image tag to mirror", ENTER),
            (r"The role that Currents will grant", DOWN + ENTER),
            (r"Your role's ARN", CLEAR + arn + ENTER),
            (r"must grant this role access", DOWN + DOWN + ENTER),
        ],
    )
    assert s.code == EXIT_OK
    assert "To continue later, run:" in s.text and "--plain" in s.text
    st = s.state()
    assert st["inputs"]["role_arn"] == arn and "role_name" not in st["inputs"]
    assert st["steps"]["share"]["status"] == "done" and st["steps"]["auth"]["status"] == "pending"
    # 2: resume; give a target with a login, then decline the copy
    s = drive(
        tmp_path,
        [
            (r"Pick up where you left off", ENTER),
            (r"How should the images be copied", ENTER),
            (r"Your registry", CLEAR + target + ENTER),
            (r"need a username and password", "y"),
            (r"Username", "ci-bot" + ENTER),
            (r"Password for ci-bot", password + ENTER),
            (r"Copy .* now\?", "n"),
        ],
    )
    assert s.code == EXIT_FAILED and "Nothing was copied." in s.text
    st = s.state()
    assert st["inputs"]["target"] == target and st["inputs"]["target_username"] == "ci-bot"
    assert st["steps"]["auth"]["status"] == "done" and st["steps"]["mirror"]["status"] == "pending"
    # 3: only Enter everywhere: every earlier answer is the default (the password is asked again)
    s = drive(
        tmp_path,
        [
            (r"Pick up where you left off", ENTER),
            (r"How should the images be copied", ENTER),
            (r"Your registry", ENTER),
            (r"need a username and password", ENTER),  # default is now yes
            (r"Username", ENTER),  # default ci-bot
            (r"Password for ci-bot", password + ENTER),
            (r"Copy .* now\?", ENTER),
            (r"Write these changes to", ENTER),
        ],
    )
    assert s.code == EXIT_OK, s.text
    assert "DC_CURRENTS_IMAGE_REPOSITORY=mirror.internal:5000/acme/currents/\n" in (tmp_path / ".env").read_text()
    st = s.state()
    assert all(rec["status"] == "done" for rec in st["steps"].values())
    assert st["inputs"]["role_arn"] == arn
    for path in (tmp_path / ".currents-wizard").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt"):
            assert password not in path.read_text(errors="replace"), path
    assert password not in s.text


def test_upgrade_runs_only_mirror_configure_verify(tmp_path: Path) -> None:
    before = first_run(tmp_path).state()
    (tmp_path / "VERSION").write_text(NEW + "\n")  # the checkout moved to a new release
    s = drive(
        tmp_path,
        [
            (r"Everything is done\. What next\?", ENTER),  # first choice: upgrade to the suggested tag
            (r"How should the images be copied", ENTER),
            (r"Your registry", ENTER),
            (r"need a username and password", ENTER),
            (r"Copy .* now\?", ENTER),
            (r"Write these changes to", ENTER),
        ],
    )
    assert s.code == EXIT_OK, s.text
    after = s.state()
    assert after["inputs"]["tag"] == NEW and after["inputs"]["previous_tag"] == OLD
    for sid in ("policy", "share", "auth"):
        assert after["steps"][sid] == before["steps"][sid]  # untouched
    for sid in ("mirror", "configure", "verify"):
        assert after["steps"][sid]["status"] == "done"
        assert after["steps"][sid]["finished_at"] >= before["steps"][sid]["finished_at"]
    text = s.text
    assert f"This folder's VERSION is {NEW}" in text and f"Upgrade to {NEW}" in text
    assert "Step 4/6" in text and "Step 5/6" in text and "Step 6/6" in text
    assert "Step 1/6" not in text and "Step 2/6" not in text and "Step 3/6" not in text
    assert f"DC_CURRENTS_IMAGE_TAG={NEW}\n" in (tmp_path / ".env").read_text()
    assert sorted(after["images"][NEW]) == sorted(Settings().services)


def test_done_then_upgrade_to_a_typed_tag_and_verify_again(tmp_path: Path) -> None:
    first_run(tmp_path)
    after_mirror = [
        (r"How should the images be copied", ENTER),
        (r"Your registry", ENTER),
        (r"need a username and password", ENTER),
        (r"Copy .* now\?", ENTER),
        (r"Write these changes to", ENTER),
    ]
    s = drive(
        tmp_path,
        [
            (r"Everything is done\. What next\?", ENTER),  # no newer release known: "another tag" is first
            (r"New image tag", CLEAR + OLD + ENTER),
            (rf"{OLD} is the tag you already run", CLEAR + NEW + ENTER),
            *after_mirror,
        ],
    )
    assert s.code == EXIT_OK, s.text
    assert s.state()["inputs"]["tag"] == NEW
    (tmp_path / "VERSION").write_text(NEW + "\n")  # the checkout follows: no other release to offer
    before = s.state()["steps"]["verify"]["finished_at"]
    time.sleep(1.1)  # timestamps have one-second resolution
    s = drive(tmp_path, [(r"Everything is done\. What next\?", DOWN + ENTER)])  # verify again
    assert s.code == EXIT_OK, s.text
    assert "Step 6/6" in s.text and "Step 4/6" not in s.text
    assert s.state()["steps"]["verify"]["finished_at"] > before


def test_invalid_inputs_are_rejected_and_asked_again_then_ctrl_c_keeps_state(tmp_path: Path) -> None:
    arn = "arn:aws:iam::123456789012:role/currents-pull"
    s = drive(
        tmp_path,
        [
            (r"Image tag to mirror", CLEAR + "-bad tag" + ENTER),
            (r"invalid image tag '-bad tag'", CLEAR + OLD + ENTER),
            (r"The role that Currents will grant", DOWN + ENTER),
            (r"Your role's ARN", CLEAR + "not-an-arn" + ENTER),
            (r"'not-an-arn' is not an ARN", CLEAR + "arn:aws:iam::123:role/x" + ENTER),
            (r"has account '123'; expected 12 digits", CLEAR + arn + ENTER),
            (r"must grant this role access", DOWN + ENTER),  # continue: confirmed
            (r"How should the images be copied", ENTER),
            (r"Your registry", CLEAR + "https://bad host/x" + ENTER),
            (r"invalid registry host 'bad host'", CLEAR + "registry.example.com/Bad_Path" + ENTER),
            (r"invalid target path 'Bad_Path'", CLEAR + "registry.example.com/good-path" + ENTER),
            (r"need a username and password", CTRL_C),
        ],
    )
    assert s.code == EXIT_INTERRUPTED
    assert "Stopped. Nothing is lost" in s.text and "To continue later, run:" in s.text
    st = s.state()
    assert st["inputs"]["tag"] == OLD
    assert st["inputs"]["role_arn"] == arn
    assert st["inputs"]["target"] == "registry.example.com/good-path"
    assert [st["steps"][sid]["status"] for sid in ("policy", "share", "auth", "mirror")] == [
        "done",
        "done",
        "done",
        "pending",
    ]


def test_ctrl_c_during_mirror_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    vendor_blobs = tmp_path / ".currents-wizard" / "demo" / "registries"

    def interrupt_when_copying(screen: Screen) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.is_file() for p in vendor_blobs.rglob("blobs/sha256/*")):
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to the main thread
                return
            time.sleep(0.005)
        raise AssertionError("no blob was copied")

    first = [step for step in FIRST_RUN if not step[0].startswith("Write")]
    s = drive(tmp_path, first, pace=1, size_mb=12, during=interrupt_when_copying)
    assert s.code == EXIT_INTERRUPTED, s.text
    assert "Stopping after the work in flight" in s.text and "To continue later, run:" in s.text
    st = s.state()
    assert st["steps"]["mirror"]["status"] == "pending"
    assert st["steps"]["mirror"]["summary"].startswith("interrupted")
    s = drive(
        tmp_path,
        [
            (r"Pick up where you left off", ENTER),
            (r"How should the images be copied", ENTER),
            (r"Your registry", ENTER),
            (r"need a username and password", ENTER),
            (r"Copy .* now\?", ENTER),
            (r"Write these changes to", ENTER),
        ],
    )
    assert s.code == EXIT_OK, s.text
    assert all(rec["status"] == "done" for rec in s.state()["steps"].values())


def test_resume_command_repeats_folder_and_options(tmp_path: Path) -> None:
    settings = Settings(dir=tmp_path, region="eu-west-1", insecure_registries=("127.0.0.1:5000",), demo=True)
    cmd = prompt.resume_command(settings, cwd=Path("/"))
    assert cmd.startswith("currents-wizard --demo --plain --dir ")
    assert str(tmp_path) in cmd and "--region eu-west-1" in cmd and "--insecure-registry 127.0.0.1:5000" in cmd
    assert prompt.resume_command(Settings(dir=tmp_path), cwd=tmp_path) == "currents-wizard --plain"


@pytest.mark.parametrize("name", ["", "a" * 65, "bad name", "x/y"])
def test_role_name_validation(name: str) -> None:
    with pytest.raises(prompt.InputError):
        prompt.validate_role_name(name)


def test_refuses_to_run_inside_an_event_loop(tmp_path: Path) -> None:
    import asyncio

    async def inside() -> int:
        with make_wizard(tmp_path) as wiz:
            return prompt.run(wiz)

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(inside())
