"""Deterministic test images and a raw Registry-API-v2 pusher: the test oracle's side.

Independent of the product's registry client on purpose.  Images are built from seeded random
data (the same seed gives the same digests on every run) in the realistic shape of TESTBED §3:

======== ============================================= =======================
layer    shared by                                     share of ``image_size``
======== ============================================= =======================
base     all six services                              40 %
runtime  {api, director, webhooks}, {change-streams,   30 %
         scheduler, writer}
deps     one service                                   20 %
app      one service **and one tag**                   10 %
======== ============================================= =======================

So a second tag changes only each image's ``app`` layer (and its config); every other blob is
shared with the first tag.  Layers are tars compressed with gzip level 0 (valid gzip, fast).

Formats: Docker v2 manifests, OCI manifests, a multi-arch OCI index or Docker manifest list
(``linux/amd64`` + ``linux/arm64/v8``), and optional buildx-style attestation manifests
(``unknown/unknown``, OCI index only).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import ssl
import tarfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urljoin

import httpx

SERVICES: tuple[str, ...] = ("api", "director", "change-streams", "scheduler", "writer", "webhooks")
RUNTIME_GROUP: dict[str, str] = {
    "api": "node-web",
    "director": "node-web",
    "webhooks": "node-web",
    "change-streams": "node-worker",
    "scheduler": "node-worker",
    "writer": "node-worker",
}
LAYER_SHARES: tuple[tuple[str, float], ...] = (("base", 0.4), ("runtime", 0.3), ("deps", 0.2), ("app", 0.1))
PLATFORMS: tuple[tuple[str, str, str], ...] = (("linux", "amd64", ""), ("linux", "arm64", "v8"))

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
CREATED = "2026-01-01T00:00:00Z"
DEFAULT_IMAGE_SIZE = 256 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj: object) -> bytes:
    """Stable JSON bytes (the digest of a manifest is the sha256 of exactly these bytes)."""
    return json.dumps(obj, indent=3, sort_keys=False).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @cached_property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest, **extra}


@dataclass(frozen=True)
class Image:
    """A manifest or an index, with the blobs (manifest) or child images (index) it references."""

    service: str
    tag: str
    media_type: str
    raw: bytes = field(repr=False)
    blobs: tuple[Blob, ...] = ()  # config first, then layers
    children: tuple[Image, ...] = ()
    platform: dict[str, str] | None = None
    kind: str = "image"  # image | attestation | index
    layer_kinds: tuple[str, ...] = ()  # base/runtime/deps/app, parallel to blobs[1:]

    @cached_property
    def digest(self) -> str:
        return sha256(self.raw)

    @property
    def is_index(self) -> bool:
        return bool(self.children)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": len(self.raw), "digest": self.digest, **extra}

    def walk(self) -> Iterator[Image]:
        """Children first, then self (the order a registry wants them pushed)."""
        for child in self.children:
            yield from child.walk()
        yield self

    def all_blobs(self) -> Iterator[Blob]:
        seen: set[str] = set()
        for img in self.walk():
            for b in img.blobs:
                if b.digest not in seen:
                    seen.add(b.digest)
                    yield b

    @property
    def layers(self) -> tuple[Blob, ...]:
        return self.blobs[1:]

    def layer(self, kind: str) -> Blob:
        """The ``base``/``runtime``/``deps``/``app`` layer of a single-arch image."""
        return self.layers[self.layer_kinds.index(kind)]


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------

_LAYER_CACHE: dict[tuple[str, int], tuple[bytes, str]] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Drop cached layer bytes (a benchmark generating ~600 MB may want the memory back)."""
    with _CACHE_LOCK:
        _LAYER_CACHE.clear()


