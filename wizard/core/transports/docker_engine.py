"""Mirror through a Docker engine: ``pull`` → ``tag`` → ``push`` with the ``docker`` SDK.

This is the seed's way, kept for sites that want it (``--engine docker``).  It is a separate
mirror strategy, not a :class:`~wizard.core.transports.base.Transport`: the engine never hands
out raw manifests or blobs.  Read :data:`CAVEAT` — it is what the UI must say about this path.

Credentials go to the daemon through SDK calls only (``login`` with ``reauth=True`` and an
``auth_config`` on every pull/push); they never reach argv, disk or error messages.  The SDK
reports push failures as stream events rather than exceptions, so every event is checked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.core.credentials import Credential, CredentialProvider, StaticCredentials
from wizard.core.errors import AccessNotGranted, Cancelled, RegistryError, WizardError
from wizard.core.events import BlobProgress, Emit, ImageProgress, Info, discard

if TYPE_CHECKING:  # pragma: no cover
    import docker

CAVEAT = (
    "The Docker engine path re-compresses every layer when it pushes, so image digests at your "
    "registry differ from Currents' originals, and it keeps only one platform (this engine's, or "
    "--platform) — multi-arch indexes and attestations are dropped. Use --engine registry for an "
    "exact, byte-for-byte copy."
)

#: Pull status → BlobProgress state (per-layer events; other statuses are image-level lines).
PULL_STATES: dict[str, str] = {
    "Pulling fs layer": "waiting",
    "Waiting": "waiting",
    "Downloading": "copying",
    "Verifying Checksum": "copying",
    "Download complete": "copying",
    "Extracting": "copying",
    "Pull complete": "done",
    "Already exists": "exists",
}
#: Push status → BlobProgress state (``Mounted from <repo>`` is matched by prefix).
PUSH_STATES: dict[str, str] = {
    "Preparing": "waiting",
    "Waiting": "waiting",
    "Pushing": "copying",
    "Pushed": "done",
    "Layer already exists": "exists",
}
_FINISHED = frozenset({"done", "exists", "mounted"})
_ROLLUP_INTERVAL = 0.1  # seconds between ImageProgress roll-ups (state changes always go out)

CredentialLike = Credential | CredentialProvider | None


class DockerEngineError(WizardError):
    """The Docker engine is missing, unreachable or refused a request."""


class RegistryAuthError(RegistryError):
    """A registry refused the credential (401): the source's provider may ``refresh()`` once."""


# --------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------


def normalise_registry_host(value: str) -> str:
    """``https://127.0.0.1:5001/currents/on-prem/`` → ``127.0.0.1:5001``: scheme and path removed.

    The SDK matches saved logins by this bare ``host[:port]`` string, and podman's ``/auth``
    rejects anything else.
    """
    host = value.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if not host:
        raise DockerEngineError(f"no registry host in {value!r}", "give HOST[:PORT], e.g. registry.example.com")
    return host


@dataclass(frozen=True)
class ImageRef:
    """``host[:port]/path/name`` plus a tag or a ``sha256:`` digest."""

    registry: str
    repository: str  # includes the registry host: what the engine calls the repository
    reference: str

    @property
    def is_digest(self) -> bool:
        return self.reference.startswith("sha256:")

    def __str__(self) -> str:
        return f"{self.repository}{'@' if self.is_digest else ':'}{self.reference}"

    @property
    def name(self) -> str:
        """Last path element (the service name for Currents images)."""
        return self.repository.rsplit("/", 1)[-1]


def parse_ref(ref: str) -> ImageRef:
    """Parse ``[scheme://]host[:port]/path/name(:tag|@sha256:…)``; the host part is required."""
    text = ref.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    if "@" in text:
        repo, reference = text.split("@", 1)
    else:
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            repo, reference = text[:colon], text[colon + 1 :]
        else:
            repo, reference = text, "latest"
    if "/" not in repo or not reference:
        raise DockerEngineError(
            f"not a full image reference: {ref!r}", "use HOST[:PORT]/PATH/NAME:TAG, e.g. registry.example.com/x/api:1"
        )
    return ImageRef(registry=normalise_registry_host(repo), repository=repo, reference=reference)


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    state: str = ""  # set by the first event
    done: int = 0
    total: int = 0


