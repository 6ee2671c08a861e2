"""Shared pytest fixtures: real loopback services from :mod:`tests.testbed`.

Session-scoped services are started on first use and stopped at session end (and at exit).
Tests that need an *empty* registry should use ``fresh_registry`` or ``registry_factory``
(the session ``target_registry`` is shared: use a unique repository path in it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import imagegen
from tests.testbed import (
    ECR_PASSWORD,
    ECR_USER,
    Dockerd,
    MotoServer,
    Registry,
    TestbedError,
    in_ci,
)

SOURCE_PREFIX = "currents/on-prem"
TAG_OLD = "2026-01-26-001"
TAG_NEW = "2026-02-10-001"  # same images as TAG_OLD except each app layer
TARGET_USER = ("wizard", "target-pass-123")

_INTEGRATION_DIR = Path(__file__).parent / "integration"


_DOCKER_CONFIG_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    # Anything docker (SDK, CLI) reads/writes $DOCKER_CONFIG: keep ~/.docker untouched.
    global _DOCKER_CONFIG_DIR
    if not os.environ.get("CURRENTS_TESTBED_KEEP_DOCKER_CONFIG"):
        _DOCKER_CONFIG_DIR = tempfile.mkdtemp(prefix="tb-docker-config-")
        Path(_DOCKER_CONFIG_DIR, "config.json").write_text("{}\n")
        os.environ["DOCKER_CONFIG"] = _DOCKER_CONFIG_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _DOCKER_CONFIG_DIR:
        shutil.rmtree(_DOCKER_CONFIG_DIR, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def _require(tool: str, available: bool) -> None:
    if not available:
        msg = f"{tool} is not installed (run .ci/install-system-deps)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One ``moto_server`` subprocess for the session (state shared; see ``aws_env``)."""
    server = MotoServer(workdir=tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """moto with fresh state, auth checks off, and boto3's env pointed at it for this test."""
    moto.reset()
    moto.apply_env(monkeypatch)
    return moto


@pytest.fixture(scope="session")
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    """``registry_factory(auth=None, tls=False) -> Registry``; all stopped at session end."""
    started: list[Registry] = []

    def start(*, auth: tuple[str, str] | None = None, tls: bool = False) -> Registry:
        _require("docker-registry", shutil.which("docker-registry", path="/usr/bin:/usr/sbin") is not None)
        reg = Registry(auth=auth, tls=tls, workdir=tmp_path_factory.mktemp("registry"))
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()


@pytest.fixture(scope="session")
def vendor_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """Basic-auth registry accepting ``AWS`` / moto's deterministic ECR token for 513558712013."""
    return registry_factory(auth=(ECR_USER, ECR_PASSWORD))


@pytest.fixture(scope="session")
def target_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """Open (no auth) plain-HTTP registry, shared by the session."""
    return registry_factory()


@pytest.fixture(scope="session")
def auth_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """Basic-auth registry; credentials are ``registry.auth`` (= ``TARGET_USER``)."""
    return registry_factory(auth=TARGET_USER)


@pytest.fixture(scope="session")
def tls_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """Open HTTPS registry with a self-signed cert; trust it with ``ca_file`` / ``cert_dir``."""
    return registry_factory(tls=True)


@pytest.fixture
def fresh_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """A new, empty, open registry for this test only (~0.1 s)."""
    return registry_factory()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A private dockerd. Skipped when dockerd is missing, unless ``CI=true`` (then it fails)."""
    _require("dockerd (docker.io)", Dockerd.available())
    try:
        daemon = Dockerd()
    except TestbedError as exc:
        pytest.fail(str(exc))
    yield daemon
    daemon.stop()


@dataclass
class SeededVendor:
    """The vendor registry with the six images pushed under ``<prefix>/<service>`` for both tags."""

    registry: Registry
    prefix: str
    tags: tuple[str, ...]
    services: tuple[str, ...]
    digests: dict[str, dict[str, str]]  # tag -> service -> manifest digest
    images: dict[str, dict[str, imagegen.Image]] = field(repr=False)
    username: str = ECR_USER
    password: str = field(default=ECR_PASSWORD, repr=False)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def host(self) -> str:
        return self.registry.host

    def repo(self, service: str) -> str:
        return f"{self.prefix}/{service}"

    def ref(self, service: str, tag: str) -> str:
        """``127.0.0.1:PORT/currents/on-prem/<service>:<tag>``."""
        return f"{self.registry.host}/{self.prefix}/{service}:{tag}"


@pytest.fixture(scope="session")
def seeded_vendor(vendor_registry: Registry) -> SeededVendor:
    """Six images × tags ``2026-01-26-001`` and ``2026-02-10-001`` (the second changes only ``app``).

    ``api`` is a multi-arch OCI index (amd64 + arm64/v8) with attestations; ``webhooks`` is an OCI
    manifest; the rest are Docker v2 manifests.  ~1.4 MB in total.
    """
    auth = (ECR_USER, ECR_PASSWORD)
    images: dict[str, dict[str, imagegen.Image]] = {}
    digests: dict[str, dict[str, str]] = {}
    for tag in (TAG_OLD, TAG_NEW):
        images[tag] = imagegen.build_images(tag)
        digests[tag] = imagegen.push_images(vendor_registry.url, SOURCE_PREFIX, tag, auth=auth, images=images[tag])
    return SeededVendor(
        registry=vendor_registry,
        prefix=SOURCE_PREFIX,
        tags=(TAG_OLD, TAG_NEW),
        services=imagegen.SERVICES,
        digests=digests,
        images=images,
    )
