"""One image interface, several places images live (the go-containerregistry idea).

A transport addresses content by ``(repo, reference)`` where ``repo`` is a repository path
inside that transport (``currents/on-prem/api``) and a reference is a tag or a ``sha256:`` digest.
Manifests are always handled as **raw bytes** so digests survive a copy unchanged.

Implementations: :mod:`.registry` (OCI distribution over HTTP), :mod:`.archive` (OCI image
layout directory or ``.tar``).  The Docker engine path is a separate mirror strategy because
the engine cannot hand out raw manifests or blobs.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from wizard.core.errors import WizardError

# Manifest media types we accept and copy.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES
ACCEPT_MANIFESTS = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

Progress = Callable[[int], None]
"""Called with the number of *new* bytes moved since the last call."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as stored: ``digest`` is ``sha256(raw)``."""

    raw: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


class BlobReader(ABC):
    """A stream of one blob's bytes. Iterate for chunks; always ``close()`` (or use ``with``)."""

    size: int

    @abstractmethod
    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the underlying connection/file."""

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Transport(ABC):
    """Where images live. Thread-safe: the mirror engine calls it from several threads."""

    #: Human name for messages, e.g. ``"registry 127.0.0.1:5001"`` or ``"archive ./currents.tar"``.
    name: str = "transport"

    @abstractmethod
    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        """Descriptor of the manifest at ``reference`` (cheap: HEAD), or None when it does not exist."""

    @abstractmethod
    def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The raw manifest; raise RegistryError when missing. Implementations verify the digest."""

    def find_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest at ``reference``, or None when it does not exist.

        The planner reads each source image this way. This default resolves, then reads by digest
        (two round trips); a transport that can do it in one overrides it.
        """
        desc = self.resolve(repo, reference)
        if desc is None:
            return None
        manifest = self.get_manifest(repo, desc.digest)
        if manifest.digest != desc.digest:
            raise WizardError(f"{repo}:{reference}: manifest digest changed while reading", "the tag moved; run again")
        return manifest

    @abstractmethod
    def has_blob(self, repo: str, digest: str) -> bool:
        """True when the blob is already stored for ``repo``."""

    @abstractmethod
    def open_blob(self, repo: str, digest: str) -> BlobReader:
        """Stream a blob's bytes."""

    @abstractmethod
    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        """Store a blob, verifying ``digest`` and ``size`` while streaming."""

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Make a blob that ``from_repo`` already has available in ``repo`` without moving bytes.

        Returns False when the transport cannot (the caller then copies the bytes).
        """
        return False

    @abstractmethod
    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        """Store a manifest under ``reference`` (tag or digest); return the digest the store reports."""

    def list_tags(self, repo: str) -> list[str]:
        """Tags of ``repo`` (optional)."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections/files."""
