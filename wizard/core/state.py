"""The wizard's state file: what is done, with which inputs, and which digests were mirrored.

JSON, schema-versioned, written atomically (temp file + fsync + ``os.replace``), mode 0600 in a
0700 folder, guarded by an exclusive lock so a second concurrent run is refused.  It never holds
a secret: inputs are restricted to a fixed set of keys and every save is checked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wizard import __version__
from wizard.core.errors import LockedError, StateError
from wizard.core.fsutil import fsync_dir

SCHEMA_VERSION = 1
STEP_IDS: tuple[str, ...] = ("policy", "share", "auth", "mirror", "configure", "verify")
STATUSES = ("pending", "running", "done", "failed", "skipped")

#: The only inputs a state file may record. None of them is a secret.
INPUT_KEYS = frozenset(
    {
        "role_arn",
        "role_name",
        "role_created",
        "target",
        "tag",
        "previous_tag",
        "engine",
        "archive",
        "from_archive",
        "target_username",
        "env_file",
        "services",
        "source_registry",
        "source_prefix",
        "vendor_account",
        "region",
        "assumed_arn",
        "sts_expires_at",
        "token_expires_at",
        "env_backup",
        "access",
    }
)
_SECRETISH = re.compile(r"(password|secret|session_token|token$|credential)", re.I)


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class StepRecord:
    status: str = "pending"
    started_at: str = ""
    finished_at: str = ""
    summary: str = ""
    error: str = ""

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v or k == "status"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        rec = cls(**{k: str(data.get(k, "")) for k in ("status", "started_at", "finished_at", "summary", "error")})
        if rec.status not in STATUSES:
            raise ValueError(f"unknown step status {rec.status!r}")
        return rec


@dataclass
class ImageRecord:
    source_digest: str = ""
    target_digest: str = ""
    target_ref: str = ""
    engine: str = ""
    mirrored_at: str = ""
    verified_at: str = ""

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class State:
    schema_version: int = SCHEMA_VERSION
    created_at: str = field(default_factory=now_iso)
    updated_at: str = ""
    wizard_version: str = __version__
    inputs: dict[str, str] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=lambda: {s: StepRecord() for s in STEP_IDS})
    #: tag -> service -> record
    images: dict[str, dict[str, ImageRecord]] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)

    # -- helpers -------------------------------------------------------------------------
    def step(self, step_id: str) -> StepRecord:
        if step_id not in self.steps:
            self.steps[step_id] = StepRecord()
        return self.steps[step_id]

    def set_input(self, key: str, value: str) -> None:
        if key not in INPUT_KEYS:
            raise KeyError(f"state input {key!r} is not allowed")
        if value:
            self.inputs[key] = str(value)
        else:
            self.inputs.pop(key, None)

    def image(self, tag: str, service: str) -> ImageRecord:
        return self.images.setdefault(tag, {}).setdefault(service, ImageRecord())

    def add_history(self, event: str, **details: str) -> None:
        self.history.append({"at": now_iso(), "event": event, **details})
        del self.history[:-50]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "wizard_version": self.wizard_version,
            "inputs": dict(sorted(self.inputs.items())),
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "images": {t: {s: r.to_json() for s, r in imgs.items()} for t, imgs in self.images.items()},
            "history": self.history,
        }

    @classmethod
    def from_json(cls, data: Any) -> State:
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise ValueError("schema_version missing")
        if version > SCHEMA_VERSION:
            raise _FutureVersion(version)
        state = cls(
            schema_version=SCHEMA_VERSION,
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
            wizard_version=str(data.get("wizard_version", "")),
        )
        inputs = data.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ValueError("inputs is not an object")
        state.inputs = {str(k): str(v) for k, v in inputs.items() if k in INPUT_KEYS}
        for sid, rec in (data.get("steps") or {}).items():
            state.steps[str(sid)] = StepRecord.from_json(rec)
        for tag, imgs in (data.get("images") or {}).items():
            state.images[str(tag)] = {str(s): ImageRecord.from_json(r) for s, r in imgs.items()}
        hist = data.get("history") or []
        state.history = [dict(h) for h in hist if isinstance(h, dict)]
        return state


class _FutureVersion(ValueError):
    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def assert_no_secrets(data: Any, path: str = "") -> None:
    """Refuse to persist anything whose key looks like a secret."""
    if isinstance(data, dict):
        for k, v in data.items():
            if _SECRETISH.search(str(k)) and k not in ("token_expires_at",):
                raise StateError(f"refusing to write secret-looking key {path}{k} to the state file")
            assert_no_secrets(v, f"{path}{k}.")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            assert_no_secrets(v, f"{path}{i}.")


class StateStore:
    """Loads and saves :class:`State` at ``path``; ``lock()`` guards against a concurrent run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None

    # -- locking -------------------------------------------------------------------------
    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state folder {self.path.parent}: {exc.strerror}",
                "check permissions or pass --state PATH",
            ) from exc

    def acquire(self) -> None:
        """Take the exclusive lock or raise :class:`LockedError` naming the holder."""
        if self._lock_fd is not None:
            return
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the lock file {self.lock_path}: {exc.strerror}", "check permissions or pass --state"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise LockedError(
                    f"another currents-wizard run is using {self.path.parent}{who}",
                    "wait for it to finish, or stop it; then run again",
                ) from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock_fd, 0)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    @contextlib.contextmanager
    def locked(self):  # type: ignore[no-untyped-def]
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    # -- load / save ---------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> State:
        """The saved state, or a fresh one when there is no file. Never overwrites a bad file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise StateError(
                f"cannot read the state file {self.path}: {exc.strerror}", "check its permissions"
            ) from exc
        try:
            return State.from_json(json.loads(text))
        except _FutureVersion as exc:
            raise StateError(
                f"the state file {self.path} was written by a newer currents-wizard (schema {exc.version})",
                "upgrade currents-wizard, or pass --state to use another file",
            ) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(
                f"the state file {self.path} is corrupt ({exc})",
                "move it aside (or run `currents-wizard reset`) and run again; your .env is untouched",
            ) from exc

    def save(self, state: State) -> None:
        """Atomically replace the state file (temp + fsync + os.replace), mode 0600."""
        state.updated_at = now_iso()
        data = state.to_json()
        assert_no_secrets(data)
        payload = (json.dumps(data, indent=2) + "\n").encode()
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(
                f"cannot write the state file {self.path}: {exc.strerror}", "free disk space or check permissions"
            ) from exc
        fsync_dir(self.path.parent)

    def reset(self) -> Path | None:
        """Move the state file aside (kept as ``state.json.reset-<time>``); returns where it went."""
        if not self.path.exists():
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        dest = self.path.with_name(f"{self.path.name}.reset-{stamp}")
        os.replace(self.path, dest)
        return dest
