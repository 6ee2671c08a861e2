"""Pure logic of wizard.core.aws: error mapping, names, tokens, hosts, policy comparison."""

from __future__ import annotations

import base64
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

import botocore.exceptions as bex
import pytest

from wizard.core.aws import (
    AssumedRole,
    RepositoriesOutcome,
    check_role_arn,
    decode_authorization_token,
    default_session_name,
    error_code,
    is_ecr_host,
    map_client_error,
    parse_ecr_host,
    registry_base_url,
    registry_host,
    same_policy,
    sanitize_session_name,
)
from wizard.core.errors import AwsError, InputError, WizardError
from wizard.core.settings import Settings


def client_error(code: str, message: str = "msg", status: int = 400, op: str = "GetCallerIdentity") -> bex.ClientError:
    return bex.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


# -- map_client_error ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "TooManyRequestsException"])
def test_throttling_is_mapped(code: str) -> None:
    err = map_client_error(client_error(code, "Rate exceeded"), "sts:GetCallerIdentity")
    assert isinstance(err, AwsError)
    assert "throttling" in err.message and code in err.message
    assert "wait" in err.hint


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "RequestExpired"])
def test_expired_names_sso_login_with_profile(code: str) -> None:
    err = map_client_error(client_error(code, "The security token included in the request is expired"), "x", "dev")
    assert isinstance(err, AwsError)
    assert "expired" in err.message
    assert "aws sso login --profile dev" in err.hint


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"])
def test_invalid_credentials_name_aws_configure(code: str) -> None:
    err = map_client_error(client_error(code, "The security token included in the request is invalid."), "iam:GetRole")
    assert "rejected your credentials" in err.message and code in err.message
    assert "aws configure" in err.hint


def test_access_denied_names_the_action() -> None:
    exc = client_error(
        "AccessDenied", "User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:CreateRole", 403
    )
    err = map_client_error(exc, "iam:CreateRole")
    assert err.message.startswith("access denied: iam:CreateRole")
    assert "iam:CreateRole" in err.hint and "administrator" in err.hint


def test_access_denied_on_assume_role_points_at_trust_policy() -> None:
    err = map_client_error(client_error("AccessDenied", "not authorized", 403), "sts:AssumeRole")
    assert "trust policy" in err.hint


def test_moto_style_ecr_denial_inside_xml_is_unwrapped() -> None:
    # moto answers JSON APIs with XML: botocore reports code "403" and the XML as the message.
    xml = (
        '<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code>'
        "<Message>User: arn:aws:iam::123456789012:user/limited is not authorized to perform: "
        "ecr:CreateRepository</Message></Error></Errors></ErrorResponse>"
    )
    exc = client_error("403", xml, 403, "CreateRepository")
    assert error_code(exc) == "AccessDenied"
    err = map_client_error(exc, "ecr:CreateRepository")
    assert err.message.startswith("access denied: ecr:CreateRepository (AccessDenied: User:")
    assert "<" not in err.message


def test_unknown_client_error_keeps_code_and_message() -> None:
    err = map_client_error(client_error("Weird", "something odd"), "iam:GetRole")
    assert isinstance(err, AwsError)
    assert "Weird" in err.message and "something odd" in err.message and err.hint


def test_no_credentials() -> None:
    err = map_client_error(bex.NoCredentialsError(), "sts:GetCallerIdentity")
    assert isinstance(err, AwsError)
    assert "no AWS credentials" in err.message
    assert "aws configure" in err.hint and "aws sso login" in err.hint


def test_profile_not_found_is_input_error() -> None:
    err = map_client_error(bex.ProfileNotFound(profile="nope"), "load")
    assert isinstance(err, InputError)
    assert "'nope'" in err.message and "aws configure" in err.hint


@pytest.mark.parametrize(
    "exc",
    [
        bex.UnauthorizedSSOTokenError(),
        bex.SSOTokenLoadError(error_msg="no cached token"),
        bex.TokenRetrievalError(provider="sso", error_msg="expired"),
    ],
)
def test_sso_errors_name_sso_login(exc: Exception) -> None:
    err = map_client_error(exc, "sts:GetCallerIdentity", "corp")
    assert "SSO" in err.message
    assert "aws sso login --profile corp" in err.hint


