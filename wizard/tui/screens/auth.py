"""Step 3 — authenticate: your identity, the assumed role and the registry token, with time left."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Label, Static

from wizard.tui.fmt import time_left
from wizard.tui.messages import WorkResult
from wizard.tui.screens.base import WizardScreen


class AuthScreen(WizardScreen):
    NAME = "auth"
    STEP = "auth"
    SCREEN_TITLE = "3 · Authenticate"
    RUN_LABEL = "Authenticate"
    ADVANCE_AFTER_RUN = False

    def compose_content(self) -> ComposeResult:
        yield Label("3 · Authenticate", classes="screen-title")
        yield Static(
            "The wizard assumes your role and gets a token for Currents' registry. Both stay in memory "
            "only; after a restart they are obtained again.",
            classes="lead",
        )
        with Grid(classes="facts", id="auth-facts"):
            yield Label("Your identity", classes="fact-key")
            yield Label(id="auth-identity")
            yield Label("Role", classes="fact-key")
            yield Label(id="auth-role")
            yield Label("Assumed role", classes="fact-key")
            yield Label(id="auth-assumed")
            yield Label("Registry token", classes="fact-key")
            yield Label(id="auth-token")
            yield Label("Access", classes="fact-key")
            yield Label(id="auth-access")
        yield Static(id="auth-result", classes="result")

    def on_mount(self) -> None:
        super().on_mount()
        if self.wapp.identity is None and not self.wapp.is_busy("identity"):
            self.wapp.start_work("identity", lambda cancel: self.wizard.backend.identity(), quiet=True)
        self.set_interval(15, lambda: self.update_view("clock"))

    def update_view(self, reason: str) -> None:
        wizard = self.wizard
        inputs = wizard.state.inputs
        now = self.wapp.now()
        ident = self.wapp.identity
        ident_label = self.query_one("#auth-identity", Label)
        id_result = self.wapp.results.get("identity")
        if ident is not None:
            ident_label.update(Content.from_markup("$arn\n[dim]account $a[/]", arn=ident.arn, a=ident.account))
        elif id_result is not None and id_result.error is not None:
            ident_label.update(
                Content.from_markup("[$text-error]$m[/]\n$h", m=id_result.error.message, h=id_result.error.hint)
            )
        else:
            ident_label.update(Content.from_markup("[dim]checking…[/]"))
        self.query_one("#auth-role", Label).update(inputs.get("role_arn", "—"))
        assumed = inputs.get("assumed_arn", "")
        sts_left = time_left(inputs.get("sts_expires_at"), now)
        self.query_one("#auth-assumed", Label).update(
            Content.from_markup("$a\n[dim]$t[/]", a=assumed, t=sts_left) if assumed else "not yet"
        )
        token_left = time_left(inputs.get("token_expires_at"), now)
        self.query_one("#auth-token", Label).update(
            Content.from_markup("$r\n[dim]$t[/]", r=wizard.settings.vendor_registry, t=token_left)
            if token_left
            else "not yet"
        )
        access = inputs.get("access", "")
        access_text = {
            "granted": "[$text-success]✔ granted[/] for tag $tag",
            "not_granted": "[$text-error]✖ not granted yet[/] — ask your Currents contact",
            "tag_missing": "[$text-warning]! tag $tag not found[/]",
            "network_error": "[$text-error]✖ registry unreachable[/]",
        }.get(access, "not checked yet")
        self.query_one("#auth-access", Label).update(Content.from_markup(access_text, tag=wizard.tag))
        rec = wizard.state.step("auth")
        if self.wapp.running.get("step") == "auth":
            self.set_result("#auth-result", "Assuming your role and checking access…")
        elif rec.status == "done":
            self.set_result("#auth-result", "✔ Signed in; Currents has granted access. Next: mirror the images.", "ok")
        elif rec.status == "failed":
            self.set_result("#auth-result", f"✖ {rec.error}", "bad")
        else:
            self.set_result("#auth-result", "Press Authenticate (Ctrl+N) to sign in.")

    def work_done(self, result: WorkResult) -> None:
        self.update_view("work")
