"""Typed progress events: the only thing core work tells a front end.

Core code receives an ``emit`` callable and calls it with these immutable objects; front ends
render them (Textual posts them as messages, the plain mode draws Rich bars, the CLI logs).
Events never carry secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepStarted:
    step: str


@dataclass(frozen=True)
class StepFinished:
    step: str
    summary: str = ""


@dataclass(frozen=True)
class StepFailed:
    step: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Info:
    """A human-readable line of progress (``level`` is info|warning)."""

    message: str
    level: str = "info"
    step: str = ""


@dataclass(frozen=True)
class BlobProgress:
    """Bytes moved for one blob of one image. ``state``: waiting|copying|exists|mounted|done|failed."""

    service: str
    digest: str
    done: int
    total: int
    state: str


@dataclass(frozen=True)
class ImageProgress:
    """Roll-up for one image. ``state``: planned|skipped|copying|verifying|done|failed."""

    service: str
    state: str
    done_bytes: int = 0
    total_bytes: int = 0
    blobs_done: int = 0
    blobs_total: int = 0
    message: str = ""
    digest: str = ""


@dataclass(frozen=True)
class PlanReady:
    """What a mirror run will move, before it moves it."""

    images: tuple[dict, ...] = field(default_factory=tuple)
    bytes_to_copy: int = 0
    blobs_to_copy: int = 0


Event = StepStarted | StepFinished | StepFailed | Info | BlobProgress | ImageProgress | PlanReady
Emit = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An ``emit`` that drops everything (for callers that do not care)."""
