"""Pure pieces of the registry client: header parsing, URL joining, backoff, errors, endpoints."""

from __future__ import annotations

import json
import ssl
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from wizard.core.credentials import Credential, RefreshingCredentials
from wizard.core.errors import AccessNotGranted, InputError
from wizard.core.registry.auth import (
    AuthState,
    basic_authorization,
    merge_scopes,
    parse_token_response,
    parse_www_authenticate,
    pick_challenge,
    repository_scope,
)
from wizard.core.registry.client import (
    detect_media_type,
    is_digest,
    join_location,
    parse_link_next,
    with_query_param,
)
from wizard.core.registry.endpoint import RegistryEndpoint, proxy_from_environment
from wizard.core.registry.errors import (
    RegistryAuthError,
    auth_error,
    http_error,
    is_retryable_transport_error,
    parse_error_body,
    transport_error,
)
from wizard.core.registry.retry import RetryPolicy, backoff_delay, parse_retry_after
from wizard.core.transports.base import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

# -- WWW-Authenticate ---------------------------------------------------------------------------


def test_bearer_challenge_with_quoted_commas() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:currents/api:pull,push",error="insufficient_scope"'
    )
    [ch] = parse_www_authenticate(header)
    assert ch.scheme == "bearer"
    assert ch.realm == "https://auth.example.com/token"
    assert ch.service == "registry.example.com"
    assert ch.scopes == ("repository:currents/api:pull,push",)
    assert ch.error == "insufficient_scope"


def test_basic_challenge_and_case_and_spaces() -> None:
    [ch] = parse_www_authenticate('BASIC  realm = "testbed" ')
    assert ch.scheme == "basic"
    assert ch.realm == "testbed"


def test_several_challenges_and_escapes_and_unquoted_values() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", Bearer realm=https://t/x,service=svc'
    chs = parse_www_authenticate(header)
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].realm == 'a "quoted" realm'
    assert chs[1].realm == "https://t/x"
    assert chs[1].service == "svc"
    assert pick_challenge(chs) is chs[1]  # bearer preferred


def test_multiple_scopes_in_one_challenge() -> None:
    [ch] = parse_www_authenticate('Bearer realm="r",scope="repository:a:pull repository:b:pull,push"')
    assert ch.scopes == ("repository:a:pull", "repository:b:pull,push")


def test_empty_or_garbage_header() -> None:
    assert parse_www_authenticate(None) == []
    assert parse_www_authenticate("") == []
    assert pick_challenge(parse_www_authenticate("Negotiate")) is None


def test_same_server_ignores_scope() -> None:
    a = parse_www_authenticate('Bearer realm="r",service="s",scope="repository:a:pull"')[0]
    b = parse_www_authenticate('Bearer realm="r",service="s",scope="repository:b:push"')[0]
    c = parse_www_authenticate('Bearer realm="r2",service="s"')[0]
    assert a.same_server(b)
    assert not a.same_server(c)
    assert not a.same_server(None)


# -- scopes, tokens, credential state -------------------------------------------------------------


def test_scopes_merge_actions_and_sort() -> None:
    assert repository_scope("x/api") == "repository:x/api:pull"
    assert repository_scope("x/api", push=True) == "repository:x/api:pull,push"
    merged = merge_scopes(["repository:b:pull", "repository:a:push", "repository:a:pull", "repository:b:pull"])
    assert merged == ("repository:a:pull,push", "repository:b:pull")


def test_basic_authorization_header() -> None:
    assert basic_authorization(Credential("AWS", "tok")) == "Basic QVdTOnRvaw=="


def test_token_response_variants() -> None:
    assert parse_token_response(b'{"token": "t1", "expires_in": 300}') == ("t1", 300.0)
    assert parse_token_response(b'{"access_token": "t2"}') == ("t2", 60.0)
    assert parse_token_response(b'{"token": "t3", "expires_in": 5}')[1] == 60.0  # spec minimum
    with pytest.raises(ValueError):
        parse_token_response(b'{"nope": 1}')
    with pytest.raises(ValueError):
        parse_token_response(b"not json")


