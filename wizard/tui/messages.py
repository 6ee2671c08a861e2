"""Textual messages that carry core events and worker results to the app's message queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from wizard.core.errors import WizardError
from wizard.core.events import Event


class CoreEvent(Message):
    """A low-rate core event (step started/finished/failed, info, plan) posted from a worker thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


@dataclass
class WorkResult:
    """How one piece of background work ended."""

    kind: str
    step: str | None = None
    value: Any = None
    error: WizardError | None = None
    cancelled: bool = False
    quiet: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


class WorkDone(Message):
    """Posted by a worker thread when its work ends (ok, failed or cancelled)."""

    def __init__(self, result: WorkResult) -> None:
        super().__init__()
        self.result = result
