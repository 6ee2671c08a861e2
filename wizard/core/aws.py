"""AWS adapter: identity, the pull role, assume-role, ECR tokens (vendor + target), target repositories.

Everything goes through boto3's standard credential chain (env vars, ``AWS_PROFILE`` /
``--profile``, SSO, config files, instance roles); this module never reads a credential file
and never passes ``endpoint_url`` (boto3 honours ``AWS_ENDPOINT_URL``, which is how tests point
it at ``moto_server``).  Temporary credentials and ECR passwords live in memory only: the
objects holding them redact them in ``repr``/``str``, and nothing here logs them.

Every AWS failure leaves this module as a :class:`~wizard.core.errors.WizardError` made by
:func:`map_client_error`, with a one-line message and the command that fixes it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import json
import logging
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import boto3
import botocore.exceptions as bex
import httpx
from botocore.config import Config

from wizard.core.credentials import Credential, CredentialProvider
from wizard.core.errors import AwsError, InputError, WizardError
from wizard.core.registry import _lean_imports
from wizard.core.settings import Settings, parse_target
from wizard.core.transports.base import ACCEPT_MANIFESTS

log = logging.getLogger(__name__)

CREATED_BY_KEY = "created-by"
CREATED_BY_VALUE = "currents-wizard"
DEFAULT_POLICY_NAME = "CurrentsEcrPull"
ROLE_DESCRIPTION = "Lets currents-wizard pull Currents on-prem images from Currents' ECR"
ONE_HOUR = 3600
MAX_SESSION_SECONDS = 43200
SESSION_NAME_PREFIX = "currents-wizard-"

_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]", re.ASCII)
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
_ROLE_ARN_RE = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$", re.ASCII)
_ECR_HOST_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$"
)
_XML_CODE_RE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE_RE = re.compile(r"<Message>([^<]*)</Message>")

# ---------------------------------------------------------------------------------------------
# error mapping
# ---------------------------------------------------------------------------------------------

EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
INVALID_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "Forbidden"}
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
_CONNECTION_ERRORS = (bex.ConnectionError, bex.HTTPClientError)
_SSO_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        getattr(bex, "SSOError", None),
        getattr(bex, "TokenRetrievalError", None),
        getattr(bex, "PendingAuthorizationExpiredError", None),
    )
    if isinstance(cls, type)
)


def _error_code_and_message(exc: bex.ClientError) -> tuple[str, str, int]:
    """``(code, message, http status)``, unwrapping the XML moto sends to JSON APIs (ECR → code "403")."""
    err = exc.response.get("Error", {}) or {}
    code = str(err.get("Code", "") or "")
    message = str(err.get("Message", "") or err.get("message", "") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    inner = _XML_CODE_RE.search(message)
    if inner and (not code or code.isdigit()):
        code = inner.group(1)
        found = _XML_MESSAGE_RE.search(message)
        message = found.group(1) if found else ""
    if code.isdigit() and not status:
        status = int(code)
    return code, " ".join(message.split()), status


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    return _error_code_and_message(exc)[0] if isinstance(exc, bex.ClientError) else ""


def map_client_error(exc: BaseException, action: str, profile: str | None = None) -> WizardError:
    """Turn a boto3/botocore failure during ``action`` (e.g. ``"iam:CreateRole"``) into a WizardError.

    The message says what failed, the hint names the command that fixes it.  Never includes
    credentials (AWS error messages do not carry them).
    """
    if isinstance(exc, WizardError):
        return exc
    p = f" --profile {profile}" if profile else ""
    sso_login = f"aws sso login{p}" if profile else "aws sso login --profile <name>"
    configure = f"aws configure{p}"

    if isinstance(exc, bex.ProfileNotFound):
        name = exc.kwargs.get("profile", profile or "")
        return InputError(
            f"AWS profile {name!r} was not found",
            "list profiles with `aws configure list-profiles`; create one with `aws configure --profile NAME` "
            "or `aws configure sso`",
        )
    if isinstance(exc, bex.NoCredentialsError):
        return AwsError(
            f"no AWS credentials found ({action})",
            f"run `{configure}` (access keys) or `{sso_login}` (SSO), or choose a profile with --profile / AWS_PROFILE",
        )
    if isinstance(exc, bex.PartialCredentialsError):
        return AwsError(
            f"incomplete AWS credentials in {exc.kwargs.get('provider', 'the environment')}: "
            f"{exc.kwargs.get('cred_var', 'a value')} is missing",
            f"set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `{configure}`",
        )
    if _SSO_ERRORS and isinstance(exc, _SSO_ERRORS):
        return AwsError(
            f"your AWS SSO session has expired or you are not logged in ({action})",
            f"run `{sso_login}` and try again",
        )
    if isinstance(exc, bex.CredentialRetrievalError):
        return AwsError(
            f"could not get AWS credentials from {exc.kwargs.get('provider', 'the configured source')} ({action})",
            f"check the profile's credential_process / role settings, or run `{configure}`",
        )
    if isinstance(exc, bex.NoRegionError):
        return InputError("no AWS region is set", "pass --region REGION or set AWS_REGION")
    if isinstance(exc, _CONNECTION_ERRORS):
        kind = "timed out" if isinstance(exc, (bex.ConnectTimeoutError, bex.ReadTimeoutError)) else "failed"
        return AwsError(
            f"connection to AWS {kind} ({action}): {exc}",
            "check your network or proxy (HTTPS_PROXY), the region, and AWS_ENDPOINT_URL if you set one",
        )
    if isinstance(exc, bex.ClientError):
        code, message, status = _error_code_and_message(exc)
        detail = f"{code}: {message}" if message else code
        if code in EXPIRED_CODES:
            return AwsError(
                f"your AWS credentials have expired ({action})",
                f"log in again: `{sso_login}` for SSO, or refresh your temporary keys / `{configure}`",
            )
        if code in INVALID_CREDENTIAL_CODES:
            return AwsError(
                f"AWS rejected your credentials ({action}: {code})",
                f"check the access key and secret (`{configure}`), or log in again (`{sso_login}`)",
            )
        if code in THROTTLING_CODES:
            return AwsError(
                f"AWS is throttling requests ({action}: {code}), even after retries",
                "wait a minute and run the same command again",
            )
        if code in ACCESS_DENIED_CODES or code.startswith("AccessDenied") or status == 403:
            if action == "sts:AssumeRole":
                hint = (
                    "the role's trust policy must allow your identity (see `currents-wizard policy --trust`) "
                    "and your identity needs sts:AssumeRole on it"
                )
            else:
                hint = f"ask your AWS administrator to allow {action} for your identity, or use another --profile"
            return AwsError(f"access denied: {action} ({detail})", hint)
        if code in ("NoSuchEntity", "NoSuchEntityException"):
            return AwsError(f"{action}: {message or 'not found'}", "check the role name or ARN")
        if code == "RepositoryNotFoundException":
            return AwsError(f"{action}: {message}", "check the repository name and the registry account/region")
        if code in ("ValidationError", "InvalidParameterException", "InvalidParameterValueException"):
            return AwsError(f"AWS refused the request ({action}): {message}", "check the values you passed")
        if code in ("LimitExceeded", "LimitExceededException"):
            return AwsError(
                f"an AWS quota was reached ({action}): {message}", "remove unused resources or ask for more"
            )
        return AwsError(
            f"AWS call {action} failed ({detail or 'HTTP ' + str(status)})",
            "try again; run with --verbose for details",
        )
    if isinstance(exc, bex.BotoCoreError):
        return AwsError(f"AWS call {action} failed: {exc}", "try again; run with --verbose for details")
    return AwsError(f"AWS call {action} failed: {type(exc).__name__}", "try again; run with --verbose for details")


def _quiet_sdk_loggers() -> None:
    """botocore logs request headers (session tokens) and response bodies (secret keys) at DEBUG.

    Raise the SDK loggers to INFO unless someone chose their level on purpose, so ``--verbose``
    (root at DEBUG) never prints a secret.
    """
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


# ---------------------------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sanitize_session_name(raw: str) -> str:
    """An STS role session name: only ``[\\w+=,.@-]``, 2..64 characters."""
    name = _SESSION_NAME_BAD.sub("-", raw)[:64]
    return name if len(name) >= 2 else (name + "--")[:2]


def default_session_name(user: str | None = None) -> str:
    """``currents-wizard-<user>`` (the local login name when ``user`` is not given)."""
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no login name (containers): still a valid session name
            user = "user"
    return sanitize_session_name(SESSION_NAME_PREFIX + user)


def validate_role_name(name: str) -> str:
    if not _ROLE_NAME_RE.match(name):
        raise InputError(f"invalid IAM role name {name!r}", "use 1-64 of letters, digits and + = , . @ _ -")
    return name


def check_role_arn(arn: str) -> str:
    """Raise InputError unless ``arn`` looks like ``arn:aws:iam::<12 digits>:role/<path/name>``."""
    if not _ROLE_ARN_RE.match(arn.strip()):
        raise InputError(
            f"invalid role ARN {arn!r}",
            "expected arn:aws:iam::<12-digit account>:role/<name>, e.g. arn:aws:iam::123456789012:role/CurrentsEcrPull",
        )
    return arn.strip()


def decode_authorization_token(token: str) -> tuple[str, str]:
    """ECR's ``authorizationToken`` (base64 of ``user:password``) → ``(user, password)``."""
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise AwsError("ECR returned an authorization token that is not base64", "try again") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        raise AwsError("ECR returned an authorization token without user:password", "try again")
    return user, password


