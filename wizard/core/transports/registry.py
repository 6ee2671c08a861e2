"""The registry transport: one OCI Distribution registry host behind the :class:`Transport` interface.

Repository paths are relative to the host (``currents/on-prem/api``).  All the work is done by
:class:`wizard.core.registry.RegistryClient`; this class only adapts names and builds the client
from :class:`~wizard.core.settings.Settings` (``--insecure-registry``, ``--ca-file``).
"""

from __future__ import annotations

from dataclasses import replace

from wizard.core.credentials import CredentialProvider
from wizard.core.registry import RegistryClient, RegistryEndpoint, RetryPolicy, proxy_from_environment
from wizard.core.registry.endpoint import split_scheme
from wizard.core.settings import Settings
from wizard.core.transports.base import BlobReader, Descriptor, Manifest, Progress, Transport


class RegistryTransport(Transport):
    """A registry host as a transport. Thread-safe (one pooled HTTP client shared by all threads)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.endpoint = client.endpoint
        self.name = f"registry {client.host}"

    @classmethod
    def for_host(
        cls,
        host: str,
        settings: Settings | None = None,
        credentials: CredentialProvider | None = None,
        *,
        role: str | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
    ) -> RegistryTransport:
        """``host`` is ``[http(s)://]HOST[:PORT]``; ``settings`` supplies insecure hosts and the CA file.

        ``role`` defaults to ``source`` for the vendor registry named in ``settings`` and
        ``target`` otherwise (it only changes error hints).
        """
        settings = settings or Settings()
        _, bare = split_scheme(host)
        if role is None:
            _, vendor = split_scheme(settings.vendor_registry)
            role = "source" if bare.lower() == vendor.lower() else "target"
        endpoint = RegistryEndpoint.parse(
            host,
            insecure_registries=settings.insecure_registries,
            ca_file=settings.ca_file,
            role=role,
            max_connections=max_connections,
        )
        proxy = proxy_from_environment(endpoint.scheme, endpoint.host)
        if proxy:
            endpoint = replace(endpoint, proxy=proxy)
        return cls(RegistryClient(endpoint, credentials, retry=retry))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Messages a front end must show (plain HTTP in use)."""
        return self.endpoint.warnings

    def resolve(self, repo: str, reference: str) -> Descriptor | None:
        return self.client.resolve(repo, reference)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        return self.client.get_manifest(repo, reference)

    def find_manifest(self, repo: str, reference: str) -> Manifest | None:
        return self.client.find_manifest(repo, reference)

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.client.has_blob(repo, digest)

    def open_blob(self, repo: str, digest: str) -> BlobReader:
        return self.client.open_blob(repo, digest)

    def put_blob(self, repo: str, digest: str, size: int, reader: BlobReader, progress: Progress) -> None:
        self.client.put_blob(repo, digest, size, reader, progress)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        return self.client.mount_blob(repo, digest, from_repo)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        return self.client.put_manifest(repo, reference, manifest)

    def list_tags(self, repo: str) -> list[str]:
        return self.client.list_tags(repo)

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"RegistryTransport({self.client.base_url})"
