"""Vendor constants and run options, overridable by flags and ``CURRENTS_WIZARD_*`` env vars.

Tests point these at loopback; other vendors/regions exist, so nothing here is hard-wired
beyond the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from wizard.core.errors import InputError

VENDOR_ACCOUNT = "513558712013"
VENDOR_REGION = "us-east-1"
SOURCE_PREFIX = "currents/on-prem"
SERVICES: tuple[str, ...] = ("api", "director", "change-streams", "scheduler", "writer", "webhooks")
DEFAULT_TAG = "staging"
ENV_PREFIX = "CURRENTS_WIZARD_"
ENGINES = ("registry", "docker", "archive")

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
# OCI distribution spec: tag grammar.
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# OCI distribution spec: repository path components.
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"
    r"(?::\d{1,5})?$"
)


def validate_account(value: str, what: str = "account") -> str:
    if not _ACCOUNT_RE.match(value):
        raise InputError(f"invalid AWS {what} {value!r}: expected 12 digits", "check the account id and retry")
    return value


def validate_region(value: str) -> str:
    if not _REGION_RE.match(value):
        raise InputError(f"invalid AWS region {value!r}", "use a region name such as us-east-1")
    return value


def validate_tag(value: str) -> str:
    if not _TAG_RE.match(value):
        raise InputError(
            f"invalid image tag {value!r}",
            "a tag is 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-' (e.g. staging or 2026-01-26-001)",
        )
    return value


def validate_repo_path(value: str, what: str = "repository path") -> str:
    parts = value.split("/")
    for part in parts:
        if not _PATH_COMPONENT_RE.match(part):
            raise InputError(
                f"invalid {what} {value!r}: component {part!r} is not allowed",
                "use lowercase letters, digits and single . _ - between them (e.g. currents/on-prem)",
            )
    return value


def validate_host(value: str) -> str:
    if not _HOST_RE.match(value):
        raise InputError(f"invalid registry host {value!r}", "use HOST or HOST:PORT, e.g. registry.example.com")
    if ":" in value and not value.startswith("["):
        port = int(value.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise InputError(f"invalid port in registry host {value!r}", "use a port from 1 to 65535")
    return value


def validate_services(values: tuple[str, ...], known: tuple[str, ...] = SERVICES) -> tuple[str, ...]:
    if not values:
        raise InputError("no services selected", f"choose from: {', '.join(known)}")
    for v in values:
        if v not in known:
            raise InputError(f"unknown service {v!r}", f"choose from: {', '.join(known)}")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Target:
    """Where images go: ``<scheme>://<host>/<path>/<service>:<tag>``.

    ``path`` may be empty; ``insecure`` means plain HTTP was asked for.
    """

    host: str
    path: str = ""
    insecure: bool = False

    @property
    def repository_prefix(self) -> str:
        """The value for ``DC_CURRENTS_IMAGE_REPOSITORY``: always exactly one trailing slash."""
        return f"{self.host}/{self.path}/" if self.path else f"{self.host}/"

    def repo(self, service: str) -> str:
        return f"{self.path}/{service}" if self.path else service

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.path else self.host

    @property
    def spec(self) -> str:
        """Normalised input form: ``[http://]HOST[:PORT][/PATH]``."""
        return f"http://{self}" if self.insecure else str(self)


def parse_target(value: str) -> Target:
    """Parse ``[http(s)://]HOST[:PORT][/PATH]`` into a :class:`Target`. Raises InputError."""
    raw = value.strip()
    insecure = False
    if raw.startswith("http://"):
        insecure, raw = True, raw[len("http://") :]
    elif raw.startswith("https://"):
        raw = raw[len("https://") :]
    elif "://" in raw:
        raise InputError(f"invalid target {value!r}: unsupported scheme", "use HOST[:PORT]/PATH")
    raw = raw.strip("/")
    if not raw:
        raise InputError("the target registry is empty", "pass --target HOST[:PORT]/PATH")
    host, _, path = raw.partition("/")
    validate_host(host)
    if path:
        validate_repo_path(path, "target path")
    return Target(host=host, path=path, insecure=insecure)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know that is not a secret."""

    vendor_account: str = VENDOR_ACCOUNT
    region: str = VENDOR_REGION
    source_registry: str = ""  # default: <vendor_account>.dkr.ecr.<region>.amazonaws.com
    source_prefix: str = SOURCE_PREFIX
    services: tuple[str, ...] = SERVICES
    tag: str = ""  # "" = not chosen yet (VERSION or state or DEFAULT_TAG decide)
    dir: Path = field(default_factory=Path.cwd)
    env_file: Path | None = None  # default: <dir>/.env
    state_file: Path | None = None  # default: <dir>/.currents-wizard/state.json
    role_arn: str = ""
    target: str = ""
    profile: str = ""
    engine: str = ""  # "" = not given: the state's choice, else "registry"
    archive: Path | None = None
    from_archive: Path | None = None
    insecure_registries: tuple[str, ...] = ()
    ca_file: Path | None = None
    target_username: str = ""
    #: treat the target as ECR even when its name does not say so (tests point it at loopback)
    target_ecr: bool = False
    tag_mutability: str = "MUTABLE"
    scan_on_push: bool = False
    session_duration: int = 3600
    demo: bool = False

    @property
    def vendor_registry(self) -> str:
        return self.source_registry or f"{self.vendor_account}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def env_path(self) -> Path:
        return self.env_file if self.env_file is not None else self.dir / ".env"

    @property
    def state_path(self) -> Path:
        return self.state_file if self.state_file is not None else self.dir / ".currents-wizard" / "state.json"

    def source_repo(self, service: str) -> str:
        return f"{self.source_prefix}/{service}" if self.source_prefix else service

    def source_ref(self, service: str, tag: str | None = None) -> str:
        return f"{self.vendor_registry}/{self.source_repo(service)}:{tag or self.tag or DEFAULT_TAG}"

    def validate(self) -> Settings:
        """Check every field that is set; raise InputError naming the first bad one."""
        validate_account(self.vendor_account, "vendor account")
        validate_region(self.region)
        if self.source_registry:
            scheme, sep, rest = self.source_registry.partition("://")
            if sep and scheme not in ("http", "https"):
                raise InputError(
                    f"invalid source registry {self.source_registry!r}: unsupported scheme {scheme!r}",
                    "use HOST[:PORT] (https) or http://HOST[:PORT]",
                )
            validate_host((rest if sep else self.source_registry).rstrip("/"))
        if self.source_prefix:
            validate_repo_path(self.source_prefix, "source prefix")
        validate_services(self.services)
        if self.tag:
            validate_tag(self.tag)
        if self.target:
            parse_target(self.target)
        if self.engine and self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}", f"choose one of: {', '.join(ENGINES)}")
        for host in self.insecure_registries:
            validate_host(host)
        if self.tag_mutability not in ("MUTABLE", "IMMUTABLE"):
            raise InputError(f"invalid tag mutability {self.tag_mutability!r}", "use MUTABLE or IMMUTABLE")
        if not 900 <= self.session_duration <= 43200:
            raise InputError(
                f"invalid session duration {self.session_duration}", "use 900 to 43200 seconds (default 3600)"
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise InputError(f"CA file {self.ca_file} does not exist", "pass --ca-file with a PEM file")
        return self

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def env_name(option: str) -> str:
    """``--source-registry`` -> ``CURRENTS_WIZARD_SOURCE_REGISTRY``."""
    return ENV_PREFIX + option.lstrip("-").replace("-", "_").upper()