def test_auth_state_refreshes_once_per_generation() -> None:
    calls: list[int] = []

    def fetch() -> Credential:
        calls.append(1)
        return Credential("u", f"p{len(calls)}")

    state = AuthState(RefreshingCredentials(fetch))
    cred, gen = state.credential()
    assert cred is not None and cred.password == "p1" and gen == 0
    state.refresh(gen)
    state.refresh(gen)  # a second thread that saw the same stale credential: no new refresh
    cred2, gen2 = state.credential()
    assert cred2 is not None and cred2.password == "p2" and gen2 == 1
    assert state.refreshes == 1 and len(calls) == 2


def test_auth_state_token_cache_expiry_and_generation() -> None:
    state = AuthState(None)
    key = ("repository:a:pull",)
    state.store_token(key, "tok", 300, 0)
    assert state.token(key) == ("tok", 0)
    state.store_token(key, "old", 0.0, 0)  # already expired
    assert state.token(key) is None
    state.store_token(key, "tok", 300, 0)
    state.generation = 1  # a refresh happened: tokens from older credentials are not used
    assert state.token(key) is None


# -- URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/r/blobs/uploads/u1?_state=abc%3D", "http://h:5000/v2/r/blobs/uploads/u1?_state=abc%3D"),
        (
            "https://s3.example.com/bucket/u1?X-Amz-Signature=a%2Bb&x=1",
            "https://s3.example.com/bucket/u1?X-Amz-Signature=a%2Bb&x=1",
        ),
        ("u2", "http://h:5000/v2/r/blobs/uploads/u2"),
    ],
)
def test_join_location_keeps_absolute_and_relative(location: str, expected: str) -> None:
    assert join_location("http://h:5000/v2/r/blobs/uploads/", location) == expected


def test_with_query_param_appends_digest() -> None:
    d = "sha256:" + "a" * 64
    enc = "sha256%3A" + "a" * 64
    assert (
        with_query_param("http://h/v2/r/blobs/uploads/u", "digest", d) == f"http://h/v2/r/blobs/uploads/u?digest={enc}"
    )
    assert with_query_param("http://h/u?_state=x%3D", "digest", d) == f"http://h/u?_state=x%3D&digest={enc}"
    assert with_query_param("http://h/u?", "digest", d) == f"http://h/u?digest={enc}"
    assert with_query_param("http://h/u?a=1&", "digest", d) == f"http://h/u?a=1&digest={enc}"
    # The query survives httpx untouched (no re-encoding of the registry's state).
    url = httpx.URL(with_query_param("http://h/u?_state=x%2By%3D", "digest", d))
    assert url.query.decode() == f"_state=x%2By%3D&digest={enc}"


def test_link_next() -> None:
    assert parse_link_next('</v2/r/tags/list?last=b&n=2>; rel="next"') == "/v2/r/tags/list?last=b&n=2"
    assert parse_link_next('<https://x/a>; rel="prev", <https://x/b>; rel=next') == "https://x/b"
    assert parse_link_next(None) is None
    assert parse_link_next('<https://x/a>; rel="prev"') is None


def test_is_digest() -> None:
    assert is_digest("sha256:" + "0" * 64)
    assert not is_digest("staging")
    assert not is_digest("2026-01-26-001")


def test_detect_media_type() -> None:
    assert detect_media_type(b"{}", DOCKER_MANIFEST + "; charset=utf-8") == DOCKER_MANIFEST
    assert detect_media_type(json.dumps({"mediaType": DOCKER_MANIFEST_LIST}).encode(), "application/json") == (
        DOCKER_MANIFEST_LIST
    )
    assert detect_media_type(b'{"schemaVersion":2,"manifests":[]}', "") == OCI_INDEX
    assert detect_media_type(b'{"schemaVersion":2,"config":{},"layers":[]}', "") == OCI_MANIFEST


