"""Plan → copy → verify, over any two transports (registry↔registry, registry↔archive, archive↔archive).

* :func:`plan` resolves every source manifest (index → children → config + layers), skips images whose
  target tag already has the source digest (one request each side), dedupes blobs by digest across
  all images and HEAD-checks them at the target. It emits :class:`~wizard.core.events.PlanReady`.
* :func:`execute` moves the plan: ONE global queue of unique blobs, largest first, worked by N threads;
  a blob a target repository already has (or got earlier in this run) is cross-repo *mounted* into
  the others, else its bytes are streamed ``open_blob`` → ``put_blob``. As soon as all of an image's
  blobs are in place its manifests go up (children first, then the index, then the tag). One
  image's failure does not stop the others. A re-run resumes: finished blobs are found by the plan.
* :func:`verify` re-reads each target tag and compares digests with the source.

Progress events (emitted serially, from worker threads, at most ~10/s per blob and per image plus
every state change):

* ``BlobProgress(service, digest, done, total, state)``: ``service`` is the first image needing the
  blob; ``done``/``total`` are the bytes this blob has moved / will move in this run (0/0 for a blob
  that is only mounted; ``total`` grows if a mount is refused and the bytes must be sent again).
  Summing the latest ``done``/``total`` per digest gives the run's totals without double counting.
* ``ImageProgress(service, state, done_bytes, total_bytes, blobs_done, blobs_total, ...)``: per image,
  counting shared blobs in every image that needs them (each bar reaches 100 %).

:class:`MirrorStats` folds those events into totals, speed and ETA for front ends.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from wizard.core.errors import AccessNotGranted, Cancelled, WizardError
from wizard.core.events import BlobProgress, Emit, Event, ImageProgress, Info, PlanReady, discard
from wizard.core.transports.base import (
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    BlobReader,
    Manifest,
    Transport,
)

log = logging.getLogger(__name__)

EMIT_INTERVAL = 0.1  # seconds between progress events for one blob / one image
COPY_ATTEMPTS = 3  # per blob, over all target repositories (a failed stream cannot be replayed by the transport)
SOURCE_COPY_ATTEMPTS = 2  # copies that broke on the source side (each after the reader's own resumes)
DEFAULT_PARALLEL = 6
SMALL_BLOB = 1 << 20  # bytes; smaller blobs are latency, not bandwidth (see ``_blob_order``)
#: Worker threads per byte stream. A thread whose blob is fully sent waits for the registry's answer
#: (its commit: a rename and often an fsync, which on a busy disk takes 0.1 s and more) without
#: holding a stream, so another thread starts the next blob meanwhile (see ``_StreamSlot``).
THREADS_PER_STREAM = 2


# --------------------------------------------------------------------------------------------------
# Jobs and plans
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageJob:
    """Copy ``source_repo:tag`` (in the source transport) to ``target_repo:tag`` (in the target)."""

    service: str
    source_repo: str
    target_repo: str
    tag: str


def make_jobs(services: Sequence[str], tag: str, source_prefix: str, target_prefix: str) -> list[ImageJob]:
    """``<source_prefix>/<service>:<tag>`` → ``<target_prefix>/<service>:<tag>`` for each service."""

    def join(prefix: str, svc: str) -> str:
        prefix = prefix.strip("/")
        return f"{prefix}/{svc}" if prefix else svc

    return [ImageJob(s, join(source_prefix, s), join(target_prefix, s), tag) for s in services]


def job_keys(jobs: Sequence[ImageJob]) -> list[str]:
    """Result keys: the service name, or ``service:tag`` when one run holds several tags of a service."""
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.service] = counts.get(j.service, 0) + 1
    return [j.service if counts[j.service] == 1 else f"{j.service}:{j.tag}" for j in jobs]


@dataclass
class BlobPlan:
    """One unique blob of the run and where it must end up."""

    digest: str
    size: int
    media_type: str
    source_repo: str
    images: list[str] = field(default_factory=list)  # keys of images that contain it
    missing_in: list[str] = field(default_factory=list)  # target repos that need it
    present_in: list[str] = field(default_factory=list)  # target repos that already have it

    @property
    def action(self) -> str:
        """``copy`` (bytes must move), ``mount`` (another target repo has it) or ``exists``."""
        if not self.missing_in:
            return "exists"
        return "mount" if self.present_in else "copy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "action": self.action,
            "images": list(self.images),
            "missing_in": list(self.missing_in),
            "present_in": list(self.present_in),
        }


@dataclass
class ImagePlan:
    """One image: ``action`` is ``copy``, ``skip`` (target already has the digest) or ``failed``."""

    job: ImageJob
    key: str
    action: str = "copy"
    source_digest: str = ""
    media_type: str = ""
    target_digest: str = ""
    platforms: list[str] = field(default_factory=list)
    manifests: list[Manifest] = field(default_factory=list, repr=False)  # children first, top last
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size (config + layers, all platforms)
    blob_types: dict[str, str] = field(default_factory=dict, repr=False)
    size: int = 0  # unique bytes of the image (blobs + manifests)
    bytes_to_copy: int = 0
    blobs_to_copy: int = 0
    blobs_to_mount: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        j = self.job
        return {
            "key": self.key,
            "service": j.service,
            "tag": j.tag,
            "source_repo": j.source_repo,
            "target_repo": j.target_repo,
            "action": self.action,
            "source_digest": self.source_digest,
            "target_digest": self.target_digest,
            "media_type": self.media_type,
            "platforms": list(self.platforms),
            "size": self.size,
            "blobs": len(self.blobs),
            "blobs_to_copy": self.blobs_to_copy,
            "blobs_to_mount": self.blobs_to_mount,
            "bytes_to_copy": self.bytes_to_copy,
            "message": self.message,
        }


@dataclass
class Plan:
    """What a run will move. ``to_dict()`` is JSON-able (``--dry-run --json``)."""

    images: list[ImagePlan]
    blobs: dict[str, BlobPlan]
    source: str = ""
    target: str = ""

    def image(self, key: str) -> ImagePlan:
        for img in self.images:
            if img.key == key:
                return img
        raise KeyError(key)

    def _blobs(self, action: str) -> list[BlobPlan]:
        return [b for b in self.blobs.values() if b.action == action]

    @property
    def bytes_to_copy(self) -> int:
        return sum(b.size for b in self._blobs("copy"))

    @property
    def blobs_to_copy(self) -> int:
        return len(self._blobs("copy"))

    @property
    def blobs_to_mount(self) -> int:
        return len(self._blobs("mount"))

    @property
    def images_to_copy(self) -> int:
        return sum(1 for i in self.images if i.action == "copy")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: totals at the top level plus one entry per image."""
        return {
            "source": self.source,
            "target": self.target,
            "images_total": len(self.images),
            "images_to_copy": self.images_to_copy,
            "images_skipped": sum(1 for i in self.images if i.action == "skip"),
            "images_failed": sum(1 for i in self.images if i.action == "failed"),
            "blobs": len(self.blobs),
            "blobs_to_copy": self.blobs_to_copy,
            "blobs_to_mount": self.blobs_to_mount,
            "blobs_present": len(self._blobs("exists")),
            "bytes_to_copy": self.bytes_to_copy,
            "bytes_total": sum(b.size for b in self.blobs.values()),
            "images": [i.to_dict() for i in self.images],
        }

    to_json = to_dict  # ``--dry-run --json`` prints this

    def describe(self) -> str:
        """Human-readable plan, one line per image plus a total."""
        lines = [f"Plan: {self.source} → {self.target}"]
        for i in self.images:
            j = i.job
            if i.action == "skip":
                what = f"up to date ({i.source_digest[:19]})"
            elif i.action == "failed":
                what = f"FAILED: {i.message}"
            else:
                extra = f", {i.blobs_to_mount} to mount" if i.blobs_to_mount else ""
                plats = f" [{', '.join(i.platforms)}]" if i.platforms else ""
                what = f"copy {i.blobs_to_copy} blobs, {human_bytes(i.bytes_to_copy)}{extra}{plats}"
            lines.append(f"  {i.key:<15} {j.source_repo}:{j.tag} → {j.target_repo}:{j.tag}  {what}")
        lines.append(
            f"Total: {self.images_to_copy} of {len(self.images)} images to copy, {self.blobs_to_copy} unique blobs, "
            f"{human_bytes(self.bytes_to_copy)} to move, {self.blobs_to_mount} to mount"
        )
        return "\n".join(lines)


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.2 MB``: decimal SI units (B, kB, MB, GB, TB), as registries and Docker report
    sizes. The one byte formatter of every front end."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def _error_text(e: BaseException) -> str:
    if isinstance(e, WizardError):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _platform(p: dict[str, Any] | None) -> str:
    p = p or {}
    return "/".join(str(x) for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def _walk(source: Transport, repo: str, top: Manifest, img: ImagePlan, io: Executor | None = None) -> None:
    """Fill ``img.manifests`` (children first), ``img.blobs`` and ``img.platforms`` from ``top``.

    An index's children are fetched in parallel on ``io`` (when given) and then visited in order.
    """
    seen: set[str] = set()

    def fetch_children(children: list[Any]) -> dict[str, Future[Manifest]]:
        if io is None:
            return {}
        digests = {c["digest"] for c in children if isinstance(c, dict) and isinstance(c.get("digest"), str)}
        if len(digests) < 2:
            return {}
        return {d: io.submit(source.get_manifest, repo, d) for d in sorted(digests)}

    def visit(m: Manifest, depth: int) -> None:
        if m.digest in seen:
            return
        seen.add(m.digest)
        if depth > 4:
            raise WizardError(f"{repo}: manifest nesting is too deep", "the source image is malformed")
        try:
            doc = json.loads(m.raw)
        except ValueError as e:
            raise WizardError(f"{repo}: manifest {m.digest[:19]} is not JSON", "the source image is malformed") from e
        if m.media_type in INDEX_TYPES:
            children = doc.get("manifests", [])
            fetched = fetch_children(children)
            for child in children:
                plat = _platform(child.get("platform"))
                if depth == 0 and plat and plat != "unknown/unknown":
                    img.platforms.append(plat)
                ahead = fetched.get(child["digest"])
                cm = ahead.result() if ahead is not None else source.get_manifest(repo, child["digest"])
                if cm.digest != child["digest"]:
                    raise WizardError(
                        f"{repo}: child manifest digest mismatch ({cm.digest[:19]} ≠ {child['digest'][:19]})",
                        "the source is inconsistent; try again later",
                    )
                visit(cm, depth + 1)
        elif m.media_type in IMAGE_MANIFEST_TYPES:
            for d in [doc.get("config"), *doc.get("layers", [])]:
                if not d or "digest" not in d:
                    continue
                mt = str(d.get("mediaType", ""))
                if d.get("urls") and ("foreign" in mt or "nondistributable" in mt):
                    continue  # non-distributable layer: fetched from its URLs, never pushed
                img.blobs.setdefault(d["digest"], int(d.get("size", 0)))
                img.blob_types.setdefault(d["digest"], d.get("mediaType", ""))
        else:
            raise WizardError(
                f"{repo}: unsupported manifest type {m.media_type}",
                "only Docker v2 / OCI manifests and lists can be mirrored",
            )
        img.manifests.append(m)

    visit(top, 0)


def _plan_image(
    source: Transport,
    target: Transport,
    img: ImagePlan,
    io: Executor | None = None,
    on_walked: Callable[[ImagePlan], None] | None = None,
) -> None:
    j = img.job
    try:
        # The source manifest (one GET) and the target's digest (one HEAD) are read at the same time;
        # an image the target already has costs exactly these two requests.
        target_read = io.submit(target.resolve, j.target_repo, j.tag) if io is not None else None
        top = source.find_manifest(j.source_repo, j.tag)
        tgt = target_read.result() if target_read is not None else target.resolve(j.target_repo, j.tag)
        if top is None:
            img.action, img.message = "failed", f"{j.source_repo}:{j.tag} not found in {source.name}"
            return
        img.source_digest, img.media_type = top.digest, top.media_type
        img.target_digest = tgt.digest if tgt else ""
        if tgt is not None and tgt.digest == top.digest:
            img.action = "skip"
            return
        _walk(source, j.source_repo, top, img, io)
        img.size = sum(img.blobs.values()) + sum(len(m.raw) for m in img.manifests)
        if on_walked is not None:
            on_walked(img)
    except (AccessNotGranted, Cancelled):
        raise
    except Exception as e:  # one image's trouble must not hide the others
        img.action, img.message = "failed", _error_text(e)


def plan(
    source: Transport,
    target: Transport,
    jobs: Sequence[ImageJob],
    emit: Emit = discard,
    parallel: int = DEFAULT_PARALLEL,
) -> Plan:
    """Resolve, compare and HEAD-check everything; emit ``PlanReady``. Per-image problems are recorded
    in the plan (``action == "failed"``); ``AccessNotGranted`` and ``Cancelled`` are raised."""
    keys = job_keys(jobs)
    images = [ImagePlan(job=j, key=k) for j, k in zip(jobs, keys, strict=True)]
    workers = max(1, min(parallel, len(images) or 1))
    heads: dict[tuple[str, str], Future[bool]] = {}
    heads_lock = threading.Lock()

    def head(digest: str, repo: str) -> bool:
        try:
            return target.has_blob(repo, digest)
        except (AccessNotGranted, Cancelled):
            raise
        except Exception:
            return False  # unknown: copy it (the target verifies)

    # An index's children are read in parallel (``reads``), and an image's blob HEADs start as soon
    # as it is walked (``io``): they overlap with the other images' reads instead of waiting for the
    # slowest image.
    with (
        ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="mirror-plan-io") as io,
        ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="mirror-plan-read") as reads,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mirror-plan") as pool,
    ):

        def walked(img: ImagePlan) -> None:
            repo = img.job.target_repo
            with heads_lock:
                for digest in img.blobs:
                    if (digest, repo) not in heads:
                        heads[(digest, repo)] = io.submit(head, digest, repo)

        list(pool.map(lambda i: _plan_image(source, target, i, reads, walked), images))

        blobs: dict[str, BlobPlan] = {}
        for img in images:
            if img.action != "copy":
                continue
            for digest, size in img.blobs.items():
                bp = blobs.get(digest)
                if bp is None:
                    bp = blobs[digest] = BlobPlan(digest, size, img.blob_types.get(digest, ""), img.job.source_repo)
                bp.images.append(img.key)
                if img.job.target_repo not in bp.missing_in:
                    bp.missing_in.append(img.job.target_repo)

        pairs = [(bp, repo) for bp in blobs.values() for repo in bp.missing_in]
        present = [heads[(bp.digest, repo)].result() for bp, repo in pairs]
    for (bp, repo), ok in zip(pairs, present, strict=True):
        if ok:
            bp.missing_in.remove(repo)
            bp.present_in.append(repo)

    for img in images:
        if img.action != "copy":
            continue
        for digest in img.blobs:
            bp = blobs[digest]
            if img.job.target_repo not in bp.missing_in:
                continue
            if bp.action == "copy":
                img.blobs_to_copy += 1
                img.bytes_to_copy += bp.size
            else:
                img.blobs_to_mount += 1
    result = Plan(images=images, blobs=blobs, source=source.name, target=target.name)
    ready = PlanReady(
        images=tuple(i.to_dict() for i in images),
        bytes_to_copy=result.bytes_to_copy,
        blobs_to_copy=result.blobs_to_copy,
    )
    try:
        emit(ready)
    except Exception:  # a front end's bug must not break the run
        log.exception("progress handler failed on PlanReady")
    return result


