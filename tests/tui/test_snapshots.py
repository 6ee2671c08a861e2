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


FITS = [s for s in SCENES if s.name != "error"]  # a 3-line field error may push the page into scrolling


@pytest.mark.parametrize("scene", FITS, ids=[s.name for s in FITS])
async def test_screen_fits_100x32_without_scrolling(scene: Scene) -> None:
    """Design check: at the documented size nothing on a step screen is hidden below the fold."""
    from wizard.tui.screens.base import WizardScreen

    wizard, app = build(scene, size_mb=3)
    try:
        async with app.run_test(size=SIZE) as pilot:
            if scene.act is not None:
                await scene.act(pilot)
            await pilot.pause()
            base = [s for s in app.screen_stack if isinstance(s, WizardScreen)][-1]
            content = base.query_one("#content")
            rows = f"{content.virtual_size.height} rows > {content.size.height}"
            assert content.max_scroll_y == 0, f"{scene.name}: {rows}"
            assert content.max_scroll_x == 0
    finally:
        wizard.close()
