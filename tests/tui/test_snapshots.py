"""Snapshot tests: every screen at 100x32, rendered by the real app over the demo backend.

The scenes (``wizard/tui/showcase.py``) freeze everything time-dependent: the clock, token
lifetimes, backup names, and live mirror progress (synthetic events with a fake clock).  Update
after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at
the report / the SVGs in ``tests/tui/__snapshots__``.
"""

from __future__ import annotations

import pytest

from wizard.tui.showcase import SCENES, SIZE, Scene, build


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_screen(scene: Scene, snap_compare: object) -> None:
    wizard, app = build(scene, size_mb=3)
    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=scene.act)  # type: ignore[operator]
    finally:
        wizard.close()