def test_endpoint_connection_error() -> None:
    err = map_client_error(bex.EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"), "x")
    assert "connection to AWS failed" in err.message and "proxy" in err.hint


def test_wizard_error_passes_through() -> None:
    original = AwsError("a", "b")
    assert map_client_error(original, "x") is original


def test_partial_credentials() -> None:
    err = map_client_error(bex.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "x")
    assert "AWS_SECRET_ACCESS_KEY" in err.message and isinstance(err, WizardError)


# -- names, tokens, hosts -----------------------------------------------------------------------


def test_session_name_sanitised_and_capped() -> None:
    assert sanitize_session_name("currents-wizard-jo hn/é!") == "currents-wizard-jo-hn---"
    assert len(sanitize_session_name("x" * 100)) == 64
    assert len(sanitize_session_name("a")) == 2
    assert default_session_name("alice@corp.com") == "currents-wizard-alice@corp.com"
    assert default_session_name().startswith("currents-wizard-")


def test_decode_token() -> None:
    assert decode_authorization_token("QVdTOjUxMzU1ODcxMjAxMy1hdXRoLXRva2Vu") == ("AWS", "513558712013-auth-token")
    with pytest.raises(AwsError):
        decode_authorization_token("not base64!!")
    with pytest.raises(AwsError) as info:
        decode_authorization_token(base64.b64encode(b"nocolon-secretvalue").decode())
    assert "secretvalue" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", ("123456789012", "us-east-1")),
        ("https://123456789012.dkr.ecr.eu-west-3.amazonaws.com/", ("123456789012", "eu-west-3")),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", ("123456789012", "cn-north-1")),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", ("123456789012", "us-gov-west-1")),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
        ("public.ecr.aws", None),
        ("127.0.0.1:5000", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com", None),
    ],
)
def test_parse_ecr_host(host: str, expected: tuple[str, str] | None) -> None:
    assert parse_ecr_host(host) == expected
    assert is_ecr_host(host) is (expected is not None)


def test_role_arn_check() -> None:
    assert check_role_arn("arn:aws:iam::123456789012:role/path/CurrentsEcrPull")
    assert check_role_arn("arn:aws-cn:iam::123456789012:role/x")
    for bad in ("arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x", "role/x", ""):
        with pytest.raises(InputError):
            check_role_arn(bad)


def test_registry_host() -> None:
    assert registry_host("http://127.0.0.1:5001/currents/on-prem/") == "127.0.0.1:5001"
    assert registry_host("reg.example.com") == "reg.example.com"


def test_registry_base_url_rules(tmp_path: Path) -> None:
    s = Settings()
    assert registry_base_url("reg.example.com", s) == ("https://reg.example.com", True)
    assert registry_base_url("http://127.0.0.1:5001", s) == ("http://127.0.0.1:5001", False)
    # source_registry with http:// makes that host plain HTTP even when asked by bare host
    s2 = Settings(source_registry="http://127.0.0.1:5001")
    assert registry_base_url(s2.vendor_registry, s2) == ("http://127.0.0.1:5001", False)
    assert registry_base_url("127.0.0.1:5001", s2) == ("http://127.0.0.1:5001", False)
    # target with http://
    s3 = Settings(target="http://127.0.0.1:5002/mirror")
    assert registry_base_url("127.0.0.1:5002", s3)[0] == "http://127.0.0.1:5002"
    # insecure registries: bare = plain HTTP, https:// = TLS without verification
    s4 = Settings(insecure_registries=("reg.local:5000",))
    assert registry_base_url("reg.local:5000", s4) == ("http://reg.local:5000", False)
    assert registry_base_url("https://reg.local:5000", s4) == ("https://reg.local:5000", False)
    # CA file → an SSL context
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        base, verify = registry_base_url("reg.example.com", Settings(ca_file=ca))
        assert base == "https://reg.example.com" and isinstance(verify, ssl.SSLContext)


def test_same_policy_ignores_order_and_singletons() -> None:
    a = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["b", "a"], "Resource": ["*"]}]}
    b = {"Statement": {"Resource": "*", "Action": ["a", "b"], "Effect": "Allow"}, "Version": "2012-10-17"}
    assert same_policy(a, b)
    c = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a"], "Resource": "*"}]}
    assert not same_policy(a, c)
    assert not same_policy(a, None)
    assert same_policy(None, None)


def test_assumed_role_repr_redacts() -> None:
    role = AssumedRole(
        role_arn="arn:aws:iam::123456789012:role/r",
        assumed_arn="arn:aws:sts::123456789012:assumed-role/r/s",
        session_name="s1",
        access_key_id="ASIAEXAMPLE",
        secret_access_key="SECRET-KEY-VALUE",
        session_token="SESSION-TOKEN-VALUE",
        expiration=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    for text in (repr(role), str(role), f"{role}"):
        assert "SECRET-KEY-VALUE" not in text and "SESSION-TOKEN-VALUE" not in text
        assert "<redacted>" in text
    assert not role.expires_within(60)
    assert role.expires_within(7200)


def test_repositories_outcome_iterates_created() -> None:
    out = RepositoriesOutcome(created=("a", "b"), existing=("c",))
    assert list(out) == ["a", "b"] and len(out) == 2