# --------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    """How one image ended: ``state`` is ``done``, ``skipped``, ``failed`` or ``cancelled``."""

    key: str
    service: str
    tag: str
    source_repo: str
    target_repo: str
    state: str
    digest: str = ""
    message: str = ""
    bytes_copied: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0

    @property
    def ok(self) -> bool:
        return self.state in ("done", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class MirrorResult:
    plan: Plan
    images: dict[str, ImageResult]
    bytes_copied: int = 0  # bytes actually sent to the target (unique blobs, plus any re-sends)
    blobs_copied: int = 0
    blobs_mounted: int = 0
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(i.ok for i in self.images.values())

    @property
    def failed(self) -> list[ImageResult]:
        return [i for i in self.images.values() if not i.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
            "bytes_copied": self.bytes_copied,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "images": [i.to_dict() for i in self.images.values()],
        }


class MirrorCancelled(Cancelled):
    """Raised by :func:`execute` when ``cancel`` was set; ``result`` says what finished."""

    def __init__(self, result: MirrorResult) -> None:
        done = sum(1 for i in result.images.values() if i.state in ("done", "skipped"))
        super().__init__(
            f"mirror stopped: {done} of {len(result.images)} images finished",
            "run it again to resume: finished layers are not sent again",
        )
        self.result = result


@dataclass
class _BlobRun:
    plan: BlobPlan
    owner: str  # service key shown in BlobProgress
    moved: int = 0
    expected: int = 0
    budget: int = 0  # copies already counted in ``expected``
    last_emit: float = 0.0
    copied: bool = False
    mounted: bool = False
    failed: bool = False
    attempts: int = 0  # failed copies of this blob, over every target repository
    source_failures: int = 0  # of those, how many broke on the source side
    error: Exception | None = None  # set once the blob is given up: other repositories fail fast


@dataclass
class _ImageRun:
    plan: ImagePlan
    result: ImageResult
    pending: set[str] = field(default_factory=set)  # blob digests still to place in its repo
    needed: list[str] = field(default_factory=list)  # blob digests it waited for
    blobs_done: int = 0
    last_emit: float = 0.0


class _StreamSlot:
    """One of the run's ``parallel`` byte streams, held by one worker thread while a blob's bytes flow.

    It is given back as soon as the last byte went to the target: the registry's answer to the upload
    (its commit) needs no bandwidth, and when several big blobs end together their commits would
    otherwise leave both the network and the CPU idle (measured: a ~0.1 s stall per wave of big
    layers on a 2-core machine).
    """

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        while not self.run.streams.acquire(timeout=0.2):
            if self.run.stopping():
                raise Cancelled("mirror cancelled", "run it again to resume")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.run.streams.release()


class _Counted(BlobReader):
    """Wraps a source reader: counts bytes into the run, checks ``cancel`` between chunks, gives the
    stream slot back after the last chunk.

    Passes on the reader's ``verified_digest`` (the target need not hash again) and ``reopen()``
    (the target may resend a blob whose upload failed; the count then restarts and the slot is taken
    again).
    """

    def __init__(self, inner: BlobReader, run: _Run, blob: _BlobRun, start: int, slot: _StreamSlot) -> None:
        self.inner, self.run, self.blob, self.start, self.slot = inner, run, blob, start, slot
        self.size = inner.size
        self.verified_digest = getattr(inner, "verified_digest", None)
        if callable(getattr(inner, "reopen", None)):
            self.reopen = self._reopen

    def _reopen(self) -> _Counted:
        self.slot.acquire()
        fresh = self.inner.reopen()  # type: ignore[attr-defined]
        with self.run.lock:
            self.blob.moved = self.start
        return _Counted(fresh, self.run, self.blob, self.start, self.slot)

    source_failed = False  # the source stream (not the target) raised

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self.inner)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                self.slot.release()
                return
            except Exception:
                self.source_failed = True
                raise
            if self.run.stopping():
                raise Cancelled("mirror cancelled", "run it again to resume")
            self.run.moved(self.blob, len(chunk))
            yield chunk

    def close(self) -> None:
        self.inner.close()