def parse_ecr_host(host: str) -> tuple[str, str] | None:
    """``<account>.dkr.ecr.<region>.amazonaws.com[.cn]`` → ``(account, region)``; None for other hosts."""
    bare = registry_host(host).lower()
    if bare.endswith(":443"):
        bare = bare[:-4]
    m = _ECR_HOST_RE.match(bare)
    return (m.group("account"), m.group("region")) if m else None


def is_ecr_host(host: str) -> bool:
    """True for a private ECR registry host such as ``123456789012.dkr.ecr.eu-west-1.amazonaws.com``."""
    return parse_ecr_host(host) is not None


def registry_host(value: str) -> str:
    """``http://127.0.0.1:5001/x/`` → ``127.0.0.1:5001`` (scheme and path dropped)."""
    raw = value.strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    return raw.split("/", 1)[0]


def _plain_http_hosts(settings: Settings) -> set[str]:
    hosts = {registry_host(h) for h in settings.insecure_registries if not h.startswith("https://")}
    if settings.source_registry.startswith("http://"):
        hosts.add(registry_host(settings.source_registry))
    if settings.target.startswith("http://"):
        with contextlib.suppress(InputError):
            hosts.add(parse_target(settings.target).host)
    return hosts


def registry_base_url(host: str, settings: Settings) -> tuple[str, bool | ssl.SSLContext]:
    """``(base URL, httpx verify)`` for a registry host under ``settings``.

    Plain HTTP when ``host`` carries ``http://``, when ``settings.source_registry`` or
    ``settings.target`` names the same host with ``http://``, or when the host is listed in
    ``settings.insecure_registries``.  ``https://HOST`` listed as insecure means HTTPS without
    certificate checks.  Otherwise HTTPS, verified against the system CAs plus ``settings.ca_file``.
    """
    bare = registry_host(host)
    scheme = host.strip().split("://", 1)[0].lower() if "://" in host else ""
    insecure = {registry_host(h) for h in settings.insecure_registries}
    if scheme == "http" or (not scheme and bare in _plain_http_hosts(settings)):
        return f"http://{bare}", False
    if bare in insecure:
        return f"https://{bare}", False
    if settings.ca_file is not None:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cafile=str(settings.ca_file))
        return f"https://{bare}", ctx
    return f"https://{bare}", True


