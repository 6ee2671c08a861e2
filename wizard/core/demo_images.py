"""Small, deterministic "vendor" images for the offline demo, written into an OCI image layout.

Shape (like the real images, see TESTBED §3): every image has four layers — ``base`` (40 %, shared
by all six services), ``runtime`` (30 %, shared by {api, director, webhooks} and by
{change-streams, scheduler, writer}), ``deps`` (20 %, per service) and ``app`` (10 %, per service
*and tag*). So the second tag changes exactly one layer (and the config) per service. ``api`` is a
multi-arch OCI index (``linux/amd64`` + ``linux/arm64/v8``) with a buildx-style attestation.
All media types are OCI, so ``skopeo inspect oci:DIR:currents/on-prem/api:TAG`` reads the layout.

Seeded data: the same arguments always give the same digests. Pure Python, no network;
~20 MB takes well under a second.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from typing import Any

from wizard.core.settings import SERVICES, SOURCE_PREFIX
from wizard.core.transports.archive import OciLayoutTransport
from wizard.core.transports.base import OCI_INDEX, OCI_MANIFEST, Manifest

DEMO_TAGS: tuple[str, ...] = ("2026-01-26-001", "2026-02-10-001")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
CREATED = "2026-01-01T00:00:00Z"
RUNTIME_GROUP = {
    "api": "web",
    "director": "web",
    "webhooks": "web",
    "change-streams": "worker",
    "scheduler": "worker",
    "writer": "worker",
}
SHARES = (("base", 0.4), ("runtime", 0.3), ("deps", 0.2), ("app", 0.1))
MULTIARCH = ("api",)
PLATFORMS = (("linux", "amd64", ""), ("linux", "arm64", "v8"))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode()


def _layer(seed: str, size: int) -> tuple[bytes, str]:
    """(gzip'd tar, diff_id) of one file with ``size`` seeded random bytes (gzip level 0: fast, valid)."""
    data = random.Random(seed).randbytes(max(size, 1))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("opt/currents/" + seed.replace(":", "-").replace("/", "-") + ".bin")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=0, mtime=0), _digest(raw)


class _Writer:
    def __init__(self, layout: OciLayoutTransport) -> None:
        self.layout = layout
        self.sizes: dict[str, int] = {}
        self.cache: dict[tuple[str, int], tuple[bytes, str]] = {}

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        d = _digest(data)
        if d not in self.sizes:
            self.layout.put_blob_bytes(d, data)
            self.sizes[d] = len(data)
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def layer(self, seed: str, size: int) -> tuple[dict[str, Any], str]:
        key = (seed, size)
        if key not in self.cache:
            self.cache[key] = _layer(seed, size)
        data, diff_id = self.cache[key]
        return self.blob(data, OCI_LAYER), diff_id

    def manifest(self, doc: dict[str, Any], media_type: str) -> dict[str, Any]:
        return self.blob(_json(doc), media_type)


def _image(w: _Writer, service: str, tag: str, platform: tuple[str, str, str], size: int) -> dict[str, Any]:
    os_, arch, variant = platform
    group = RUNTIME_GROUP.get(service, service)
    owners = {"base": "all", "runtime": group, "deps": service, "app": f"{service}@{tag}"}
    layers, diff_ids = [], []
    for kind, share in SHARES:
        desc, diff_id = w.layer(f"demo:{kind}:{owners[kind]}:{arch}{variant}", int(size * share))
        layers.append(desc)
        diff_ids.append(diff_id)
    config = {
        "created": CREATED,
        "architecture": arch,
        "os": os_,
        **({"variant": variant} if variant else {}),
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_ENV=production"],
            "Cmd": ["node", f"/opt/currents/{service}/index.js"],
            "Labels": {"com.currents.service": service, "com.currents.version": tag},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"demo {k} layer"} for k, _ in SHARES],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": w.blob(_json(config), OCI_CONFIG),
        "layers": layers,
    }
    return w.manifest(manifest, OCI_MANIFEST)


def _attestation(w: _Writer, subject: dict[str, Any], service: str, tag: str) -> dict[str, Any]:
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": f"pkg:docker/currents/{service}@{tag}", "digest": {"sha256": subject["digest"][7:]}}],
        "predicate": {"builder": {"id": "currents-wizard-demo"}},
    }
    layer = w.blob(_json(statement), IN_TOTO)
    layer["annotations"] = {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
    config = {"architecture": "unknown", "os": "unknown", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": w.blob(_json(config), OCI_CONFIG),
        "layers": [layer],
    }
    return w.manifest(manifest, OCI_MANIFEST)


def make_demo_vendor(
    layout_dir: str | os.PathLike[str],
    tags: tuple[str, ...] = DEMO_TAGS,
    size_mb: float = 20,
    prefix: str = SOURCE_PREFIX,
    services: tuple[str, ...] = SERVICES,
) -> dict[str, Any]:
    """Write ``<prefix>/<service>:<tag>`` for every service and tag into the OCI layout at ``layout_dir``.

    ``size_mb`` is roughly the total unique size of everything written. Returns
    ``{"layout", "prefix", "tags", "services", "images": {tag: {service: digest}}, "bytes"}``.
    """
    layout = OciLayoutTransport(layout_dir, create=True, name=f"demo vendor {layout_dir}", fsync=False)
    # unique bytes ≈ S·(0.4 + 0.3·groups + 0.2·n + 0.1·n·tags) + multi-arch extras (≈ S·(0.9 + 0.1·tags) each)
    n = len(services)
    groups = len({RUNTIME_GROUP.get(s, s) for s in services})
    multi = len([s for s in services if s in MULTIARCH])
    units = 0.4 + 0.3 * groups + 0.2 * n + 0.1 * n * len(tags) + multi * (0.9 + 0.1 * len(tags))
    size = max(4096, int(size_mb * 1024 * 1024 / units))
    w = _Writer(layout)
    images: dict[str, dict[str, str]] = {}
    for tag in tags:
        images[tag] = {}
        for svc in services:
            repo = f"{prefix}/{svc}" if prefix else svc
            if svc in MULTIARCH:
                children = []
                for p in PLATFORMS:
                    d = _image(w, svc, tag, p, size)
                    d["platform"] = {"architecture": p[1], "os": p[0], **({"variant": p[2]} if p[2] else {})}
                    children.append(d)
                att = _attestation(w, children[0], svc, tag)
                att["annotations"] = {
                    "vnd.docker.reference.digest": children[0]["digest"],
                    "vnd.docker.reference.type": "attestation-manifest",
                }
                att["platform"] = {"architecture": "unknown", "os": "unknown"}
                raw = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*children, att]})
                top = Manifest(raw, OCI_INDEX)
            else:
                d = _image(w, svc, tag, PLATFORMS[0], size)
                top = Manifest(layout._read_blob(d["digest"]), OCI_MANIFEST)
            images[tag][svc] = layout.put_manifest(repo, tag, top)
            w.sizes[top.digest] = len(top.raw)
    return {
        "layout": str(layout.root),
        "prefix": prefix,
        "tags": list(tags),
        "services": list(services),
        "images": images,
        "bytes": sum(w.sizes.values()),
    }
