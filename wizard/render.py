"""Line-based progress for the non-interactive CLI: one line per meaningful change, never per byte."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from wizard.core import log
from wizard.core.events import (
    BlobProgress,
    Event,
    ImageProgress,
    Info,
    PlanReady,
    StepFailed,
    StepFinished,
    StepStarted,
)
from wizard.core.mirror import human_bytes
from wizard.core.steps import TITLES


class LineRenderer:
    """Callable ``emit`` target that writes plain lines (safe from worker threads)."""

    def __init__(self, out: TextIO, verbose: bool = False, interval: float = 2.0) -> None:
        self.out, self.verbose, self.interval = out, verbose, interval
        self._lock = threading.Lock()
        self._last_state: dict[str, str] = {}
        self._last_line: dict[str, float] = {}
        self._logger = log.get()

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
        self._logger.info(line)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StepStarted):
                self._write(f"==> {TITLES.get(event.step, event.step)}")
            elif isinstance(event, StepFinished):
                self._write(f"    done: {event.summary}" if event.summary else "    done")
            elif isinstance(event, StepFailed):
                self._write(f"    failed: {event.message}" + (f" — {event.hint}" if event.hint else ""))
            elif isinstance(event, Info):
                prefix = "    warning: " if event.level == "warning" else "    "
                self._write(prefix + event.message)
            elif isinstance(event, PlanReady):
                self._write(
                    f"    plan: {len(event.images)} images, {event.blobs_to_copy} blobs, "
                    f"{human_bytes(event.bytes_to_copy)} to copy"
                )
            elif isinstance(event, ImageProgress):
                now = time.monotonic()
                changed = self._last_state.get(event.service) != event.state
                due = now - self._last_line.get(event.service, 0) >= self.interval
                if changed or (due and event.state == "copying"):
                    self._last_state[event.service] = event.state
                    self._last_line[event.service] = now
                    size = (
                        f" {human_bytes(event.done_bytes)}/{human_bytes(event.total_bytes)}"
                        if event.total_bytes
                        else ""
                    )
                    extra = f" {event.message}" if event.message else ""
                    self._write(f"    {event.service:<15} {event.state}{size}{extra}")
            elif isinstance(event, BlobProgress) and self.verbose and event.state in ("done", "mounted", "failed"):
                self._logger.debug("blob %s %s %s", event.service, event.digest[:19], event.state)

    def close(self) -> None:
        self.out.flush()
