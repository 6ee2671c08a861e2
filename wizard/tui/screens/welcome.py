"""Welcome: detect the folder, read the state, and offer first run, resume, or upgrade."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Input, Label, Static

from wizard.core import envfile
from wizard.core.errors import WizardError
from wizard.core.settings import validate_tag
from wizard.core.steps import TITLES
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen

OUTLINE: dict[str, str] = {
    "policy": "the IAM policy for your pull role (or let the wizard create the role)",
    "share": "send the role ARN to Currents; check when access is granted",
    "auth": "assume the role and get a token for Currents' registry",
    "mirror": "copy the six images into your registry",
    "configure": "point DC_CURRENTS_IMAGE_* in your .env at the mirror",
    "verify": "read everything back and check it matches",
}


class WelcomeScreen(WizardScreen):
    NAME = "welcome"
    SCREEN_TITLE = "Welcome"
    STEP: ClassVar[str | None] = None

    def compose_content(self) -> ComposeResult:
        yield Label("Welcome", classes="screen-title")
        yield Static(
            "This wizard copies the six Currents on-prem images from Currents' registry into your own "
            "registry and points your .env at them.",
            classes="lead",
        )
        with Grid(classes="facts", id="folder-facts"):
            yield Label("Folder", classes="fact-key")
            yield Label(id="fact-folder")
            yield Label("Checkout", classes="fact-key")
            yield Label(id="fact-checkout")
            yield Label("Progress", classes="fact-key")
            yield Label(id="fact-state")
        yield Static(id="welcome-plan", classes="result")
        with Vertical(id="upgrade-form"):
            yield Label("Upgrade", classes="section")
            with Horizontal(classes="field-row"):
                yield Label("New image tag", classes="field-label")
                yield Input(id="upgrade-tag", compact=True, placeholder="e.g. 2026-02-10-001")
            yield Static(id="upgrade-tag-error", classes="field-error")
            yield Static(id="tag-hint", classes="muted")
        with Horizontal(classes="buttons"):
            yield Button("Show summary", id="summary", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        mode = self.wizard.mode()
        upgrade = self.query_one("#upgrade-tag", Input)
        upgrade.value = self.wizard.suggested_upgrade_tag() or self.wizard.tag
        if mode == "done":
            upgrade.focus()
            self._discover_tags()
        else:
            self.query_one("#next", Button).focus()

    # -- rendering -------------------------------------------------------------------------------
    def update_view(self, reason: str) -> None:
        wizard = self.wizard
        folder = wizard.settings.dir
        self.query_one("#fact-folder", Label).update(str(folder))
        version = envfile.read_version(folder)
        env = wizard.settings.env_path
        if envfile.is_onprem_checkout(folder):
            checkout = Content.from_markup(
                "[$text-success]✔[/] Currents on-prem checkout, VERSION $v, .env $e",
                v=version or "?",
                e="present" if env.exists() else "missing",
            )
        elif env.exists():
            checkout = Content.from_markup("[$text-warning]![/] a .env but no VERSION file here")
        else:
            checkout = Content.from_markup(
                "[$text-warning]![/] not a Currents on-prem folder (no .env / VERSION) — start the wizard in your "
                "checkout, or pass --dir"
            )
        self.query_one("#fact-checkout", Label).update(checkout)

        mode = wizard.mode()
        nxt = wizard.next_step()
        plan = self.query_one("#welcome-plan", Static)
        self.query_one("#upgrade-form").display = mode == "done"
        self.query_one("#summary", Button).display = mode == "done"
        if mode == "first-run":
            self.query_one("#fact-state", Label).update("first run — nothing done yet")
            lines = [
                Content.from_markup("  [b]$n  $t[/b] $d", n=str(i), t=f"{TITLES[sid]:<15}", d=OUTLINE[sid])
                for i, sid in enumerate(OUTLINE, 1)
            ]
            plan.update(Content("\n").join([Content("Six steps; the copy itself takes a few minutes:"), *lines]))
        elif mode == "resume":
            done = [TITLES[s.id] for s in wizard.steps() if s.status in ("done", "skipped")]
            rec = wizard.state.step(nxt or "")
            how = ""
            if rec.status == "failed":
                how = f" — it failed last time: {rec.error}"
            elif rec.summary.startswith("interrupted"):
                how = " — it was interrupted; finished work is kept"
            self.query_one("#fact-state", Label).update(f"{len(done)} of 6 steps done · tag {wizard.tag}")
            plan.update(
                Content.from_markup(
                    "Welcome back. Done: $done.\nNext: [b]$next[/b]$how",
                    done=", ".join(done) or "nothing yet",
                    next=TITLES.get(nxt or "", ""),
                    how=how,
                )
            )
        else:
            self.query_one("#fact-state", Label).update(f"all six steps done for tag {wizard.tag}")
            plan.update(
                f"Everything is set up for tag {wizard.tag}. To move to a new release, enter its tag: only "
                "mirror → configure → verify run again."
            )
        tags = self.wapp.discovered_tags
        hint = self.query_one("#tag-hint", Static)
        if tags:
            hint.update("Tags in Currents' registry: " + ", ".join(tags[-6:]))
        else:
            hint.update(f"Current tag: {wizard.tag}" + (f" · VERSION file: {version}" if version else ""))

    def next_label(self) -> str:
        mode = self.wizard.mode()
        if mode == "first-run":
            return "Start setup →"
        if mode == "resume":
            return f"Resume: {TITLES.get(self.wizard.next_step() or '', '')} →"
        return "Upgrade →"

    def previous(self) -> str | None:
        return None

    # -- actions ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#summary")
    def _summary(self, event: Button.Pressed) -> None:
        event.stop()
        self.wapp.goto("done")

    @on(Input.Submitted, "#upgrade-tag")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    @on(Input.Changed, "#upgrade-tag")
    def _tag_changed(self, event: Input.Changed) -> None:
        problem = ""
        try:
            validate_tag(event.value.strip())
        except WizardError as exc:
            problem = exc.message
        self.show_field_error("#upgrade-tag-error", problem)

    def go_next(self) -> None:
        wizard = self.wizard
        mode = wizard.mode()
        if mode == "first-run":
            self.wapp.goto("policy")
        elif mode == "resume":
            nxt = wizard.next_step() or "verify"
            self.wapp.goto("done" if nxt == "verify" else nxt)
        else:
            tag = self.query_one("#upgrade-tag", Input).value.strip()
            try:
                validate_tag(tag)
                if tag == wizard.tag:
                    self.notify(f"Tag {tag} is already mirrored and configured.", title="Nothing to upgrade")
                    self.wapp.goto("done")
                    return
                wizard.begin_upgrade(tag)
            except WizardError as exc:
                self.wapp.show_input_error(exc, "Cannot upgrade")
                return
            self.notify(f"Upgrading from {wizard.state.inputs.get('previous_tag', '?')} to {tag}", title="Upgrade")
            self.wapp.goto("mirror")

    # -- tag discovery ---------------------------------------------------------------------------
    def _discover_tags(self) -> None:
        wizard = self.wizard
        if wizard.state.inputs.get("from_archive") or self.wapp.discovered_tags:
            return

        def work(cancel: object) -> list[str]:
            source = wizard.backend.source(wizard.vendor_access())
            try:
                return sorted(source.list_tags(wizard.settings.source_repo(wizard.settings.services[0])))
            finally:
                source.close()

        self.wapp.start_work("tags", work, quiet=True)

    def work_done(self, result: WorkResult) -> None:
        if result.kind == "tags" and result.ok and isinstance(result.value, list):
            self.wapp.discovered_tags = [str(t) for t in result.value]
            self.update_view("tags")
