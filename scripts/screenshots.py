#!/usr/bin/env python3
"""Regenerate screenshots/<nn>-<scene>.svg (and .png) from the real app, offline.

Every screen is rendered by the real WizardApp over the demo backend (see
``wizard/tui/showcase.py``) at 100x32.  PNGs are converted with ``rsvg-convert`` (Debian/Ubuntu
package ``librsvg2-bin``); pass ``--svg-only`` where it is not installed.

    python scripts/screenshots.py [--out screenshots] [--only welcome,mirror-live] [--svg-only]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wizard.tui.showcase import SCENES, SIZE, Scene, build  # noqa: E402


async def render(scene: Scene) -> str:
    wizard, app = build(scene)
    try:
        async with app.run_test(size=SIZE) as pilot:
            if scene.act is not None:
                await scene.act(pilot)
            await pilot.pause()
            return app.export_screenshot(title="currents-wizard --demo")
    finally:
        wizard.close()


def to_png(svg: Path, png: Path) -> None:
    """rsvg-convert drops a leading non-breaking space of a <text> unless whitespace is preserved."""
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    try:
        subprocess.run(["rsvg-convert", "--format", "png", "--output", str(png), tmp.name], check=True)
    finally:
        Path(tmp.name).unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--only", default="", help="comma-separated scene names")
    parser.add_argument("--svg-only", action="store_true", help="skip the PNG conversion")
    args = parser.parse_args(argv)
    wanted = {s for s in args.only.split(",") if s}
    if not args.svg_only and shutil.which("rsvg-convert") is None:
        print("rsvg-convert not found: apt-get install librsvg2-bin, or pass --svg-only", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for number, scene in enumerate(SCENES, 1):
        if wanted and scene.name not in wanted:
            continue
        svg_path = args.out / f"{number:02d}-{scene.name}.svg"
        svg_path.write_text(asyncio.run(render(scene)), encoding="utf-8")
        if not args.svg_only:
            to_png(svg_path, svg_path.with_suffix(".png"))
        print(svg_path.relative_to(ROOT) if svg_path.is_relative_to(ROOT) else svg_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
