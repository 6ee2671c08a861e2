"""Real loopback services for integration tests and benchmarks (see ``../shared/TESTBED.md``).

Plain Python, usable from pytest fixtures and from scripts::

    from tests.testbed import Registry, MotoServer, Dockerd
    reg = Registry(auth=("AWS", ECR_PASSWORD))      # started and answering /v2/ on return
    ...
    reg.stop()                                      # or stop_all(); also run at interpreter exit

Every service binds 127.0.0.1 on a port chosen at run time, records the PID it started and
stops only that PID (and, for dockerd, its own process group).  Nothing here imports the product.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

# moto's ECR token for the vendor account always decodes to AWS:<registryId>-auth-token (TESTBED §5).
VENDOR_ACCOUNT = "513558712013"
ECR_USER = "AWS"
ECR_PASSWORD = f"{VENDOR_ACCOUNT}-auth-token"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class TestbedError(RuntimeError):
    """A testbed service could not be started or queried."""

    __test__ = False


def in_ci() -> bool:
    """True when running under CI (``CI=true``): missing tools must then fail, not skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------------------------

_RUNNING: list[_Service] = []
_RUNNING_LOCK = threading.Lock()


def stop_all() -> None:
    """Stop every service this process started (idempotent; registered with ``atexit``)."""
    with _RUNNING_LOCK:
        services = list(reversed(_RUNNING))
    for svc in services:
        with contextlib.suppress(Exception):
            svc.stop()


atexit.register(stop_all)


def _stop_pid(proc: subprocess.Popen[bytes], timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM, wait, then SIGKILL the process we started (and its group when ``group``)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    if group:
        # Leftover children (e.g. dockerd's managed containerd) live in the group we created.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class _Service:
    """Base: owns a work dir, a process and its log; removes itself from the registry on stop."""

    name = "service"

    def __init__(self, workdir: str | os.PathLike[str] | None) -> None:
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"tb-{self.name}-"))
            self._owns_workdir = True
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._owns_workdir = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _spawn(self, argv: list[str], env: Mapping[str, str], new_session: bool = False) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=self.workdir,
                start_new_session=new_session,
            )
        finally:
            log.close()
        with _RUNNING_LOCK:
            _RUNNING.append(self)

    def _stop_process(self, group: bool = False) -> None:
        if self.proc is not None:
            _stop_pid(self.proc, group=group)
        with _RUNNING_LOCK:
            if self in _RUNNING:
                _RUNNING.remove(self)

    def stop(self) -> None:
        self._stop_process()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# docker-registry (distribution 2.8)
# --------------------------------------------------------------------------------------------


