"""The ports the step model talks through, and the real implementation (AWS + registries).

The step model (:mod:`wizard.core.steps`) never calls boto3 or HTTP directly; it asks a
:class:`Backend`.  :class:`RealBackend` wires :mod:`wizard.core.aws` and the registry transport;
:mod:`wizard.core.demo` provides an offline one for demo mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wizard.core.credentials import Credential, CredentialProvider, StaticCredentials
from wizard.core.settings import Settings, Target
from wizard.core.transports.base import Transport


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    user_id: str = ""


@dataclass(frozen=True)
class RoleOutcome:
    """``status``: created | unchanged | differs | updated."""

    status: str
    arn: str
    message: str = ""


@dataclass(frozen=True)
class ProbeResult:
    """``verdict``: granted | not_granted | tag_missing | network_error."""

    verdict: str
    message: str
    hint: str = ""
    status_code: int | None = None

    @property
    def granted(self) -> bool:
        return self.verdict == "granted"


class VendorAccess(CredentialProvider, Protocol):
    """Credentials for the vendor registry obtained through the customer's role (memory only)."""

    registry: str
    assumed_arn: str
    sts_expires_at: datetime | None
    token_expires_at: datetime | None


class Backend(Protocol):
    demo: bool

    def identity(self) -> Identity: ...

    def ensure_role(self, name: str, trust_policy: dict, policy: dict, update: bool = False) -> RoleOutcome: ...

    def login_vendor(self, role_arn: str) -> VendorAccess: ...

    def probe(self, access: VendorAccess, tag: str) -> ProbeResult: ...

    def source(self, access: VendorAccess) -> Transport: ...

    def target(self, target: Target, credential: Credential | None) -> Transport: ...

    def prepare_target(self, target: Target, services: tuple[str, ...]) -> list[str]: ...


def docker_config_credential(host: str) -> Credential | None:
    """The user's saved credential for ``host`` from ``~/.docker/config.json`` / credential helpers."""
    try:
        from docker import auth as docker_auth

        config = docker_auth.load_config()
        entry = docker_auth.resolve_authconfig(config, host)
    except Exception:  # a broken config or helper must not stop the wizard
        return None
    if not entry:
        return None
    user = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if user and password:
        return Credential(username=str(user), password=str(password))
    return None


class RealBackend:
    """AWS through boto3's credential chain; registries over HTTP."""

    demo = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._aws = None
        self.warnings: list[str] = []

    @property
    def aws(self):  # type: ignore[no-untyped-def]
        if self._aws is None:
            from wizard.core.aws import Aws

            self._aws = Aws(self.settings, profile=self.settings.profile or None)
        return self._aws

    def identity(self) -> Identity:
        ident = self.aws.identity()
        return Identity(account=ident.account, arn=ident.arn, user_id=getattr(ident, "user_id", ""))

    def ensure_role(self, name: str, trust_policy: dict, policy: dict, update: bool = False) -> RoleOutcome:
        out = self.aws.ensure_role(name, trust_policy, policy, update=update)
        return RoleOutcome(status=str(out.status), arn=out.arn, message=getattr(out, "message", ""))

    def login_vendor(self, role_arn: str) -> VendorAccess:
        return self.aws.vendor_login(role_arn, self.settings.session_duration)  # type: ignore[no-any-return]

    def probe(self, access: VendorAccess, tag: str) -> ProbeResult:
        res = self.aws.probe(access, tag)
        return ProbeResult(verdict=str(res.verdict), message=res.message, hint=res.hint, status_code=res.status_code)

    def source(self, access: VendorAccess) -> Transport:
        from wizard.core.transports.registry import RegistryTransport

        return RegistryTransport.for_host(self.settings.vendor_registry, self.settings, access)

    def target(self, target: Target, credential: Credential | None) -> Transport:
        from wizard.core.transports.registry import RegistryTransport

        provider: CredentialProvider
        if credential is None and self.is_ecr(target):
            provider = self.aws.target_login(target.host, force=self.settings.target_ecr)
        else:
            provider = StaticCredentials(credential or docker_config_credential(target.host))
        host = f"http://{target.host}" if target.insecure else target.host
        return RegistryTransport.for_host(host, self.settings, provider)

    def is_ecr(self, target: Target) -> bool:
        from wizard.core.aws import is_ecr_host

        return self.settings.target_ecr or bool(is_ecr_host(target.host))

    def prepare_target(self, target: Target, services: tuple[str, ...]) -> list[str]:
        """Create missing ECR repositories (ECR does not create on push); no-op for other registries."""
        if not self.is_ecr(target):
            return []
        outcome = self.aws.ensure_target_repositories(
            [target.repo(s) for s in services],
            tag_mutability=self.settings.tag_mutability,
            scan_on_push=self.settings.scan_on_push,
            target_host=target.host,
            force=self.settings.target_ecr,
        )
        self.warnings = list(getattr(outcome, "warnings", []))
        return list(outcome)
