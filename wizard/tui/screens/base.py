"""The layout and behaviour every step screen shares: top bar, step list, content, Back/Next."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from wizard.core.steps import TITLES, Wizard
from wizard.tui.messages import WorkResult
from wizard.tui.widgets.nav_bar import NavBar
from wizard.tui.widgets.step_list import StepList
from wizard.tui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from wizard.tui.app import WizardApp

ORDER: tuple[str, ...] = ("welcome", "policy", "share", "auth", "mirror", "configure", "done")


def shorten(text: str, width: int) -> str:
    """Keep the end of long paths: ``…/deploy/currents``."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


class WizardScreen(Screen[None]):
    """Base of the step screens. Subclasses fill ``compose_content`` and the hooks below."""

    STEP: ClassVar[str | None] = None
    NAME: ClassVar[str] = ""
    SCREEN_TITLE: ClassVar[str] = ""
    #: Label of Next while this screen's step is not done yet (Next then runs the step).
    RUN_LABEL: ClassVar[str] = "Next →"
    #: Open the following screen by itself once the step run by Next succeeds.
    ADVANCE_AFTER_RUN: ClassVar[bool] = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next", priority=True),
    ]

    @property
    def wapp(self) -> WizardApp:
        return cast("WizardApp", self.app)

    @property
    def wizard(self) -> Wizard:
        return self.wapp.wizard

    # -- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield TopBar(self.SCREEN_TITLE, self.wapp.demo, id="top-bar")
        with Horizontal(id="body"):
            yield StepList(self.wizard.steps(), id="steps")
            with Vertical(id="main"):
                with VerticalScroll(id="content"):
                    yield from self.compose_content()
                yield NavBar(id="nav")
        yield Footer()

    def compose_content(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.refresh_view("mount")

    # -- refreshing -----------------------------------------------------------------------------
    def refresh_view(self, reason: str) -> None:
        """Called by the app after state, progress or busy changes."""
        if reason != "progress":
            self._refresh_chrome()
        self.update_view(reason)
        if reason != "progress":
            self.refresh_bindings()

    def _refresh_chrome(self) -> None:
        wizard = self.wizard
        reachable = {s.id for s in wizard.steps() if self.wapp.can_visit(s.id)}
        current = "verify" if self.NAME == "done" else self.STEP
        steps = self.query_one(StepList)
        steps.update_steps(wizard.steps(), current, reachable)
        inputs = wizard.state.inputs
        context = [("Folder", shorten(str(wizard.settings.dir), 21)), ("Tag", shorten(wizard.tag, 21))]
        if inputs.get("target"):
            context.append(("Target", shorten(inputs["target"], 21)))
        steps.set_context(context)
        self.query_one(NavBar).set_state(
            back=self.previous() is not None,
            next_=self.next_allowed(),
            next_label=self.next_label(),
            status=self.status_text(),
        )

    def set_result(self, selector: str, text: str | Content, kind: str = "") -> None:
        """Fill a ``.result`` line (``kind``: ok | bad | warn | ""); hidden while empty."""
        widget = self.query_one(selector, Static)
        widget.update(text)
        widget.set_classes(f"result -{kind}" if kind else "result")
        widget.display = bool(str(text))

    def show_field_error(self, selector: str, problem: str) -> None:
        """Show ``problem`` under a field (the line disappears when there is none)."""
        widget = self.query_one(selector, Static)
        widget.update(problem)
        widget.display = bool(problem)

    # -- hooks for subclasses --------------------------------------------------------------------
    def update_view(self, reason: str) -> None:
        """Re-render content from the wizard state / app progress."""

    def work_done(self, result: WorkResult) -> None:
        """Background work finished (any kind; check ``result.kind``/``result.step``)."""

    def step_done(self) -> bool:
        return self.STEP is not None and self.wizard.status(self.STEP) in ("done", "skipped")

    def next_allowed(self) -> bool:
        return not self.wapp.is_busy("step")

    def next_label(self) -> str:
        if self.STEP is not None and not self.step_done():
            return self.RUN_LABEL
        return "Next →"

    def prepare_run(self) -> bool:
        """Validate and store this screen's inputs before its step runs; False stops the run."""
        return True

    def run_own_step(self, advance: bool) -> None:
        if self.STEP is None or not self.prepare_run():
            return
        self._advance_after_run = advance
        self.wapp.start_step(self.STEP)

    def status_text(self) -> str:
        if self.wapp.is_busy("step"):
            step = self.wapp.running.get("step") or ""
            return f"Working: {TITLES.get(step, step)}…"
        return ""

    def previous(self) -> str | None:
        idx = ORDER.index(self.NAME)
        return ORDER[idx - 1] if idx > 0 else None

    def following(self) -> str | None:
        idx = ORDER.index(self.NAME)
        return ORDER[idx + 1] if idx + 1 < len(ORDER) else None

    def go_next(self) -> None:
        """What Next does: run this screen's step when it is not done, else open the next screen."""
        if self.STEP is not None and not self.step_done():
            self.run_own_step(self.ADVANCE_AFTER_RUN)
            return
        nxt = self.following()
        if nxt:
            self.wapp.goto(nxt)

    def on_work_done_base(self, result: WorkResult) -> None:
        advance = getattr(self, "_advance_after_run", False)
        if result.kind == "step" and result.step == self.STEP:
            self._advance_after_run = False
            if advance and result.ok and self.app.screen is self:
                nxt = self.following()
                if nxt:
                    self.wapp.goto(nxt)

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self.previous() is not None
        if action == "next":
            return True if self.next_allowed() else None
        return True

    def action_back(self) -> None:
        prev = self.previous()
        if prev:
            self.wapp.goto(prev)

    def action_next(self) -> None:
        if self.next_allowed():
            self.go_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            event.stop()
            self.action_back()
        elif event.button.id == "next":
            event.stop()
            self.action_next()

    def on_step_list_selected(self, message: StepList.Selected) -> None:
        target = "done" if message.step == "verify" else message.step
        if target == self.NAME:
            return
        if self.wapp.can_visit(message.step):
            self.wapp.goto(target)
        else:
            self.notify("Finish the steps before it first.", severity="warning")
