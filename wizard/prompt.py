"""Plain front end (``currents-wizard --plain``): questionary prompts and Rich output.

It drives the same step model and state file as the full-screen app
(:class:`wizard.core.steps.Wizard`): welcome (first run, resume or upgrade), then the questions of
each step that is not done, then a summary with the commands to run next.

* Prompts use questionary's ``unsafe_ask()`` on purpose: ``ask()`` swallows Ctrl-C and returns
  None, but here Ctrl-C must mean "stop, keep state, say how to resume", so the
  ``KeyboardInterrupt`` has to reach :func:`run`.
* Step work runs on a worker thread; this (main) thread renders its events (:mod:`wizard.progress`)
  and receives Ctrl-C, which sets the step's cancel event and waits for the worker to stop.
* Earlier answers (``wizard.state.inputs``) are the defaults on re-runs. Passwords are asked with
  a hidden prompt, kept in memory by the step model, and never printed or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import shlex
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import questionary
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from wizard.core import envfile, log, policy
from wizard.core.demo import DEMO_ACCOUNT, DEMO_ROLE_NAME, DEMO_TARGET
from wizard.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_GRANTED,
    EXIT_OK,
    AccessNotGranted,
    Cancelled,
    InputError,
    WizardError,
)
from wizard.core.events import Emit, Event, Info, StepFailed, StepFinished, StepStarted
from wizard.core.settings import Settings, parse_target, validate_tag
from wizard.core.state import STEP_IDS
from wizard.core.steps import DONE_STATES, TITLES, Wizard
from wizard.progress import EventView, human_bytes

PROG = "currents-wizard"
DEFAULT_ROLE_NAME = "CurrentsEcrPull"
DEMO_ROLE_ARN = f"arn:aws:iam::{DEMO_ACCOUNT}:role/{DEMO_ROLE_NAME}"

T = TypeVar("T")
_DONE = object()
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_STATUS_MARKS = {
    "done": ("✓", "green"),
    "skipped": ("–", "dim"),
    "failed": ("✗", "red"),
    "running": ("…", "yellow"),
    "pending": ("·", "dim"),
}


class _Quit(Exception):
    """Leave the flow with this exit code (the message was already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# ------------------------------------------------------------------------------------------------
# Validators: core validators, turned into questionary's "True or an error message" form.


def _validator(check: Callable[[str], object]) -> Callable[[str], bool | str]:
    def validate(value: str) -> bool | str:
        try:
            check(value.strip())
        except InputError as exc:
            return str(exc)
        return True

    return validate


def validate_role_name(name: str) -> str:
    """An IAM role name: 1-64 of letters, digits and ``+=,.@_-``."""
    hint = "e.g. CurrentsEcrPull (letters, digits and +=,.@_- only, at most 64)"
    if not name:
        raise InputError("the role name is empty", hint)
    if len(name) > 64:
        raise InputError(f"the role name is {len(name)} characters long", hint)
    if not _ROLE_NAME_RE.match(name):
        raise InputError(f"role name {name!r} contains characters IAM does not allow", hint)
    return name


def _not_empty(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value:
            raise InputError(f"the {what} is empty", f"type the {what}")
        return value

    return check


# ------------------------------------------------------------------------------------------------


def resume_command(settings: Settings, cwd: Path | None = None) -> str:
    """The command that continues where this run stopped (same folder, state and vendor options)."""
    cwd = (cwd or Path.cwd()).resolve()
    default = Settings()
    parts = [PROG]
    if settings.demo:
        parts.append("--demo")
    parts.append("--plain")
    folder = Path(settings.dir).resolve()
    if folder != cwd:
        parts += ["--dir", str(folder)]
    if settings.env_file is not None and Path(settings.env_file).resolve() != folder / ".env":
        parts += ["--env-file", str(settings.env_file)]
    if (
        settings.state_file is not None
        and Path(settings.state_file).resolve() != folder / ".currents-wizard/state.json"
    ):
        parts += ["--state", str(settings.state_file)]
    for name in ("source_registry", "source_prefix", "vendor_account", "region", "profile"):
        value = getattr(settings, name)
        if value and value != getattr(default, name):
            parts += ["--" + name.replace("_", "-"), str(value)]
    if settings.services != default.services:
        parts += ["--services", ",".join(settings.services)]
    for host in settings.insecure_registries:
        parts += ["--insecure-registry", host]
    if settings.ca_file is not None:
        parts += ["--ca-file", str(settings.ca_file)]
    return shlex.join(parts)


@contextlib.contextmanager
def _keys_held() -> Iterator[None]:
    """While work runs, keys typed on the terminal are not echoed (an echoed Enter would tear the
    live display) and are dropped afterwards, so a stray Enter never answers the next question."""
    try:
        import termios

        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            raise ValueError("not a terminal")
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcflush(fd, termios.TCIFLUSH)
            termios.tcsetattr(fd, termios.TCSANOW, saved)


class PlainFrontEnd:
    """The questionary + Rich flow over one opened :class:`Wizard`."""

    def __init__(self, wizard: Wizard, console: Console | None = None) -> None:
        self.wizard = wizard
        self.console = console or Console(highlight=False)
        self.demo = bool(getattr(wizard.backend, "demo", False))
        self.logger = log.get()

    # -- entry -------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self._welcome()
            # steps a run does not need are already skipped in the state (e.g. the AWS steps once
            # the images come from an archive: set_input("from_archive", …) marks them)
            while pending := self.wizard.pending_steps():
                sid = pending[0]
                self._step(sid)
                if self.wizard.status(sid) not in DONE_STATES:  # never loop on a step that did not finish
                    self._say_resume()
                    return EXIT_FAILED
            self._finish()
            return EXIT_OK
        except _Quit as q:
            return q.code
        except KeyboardInterrupt:
            self.console.print()
            self.console.print(Text("Stopped. Nothing is lost: your progress is saved.", style="yellow bold"))
            self._say_resume()
            return EXIT_INTERRUPTED
        except EOFError:
            self.console.print()
            self.console.print(Text("Input ended before the wizard finished.", style="red"))
            self._say_resume(f"for scripts, use `{PROG} run --yes ...` instead")
            return EXIT_BAD_INPUT

    # -- prompts -----------------------------------------------------------------------------
    def _text(self, message: str, default: str = "", check: Callable[[str], object] | None = None) -> str:
        question = questionary.text(message, default=default, validate=_validator(check) if check else None)
        return str(question.unsafe_ask()).strip()

    def _password(self, message: str) -> str:
        question = questionary.password(message, validate=_validator(_not_empty("password")))
        return str(question.unsafe_ask())

    def _confirm(self, message: str, default: bool = True) -> bool:
        return bool(questionary.confirm(message, default=default).unsafe_ask())

    def _select(self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None) -> str:
        options = [questionary.Choice(title=label, value=value) for value, label in choices]
        values = [value for value, _ in choices]
        question = questionary.select(message, choices=options, default=default if default in values else None)
        return str(question.unsafe_ask())

    # -- output ------------------------------------------------------------------------------
    def _say_resume(self, extra: str = "") -> None:
        cmd = resume_command(self.wizard.settings)
        self.console.print(Text.assemble("To continue later, run:  ", (cmd, "bold")))
        if extra:
            self.console.print(Text(extra, style="dim"))

    def _note(self, text: str, style: str = "dim") -> None:
        self.console.print(Text(text, style=style))

    def _header(self, sid: str) -> None:
        n = STEP_IDS.index(sid) + 1
        self.console.print()
        self.console.rule(Text(f"Step {n}/{len(STEP_IDS)} · {TITLES[sid]}", style="bold"), align="left")
        self._note(self.wizard.steps()[n - 1].description)

    def _status_table(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(width=1)
        table.add_column()
        table.add_column(style="dim")
        for info in self.wizard.steps():
            status = info.status
            if status == "pending" and info.summary:
                status = "running"  # interrupted earlier
            mark, style = _STATUS_MARKS.get(status, ("·", "dim"))
            table.add_row(Text(mark, style=style), info.title, info.error or info.summary)
        return table

    def _show_error(self, exc: WizardError) -> None:
        self.console.print(Text.assemble(("  ✗ ", "red bold"), (exc.message, "red")))
        if exc.hint:
            self.console.print(Text("    " + exc.hint))

    # -- running work ------------------------------------------------------------------------
    def _work(self, fn: Callable[[Emit, threading.Event], T], activity: str, bars: bool = True) -> T:
        """Run ``fn(emit, cancel)`` on a worker thread while this thread renders its events."""
        events: queue.Queue[object] = queue.Queue()
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = fn(events.put, cancel)
            except BaseException as exc:  # handed to the main thread
                outcome["error"] = exc
            finally:
                events.put(_DONE)

        worker = threading.Thread(target=target, name="wizard-step", daemon=True)
        with _keys_held(), EventView(self.console, activity, bars=bars) as view:
            worker.start()
            try:
                self._pump(events, view)
            except KeyboardInterrupt:
                cancel.set()
                self.console.print(
                    Text("Stopping after the work in flight… (press Ctrl-C again to stop waiting)", style="yellow")
                )
                with contextlib.suppress(KeyboardInterrupt):
                    self._pump(events, view)
                raise KeyboardInterrupt from None
        error = outcome.get("error")
        if isinstance(error, Cancelled):
            raise KeyboardInterrupt from None
        if error is not None:
            raise error
        return outcome.get("value")  # type: ignore[return-value]

    def _pump(self, events: queue.Queue[object], view: EventView) -> None:
        while True:
            try:
                item = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            self._log(item)  # type: ignore[arg-type]
            view(item)  # type: ignore[arg-type]

    def _log(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.logger.info("step %s started", event.step)
        elif isinstance(event, StepFinished):
            self.logger.info("step %s done: %s", event.step, event.summary)
        elif isinstance(event, StepFailed):
            self.logger.warning("step %s failed: %s %s", event.step, event.message, event.hint)
        elif isinstance(event, Info):
            self.logger.info("%s", event.message)

    def _run_step(self, sid: str, activity: str) -> None:
        self._work(lambda emit, cancel: self.wizard.run_step(sid, emit, cancel), activity)

    def _step(self, sid: str) -> None:
        """Ask a step's questions and run it; on an error offer retry or quit."""
        self._header(sid)
        while True:
            try:
                getattr(self, f"_do_{sid}")()
                return
            except WizardError as exc:
                self._show_error(exc)
                again = "Check again" if isinstance(exc, AccessNotGranted) else "Try again"
                choice = self._select(
                    "What now?", [("retry", again), ("quit", "Quit (progress is saved)")], default="retry"
                )
                if choice == "quit":
                    self._say_resume()
                    raise _Quit(exc.exit_code) from None

    # -- welcome -----------------------------------------------------------------------------
    def _welcome(self) -> None:
        w = self.wizard
        s = w.settings
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        facts.add_row("Folder", str(s.dir))
        facts.add_row(".env", str(s.env_path))
        facts.add_row("Images", f"{len(s.services)} from {s.vendor_registry}/{s.source_prefix}")
        body: list[Any] = [facts]
        if self.demo:
            body.append(Text("Demo mode: AWS and registries are simulated; nothing leaves this machine.", "yellow"))
        self.console.print(Panel(Group(*body), title="Currents on-prem image wizard", title_align="left"))
        mode = w.mode()
        if mode == "first-run":
            steps = Table.grid(padding=(0, 2))
            steps.add_column(no_wrap=True)
            steps.add_column(style="dim")
            for i, info in enumerate(w.steps(), 1):
                steps.add_row(Text(f"{i}. {info.title}", style="bold"), info.description)
            self.console.print(steps)
            self._note("Each step is saved as it finishes: you can stop at any prompt and come back later.")
            tag = self._text(
                "Image tag to mirror (the release you are installing):",
                default=w.tag,
                check=validate_tag,
            )
            w.set_input("tag", tag)
            return
        self.console.print(Text.assemble("Image tag ", (w.tag, "bold")))
        self.console.print(self._status_table())
        if mode == "resume":
            nxt = w.next_step() or ""
            choice = self._select(
                "Pick up where you left off?",
                [("continue", f"Continue with {TITLES[nxt]}"), ("quit", "Quit")],
                default="continue",
            )
            if choice == "quit":
                self._say_resume()
                raise _Quit(EXIT_OK)
            return
        suggested = w.suggested_upgrade_tag()
        choices: list[tuple[str, str]] = []
        if suggested:
            newer = suggested > w.tag  # release tags are dates: newer sorts later
            source = "You asked for" if suggested == s.tag else "This folder's VERSION is"
            self._note(f"{source} {suggested}; your images are at {w.tag}.", "yellow")
            choices.append(("upgrade", f"{'Upgrade' if newer else 'Switch'} to {suggested}"))
        choices += [
            ("other", "Upgrade to another tag…"),
            ("verify", "Verify the mirror and .env again"),
            ("quit", "Quit"),
        ]
        choice = self._select("Everything is done. What next?", choices, default=choices[0][0])
        if choice == "upgrade" and suggested:
            w.begin_upgrade(suggested)
        elif choice == "other":
            current = w.tag

            def new_tag(value: str) -> str:
                validate_tag(value)
                if value == current:
                    raise InputError(f"{value} is the tag you already run", "type the new release's tag")
                return value

            w.begin_upgrade(self._text("New image tag:", default=suggested or "", check=new_tag))
        elif choice == "verify":
            w.mark("verify", "pending")
        else:
            self._finish()
            raise _Quit(EXIT_OK)
        if choice != "verify":
            self._note(f"Upgrading {w.state.inputs.get('previous_tag', '')} → {w.tag}: mirror, configure, verify.")

    # -- steps -------------------------------------------------------------------------------
    def _do_policy(self) -> None:
        w = self.wizard
        body = Syntax(w.policy_text().rstrip(), "json", theme="ansi_dark", background_color="default")
        self.console.print(Panel(body, title="IAM policy for your pull role", title_align="left"))
        self._note("Note: " + policy.INVALID_ARN_EXPLANATION)
        inputs = w.state.inputs
        # a role ARN given earlier (flag, env or a previous run) without a role created by us: "own"
        own = bool(inputs.get("role_arn")) and not inputs.get("role_name") and not self.demo
        default = "own" if own else "create"
        choice = self._select(
            "The role that Currents will grant pull access:",
            [
                ("create", "Create it now with my AWS credentials"),
                ("own", "I create it myself (or already have one)"),
            ],
            default=default,
        )
        if choice == "create":
            name = self._text(
                "Role name:", default=inputs.get("role_name") or DEFAULT_ROLE_NAME, check=validate_role_name
            )
            w.set_input("role_name", name)
            self._run_step("policy", f"Creating role {name}…")
        else:
            w.set_input("role_name", "")
            self._run_step("policy", "Saving the policy…")
            self._note(
                "Create a role in your AWS account with this policy attached and a trust policy for your "
                "account; you will give its ARN next."
            )

    def _do_share(self) -> None:
        w = self.wizard
        default = w.state.inputs.get("role_arn") or (DEMO_ROLE_ARN if self.demo else "")
        arn = self._text(
            "Your role's ARN (arn:aws:iam::ACCOUNT:role/NAME):",
            default=default,
            check=policy.validate_role_arn,
        )
        w.set_input("role_arn", arn)
        self._run_step("share", "Preparing the message…")
        message = Text(w.share_text().rstrip())
        self.console.print(Panel(message, title="Send this to your Currents contact", title_align="left"))
        self._access_check()

    def _access_check(self) -> None:
        """Optional probe: has Currents granted the role access yet?"""
        verdict = ""
        while True:
            choice = self._select(
                "Currents must grant this role access before images can be copied.",
                [
                    ("check", "Check now whether access is granted"),
                    ("continue", "Continue: Currents has confirmed access"),
                    ("stop", "Stop here; come back when Currents confirms"),
                ],
                default="check",
            )
            if choice == "continue":
                return
            if choice == "stop":
                self._say_resume()
                raise _Quit(EXIT_NOT_GRANTED if verdict == "not_granted" else EXIT_OK)
            result = self._work(lambda emit, cancel: self.wizard.probe(), "Checking access…")
            verdict = result.verdict
            if result.granted:
                self.console.print(Text.assemble(("  ✓ ", "green bold"), result.message))
                return
            self.console.print(Text.assemble(("  ! ", "yellow bold"), (result.message, "yellow")))
            if result.hint:
                self.console.print(Text("    " + result.hint))

    def _do_auth(self) -> None:
        self._run_step("auth", "Assuming your role and checking access…")

    def _do_mirror(self) -> None:
        w = self.wizard
        inputs = w.state.inputs
        if inputs.get("from_archive"):
            self._note(f"Images come from the archive {inputs['from_archive']}.")
        engines = [
            ("registry", "Registry to registry: exact copy by digest (recommended)"),
            ("docker", "Docker engine: docker pull, tag and push"),
            ("archive", "Archive: write an OCI archive to carry into an isolated network"),
        ]
        if self.demo:
            engines = [e for e in engines if e[0] != "docker"]
        engine = self._select("How should the images be copied?", engines, default=w.engine)
        w.set_input("engine", engine)
        if engine == "archive":
            path = self._text(
                "Archive path (a folder, or a file ending in .tar):",
                default=inputs.get("archive") or str(w.settings.dir / "currents-images.tar"),
                check=_not_empty("archive path"),
            )
            w.set_input("archive", str(Path(path).expanduser()))
        else:
            target = self._text(
                "Your registry (HOST[:PORT]/PATH, e.g. registry.example.com/currents):",
                default=inputs.get("target") or (DEMO_TARGET if self.demo else ""),
                check=parse_target,
            )
            w.set_input("target", target)
            self._ask_target_login()
        count = len(w.settings.services)
        if engine == "docker":
            question = f"Pull, tag and push {count} images with Docker now?"
        else:
            plan = self._work(lambda emit, cancel: w.mirror_plan(emit), "Comparing source and target…", bars=False)
            self._show_plan(plan)
            to_copy = sum(1 for img in plan.images if img.action == "copy")
            where = inputs.get("archive", "") if engine == "archive" else str(w.target())
            question = (
                f"Copy {to_copy} image{'s' if to_copy != 1 else ''} ({human_bytes(plan.bytes_to_copy)}) to {where} now?"
                if to_copy
                else "Everything is already there. Check it and record it?"
            )
        if not self._confirm(question, default=True):
            self._note("Nothing was copied.")
            self._say_resume()
            raise _Quit(EXIT_FAILED)
        self._run_step("mirror", f"Mirroring {count} images…")

    def _ask_target_login(self) -> None:
        w = self.wizard
        host = w.target().host
        known_user = w.state.inputs.get("target_username", "")
        if not self._confirm(f"Does {host} need a username and password?", default=bool(known_user)):
            w.set_target_credential("", "")
            w.set_input("target_username", "")
            return
        user = self._text("Username:", default=known_user, check=_not_empty("username"))
        password = self._password(f"Password for {user}:")
        log.register_secret(password)
        w.set_target_credential(user, password)

    def _show_plan(self, plan: Any) -> None:
        table = Table(box=None, padding=(0, 2), header_style="dim")
        table.add_column("Image")
        table.add_column("Size", justify="right")
        table.add_column("To copy", justify="right")
        table.add_column("")
        for img in plan.images:
            if img.action == "skip":
                note, style = "up to date", "green"
            elif img.action == "failed":
                note, style = img.message or "failed", "red"
            else:
                note = f"{img.blobs_to_copy} layers" + (f", {img.blobs_to_mount} shared" if img.blobs_to_mount else "")
                style = ""
            table.add_row(
                img.key,
                human_bytes(img.size) if img.size else "—",
                human_bytes(img.bytes_to_copy) if img.action == "copy" else "—",
                Text(note, style=style),
            )
        self.console.print(table)
        to_copy = sum(1 for img in plan.images if img.action == "copy")
        self._note(
            f"{to_copy} of {len(plan.images)} images to copy: {human_bytes(plan.bytes_to_copy)} "
            f"in {plan.blobs_to_copy} unique layers (layers shared between images are sent once)."
        )

    def _do_configure(self) -> None:
        w = self.wizard
        env = w.settings.env_path
        example = env.parent / envfile.EXAMPLE_NAME
        if not env.exists() and env.name == ".env" and example.is_file():
            if not self._confirm(f"{env} does not exist. Create it from {example.name}?", default=True):
                self._note(f"Create {env} (for example by copying {example.name}), then run again.")
                self._say_resume()
                raise _Quit(EXIT_FAILED)
            envfile.create_from_example(env.parent)
        change = w.env_change()
        if change.changed:
            self.console.print(Syntax(change.diff().rstrip(), "diff", theme="ansi_dark", background_color="default"))
            for note in change.notes:
                self._note(note)
            if not self._confirm(f"Write these changes to {env}? (a backup copy is kept)", default=True):
                self._note(f"{env} was not changed.")
                self._say_resume()
                raise _Quit(EXIT_FAILED)
        else:
            self._note(f"{env} already points at {change.repository} with tag {change.tag}.")
        self._run_step("configure", "Updating the .env…")

    def _do_verify(self) -> None:
        self._run_step("verify", "Checking the mirrored images and the .env…")

    # -- done --------------------------------------------------------------------------------
    def _finish(self) -> None:
        w = self.wizard
        s = w.settings
        self.console.print()
        self.console.rule(Text("Done", style="bold green"), align="left")
        self.console.print(self._status_table())
        if w.engine == "archive":
            archive = w.state.inputs.get("archive", "")
            self.console.print(
                Text.assemble(
                    "The images are in ",
                    (archive, "bold"),
                    ". Carry it into the isolated network, then push it to your registry with:",
                )
            )
            cmd = shlex.join([PROG, "--plain", "--from-archive", archive, "--target", "HOST/PATH"])
            self.console.print(Text("  " + cmd, style="bold"))
            return
        try:
            prefix = w.target().repository_prefix
        except InputError:
            prefix = ""
        self.console.print(
            Text.assemble(
                (str(s.env_path), "bold"),
                " now uses ",
                (prefix, "bold"),
                " with tag ",
                (w.tag, "bold"),
                ".",
            )
        )
        cmd = "docker compose pull && docker compose up -d"
        folder = Path(s.dir).resolve()
        if folder != Path.cwd().resolve():
            cmd = f"cd {shlex.quote(str(folder))} && {cmd}"
        self.console.print("Next, start Currents with the mirrored images:")
        self.console.print(Text("  " + cmd, style="bold"))


def run(wizard: Wizard, console: Console | None = None) -> int:
    """Run the plain wizard over an opened (locked) :class:`Wizard`; returns the process exit code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("prompt.run() must not be called from inside an event loop (e.g. Textual's)")
    return PlainFrontEnd(wizard, console).run()


__all__ = ["PlainFrontEnd", "resume_command", "run", "validate_role_name"]
