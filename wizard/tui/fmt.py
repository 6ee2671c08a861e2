"""Small text formatters shared by the screens (bytes, rates, durations, digests)."""

from __future__ import annotations

from datetime import datetime, timezone

from wizard.core.mirror import human_bytes  # the one byte formatter (decimal units), shared with the CLI


def bytes_of(done: float, total: float) -> str:
    """``4.4/5.4 MB`` when both share a unit, else ``126 B/2.1 MB``."""
    a, b = human_bytes(done), human_bytes(total)
    unit_a, unit_b = a.rsplit(" ", 1)[1], b.rsplit(" ", 1)[1]
    if unit_a == unit_b:
        return f"{a.rsplit(' ', 1)[0]}/{b}"
    return f"{a}/{b}"


def human_rate(bytes_per_second: float) -> str:
    return f"{human_bytes(bytes_per_second)}/s" if bytes_per_second > 0 else "—"


def clock_duration(seconds: float | None) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``; None -> ``—``."""
    if seconds is None or seconds < 0:
        return "—"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def time_left(expires_at: datetime | str | None, now: datetime) -> str:
    """``expires in 59 min`` / ``expires in 11 h 59 min`` / ``expired 3 min ago`` / ``""``."""
    if not expires_at:
        return ""
    if isinstance(expires_at, str):
        try:
            expires_at = datetime.fromisoformat(expires_at)
        except ValueError:
            return ""
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    delta = int((expires_at - now).total_seconds())
    span = _span(abs(delta))
    return f"expires in {span}" if delta >= 0 else f"expired {span} ago"


def _span(seconds: int) -> str:
    minutes = seconds // 60
    if minutes < 1:
        return "under a minute"
    h, m = divmod(minutes, 60)
    if not h:
        return f"{m} min"
    return f"{h} h {m} min" if m else f"{h} h"


def short_digest(digest: str, width: int = 19) -> str:
    """``sha256:0123456789abcdef…`` (algorithm + the first hex digits)."""
    if not digest:
        return "—"
    return digest if len(digest) <= width else digest[:width] + "…"