def _noop_progress(_n: int) -> None:
    pass


def _blob_order(blobs: Iterable[_BlobRun]) -> list[_BlobRun]:
    """Largest first, with the small blobs (configs, attestations) interleaved at the front.

    Big layers keep the streams busy and the longest copies start first; a small blob costs a few
    round trips and no bandwidth, so doing them early, beside the big streams, keeps them out of
    the run's tail, where they would delay the last images' manifests.
    """
    ordered = sorted(blobs, key=lambda b: -b.plan.size)
    big = [b for b in ordered if b.plan.size >= SMALL_BLOB]
    small = [b for b in ordered if b.plan.size < SMALL_BLOB]
    out: list[_BlobRun] = []
    while small and big:
        out += (big.pop(0), small.pop(0))
    return out + big + small


class _Run:
    def __init__(
        self,
        plan_: Plan,
        source: Transport,
        target: Transport,
        emit: Emit,
        cancel: threading.Event,
        parallel: int,
    ) -> None:
        self.plan, self.source, self.target, self._emit = plan_, source, target, emit
        self.cancel = cancel
        self.parallel = max(1, parallel)
        self.abort_message = ""
        self.lock = threading.RLock()
        self.queue: queue.PriorityQueue[tuple[int, int, int, Callable[[], None] | None]] = queue.PriorityQueue()
        self.streams = threading.Semaphore(self.parallel)  # byte streams in flight (``_StreamSlot``)
        self.threads = 0
        self.seq = itertools.count()
        self.pending_tasks = 0
        self.bytes_copied = 0
        self.blobs_copied = 0
        self.blobs_mounted = 0
        self.images: dict[str, _ImageRun] = {}
        self.blobs: dict[str, _BlobRun] = {}
        self.by_repo: dict[str, list[_ImageRun]] = {}
        for img in plan_.images:
            j = img.job
            state = {"copy": "pending", "skip": "skipped", "failed": "failed"}[img.action]
            res = ImageResult(
                img.key,
                j.service,
                j.tag,
                j.source_repo,
                j.target_repo,
                state,
                digest=img.source_digest,
                message=img.message,
            )
            run = _ImageRun(img, res)
            self.images[img.key] = run
            if img.action == "copy":
                self.by_repo.setdefault(j.target_repo, []).append(run)
        for bp in plan_.blobs.values():
            if bp.action == "exists":
                continue
            owner = bp.images[0] if bp.images else ""
            br = _BlobRun(bp, owner)
            if bp.action == "copy":
                br.expected, br.budget = bp.size, 1
            self.blobs[bp.digest] = br
            for repo in bp.missing_in:
                for ir in self.by_repo.get(repo, []):
                    if bp.digest in ir.plan.blobs:
                        ir.pending.add(bp.digest)
                        ir.needed.append(bp.digest)

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        with self.lock:
            try:
                self._emit(event)
            except Exception:  # a front end's bug must not break the copy
                log.exception("progress handler failed on %r", event)

    def _blob_event(self, br: _BlobRun, state: str) -> None:
        br.last_emit = time.monotonic()
        self.emit(BlobProgress(br.owner, br.plan.digest, br.moved, br.expected, state))

    def _image_event(self, ir: _ImageRun, state: str, message: str = "") -> None:
        ir.last_emit = time.monotonic()
        done = total = 0
        for d in ir.needed:
            b = self.blobs[d]
            done += b.moved
            total += b.expected
        if state == "done":
            done = total
        self.emit(
            ImageProgress(
                ir.plan.key,
                state,
                done_bytes=done,
                total_bytes=total,
                blobs_done=ir.blobs_done,
                blobs_total=len(ir.needed),
                message=message,
                digest=ir.plan.source_digest,
            )
        )

    def moved(self, br: _BlobRun, n: int) -> None:
        with self.lock:
            br.moved += n
            now = time.monotonic()
            if now - br.last_emit >= EMIT_INTERVAL:
                self._blob_event(br, "copying")
            for key in br.plan.images:
                ir = self.images[key]
                if ir.result.state == "copying" and now - ir.last_emit >= EMIT_INTERVAL:
                    self._image_event(ir, "copying")

    def stopping(self) -> bool:
        return self.cancel.is_set() or bool(self.abort_message)

    # -- tasks ----------------------------------------------------------------------------------
    def submit(self, prio: int, rank: int, fn: Callable[[], None]) -> None:
        """Queue ``fn``: lower ``prio`` first (manifests 0, blobs 1), then lower ``rank``, then FIFO."""
        self.queue.put((prio, rank, next(self.seq), fn))

    def task_done(self) -> None:
        with self.lock:
            self.pending_tasks -= 1
            last = self.pending_tasks == 0
        if last:
            for _ in range(self.threads):
                self.queue.put((-1, 0, next(self.seq), None))

    def worker(self) -> None:
        while True:
            _, _, _, fn = self.queue.get()
            if fn is None:
                return
            try:
                fn()
            except Exception as e:  # a bug: stop the run cleanly rather than hang or die silently
                log.exception("mirror task failed")
                with self.lock:
                    self.abort_message = self.abort_message or f"internal error: {_error_text(e)}"
            finally:
                self.task_done()

    def blob_task(self, br: _BlobRun) -> Callable[[], None]:
        def run() -> None:
            bp = br.plan
            have = list(bp.present_in)
            remaining = list(bp.missing_in)
            try:
                while remaining:
                    repo = remaining[0]
                    error = ""
                    if self.stopping():
                        error = self.abort_message or "cancelled"
                    else:
                        try:
                            self.place(br, repo, have)
                            have.append(repo)
                        except Exception as e:
                            error = self.abort_message or ("cancelled" if self.cancel.is_set() else _error_text(e))
                            if getattr(e, "fatal", False):
                                with self.lock:
                                    self.abort_message = self.abort_message or _error_text(e)
                                error = self.abort_message
                    remaining.pop(0)
                    self.blob_placed(br, repo, error)
            finally:
                for repo in remaining:  # only after a bug: keep the images' bookkeeping whole
                    self.blob_placed(br, repo, self.abort_message or "internal error")
                with self.lock:
                    if br.failed:
                        state = "failed"
                    elif br.copied or not br.mounted:
                        state = "done"
                    else:
                        state = "mounted"
                    self._blob_event(br, state)

        return run

    def place(self, br: _BlobRun, repo: str, have: list[str]) -> None:
        """Make the blob available in ``repo``: mount from a repo that has it, else copy the bytes."""
        digest = br.plan.digest
        for frm in reversed(have):
            try:
                if self.target.mount_blob(repo, digest, frm):
                    with self.lock:
                        br.mounted = True
                        self.blobs_mounted += 1
                        for ir in self.by_repo.get(repo, []):
                            if digest in ir.plan.blobs:
                                ir.result.blobs_mounted += 1
                    return
            except (AccessNotGranted, Cancelled):
                raise
            except Exception:
                break  # mounting is an optimisation: fall back to copying
        self.copy(br, repo)

    def copy(self, br: _BlobRun, repo: str) -> None:
        bp = br.plan
        last: Exception | None = None
        for attempt in range(COPY_ATTEMPTS):
            if self.stopping():
                raise Cancelled("mirror cancelled", "run it again to resume")
            with self.lock:
                if br.error is not None:  # already given up for another repository: no new retries
                    raise br.error
                start = br.moved
                counted = br.budget > 0
                if counted:
                    br.budget -= 1
                else:
                    br.expected += bp.size
                self._blob_event(br, "copying")
            counted_reader: _Counted | None = None
            slot = _StreamSlot(self)
            try:
                slot.acquire()
                with self.source.open_blob(bp.source_repo, bp.digest) as reader:
                    counted_reader = _Counted(reader, self, br, start, slot)
                    self.target.put_blob(repo, bp.digest, bp.size, counted_reader, _noop_progress)
            except Exception as e:
                slot.release()  # not held through the back-off below
                source_side = counted_reader is None or counted_reader.source_failed
                with self.lock:
                    br.moved = start
                    if counted:
                        br.budget += 1
                    else:
                        br.expected -= bp.size
                if self.stopping() or isinstance(e, Cancelled) or getattr(e, "fatal", False):
                    raise
                last = e
                # One budget per blob, not per blob and repository: the source reader already
                # retried and resumed on its own, so a source that keeps failing is given up early.
                with self.lock:
                    br.attempts += 1
                    br.source_failures += source_side
                    if br.attempts >= COPY_ATTEMPTS or br.source_failures >= SOURCE_COPY_ATTEMPTS:
                        br.error = e
                if br.error is not None:
                    raise
                if attempt + 1 < COPY_ATTEMPTS:
                    self.emit(
                        Info(
                            f"copying {bp.digest[:19]} to {repo} failed ({_error_text(e)}); trying again",
                            level="warning",
                            step="mirror",
                        )
                    )
                if attempt + 1 < COPY_ATTEMPTS and self.cancel.wait(0.5 * 2**attempt * (0.5 + random.random())):
                    raise Cancelled("mirror cancelled", "run it again to resume") from e
                continue
            finally:
                slot.release()
            with self.lock:
                br.moved = start + bp.size
                br.copied = True
                self.bytes_copied += bp.size
                self.blobs_copied += 1
                for ir in self.by_repo.get(repo, []):
                    if bp.digest in ir.plan.blobs:
                        ir.result.bytes_copied += bp.size
                        ir.result.blobs_copied += 1
            return
        assert last is not None
        raise last

    def blob_placed(self, br: _BlobRun, repo: str, error: str) -> None:
        ready: list[_ImageRun] = []
        with self.lock:
            if error:
                br.failed = True
            for ir in self.by_repo.get(repo, []):
                if br.plan.digest not in ir.pending:
                    continue
                ir.pending.discard(br.plan.digest)
                if error:
                    if ir.result.state == "copying":
                        cancelled = error == "cancelled"
                        ir.result.state = "cancelled" if cancelled else "failed"
                        ir.result.message = "cancelled" if cancelled else f"blob {br.plan.digest[:19]}: {error}"
                        self._image_event(ir, ir.result.state, ir.result.message)
                else:
                    ir.blobs_done += 1
                    if ir.result.state == "copying":
                        self._image_event(ir, "copying")
                if not ir.pending:
                    ready.append(ir)
        for ir in ready:
            self.submit(0, 0, self.manifest_task(ir))

    def manifest_task(self, ir: _ImageRun) -> Callable[[], None]:
        def run() -> None:
            res = ir.result
            if res.state != "copying":
                return
            if self.stopping():
                with self.lock:
                    res.state = "failed" if self.abort_message else "cancelled"
                    res.message = self.abort_message or "cancelled"
                    self._image_event(ir, res.state, res.message)
                return
            j = ir.plan.job
            try:
                *children, top = ir.plan.manifests
                self._put_children(j.target_repo, children)
                got = self.target.put_manifest(j.target_repo, j.tag, top)
                if got and got != top.digest:
                    raise WizardError(
                        f"{j.target_repo}:{j.tag}: the target stored {got[:19]}, expected {top.digest[:19]}",
                        "the target registry rewrote the manifest; it cannot hold an exact mirror",
                    )
            except Exception as e:
                with self.lock:
                    res.state, res.message = "failed", _error_text(e)
                    self._image_event(ir, "failed", res.message)
                return
            with self.lock:
                res.state = "done"
                self._image_event(ir, "done")

        return run

    def _put_children(self, repo: str, children: list[Manifest]) -> None:
        """Push an index's child manifests (children first, as ``_walk`` listed them): the image
        manifests side by side (one round trip instead of one each), then any nested index in order."""
        leaves = [m for m in children if m.media_type not in INDEX_TYPES]
        if len(leaves) > 1:
            with ThreadPoolExecutor(
                max_workers=min(len(leaves), self.parallel), thread_name_prefix="mirror-put"
            ) as pool:
                for done in [pool.submit(self.target.put_manifest, repo, m.digest, m) for m in leaves]:
                    done.result()
        elif leaves:
            self.target.put_manifest(repo, leaves[0].digest, leaves[0])
        for m in children:
            if m.media_type in INDEX_TYPES:
                self.target.put_manifest(repo, m.digest, m)

    # -- driver ---------------------------------------------------------------------------------
    def go(self) -> None:
        tasks: list[tuple[int, int, Callable[[], None]]] = []
        for ir in self.images.values():
            res = ir.result
            if res.state == "skipped":
                self.emit(ImageProgress(ir.plan.key, "skipped", digest=ir.plan.source_digest, message="up to date"))
            elif res.state == "failed":
                self.emit(ImageProgress(ir.plan.key, "failed", message=res.message))
            else:
                res.state = "copying"
                self._image_event(ir, "copying")
                if not ir.pending:
                    tasks.append((0, 0, self.manifest_task(ir)))
        for rank, br in enumerate(_blob_order(self.blobs.values())):
            if br.expected:
                self._blob_event(br, "waiting")
            tasks.append((1, rank, self.blob_task(br)))
        if not tasks:
            return
        n_images = sum(1 for ir in self.images.values() if ir.result.state == "copying" and ir.pending)
        self.pending_tasks = len(tasks) + n_images
        for prio, rank, fn in tasks:
            self.submit(prio, rank, fn)
        threads = [
            threading.Thread(target=self.worker, name=f"mirror-{i}", daemon=True)
            for i in range(min(self.parallel * THREADS_PER_STREAM, len(tasks)))
        ]
        self.threads = len(threads)
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:  # KeyboardInterrupt in the caller's thread: stop the workers cleanly
            self.cancel.set()
            for t in threads:
                t.join()
            raise


