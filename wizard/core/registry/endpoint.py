"""Where a registry is and how to talk to it: scheme, TLS trust, timeouts, pool size."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wizard.core.errors import InputError

#: Docker Hub's API host; ``docker.io`` is only its name in image references.
DOCKER_HUB_ALIASES = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}

ROLES = ("source", "target", "registry")


def split_scheme(value: str) -> tuple[str | None, str]:
    """``"http://h:5000/x/"`` -> ``("http", "h:5000")``; the path, if any, is dropped."""
    raw = value.strip()
    scheme: str | None = None
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise InputError(
                f"unsupported registry scheme in {value!r}", "use HOST[:PORT], https://HOST or http://HOST"
            )
    host = raw.strip("/").split("/", 1)[0]
    if not host:
        raise InputError(f"no registry host in {value!r}", "use HOST[:PORT], e.g. registry.example.com")
    return scheme, host


@dataclass(frozen=True)
class RegistryEndpoint:
    """One registry host.

    ``scheme`` is ``https`` unless plain HTTP was asked for (see :meth:`parse`).  ``ca_file``
    adds a CA to the system trust store; ``verify=False`` turns certificate checks off (not
    offered by the CLI).  ``role`` only changes the hints of error messages: ``source`` is the
    vendor's ECR (a 403 there means access was not granted), ``target`` is the customer registry.
    """

    host: str
    scheme: str = "https"
    ca_file: str | None = None
    verify: bool = True
    role: str = "registry"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_connections: int = 16
    proxy: str | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("http", "https"):
            raise InputError(f"unsupported registry scheme {self.scheme!r}", "use https or http")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")

    @classmethod
    def parse(
        cls,
        value: str,
        *,
        insecure_registries: Iterable[str] = (),
        ca_file: str | os.PathLike[str] | None = None,
        role: str = "registry",
        **options: object,
    ) -> RegistryEndpoint:
        """``[http(s)://]HOST[:PORT][/path]`` -> endpoint.

        Plain HTTP is used only for an explicit ``http://`` or a host listed in
        ``insecure_registries`` (``--insecure-registry``); everything else is HTTPS, verified.
        """
        scheme, host = split_scheme(value)
        host = DOCKER_HUB_ALIASES.get(host.lower(), host)
        insecure = {split_scheme(h)[1].lower() for h in insecure_registries if h.strip()}
        if scheme is None:
            scheme = "http" if host.lower() in insecure else "https"
        ca = str(ca_file) if ca_file else None
        if ca is not None and not Path(ca).is_file():
            raise InputError(f"CA file {ca} does not exist", "pass --ca-file with a PEM file")
        return cls(host=host, scheme=scheme, ca_file=ca, role=role, **options)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def insecure(self) -> bool:
        return self.scheme == "http"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things the user must see (plain HTTP, verification off). Front ends show them."""
        out = []
        if self.scheme == "http":
            out.append(f"using plain HTTP for {self.host}: images and credentials travel unencrypted")
        elif not self.verify:
            out.append(f"TLS certificate checks are off for {self.host}")
        return tuple(out)

    def ssl_context(self) -> ssl.SSLContext | bool:
        """An explicit SSL context (never the environment's CA variables), or False when off.

        The system trust store plus ``ca_file``: a registry that redirects blob downloads to
        public storage keeps working when a private CA is added.
        """
        if not self.verify:
            return False
        ctx = ssl.create_default_context()
        if self.ca_file:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise InputError(
                    f"cannot read CA file {self.ca_file}: {exc.__class__.__name__}",
                    "pass --ca-file with a PEM-encoded CA certificate",
                ) from exc
        return ctx


def proxy_from_environment(scheme: str, host: str) -> str | None:
    """The proxy for ``scheme://host`` from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``; never for loopback.

    Clients run with ``trust_env=False`` (so CA variables of the environment cannot override
    ``--ca-file``); this keeps corporate proxies working anyway.
    """
    import urllib.request

    name = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") else host[1:].split("]", 1)[0]
    if name in ("localhost", "::1") or name.startswith("127."):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    try:
        if urllib.request.proxy_bypass(name):
            return None
    except OSError:  # pragma: no cover - platform resolver trouble
        pass
    return proxy