def make_layer(seed: str, size: int) -> tuple[bytes, str]:
    """``(gzip bytes, diff_id)`` of a tar holding ~``size`` bytes of seeded random files."""
    key = (seed, size)
    with _CACHE_LOCK:
        hit = _LAYER_CACHE.get(key)
    if hit is not None:
        return hit
    rnd = random.Random(seed)
    nfiles = 1 if size < 64 * 1024 else 4
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirname = "opt/" + seed.replace(":", "_").replace("/", "_")
        d = tarfile.TarInfo(dirname)
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(d)
        remaining = max(size, 1)
        for i in range(nfiles):
            n = remaining if i == nfiles - 1 else remaining // (nfiles - i)
            remaining -= n
            info = tarfile.TarInfo(f"{dirname}/data-{i}.bin")
            info.size, info.mode, info.mtime = n, 0o644, 0
            tar.addfile(info, io.BytesIO(rnd.randbytes(n)))
    tar_bytes = buf.getvalue()
    result = (gzip.compress(tar_bytes, compresslevel=0, mtime=0), sha256(tar_bytes))
    with _CACHE_LOCK:
        _LAYER_CACHE[key] = result
    return result


def _layer_seed(kind: str, service: str, tag: str, arch: str, seed: str) -> str:
    owner = {"base": "all", "runtime": RUNTIME_GROUP.get(service, service), "deps": service}.get(
        kind, f"{service}@{tag}"
    )
    return f"{seed}:{kind}:{owner}:{arch}"


def build_single(
    service: str,
    tag: str,
    *,
    fmt: str = "docker",
    platform: tuple[str, str, str] = PLATFORMS[0],
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: str = "currents",
) -> Image:
    """One single-platform image; ``fmt`` is ``docker`` (v2 schema 2) or ``oci``."""
    os_, arch, variant = platform
    layer_type = DOCKER_LAYER if fmt == "docker" else OCI_LAYER
    layers, diff_ids, kinds = [], [], []
    for kind, share in LAYER_SHARES:
        data, diff_id = make_layer(_layer_seed(kind, service, tag, arch + variant, seed), int(image_size * share))
        layers.append(Blob(layer_type, data))
        diff_ids.append(diff_id)
        kinds.append(kind)
    config: dict[str, object] = {
        "architecture": arch,
        "os": os_,
        **({"variant": variant} if variant else {}),
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/opt/currents/bin/" + service],
            "Labels": {"com.currents.service": service, "com.currents.tag": tag},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"testbed {k} layer"} for k in kinds],
    }
    config_blob = Blob(DOCKER_CONFIG if fmt == "docker" else OCI_CONFIG, canonical(config))
    media_type = DOCKER_MANIFEST if fmt == "docker" else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    return Image(
        service,
        tag,
        media_type,
        canonical(manifest),
        blobs=(config_blob, *layers),
        platform={"os": os_, "architecture": arch, **({"variant": variant} if variant else {})},
        layer_kinds=tuple(kinds),
    )