def execute(
    plan_: Plan,
    source: Transport,
    target: Transport,
    emit: Emit = discard,
    cancel: threading.Event | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> MirrorResult:
    """Move what ``plan_`` says. Per-image failures are recorded in the result; raises
    :class:`MirrorCancelled` (a ``Cancelled``) when ``cancel`` is set, carrying the partial result."""
    started = time.monotonic()
    run = _Run(plan_, source, target, emit, cancel or threading.Event(), parallel)
    run.go()
    result = MirrorResult(
        plan=plan_,
        images={k: ir.result for k, ir in run.images.items()},
        bytes_copied=run.bytes_copied,
        blobs_copied=run.blobs_copied,
        blobs_mounted=run.blobs_mounted,
        seconds=time.monotonic() - started,
        cancelled=run.cancel.is_set(),
    )
    if result.cancelled:
        raise MirrorCancelled(result)
    return result


def mirror(
    source: Transport,
    target: Transport,
    jobs: Sequence[ImageJob],
    emit: Emit = discard,
    cancel: threading.Event | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> MirrorResult:
    """``plan`` then ``execute``."""
    return execute(plan(source, target, jobs, emit, parallel), source, target, emit, cancel, parallel)


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    service: str
    tag: str
    target_repo: str
    source_digest: str
    target_digest: str
    ok: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def verify(
    plan_or_result: Plan | MirrorResult, target: Transport, parallel: int = DEFAULT_PARALLEL
) -> dict[str, VerifyResult]:
    """Re-read each target tag and compare its digest with the source's. Keyed like the plan
    (the service name, or ``service:tag`` when a run holds several tags of one service)."""
    p = plan_or_result.plan if isinstance(plan_or_result, MirrorResult) else plan_or_result

    def check(img: ImagePlan) -> VerifyResult:
        j = img.job
        if not img.source_digest:
            return VerifyResult(j.service, j.tag, j.target_repo, "", "", False, img.message or "source not resolved")
        try:
            desc = target.resolve(j.target_repo, j.tag)
        except Exception as e:
            return VerifyResult(j.service, j.tag, j.target_repo, img.source_digest, "", False, _error_text(e))
        if desc is None:
            return VerifyResult(
                j.service, j.tag, j.target_repo, img.source_digest, "", False, f"{j.target_repo}:{j.tag} is missing"
            )
        ok = desc.digest == img.source_digest
        msg = "" if ok else f"target has {desc.digest[:19]}, source has {img.source_digest[:19]}"
        return VerifyResult(j.service, j.tag, j.target_repo, img.source_digest, desc.digest, ok, msg)

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(p.images) or 1))) as pool:
        results = list(pool.map(check, p.images))
    return {img.key: r for img, r in zip(p.images, results, strict=True)}


