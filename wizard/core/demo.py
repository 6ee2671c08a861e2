"""Offline demo mode: the real step model, state store, .env writer and copy engine, with the AWS
side simulated in-process and images generated locally.

Nothing here touches the network.  "Registries" are OCI image layouts in a scratch folder:
``<root>/vendor`` holds Currents' images (generated), ``<root>/registries/<host>`` holds what the
customer's registry receives.  Pacing makes the flow look like a real run.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

from wizard.core.backend import Identity, ProbeResult, RoleOutcome
from wizard.core.credentials import Credential
from wizard.core.settings import Settings, Target
from wizard.core.transports.base import BlobReader, Descriptor, Manifest, Progress, Transport

DEMO_ACCOUNT = "111122223333"
DEMO_USER_ARN = f"arn:aws:iam::{DEMO_ACCOUNT}:user/demo-operator"
DEMO_ROLE_NAME = "CurrentsEcrPull"
DEMO_TARGET = "registry.example.com/currents"
DEMO_TAGS = ("2026-01-26-001", "2026-02-10-001")


@dataclass
class DemoVendorAccess:
    """Simulated assume-role + ECR token (a fixed, obviously fake password)."""

    registry: str
    assumed_arn: str
    sts_expires_at: datetime | None = None
    token_expires_at: datetime | None = None
    refreshes: int = field(default=0)

    def get(self) -> Credential | None:
        return Credential("AWS", "demo-token", self.token_expires_at)

    def refresh(self) -> Credential | None:
        self.refreshes += 1
        self.token_expires_at = datetime.now(timezone.utc) + timedelta(hours=12)
        return self.get()


class _PacedReader(BlobReader):
    def __init__(self, inner: BlobReader, rate: float) -> None:
        self.inner, self.size, self.rate = inner, inner.size, rate

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if self.rate > 0:
                time.sleep(len(chunk) / self.rate)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class PacedTransport(Transport):
    """Wraps a transport and slows blob reads to ``rate`` bytes/s (per stream) for the demo."""

    def __init__(self, inner: Transport, rate: float, latency: float = 0.05) -> None:
        self.inner, self.rate, self.latency = inner, rate, latency
        self.name = inner.name

    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        time.sleep(self.latency)
        return self.inner.resolve(repo, reference)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        time.sleep(self.latency)
        return self.inner.get_manifest(repo, reference)

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.inner.has_blob(repo, digest)

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        return _PacedReader(self.inner.open_blob(repo, digest), self.rate)

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        self.inner.put_blob(repo, digest, size, reader, progress)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        return self.inner.mount_blob(repo, digest, from_repo)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        return self.inner.put_manifest(repo, reference, manifest)

    def list_tags(self, repo: str) -> list[str]:
        return self.inner.list_tags(repo)

    def close(self) -> None:
        self.inner.close()


class DemoBackend:
    """A :class:`wizard.core.backend.Backend` with no AWS account and no network."""

    demo = True
    #: answers pre-filled when the state has none (the presenter can just press Next)
    default_inputs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"role_arn": f"arn:aws:iam::{DEMO_ACCOUNT}:role/{DEMO_ROLE_NAME}", "target": DEMO_TARGET}
    )

    def __init__(self, settings: Settings, root: Path, pace: float = 1.0, size_mb: int = 24) -> None:
        self.settings = settings
        self.root = Path(root)
        self.pace = pace
        self.size_mb = size_mb
        self._vendor_ready = threading.Lock()
        self.roles: dict[str, str] = {}

    def _sleep(self, seconds: float) -> None:
        if self.pace > 0:
            time.sleep(seconds * self.pace)

    def _vendor_dir(self) -> Path:
        vendor = self.root / "vendor"
        with self._vendor_ready:
            if not (vendor / "index.json").exists():
                from wizard.core.demo_images import make_demo_vendor

                make_demo_vendor(vendor, tags=DEMO_TAGS, size_mb=self.size_mb, prefix=self.settings.source_prefix)
        return vendor

    # -- Backend -----------------------------------------------------------------------------
    def identity(self) -> Identity:
        self._sleep(0.4)
        return Identity(account=DEMO_ACCOUNT, arn=DEMO_USER_ARN, user_id="AIDADEMODEMODEMO")

    def ensure_role(self, name: str, trust_policy: dict, policy: dict, update: bool = False) -> RoleOutcome:
        self._sleep(0.8)
        arn = f"arn:aws:iam::{DEMO_ACCOUNT}:role/{name}"
        status = "unchanged" if name in self.roles else "created"
        self.roles[name] = arn
        return RoleOutcome(status=status, arn=arn, message="demo: no AWS call was made")

    def login_vendor(self, role_arn: str) -> DemoVendorAccess:
        self._sleep(0.8)
        role_name = role_arn.rsplit("/", 1)[-1]
        now = datetime.now(timezone.utc)
        return DemoVendorAccess(
            registry=self.settings.vendor_registry,
            assumed_arn=f"arn:aws:sts::{DEMO_ACCOUNT}:assumed-role/{role_name}/currents-wizard-demo",
            sts_expires_at=now + timedelta(hours=1),
            token_expires_at=now + timedelta(hours=12),
        )

    def probe(self, access: object, tag: str) -> ProbeResult:
        self._sleep(0.5)
        source = self.source(access)
        try:
            found = source.resolve(self.settings.source_repo("api"), tag)
        finally:
            source.close()
        if found is None:
            return ProbeResult(
                "tag_missing", f"tag {tag!r} does not exist in the demo registry", f"try {DEMO_TAGS[-1]}", 404
            )
        return ProbeResult("granted", "Currents has granted your role pull access (demo)", status_code=200)

    def source(self, access: object) -> Transport:
        from wizard.core.transports.archive import OciLayoutTransport

        inner = OciLayoutTransport(self._vendor_dir(), name=f"demo {self.settings.vendor_registry}")
        rate = 6 * 1024 * 1024 / self.pace if self.pace > 0 else 0
        return PacedTransport(inner, rate, latency=0.05 * self.pace)

    def target(self, target: Target, credential: Credential | None) -> Transport:
        from wizard.core.transports.archive import OciLayoutTransport

        folder = self.root / "registries" / target.host.replace(":", "_")
        return OciLayoutTransport(folder, create=True, name=f"demo {target.host}", fsync=False)

    def prepare_target(self, target: Target, services: tuple[str, ...]) -> list[str]:
        return []


def prepare(folder: Path | None, settings: Settings | None = None, pace: float = 1.0) -> tuple[Settings, DemoBackend]:
    """Set up a demo folder (a scratch one when ``folder`` is None) that looks like a Currents
    on-prem checkout, and return settings + backend for it."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="currents-wizard-demo-"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = resources.files("wizard") / "demo_data"
    for name in (".env.example", "VERSION", "compose.currents.yml"):
        dest = folder / name
        if not dest.exists():
            dest.write_bytes((data / name).read_bytes())
    env = folder / ".env"
    if not env.exists():
        shutil.copyfile(folder / ".env.example", env)
    base = settings or Settings()
    demo_settings = base.with_(dir=folder, demo=True, state_file=base.state_file)
    return demo_settings, DemoBackend(demo_settings, folder / ".currents-wizard" / "demo", pace=pace)
