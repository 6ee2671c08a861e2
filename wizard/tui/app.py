"""The Textual front end: one app driving one :class:`wizard.core.steps.Wizard`.

The app owns every piece of long work (steps, mirror plan, access probe, ...) as a *thread*
worker, so popping or switching a screen never orphans it.  Worker threads report through
``emit``: low-rate events become :class:`CoreEvent` messages; high-rate progress goes into a
:class:`Coalescer` that a 10 Hz timer drains on the UI thread.  Screens render from the wizard's
state and ``app.progress`` whenever the app calls their ``refresh_view``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from wizard.core.errors import Cancelled, WizardError
from wizard.core.events import BlobProgress, Event, ImageProgress, Info, PlanReady, StepFailed
from wizard.core.state import STEP_IDS
from wizard.core.steps import TITLES, Wizard
from wizard.tui.messages import CoreEvent, WorkDone, WorkResult
from wizard.tui.progress import Coalescer, MirrorProgress

#: Which screen shows which step ("verify" is shown by the Done screen).
STEP_SCREENS: tuple[str, ...] = STEP_IDS
WORK_TITLES: dict[str, str] = {
    "probe": "Access check",
    "plan": "Mirror plan",
    "identity": "AWS identity",
    "compose": "Compose check",
    "tags": "Tag discovery",
}


class WizardApp(App[int]):
    """The wizard. ``now``/``monotonic`` may be injected to make time-dependent text deterministic."""

    CSS_PATH = "app.tcss"
    TITLE = "Currents on-prem wizard"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("f2", "show_commands", "Commands"),
    ]

    def __init__(
        self,
        wizard: Wizard,
        demo: bool = False,
        *,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        flush_interval: float = 0.1,
        start: str = "welcome",
    ) -> None:
        super().__init__()
        self.wizard = wizard
        self.demo = bool(demo or wizard.settings.demo or getattr(wizard.backend, "demo", False))
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(timezone.utc))
        self.coalescer = Coalescer()
        self.progress = MirrorProgress(wizard.settings.services, clock=monotonic or time.monotonic)
        self.flush_interval = flush_interval
        self.start = start
        self.cancels: dict[str, threading.Event] = {}
        self.running: dict[str, str | None] = {}
        self.results: dict[str, WorkResult] = {}
        self.infos: deque[Info] = deque(maxlen=100)
        self.identity: Any = None
        self.discovered_tags: list[str] = []
        self.compose_result: str | None = None
        self.quitting = False
        if self.demo:
            self.title = f"{self.TITLE} — DEMO"

    # -- screens ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.set_interval(self.flush_interval, self.flush_progress, name="progress-flush")
        self.push_screen(self.make_screen(self.start))

    def make_screen(self, name: str) -> Screen[Any]:
        """A fresh screen for ``welcome``, a step id, or ``done``."""
        from wizard.tui.screens.auth import AuthScreen
        from wizard.tui.screens.configure import ConfigureScreen
        from wizard.tui.screens.done import DoneScreen
        from wizard.tui.screens.mirror import MirrorScreen
        from wizard.tui.screens.policy import PolicyScreen
        from wizard.tui.screens.share import ShareScreen
        from wizard.tui.screens.welcome import WelcomeScreen

        screens: dict[str, type[Screen[Any]]] = {
            "welcome": WelcomeScreen,
            "policy": PolicyScreen,
            "share": ShareScreen,
            "auth": AuthScreen,
            "mirror": MirrorScreen,
            "configure": ConfigureScreen,
            "verify": DoneScreen,
            "done": DoneScreen,
        }
        return screens[name]()

    def goto(self, name: str) -> None:
        """Replace the current step screen with ``name`` (closing any modal first)."""
        from wizard.tui.screens.base import WizardScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, WizardScreen):
            self.pop_screen()
        self.switch_screen(self.make_screen(name))

    def can_visit(self, step_id: str) -> bool:
        """A step screen can be opened when every step before it is done (or it is done itself)."""
        if step_id == "welcome":
            return True
        idx = STEP_IDS.index("verify" if step_id == "done" else step_id)
        return all(self.wizard.status(s) in ("done", "skipped") for s in STEP_IDS[:idx])

    def refresh_screens(self, reason: str = "state") -> None:
        from wizard.tui.screens.base import WizardScreen

        for screen in self.screen_stack:
            if isinstance(screen, WizardScreen) and screen.is_mounted:
                screen.refresh_view(reason)

    # -- events from worker threads ------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """The ``emit`` handed to core work. Thread-safe; never blocks on the UI."""
        if isinstance(event, (BlobProgress, ImageProgress)):
            self.coalescer.put(event)
        else:
            self.post_message(CoreEvent(event))

    def flush_progress(self) -> None:
        events = self.coalescer.drain()
        if events:
            self.progress.apply(events)
            self.refresh_screens("progress")

    def on_core_event(self, message: CoreEvent) -> None:
        self.flush_progress()
        event = message.event
        if isinstance(event, PlanReady):
            self.progress.apply_plan(event)
            self.refresh_screens("plan")
            return
        if isinstance(event, Info):
            self.infos.append(event)
            if event.level == "warning":
                self.notify(event.message, title="Warning", severity="warning", timeout=8)
            self.refresh_screens("info")
            return
        if isinstance(event, StepFailed):
            self.refresh_screens("state")
            return
        self.refresh_screens("state")

    # -- background work -------------------------------------------------------------------------
    def is_busy(self, kind: str | None = None) -> bool:
        return bool(self.running) if kind is None else kind in self.running

    def start_work(
        self,
        kind: str,
        fn: Callable[[threading.Event], Any],
        *,
        step: str | None = None,
        quiet: bool = False,
    ) -> bool:
        """Run ``fn(cancel_event)`` in a thread worker owned by the app; one at a time per ``kind``.

        The outcome arrives as :class:`WorkDone`; errors open the error modal unless ``quiet``.
        """
        if kind in self.running:
            self.notify(f"{WORK_TITLES.get(kind, kind)} is already running", severity="warning")
            return False
        cancel = threading.Event()
        self.cancels[kind] = cancel
        self.running[kind] = step

        def body() -> None:
            result = WorkResult(kind, step)
            try:
                result.value = fn(cancel)
            except Cancelled:
                result.cancelled = True
            except WizardError as exc:
                result.error = exc
            except Exception as exc:  # a bug: one line for the user, never a traceback
                from wizard.core.log import get, redact

                get().exception("unexpected error in %s", kind)
                result.error = WizardError(
                    f"unexpected error: {type(exc).__name__}: {redact(str(exc))}",
                    "details are in .currents-wizard/wizard.log; please report this",
                )
            if cancel.is_set() and result.error is not None:
                result.error, result.cancelled = None, True  # stopped by request, whatever the symptom
            result.quiet = quiet
            self.post_message(WorkDone(result))

        self.run_worker(body, name=kind, group=kind, exclusive=True, thread=True, exit_on_error=False)
        self.refresh_screens("busy")
        return True

    def start_step(self, step_id: str) -> bool:
        """Run one wizard step in the background."""
        if step_id == "mirror":
            self.progress.reset(self.wizard.settings.services)
        return self.start_work("step", lambda cancel: self.wizard.run_step(step_id, self.emit, cancel), step=step_id)

    def cancel(self, kind: str = "step") -> None:
        event = self.cancels.get(kind)
        if event is not None:
            event.set()
            self.refresh_screens("busy")

    def on_work_done(self, message: WorkDone) -> None:
        self.flush_progress()
        result = message.result
        self.running.pop(result.kind, None)
        self.cancels.pop(result.kind, None)
        self.results[result.kind] = result
        if result.kind == "identity" and result.ok:
            self.identity = result.value
        self.refresh_screens("work")
        from wizard.tui.screens.base import WizardScreen

        for screen in list(self.screen_stack):
            if isinstance(screen, WizardScreen) and screen.is_mounted:
                screen.work_done(result)
                screen.on_work_done_base(result)
        if result.error is not None and not result.quiet and not self.quitting:
            self.show_error(result)

    def show_error(self, result: WorkResult) -> None:
        from wizard.tui.screens.error import ErrorScreen

        assert result.error is not None
        what = TITLES.get(result.step or "", WORK_TITLES.get(result.kind, result.kind))
        self.push_screen(ErrorScreen(f"{what} failed", result.error.message, result.error.hint))

    def show_input_error(self, exc: WizardError, what: str = "Check your input") -> None:
        from wizard.tui.screens.error import ErrorScreen

        self.push_screen(ErrorScreen(what, exc.message, exc.hint))

    # -- actions ---------------------------------------------------------------------------------
    def action_help(self) -> None:
        from wizard.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_show_commands(self) -> None:
        from wizard.tui.screens.base import WizardScreen
        from wizard.tui.screens.commands import CommandsScreen

        if isinstance(self.screen, CommandsScreen):
            return
        step = None
        for screen in reversed(self.screen_stack):
            if isinstance(screen, WizardScreen):
                step = screen.STEP
                break
        self.push_screen(CommandsScreen(step))

    async def action_quit(self) -> None:
        """Stop background work (state is saved as it goes) and exit with status 0."""
        self.quitting = True
        for event in self.cancels.values():
            event.set()
        self.exit(0)

    def copy_text(self, text: str, what: str) -> None:
        """Copy via OSC 52 (works in most terminals, also over SSH) and say so."""
        self.copy_to_clipboard(text)
        self.notify(
            f"{what} copied to the clipboard. If your terminal does not support that, select the text on screen.",
            title="Copied",
        )


def run_app(wizard: Wizard, demo: bool = False) -> int:
    """Run the Textual wizard on an opened :class:`Wizard`; returns the process exit status."""
    app = WizardApp(wizard, demo=demo)
    result = app.run()
    for event in app.cancels.values():
        event.set()
    wizard.wait_idle(timeout=30)  # a cancelled step stops at its next chunk and saves "interrupted"
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return int(result or 0)
