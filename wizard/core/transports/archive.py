"""OCI image layout as a transport: a directory (``oci-layout``, ``index.json``, ``blobs/sha256``)
or a single uncompressed ``.tar`` of one.

Several repositories and tags live in one layout: each tagged manifest is an entry of
``index.json`` whose annotation ``org.opencontainers.image.ref.name`` is ``<repo>:<tag>``
(skopeo reads it as ``oci:DIR:<repo>:<tag>``). Blobs are shared by every repository
(content-addressed), so ``has_blob`` ignores the repository and ``mount_blob`` is free.

Writes are crash-safe: a blob goes to a temporary file next to its final name, is hashed while
written (the archive is the only verifier on this path), fsynced, then renamed; ``index.json``
and ``contents.json`` are replaced atomically under a thread lock plus an ``flock``.
A full disk raises :class:`ArchiveError` (``fatal``) and leaves no half-written final file.

* :class:`OciLayoutTransport` — read/write over a directory.
* :class:`OciTarTransport` — read-only over a ``.tar`` (members read in place, no extraction).
* :class:`OciArchive` — a writable ``.tar``: staged in ``PATH.partial/``, packed on ``commit()``/``close()``.
* :func:`open_archive` — the transport for ``--archive PATH`` (``create=True``) or
  ``--from-archive PATH`` (``create=False``): ``*.tar`` means a single file, anything else a folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from wizard.core.errors import RegistryError
from wizard.core.fsutil import fsync_dir
from wizard.core.transports.base import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_V1_SIGNED,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    BlobReader,
    Descriptor,
    Manifest,
    Progress,
    Transport,
)

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
CONTENTS_FILE = "contents.json"
CONTENTS_FORMAT = "currents-wizard-archive/1"
CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TMP_PREFIX = ".tmp-"


class ArchiveError(RegistryError):
    """The archive is missing, malformed, read-only or out of space.

    ``fatal`` is True when going on is pointless (disk full): the mirror engine then stops the run.
    """

    def __init__(self, message: str, hint: str = "", *, fatal: bool = False) -> None:
        super().__init__(message, hint)
        self.fatal = fatal


def is_tar_path(path: str | os.PathLike[str]) -> bool:
    """``--archive PATH`` ending in ``.tar`` means a single tar file; anything else a directory."""
    return str(path).lower().endswith(".tar")


def split_ref(ref_name: str) -> tuple[str, str]:
    """``currents/on-prem/api:staging`` -> (``currents/on-prem/api``, ``staging``)."""
    repo, sep, tag = ref_name.rpartition(":")
    if not sep or not repo or "/" in tag:
        return ref_name, ""
    return repo, tag


def _check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ArchiveError(f"unsupported or malformed digest {digest!r}", "only sha256 digests are supported")
    return digest


def _is_digest(reference: str) -> bool:
    return reference.startswith("sha256:")


def detect_media_type(raw: bytes) -> str:
    """Media type of a stored manifest, from its ``mediaType`` field or its shape."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ArchiveError("a manifest in the archive is not valid JSON", "the archive is damaged") from e
    if not isinstance(doc, dict):
        raise ArchiveError("a manifest in the archive is not a JSON object", "the archive is damaged")
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt in MANIFEST_TYPES:
        return mt
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc or "config" in doc:
        return OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        return DOCKER_MANIFEST_V1_SIGNED
    raise ArchiveError("a manifest in the archive has an unknown format", "the archive is damaged")


def _disk_full(path: Path | str, e: OSError) -> ArchiveError:
    return ArchiveError(
        f"disk full while writing the archive at {path} ({os.strerror(e.errno or errno.ENOSPC)})",
        "free some space or choose another --archive location, then re-run: finished blobs are kept",
        fatal=True,
    )


