"""Step 4 — mirror: target + engine, a plan summary, then a live table of the six images."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, RadioButton, RadioSet, Static

from wizard.core.errors import WizardError
from wizard.core.settings import parse_target
from wizard.tui.fmt import bytes_of, clock_duration, human_bytes, human_rate, short_digest
from wizard.tui.messages import WorkResult
from wizard.tui.progress import ImageRow
from wizard.tui.screens.base import WizardScreen

ENGINES: dict[str, str] = {
    "registry": "Registry API",
    "docker": "Docker",
    "archive": "OCI archive",
}
ENGINE_HINTS: dict[str, str] = {
    "registry": "Registry to registry: fastest; a re-run resumes.",
    "docker": "docker pull / tag / push via your Docker engine.",
    "archive": "A folder or .tar to carry into an air gap.",
}
STATE_LABELS: dict[str, str] = {
    "waiting": "[dim]· waiting[/]",
    "planned": "[dim]· queued[/]",
    "pending": "[dim]· queued[/]",
    "copying": "[$text-warning]⇣ copying[/]",
    "verifying": "[$text-warning]… verifying[/]",
    "done": "[$text-success]✔ done[/]",
    "skipped": "[$text-success]✔ up to date[/]",
    "exists": "[$text-success]✔ already there[/]",
    "mounted": "[$text-success]✔ mounted[/]",
    "failed": "[$text-error]✖ failed[/]",
    "cancelled": "[dim]■ stopped[/]",
}


def state_label(state: str) -> Content:
    return Content.from_markup(STATE_LABELS.get(state, "$s"), s=state)


class MirrorScreen(WizardScreen):
    NAME = "mirror"
    STEP = "mirror"
    SCREEN_TITLE = "4 · Mirror images"
    RUN_LABEL = "Start mirror"
    ADVANCE_AFTER_RUN = False

    def compose_content(self) -> ComposeResult:
        inputs = self.wizard.state.inputs
        yield Label("4 · Mirror the images into your registry", classes="screen-title")
        with Vertical(id="mirror-form"):
            with Horizontal(classes="field-row"):
                yield Label("Target registry", classes="field-label")
                yield Input(
                    inputs.get("target", ""),
                    id="target",
                    placeholder="registry.example.com/currents  (HOST[:PORT]/PATH)",
                    compact=True,
                )
            yield Static(id="target-error", classes="field-error")
            with Horizontal(classes="field-row"):
                yield Label("Copy with", classes="field-label")
                with RadioSet(id="engine"):
                    for key, label in ENGINES.items():
                        yield RadioButton(
                            label,
                            value=self.wizard.engine == key,
                            id=f"engine-{key}",
                            disabled=key == "docker" and self.wapp.demo,
                        )
            yield Static(id="engine-hint", classes="field-hint")
            with Horizontal(classes="field-row", id="archive-row"):
                yield Label("Archive path", classes="field-label")
                yield Input(
                    inputs.get("archive", ""), id="archive", placeholder="/path/currents-images.tar", compact=True
                )
            with Horizontal(classes="field-row", id="login-row"):
                yield Label("Registry login", classes="field-label")
                yield Input(
                    inputs.get("target_username", ""), id="username", placeholder="user (optional)", compact=True
                )
                yield Input(id="password", placeholder="password — memory only", password=True, compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Show plan", id="plan", compact=True)
                yield Button("Start mirror", id="start", variant="primary", compact=True)
        yield Static(id="plan-summary")
        table: DataTable[Content | str] = DataTable(id="images", cursor_type="row", zebra_stripes=True)
        yield table
        yield Label("", id="layers-title")
        layers: DataTable[Content | str] = DataTable(id="layers", cursor_type="none", show_cursor=False)
        yield layers
        with Horizontal(id="overall"):
            yield ProgressBar(total=100, show_eta=False, id="overall-bar")
            yield Label("", id="overall-text")
        with Horizontal(classes="buttons", id="run-buttons"):
            yield Button("Cancel", id="cancel", variant="error", compact=True)
            yield Button("Retry failed", id="retry", variant="warning", compact=True)
            yield Button("Edit target", id="edit", compact=True)
            yield Label("", id="mirror-info")

    def on_mount(self) -> None:
        table = self.query_one("#images", DataTable)
        table.add_column("Image", key="image", width=14)
        table.add_column("State", key="state", width=12)
        table.add_column("Progress", key="bytes", width=15)
        table.add_column("Layers", key="layers", width=6)
        table.add_column("Speed", key="speed", width=12)
        for service in self.wizard.settings.services:
            table.add_row(service, "", "", "", "", key=service)
        layers = self.query_one("#layers", DataTable)
        layers.add_column("Layer", key="digest", width=22)
        layers.add_column("State", key="state", width=15)
        layers.add_column("Bytes", key="bytes", width=18)
        self._selected = self.wizard.settings.services[0]
        self._editing = False
        self._sync_archive_row()
        super().on_mount()
        if self._form_visible():
            self.query_one("#target", Input).focus()
        else:
            table.focus()

    # -- form ------------------------------------------------------------------------------------
    def _engine(self) -> str:
        pressed = self.query_one("#engine", RadioSet).pressed_button
        return (pressed.id or "engine-registry").removeprefix("engine-") if pressed else "registry"

    def _sync_archive_row(self) -> None:
        engine = self._engine()
        archive = engine == "archive"
        self.query_one("#archive-row").display = archive
        self.query_one("#login-row").display = not archive
        self.query_one("#engine-hint", Static).update(ENGINE_HINTS[engine])

    @on(RadioSet.Changed, "#engine")
    def _engine_changed(self, event: RadioSet.Changed) -> None:
        self._sync_archive_row()

    @on(Input.Changed, "#target")
    def _target_changed(self, event: Input.Changed) -> None:
        value = event.value.strip()
        problem = ""
        if value:
            try:
                parse_target(value)
            except WizardError as exc:
                problem = f"{exc.message} — {exc.hint}"
        self.show_field_error("#target-error", problem)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.step_done():
            self.run_own_step(advance=False)

    def prepare_run(self) -> bool:
        """Store target, engine, archive and the in-memory login; False (with a message) if invalid."""
        engine = self._engine()
        try:
            if engine == "archive":
                archive = self.query_one("#archive", Input).value.strip()
                if not archive:
                    raise WizardError("no archive path given", "enter a folder or a .tar file to write the images to")
                self.wizard.set_input("archive", str(Path(archive).expanduser()))
            else:
                target = self.query_one("#target", Input).value.strip()
                if not target:
                    raise WizardError(
                        "no target registry given", "enter HOST[:PORT]/PATH, e.g. registry.example.com/currents"
                    )
                self.wizard.set_input("target", target)
                username = self.query_one("#username", Input).value.strip()
                password = self.query_one("#password", Input).value
                if username or password:
                    self.wizard.set_target_credential(username, password)
            self.wizard.set_input("engine", engine)
        except WizardError as exc:
            self.wapp.show_input_error(exc, "Cannot start the mirror")
            return False
        self._editing = False
        return True

    def run_own_step(self, advance: bool) -> None:
        super().run_own_step(advance)
        self.update_view("state")

    # -- buttons ---------------------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def _start(self, event: Button.Pressed) -> None:
        event.stop()
        self.run_own_step(advance=False)

    @on(Button.Pressed, "#retry")
    def _retry(self, event: Button.Pressed) -> None:
        event.stop()
        self.run_own_step(advance=False)

    @on(Button.Pressed, "#plan")
    def _plan(self, event: Button.Pressed) -> None:
        event.stop()
        if not self.prepare_run():
            return
        self.wapp.progress.reset(self.wizard.settings.services)
        self.wapp.start_work("plan", lambda cancel: self.wizard.mirror_plan(self.wapp.emit))
        self.query_one("#plan-summary", Static).update("Planning: reading manifests and checking the target…")

    @on(Button.Pressed, "#cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.wapp.cancel("step")
        self.notify("Stopping after the blobs in flight. Finished layers are kept.", title="Cancelling")

    @on(Button.Pressed, "#edit")
    def _edit(self, event: Button.Pressed) -> None:
        event.stop()
        self._editing = True
        self.update_view("state")
        self.query_one("#target", Input).focus()

    @on(DataTable.RowHighlighted, "#images")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self._selected = str(event.row_key.value)
            self._render_layers()

    # -- rendering -------------------------------------------------------------------------------
    def _mirror_running(self) -> bool:
        return self.wapp.running.get("step") == "mirror"

    def _form_visible(self) -> bool:
        if self._mirror_running():
            return False
        if getattr(self, "_editing", False):
            return True
        return not (self.step_done() or self.wapp.progress.started)

    def next_allowed(self) -> bool:
        return not self.wapp.is_busy("step")

    def update_view(self, reason: str) -> None:
        if not hasattr(self, "_selected"):
            return
        progress = self.wapp.progress
        running = self._mirror_running()
        if reason != "progress":
            self.query_one("#mirror-form").display = self._form_visible()
            self.query_one("#start", Button).disabled = running or self.wapp.is_busy("step")
            self.query_one("#plan", Button).disabled = self.wapp.is_busy("plan") or running
            self.query_one("#cancel", Button).display = running
            rec = self.wizard.state.step("mirror")
            failed = rec.status == "failed" or (rec.status != "done" and bool(progress.failed()))
            interrupted = rec.status == "pending" and rec.summary.startswith("interrupted")
            retry = self.query_one("#retry", Button)
            retry.display = not running and (failed or interrupted)
            retry.label = "Retry failed" if failed else "Resume"
            self.query_one("#edit", Button).display = not running and not self._form_visible()
        self._render_summary()
        self._render_table()
        self._render_layers()
        self._render_overall()
        infos = [i for i in self.wapp.infos if i.step in ("mirror", "")]
        self.query_one("#mirror-info", Label).update(infos[-1].message if infos else "")

    def _render_summary(self) -> None:
        progress = self.wapp.progress
        wizard = self.wizard
        engine = wizard.engine
        where = wizard.state.inputs.get("archive", "") if engine == "archive" else wizard.state.inputs.get("target", "")
        head = Content.from_markup(
            "[b]$n images[/b] · [b]$tag[/b] → [b]$where[/b]",
            n=str(len(wizard.settings.services)),
            tag=wizard.tag,
            where=where or "?",
        )
        how = ENGINES.get(engine, engine)
        plan = progress.plan
        line = ""
        if plan is not None:
            skip = sum(1 for i in plan.images if i.get("action") == "skip")
            mounts = sum(int(i.get("blobs_to_mount", 0) or 0) for i in plan.images)
            line = f"{how} · plan: {plan.blobs_to_copy} blobs to copy ({human_bytes(plan.bytes_to_copy)})"
            if mounts:
                line += f", {mounts} shared mounted"
            if skip:
                line += f", {skip} image(s) up to date"
        elif not progress.started:
            rec = wizard.state.step("mirror")
            if rec.status == "done":
                line = f"{how} · ✔ {rec.summary}"
            elif rec.summary.startswith("interrupted"):
                line = f"{how} · interrupted last time: Start mirror resumes, copied layers are kept"
            else:
                line = f"{how} · Show plan tells what will move"
        if line:
            head = head + Content("\n") + Content(line)
        self.query_one("#plan-summary", Static).update(head)

    def _row_cells(self, row: ImageRow) -> tuple[Content, str, str, str]:
        wizard = self.wizard
        state = row.state
        if state == "waiting":
            rec = wizard.state.images.get(wizard.tag, {}).get(row.service)
            if rec is not None and rec.target_digest:
                state = "done"
        if row.total and state not in ("skipped",):
            done = row.total if state == "done" else row.done
            size = bytes_of(done, row.total)
        elif state == "skipped":
            size = "nothing to copy"
        else:
            size = "—" if state != "done" else "earlier run"
        layers = f"{row.blobs_done}/{row.blobs_total}" if row.blobs_total else "—"
        speed = human_rate(row.speed) if state == "copying" else ""
        return state_label(state), size, layers, speed

    def _render_table(self) -> None:
        table = self.query_one("#images", DataTable)
        for service, row in self.wapp.progress.images.items():
            if service not in table.rows:
                table.add_row(service, "", "", "", "", key=service)
            state, size, layers, speed = self._row_cells(row)
            table.update_cell(service, "state", state)
            table.update_cell(service, "bytes", size)
            table.update_cell(service, "layers", layers)
            table.update_cell(service, "speed", speed)

    def _render_layers(self) -> None:
        layers = self.query_one("#layers", DataTable)
        row = self.wapp.progress.images.get(self._selected)
        title = self.query_one("#layers-title", Label)
        if row is None or not row.layers:
            title.update(
                Content.from_markup(
                    "Layers of [b]$s[/b]: $m",
                    s=self._selected,
                    m=row.message if row is not None and row.message else "shown while copying",
                )
            )
            layers.display = False
            return
        title.update(
            Content.from_markup(
                "Layers of [b]$s[/b] [dim](shared layers are listed under the first image)[/]",
                s=self._selected,
            )
        )
        layers.display = True
        wanted = sorted(row.layers)  # stable order (events arrive in any order)
        if list(layers.rows) != wanted:
            layers.clear()
            for digest in wanted:
                layers.add_row(short_digest(digest, 23), "", "", key=digest)
        for digest, layer in row.layers.items():
            layers.update_cell(digest, "state", state_label(layer.state))
            size = bytes_of(layer.done, layer.total) if layer.total else "—"
            layers.update_cell(digest, "bytes", size)

    def _render_overall(self) -> None:
        progress = self.wapp.progress
        bar = self.query_one("#overall-bar", ProgressBar)
        text = self.query_one("#overall-text", Label)
        show = progress.started or progress.plan is not None
        self.query_one("#overall").display = show
        if not show:
            return
        bar.update(progress=round(progress.fraction * 100, 1))
        finished = progress.count("done", "skipped")
        parts = [bytes_of(progress.done_bytes, progress.total_bytes)]
        if self._mirror_running():
            parts.append(human_rate(progress.speed))
            parts.append(f"ETA {clock_duration(progress.eta)}")
        else:
            parts.append(f"{finished}/{len(progress.images)} images")
            if progress.failed():
                parts.append(f"{len(progress.failed())} failed")
        text.update(" · ".join(parts))

    def work_done(self, result: WorkResult) -> None:
        if result.kind == "step" and result.step == "mirror":
            if result.cancelled:
                self.notify("Mirror stopped. Start mirror resumes; copied layers are kept.", title="Stopped")
            elif result.ok:
                self.notify(self.wizard.state.step("mirror").summary, title="Mirror done")
        self.update_view("work")
