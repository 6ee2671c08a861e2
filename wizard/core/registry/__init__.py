"""OCI Distribution registry client: auth, manifests, blobs, retries (see :mod:`.client`)."""

# First: imports httpx and httpcore without the optional parts they would load for nothing.
from wizard.core.registry import _lean_imports  # noqa: F401
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