def _is_space_error(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def _atomic_write(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temp file + fsync + rename."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _is_space_error(e):
            raise _disk_full(path.parent, e) from e
        raise ArchiveError(f"cannot write {path}: {e.strerror}", "check the archive path and permissions") from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class _FileReader(BlobReader):
    """Reads ``size`` bytes of a file from ``offset`` in 1 MiB chunks (a blob file or a tar member)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self.size = size
        self._f: BinaryIO | None = open(path, "rb")  # noqa: SIM115 - closed by close()
        if offset:
            self._f.seek(offset)

    def __iter__(self) -> Iterator[bytes]:
        left = self.size
        f = self._f
        if f is None:
            return
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise ArchiveError("a blob in the archive is truncated", "the archive is damaged")
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class _LayoutBase(Transport):
    """Reading logic shared by the directory and tar forms; storage access is abstract."""

    # -- storage (subclasses) -------------------------------------------------------------
    def _read_file(self, rel: str) -> bytes | None:
        raise NotImplementedError

    def _file_size(self, rel: str) -> int | None:
        raise NotImplementedError

    def _open_file(self, rel: str) -> BlobReader:
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _blob_rel(digest: str) -> str:
        _check_digest(digest)
        return "blobs/sha256/" + digest[len("sha256:") :]

    def _index(self) -> dict[str, Any]:
        raw = self._read_file(INDEX_FILE)
        if raw is None:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise ArchiveError(f"{self.name}: index.json is not valid JSON", "the archive is damaged") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
            raise ArchiveError(f"{self.name}: index.json has an unexpected shape", "the archive is damaged")
        doc.setdefault("manifests", [])
        return doc

    def refs(self) -> list[tuple[str, str, Descriptor]]:
        """Every ``(repo, tag, descriptor)`` recorded in ``index.json``, in file order."""
        out = []
        for entry in self._index()["manifests"]:
            name = (entry.get("annotations") or {}).get(REF_NAME)
            if not name:
                continue
            repo, tag = split_ref(name)
            if tag:
                out.append((repo, tag, Descriptor(entry["mediaType"], entry["digest"], int(entry["size"]))))
        return out

    def contents(self) -> dict[str, Any] | None:
        """The ``contents.json`` summary, or None when the archive has none."""
        raw = self._read_file(CONTENTS_FILE)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _read_blob(self, digest: str) -> bytes:
        raw = self._read_file(self._blob_rel(digest))
        if raw is None:
            raise ArchiveError(f"{self.name}: blob {digest} is missing", "the archive is incomplete; re-create it")
        if "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            raise ArchiveError(f"{self.name}: blob {digest} is corrupt (digest mismatch)", "re-create the archive")
        return raw

    # -- Transport --------------------------------------------------------------------------
    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        if _is_digest(reference):
            rel = self._blob_rel(reference)
            size = self._file_size(rel)
            if size is None:
                return None
            raw = self._read_file(rel)
            assert raw is not None
            return Descriptor(detect_media_type(raw), reference, size)
        for r, tag, desc in reversed(self.refs()):
            if r == repo and tag == reference:
                return desc
        return None

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        desc = self.resolve(repo, reference)
        if desc is None:
            raise ArchiveError(
                f"{self.name}: no manifest {repo}:{reference}"
                if not _is_digest(reference)
                else f"{self.name}: no manifest {reference} for {repo}",
                "list what the archive holds in its contents.json",
            )
        raw = self._read_blob(desc.digest)
        return Manifest(raw, desc.media_type)

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._file_size(self._blob_rel(digest)) is not None

    def blob_size(self, digest: str) -> int | None:
        return self._file_size(self._blob_rel(digest))

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        return self._open_file(self._blob_rel(digest))

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        return self.has_blob(repo, digest)

    def list_tags(self, repo: str) -> list[str]:
        return list(dict.fromkeys(tag for r, tag, _ in self.refs() if r == repo))

    def repositories(self) -> list[str]:
        return list(dict.fromkeys(r for r, _, _ in self.refs()))


class OciLayoutTransport(_LayoutBase):
    """Read/write transport over an OCI image layout directory (created when missing).

    ``fsync=False`` skips the fsyncs (scratch layouts such as the demo's; never for a user's archive).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, name: str | None = None, fsync: bool = True
    ) -> None:
        self.root = Path(path)
        self._fsync = fsync
        self.name = name or f"archive {self.root}"
        self._lock = threading.RLock()
        layout = self.root / LAYOUT_FILE
        if not layout.is_file():
            if not create:
                raise ArchiveError(
                    f"{self.root} is not an OCI image layout (no oci-layout file)",
                    "pass the directory or .tar written by `currents-wizard mirror --archive`",
                )
            if self.root.exists() and not self.root.is_dir():
                raise ArchiveError(f"{self.root} exists and is not a directory", "choose another --archive path")
            if self.root.is_dir() and any(p for p in self.root.iterdir() if not p.name.startswith(".")):
                raise ArchiveError(
                    f"{self.root} is not empty and is not an OCI image layout",
                    "choose an empty or new directory for --archive",
                )
            try:
                (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                if _is_space_error(e):
                    raise _disk_full(self.root, e) from e
                raise ArchiveError(f"cannot create {self.root}: {e.strerror}", "check the path") from e
            _atomic_write(self.root / INDEX_FILE, self._dump_index({"manifests": []}))
            _atomic_write(layout, b'{"imageLayoutVersion": "1.0.0"}')
        else:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    # -- storage ------------------------------------------------------------------------------
    def _read_file(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def _file_size(self, rel: str) -> int | None:
        try:
            return (self.root / rel).stat().st_size
        except FileNotFoundError:
            return None

    def _open_file(self, rel: str) -> BlobReader:
        path = self.root / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError as e:
            raise ArchiveError(f"{self.name}: {rel} is missing", "the archive is incomplete; re-create it") from e
        return _FileReader(path, 0, size)

    # -- writing ------------------------------------------------------------------------------
    def _write_blob(self, digest: str, size: int, chunks: Iterable[bytes], progress: Progress | None) -> bool:
        """Store a blob from ``chunks``; False when it was already there. Verifies size + sha256."""
        final = self.root / self._blob_rel(digest)
        if final.exists():
            return False
        tmp = final.with_name(f"{_TMP_PREFIX}{final.name[:16]}-{uuid.uuid4().hex}")
        h = hashlib.sha256()
        n = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    n += len(chunk)
                    if n > size:
                        raise ArchiveError(
                            f"blob {digest} is larger than its descriptor says ({size} bytes)",
                            "the source sent unexpected data; re-run the mirror",
                        )
                    f.write(chunk)
                    h.update(chunk)
                    if progress is not None:
                        progress(len(chunk))
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            if n != size:
                raise ArchiveError(
                    f"blob {digest} is truncated: {n} of {size} bytes", "the source stream ended early; re-run"
                )
            if "sha256:" + h.hexdigest() != digest:
                raise ArchiveError(f"blob {digest} failed verification (digest mismatch)", "re-run the mirror")
            os.replace(tmp, final)
            return True
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if _is_space_error(e):
                raise _disk_full(self.root, e) from e
            raise ArchiveError(f"cannot write blob {digest} to {self.root}: {e.strerror}", "check the path") from e
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        self._write_blob(digest, size, reader, progress)

    def put_blob_bytes(self, digest: str, data: bytes) -> bool:
        """Store a small blob held in memory; False when it already existed."""
        return self._write_blob(digest, len(data), [data], None)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        digest = manifest.digest
        if _is_digest(reference) and reference != digest:
            raise ArchiveError(f"manifest digest {digest} does not match {reference}", "the source is inconsistent")
        self._write_blob(digest, len(manifest.raw), [manifest.raw], None)
        if not _is_digest(reference):
            self._set_ref(repo, reference, manifest.descriptor)
        return digest

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    @staticmethod
    def _dump_index(doc: dict[str, Any]) -> bytes:
        out = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": doc.get("manifests", [])}
        if doc.get("annotations"):
            out["annotations"] = doc["annotations"]
        return json.dumps(out, indent=2).encode() + b"\n"

    def _set_ref(self, repo: str, tag: str, desc: Descriptor) -> None:
        name = f"{repo}:{tag}"
        with self._locked():
            if self._fsync:
                fsync_dir(self.root / "blobs" / "sha256")  # blobs durable before the index names them
            doc = self._index()
            entries = [e for e in doc["manifests"] if (e.get("annotations") or {}).get(REF_NAME) != name]
            entries.append(
                {
                    "mediaType": desc.media_type,
                    "digest": desc.digest,
                    "size": desc.size,
                    "annotations": {REF_NAME: name},
                }
            )
            doc["manifests"] = entries
            _atomic_write(self.root / INDEX_FILE, self._dump_index(doc), self._fsync)
            self._write_contents()
            if self._fsync:
                fsync_dir(self.root)

    def _write_contents(self) -> None:
        old = self.contents() or {}
        known = {(i.get("repo"), i.get("tag"), i.get("digest")): i for i in old.get("images", [])}
        images = []
        for repo, tag, desc in self.refs():
            item = known.get((repo, tag, desc.digest)) or self._describe(repo, tag, desc)
            images.append(item)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = {
            "format": CONTENTS_FORMAT,
            "created": old.get("created") or now,
            "updated": now,
            "services": sorted({i["service"] for i in images}),
            "tags": sorted({i["tag"] for i in images}),
            "images": images,
        }
        _atomic_write(self.root / CONTENTS_FILE, json.dumps(doc, indent=2).encode() + b"\n", self._fsync)

    def _describe(self, repo: str, tag: str, desc: Descriptor) -> dict[str, Any]:
        """One contents.json entry: what the image is and how many bytes it takes."""
        blobs: dict[str, int] = {}
        platforms: list[str] = []
        with contextlib.suppress(ArchiveError, KeyError, TypeError, ValueError):
            self._walk(desc.digest, desc.media_type, desc.size, blobs, platforms, top=True)
        return {
            "service": repo.rsplit("/", 1)[-1],
            "repo": repo,
            "tag": tag,
            "digest": desc.digest,
            "media_type": desc.media_type,
            "platforms": platforms,
            "size": sum(blobs.values()),
        }

    def _walk(
        self, digest: str, media_type: str, size: int, blobs: dict[str, int], platforms: list[str], top: bool
    ) -> None:
        blobs[digest] = size
        doc = json.loads(self._read_blob(digest))
        if media_type in INDEX_TYPES:
            for child in doc.get("manifests", []):
                p = child.get("platform") or {}
                plat = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
                if plat and plat != "unknown/unknown" and top:
                    platforms.append(plat)
                self._walk(child["digest"], child["mediaType"], int(child["size"]), blobs, platforms, False)
            return
        for d in [doc.get("config"), *doc.get("layers", [])]:
            if d and "digest" in d:
                blobs[d["digest"]] = int(d.get("size", 0))
        if top and media_type in (DOCKER_MANIFEST, OCI_MANIFEST) and doc.get("config"):
            with contextlib.suppress(ArchiveError, ValueError):
                cfg = json.loads(self._read_blob(doc["config"]["digest"]))
                plat = "/".join(x for x in (cfg.get("os"), cfg.get("architecture"), cfg.get("variant")) if x)
                if plat:
                    platforms.append(plat)

    def clean_temp_files(self) -> int:
        """Remove temp files left by a killed writer; returns how many were removed."""
        n = 0
        for d in (self.root, self.root / "blobs" / "sha256"):
            for p in d.glob(_TMP_PREFIX + "*"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
        return n


class OciTarTransport(_LayoutBase):
    """Read-only transport over an uncompressed tar of an OCI layout; members are read in place."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"archive {self.path}"
        self._members: dict[str, tuple[int, int]] = {}
        try:
            with open(self.path, "rb") as f:
                magic = f.read(2)
            if magic == b"\x1f\x8b":
                raise ArchiveError(f"{self.path} is gzip-compressed", "decompress it first (gunzip) and pass the .tar")
            with tarfile.open(self.path, "r:") as tf:
                for m in tf:
                    if m.isfile():
                        name_ = m.name[2:] if m.name.startswith("./") else m.name
                        self._members[name_.lstrip("/")] = (m.offset_data, m.size)
        except FileNotFoundError as e:
            raise ArchiveError(f"archive {self.path} does not exist", "check the --from-archive path") from e
        except tarfile.TarError as e:
            raise ArchiveError(f"{self.path} is not a readable tar file ({e})", "check the --from-archive path") from e
        if LAYOUT_FILE not in self._members or INDEX_FILE not in self._members:
            raise ArchiveError(
                f"{self.path} does not hold an OCI image layout (no oci-layout/index.json)",
                "pass a .tar written by `currents-wizard mirror --archive`",
            )

    def _read_file(self, rel: str) -> bytes | None:
        m = self._members.get(rel)
        if m is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(m[0])
            data = f.read(m[1])
        if len(data) != m[1]:
            raise ArchiveError(f"{self.path} is truncated", "the archive is damaged; copy it again")
        return data

    def _file_size(self, rel: str) -> int | None:
        m = self._members.get(rel)
        return None if m is None else m[1]

    def _open_file(self, rel: str) -> BlobReader:
        m = self._members.get(rel)
        if m is None:
            raise ArchiveError(f"{self.name}: {rel} is missing", "the archive is incomplete; re-create it")
        return _FileReader(self.path, m[0], m[1])

    def _read_only(self) -> ArchiveError:
        return ArchiveError(f"{self.name} is read-only", "mirror into a directory or a new .tar with --archive")

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        raise self._read_only()

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        raise self._read_only()


def pack_layout(layout_dir: str | os.PathLike[str], tar_path: str | os.PathLike[str]) -> Path:
    """Write ``layout_dir`` as one uncompressed tar at ``tar_path`` (temp file + fsync + rename).

    Member order: ``oci-layout``, ``index.json``, ``contents.json``, then blobs; deterministic headers.
    """
    src = Path(layout_dir)
    dst = Path(tar_path)
    tmp = dst.with_name(f"{_TMP_PREFIX}{dst.name}-{uuid.uuid4().hex}")
    names = [n for n in (LAYOUT_FILE, INDEX_FILE, CONTENTS_FILE) if (src / n).is_file()]
    blob_dir = src / "blobs" / "sha256"
    blobs = sorted(p.name for p in blob_dir.iterdir() if not p.name.startswith(".")) if blob_dir.is_dir() else []

    def add_dir(tf: tarfile.TarFile, name: str) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
        tf.addfile(ti)

    try:
        with open(tmp, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tf:
                for n in names:
                    _add_file(tf, src / n, n)
                add_dir(tf, "blobs")
                add_dir(tf, "blobs/sha256")
                for b in blobs:
                    _add_file(tf, blob_dir / b, f"blobs/sha256/{b}")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _is_space_error(e):
            raise _disk_full(dst.parent, e) from e
        raise ArchiveError(f"cannot write {dst}: {e.strerror}", "check the --archive path") from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dst


def _add_file(tf: tarfile.TarFile, path: Path, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = path.stat().st_size
    ti.mode, ti.mtime, ti.uid, ti.gid = 0o644, 0, 0, 0
    with open(path, "rb") as f:
        tf.addfile(ti, f)


def unpack_tar(tar_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Extract an OCI layout tar into a new directory ``dest`` (blobs first, each verified;
    ``index.json`` last; built under a temp name and renamed, so ``dest`` is never half-made)."""
    src = OciTarTransport(tar_path)
    out = Path(dest)
    work = out.with_name(f"{_TMP_PREFIX}{out.name}-{uuid.uuid4().hex}")
    try:
        target = OciLayoutTransport(work, create=True)
        for rel in src._members:
            name = rel.rsplit("/", 1)[-1]
            if rel.startswith("blobs/sha256/") and _DIGEST_RE.match("sha256:" + name):
                with src._open_file(rel) as r:
                    target._write_blob("sha256:" + name, r.size, r, None)
        for rel in (LAYOUT_FILE, CONTENTS_FILE, INDEX_FILE):
            data = src._read_file(rel)
            if data is not None:
                _atomic_write(work / rel, data)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


class OciArchive(Transport):
    """A writable single-file archive (``--archive PATH.tar``).

    Reads come from the existing tar in place (so a no-op re-run costs nothing); the first write
    stages the layout in ``PATH.partial/`` (unpacking an existing tar into it, so a re-run adds to
    it and skips what it holds). :meth:`commit` — also called by :meth:`close` — packs the staging
    layout into ``PATH`` atomically and removes it. After a disk-full error the staging directory is
    kept instead, so the next run resumes from it. ``index.json`` only ever names complete images,
    so the packed tar is consistent even after a failed run.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"archive {self.path}"
        self.staging = self.path.with_name(self.path.name + ".partial")
        self._lock = threading.Lock()
        self._broken = False
        self._layout: OciLayoutTransport | None = None
        self._reader: _LayoutBase
        if (self.staging / LAYOUT_FILE).is_file():  # an earlier run stopped here: resume from it
            self._layout = OciLayoutTransport(self.staging, name=self.name)
            self._layout.clean_temp_files()
            self._reader, self._dirty = self._layout, True
        elif self.path.is_file():
            self._reader, self._dirty = OciTarTransport(self.path, name=self.name), False
        else:
            if self.path.parent and not self.path.parent.is_dir():
                raise ArchiveError(f"folder {self.path.parent} does not exist", "create it or choose another path")
            self._layout = OciLayoutTransport(self.staging, name=self.name)
            self._reader, self._dirty = self._layout, True

    def _writable(self) -> OciLayoutTransport:
        with self._lock:
            if self._layout is None:
                unpack_tar(self.path, self.staging)
                self._layout = OciLayoutTransport(self.staging, name=self.name)
                self._reader = self._layout
            self._dirty = True
            return self._layout

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ArchiveError as e:
            if e.fatal:
                self._broken = True
            raise

    # -- reads: from the tar until something is written -------------------------------------------
    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        return self._reader.resolve(repo, reference)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        return self._reader.get_manifest(repo, reference)

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._reader.has_blob(repo, digest)

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        return self._reader.open_blob(repo, digest)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        return self._reader.mount_blob(repo, digest, from_repo)

    def list_tags(self, repo: str) -> list[str]:
        return self._reader.list_tags(repo)

    def refs(self) -> list[tuple[str, str, Descriptor]]:
        return self._reader.refs()

    def contents(self) -> dict[str, Any] | None:
        return self._reader.contents()

    # -- writes -------------------------------------------------------------------------------
    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        if self._reader.has_blob(repo, digest):
            return
        self._guard(self._writable().put_blob, repo, digest, size, reader, progress)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        return self._guard(self._writable().put_manifest, repo, reference, manifest)  # type: ignore[no-any-return]

    def commit(self) -> Path:
        """Pack the staged layout into the tar (atomic) and remove the staging folder."""
        with self._lock:
            if self._layout is not None and self._dirty:
                self._guard(pack_layout, self.staging, self.path)
                shutil.rmtree(self.staging, ignore_errors=True)
                self._layout = None
                self._reader = OciTarTransport(self.path, name=self.name)
                self._dirty = False
            return self.path

    def close(self) -> None:
        """Commit — unless a disk-full error happened or no image is complete yet (then the staging
        folder is kept for a re-run, or removed when it holds nothing)."""
        if self._broken:
            return
        layout = self._layout
        if layout is not None and self._dirty and not self.path.is_file() and not layout.refs():
            blobs = layout.root / "blobs" / "sha256"
            if not any(p for p in blobs.iterdir() if not p.name.startswith(".")):
                with self._lock:
                    shutil.rmtree(self.staging, ignore_errors=True)
                    self._layout, self._dirty = None, False
            return
        self.commit()


def open_archive(path: str | os.PathLike[str], create: bool = False) -> Transport:
    """The transport for an archive path: ``*.tar`` → a single file, anything else → a layout folder.

    ``create=False`` (``--from-archive``): read an existing archive (a tar is read in place).
    ``create=True`` (``--archive``): a writable archive, created when missing; for a tar,
    ``close()`` packs it.
    """
    p = Path(path)
    if not create:
        if p.is_file():
            return OciTarTransport(p)
        if p.is_dir():
            return OciLayoutTransport(p, create=False)
        raise ArchiveError(f"archive {p} does not exist", "check the --from-archive path")
    if is_tar_path(p) or p.is_file():
        return OciArchive(p)
    layout = OciLayoutTransport(p, create=True)
    layout.clean_temp_files()
    return layout


def open_archive_source(path: str | os.PathLike[str]) -> Transport:
    """Same as ``open_archive(path, create=False)``."""
    return open_archive(path, create=False)


__all__ = [
    "CONTENTS_FILE",
    "REF_NAME",
    "ArchiveError",
    "OciArchive",
    "OciLayoutTransport",
    "OciTarTransport",
    "detect_media_type",
    "is_tar_path",
    "open_archive",
    "open_archive_source",
    "pack_layout",
    "split_ref",
    "unpack_tar",
]
