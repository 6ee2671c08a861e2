"""Rich rendering of core events for the plain front end.

:class:`EventView` is fed events on the main thread (the plain front end pumps them from a queue
filled by the worker thread that runs the step). It shows a spinner while a step works, prints
``Info`` lines above it, and switches to progress bars — one per image plus a total — as soon as
a mirror plan is ready.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.status import Status
from rich.text import Text

from wizard.core.events import BlobProgress, Event, ImageProgress, Info, PlanReady, StepFailed, StepFinished
from wizard.core.mirror import MirrorStats, human_bytes

TOTAL_KEY = "__total__"
_STATE_LABELS = {
    "planned": "waiting",
    "skipped": "up to date",
    "copying": "copying",
    "verifying": "verifying",
    "done": "done",
    "failed": "failed",
}
_STATE_STYLES = {"done": "green", "skipped": "green", "failed": "red", "copying": "cyan", "verifying": "cyan"}


class _StateColumn(ProgressColumn):
    """The image's state word (``copying``, ``up to date``, ``failed`` ...), coloured."""

    def render(self, task: Task) -> Text:
        state = str(task.fields.get("state", ""))
        return Text(_STATE_LABELS.get(state, state), style=_STATE_STYLES.get(state, "dim"))


class _SizeColumn(ProgressColumn):
    """``12.3 MB / 40.0 MB`` from the task's byte fields (works for images with nothing to copy)."""

    def render(self, task: Task) -> Text:
        done, total = int(task.fields.get("bytes_done", 0)), int(task.fields.get("bytes_total", 0))
        if not total:
            return Text("—", style="dim")
        return Text(f"{human_bytes(done)} / {human_bytes(total)}", style="progress.download")


class EventView:
    """Renders one step's events. Use as a context manager; call it with each event (main thread only).

    With ``bars=False`` a mirror plan is only recorded (``self.plan``), not drawn.
    """

    def __init__(self, console: Console, activity: str = "Working…", bars: bool = True) -> None:
        self.console = console
        self.activity = activity
        self.bars = bars
        self.stats = MirrorStats()
        self.plan: PlanReady | None = None
        self.failed_images: dict[str, str] = {}
        self._status: Status | None = None
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> EventView:
        self._status = self.console.status(self.activity, spinner="dots")
        self._status.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def set_activity(self, text: str) -> None:
        self.activity = text
        if self._status is not None:
            self._status.update(text)

    # -- events ----------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if isinstance(event, BlobProgress):
            self.stats.update(event)
            self._update_total()
        elif isinstance(event, ImageProgress):
            self.stats.update(event)
            self._image(event)
        elif isinstance(event, PlanReady):
            self.stats.update(event)
            self.plan = event
            self._start_bars(event)
        elif isinstance(event, Info):
            if event.level == "warning":
                self.console.print(Text("  ! ", style="yellow bold") + Text(event.message, style="yellow"))
            else:
                self.console.print(Text("  · " + event.message, style="dim"))
        elif isinstance(event, StepFinished):
            self.close()
            if event.summary:
                self.console.print(Text("  ✓ ", style="green bold") + Text(event.summary))
        elif isinstance(event, StepFailed):
            self.close()  # the front end prints the error with its hint

    # -- bars ------------------------------------------------------------------------------------
    def _start_bars(self, plan: PlanReady) -> None:
        if self._progress is not None or not self.bars:
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        self._progress = Progress(
            TextColumn("  {task.description:<16}"),
            _StateColumn(),
            BarColumn(bar_width=30),
            _SizeColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        for img in plan.images:
            key = str(img.get("key") or img.get("service"))
            action = str(img.get("action", "copy"))
            state = {"skip": "skipped", "failed": "failed"}.get(action, "planned")
            size = int(img.get("bytes_to_copy") or 0)
            self._tasks[key] = self._progress.add_task(
                key,
                total=max(size, 1),
                completed=max(size, 1) if action == "skip" else 0,
                state=state,
                bytes_done=0,
                bytes_total=size,
            )
            if action == "failed":
                self.failed_images[key] = str(img.get("message", ""))
        self._tasks[TOTAL_KEY] = self._progress.add_task(
            "total",
            total=max(plan.bytes_to_copy, 1),
            completed=0,
            state="planned",
            bytes_done=0,
            bytes_total=plan.bytes_to_copy,
        )
        self._progress.start()

    def _image(self, event: ImageProgress) -> None:
        if self._progress is None:
            self._start_bars(PlanReady())
        if self._progress is None:
            return
        task = self._tasks.get(event.service)
        if task is None:
            task = self._tasks[event.service] = self._progress.add_task(
                event.service, total=1, state="planned", bytes_done=0, bytes_total=0
            )
        kw: dict[str, Any] = {"state": event.state}
        if event.total_bytes:
            kw.update(total=event.total_bytes, completed=event.done_bytes)
            kw.update(bytes_total=event.total_bytes, bytes_done=event.done_bytes)
        if event.state in ("done", "skipped"):
            kw["completed"] = kw.get("total", self._progress.tasks[task].total)
        if event.state == "failed":
            self.failed_images[event.service] = event.message
        self._progress.update(task, **kw)
        self._update_total()

    def _update_total(self) -> None:
        if self._progress is None or TOTAL_KEY not in self._tasks:
            return
        s = self.stats
        finished = bool(s.images_total) and s.images_finished + s.images_failed == s.images_total
        state = "copying" if s.done_bytes else "planned"
        if finished:
            state = "failed" if s.images_failed else "done"
        total = max(s.total_bytes, 1)
        self._progress.update(
            self._tasks[TOTAL_KEY],
            total=total,
            completed=total if state == "done" else min(s.done_bytes, total),
            state=state,
            bytes_done=s.done_bytes,
            bytes_total=s.total_bytes,
        )