def _canonical(value: Any) -> Any:
    """Policy documents compared by meaning: key order, single-item lists and list order ignored."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def same_policy(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two policy documents say the same thing (modulo ordering and 1-item lists)."""
    if a is None or b is None:
        return a is b
    return bool(_canonical(a) == _canonical(b))


def _policy_dict(doc: Any) -> dict[str, Any] | None:
    """IAM returns documents URL-encoded JSON (boto3 usually decodes them already)."""
    if doc is None:
        return None
    if isinstance(doc, dict):
        return doc
    text = str(doc)
    for candidate in (text, urllib.parse.unquote(text)):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


# ---------------------------------------------------------------------------------------------
# result types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who the user's credentials belong to (``sts get-caller-identity``)."""

    account: str
    arn: str
    user_id: str = ""

    @property
    def name(self) -> str:
        """Last part of the ARN: user name, role session name, or ``root``."""
        return self.arn.rsplit("/", 1)[-1] if "/" in self.arn else self.arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class RoleInfo:
    name: str
    arn: str
    trust_policy: dict[str, Any] | None
    policy: dict[str, Any] | None  # our inline policy (``policy_name``), None when absent
    policy_name: str
    tags: dict[str, str] = field(default_factory=dict)
    max_session_duration: int = ONE_HOUR

    @property
    def created_by_wizard(self) -> bool:
        return self.tags.get(CREATED_BY_KEY) == CREATED_BY_VALUE


RoleStatus = Literal["created", "unchanged", "differs", "updated"]


@dataclass(frozen=True)
class RoleOutcome:
    """``status``: created | unchanged | differs (existing role, not touched) | updated."""

    status: RoleStatus
    arn: str
    message: str = ""
    differences: tuple[str, ...] = ()  # "trust policy", "permissions policy"
    role: RoleInfo | None = None


@dataclass(frozen=True)
class AssumedRole:
    """Temporary credentials of the assumed role. In memory only; ``repr`` redacts the secrets."""

    role_arn: str
    assumed_arn: str
    session_name: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime = field(default_factory=_utcnow)
    duration_seconds: int = ONE_HOUR
    note: str = ""

    def __repr__(self) -> str:
        return (
            f"AssumedRole(assumed_arn={self.assumed_arn!r}, session_name={self.session_name!r}, "
            f"access_key_id={self.access_key_id!r}, secret_access_key=<redacted>, session_token=<redacted>, "
            f"expiration={self.expiration.isoformat()!r}, duration_seconds={self.duration_seconds})"
        )

    __str__ = __repr__

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        return (now or _utcnow()) >= self.expiration - timedelta(seconds=seconds)


Verdict = Literal["granted", "not_granted", "tag_missing", "network_error"]


@dataclass(frozen=True)
class ProbeResult:
    """``verdict``: granted | not_granted | tag_missing | network_error."""

    verdict: Verdict
    message: str
    hint: str = ""
    status_code: int | None = None
    digest: str = ""

    @property
    def granted(self) -> bool:
        return self.verdict == "granted"


