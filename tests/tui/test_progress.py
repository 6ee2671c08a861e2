"""Unit tests for the progress model, the coalescer and the text formatters (no Textual app)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from wizard.core.events import BlobProgress, ImageProgress, PlanReady
from wizard.tui.fmt import bytes_of, clock_duration, human_bytes, human_rate, short_digest, time_left
from wizard.tui.progress import Coalescer, MirrorProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_coalescer_keeps_the_latest_event_per_key_across_threads() -> None:
    c = Coalescer()

    def produce(service: str) -> None:
        for i in range(5000):
            c.put(BlobProgress(service, f"sha256:{i % 3}", i, 5000, "copying"))
            c.put(ImageProgress(service, "copying", done_bytes=i, total_bytes=5000))

    threads = [threading.Thread(target=produce, args=(s,)) for s in ("api", "writer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = c.drain()
    assert c.received == 20000
    # one image event per service; blobs are keyed by digest (shared across images)
    images = [e for e in events if isinstance(e, ImageProgress)]
    assert sorted(e.service for e in images) == ["api", "writer"]
    assert all(e.done_bytes == 4999 for e in images)
    assert len([e for e in events if isinstance(e, BlobProgress)]) == 3
    assert c.drain() == []


def test_model_rows_totals_speed_and_eta() -> None:
    clock = Clock()
    p = MirrorProgress(["api", "writer"], clock=clock)
    p.apply_plan(
        PlanReady(
            images=(
                {"key": "api", "service": "api", "action": "copy", "bytes_to_copy": 1000, "blobs_to_copy": 2},
                {"key": "writer", "service": "writer", "action": "skip", "bytes_to_copy": 0},
            ),
            bytes_to_copy=1000,
            blobs_to_copy=2,
        )
    )
    assert p.images["api"].state == "planned" and p.images["writer"].state == "skipped"
    assert p.fraction == 0.0 and not p.started

    clock.t = 1.0
    p.apply([BlobProgress("api", "sha256:a", 100, 600, "copying"), ImageProgress("api", "copying", 100, 1000, 0, 2)])
    clock.t = 3.0
    p.apply([BlobProgress("api", "sha256:a", 500, 600, "copying"), ImageProgress("api", "copying", 500, 1000, 0, 2)])
    assert p.done_bytes == 500 and p.total_bytes == 1000
    assert p.speed == 200.0  # (500 - 100) bytes over 2 s
    assert p.images["api"].speed == 200.0
    assert p.eta == 2.5
    assert p.images["api"].layers["sha256:a"].done == 500

    clock.t = 4.0
    p.apply([BlobProgress("api", "sha256:a", 600, 600, "done"), ImageProgress("api", "done", 1000, 1000, 2, 2)])
    assert p.all_finished and p.fraction == 1.0 and p.eta == 0.0 and p.speed == 0.0
    assert p.images["api"].speed == 0.0


def test_failed_images_are_listed() -> None:
    p = MirrorProgress(["api"])
    p.apply([ImageProgress("api", "failed", message="blob sha256:1: 500")])
    assert p.failed() == ["api"] and p.images["api"].message == "blob sha256:1: 500"
    assert not p.all_finished


def test_formatters() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1500) == "1.5 kB"
    assert human_bytes(20_400_000) == "20.4 MB"
    assert human_bytes(2.5e12) == "2.5 TB"
    assert bytes_of(4_400_000, 5_400_000) == "4.4/5.4 MB"
    assert bytes_of(126, 2_100_000) == "126 B/2.1 MB"
    assert human_rate(0) == "—" and human_rate(2000) == "2.0 kB/s"
    assert clock_duration(75) == "1:15" and clock_duration(3725) == "1:02:05" and clock_duration(None) == "—"
    now = datetime(2026, 1, 26, 12, tzinfo=timezone.utc)
    assert time_left((now + timedelta(minutes=59, seconds=59)).isoformat(), now) == "expires in 59 min"
    assert time_left(now + timedelta(hours=12), now) == "expires in 12 h"
    assert time_left(now + timedelta(seconds=30), now) == "expires in under a minute"
    assert time_left(now - timedelta(minutes=3), now) == "expired 3 min ago"
    assert time_left("", now) == "" and time_left("not a date", now) == ""
    assert short_digest("sha256:" + "a" * 64) == "sha256:aaaaaaaaaaaa…"
    assert short_digest("") == "—"


def test_a_late_plan_does_not_overwrite_progress() -> None:
    """The plan arrives as a message; a fast copy's progress may be handled before it."""
    p = MirrorProgress(["api"])
    p.apply([ImageProgress("api", "done", 10, 10, 1, 1)])
    p.apply_plan(
        PlanReady(images=({"key": "api", "action": "copy", "bytes_to_copy": 10, "source_digest": "sha256:x"},))
    )
    assert p.images["api"].state == "done" and p.images["api"].digest == "sha256:x"
    assert p.all_finished