@dataclass
class ProgressTracker:
    """Turns one pull or push event stream into BlobProgress / ImageProgress events.

    ``phase`` is ``pull`` or ``push``.  Pull totals are compressed sizes, push totals are
    uncompressed (that is what the engine reports).  Blob ``digest`` is the engine's short id.
    """

    service: str
    phase: str
    emit: Emit
    clock: Callable[[], float] = time.monotonic
    layers: dict[str, _Layer] = field(default_factory=dict)
    digest: str = ""
    _last_rollup: float = field(default=-1.0, init=False)

    def _state_for(self, status: str) -> str | None:
        if self.phase == "pull":
            return PULL_STATES.get(status)
        if status.startswith("Mounted from"):
            return "mounted"
        return PUSH_STATES.get(status)

    def handle(self, event: Mapping[str, Any]) -> None:
        """Digest one decoded event (errors must be checked by the caller first)."""
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
            return
        status = str(event.get("status") or "")
        if status.startswith("Digest: sha256:") and self.phase == "pull":
            self.digest = status.split(" ", 1)[1].strip()
            return
        if self.phase == "push" and ": digest: sha256:" in status and not self.digest:
            self.digest = status.split(": digest: ", 1)[1].split()[0]
            return
        layer_id = event.get("id")
        state = self._state_for(status)
        if not layer_id or state is None:
            return
        layer = self.layers.setdefault(str(layer_id), _Layer())
        detail = event.get("progressDetail") or {}
        current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
        before = (layer.state, layer.done, layer.total)
        if total:
            layer.total = max(layer.total, total)
        if status in ("Downloading", "Pushing"):
            layer.done = max(layer.done, min(current, layer.total) if layer.total else current)
        elif status in ("Download complete", "Verifying Checksum", "Extracting") or state == "done":
            layer.done = max(layer.done, layer.total)
        # Never move a finished layer back (e.g. a late "Extracting" after "Pull complete").
        if layer.state not in _FINISHED or state in _FINISHED:
            layer.state = state
        if (layer.state, layer.done, layer.total) != before:
            self.emit(BlobProgress(self.service, str(layer_id), layer.done, layer.total, layer.state))
            self.rollup(force=layer.state != before[0])

    def totals(self) -> tuple[int, int, int, int]:
        """``(done_bytes, total_bytes, blobs_done, blobs_total)`` over the layers seen so far."""
        done = sum(layer.done for layer in self.layers.values())
        total = sum(layer.total for layer in self.layers.values())
        finished = sum(1 for layer in self.layers.values() if layer.state in _FINISHED)
        return done, total, finished, len(self.layers)

    def rollup(self, force: bool = False, state: str = "copying", message: str = "") -> None:
        now = self.clock()
        if not force and now - self._last_rollup < _ROLLUP_INTERVAL:
            return
        self._last_rollup = now
        done, total, blobs_done, blobs_total = self.totals()
        verb = "pulling" if self.phase == "pull" else "pushing"
        self.emit(
            ImageProgress(
                self.service,
                state,
                done_bytes=done,
                total_bytes=total,
                blobs_done=blobs_done,
                blobs_total=blobs_total,
                message=message or verb,
                digest=self.digest,
            )
        )


# --------------------------------------------------------------------------------------------
# error mapping
# --------------------------------------------------------------------------------------------

_AUTH_MARKERS = (
    "status: 401",
    "401 unauthorized",
    "unauthorized",
    "no basic auth credentials",
    "authentication required",
)
_DENIED_MARKERS = ("status: 403", "403 forbidden", "denied", "forbidden")
_NOT_FOUND_MARKERS = ("manifest unknown", "not found", "does not exist", "name unknown")
_UNREACHABLE_MARKERS = ("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable")


def _one_line(text: str, secrets: Iterable[str] = ()) -> str:
    out = " ".join(str(text).split())
    for secret in secrets:
        if secret:
            out = out.replace(secret, "<redacted>")
    return out[:400]


def is_auth_error(message: str) -> bool:
    low = message.lower()
    return any(marker in low for marker in _AUTH_MARKERS)


