"""The step model end to end with the offline demo backend: real state store, .env writer and
copy engine over OCI layouts (no network, no AWS)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from wizard.core import demo
from wizard.core.errors import Cancelled, InputError, LockedError
from wizard.core.events import BlobProgress, Event, PlanReady, StepStarted
from wizard.core.settings import Settings
from wizard.core.steps import Wizard

ROLE = "arn:aws:iam::111122223333:role/CurrentsEcrPull"
TARGET = "registry.example.com/currents"
OLD, NEW = demo.DEMO_TAGS


def make(folder: Path, **kw: object) -> Wizard:
    settings, backend = demo.prepare(folder, Settings(**kw), pace=0)  # type: ignore[arg-type]
    backend.size_mb = 4
    return Wizard(settings, backend)


def test_first_run_to_done(tmp_path: Path) -> None:
    events: list[Event] = []
    with make(tmp_path) as wiz:
        assert wiz.mode() == "first-run" and wiz.next_step() == "policy"
        assert wiz.tag == OLD  # from the checkout's VERSION
        wiz.set_input("role_arn", ROLE)
        wiz.set_input("target", TARGET)
        ran = wiz.run_pending(events.append)
        assert ran == ["policy", "share", "auth", "mirror", "configure", "verify"]
        assert wiz.mode() == "done" and wiz.next_step() is None
    env = (tmp_path / ".env").read_text()
    assert f"DC_CURRENTS_IMAGE_REPOSITORY={TARGET}/\n" in env
    assert f"DC_CURRENTS_IMAGE_TAG={OLD}\n" in env
    state = json.loads((tmp_path / ".currents-wizard" / "state.json").read_text())
    images = state["images"][OLD]
    assert sorted(images) == sorted(Settings().services)
    for rec in images.values():
        assert rec["source_digest"] == rec["target_digest"] and rec["verified_at"]
    assert "demo-token" not in (tmp_path / ".currents-wizard" / "state.json").read_text()
    assert any(isinstance(e, PlanReady) and e.bytes_to_copy > 0 for e in events)


def test_resume_after_interrupted_mirror(tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_on_first_blob(event: Event) -> None:
        if isinstance(event, BlobProgress):
            cancel.set()

    with make(tmp_path) as wiz:
        wiz.set_input("role_arn", ROLE)
        wiz.set_input("target", TARGET)
        wiz.run_pending(only=["policy", "share", "auth"])
        with pytest.raises(Cancelled):
            wiz.run_step("mirror", stop_on_first_blob, cancel)
        assert wiz.status("mirror") == "pending"
    # a new process: inputs remembered, lands on mirror
    with make(tmp_path) as wiz:
        assert wiz.mode() == "resume" and wiz.next_step() == "mirror"
        assert wiz.state.inputs["target"] == TARGET and wiz.state.inputs["role_arn"] == ROLE
        started: list[str] = []
        wiz.run_pending(lambda e: started.append(e.step) if isinstance(e, StepStarted) else None)
        assert started == ["mirror", "configure", "verify"]
        assert wiz.mode() == "done"


def test_upgrade_runs_only_mirror_configure_verify_and_moves_less(tmp_path: Path) -> None:
    plans: list[PlanReady] = []
    with make(tmp_path) as wiz:
        wiz.set_input("role_arn", ROLE)
        wiz.set_input("target", TARGET)
        wiz.run_pending(lambda e: plans.append(e) if isinstance(e, PlanReady) else None)
        cold = plans[-1].bytes_to_copy
        wiz.set_input("tag", NEW)  # everything done + a new tag = upgrade
        assert [s.id for s in wiz.steps() if s.status == "pending"] == ["mirror", "configure", "verify"]
        started: list[str] = []

        def record(e: Event) -> None:
            if isinstance(e, StepStarted):
                started.append(e.step)
            if isinstance(e, PlanReady):
                plans.append(e)

        wiz.run_pending(record)
        assert started == ["mirror", "configure", "verify"]
        assert 0 < plans[-1].bytes_to_copy < cold / 3
        assert wiz.state.inputs["previous_tag"] == OLD
    assert f"DC_CURRENTS_IMAGE_TAG={NEW}\n" in (tmp_path / ".env").read_text()


def test_rerun_when_done_moves_nothing(tmp_path: Path) -> None:
    with make(tmp_path) as wiz:
        wiz.set_input("role_arn", ROLE)
        wiz.set_input("target", TARGET)
        wiz.run_pending()
        assert wiz.run_pending() == []
        plan = wiz.mirror_plan()
        assert plan.to_dict()["bytes_to_copy"] == 0


def test_inputs_are_validated(tmp_path: Path) -> None:
    with make(tmp_path) as wiz:
        with pytest.raises(InputError):
            wiz.set_input("role_arn", "arn:aws:iam::123:role/x")
        with pytest.raises(InputError):
            wiz.set_input("target", "Not A Registry")
        with pytest.raises(InputError):
            wiz.set_input("tag", "-x")
        wiz.state.inputs.pop("target")  # the demo pre-fills one
        with pytest.raises(InputError, match="--target"):
            wiz.target()
    assert not (tmp_path / ".currents-wizard" / "state.json").exists()


def test_second_wizard_on_same_folder_is_locked(tmp_path: Path) -> None:
    with make(tmp_path), pytest.raises(LockedError):
        make(tmp_path).open()


def test_engine_flag_overrides_the_remembered_one_even_when_it_is_the_default(tmp_path: Path) -> None:
    with make(tmp_path) as wiz:
        assert wiz.engine == "registry"
        wiz.set_input("engine", "docker")
    with make(tmp_path) as wiz:
        assert wiz.engine == "docker"  # remembered when no flag is given
    with make(tmp_path, engine="registry") as wiz:
        assert wiz.engine == "registry"  # an explicit --engine registry wins
