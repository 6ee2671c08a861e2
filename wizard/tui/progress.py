"""Mirror progress: a thread-side coalescer and the UI-side model the mirror screen renders.

Copy threads can emit many :class:`BlobProgress` / :class:`ImageProgress` events a second.
:class:`Coalescer` keeps only the latest event per image and per blob (under a lock), so the UI
thread handles at most one event per key on each tick.  :class:`MirrorProgress` folds events into
per-image rows (state, bytes, speed) and per-layer rows; run totals, speed and ETA come from the
core's :class:`wizard.core.mirror.MirrorStats`.

Pure Python (no Textual), so it is unit-tested on its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wizard.core.events import BlobProgress, ImageProgress, PlanReady
from wizard.core.mirror import MirrorStats

ProgressEvent = BlobProgress | ImageProgress
FINISHED = ("done", "skipped")


class Coalescer:
    """Latest progress event per key; ``put`` from any thread, ``drain`` from the UI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, ...], ProgressEvent] = {}
        self.received = 0

    def put(self, event: ProgressEvent) -> None:
        key = ("image", event.service) if isinstance(event, ImageProgress) else ("blob", event.digest)
        with self._lock:
            self._pending[key] = event
            self.received += 1

    def drain(self) -> list[ProgressEvent]:
        with self._lock:
            events = list(self._pending.values())
            self._pending.clear()
        return events


@dataclass
class LayerRow:
    digest: str
    state: str = "waiting"
    done: int = 0
    total: int = 0


@dataclass
class ImageRow:
    service: str
    state: str = "waiting"
    done: int = 0
    total: int = 0
    blobs_done: int = 0
    blobs_total: int = 0
    message: str = ""
    digest: str = ""
    speed: float = 0.0
    seen: bool = False  # progress arrived: the plan must not overwrite it
    layers: dict[str, LayerRow] = field(default_factory=dict)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=100), repr=False)

    @property
    def fraction(self) -> float:
        if self.state in FINISHED:
            return 1.0
        return min(1.0, self.done / self.total) if self.total else 0.0


class MirrorProgress:
    """What the mirror screen shows; fed on the UI thread only."""

    def __init__(self, services: Iterable[str] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window = 5.0
        self.reset(services)

    def reset(self, services: Iterable[str]) -> None:
        self.images: dict[str, ImageRow] = {s: ImageRow(s) for s in services}
        self.plan: PlanReady | None = None
        self.stats = MirrorStats(clock=self.clock, window=self.window)
        self.events = 0

    @property
    def started(self) -> bool:
        return self.events > 0

    def row(self, service: str) -> ImageRow:
        if service not in self.images:
            self.images[service] = ImageRow(service)
        return self.images[service]

    # -- folding events ----------------------------------------------------------------------
    def apply_plan(self, plan: PlanReady) -> None:
        """Initial rows from the plan. Progress may be handled first (the plan travels as a separate
        message), so rows that already have progress keep it."""
        self.plan = plan
        self.stats.update(plan)
        for item in plan.images:
            key = str(item.get("key") or item.get("service") or "")
            if not key:
                continue
            row = self.row(key)
            row.digest = row.digest or str(item.get("source_digest", "") or "")
            if row.seen:
                continue
            row.total = int(item.get("bytes_to_copy", 0) or 0)
            row.blobs_total = int(item.get("blobs_to_copy", 0) or 0) + int(item.get("blobs_to_mount", 0) or 0)
            action = str(item.get("action", "copy"))
            row.state = {"copy": "planned", "skip": "skipped", "failed": "failed"}.get(action, action)
            row.message = str(item.get("message", "") or ("up to date" if action == "skip" else ""))

    def apply(self, events: Iterable[ProgressEvent]) -> None:
        now = self.clock()
        touched: set[str] = set()
        for event in events:
            self.events += 1
            self.stats.update(event)
            if isinstance(event, ImageProgress):
                row = self.row(event.service)
                row.seen = True
                row.state = event.state
                if event.total_bytes or event.state not in ("skipped", "failed"):
                    row.done, row.total = event.done_bytes, event.total_bytes
                row.blobs_done, row.blobs_total = event.blobs_done, event.blobs_total or row.blobs_total
                if event.message:
                    row.message = event.message
                if event.digest:
                    row.digest = event.digest
                touched.add(event.service)
            else:
                row = self.row(event.service)
                layer = row.layers.get(event.digest)
                if layer is None:
                    layer = row.layers[event.digest] = LayerRow(event.digest)
                layer.state, layer.done, layer.total = event.state, event.done, event.total
        for service in touched:
            self._sample(self.images[service], now)

    def _sample(self, row: ImageRow, now: float) -> None:
        if row.state in FINISHED or row.state == "failed":
            row.speed = 0.0
            row.samples.clear()
            return
        row.samples.append((now, row.done))
        while len(row.samples) > 2 and now - row.samples[0][0] > self.window:
            row.samples.popleft()
        (t0, b0), (t1, b1) = row.samples[0], row.samples[-1]
        row.speed = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    # -- totals ------------------------------------------------------------------------------
    @property
    def done_bytes(self) -> int:
        return self.stats.done_bytes

    @property
    def total_bytes(self) -> int:
        return self.stats.total_bytes

    @property
    def speed(self) -> float:
        return 0.0 if self.all_finished else self.stats.speed

    @property
    def eta(self) -> float | None:
        return 0.0 if self.all_finished else self.stats.eta

    @property
    def fraction(self) -> float:
        if self.all_finished:
            return 1.0
        if not self.started and self.plan is None:
            return 0.0
        return self.stats.fraction

    @property
    def all_finished(self) -> bool:
        return bool(self.images) and all(r.state in FINISHED for r in self.images.values())

    def count(self, *states: str) -> int:
        return sum(1 for r in self.images.values() if r.state in states)

    def failed(self) -> list[str]:
        return [s for s, r in self.images.items() if r.state == "failed"]
