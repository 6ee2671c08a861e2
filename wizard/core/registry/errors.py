"""Registry failures as :mod:`wizard.core.errors` types, with a one-line message and a next step."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator

import httpx

from wizard.core.errors import AccessNotGranted, RegistryError


class RegistryHTTPError(RegistryError):
    """The registry answered with an HTTP error. ``codes`` are the registry's ``errors[].code``."""

    def __init__(self, message: str, hint: str = "", *, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        self.status = status
        self.codes = codes


class RegistryAuthError(RegistryHTTPError):
    """401/403 that a credential refresh did not cure."""


class RegistryConnectionError(RegistryError):
    """No HTTP answer at all (refused, DNS, TLS, timeouts, resets) after the retries."""

    def __init__(self, message: str, hint: str = "", *, retryable: bool = True) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class BlobVerificationError(RegistryError):
    """A blob's bytes do not match its digest or size. ``retryable``: a fresh read may fix it."""

    def __init__(self, message: str, hint: str = "", *, retryable: bool = False) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


class ManifestVerificationError(RegistryError):
    """A manifest's bytes do not hash to the digest the registry (or the reference) names."""


def parse_error_body(body: bytes) -> list[tuple[str, str]]:
    """``[(code, message), ...]`` from a registry JSON error body (``{"errors": [...]}``); [] otherwise."""
    if not body or body[:1] not in (b"{", b"[", b" ", b"\n"):
        return []
    try:
        doc = json.loads(body[:65536].decode("utf-8", "replace"))
    except ValueError:
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    out: list[tuple[str, str]] = []
    if isinstance(errors, list):
        for e in errors:
            if isinstance(e, dict):
                out.append((str(e.get("code", "") or ""), str(e.get("message", "") or "")))
    return out


def describe_errors(errors: list[tuple[str, str]]) -> str:
    """``"MANIFEST_UNKNOWN: manifest unknown; ..."`` (at most three)."""
    parts = [f"{c}: {m}" if c and m else (c or m) for c, m in errors[:3]]
    return "; ".join(p for p in parts if p)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_retryable_transport_error(exc: BaseException) -> bool:
    """Connection trouble worth another try: resets, timeouts, refused; not TLS trust or DNS."""
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)):
        return False
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return False
        if isinstance(cause, socket.gaierror):
            return False
    return isinstance(exc, httpx.TransportError)