@dataclass(frozen=True)
class RepositoriesOutcome:
    """What :meth:`Aws.ensure_target_repositories` did. Iterating yields the created names."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        return iter(self.created)

    def __len__(self) -> int:
        return len(self.created)


IMMUTABLE_WARNING = (
    "tag mutability IMMUTABLE: re-pushing a moving tag such as 'staging' will be refused "
    "(ImageTagAlreadyExistsException); use MUTABLE unless you only mirror fixed version tags"
)


# ---------------------------------------------------------------------------------------------
# the adapter
# ---------------------------------------------------------------------------------------------


class Aws:
    """The user's AWS session (lazily created) and the calls the wizard makes with it.

    Thread-safe: the boto3 session and clients are created under a lock; boto3 clients
    themselves may be shared between threads.
    """

    def __init__(
        self,
        settings: Settings,
        profile: str | None = None,
        *,
        max_attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.profile = profile if profile is not None else (settings.profile or None)
        self.config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # incl. the first try
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra="currents-wizard",
        )
        self._lock = threading.RLock()
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._identity: Identity | None = None
        _quiet_sdk_loggers()

    # -- plumbing -------------------------------------------------------------------------------

    def _error(self, exc: BaseException, action: str) -> WizardError:
        return map_client_error(exc, action, self.profile)

    @property
    def session(self) -> boto3.Session:
        """``boto3.Session(profile_name=..., region_name=settings.region)``, created on first use."""
        with self._lock:
            if self._session is None:
                try:
                    self._session = boto3.Session(profile_name=self.profile, region_name=self.settings.region)
                except (bex.BotoCoreError, bex.ClientError) as exc:
                    raise self._error(exc, "load AWS configuration") from exc
            return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        """A cached boto3 client for the user's credentials (standard retry mode)."""
        region = region or self.settings.region
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                try:
                    self._clients[key] = self.session.client(service, region_name=region, config=self.config)
                except (bex.BotoCoreError, bex.ClientError) as exc:
                    raise self._error(exc, f"{service} client") from exc
            return self._clients[key]

    def _call(self, service: str, operation: str, action: str, region: str | None = None, **kwargs: Any) -> Any:
        client = self.client(service, region)
        try:
            return getattr(client, operation)(**kwargs)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise self._error(exc, action) from exc

    # -- 1. who am I ----------------------------------------------------------------------------

    def identity(self, *, cached: bool = False) -> Identity:
        """``sts get-caller-identity`` with the user's credentials."""
        if cached and self._identity is not None:
            return self._identity
        r = self._call("sts", "get_caller_identity", "sts:GetCallerIdentity")
        ident = Identity(account=str(r["Account"]), arn=str(r["Arn"]), user_id=str(r.get("UserId", "")))
        self._identity = ident
        log.info("AWS identity: %s (account %s)", ident.arn, ident.account)
        return ident

    # -- 2. the role ----------------------------------------------------------------------------

    def get_role(self, name: str, policy_name: str = DEFAULT_POLICY_NAME) -> RoleInfo | None:
        """The role and our inline policy, or None when there is no such role."""
        validate_role_name(name)
        iam = self.client("iam")
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except bex.ClientError as exc:
            if error_code(exc) in ("NoSuchEntity", "NoSuchEntityException"):
                return None
            raise self._error(exc, "iam:GetRole") from exc
        except bex.BotoCoreError as exc:
            raise self._error(exc, "iam:GetRole") from exc
        try:
            policy = _policy_dict(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
        except bex.ClientError as exc:
            if error_code(exc) not in ("NoSuchEntity", "NoSuchEntityException"):
                raise self._error(exc, "iam:GetRolePolicy") from exc
            policy = None
        except bex.BotoCoreError as exc:
            raise self._error(exc, "iam:GetRolePolicy") from exc
        return RoleInfo(
            name=str(role["RoleName"]),
            arn=str(role["Arn"]),
            trust_policy=_policy_dict(role.get("AssumeRolePolicyDocument")),
            policy=policy,
            policy_name=policy_name,
            tags={str(t["Key"]): str(t["Value"]) for t in role.get("Tags", []) or []},
            max_session_duration=int(role.get("MaxSessionDuration", ONE_HOUR) or ONE_HOUR),
        )

    def ensure_role(
        self,
        name: str,
        trust_policy: dict[str, Any],
        policy: dict[str, Any],
        policy_name: str = DEFAULT_POLICY_NAME,
        update: bool = False,
        *,
        max_session_duration: int = ONE_HOUR,
    ) -> RoleOutcome:
        """Create the role with ``trust_policy`` and inline ``policy``; idempotent.

        An existing role whose documents match is ``unchanged``; one that differs is reported
        ``differs`` and left alone unless ``update=True`` (then ``updated``).
        """
        validate_role_name(name)
        existing = self.get_role(name, policy_name)
        if existing is None:
            try:
                role = self._call(
                    "iam",
                    "create_role",
                    "iam:CreateRole",
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(trust_policy),
                    Description=ROLE_DESCRIPTION,
                    MaxSessionDuration=max_session_duration,
                    Tags=[{"Key": CREATED_BY_KEY, "Value": CREATED_BY_VALUE}],
                )["Role"]
            except AwsError as err:
                if isinstance(err.__cause__, bex.ClientError) and error_code(err.__cause__) == "EntityAlreadyExists":
                    return self.ensure_role(name, trust_policy, policy, policy_name, update)  # lost a race
                raise
            arn = str(role["Arn"])
            try:
                self._put_policy(name, policy_name, policy)
            except AwsError as err:
                raise AwsError(
                    f"role {name} was created but its policy could not be attached: {err.message}",
                    "fix the permission, then run the role step again with update (it will attach the policy)",
                ) from err
            log.info("created role %s with inline policy %s", arn, policy_name)
            return RoleOutcome("created", arn, f"created role {arn}")

        differences = []
        if not same_policy(existing.trust_policy, trust_policy):
            differences.append("trust policy")
        if not same_policy(existing.policy, policy):
            differences.append("permissions policy")
        if not differences:
            return RoleOutcome("unchanged", existing.arn, f"role {existing.arn} already set up", role=existing)
        if not update:
            return RoleOutcome(
                "differs",
                existing.arn,
                f"role {existing.arn} exists but its {' and '.join(differences)} differ from the generated ones",
                tuple(differences),
                existing,
            )
        if "trust policy" in differences:
            self._call(
                "iam",
                "update_assume_role_policy",
                "iam:UpdateAssumeRolePolicy",
                RoleName=name,
                PolicyDocument=json.dumps(trust_policy),
            )
        if "permissions policy" in differences:
            self._put_policy(name, policy_name, policy)
        log.info("updated role %s (%s)", existing.arn, ", ".join(differences))
        return RoleOutcome(
            "updated", existing.arn, f"updated the {' and '.join(differences)} of {existing.arn}", tuple(differences)
        )

    def _put_policy(self, name: str, policy_name: str, policy: dict[str, Any]) -> None:
        self._call(
            "iam",
            "put_role_policy",
            "iam:PutRolePolicy",
            RoleName=name,
            PolicyName=policy_name,
            PolicyDocument=json.dumps(policy),
        )

    # -- 4. assume the role ---------------------------------------------------------------------

    def assume_role(
        self,
        role_arn: str,
        duration_seconds: int = ONE_HOUR,
        session_name: str | None = None,
        *,
        external_id: str | None = None,
    ) -> AssumedRole:
        """``sts assume-role`` with the user's credentials; the result stays in memory.

        When AWS refuses the duration (role chaining is capped at 1 h; a role may allow less than
        asked), retry once with 3600 s and say so in ``note``.
        """
        role_arn = check_role_arn(role_arn)
        if not 900 <= duration_seconds <= MAX_SESSION_SECONDS:
            raise InputError(f"invalid session duration {duration_seconds}s", "use 900 to 43200 seconds (default 3600)")
        if session_name is None:
            user = self._identity.name if self._identity is not None else None
            session_name = default_session_name(user)
        session_name = sanitize_session_name(session_name)
        kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
        if external_id:
            kwargs["ExternalId"] = external_id
        sts = self.client("sts")
        note = ""
        try:
            r = sts.assume_role(DurationSeconds=duration_seconds, **kwargs)
        except bex.ClientError as exc:
            code, message, _ = _error_code_and_message(exc)
            if code != "ValidationError" or "DurationSeconds" not in message or duration_seconds <= ONE_HOUR:
                raise self._error(exc, "sts:AssumeRole") from exc
            if "role chaining" in message:
                note = (
                    f"AWS caps sessions of roles assumed by role chaining at 1 hour; "
                    f"used 3600 s instead of {duration_seconds} s"
                )
            else:
                note = f"the role does not allow {duration_seconds} s sessions; used 3600 s"
            log.warning("%s", note)
            duration_seconds = ONE_HOUR
            try:
                r = sts.assume_role(DurationSeconds=duration_seconds, **kwargs)
            except (bex.BotoCoreError, bex.ClientError) as exc2:
                raise self._error(exc2, "sts:AssumeRole") from exc2
        except bex.BotoCoreError as exc:
            raise self._error(exc, "sts:AssumeRole") from exc
        c = r["Credentials"]
        expiration = c["Expiration"]
        if isinstance(expiration, str):
            expiration = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=timezone.utc)
        assumed = AssumedRole(
            role_arn=role_arn,
            assumed_arn=str(r.get("AssumedRoleUser", {}).get("Arn", "")),
            session_name=session_name,
            access_key_id=str(c["AccessKeyId"]),
            secret_access_key=str(c["SecretAccessKey"]),
            session_token=str(c["SessionToken"]),
            expiration=expiration,
            duration_seconds=duration_seconds,
            note=note,
        )
        log.info("assumed %s until %s", assumed.assumed_arn, expiration.isoformat())
        return assumed

    def session_for(self, assumed: AssumedRole, region: str | None = None) -> boto3.Session:
        """A boto3 session holding the assumed role's temporary credentials (memory only)."""
        return boto3.Session(
            aws_access_key_id=assumed.access_key_id,
            aws_secret_access_key=assumed.secret_access_key,
            aws_session_token=assumed.session_token,
            region_name=region or self.settings.region,
        )

    # -- 5. + 6. vendor login and probe ---------------------------------------------------------

    def vendor_login(
        self,
        role_arn: str,
        duration_seconds: int = ONE_HOUR,
        *,
        session_name: str | None = None,
        external_id: str | None = None,
    ) -> VendorLogin:
        """A :class:`VendorLogin` for ``role_arn``; assumes the role and fetches the token now."""
        login = VendorLogin(
            self, role_arn, duration_seconds=duration_seconds, session_name=session_name, external_id=external_id
        )
        login.get()
        return login

    def probe(self, login: CredentialProvider, tag: str, service: str = "api") -> ProbeResult:
        """See :func:`probe`."""
        return probe(login, tag, settings=self.settings, service=service)

    # -- 7. target on ECR -----------------------------------------------------------------------

    def ecr_target(
        self, target_host: str, *, force: bool = False, account: str | None = None, region: str | None = None
    ) -> tuple[str | None, str]:
        """``(registry id, region)`` for an ECR target host.

        A non-ECR host raises InputError unless ``force`` (tests point an "ECR" target at a
        loopback registry): then the registry id is ``account`` (or None = the caller's own) and
        the region ``region`` or ``settings.region``.
        """
        parsed = parse_ecr_host(target_host)
        if parsed is not None:
            return account or parsed[0], region or parsed[1]
        if not force:
            raise InputError(
                f"{target_host} is not an Amazon ECR registry",
                "expected <account>.dkr.ecr.<region>.amazonaws.com",
            )
        return account, region or self.settings.region

    def target_login(
        self, target_host: str, *, force: bool = False, account: str | None = None, region: str | None = None
    ) -> EcrTokenProvider:
        """Registry credentials for an ECR target, from the user's own credentials."""
        registry_id, region = self.ecr_target(target_host, force=force, account=account, region=region)
        return EcrTokenProvider(self, registry_id, region, registry_host(target_host))

    def ensure_target_repositories(
        self,
        repo_names: list[str],
        tag_mutability: str = "MUTABLE",
        scan_on_push: bool = False,
        encryption: str = "AES256",
        kms_key: str | None = None,
        *,
        target_host: str | None = None,
        force: bool = False,
        registry_id: str | None = None,
        region: str | None = None,
    ) -> RepositoriesOutcome:
        """Create each missing ECR repository (ECR does not create on push); idempotent.

        ``target_host`` (an ECR host; default: ``settings.target`` when that is on ECR) gives the
        registry id and region; otherwise the caller's own registry in ``region`` /
        ``settings.region`` is used.
        """
        tag_mutability = tag_mutability.upper()
        encryption = encryption.upper()
        if tag_mutability not in ("MUTABLE", "IMMUTABLE"):
            raise InputError(f"invalid tag mutability {tag_mutability!r}", "use MUTABLE or IMMUTABLE")
        if encryption not in ("AES256", "KMS"):
            raise InputError(f"invalid encryption {encryption!r}", "use AES256 or KMS")
        if kms_key and encryption != "KMS":
            raise InputError("a KMS key was given but encryption is not KMS", "add --encryption KMS")
        if target_host is None and registry_id is None and region is None and self.settings.target:
            with contextlib.suppress(InputError):
                host = parse_target(self.settings.target).host
                if is_ecr_host(host):
                    target_host = host
        if target_host is not None:
            registry_id, region = self.ecr_target(target_host, force=force, account=registry_id, region=region)
        warnings: list[str] = []
        if tag_mutability == "IMMUTABLE":
            warnings.append(IMMUTABLE_WARNING)
        enc: dict[str, str] = {"encryptionType": encryption}
        if kms_key:
            enc["kmsKey"] = kms_key
        ids: dict[str, str] = {"registryId": registry_id} if registry_id else {}
        created: list[str] = []
        existing: list[str] = []
        ecr = self.client("ecr", region)
        for name in dict.fromkeys(repo_names):
            try:
                ecr.create_repository(
                    repositoryName=name,
                    imageTagMutability=tag_mutability,
                    imageScanningConfiguration={"scanOnPush": scan_on_push},
                    encryptionConfiguration=enc,
                    tags=[{"Key": CREATED_BY_KEY, "Value": CREATED_BY_VALUE}],
                    **ids,
                )
                created.append(name)
                log.info("created ECR repository %s", name)
            except bex.ClientError as exc:
                if error_code(exc) != "RepositoryAlreadyExistsException":
                    raise self._error(exc, "ecr:CreateRepository") from exc
                existing.append(name)
            except bex.BotoCoreError as exc:
                raise self._error(exc, "ecr:CreateRepository") from exc
        if existing:
            r = self._call(
                "ecr", "describe_repositories", "ecr:DescribeRepositories", region, repositoryNames=existing, **ids
            )
            immutable = [
                x["repositoryName"] for x in r.get("repositories", []) if x.get("imageTagMutability") == "IMMUTABLE"
            ]
            if immutable and tag_mutability != "IMMUTABLE":
                warnings.append(f"existing repositories {', '.join(immutable)} are IMMUTABLE: {IMMUTABLE_WARNING}")
        return RepositoriesOutcome(tuple(created), tuple(existing), tuple(warnings))


