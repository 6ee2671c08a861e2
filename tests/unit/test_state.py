from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from wizard.core.errors import LockedError, StateError
from wizard.core.state import SCHEMA_VERSION, State, StateStore, assert_no_secrets


def test_fresh_state_when_missing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s" / "state.json")
    st = store.load()
    assert st.schema_version == SCHEMA_VERSION
    assert all(r.status == "pending" for r in st.steps.values())
    assert not store.path.exists()


def test_roundtrip_and_modes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s" / "state.json")
    st = State()
    st.set_input("tag", "2026-01-26-001")
    st.step("mirror").status = "done"
    st.image("2026-01-26-001", "api").target_digest = "sha256:" + "a" * 64
    store.save(st)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    again = store.load()
    assert again.inputs["tag"] == "2026-01-26-001"
    assert again.step("mirror").status == "done"
    assert again.images["2026-01-26-001"]["api"].target_digest.endswith("a" * 64)
    # no temp files left behind
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json"]


def test_corrupt_file_is_reported_and_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.path.write_text('{"schema_version": 1, "steps": ')
    with pytest.raises(StateError, match="corrupt"):
        store.load()
    assert store.path.read_text() == '{"schema_version": 1, "steps": '


def test_future_version_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StateError, match="newer currents-wizard"):
        store.load()


def test_unknown_inputs_are_dropped_and_secrets_refused(tmp_path: Path) -> None:
    st = State()
    with pytest.raises(KeyError):
        st.set_input("target_password", "hunter2")
    with pytest.raises(StateError):
        assert_no_secrets({"inputs": {"SessionToken": "x"}})
    assert_no_secrets({"inputs": {"token_expires_at": "2026-01-01T00:00:00"}})
    data = State().to_json()
    data["inputs"]["password"] = "nope"
    assert "password" not in State.from_json(data).inputs


def _hold_lock(path: str, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event) -> None:
    store = StateStore(Path(path))
    store.acquire()
    ready.set()
    done.wait(10)
    store.release()


def test_second_run_is_refused_while_locked(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(path), ready, done))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockedError, match=f"pid {proc.pid}"):
            StateStore(path).acquire()
    finally:
        done.set()
        proc.join(10)
    store = StateStore(path)
    store.acquire()  # free again once the holder is gone
    store.release()


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(path), ready, done))
    proc.start()
    assert ready.wait(10)
    os.kill(proc.pid, 9)
    proc.join(10)
    store = StateStore(path)
    store.acquire()
    store.release()


def test_reset_moves_file_aside(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save(State())
    moved = store.reset()
    assert moved is not None and moved.exists() and not store.path.exists()
