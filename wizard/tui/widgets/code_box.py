"""A bordered, scrollable box of syntax-highlighted text (JSON, diffs, messages, shell)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static


class CodeBox(ScrollableContainer, can_focus=True):
    """Scrolls both ways; long lines are not wrapped so JSON and commands stay copyable."""

    def __init__(
        self, text: str = "", lexer: str = "text", *, id: str | None = None, title: str = "", wrap: bool = False
    ) -> None:
        super().__init__(id=id, classes="codebox -wrap" if wrap else "codebox")
        self.text = text
        self.lexer = lexer
        self.wrap = wrap
        if title:
            self.border_title = title

    def compose(self) -> ComposeResult:
        yield Static(self._render_text(), classes="code")

    def _render_text(self) -> Content:
        if self.lexer == "text":
            return Content(self.text)
        return highlight(self.text, language=self.lexer)

    def set_text(self, text: str, lexer: str | None = None) -> None:
        self.text = text
        if lexer is not None:
            self.lexer = lexer
        if self.is_mounted:
            self.query_one(Static).update(self._render_text())
