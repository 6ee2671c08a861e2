"""OCI Distribution registry client: auth, manifests, blobs, retries (see :mod:`.client`)."""

import sys

if "httpx" not in sys.modules:
    # httpx's optional command-line client (``httpx._main``) imports rich, click and pygments:
    # ~50 ms of start-up the registry client never uses.  Import httpx as if its ``[cli]`` extra
    # were absent (httpx supports that), then drop the marker so an explicit import still works.
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]

from wizard.core.registry.auth import Challenge, parse_www_authenticate, repository_scope
from wizard.core.registry.client import ClientStats, RegistryBlobReader, RegistryClient
from wizard.core.registry.endpoint import RegistryEndpoint, proxy_from_environment
from wizard.core.registry.errors import (
    BlobVerificationError,
    ManifestVerificationError,
    RegistryAuthError,
    RegistryConnectionError,
    RegistryHTTPError,
)
from wizard.core.registry.retry import RetryPolicy, backoff_delay, parse_retry_after

__all__ = [
    "BlobVerificationError",
    "Challenge",
    "ClientStats",
    "ManifestVerificationError",
    "RegistryAuthError",
    "RegistryBlobReader",
    "RegistryClient",
    "RegistryConnectionError",
    "RegistryEndpoint",
    "RegistryHTTPError",
    "RetryPolicy",
    "backoff_delay",
    "parse_retry_after",
    "parse_www_authenticate",
    "proxy_from_environment",
    "repository_scope",
]