# --------------------------------------------------------------------------------------------------
# Totals, speed and ETA for front ends
# --------------------------------------------------------------------------------------------------


class MirrorStats:
    """Feed every event to :meth:`update`; read run totals, speed (bytes/s, ~5 s window) and ETA."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 5.0) -> None:
        self.clock, self.window = clock, window
        self.planned_bytes = 0
        self._blobs: dict[str, tuple[int, int]] = {}
        self._images: dict[str, str] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self.started: float | None = None

    def update(self, event: Event) -> None:
        if isinstance(event, PlanReady):
            self.planned_bytes = event.bytes_to_copy
            for img in event.images:
                self._images.setdefault(str(img.get("key") or img.get("service")), "planned")
        elif isinstance(event, BlobProgress):
            if self.started is None:
                self.started = self.clock()
            self._blobs[event.digest] = (event.done, event.total)
            self._sample()
        elif isinstance(event, ImageProgress):
            self._images[event.service] = event.state

    def _sample(self) -> None:
        now = self.clock()
        self._samples.append((now, self.done_bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    @property
    def done_bytes(self) -> int:
        return sum(d for d, _ in self._blobs.values())

    @property
    def total_bytes(self) -> int:
        return max(self.planned_bytes, sum(t for _, t in self._blobs.values()))

    @property
    def speed(self) -> float:
        """Bytes per second over the recent window (0 until two samples exist)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current speed, or None when unknown."""
        left = self.total_bytes - self.done_bytes
        if left <= 0:
            return 0.0
        s = self.speed
        return left / s if s > 0 else None

    @property
    def fraction(self) -> float:
        total = self.total_bytes
        return 1.0 if total == 0 else min(1.0, self.done_bytes / total)

    @property
    def images_total(self) -> int:
        return len(self._images)

    @property
    def images_finished(self) -> int:
        return sum(1 for s in self._images.values() if s in ("done", "skipped"))

    @property
    def images_failed(self) -> int:
        return sum(1 for s in self._images.values() if s == "failed")


__all__ = [
    "BlobPlan",
    "ImageJob",
    "ImagePlan",
    "ImageResult",
    "MirrorCancelled",
    "MirrorResult",
    "MirrorStats",
    "Plan",
    "VerifyResult",
    "execute",
    "job_keys",
    "make_jobs",
    "mirror",
    "plan",
    "verify",
]