def make_self_signed_cert(directory: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """Create ``tls.crt``/``tls.key`` for ``names`` (IPs and DNS names) with openssl; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "tls.crt", directory / "tls.key"
    sans = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in names)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            f"/CN={names[0]}",
            "-addext",
            f"subjectAltName={sans}",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"PATH": SAFE_PATH},
    )
    return crt, key


def _htpasswd_line(user: str, password: str) -> str:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()
    return f"{user}:{hashed}\n"


class Registry(_Service):
    """A Debian ``docker-registry`` on 127.0.0.1:<free port>, started and ready on return.

    ``auth=("user", "password")`` enables bcrypt htpasswd basic auth; ``tls=True`` serves HTTPS
    with a fresh self-signed cert whose CA-only copy is ``ca_file`` (its folder ``cert_dir`` holds
    nothing else, as skopeo's ``--cert-dir`` wants).
    """

    name = "registry"

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: bool = False,
        workdir: str | os.PathLike[str] | None = None,
        storage: str | os.PathLike[str] | None = None,
        timeout: float = 15.0,
    ) -> None:
        super().__init__(workdir)
        self.auth = auth
        self.tls = tls
        self.storage = Path(storage) if storage else self.workdir / "data"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.ca_file: Path | None = None
        self.cert_dir: Path | None = None
        self._key_file: Path | None = None
        if tls:
            crt, key = make_self_signed_cert(self.workdir / "tls")
            self.cert_dir = self.workdir / "ca"
            self.cert_dir.mkdir(exist_ok=True)
            self.ca_file = self.cert_dir / "ca.crt"
            shutil.copyfile(crt, self.ca_file)
            self._cert_file, self._key_file = crt, key
        self.htpasswd: Path | None = None
        if auth:
            self.htpasswd = self.workdir / "htpasswd"
            self.htpasswd.write_text(_htpasswd_line(*auth))
        self.port = 0
        last_error = ""
        for _attempt in range(3):  # a port picked free can be taken by a concurrent test: retry
            self.port = free_port()
            self._write_config()
            self._spawn(
                ["docker-registry", "serve", str(self.workdir / "config.yml")],
                env={"PATH": SAFE_PATH, "HOME": str(self.workdir)},
            )
            try:
                self._wait_ready(timeout)
                return
            except TestbedError as exc:
                last_error = str(exc)
                self._stop_process()
        self.stop()
        raise TestbedError(f"docker-registry did not start: {last_error}")

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: testbed-not-a-secret",
        ]
        if self.tls:
            lines.append(f"  tls: {{certificate: {self._cert_file}, key: {self._key_file}}}")
        if self.htpasswd:
            lines += ["auth:", f"  htpasswd: {{realm: testbed, path: {self.htpasswd}}}"]
        (self.workdir / "config.yml").write_text("\n".join(lines) + "\n")

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` — the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting only this registry's cert (None for plain HTTP)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self, method: str, path: str, *, auth: tuple[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One stdlib HTTP request to this registry: ``(status, headers, body)``; never raises on 4xx/5xx."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context())
        )
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TestbedError(f"exited with {self.proc.returncode}: {_tail(self.log_path)}")
            try:
                status, _, _ = self.request("GET", "/v2/")
                if status in (200, 401):
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.03)
        raise TestbedError(f"no answer on {self.url}/v2/ after {timeout}s: {_tail(self.log_path)}")

    def add_user(self, user: str, password: str) -> None:
        """Append an htpasswd user while running (registry 2.8 re-reads the file on mtime change)."""
        if not self.htpasswd:
            raise TestbedError("registry was started without auth")
        with self.htpasswd.open("a") as f:
            f.write(_htpasswd_line(user, password))

    def __repr__(self) -> str:
        return f"Registry({self.url}, auth={'yes' if self.auth else 'no'}, pid={self.pid})"


# --------------------------------------------------------------------------------------------
# moto_server (IAM, STS, ECR stand-in)
# --------------------------------------------------------------------------------------------


class MotoServer(_Service):
    """``moto_server`` as a real subprocess on 127.0.0.1:<free port>."""

    name = "moto"
    #: Variables that would make boto3 read real config or credentials; removed by ``apply_env``.
    UNSET_ENV: tuple[str, ...] = (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_REGION",
    )

    def __init__(self, *, workdir: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> None:
        super().__init__(workdir)
        self.config_file = self.workdir / "aws-config"
        self.credentials_file = self.workdir / "aws-credentials"
        self.config_file.write_text("")
        self.credentials_file.write_text("")
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], env=env)
            try:
                self._wait_ready(timeout)
                return
            except TestbedError as exc:
                last_error = str(exc)
                self._stop_process()
        self.stop()
        raise TestbedError(f"moto_server did not start: {last_error}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _post(self, path: str, body: bytes = b"", content_type: str = "text/plain") -> int:
        req = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": content_type}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            resp.read()
            return int(resp.status)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TestbedError(f"exited with {self.proc.returncode}: {_tail(self.log_path)}")
            try:
                with opener.open(self.endpoint + "/moto-api/data.json", timeout=2) as resp:
                    resp.read()
                    return
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise TestbedError(f"no answer on {self.endpoint} after {timeout}s: {_tail(self.log_path)}")

    def set_auth(self, enabled: bool) -> None:
        """Turn moto's IAM enforcement on (every call checked) or off (the default)."""
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")

    def reset(self) -> None:
        """Forget all state (auth enforcement is switched off first, as moto needs)."""
        self.set_auth(False)
        self._post("/moto-api/reset")

    def env(self) -> dict[str, str]:
        """Variables to *set* so boto3 talks to this server with dummy keys and no real config.

        Also remove :attr:`UNSET_ENV` (an empty ``AWS_PROFILE`` makes boto3 fail), e.g. with
        :meth:`apply_env` or :meth:`subprocess_env`.
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.config_file),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def apply_env(self, environ: Any = None) -> None:
        """Apply :meth:`env` to ``environ`` (default ``os.environ``) or to a pytest ``monkeypatch``."""
        if environ is None:
            environ = os.environ
        if hasattr(environ, "setenv"):  # pytest MonkeyPatch
            for k, v in self.env().items():
                environ.setenv(k, v)
            for k in self.UNSET_ENV:
                environ.delenv(k, raising=False)
            return
        for k in self.UNSET_ENV:
            environ.pop(k, None)
        environ.update(self.env())

    def subprocess_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment for a child process: ``base`` (default ``os.environ``) + :meth:`env`."""
        env: MutableMapping[str, str] = dict(os.environ if base is None else base)
        self.apply_env(env)
        return dict(env)

    @contextlib.contextmanager
    def patched_environ(self) -> Iterator[None]:
        """Apply :meth:`env` to ``os.environ`` for a ``with`` block, then restore it exactly."""
        saved = dict(os.environ)
        self.apply_env()
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def __repr__(self) -> str:
        return f"MotoServer({self.endpoint}, pid={self.pid})"


# --------------------------------------------------------------------------------------------
# dockerd (Debian docker.io 20.10)
# --------------------------------------------------------------------------------------------


def _unix_http(sock_path: str, method: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Minimal HTTP/1.0 over a unix socket (no SDK needed to see if dockerd is up)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


class Dockerd(_Service):
    """A private dockerd (own data-root, exec-root, pidfile and unix socket), ready on return.

    No bridge, no iptables.  overlay2 storage, falling back to vfs when overlay2 will not start.
    ``127.0.0.0/8`` is an insecure registry by default, so the loopback registries need nothing.
    """

    name = "dockerd"
    BINARY = "dockerd"

    def __init__(
        self,
        *,
        storage_driver: str | None = None,
        insecure_registries: tuple[str, ...] = (),
        timeout: float = 60.0,
    ) -> None:
        # Always a short /tmp path of our own: unix socket paths are limited to 107 bytes.
        super().__init__(None)
        self.socket_path = self.workdir / "docker.sock"
        self.docker_config = self.workdir / "docker-config"  # DOCKER_CONFIG for clients of this daemon
        self.docker_config.mkdir()
        (self.docker_config / "config.json").write_text("{}\n")
        self.config_file = self.workdir / "daemon.json"
        self.config_file.write_text(json.dumps({"insecure-registries": list(insecure_registries)}))
        drivers = [storage_driver] if storage_driver else ["overlay2", "vfs"]
        errors = []
        for driver in drivers:
            self.storage_driver = driver
            try:
                self._start(driver, timeout)
                return
            except TestbedError as exc:
                errors.append(f"{driver}: {exc}")
                self._stop_process(group=True)
                shutil.rmtree(self.workdir / "data", ignore_errors=True)
                shutil.rmtree(self.workdir / "exec", ignore_errors=True)
        self.stop()
        raise TestbedError("dockerd did not start: " + " | ".join(errors))

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.BINARY, path=SAFE_PATH) is not None

    def _start(self, driver: str, timeout: float) -> None:
        argv = [
            shutil.which(self.BINARY, path=SAFE_PATH) or self.BINARY,
            "--storage-driver",
            driver,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--ip-masq=false",
            "--host",
            f"unix://{self.socket_path}",
            "--data-root",
            str(self.workdir / "data"),
            "--exec-root",
            str(self.workdir / "exec"),
            "--pidfile",
            str(self.workdir / "dockerd.pid"),
            "--config-file",
            str(self.config_file),
        ]
        env = {"PATH": SAFE_PATH, "HOME": str(self.workdir), "DOCKER_CONFIG": str(self.docker_config)}
        self._spawn(argv, env=env, new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise TestbedError(f"exited with {self.proc.returncode}: {_tail(self.log_path, 8)}")
            try:
                status, _ = _unix_http(str(self.socket_path), "GET", "/_ping")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TestbedError(f"no answer on {self.socket_path} after {timeout}s: {_tail(self.log_path, 8)}")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def env(self) -> dict[str, str]:
        """``DOCKER_HOST`` and a private ``DOCKER_CONFIG`` for clients of this daemon."""
        return {"DOCKER_HOST": self.docker_host, "DOCKER_CONFIG": str(self.docker_config)}

    def reload(self) -> None:
        """SIGHUP: re-read ``daemon.json`` (e.g. after :meth:`set_insecure_registries`)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def set_insecure_registries(self, hosts: tuple[str, ...]) -> None:
        self.config_file.write_text(json.dumps({"insecure-registries": list(hosts)}))
        self.reload()

    def stop(self) -> None:
        self._stop_process(group=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Dockerd({self.docker_host}, {self.storage_driver}, pid={self.pid})"


# --------------------------------------------------------------------------------------------
# skopeo: the independent digest oracle
# --------------------------------------------------------------------------------------------

_EMPTY_AUTHFILE: Path | None = None


def hold_state_lock(state: Path, seconds: float = 60) -> subprocess.Popen[str]:
    """A second process holding the wizard's state lock on ``state`` (returns once it holds it).

    The caller kills and waits for it.
    """
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from wizard.core.state import StateStore;"
            f"s=StateStore(Path({str(state)!r})); s.acquire();"
            f"print('locked', flush=True); time.sleep({seconds})",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    if holder.stdout is None or holder.stdout.readline().strip() != "locked":
        holder.kill()
        holder.wait()
        raise TestbedError(f"the lock holder did not take the lock on {state}")
    return holder


def create_whoami_only_user(iam: Any, name: str = "limited") -> dict[str, str]:
    """An IAM user (through ``iam``, a boto3 client on moto) allowed only ``sts:GetCallerIdentity``;
    returns its access key as ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` variables."""
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="only-whoami",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def _empty_authfile() -> Path:
    global _EMPTY_AUTHFILE
    if _EMPTY_AUTHFILE is None or not _EMPTY_AUTHFILE.exists():
        fd, name = tempfile.mkstemp(prefix="tb-skopeo-auth-", suffix=".json")
        os.write(fd, b'{"auths": {}}\n')
        os.close(fd)
        _EMPTY_AUTHFILE = Path(name)
        atexit.register(lambda p=_EMPTY_AUTHFILE: p.unlink(missing_ok=True))
    return _EMPTY_AUTHFILE


def skopeo_argv(
    args: list[str],
    ref: str,
    *,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    cert_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """``skopeo <args...> [flags] docker://REF`` with an empty auth file (no ambient logins)."""
    if "://" not in ref:
        ref = "docker://" + ref
    argv = ["skopeo", *args, "--authfile", str(_empty_authfile())]
    if cert_dir is not None:
        argv += ["--cert-dir", str(cert_dir), "--tls-verify=true"]
    else:
        argv.append(f"--tls-verify={'true' if tls_verify else 'false'}")
    if creds:
        argv += ["--creds", f"{creds[0]}:{creds[1]}"]  # test registries only
    else:
        argv.append("--no-creds")
    return [*argv, ref]


def skopeo_inspect_raw(
    ref: str,
    *,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    cert_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> bytes:
    """The manifest bytes exactly as the registry serves them (``skopeo inspect --raw``)."""
    argv = skopeo_argv(["inspect", "--raw"], ref, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    res = subprocess.run(argv, capture_output=True, timeout=timeout, env={**os.environ, "PATH": SAFE_PATH})
    if res.returncode != 0:
        raise TestbedError(f"skopeo inspect --raw {ref} failed: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def skopeo_digest(
    ref: str,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    cert_dir: str | os.PathLike[str] | None = None,
) -> str:
    """``sha256:<hex>`` of the raw manifest at ``ref`` as skopeo sees it."""
    raw = skopeo_inspect_raw(ref, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def skopeo_list_tags(
    repo_ref: str,
    *,
    tls_verify: bool = False,
    creds: tuple[str, str] | None = None,
    cert_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Tags of a repository (``skopeo list-tags``)."""
    argv = skopeo_argv(["list-tags"], repo_ref, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    res = subprocess.run(argv, capture_output=True, timeout=60, env={**os.environ, "PATH": SAFE_PATH})
    if res.returncode != 0:
        raise TestbedError(f"skopeo list-tags {repo_ref} failed: {res.stderr.decode(errors='replace').strip()}")
    return list(json.loads(res.stdout)["Tags"])


if __name__ == "__main__":  # pragma: no cover - manual helper
    # python -m tests.testbed : start one of everything, print how to reach it, wait for Ctrl-C.
    moto = MotoServer()
    vendor = Registry(auth=(ECR_USER, ECR_PASSWORD))
    target = Registry()
    print(f"moto     {moto.endpoint}\nvendor   {vendor.url} (user {ECR_USER})\ntarget   {target.url}")
    if Dockerd.available():
        d = Dockerd()
        print(f"dockerd  {d.docker_host}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()
