"""The always-visible list of the six steps with each one's status; click a step to open it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.events import Click
from textual.message import Message
from textual.widgets import Label, Static

from wizard.core.steps import StepInfo

ICONS: dict[str, tuple[str, str]] = {
    "done": ("✔", "$text-success"),
    "skipped": ("↷", "dim"),
    "running": ("◐", "$text-warning"),
    "failed": ("✖", "$text-error"),
    "pending": ("○", "dim"),
}
SHORT_TITLES: dict[str, str] = {
    "policy": "IAM policy",
    "share": "Share role ARN",
    "auth": "Authenticate",
    "mirror": "Mirror images",
    "configure": "Configure .env",
    "verify": "Verify",
}


def status_word(info: StepInfo) -> str:
    if info.status == "pending":
        return "interrupted" if info.summary.startswith("interrupted") else "to do"
    if info.status == "running":
        return "running…"
    return info.status


class StepItem(Static):
    """One step: icon, number, title; a dim status line under it."""

    def __init__(self, index: int, info: StepInfo) -> None:
        super().__init__(id=f"step-{info.id}", classes="step-item")
        self.index = index
        self.info = info

    def set_info(self, info: StepInfo, current: bool, reachable: bool) -> None:
        self.info = info
        self.set_class(current, "-current")
        self.set_class(not reachable, "-unreachable")
        self.set_class(info.status == "failed", "-failed")
        self.update(self._content(current))

    def _content(self, current: bool) -> Content:
        icon, style = ICONS.get(self.info.status, ICONS["pending"])
        marker = "▸" if current else " "
        title = SHORT_TITLES.get(self.info.id, self.info.title)
        return Content.from_markup(
            f"{marker}[{style}]{icon}[/] {self.index}  [b]$title[/b]\n      [dim]$status[/]",
            title=title,
            status=status_word(self.info),
        )

    def on_click(self, event: Click) -> None:
        self.post_message(StepList.Selected(self.info.id))


class StepList(Vertical):
    """Rendered from ``Wizard.steps()``; call :meth:`update_steps` after any change."""

    class Selected(Message):
        def __init__(self, step: str) -> None:
            super().__init__()
            self.step = step

    def __init__(self, steps: list[StepInfo], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._steps = steps

    def compose(self) -> ComposeResult:
        yield Label("STEPS", classes="sidebar-heading")
        for i, info in enumerate(self._steps, 1):
            yield StepItem(i, info)
        yield Static(id="context", classes="sidebar-context")

    def update_steps(self, steps: list[StepInfo], current: str | None, reachable: set[str]) -> None:
        for info in steps:
            item = self.query_one(f"#step-{info.id}", StepItem)
            item.set_info(info, current == info.id, info.id in reachable)

    def set_context(self, lines: list[tuple[str, str]]) -> None:
        """Small facts under the steps, e.g. ``[("Tag", "2026-01-26-001")]``."""
        parts = [Content.from_markup("[dim]$k[/]\n$v", k=k, v=v) for k, v in lines]
        self.query_one("#context", Static).update(Content("\n").join(parts))