# ---------------------------------------------------------------------------------------------
# credential providers (thread-safe, one refresh for many concurrent 401s)
# ---------------------------------------------------------------------------------------------


class _GenerationalProvider:
    """Base for providers shared by copy threads: a burst of concurrent ``refresh()`` calls does one fetch.

    ``generation`` counts fetched credentials.  ``refresh(seen_generation)`` fetches only when the
    caller's generation is still the newest (otherwise another thread already refreshed: the
    newer credential is returned).  A bare ``refresh()`` (the CredentialProvider protocol) fetches
    unless a fetch finished less than ``dedupe_seconds`` ago — the burst of 401s that one stale
    token causes across threads then costs one fetch.
    """

    def __init__(self, dedupe_seconds: float = 2.0) -> None:
        self._lock = threading.RLock()
        self._credential: Credential | None = None
        self._fetched_at = float("-inf")
        self.dedupe_seconds = dedupe_seconds
        self.generation = 0
        self.refreshes = 0  # fetches done by refresh() (not by get())

    def _renew_locked(self, force: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _due_locked(self) -> bool:
        return False

    def _bump_locked(self) -> None:
        self.generation += 1
        self._fetched_at = time.monotonic()

    def get(self) -> Credential:
        """The current credential; fetched on first use and when (nearly) expired."""
        with self._lock:
            if self._credential is None or self._due_locked():
                self._renew_locked(force=False)
                self._bump_locked()
            assert self._credential is not None
            return self._credential

    def refresh(self, seen_generation: int | None = None) -> Credential:
        """A new credential (e.g. after a 401), unless another thread already got one meanwhile."""
        with self._lock:
            if self._credential is not None:
                if seen_generation is not None and seen_generation != self.generation:
                    return self._credential
                if seen_generation is None and time.monotonic() - self._fetched_at < self.dedupe_seconds:
                    return self._credential
            self._renew_locked(force=True)
            self._bump_locked()
            self.refreshes += 1
            assert self._credential is not None
            return self._credential


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _fetch_ecr_token(ecr: Any, registry_id: str | None) -> tuple[str, datetime | None]:
    """``(password, expiresAt)``; raises botocore errors unchanged."""
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    data = ecr.get_authorization_token(**kwargs)["authorizationData"]
    if not data:
        raise AwsError("ECR returned no authorization data", "try again")
    user, password = decode_authorization_token(str(data[0]["authorizationToken"]))
    if user != "AWS":
        log.debug("unexpected ECR token user %r", user)
    return password, _aware(data[0].get("expiresAt"))


class VendorLogin(_GenerationalProvider):
    """Credentials for the vendor registry, through the customer's role (memory only).

    Implements :class:`~wizard.core.credentials.CredentialProvider`.  Holds the assumed role and
    the ECR token from ``ecr.get_authorization_token(registryIds=[vendor account])``; the registry
    is ``settings.vendor_registry`` (never the answer's ``proxyEndpoint``, which is the caller's
    own registry).  ``refresh()`` re-assumes the role when the STS session is (nearly) expired,
    otherwise fetches a new token.  A token whose ``expiresAt`` is already past when issued (moto
    says 2015) is not fatal: its expiry is then ignored and only a registry 401 triggers a refresh.
    """

    def __init__(
        self,
        aws: Aws,
        role_arn: str,
        *,
        duration_seconds: int = ONE_HOUR,
        session_name: str | None = None,
        external_id: str | None = None,
        assumed: AssumedRole | None = None,
        refresh_margin: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
        dedupe_seconds: float = 2.0,
    ) -> None:
        super().__init__(dedupe_seconds)
        self.aws = aws
        self.settings = aws.settings
        self.role_arn = check_role_arn(role_arn)
        self.registry = registry_host(aws.settings.vendor_registry)
        self.duration_seconds = duration_seconds
        self.session_name = session_name
        self.external_id = external_id
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._assumed = assumed
        self._ecr: Any = None
        self.token_expires_at: datetime | None = None
        self.token_expiry_trusted = False
        self.assumptions = 0  # assume_role calls made by this object
        self.token_fetches = 0

    def __repr__(self) -> str:
        return (
            f"VendorLogin(registry={self.registry!r}, role_arn={self.role_arn!r}, "
            f"assumed_arn={self.assumed_arn!r}, sts_expires_at={self.sts_expires_at!r}, "
            f"token_expires_at={self.token_expires_at!r}, generation={self.generation})"
        )

    __str__ = __repr__

    @property
    def assumed(self) -> AssumedRole | None:
        return self._assumed

    @property
    def assumed_arn(self) -> str:
        return self._assumed.assumed_arn if self._assumed else ""

    @property
    def sts_expires_at(self) -> datetime | None:
        return self._assumed.expiration if self._assumed else None

    @property
    def note(self) -> str:
        return self._assumed.note if self._assumed else ""

    def _sts_due(self) -> bool:
        return self._assumed is None or self._assumed.expires_within(self.refresh_margin, self._clock())

    def _due_locked(self) -> bool:
        if self._sts_due():
            return True
        if self.token_expiry_trusted and self.token_expires_at is not None:
            return self._clock() >= self.token_expires_at - timedelta(seconds=self.refresh_margin)
        return False

    def _assume_locked(self) -> None:
        self._assumed = self.aws.assume_role(
            self.role_arn, self.duration_seconds, self.session_name, external_id=self.external_id
        )
        self.assumptions += 1
        self._ecr = None

    def _ecr_client(self) -> Any:
        if self._ecr is None:
            assert self._assumed is not None
            self._ecr = self.aws.session_for(self._assumed, self.settings.region).client("ecr", config=self.aws.config)
        return self._ecr

    def _renew_locked(self, force: bool) -> None:
        if self._sts_due():
            self._assume_locked()
        try:
            password, expires = self._token_locked()
        except bex.ClientError as exc:
            # The STS session died early (revoked, clock skew): assume again once.
            if error_code(exc) not in EXPIRED_CODES | INVALID_CREDENTIAL_CODES:
                raise map_client_error(exc, "ecr:GetAuthorizationToken", self.aws.profile) from exc
            self._assume_locked()
            try:
                password, expires = self._token_locked()
            except (bex.BotoCoreError, bex.ClientError) as exc2:
                raise map_client_error(exc2, "ecr:GetAuthorizationToken", self.aws.profile) from exc2
        except bex.BotoCoreError as exc:
            raise map_client_error(exc, "ecr:GetAuthorizationToken", self.aws.profile) from exc
        now = self._clock()
        self.token_expires_at = expires
        self.token_expiry_trusted = expires is not None and expires > now
        if not self.token_expiry_trusted:
            log.debug("ECR token expiry %s is not in the future; refreshing only when refused", expires)
        limits = [d for d in (self.sts_expires_at, expires if self.token_expiry_trusted else None) if d]
        self._credential = Credential(username="AWS", password=password, expires_at=min(limits) if limits else None)
        log.info("ECR token for %s obtained (generation %d)", self.registry, self.generation + 1)

    def _token_locked(self) -> tuple[str, datetime | None]:
        self.token_fetches += 1
        return _fetch_ecr_token(self._ecr_client(), self.settings.vendor_account)


class EcrTokenProvider(_GenerationalProvider):
    """Registry credentials for the user's own ECR registry (the target), from the user's credentials."""

    def __init__(
        self, aws: Aws, registry_id: str | None, region: str, registry: str = "", dedupe_seconds: float = 2.0
    ) -> None:
        super().__init__(dedupe_seconds)
        self.aws = aws
        self.registry_id = registry_id
        self.region = region
        self.registry = registry
        self.token_expires_at: datetime | None = None
        self.token_expiry_trusted = False
        self.token_fetches = 0

    def __repr__(self) -> str:
        return f"EcrTokenProvider(registry={self.registry!r}, registry_id={self.registry_id!r}, region={self.region!r})"

    __str__ = __repr__

    def _due_locked(self) -> bool:
        exp = self.token_expires_at if self.token_expiry_trusted else None
        return exp is not None and _utcnow() >= exp - timedelta(minutes=5)

    def _renew_locked(self, force: bool) -> None:
        self.token_fetches += 1
        try:
            password, expires = _fetch_ecr_token(self.aws.client("ecr", self.region), self.registry_id)
        except (bex.BotoCoreError, bex.ClientError) as exc:
            raise map_client_error(exc, "ecr:GetAuthorizationToken", self.aws.profile) from exc
        self.token_expiry_trusted = expires is not None and expires > _utcnow()
        self.token_expires_at = expires
        self._credential = Credential(
            username="AWS", password=password, expires_at=expires if self.token_expiry_trusted else None
        )


# ---------------------------------------------------------------------------------------------
# 6. access probe
# ---------------------------------------------------------------------------------------------


def probe(
    login: CredentialProvider,
    tag: str,
    *,
    settings: Settings | None = None,
    service: str = "api",
    timeout: float = 10.0,
) -> ProbeResult:
    """Has Currents granted our role yet? HEAD ``<prefix>/<service>:<tag>`` on the vendor registry.

    401/403 → not_granted (after one refresh, in case the token was stale); 404 → tag_missing;
    connection/TLS errors and other answers → network_error.  AWS failures while getting the
    token raise :class:`AwsError`.
    """
    if settings is None:
        settings = getattr(login, "settings", None)
        if not isinstance(settings, Settings):
            raise TypeError("probe() needs settings= when the provider has no .settings")
    host = settings.vendor_registry
    bare = registry_host(host)
    base, verify = registry_base_url(host, settings)
    repo = settings.source_repo(service)
    url = f"{base}/v2/{repo}/manifests/{tag}"
    what = f"{repo}:{tag} on {bare}"
    role = getattr(login, "role_arn", "")
    credential = login.get()
    _lean_imports.httpcore()
    try:
        with httpx.Client(verify=verify, timeout=timeout, follow_redirects=True) as client:

            def head(cred: Credential | None) -> httpx.Response:
                auth = (cred.username, cred.password) if cred else None
                return client.head(url, headers={"Accept": ACCEPT_MANIFESTS}, auth=auth)

            resp = head(credential)
            if resp.status_code in (401, 403):
                fresh = login.refresh()
                if fresh is not None and (credential is None or fresh.password != credential.password):
                    resp = head(fresh)
    except httpx.HTTPError as exc:
        return ProbeResult(
            "network_error",
            f"could not reach the vendor registry {bare}: {type(exc).__name__}: {exc}",
            "check the network/proxy; for a private mirror check --source-registry, --insecure-registry or --ca-file",
        )
    status = resp.status_code
    if 200 <= status < 300:
        digest = resp.headers.get("Docker-Content-Digest", "")
        return ProbeResult("granted", f"access granted: {what} is readable", status_code=status, digest=digest)
    if status in (401, 403):
        return ProbeResult(
            "not_granted",
            f"the vendor registry refused the role (HTTP {status}) for {what}",
            "Currents has not granted access yet: wait for their confirmation, or re-send the role ARN"
            + (f" ({role})" if role else ""),
            status,
        )
    if status == 404:
        return ProbeResult(
            "tag_missing",
            f"{what} was not found (HTTP 404)",
            "check the tag (--tag) against the versions Currents published",
            status,
        )
    return ProbeResult(
        "network_error",
        f"the vendor registry answered HTTP {status} for {what}",
        "try again in a minute; if it persists, check --source-registry",
        status,
    )
