"""The step model: one object every front end drives.

Six steps — policy, share, auth, mirror, configure, verify — each with a status kept in the
state file.  A front end collects inputs (``set_input``), then calls ``run_step`` (or
``run_pending``) with an ``emit`` callable for progress and a ``threading.Event`` for cancel.

Rules:
* **resume** — the next step to run is the first one that is not done (or skipped).
* **upgrade** — when everything is done and a different tag is asked for, only mirror,
  configure and verify run again (:meth:`Wizard.begin_upgrade`).
* secrets (vendor token, STS credentials, target password) live on this object only, in memory,
  and are obtained again after a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.core import envfile, policy
from wizard.core.backend import Backend, ProbeResult, VendorAccess, docker_config_credential
from wizard.core.credentials import Credential
from wizard.core.errors import AccessNotGranted, Cancelled, InputError, WizardError
from wizard.core.events import Emit, Info, StepFailed, StepFinished, StepStarted, discard
from wizard.core.settings import DEFAULT_TAG, Settings, Target, parse_target, validate_tag
from wizard.core.state import STEP_IDS, State, StateStore, now_iso

TITLES: dict[str, str] = {
    "policy": "IAM policy",
    "share": "Share role ARN",
    "auth": "Authenticate",
    "mirror": "Mirror images",
    "configure": "Configure .env",
    "verify": "Verify",
}
DESCRIPTIONS: dict[str, str] = {
    "policy": "Generate the IAM policy for your pull role (and optionally create the role).",
    "share": "Send your role ARN to your Currents contact so they can grant it pull access.",
    "auth": "Assume your role and get an ECR token for Currents' registry.",
    "mirror": "Copy the six Currents images into your own registry.",
    "configure": "Point DC_CURRENTS_IMAGE_REPOSITORY and DC_CURRENTS_IMAGE_TAG at your mirror.",
    "verify": "Re-read the mirrored images and the .env and check they match.",
}
UPGRADE_STEPS = ("mirror", "configure", "verify")
DONE_STATES = ("done", "skipped")


@dataclass(frozen=True)
class StepInfo:
    id: str
    title: str
    description: str
    status: str
    summary: str = ""
    error: str = ""


class Wizard:
    """The wizard's model. Use as a context manager: it holds the state lock while open."""

    def __init__(self, settings: Settings, backend: Backend, store: StateStore | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store or StateStore(settings.state_path)
        self.state = State()
        self._vendor: VendorAccess | None = None
        self._target_credential: Credential | None = None
        self._lock = threading.RLock()
        self._running = 0  # steps in progress (their final state not yet saved)
        self._idle = threading.Condition()
        self.last_plan: Any = None
        self.last_result: Any = None
        self.last_probe: ProbeResult | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> Wizard:
        self.store.acquire()
        try:
            self.state = self.store.load()
            self._merge_settings()
        except BaseException:
            self.store.release()
            raise
        return self

    def close(self) -> None:
        self.store.release()

    def __enter__(self) -> Wizard:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _merge_settings(self) -> None:
        """Flags/env win over what the state remembers; the state fills in the rest."""
        s = self.settings
        if s.role_arn:
            policy.validate_role_arn(s.role_arn)  # bad input: refuse before anything is written
        inputs = self.state.inputs
        for key, value in (
            ("role_arn", s.role_arn),
            ("target", s.target),
            ("target_username", s.target_username),
            ("archive", str(s.archive) if s.archive else ""),
            ("from_archive", str(s.from_archive) if s.from_archive else ""),
        ):
            if value:
                inputs[key] = value
        if s.engine:
            inputs["engine"] = s.engine
        inputs.setdefault("engine", "registry")
        for key, value in getattr(self.backend, "default_inputs", {}).items():
            inputs.setdefault(key, value)
        if not inputs.get("tag"):
            inputs["tag"] = s.tag or envfile.read_version(s.dir) or DEFAULT_TAG
        elif s.tag and s.tag != inputs["tag"]:
            self._change_tag(s.tag)
        self._skip_aws_steps_for_archive()
        # Not saved here: opening must write nothing (bad input later leaves no trace).

    def save(self) -> None:
        with self._lock:
            self.store.save(self.state)

    # -- overview ------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        return self.state.inputs.get("tag") or DEFAULT_TAG

    @property
    def engine(self) -> str:
        return self.state.inputs.get("engine", "registry")

    def steps(self) -> list[StepInfo]:
        out = []
        for sid in STEP_IDS:
            rec = self.state.step(sid)
            out.append(StepInfo(sid, TITLES[sid], DESCRIPTIONS[sid], rec.status, rec.summary, rec.error))
        return out

    def status(self, step_id: str) -> str:
        return self.state.step(step_id).status

    def next_step(self) -> str | None:
        for sid in STEP_IDS:
            if self.status(sid) not in DONE_STATES:
                return sid
        return None

    def mode(self) -> str:
        """first-run | resume | done."""
        statuses = [self.status(s) for s in STEP_IDS]
        if all(st in DONE_STATES for st in statuses):
            return "done"
        if all(st in ("pending", "skipped") for st in statuses):  # nothing has been done yet
            return "first-run"
        return "resume"

    def suggested_upgrade_tag(self) -> str | None:
        """A tag worth upgrading to (from VERSION or --tag) when everything is done, else None."""
        if self.mode() != "done":
            return None
        for candidate in (self.settings.tag, envfile.read_version(self.settings.dir)):
            if candidate and candidate != self.tag:
                return candidate
        return None

    def begin_upgrade(self, tag: str) -> None:
        """Ask for a new tag: only mirror → configure → verify run again."""
        validate_tag(tag)
        with self._lock:
            if tag == self.tag and self.mode() == "done":
                return
            self._change_tag(tag)
            self.save()

    def _change_tag(self, tag: str) -> None:
        """Switch to ``tag`` in memory; steps that depend on the tag become pending again."""
        old = self.tag
        if tag == old:
            return
        self.state.set_input("previous_tag", old)
        self.state.set_input("tag", tag)
        if any(self.status(sid) in DONE_STATES for sid in UPGRADE_STEPS):
            for sid in UPGRADE_STEPS:
                rec = self.state.step(sid)
                rec.status, rec.summary, rec.error, rec.finished_at = "pending", "", "", ""
            self.state.add_history("upgrade", **{"from": old, "to": tag})

    def check_inputs(self, steps: Iterable[str]) -> None:
        """Fail fast (before any step runs) when an input one of ``steps`` needs is missing."""
        steps = set(steps)
        from_archive = bool(self.state.inputs.get("from_archive"))
        if not from_archive and steps & {"share", "auth"}:
            self.role_arn()
        if not from_archive and "mirror" in steps:
            self.role_arn()
        if "mirror" in steps and self.engine == "archive" and not self.state.inputs.get("archive"):
            raise InputError("no archive path given", "pass --archive PATH (a folder or a .tar file)")
        if (steps & {"configure", "verify"}) or ("mirror" in steps and self.engine != "archive"):
            self.target()

    # -- inputs --------------------------------------------------------------------------
    def set_input(self, key: str, value: str) -> None:
        """Validate and remember a (non-secret) input."""
        if key == "role_arn" and value:
            value = policy.validate_role_arn(value.strip())
            if value != self.state.inputs.get("role_arn"):
                self._vendor = None  # credentials belong to the old role: log in again
        elif key == "target" and value:
            value = parse_target(value).spec
        elif key == "tag":
            validate_tag(value)
            if self.mode() == "done" and value != self.tag:
                self.begin_upgrade(value)
                return
        elif key == "engine" and value not in ("registry", "docker", "archive"):
            raise InputError(f"unknown engine {value!r}", "choose registry, docker or archive")
        with self._lock:
            self.state.set_input(key, value)
            if key == "from_archive":
                self._skip_aws_steps_for_archive()
            self.save()

    def set_target_credential(self, username: str, password: str) -> None:
        """Target registry credential, kept in memory only."""
        self._target_credential = Credential(username=username, password=password) if password else None
        if username:
            self.set_input("target_username", username)

    def target(self) -> Target:
        raw = self.state.inputs.get("target", "")
        if not raw:
            raise InputError(
                "no target registry given", "pass --target HOST[:PORT]/PATH (e.g. registry.example.com/currents)"
            )
        t = parse_target(raw)
        if not t.insecure and t.host in self.settings.insecure_registries:
            t = Target(t.host, t.path, insecure=True)
        return t

    def role_arn(self) -> str:
        arn = self.state.inputs.get("role_arn", "")
        if not arn:
            raise InputError("no role ARN given", "pass --role-arn arn:aws:iam::<account>:role/<name>")
        return arn

    # -- artefacts for front ends ------------------------------------------------------------
    def policy_text(self) -> str:
        return policy.render(policy.identity_policy(self.settings))

    def trust_text(self, account: str) -> str:
        return policy.render(policy.trust_policy(account))

    def share_text(self) -> str:
        return policy.share_message(self.settings.with_(tag=self.tag), self.role_arn())

    def env_change(self) -> envfile.EnvChange:
        return envfile.plan_env_update(self.settings.env_path, self.target().repository_prefix, self.tag)

    # -- running ---------------------------------------------------------------------------
    def run_step(self, step_id: str, emit: Emit = discard, cancel: threading.Event | None = None) -> None:
        """Run one step; records status in the state file. Raises WizardError on failure."""
        if step_id not in STEP_IDS:
            raise InputError(f"unknown step {step_id!r}", f"choose from: {', '.join(STEP_IDS)}")
        cancel = cancel or threading.Event()
        fn: Callable[[Emit, threading.Event], str] = getattr(self, f"_run_{step_id}")
        with self._idle:
            self._running += 1
        try:
            self._run_step(step_id, fn, emit, cancel)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no step is running and every step's outcome is saved; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def _run_step(
        self, step_id: str, fn: Callable[[Emit, threading.Event], str], emit: Emit, cancel: threading.Event
    ) -> None:
        rec = self.state.step(step_id)
        try:
            with self._lock, _sigint_deferred():
                rec.status, rec.started_at, rec.error = "running", now_iso(), ""
                self.save()
            emit(StepStarted(step_id))
            summary = fn(emit, cancel)
        except (Cancelled, KeyboardInterrupt):
            cancel.set()  # let worker threads of this step wind down
            with self._lock, _sigint_deferred():
                rec.status, rec.summary = "pending", "interrupted — run again to resume"
                self.save()
            raise
        except WizardError as exc:
            with self._lock, _sigint_deferred():
                rec.status, rec.error = "failed", str(exc)
                self.save()
            emit(StepFailed(step_id, exc.message, exc.hint))
            raise
        except BaseException:
            with self._lock, _sigint_deferred():
                rec.status, rec.error = "failed", "unexpected error"
                self.save()
            raise
        with self._lock, _sigint_deferred():
            if rec.status == "running":
                rec.status = "done"
            rec.finished_at, rec.summary = now_iso(), summary
            self.save()
        emit(StepFinished(step_id, summary))

    def run_pending(
        self, emit: Emit = discard, cancel: threading.Event | None = None, only: Iterable[str] | None = None
    ) -> list[str]:
        """Run every step that is not done (optionally only those in ``only``); returns those run."""
        ran = []
        for sid in self.pending_steps(only):
            self.run_step(sid, emit, cancel)
            ran.append(sid)
        return ran

    def pending_steps(self, only: Iterable[str] | None = None) -> list[str]:
        """The steps a run would execute, in order (optionally limited to ``only``). Changes nothing."""
        wanted = set(only) if only is not None else set(STEP_IDS)
        return [sid for sid in STEP_IDS if sid in wanted and self.status(sid) not in DONE_STATES]

    def _skip_aws_steps_for_archive(self) -> None:
        """Images carried in as an archive need no AWS role, token or access check (in memory)."""
        if self.state.inputs.get("from_archive"):
            for sid in ("policy", "share", "auth"):
                rec = self.state.step(sid)
                if rec.status not in DONE_STATES:
                    rec.status, rec.summary = "skipped", "not needed: images come from an archive"

    def mark(self, step_id: str, status: str, summary: str = "") -> None:
        with self._lock:
            rec = self.state.step(step_id)
            rec.status, rec.summary = status, summary
            if status == "done":
                rec.finished_at = now_iso()
            self.save()

    # -- step bodies -------------------------------------------------------------------------
    def _state_dir(self) -> Path:
        return self.store.path.parent

    def _run_policy(self, emit: Emit, cancel: threading.Event) -> str:
        path = self._state_dir() / "currents-ecr-pull-policy.json"
        path.write_text(self.policy_text())
        emit(Info(f"policy written to {path}", step="policy"))
        role_name = self.state.inputs.get("role_name", "")
        if role_name:
            ident = self.backend.identity()
            trust = policy.trust_policy(ident.account)
            outcome = self.backend.ensure_role(role_name, trust, policy.identity_policy(self.settings), update=False)
            emit(Info(f"role {outcome.arn}: {outcome.status}", step="policy"))
            if outcome.status == "differs":
                emit(Info(outcome.message or "the existing role's policy differs", level="warning", step="policy"))
            self.state.set_input("role_arn", outcome.arn)
            self.state.set_input("role_created", outcome.status)
            return f"role {outcome.arn} {outcome.status}"
        return f"policy saved to {path}"

    def _run_share(self, emit: Emit, cancel: threading.Event) -> str:
        text = self.share_text()
        path = self._state_dir() / "share-with-currents.txt"
        path.write_text(text)
        emit(Info(f"message for your Currents contact written to {path}", step="share"))
        return f"ARN {self.role_arn()} ready to share"

    def vendor_access(self) -> VendorAccess:
        """Log in to the vendor registry through the role (memory only), once per process."""
        if self._vendor is None:
            access = self.backend.login_vendor(self.role_arn())
            self._vendor = access
            with self._lock:
                self.state.set_input("assumed_arn", access.assumed_arn)
                if access.sts_expires_at:
                    self.state.set_input("sts_expires_at", access.sts_expires_at.isoformat())
                if access.token_expires_at:
                    self.state.set_input("token_expires_at", access.token_expires_at.isoformat())
                self.save()
        return self._vendor

    def probe(self) -> ProbeResult:
        result = self.backend.probe(self.vendor_access(), self.tag)
        self.last_probe = result
        with self._lock:
            self.state.set_input("access", result.verdict)
            self.save()
        return result

    def _run_auth(self, emit: Emit, cancel: threading.Event) -> str:
        if self.state.inputs.get("from_archive"):
            return "not needed: images come from an archive"
        access = self.vendor_access()
        emit(Info(f"assumed {access.assumed_arn}", step="auth"))
        result = self.probe()
        if result.verdict == "not_granted":
            raise AccessNotGranted(result.message, result.hint)
        if result.verdict != "granted":
            raise WizardError(result.message, result.hint)
        return f"access granted as {access.assumed_arn}"

    def _source_and_target(self) -> tuple[Any, Any, Any]:
        """(source transport, target transport, Target-or-None)."""
        from wizard.core.transports import archive as archive_mod

        from_archive = self.state.inputs.get("from_archive")
        if from_archive:
            source = archive_mod.open_archive(Path(from_archive), create=False)
        else:
            source = self.backend.source(self.vendor_access())
        if self.engine == "archive":
            dest = self.state.inputs.get("archive")
            if not dest:
                raise InputError("no archive path given", "pass --archive PATH (a folder or a .tar file)")
            return source, archive_mod.open_archive(Path(dest), create=True), None
        tgt = self.target()
        return source, self.backend.target(tgt, self._target_credential), tgt

    def _jobs(self, target: Target | None) -> list[Any]:
        from wizard.core.mirror import ImageJob

        return [
            ImageJob(
                service=s,
                source_repo=self.settings.source_repo(s),
                target_repo=target.repo(s) if target else self.settings.source_repo(s),
                tag=self.tag,
            )
            for s in self.settings.services
        ]

    def mirror_plan(self, emit: Emit = discard) -> Any:
        from wizard.core import mirror

        source, target_tp, tgt = self._source_and_target()
        try:
            self.last_plan = mirror.plan(source, target_tp, self._jobs(tgt), emit)
        finally:
            source.close()
            target_tp.close()
        return self.last_plan

    def _run_mirror(self, emit: Emit, cancel: threading.Event) -> str:
        if self.engine == "docker":
            return self._run_mirror_docker(emit, cancel)
        from wizard.core import mirror

        source, target_tp, tgt = self._source_and_target()
        try:
            for transport in (source, target_tp):
                for warning in getattr(transport, "warnings", ()):
                    emit(Info(warning, level="warning", step="mirror"))
            if tgt is not None:
                self._prepare_target(tgt, emit)
            plan = mirror.plan(source, target_tp, self._jobs(tgt), emit)
            self.last_plan = plan
            result = mirror.execute(plan, source, target_tp, emit, cancel)
            self.last_result = result
            checks = mirror.verify(plan, target_tp)
        finally:
            source.close()
            target_tp.close()
        failed = []
        with self._lock:
            for service, check in checks.items():
                rec = self.state.image(self.tag, service)
                rec.source_digest = check.source_digest
                rec.engine = self.engine
                rec.target_ref = self._target_ref(tgt, service)
                if check.ok:
                    rec.target_digest = check.target_digest
                    rec.mirrored_at = rec.mirrored_at or now_iso()
                else:
                    failed.append(service)
            self.save()
        if failed:
            causes = [r for r in result.images.values() if not r.ok and r.message]
            which = (
                "no image was mirrored"
                if len(failed) == len(checks)
                else (f"{len(failed)} of {len(checks)} images were not mirrored ({', '.join(sorted(failed))})")
            )
            if causes:
                raise WizardError(f"{which}: {causes[0].message}", "then run again (finished layers are kept)")
            raise WizardError(which, "run the mirror step again: finished layers are not sent again")
        if self.engine == "archive":
            self.mark("configure", "skipped", "archive export: configure after pushing it inward")
            self.mark("verify", "skipped", "archive export")
        return f"{len(checks)} images at {self.tag} verified"

    def _prepare_target(self, tgt: Target, emit: Emit) -> None:
        for created in self.backend.prepare_target(tgt, self.settings.services):
            emit(Info(f"created repository {created}", step="mirror"))
        for warning in getattr(self.backend, "warnings", []):
            emit(Info(warning, level="warning", step="mirror"))

    def _target_ref(self, tgt: Target | None, service: str) -> str:
        if tgt is None:
            return f"{self.state.inputs.get('archive', '')}#{self.settings.source_repo(service)}:{self.tag}"
        return f"{tgt.repository_prefix}{service}:{self.tag}"

    def _run_mirror_docker(self, emit: Emit, cancel: threading.Event) -> str:
        from wizard.core.transports.docker_engine import DockerEngineMirror

        tgt = self.target()
        access = self.vendor_access()
        engine = DockerEngineMirror()
        emit(Info(DockerEngineMirror.CAVEAT, level="warning", step="mirror"))
        self._prepare_target(tgt, emit)
        for service in self.settings.services:
            if cancel.is_set():
                raise Cancelled("stopped by request", "run again to resume")
            digest = engine.mirror_image(
                self.settings.source_ref(service, self.tag),
                f"{tgt.repository_prefix}{service}:{self.tag}",
                access,
                self._target_credential or docker_config_credential(tgt.host),
                emit,
                cancel,
            )
            with self._lock:
                rec = self.state.image(self.tag, service)
                rec.target_digest, rec.engine = digest, "docker"
                rec.target_ref, rec.mirrored_at = f"{tgt.repository_prefix}{service}:{self.tag}", now_iso()
                self.save()
        return f"{len(self.settings.services)} images pushed with the Docker engine"

    def _run_configure(self, emit: Emit, cancel: threading.Event) -> str:
        change = self.env_change()
        if not change.changed:
            return f"{self.settings.env_path} already points at {self.target().repository_prefix} {self.tag}"
        backup = envfile.apply_env_update(change)
        if backup:
            self.state.set_input("env_backup", str(backup))
            emit(Info(f"backup written to {backup}", step="configure"))
        warning = envfile.tag_mismatch_warning(self.settings.dir, self.tag)
        if warning:
            emit(Info(warning, level="warning", step="configure"))
        return f"{self.settings.env_path} updated"

    def _run_verify(self, emit: Emit, cancel: threading.Event) -> str:
        tgt = self.target()
        current = envfile.read_current(self.settings.env_path)
        want_repo = tgt.repository_prefix
        if current.get("DC_CURRENTS_IMAGE_REPOSITORY") != want_repo or current.get("DC_CURRENTS_IMAGE_TAG") != self.tag:
            raise WizardError(
                f"{self.settings.env_path} does not point at {want_repo} {self.tag}",
                "run the configure step again",
            )
        transport = self.backend.target(tgt, self._target_credential)
        problems = []
        try:
            for service in self.settings.services:
                rec = self.state.image(self.tag, service)
                desc = transport.resolve(tgt.repo(service), self.tag)
                if desc is None:
                    problems.append(f"{service}: missing at the target")
                elif rec.target_digest and desc.digest != rec.target_digest:
                    problems.append(f"{service}: digest {desc.digest[:19]} ≠ mirrored {rec.target_digest[:19]}")
                else:
                    with self._lock:
                        rec.target_digest = rec.target_digest or desc.digest
                        rec.verified_at = now_iso()
        finally:
            transport.close()
        self.save()
        if problems:
            raise WizardError("verification failed: " + "; ".join(problems), "run the mirror step again")
        compose = compose_check(self.settings.dir, self.settings.env_path)
        if compose:
            emit(Info(compose, step="verify"))
        return f"{len(self.settings.services)} images verified at {want_repo} ({self.tag})"


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block — a state save — is finished, then raise it.

    Only in the main thread (signal handlers live there); elsewhere the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    except ValueError:  # not the main interpreter thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def compose_check(folder: Path, env_path: Path) -> str:
    """Render the compose file with docker-compose (if present) and report the image references."""
    exe = shutil.which("docker-compose")
    compose_file = next(
        (folder / n for n in ("docker-compose.yml", "compose.yml", "compose.currents.yml") if (folder / n).exists()),
        None,
    )
    if not exe or compose_file is None:
        return ""
    try:
        out = subprocess.run(
            [exe, "-f", str(compose_file), "--env-file", str(env_path), "config"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if out.returncode != 0:
        return f"docker-compose config failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}"
    images = sorted({line.split("image:", 1)[1].strip() for line in out.stdout.splitlines() if "image:" in line})
    return "compose resolves: " + ", ".join(images)