def registry_error(message: str, *, host: str, ref: str, action: str, source: bool) -> WizardError:
    """A WizardError with a next step for an engine/registry message about ``ref``."""
    low = message.lower()
    who = "the Currents registry" if source else f"registry {host}"
    if "does not exist locally" in low:
        return DockerEngineError(f"{ref} is not in the Docker engine: {message}", "pull it first, then push")
    if is_auth_error(message):
        if source:
            hint = "log in again (the auth step) — the registry token may have expired"
        else:
            hint = (
                f"check the credentials for {host} (--target-username/--target-password-stdin, "
                f"or `docker login {host}`)"
            )
        return RegistryAuthError(f"{who} refused the {action} of {ref}: {message}", hint)
    if any(marker in low for marker in _DENIED_MARKERS):
        if source:
            return AccessNotGranted(
                f"the Currents registry denied the {action} of {ref}: {message}",
                "ask Currents to grant your role access (the share step), then try again",
            )
        return RegistryError(
            f"registry {host} denied the {action} of {ref}: {message}",
            "give this account push permission on the repository (or create the repository first)",
        )
    if any(marker in low for marker in _NOT_FOUND_MARKERS):
        return RegistryError(
            f"{ref} was not found: {message}",
            "check the tag (--tag) and the repository path; list tags with the probe step",
        )
    if "server gave http response to https client" in low:
        return RegistryError(
            f"{host} speaks plain HTTP but the Docker engine expects HTTPS: {message}",
            f'add "{host}" to "insecure-registries" in /etc/docker/daemon.json and reload Docker',
        )
    if "x509" in low or "certificate" in low:
        return RegistryError(
            f"the Docker engine does not trust the certificate of {host}: {message}",
            f"put the CA certificate in /etc/docker/certs.d/{host}/ca.crt and retry",
        )
    if any(marker in low for marker in _UNREACHABLE_MARKERS):
        return RegistryError(
            f"the Docker engine cannot reach {host}: {message}",
            f"check that {host} is up and reachable from the Docker host (DNS, firewall, proxy)",
        )
    return RegistryError(f"{action} of {ref} failed: {message}", "check the Docker engine log and retry")


def _engine_unreachable(base_url: str, exc: BaseException) -> DockerEngineError:
    text = _one_line(str(exc))
    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return DockerEngineError(
            f"the Docker engine at {where} stopped answering: {text}",
            "check that Docker is healthy (`docker info`), then run the mirror again",
        )
    if "permission denied" in text.lower():
        return DockerEngineError(
            f"no permission to use the Docker engine at {where}",
            "add your user to the docker group (then log in again) or run with sudo; or use --engine registry",
        )
    return DockerEngineError(
        f"cannot reach the Docker engine at {where}: {text}",
        "start Docker (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at it; "
        "or use --engine registry, which needs no Docker",
    )


def _as_provider(cred: CredentialLike) -> CredentialProvider:
    if cred is None or isinstance(cred, Credential):
        return StaticCredentials(cred)
    return cred


def _auth_config(cred: Credential | None, host: str) -> dict[str, str] | None:
    if cred is None:
        return None
    return {"username": cred.username, "password": cred.password, "serveraddress": host}


# --------------------------------------------------------------------------------------------
# the mirror
# --------------------------------------------------------------------------------------------