def build_attestation(subject: Image, seed: str = "currents") -> Image:
    """A buildx-style provenance/SBOM attestation manifest for ``subject`` (platform unknown/unknown)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [
            {
                "name": f"pkg:docker/{subject.service}@{subject.tag}",
                "digest": {"sha256": subject.digest.split(":", 1)[1]},
            }
        ],
        "predicate": {"spdxVersion": "SPDX-2.3", "name": f"{seed}-{subject.service}"},
    }
    layer = Blob(IN_TOTO, canonical(statement))
    config = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    }
    config_blob = Blob(OCI_CONFIG, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor(annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"})],
    }
    return Image(
        subject.service,
        subject.tag,
        OCI_MANIFEST,
        canonical(manifest),
        blobs=(config_blob, layer),
        platform={"os": "unknown", "architecture": "unknown"},
        kind="attestation",
        layer_kinds=("attestation",),
    )


def build_index(
    service: str,
    tag: str,
    *,
    fmt: str = "oci",
    attestations: bool = True,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: str = "currents",
    platforms: tuple[tuple[str, str, str], ...] = PLATFORMS,
) -> Image:
    """A multi-arch OCI index (``fmt="oci"``, optionally with attestations) or Docker manifest list."""
    if fmt == "docker" and attestations:
        raise ValueError("attestation manifests need an OCI index (fmt='oci')")
    children: list[Image] = [
        build_single(service, tag, fmt=fmt, platform=p, image_size=image_size, seed=seed) for p in platforms
    ]
    entries = [c.descriptor(platform=c.platform) for c in children]
    if attestations:
        for img in list(children):
            att = build_attestation(img, seed=seed)
            children.append(att)
            entries.append(
                att.descriptor(
                    annotations={
                        "vnd.docker.reference.digest": img.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                    platform={"architecture": "unknown", "os": "unknown"},
                )
            )
    media_type = OCI_INDEX if fmt == "oci" else DOCKER_MANIFEST_LIST
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Image(service, tag, media_type, canonical(index), children=tuple(children), kind="index")


def build_images(
    tag: str,
    services: Iterable[str] = SERVICES,
    *,
    multiarch_services: Iterable[str] = ("api",),
    attestations: bool = True,
    oci_services: Iterable[str] = ("webhooks",),
    index_format: str = "oci",
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: str = "currents",
) -> dict[str, Image]:
    """The standard set: docker v2 manifests, except ``oci_services`` (OCI manifests) and
    ``multiarch_services`` (an index of amd64 + arm64/v8, plus attestations when ``attestations``
    and ``index_format == "oci"``)."""
    multi, oci = set(multiarch_services), set(oci_services)
    out: dict[str, Image] = {}
    for svc in services:
        if svc in multi:
            out[svc] = build_index(
                svc,
                tag,
                fmt=index_format,
                attestations=attestations and index_format == "oci",
                image_size=image_size,
                seed=seed,
            )
        else:
            out[svc] = build_single(svc, tag, fmt="oci" if svc in oci else "docker", image_size=image_size, seed=seed)
    return out


def unique_blob_sizes(images: Iterable[Image]) -> dict[str, int]:
    """Every distinct config/layer blob of ``images`` and its size (the bytes a cold mirror moves)."""
    return {b.digest: b.size for img in images for b in img.all_blobs()}


def unique_bytes(images: Iterable[Image]) -> int:
    """Total size of the distinct blobs and manifests of ``images``."""
    seen: dict[str, int] = {}
    for img in images:
        for sub in img.walk():
            seen[sub.digest] = len(sub.raw)
            for b in sub.blobs:
                seen[b.digest] = b.size
    return sum(seen.values())


# --------------------------------------------------------------------------------------------
# pushing over the raw Registry HTTP API v2
# --------------------------------------------------------------------------------------------


class PushError(RuntimeError):
    pass


class Pusher:
    """Pushes :class:`Image` objects: HEAD blob → mount from a repo that has it → POST+PUT upload."""

    def __init__(
        self,
        registry_url: str,
        *,
        auth: tuple[str, str] | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        if "://" not in registry_url:
            registry_url = "http://" + registry_url
        self.base = registry_url.rstrip("/")
        # Without a CA file, HTTPS is not verified: these are throwaway loopback registries.
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else False
        self.client = httpx.Client(auth=auth, verify=verify, timeout=timeout, trust_env=False)
        self.known: dict[str, str] = {}  # blob digest -> a repo that has it

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, resp: httpx.Response, *ok: int) -> httpx.Response:
        if resp.status_code not in ok:
            raise PushError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:300]}")
        return resp

    def push_blob(self, repo: str, blob: Blob) -> str:
        """Push one blob; returns ``exists``, ``mounted`` or ``uploaded``."""
        url = f"{self.base}/v2/{repo}/blobs/{blob.digest}"
        if self.known.get(blob.digest) == repo or self.client.head(url).status_code == 200:
            self.known[blob.digest] = repo
            return "exists"
        upload = f"{self.base}/v2/{repo}/blobs/uploads/"
        from_repo = self.known.get(blob.digest)
        if from_repo:
            r = self._check(self.client.post(upload, params={"mount": blob.digest, "from": from_repo}), 201, 202)
            if r.status_code == 201:
                self.known[blob.digest] = repo
                return "mounted"
        else:
            r = self._check(self.client.post(upload), 202)
        location = urljoin(self.base + "/", r.headers["Location"])
        sep = "&" if "?" in location else "?"
        self._check(
            self.client.put(
                f"{location}{sep}digest={blob.digest}",
                content=blob.data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            201,
        )
        self.known[blob.digest] = repo
        return "uploaded"

    def push_manifest(self, repo: str, reference: str, img: Image) -> str:
        r = self._check(
            self.client.put(
                f"{self.base}/v2/{repo}/manifests/{reference}",
                content=img.raw,
                headers={"Content-Type": img.media_type},
            ),
            201,
        )
        got = r.headers.get("Docker-Content-Digest", "")
        if got and got != img.digest:
            raise PushError(f"{repo}:{reference}: registry says {got}, expected {img.digest}")
        return img.digest

    def push_image(self, repo: str, tag: str, image: Image) -> str:
        """Blobs, then child manifests by digest, then the top manifest under ``tag``."""
        for sub in image.walk():
            for blob in sub.blobs:
                self.push_blob(repo, blob)
            if sub is not image:
                self.push_manifest(repo, sub.digest, sub)
        return self.push_manifest(repo, tag, image)


def push_images(
    registry_url: str,
    prefix: str,
    tag: str,
    services: Iterable[str] = SERVICES,
    auth: tuple[str, str] | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    multiarch_services: Iterable[str] = ("api",),
    *,
    attestations: bool = True,
    oci_services: Iterable[str] = ("webhooks",),
    index_format: str = "oci",
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: str = "currents",
    images: dict[str, Image] | None = None,
) -> dict[str, str]:
    """Build (or take ``images``) and push ``<prefix>/<service>:<tag>``; returns ``{service: digest}``."""
    if images is None:
        images = build_images(
            tag,
            services,
            multiarch_services=multiarch_services,
            attestations=attestations,
            oci_services=oci_services,
            index_format=index_format,
            image_size=image_size,
            seed=seed,
        )
    prefix = prefix.strip("/")
    out: dict[str, str] = {}
    with Pusher(registry_url, auth=auth, ca_file=ca_file) as pusher:
        for svc, img in images.items():
            repo = f"{prefix}/{svc}" if prefix else svc
            out[svc] = pusher.push_image(repo, tag, img)
    return out


# --------------------------------------------------------------------------------------------
# OCI image layout
# --------------------------------------------------------------------------------------------


def write_oci_layout(
    directory: str | os.PathLike[str],
    images: dict[str, Image] | Iterable[Image],
    ref_name: str = "{service}:{tag}",
) -> Path:
    """Write ``images`` as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``).

    Each top-level entry is annotated ``org.opencontainers.image.ref.name`` = ``ref_name``
    formatted with ``service`` and ``tag``.  Adds to an existing layout's index.
    """
    root = Path(directory)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = root / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    items = images.values() if isinstance(images, dict) else images

    def put(digest: str, data: bytes) -> None:
        path = blobs / digest.split(":", 1)[1]
        if not path.exists():
            path.write_bytes(data)

    for img in items:
        for sub in img.walk():
            for b in sub.blobs:
                put(b.digest, b.data)
            put(sub.digest, sub.raw)
        name = ref_name.format(service=img.service, tag=img.tag)
        index["manifests"] = [
            m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name
        ]
        index["manifests"].append(img.descriptor(annotations={"org.opencontainers.image.ref.name": name}))
    index_path.write_text(json.dumps(index, indent=2))
    return root