def transport_error(exc: BaseException, host: str, what: str, scheme: str = "https") -> RegistryConnectionError:
    """Turn an httpx/socket/ssl failure into a one-line message with a hint."""
    retryable = is_retryable_transport_error(exc)
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = getattr(cause, "verify_message", "") or "certificate verify failed"
            return RegistryConnectionError(
                f"the TLS certificate of {host} is not trusted ({reason})",
                "pass --ca-file with the registry's CA certificate, or use an http:// target for a plain-HTTP registry",
                retryable=False,
            )
        if isinstance(cause, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(cause).upper():
            return RegistryConnectionError(
                f"{host} did not answer with TLS (it looks like a plain-HTTP registry)",
                f"use http://{host} as the address, or pass --insecure-registry {host}",
                retryable=False,
            )
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return RegistryConnectionError(
                f"TLS handshake with {host} failed ({cause.__class__.__name__}: {_short(cause)})",
                "check the address and port, or pass --ca-file / use http:// for a plain-HTTP registry",
                retryable=False,
            )
        if isinstance(cause, socket.gaierror):
            return RegistryConnectionError(
                f"cannot resolve the registry host {host}",
                "check the host name and your DNS/network",
                retryable=False,
            )
        if isinstance(cause, ConnectionRefusedError):
            return RegistryConnectionError(
                f"cannot connect to {host}: connection refused",
                f"is the registry running at {host}? check the host and port",
                retryable=retryable,
            )
    if isinstance(exc, httpx.TimeoutException):
        return RegistryConnectionError(
            f"{host} did not answer in time during {what} ({exc.__class__.__name__})",
            "check the network path to the registry and try again",
            retryable=retryable,
        )
    if isinstance(exc, httpx.ConnectError):
        if "wrong version number" in str(exc).lower():
            return RegistryConnectionError(
                f"{host} did not answer with TLS (it looks like a plain-HTTP registry)",
                f"use http://{host} as the address, or pass --insecure-registry {host}",
                retryable=False,
            )
        return RegistryConnectionError(
            f"cannot connect to {host}: {_short(exc)}",
            f"is the registry running at {host}? check the host and port",
            retryable=retryable,
        )
    return RegistryConnectionError(
        f"connection to {host} failed during {what}: {exc.__class__.__name__}: {_short(exc)}",
        "try again; interrupted copies resume where they stopped",
        retryable=retryable,
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:200]


def status_hint(status: int, codes: tuple[str, ...]) -> str:
    if "DIGEST_INVALID" in codes or "BLOB_UPLOAD_INVALID" in codes:
        return "the data did not match its digest; run the copy again"
    if "MANIFEST_BLOB_UNKNOWN" in codes or "BLOB_UNKNOWN" in codes:
        return "a layer the manifest needs is missing at the registry; run the copy again"
    if "NAME_UNKNOWN" in codes:
        return "check the repository path (on ECR, create the repository first)"
    if "MANIFEST_UNKNOWN" in codes or status == 404:
        return "check the repository path and the tag"
    if status == 413:
        return "the registry (or a proxy in front of it) refused the size: raise its body size limit"
    if status in (405, 501) or "UNSUPPORTED" in codes:
        return "the registry does not allow this operation (read-only, or a pull-through cache?)"
    if status == 429 or "TOOMANYREQUESTS" in codes:
        return "the registry is throttling requests; wait a little and run again"
    if status >= 500:
        return "the registry had a problem; try again later (finished layers are not sent again)"
    return "check the registry address and permissions"


def http_error(host: str, what: str, status: int, body: bytes = b"", reason: str = "") -> RegistryHTTPError:
    """An HTTP error status as a :class:`RegistryHTTPError` (error body parsed into the message)."""
    errors = parse_error_body(body)
    codes = tuple(c for c, _ in errors if c)
    detail = describe_errors(errors) or reason
    msg = f"{host}: {what} failed with HTTP {status}" + (f" ({detail})" if detail else "")
    return RegistryHTTPError(msg, status_hint(status, codes), status=status, codes=codes)


def auth_error(
    host: str, what: str, status: int, body: bytes, *, role: str, credentials_sent: bool, repo: str = ""
) -> RegistryHTTPError | AccessNotGranted:
    """401/403 after the one allowed credential refresh, worded for the source or the target."""
    errors = parse_error_body(body)
    codes = tuple(c for c, _ in errors if c)
    detail = describe_errors(errors)
    suffix = f" (HTTP {status}" + (f" {detail})" if detail else ")")
    where = f"{host}/{repo}" if repo else host
    if role == "source":
        if status == 403:
            return AccessNotGranted(
                f"the vendor registry denied access to {where}{suffix}",
                "Currents has not granted your role access yet: share the role ARN with Currents, then re-run",
            )
        return RegistryAuthError(
            f"the vendor registry {host} refused the login token{suffix}",
            "run the auth step again to get a fresh ECR token (and check the role grant)",
            status=status,
            codes=codes,
        )
    if role == "target":
        if not credentials_sent:
            return RegistryAuthError(
                f"{host} requires a login{suffix}",
                f"pass --target-username and --target-password-stdin (or run docker login {host})",
                status=status,
                codes=codes,
            )
        if status == 403:
            return RegistryAuthError(
                f"{host} denied {what}{suffix}",
                f"check that --target-username may push to {where}",
                status=status,
                codes=codes,
            )
        return RegistryAuthError(
            f"{host} refused the credentials{suffix}",
            "check --target-username and the password (--target-password-stdin)",
            status=status,
            codes=codes,
        )
    if not credentials_sent:
        return RegistryAuthError(
            f"{host} requires a login{suffix}",
            "give a username and password for this registry",
            status=status,
            codes=codes,
        )
    return RegistryAuthError(
        f"{host} {'denied ' + what if status == 403 else 'refused the credentials'}{suffix}",
        "check the registry username and password",
        status=status,
        codes=codes,
    )