# -- retry timing ------------------------------------------------------------------------------------


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("2.5") == 2.5
    now = time.time()
    date = formatdate(now + 10, usegmt=True)
    got = parse_retry_after(date, now=now)
    assert got is not None and 8.5 <= got <= 10.5
    assert parse_retry_after(formatdate(now - 100, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after("-3") is None


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=5.0)
    assert policy.delay_for(0, "3600") == 5.0
    assert policy.delay_for(0, "1") == 1.0


@pytest.mark.parametrize("retry", range(8))
def test_backoff_bounds(retry: int) -> None:
    base, cap = 0.5, 8.0
    ceiling = min(cap, base * 2**retry)
    assert backoff_delay(retry, base, cap, rng=lambda: 0.0) == pytest.approx(ceiling / 2)
    assert backoff_delay(retry, base, cap, rng=lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    for _ in range(50):
        d = backoff_delay(retry, base, cap)
        assert ceiling / 2 <= d <= ceiling


def test_backoff_grows_then_caps() -> None:
    mids = [backoff_delay(n, 0.1, 1.0, rng=lambda: 1.0) for n in range(6)]
    assert mids == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


# -- errors --------------------------------------------------------------------------------------------


def test_error_body_parsed_into_message() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}'
    assert parse_error_body(body) == [("MANIFEST_UNKNOWN", "manifest unknown")]
    err = http_error("h:1", "GET manifest a:b", 404, body)
    assert "MANIFEST_UNKNOWN: manifest unknown" in str(err)
    assert err.status == 404 and err.codes == ("MANIFEST_UNKNOWN",)
    assert "tag" in err.hint
    assert parse_error_body(b"<html>oops</html>") == []


def test_auth_error_wording_by_role() -> None:
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    tgt = auth_error("reg:5000", "PUT", 401, body, role="target", credentials_sent=True)
    assert isinstance(tgt, RegistryAuthError) and "--target-username" in tgt.hint
    anon = auth_error("reg:5000", "PUT", 401, body, role="target", credentials_sent=False)
    assert "requires a login" in anon.message
    denied = auth_error("ecr", "GET", 403, b"", role="source", credentials_sent=True, repo="currents/on-prem/api")
    assert isinstance(denied, AccessNotGranted)


def test_transport_errors_classified() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    err = transport_error(refused, "127.0.0.1:1", "GET")
    assert "refused" in err.message and "running at 127.0.0.1:1" in err.hint and err.retryable
    assert is_retryable_transport_error(refused)

    tls = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    tls.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    err = transport_error(tls, "reg:443", "GET")
    assert "--ca-file" in err.hint and not err.retryable
    assert not is_retryable_transport_error(tls)

    assert is_retryable_transport_error(httpx.ReadError("reset"))
    assert is_retryable_transport_error(httpx.RemoteProtocolError("incomplete"))
    assert not is_retryable_transport_error(httpx.UnsupportedProtocol("x"))


# -- endpoints --------------------------------------------------------------------------------------------


def test_endpoint_scheme_rules(tmp_path: Path) -> None:
    assert RegistryEndpoint.parse("reg.example.com").base_url == "https://reg.example.com"
    http = RegistryEndpoint.parse("http://127.0.0.1:5000/some/path")
    assert http.base_url == "http://127.0.0.1:5000" and http.insecure
    assert any("plain HTTP" in w for w in http.warnings)
    listed = RegistryEndpoint.parse("reg:5000", insecure_registries=("reg:5000",))
    assert listed.scheme == "http"
    assert RegistryEndpoint.parse("https://reg:5000", insecure_registries=("reg:5000",)).scheme == "https"
    assert RegistryEndpoint.parse("docker.io").host == "registry-1.docker.io"
    assert RegistryEndpoint.parse("reg").warnings == ()
    with pytest.raises(InputError):
        RegistryEndpoint.parse("ftp://reg")
    with pytest.raises(InputError, match="does not exist"):
        RegistryEndpoint.parse("reg", ca_file=tmp_path / "missing.pem")


def test_endpoint_ssl_context_is_explicit(tmp_path: Path) -> None:
    ctx = RegistryEndpoint.parse("reg").ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert RegistryEndpoint("reg", verify=False).ssl_context() is False
    bad = tmp_path / "bad.pem"
    bad.write_text("not a cert")
    with pytest.raises(InputError, match="cannot read CA file"):
        RegistryEndpoint.parse("reg", ca_file=bad).ssl_context()


def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_from_environment("https", "reg.example.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.com")
    assert proxy_from_environment("https", "reg.example.com:443") == "http://proxy:3128"
    assert proxy_from_environment("https", "internal.example.com") is None
    assert proxy_from_environment("https", "127.0.0.1:5000") is None
