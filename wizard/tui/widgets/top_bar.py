"""The one-line bar at the top of every screen: app name, current screen, and the DEMO badge."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

DEMO_TEXT = " DEMO · offline, simulated AWS "


class TopBar(Horizontal):
    """``◆ Currents on-prem wizard › <title>`` on the left, the DEMO badge on the right."""

    def __init__(self, title: str, demo: bool, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self._demo = demo

    def compose(self) -> ComposeResult:
        yield Label(f"◆ Currents on-prem wizard  ›  {self._title}", id="top-title")
        if self._demo:
            yield Label(DEMO_TEXT, id="demo-badge")

    def set_title(self, title: str) -> None:
        self._title = title
        self.query_one("#top-title", Label).update(f"◆ Currents on-prem wizard  ›  {title}")
