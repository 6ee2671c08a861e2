"""wizard.core.aws against a real ``moto_server`` (and real loopback registries) over HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import httpx
import pytest

from tests.testbed import ECR_PASSWORD, MotoServer, Registry, create_whoami_only_user, free_port
from wizard.core.aws import (
    CREATED_BY_KEY,
    CREATED_BY_VALUE,
    IMMUTABLE_WARNING,
    Aws,
    VendorLogin,
    probe,
)
from wizard.core.credentials import Credential, StaticCredentials
from wizard.core.errors import AwsError, InputError
from wizard.core.settings import Settings

ACCOUNT = "123456789012"
VENDOR = "513558712013"
OWN_ECR = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Auth", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {
            "Sid": "Pull",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": [f"arn:aws:ecr:us-east-1:{VENDOR}:repository/currents/on-prem/api"],
        },
    ],
}


def role_arn(name: str = "CurrentsEcrPull") -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


@pytest.fixture
def aws(aws_env: MotoServer, tmp_path: Path) -> Aws:
    return Aws(Settings(dir=tmp_path))


# -- identity and credential errors ---------------------------------------------------------------


def test_identity_with_base_credentials(aws: Aws) -> None:
    ident = aws.identity()
    assert ident.arn == f"arn:aws:sts::{ACCOUNT}:user/moto"
    assert ident.account == ACCOUNT
    assert ident.name == "moto"
    assert ident.user_id


def test_no_credentials_names_the_fix(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(AwsError) as info:
        Aws(Settings(dir=tmp_path)).identity()
    assert "no AWS credentials" in info.value.message
    assert "aws configure" in info.value.hint and "aws sso login" in info.value.hint


def test_unknown_profile_is_input_error(aws_env: MotoServer, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        Aws(Settings(dir=tmp_path), profile="does-not-exist").identity()
    assert "'does-not-exist'" in info.value.message
    assert "aws configure" in info.value.hint


def test_sso_profile_not_logged_in(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile corp-sso]\n"
        "sso_start_url = https://example.awsapps.com/start\n"
        "sso_region = us-east-1\n"
        f"sso_account_id = {ACCOUNT}\n"
        "sso_role_name = Admin\n"
        "region = us-east-1\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/sso/cache
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsError) as info:
        Aws(Settings(dir=tmp_path), profile="corp-sso").identity()
    assert "SSO" in info.value.message
    assert "aws sso login --profile corp-sso" in info.value.hint


# -- role -----------------------------------------------------------------------------------------


def test_role_created_then_unchanged_then_differs_then_updated(aws: Aws) -> None:
    assert aws.get_role("CurrentsEcrPull") is None

    out = aws.ensure_role("CurrentsEcrPull", TRUST, POLICY)
    assert out.status == "created"
    assert out.arn == role_arn()
    info = aws.get_role("CurrentsEcrPull")
    assert info is not None
    assert info.created_by_wizard and info.tags[CREATED_BY_KEY] == CREATED_BY_VALUE
    assert info.trust_policy == TRUST and info.policy == POLICY

    again = aws.ensure_role("CurrentsEcrPull", TRUST, POLICY)
    assert again.status == "unchanged" and again.arn == out.arn

    # a policy that means the same with other ordering is still "unchanged"
    reordered = json.loads(json.dumps(POLICY))
    reordered["Statement"].reverse()
    assert aws.ensure_role("CurrentsEcrPull", TRUST, reordered).status == "unchanged"

    wider = json.loads(json.dumps(POLICY))
    wider["Statement"][1]["Resource"].append(f"arn:aws:ecr:us-east-1:{VENDOR}:repository/currents/on-prem/director")
    differs = aws.ensure_role("CurrentsEcrPull", TRUST, wider)
    assert differs.status == "differs"
    assert differs.differences == ("permissions policy",)
    info = aws.get_role("CurrentsEcrPull")
    assert info is not None and info.policy == POLICY  # untouched without update

    updated = aws.ensure_role("CurrentsEcrPull", TRUST, wider, update=True)
    assert updated.status == "updated"
    info = aws.get_role("CurrentsEcrPull")
    assert info is not None and info.policy == wider
    assert aws.ensure_role("CurrentsEcrPull", TRUST, wider).status == "unchanged"


def test_existing_role_without_our_policy_differs(aws: Aws) -> None:
    iam = boto3.client("iam")
    iam.create_role(RoleName="TheirRole", AssumeRolePolicyDocument=json.dumps(TRUST))
    out = aws.ensure_role("TheirRole", TRUST, POLICY)
    assert out.status == "differs" and out.differences == ("permissions policy",)
    assert out.role is not None and not out.role.created_by_wizard


def test_invalid_role_name(aws: Aws) -> None:
    with pytest.raises(InputError):
        aws.ensure_role("bad name!", TRUST, POLICY)


# -- assume role ----------------------------------------------------------------------------------


def test_assume_role(aws: Aws) -> None:
    aws.ensure_role("CurrentsEcrPull", TRUST, POLICY)
    before = datetime.now(timezone.utc)
    assumed = aws.assume_role(role_arn(), session_name="currents-wizard-jo hn")
    assert assumed.session_name == "currents-wizard-jo-hn"
    assert assumed.assumed_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/CurrentsEcrPull/currents-wizard-jo-hn"
    assert assumed.access_key_id.startswith("ASIA")
    assert timedelta(minutes=59) < assumed.expiration - before < timedelta(minutes=61)
    assert assumed.secret_access_key not in repr(assumed) and assumed.session_token not in str(assumed)
    # the credentials work
    ident = aws.session_for(assumed).client("sts").get_caller_identity()
    assert ident["Arn"] == assumed.assumed_arn


def test_assume_role_default_session_name_uses_identity(aws: Aws) -> None:
    aws.identity()
    assumed = aws.assume_role(role_arn())
    assert assumed.session_name == "currents-wizard-moto"


# -- a tiny fake STS for answers moto never gives (role chaining cap, throttling) -----------------

_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class _FakeSts(BaseHTTPRequestHandler):
    calls: list[dict[str, str]]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        params = {k: v[0] for k, v in parse_qs(body).items()}
        type(self).calls.append(params)
        action = params.get("Action")
        if action == "AssumeRole" and int(params.get("DurationSeconds", "3600")) > 3600:
            self._error(
                400,
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            )
        elif action == "AssumeRole":
            exp = (datetime.now(timezone.utc) + timedelta(seconds=int(params["DurationSeconds"]))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            self._send(
                200,
                f'<AssumeRoleResponse xmlns="{_STS_NS}"><AssumeRoleResult><Credentials>'
                "<AccessKeyId>ASIAFAKEFAKEFAKEFAKE</AccessKeyId><SecretAccessKey>fake-secret</SecretAccessKey>"
                f"<SessionToken>fake-token</SessionToken><Expiration>{exp}</Expiration></Credentials>"
                f"<AssumedRoleUser><AssumedRoleId>AROAFAKE:{params['RoleSessionName']}</AssumedRoleId>"
                f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/R/{params['RoleSessionName']}</Arn></AssumedRoleUser>"
                "</AssumeRoleResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>"
                "</AssumeRoleResponse>",
            )
        else:  # GetCallerIdentity: always throttled
            self._error(400, "Throttling", "Rate exceeded")

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(
            status,
            f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>r2</RequestId></ErrorResponse>",
        )

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_sts(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    handler = type("FakeSts", (_FakeSts,), {"calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield handler.calls
    finally:
        server.shutdown()
        server.server_close()


def test_role_chaining_cap_retries_with_one_hour(fake_sts: list[dict[str, str]], tmp_path: Path) -> None:
    assumed = Aws(Settings(dir=tmp_path)).assume_role(role_arn("R"), duration_seconds=4 * 3600)
    assert [c["DurationSeconds"] for c in fake_sts] == ["14400", "3600"]
    assert assumed.duration_seconds == 3600
    assert "role chaining" in assumed.note and "3600" in assumed.note
    assert assumed.expiration - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_throttling_is_retried_then_mapped(fake_sts: list[dict[str, str]], tmp_path: Path) -> None:
    aws = Aws(Settings(dir=tmp_path), max_attempts=2)
    with pytest.raises(AwsError) as info:
        aws.identity()
    assert len(fake_sts) == 2  # botocore's standard retry mode retried once
    assert "throttling" in info.value.message and "Throttling" in info.value.message
    assert "wait" in info.value.hint


# -- vendor login: token, registry host, refresh ---------------------------------------------------


def test_vendor_token_decodes_and_registry_comes_from_settings(aws_env: MotoServer, tmp_path: Path) -> None:
    settings = Settings(dir=tmp_path, source_registry="http://127.0.0.1:1")
    aws = Aws(settings)
    login = aws.vendor_login(role_arn())
    cred = login.get()
    assert cred.username == "AWS"
    assert cred.password == f"{VENDOR}-auth-token"
    # moto's proxyEndpoint is https://513558712013.dkr.ecr.us-east-1.amazonaws.com: never used
    assert login.registry == "127.0.0.1:1"
    assert login.assumed_arn.startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/CurrentsEcrPull/currents-wizard-")
    # moto's expiresAt is 2015: kept, but not trusted, and not fatal
    assert login.token_expires_at is not None and login.token_expires_at.year == 2015
    assert not login.token_expiry_trusted
    assert cred.expires_at == login.sts_expires_at
    assert login.sts_expires_at is not None and login.sts_expires_at > datetime.now(timezone.utc)
    # get() again does not hit AWS
    fetches = login.token_fetches
    assert login.get() is cred and login.token_fetches == fetches


def test_default_vendor_registry_is_the_vendor_ecr_host(aws_env: MotoServer, tmp_path: Path) -> None:
    settings = Settings(dir=tmp_path, region="eu-west-1")
    login = Aws(settings).vendor_login(role_arn())
    assert login.registry == f"{VENDOR}.dkr.ecr.eu-west-1.amazonaws.com"
    assert login.get().password == f"{VENDOR}-auth-token"


def test_refresh_gets_new_token_without_reassuming(aws: Aws) -> None:
    login = aws.vendor_login(role_arn())
    assert (login.assumptions, login.token_fetches, login.refreshes) == (1, 1, 0)
    gen = login.generation
    # a bare refresh() right after a fetch is the tail of a 401 burst: no new fetch
    assert login.refresh() is login.get()
    assert (login.token_fetches, login.refreshes, login.generation) == (1, 0, gen)
    # the caller says which credential was refused: fetch again
    cred = login.refresh(gen)
    assert cred.password == f"{VENDOR}-auth-token"
    assert (login.assumptions, login.token_fetches, login.refreshes) == (1, 2, 1)
    assert login.generation == gen + 1
    # ... but a stale generation (someone else refreshed meanwhile) does not fetch
    assert login.refresh(gen) is cred and login.token_fetches == 2
    # and once the burst window has passed, a bare refresh() fetches
    login.dedupe_seconds = 0
    login.refresh()
    assert (login.token_fetches, login.refreshes) == (3, 2)


def test_refresh_reassumes_when_sts_session_expired(aws: Aws) -> None:
    real = aws.assume_role(role_arn())
    stale = dataclasses.replace(real, expiration=datetime.now(timezone.utc) - timedelta(minutes=1))
    login = VendorLogin(aws, role_arn(), assumed=stale)
    login.get()  # the session is past its expiry: assume again before asking ECR
    assert login.assumptions == 1
    assert login.sts_expires_at is not None and login.sts_expires_at > datetime.now(timezone.utc)
    assert login.assumed is not None and login.assumed.session_token != stale.session_token

    # STS session about to expire (inside the margin) → refresh() re-assumes too
    later = [datetime.now(timezone.utc)]
    login2 = VendorLogin(aws, role_arn(), clock=lambda: later[0])
    login2.get()
    assert login2.assumptions == 1
    login2.refresh(login2.generation)
    assert login2.assumptions == 1 and login2.token_fetches == 2  # session still fresh
    later[0] = login2.sts_expires_at - timedelta(minutes=1)  # type: ignore[operator]
    login2.refresh(login2.generation)
    assert login2.assumptions == 2 and login2.token_fetches == 3
    # and get() alone renews once the session is due
    later[0] = login2.sts_expires_at - timedelta(seconds=10)  # type: ignore[operator]
    login2.get()
    assert login2.assumptions == 3


@pytest.mark.parametrize("explicit_generation", [False, True])
def test_concurrent_401s_cause_one_refresh(aws: Aws, explicit_generation: bool) -> None:
    login = aws.vendor_login(role_arn())
    if explicit_generation:
        login.dedupe_seconds = 0  # only the generation counter dedupes
    else:
        login.dedupe_seconds = 1.0  # the burst comes after the window of the first fetch
        time.sleep(1.05)
    n = 10
    barrier = threading.Barrier(n)
    results: list[Credential] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            login.get()
            seen = login.generation
            barrier.wait(timeout=10)  # everyone holds the same (rejected) token
            cred = login.refresh(seen) if explicit_generation else login.refresh()
            with lock:
                results.append(cred)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(results) == n
    assert login.refreshes == 1
    assert login.token_fetches == 2
    assert len({id(c) for c in results}) == 1


# -- probe against the real basic-auth "vendor" registry ------------------------------------------


def push_small_image(registry: Registry, repo: str, tag: str, auth: tuple[str, str]) -> str:
    """Push a one-layer OCI image with raw Registry API v2 calls; return the manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = secrets.token_bytes(64)
    with httpx.Client(base_url=registry.url, auth=auth, timeout=10) as c:
        descs = []
        for blob, media_type in (
            (config, "application/vnd.oci.image.config.v1+json"),
            (layer, "application/vnd.oci.image.layer.v1.tar"),
        ):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            loc = r.headers["Location"]
            sep = "&" if "?" in loc else "?"
            r = c.put(f"{loc}{sep}digest={digest}", content=blob, headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 201, r.text
            descs.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": descs[0],
                "layers": descs[1:],
            }
        ).encode()
        r = c.put(
            f"/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert r.status_code == 201, r.text
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.fixture
def probe_tag(vendor_registry: Registry) -> tuple[str, str]:
    tag = "probe-" + uuid.uuid4().hex[:8]
    digest = push_small_image(vendor_registry, "currents/on-prem/api", tag, ("AWS", ECR_PASSWORD))
    return tag, digest


def test_probe_granted(
    aws_env: MotoServer, vendor_registry: Registry, probe_tag: tuple[str, str], tmp_path: Path
) -> None:
    tag, digest = probe_tag
    aws = Aws(Settings(dir=tmp_path, source_registry=f"http://{vendor_registry.host}"))
    login = aws.vendor_login(role_arn())
    result = aws.probe(login, tag)
    assert result.verdict == "granted", result
    assert result.granted and result.status_code == 200
    assert result.digest == digest


def test_probe_granted_via_insecure_registry_entry(
    aws_env: MotoServer, vendor_registry: Registry, probe_tag: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = probe_tag
    settings = Settings(dir=tmp_path, source_registry=vendor_registry.host, insecure_registries=(vendor_registry.host,))
    login = Aws(settings).vendor_login(role_arn())
    assert probe(login, tag).verdict == "granted"


def test_probe_tag_missing(aws_env: MotoServer, vendor_registry: Registry, tmp_path: Path) -> None:
    aws = Aws(Settings(dir=tmp_path, source_registry=f"http://{vendor_registry.host}"))
    result = aws.probe(aws.vendor_login(role_arn()), "no-such-tag-" + uuid.uuid4().hex[:6])
    assert result.verdict == "tag_missing" and result.status_code == 404
    assert "--tag" in result.hint


class _WrongPassword(StaticCredentials):
    def __init__(self) -> None:
        super().__init__(Credential("AWS", "wrong-password"))
        self.refresh_calls = 0

    def refresh(self) -> Credential | None:
        self.refresh_calls += 1
        return super().refresh()


def test_probe_not_granted_with_wrong_password(vendor_registry: Registry, probe_tag: tuple[str, str]) -> None:
    tag, _ = probe_tag
    provider = _WrongPassword()
    result = probe(provider, tag, settings=Settings(source_registry=f"http://{vendor_registry.host}"))
    assert result.verdict == "not_granted" and result.status_code == 401
    assert "Currents" in result.hint and "ARN" in result.hint
    assert provider.refresh_calls == 1  # asked once for a fresh token before concluding


def test_probe_network_error_on_closed_port() -> None:
    settings = Settings(source_registry=f"http://127.0.0.1:{free_port()}")
    result = probe(StaticCredentials(Credential("AWS", "x")), "staging", settings=settings)
    assert result.verdict == "network_error" and result.status_code is None
    assert "127.0.0.1" in result.message and result.hint


def test_probe_tls_registry_needs_ca_file(tls_registry: Registry) -> None:
    anon = StaticCredentials(None)
    without = probe(anon, "staging", settings=Settings(source_registry=tls_registry.host))
    assert without.verdict == "network_error"  # self-signed, not trusted
    with_ca = probe(anon, "staging", settings=Settings(source_registry=tls_registry.host, ca_file=tls_registry.ca_file))
    assert with_ca.verdict == "tag_missing"  # TLS verified; the open registry just lacks the image


# -- target on ECR --------------------------------------------------------------------------------


def test_ensure_target_repositories_new_then_existing(aws: Aws) -> None:
    names = ["mirror/api", "mirror/director"]
    out = aws.ensure_target_repositories(names, target_host=OWN_ECR)
    assert list(out) == names and out.existing == () and out.warnings == ()
    ecr = boto3.client("ecr")
    repos = {r["repositoryName"]: r for r in ecr.describe_repositories(repositoryNames=names)["repositories"]}
    assert set(repos) == set(names)
    assert repos["mirror/api"]["imageTagMutability"] == "MUTABLE"
    assert repos["mirror/api"]["encryptionConfiguration"]["encryptionType"] == "AES256"

    again = aws.ensure_target_repositories([*names, "mirror/writer"], target_host=OWN_ECR)
    assert again.created == ("mirror/writer",)
    assert again.existing == tuple(names)


def test_target_repositories_default_to_settings_target(aws_env: MotoServer, tmp_path: Path) -> None:
    aws = Aws(Settings(dir=tmp_path, target=f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mirror"))
    assert aws.ensure_target_repositories(["mirror/api"]).created == ("mirror/api",)
    west = boto3.client("ecr", region_name="eu-west-1").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in west] == ["mirror/api"]
    assert boto3.client("ecr", region_name="us-east-1").describe_repositories()["repositories"] == []


def test_immutable_repositories_warn(aws: Aws) -> None:
    out = aws.ensure_target_repositories(["imm/api"], tag_mutability="IMMUTABLE", scan_on_push=True)
    assert out.created == ("imm/api",) and out.warnings == (IMMUTABLE_WARNING,)
    repo = boto3.client("ecr").describe_repositories(repositoryNames=["imm/api"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE" and repo["imageScanningConfiguration"]["scanOnPush"] is True
    # an existing IMMUTABLE repo warns even when MUTABLE is asked for
    later = aws.ensure_target_repositories(["imm/api"])
    assert later.existing == ("imm/api",) and any("IMMUTABLE" in w for w in later.warnings)


def test_bad_repository_options(aws: Aws) -> None:
    with pytest.raises(InputError):
        aws.ensure_target_repositories(["x/api"], tag_mutability="SOMETIMES")
    with pytest.raises(InputError):
        aws.ensure_target_repositories(["x/api"], kms_key="arn:aws:kms:us-east-1:123456789012:key/k")


def test_forced_ecr_target_on_loopback(aws: Aws) -> None:
    with pytest.raises(InputError):
        aws.target_login("127.0.0.1:5999")
    out = aws.ensure_target_repositories(["loop/api"], target_host="127.0.0.1:5999", force=True)
    assert out.created == ("loop/api",)
    provider = aws.target_login("127.0.0.1:5999", force=True)
    assert provider.registry == "127.0.0.1:5999"
    assert provider.get().password == f"{ACCOUNT}-auth-token"


def test_target_login_uses_account_from_host(aws: Aws) -> None:
    provider = aws.target_login(OWN_ECR)
    cred = provider.get()
    assert (cred.username, cred.password) == ("AWS", f"{ACCOUNT}-auth-token")
    assert provider.registry_id == ACCOUNT and provider.region == "us-east-1"
    provider.refresh(provider.generation)
    assert provider.token_fetches == 2 and provider.refreshes == 1


# -- denials in moto's auth-enforcement mode ------------------------------------------------------


def test_denials_are_mapped(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in create_whoami_only_user(boto3.client("iam")).items():
        monkeypatch.setenv(name, value)
    aws_env.set_auth(True)
    try:
        aws = Aws(Settings(dir=tmp_path), max_attempts=1)
        assert aws.identity().arn == f"arn:aws:iam::{ACCOUNT}:user/limited"

        with pytest.raises(AwsError) as denied:
            aws.ensure_role("CurrentsEcrPull", TRUST, POLICY)
        assert denied.value.message.startswith("access denied: iam:GetRole")
        assert "iam:GetRole" in denied.value.hint

        with pytest.raises(AwsError) as ecr_denied:
            aws.ensure_target_repositories(["denied/api"], target_host=OWN_ECR)
        assert ecr_denied.value.message.startswith("access denied: ecr:CreateRepository")

        with pytest.raises(AwsError) as sts_denied:
            aws.assume_role(role_arn())
        assert "access denied: sts:AssumeRole" in sts_denied.value.message
        assert "trust policy" in sts_denied.value.hint

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret-wrong-secret00")
        with pytest.raises(AwsError) as bad_secret:
            Aws(Settings(dir=tmp_path), max_attempts=1).identity()
        assert "SignatureDoesNotMatch" in bad_secret.value.message and "aws configure" in bad_secret.value.hint

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
        with pytest.raises(AwsError) as unknown:
            Aws(Settings(dir=tmp_path), max_attempts=1).identity()
        assert "InvalidClientTokenId" in unknown.value.message
    finally:
        aws_env.set_auth(False)


# -- no secret leaks ------------------------------------------------------------------------------


def test_no_secret_in_logs_reprs_or_files(
    aws_env: MotoServer,
    vendor_registry: Registry,
    probe_tag: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    caplog.set_level(logging.DEBUG)
    settings = Settings(dir=tmp_path, source_registry=f"http://{vendor_registry.host}")
    aws = Aws(settings)
    objects: list[Any] = [aws.identity()]
    objects.append(aws.ensure_role("CurrentsEcrPull", TRUST, POLICY))
    login = aws.vendor_login(role_arn())
    objects += [login, login.assumed, login.get(), login.refresh()]
    objects.append(aws.probe(login, probe_tag[0]))
    target = aws.target_login(OWN_ECR)
    objects += [target, target.get()]
    objects.append(aws.ensure_target_repositories(["leak/api"], target_host=OWN_ECR))
    objects.append(aws.probe(StaticCredentials(Credential("AWS", "wrong")), probe_tag[0]))
    try:
        aws.ensure_target_repositories(["bad name"], target_host=OWN_ECR)
    except AwsError as exc:
        objects.append(exc)

    assumed = login.assumed
    assert assumed is not None
    secrets_seen = {
        assumed.secret_access_key,
        assumed.session_token,
        login.get().password,
        target.get().password,
    }
    assert f"{VENDOR}-auth-token" in secrets_seen  # the values really are moto's
    time.sleep(0.05)
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err]
    texts += [repr(o) for o in objects] + [str(o) for o in objects]
    texts += [repr(r.args) for r in caplog.records]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace") for p in files]
    for secret in secrets_seen:
        for text in texts:
            assert secret not in text