class DockerEngineMirror:
    """Mirror images by ``pull`` → ``tag`` → ``push`` on a Docker engine.

    ``client`` (a ``docker.DockerClient``) or ``base_url`` pick the engine; by default
    ``docker.from_env()`` (honours ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``).
    """

    CAVEAT = CAVEAT

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        base_url: str | None = None,
        timeout: int = 300,
        untag_target: bool = True,
    ) -> None:
        self._client = client
        self._base_url = base_url or ""
        self._timeout = timeout
        self._untag_target = untag_target
        self._logins: dict[str, Credential] = {}  # host -> credential the engine accepted (memory only)
        self._lock = threading.Lock()

    # -- engine ----------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        """The SDK client, created on first use; raises DockerEngineError when there is no engine."""
        with self._lock:
            if self._client is None:
                import docker
                from docker.errors import DockerException

                try:
                    if self._base_url:
                        self._client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
                    else:
                        self._client = docker.from_env(timeout=self._timeout)
                except DockerException as exc:
                    raise _engine_unreachable(self._base_url, exc) from None
            return self._client

    def ping(self) -> str:
        """The engine's version string; raises DockerEngineError when unreachable."""
        try:
            return str(self.client.version().get("Version", ""))
        except DockerEngineError:
            raise
        except Exception as exc:
            raise _engine_unreachable(self._base_url, exc) from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._logins.clear()

    # -- login -----------------------------------------------------------------------------
    def login(self, registry_host: str, credential: Credential, *, source: bool = False) -> None:
        """Log the engine in to ``registry_host`` (normalised to ``host[:port]``) with ``reauth=True``."""
        from docker.errors import APIError

        host = normalise_registry_host(registry_host)
        try:
            self.client.login(username=credential.username, password=credential.password, registry=host, reauth=True)
        except APIError as exc:
            message = _one_line(exc.explanation or str(exc), [credential.password])
            raise registry_error(message, host=host, ref=host, action="login", source=source) from None
        except DockerEngineError:
            raise
        except Exception as exc:
            raise _engine_unreachable(self._base_url, exc) from None
        self._logins[host] = credential

    def _ensure_login(self, host: str, credential: Credential | None, *, source: bool) -> None:
        if credential is not None and self._logins.get(host) is not credential:
            self.login(host, credential, source=source)

    # -- streams ---------------------------------------------------------------------------
    def _consume(
        self,
        stream: Iterator[Mapping[str, Any]],
        tracker: ProgressTracker,
        cancel: threading.Event | None,
        *,
        host: str,
        ref: str,
        source: bool,
        secrets: Iterable[str],
    ) -> None:
        action = "pull" if tracker.phase == "pull" else "push"
        for event in stream:
            if cancel is not None and cancel.is_set():
                self.close()  # drop the connection: the engine aborts the transfer
                raise Cancelled("stopped by request", "run the mirror again to resume")
            if not isinstance(event, Mapping):
                continue
            if event.get("error") or event.get("errorDetail"):
                detail = event.get("errorDetail") or {}
                raw = event.get("error") or (detail.get("message") if isinstance(detail, Mapping) else "") or ""
                raise registry_error(_one_line(str(raw), secrets), host=host, ref=ref, action=action, source=source)
            tracker.handle(event)

    def _pull(
        self,
        src: ImageRef,
        cred: Credential | None,
        tracker: ProgressTracker,
        cancel: threading.Event | None,
        platform: str | None,
    ) -> None:
        from docker.errors import APIError

        secrets = [cred.password] if cred else []
        try:
            stream = self.client.api.pull(
                src.repository,
                tag=src.reference,
                stream=True,
                decode=True,
                auth_config=_auth_config(cred, src.registry),
                platform=platform,
            )
            self._consume(stream, tracker, cancel, host=src.registry, ref=str(src), source=True, secrets=secrets)
        except APIError as exc:
            message = _one_line(exc.explanation or str(exc), secrets)
            raise registry_error(message, host=src.registry, ref=str(src), action="pull", source=True) from None
        except WizardError:
            raise
        except Exception as exc:
            raise _engine_unreachable(self._base_url, exc) from None

    def _push(
        self, dst: ImageRef, cred: Credential | None, tracker: ProgressTracker, cancel: threading.Event | None
    ) -> str:
        from docker.errors import APIError

        secrets = [cred.password] if cred else []
        try:
            stream = self.client.api.push(
                dst.repository,
                tag=dst.reference,
                stream=True,
                decode=True,
                auth_config=_auth_config(cred, dst.registry),
            )
            self._consume(stream, tracker, cancel, host=dst.registry, ref=str(dst), source=False, secrets=secrets)
        except APIError as exc:
            message = _one_line(exc.explanation or str(exc), secrets)
            raise registry_error(message, host=dst.registry, ref=str(dst), action="push", source=False) from None
        except WizardError:
            raise
        except Exception as exc:
            raise _engine_unreachable(self._base_url, exc) from None
        if not tracker.digest:
            raise RegistryError(
                f"the push of {dst} finished without reporting a digest",
                "check the Docker engine log; the target may not have stored the image",
            )
        return tracker.digest

    # -- public ----------------------------------------------------------------------------
    def mirror_image(
        self,
        source_ref: str,
        target_ref: str,
        source_cred: CredentialLike,
        target_cred: CredentialLike,
        emit: Emit = discard,
        cancel: threading.Event | None = None,
        platform: str | None = None,
        service: str | None = None,
    ) -> str:
        """Pull ``source_ref``, tag it ``target_ref``, push it; return the digest the target stored.

        Credentials are a :class:`Credential`, a provider (refreshed once on a 401 while pulling)
        or None (anonymous, or whatever the engine's own config holds).
        """
        src, dst = parse_ref(source_ref), parse_ref(target_ref)
        if dst.is_digest:
            raise DockerEngineError(f"cannot push to a digest reference: {target_ref}", "give the target a tag")
        name = service or src.name
        source_provider, target_provider = _as_provider(source_cred), _as_provider(target_cred)
        if cancel is not None and cancel.is_set():
            raise Cancelled("stopped by request", "run the mirror again to resume")
        try:
            emit(ImageProgress(name, "copying", message=f"pulling {src}"))
            pull = ProgressTracker(name, "pull", emit)
            self._pull_with_refresh(src, source_provider, pull, cancel, platform, emit)
            pull.rollup(force=True, message="pulled")

            self._tag(src, dst)
            target = target_provider.get()
            self._ensure_login(dst.registry, target, source=False)
            emit(ImageProgress(name, "copying", message=f"pushing {dst}"))
            push = ProgressTracker(name, "push", emit)
            digest = self._push(dst, target, push, cancel)
        except Cancelled:
            raise
        except WizardError as err:
            emit(ImageProgress(name, "failed", message=err.message))
            raise
        if self._untag_target and str(dst) != str(src):
            self._untag(dst)
        done, total, blobs_done, blobs_total = push.totals()
        emit(
            ImageProgress(
                name,
                "done",
                done_bytes=done,
                total_bytes=total,
                blobs_done=blobs_done,
                blobs_total=blobs_total,
                message=f"pushed {dst}",
                digest=digest,
            )
        )
        return digest

    def _pull_with_refresh(
        self,
        src: ImageRef,
        provider: CredentialProvider,
        tracker: ProgressTracker,
        cancel: threading.Event | None,
        platform: str | None,
        emit: Emit,
    ) -> None:
        cred = provider.get()
        for attempt in (1, 2):
            try:
                self._ensure_login(src.registry, cred, source=True)
                self._pull(src, cred, tracker, cancel, platform)
                return
            except RegistryAuthError:
                if attempt == 2 or cred is None:
                    raise
                emit(Info(f"{src.registry} refused the credential; fetching a new one", step="mirror"))
                fresh = provider.refresh()
                if fresh is None:
                    raise
                cred = fresh
                self._logins.pop(src.registry, None)

    def _tag(self, src: ImageRef, dst: ImageRef) -> None:
        from docker.errors import APIError

        try:
            ok = self.client.api.tag(str(src), dst.repository, tag=dst.reference, force=True)
        except APIError as exc:
            raise DockerEngineError(
                f"could not tag {src} as {dst}: {_one_line(exc.explanation or str(exc))}",
                "check the target reference and the Docker engine log",
            ) from None
        except Exception as exc:
            raise _engine_unreachable(self._base_url, exc) from None
        if ok is False:
            raise DockerEngineError(f"could not tag {src} as {dst}", "check the Docker engine log")

    def _untag(self, dst: ImageRef) -> None:
        """Remove the extra local name (the pulled source image stays as a cache)."""
        try:
            self.client.api.remove_image(str(dst), noprune=True)
        except Exception:  # best effort: a leftover tag is harmless
            return

    def mirror_all(
        self,
        jobs: Mapping[str, tuple[str, str]],
        source_cred: CredentialLike,
        target_cred: CredentialLike,
        emit: Emit = discard,
        cancel: threading.Event | None = None,
        platform: str | None = None,
    ) -> dict[str, str]:
        """Mirror ``{service: (source_ref, target_ref)}`` one image after another.

        Emits :data:`CAVEAT` as a warning first, ``planned`` for every image, then progress.
        Returns ``{service: pushed digest}``; stops at the first failure (already pushed images
        stay pushed, and a re-run pulls nothing it already has).
        """
        self.ping()
        emit(Info(CAVEAT, level="warning", step="mirror"))
        for service in jobs:
            emit(ImageProgress(service, "planned"))
        source_provider, target_provider = _as_provider(source_cred), _as_provider(target_cred)
        out: dict[str, str] = {}
        for service, (source_ref, target_ref) in jobs.items():
            out[service] = self.mirror_image(
                source_ref,
                target_ref,
                source_provider,
                target_provider,
                emit,
                cancel,
                platform=platform,
                service=service,
            )
        return out
