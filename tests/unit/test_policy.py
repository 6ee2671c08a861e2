"""Policy generation, the strict checker (against the vendor manual's own policy), role ARNs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from wizard.core import policy
from wizard.core.errors import InputError
from wizard.core.policy import (
    INVALID_ARN_EXPLANATION,
    Finding,
    account_from_arn,
    check_policy,
    identity_policy,
    load_policy_file,
    render,
    role_name_from_arn,
    share_message,
    trust_policy,
    validate_role_arn,
)
from wizard.core.settings import SERVICES, Settings

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "container-images.md"  # beside the clone
SEED_FALLBACK_VALID = [
    f"arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/{s}"
    for s in ("api", "change-streams", "director", "scheduler", "writer", "webhooks")
]
SEED_FALLBACK_INVALID = [
    f"arn:aws:ecr:us-east-1:513558712013:currents/on-prem/{s}/*"
    for s in ("api", "change-streams", "director", "scheduler", "writer", "webhooks")
]


def seed_policy_text() -> str:
    """The policy JSON exactly as published in the vendor's manual page (rebuilt if the page is absent)."""
    if SEED.is_file():
        m = re.search(r"```json\n(.*?)```", SEED.read_text(), re.S)
        assert m is not None
        return m.group(1)
    resources = [r for pair in zip(SEED_FALLBACK_INVALID, SEED_FALLBACK_VALID, strict=True) for r in pair]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
                {"Effect": "Allow", "Action": list(policy.PULL_ACTIONS), "Resource": resources},
            ],
        }
    )


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def good(settings: Settings) -> dict[str, Any]:
    return identity_policy(settings)


# -- generation -------------------------------------------------------------------------------


def test_identity_policy_shape(settings: Settings) -> None:
    doc = identity_policy(settings)
    assert doc["Version"] == "2012-10-17"
    auth, pull = doc["Statement"]
    assert auth == {
        "Sid": "CurrentsEcrAuthToken",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": "*",
    }
    assert pull["Sid"] == "CurrentsEcrPullImages"
    assert pull["Action"] == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert pull["Resource"] == [f"arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/{s}" for s in SERVICES]
    assert all(":currents/" not in r for r in pull["Resource"])  # never the invalid /* form


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("eu-west-3", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_partition_follows_region(region: str, partition: str) -> None:
    s = Settings(region=region, vendor_account="111122223333", source_prefix="acme/x", services=("api",))
    res = identity_policy(s)["Statement"][1]["Resource"]
    assert res == [f"arn:{partition}:ecr:{region}:111122223333:repository/acme/x/api"]


def test_empty_prefix_gives_bare_repository_names() -> None:
    res = identity_policy(Settings(source_prefix="", services=("api", "writer")))["Statement"][1]["Resource"]
    assert res == [
        "arn:aws:ecr:us-east-1:513558712013:repository/api",
        "arn:aws:ecr:us-east-1:513558712013:repository/writer",
    ]


def test_render_is_stable_pretty_json(good: dict[str, Any]) -> None:
    text = render(good)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == render(copy.deepcopy(good))
    assert json.loads(text) == good
    lines = text.splitlines()
    assert lines[0] == "{" and lines[1] == '  "Version": "2012-10-17",'
    assert lines[2] == '  "Statement": ['
    # key order as generated: Sid, Effect, Action, Resource
    keys = [ln.strip().split('"')[1] for ln in lines if ln.startswith('      "')]
    assert keys[:4] == ["Sid", "Effect", "Action", "Resource"]


def test_trust_policy_default_root() -> None:
    doc = trust_policy("123456789012")
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowAssumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def test_trust_policy_named_principals_and_external_id() -> None:
    doc = trust_policy(
        "123456789012",
        principals=[
            "arn:aws:iam::123456789012:role/ci/deployer",
            "arn:aws:iam::123456789012:user/alice",
            "999988887777",
        ],
        external_id="currents-xyz",
    )
    st = doc["Statement"][0]
    assert st["Principal"]["AWS"] == [
        "arn:aws:iam::123456789012:role/ci/deployer",
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::999988887777:root",
    ]
    assert st["Condition"] == {"StringEquals": {"sts:ExternalId": "currents-xyz"}}


@pytest.mark.parametrize(
    "bad",
    ["arn:aws:iam::12345:root", "arn:aws:s3:::bucket", "alice", "arn:aws:iam::123456789012:group/devs", ""],
)
def test_trust_policy_rejects_bad_principals(bad: str) -> None:
    with pytest.raises(InputError, match="principal"):
        trust_policy("123456789012", principals=[bad])


def test_trust_policy_rejects_bad_account_and_external_id() -> None:
    with pytest.raises(InputError, match="12 digits"):
        trust_policy("1234")
    with pytest.raises(InputError, match="external id"):
        trust_policy("123456789012", external_id="has space")


def test_explanation_names_both_forms() -> None:
    assert "currents/on-prem/api/*" in INVALID_ARN_EXPLANATION
    assert "repository/<name>" in INVALID_ARN_EXPLANATION
    assert "grant nothing" in INVALID_ARN_EXPLANATION


# -- the strict checker -------------------------------------------------------------------------


def test_generated_policy_is_clean(settings: Settings, good: dict[str, Any]) -> None:
    assert check_policy(good, settings) == []
    assert check_policy(render(good), settings) == []


def test_seed_policy_flags_exactly_its_six_invalid_entries(settings: Settings) -> None:
    findings = check_policy(seed_policy_text(), settings)
    assert len(findings) == 6, [str(f) for f in findings]
    assert {f.severity for f in findings} == {"error"}
    assert set(codes(findings)) == {"invalid-ecr-resource"}
    flagged = {f.resource for f in findings}
    assert flagged == set(SEED_FALLBACK_INVALID)
    assert all(f.statement == 1 for f in findings)
    # the hint points at the correct repository ARN for the same service
    api = next(f for f in findings if f.resource and "/api/*" in f.resource)
    assert "repository/currents/on-prem/api" in api.hint
    assert "published page" in api.message


def test_seed_valid_entries_alone_are_enough(settings: Settings) -> None:
    doc = json.loads(seed_policy_text())
    doc["Statement"][1]["Resource"] = [r for r in doc["Statement"][1]["Resource"] if ":repository/" in r]
    assert len(doc["Statement"][1]["Resource"]) == 6
    assert check_policy(doc, settings) == []


def test_seed_invalid_entries_alone_grant_nothing(settings: Settings) -> None:
    doc = json.loads(seed_policy_text())
    doc["Statement"][1]["Resource"] = [r for r in doc["Statement"][1]["Resource"] if ":repository/" not in r]
    found = check_policy(doc, settings)
    assert codes(found).count("invalid-ecr-resource") == 6
    assert codes(found).count("missing-repository") == 6


def test_invalid_json_text() -> None:
    found = check_policy('{"Version": "2012-10-17", "Statement": [}')
    assert codes(found) == ["invalid-json"]
    assert "line 1" in found[0].message


def test_not_an_object() -> None:
    assert codes(check_policy("[1, 2]")) == ["not-object"]


def test_version_missing_old_and_bad(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    del doc["Version"]
    assert [(f.severity, f.code) for f in check_policy(doc)] == [("warning", "missing-version")]
    doc["Version"] = "2008-10-17"
    assert [(f.severity, f.code) for f in check_policy(doc)] == [("warning", "old-version")]
    doc["Version"] = "2021-01-01"
    assert [(f.severity, f.code) for f in check_policy(doc)] == [("error", "bad-version")]


def test_missing_statement() -> None:
    assert codes(check_policy({"Version": "2012-10-17"})) == ["missing-statement"]


def test_wrong_account_and_region(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    res = doc["Statement"][1]["Resource"]
    res[0] = res[0].replace("513558712013", "111111111111")
    res[1] = res[1].replace("us-east-1", "eu-west-1")
    found = check_policy(doc)
    assert ("error", "wrong-account") in [(f.severity, f.code) for f in found]
    assert ("error", "wrong-region") in [(f.severity, f.code) for f in found]
    missing = [f for f in found if f.code == "missing-repository"]
    assert {f.resource for f in missing} == {
        "arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/api",
        "arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/director",
    }


def test_settings_drive_the_expected_account(good: dict[str, Any]) -> None:
    other = Settings(vendor_account="111122223333")
    assert "wrong-account" in codes(check_policy(good, other))


def test_missing_action(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Action"].remove("ecr:BatchGetImage")
    found = check_policy(doc)
    assert codes(found) == ["missing-action"]
    assert "ecr:BatchGetImage" in found[0].message


def test_missing_auth_token_action(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    del doc["Statement"][0]
    found = check_policy(doc)
    assert codes(found) == ["missing-action"]
    assert "GetAuthorizationToken" in found[0].message


def test_missing_one_service_repository(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Resource"] = [r for r in doc["Statement"][1]["Resource"] if not r.endswith("/writer")]
    found = check_policy(doc)
    assert codes(found) == ["missing-repository"]
    assert "currents/on-prem/writer" in found[0].message
    assert found[0].resource == "arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/writer"


def test_auth_token_must_be_on_star(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][0]["Resource"] = "arn:aws:ecr:us-east-1:513558712013:repository/currents/on-prem/api"
    found = check_policy(doc)
    assert codes(found) == ["auth-not-star"]
    assert found[0].statement == 0


def test_wildcard_action_is_a_warning_but_grants(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Action"] = "ecr:*"
    found = check_policy(doc)
    assert [(f.severity, f.code) for f in found] == [("warning", "wildcard-action")]


def test_star_resource_for_pulls_is_a_warning(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Resource"] = "*"
    assert [(f.severity, f.code) for f in check_policy(doc)] == [("warning", "wildcard-resource")]


def test_single_statement_object_and_string_action_accepted(good: dict[str, Any]) -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": [*policy.REQUIRED_ACTIONS],
            "Resource": "*",
        },
    }
    assert codes(check_policy(doc)) == ["wildcard-resource"]


def test_deny_statements(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"].append({"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": "*"})
    found = check_policy(doc)
    assert [(f.severity, f.code, f.statement) for f in found] == [("error", "deny", 2)]

    doc["Statement"][2] = {
        "Effect": "Deny",
        "Action": "ecr:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    assert [(f.severity, f.code) for f in check_policy(doc)] == [("warning", "conditional-deny")]

    # A Deny on something else does not matter.
    doc["Statement"][2] = {"Effect": "Deny", "Action": "ecr:PutImage", "Resource": "*"}
    assert check_policy(doc) == []
    doc["Statement"][2] = {
        "Effect": "Deny",
        "Action": "ecr:*",
        "Resource": "arn:aws:ecr:us-east-1:513558712013:repository/other",
    }
    assert check_policy(doc) == []


def test_not_action_and_not_resource_warnings(good: dict[str, Any]) -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"},
            {"Effect": "Allow", "Action": "ecr:BatchGetImage", "NotResource": "arn:aws:s3:::x"},
        ],
    }
    found = check_policy(doc)
    assert {(f.severity, f.code) for f in found} >= {("warning", "not-action"), ("warning", "not-resource")}
    assert not errors(found)  # NotAction on * does grant everything needed


def test_principal_in_identity_policy(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][0]["Principal"] = {"AWS": "*"}
    assert codes(check_policy(doc)) == ["principal-in-identity-policy"]


def test_malformed_statements() -> None:
    assert "bad-effect" in codes(check_policy({"Version": "2012-10-17", "Statement": [{"Effect": "allow"}]}))
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}
    assert codes(check_policy(doc)) == ["action-shape"]
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]}
    assert codes(check_policy(doc)) == ["bad-types"]


def test_repository_children_form(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    res = doc["Statement"][1]["Resource"]
    res[0] = res[0] + "/*"
    found = check_policy(doc)
    assert ("warning", "repository-children") in [(f.severity, f.code) for f in found]
    assert ("error", "missing-repository") in [(f.severity, f.code) for f in found]


def test_other_malformed_resources(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Resource"] += ["not-an-arn", "arn:aws:ecr:us-east-1", "arn:aws:s3:::bucket/*"]
    assert set(codes(check_policy(doc))) == {"not-an-arn", "malformed-arn", "not-ecr"}


def test_unrelated_repository_in_own_account_is_only_a_warning(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["Statement"][1]["Resource"].append("arn:aws:ecr:eu-west-1:123456789012:repository/my-app")
    found = check_policy(doc)
    assert found and all(f.severity == "warning" for f in found)
    assert "unrelated-repository" in codes(found)


def test_finding_str() -> None:
    f = Finding("error", "boom", "fix it", 1, None, "x")
    assert str(f) == "error: statement 1: boom — fix it"


# -- policy files -------------------------------------------------------------------------------


def test_load_policy_file(tmp_path: Path, good: dict[str, Any]) -> None:
    p = tmp_path / "p.json"
    p.write_text(render(good))
    assert load_policy_file(p) == good


def test_load_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_policy_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "Version": "2012-10-17",\n  oops\n}')
    with pytest.raises(InputError, match=r"not valid JSON: .* line 3"):
        load_policy_file(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[]")
    with pytest.raises(InputError, match="JSON object"):
        load_policy_file(arr)
    with pytest.raises(InputError, match="directory"):
        load_policy_file(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"Sid": "\xe9"}')
    with pytest.raises(InputError, match="UTF-8"):
        load_policy_file(latin)


# -- role ARNs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/CurrentsEcrPull",
        "arn:aws:iam::123456789012:role/ci/team/puller",
        "arn:aws-cn:iam::123456789012:role/x+=,.@_-y",
        "arn:aws-us-gov:iam::123456789012:role/" + "a" * 64,
        "  arn:aws:iam::123456789012:role/padded  ",
    ],
)
def test_valid_role_arns(arn: str) -> None:
    assert validate_role_arn(arn) == arn.strip()


@pytest.mark.parametrize(
    ("arn", "match"),
    [
        ("", "empty"),
        ("CurrentsEcrPull", "not an ARN"),
        ("arn:aws:iam::12345678901:role/x", "expected 12 digits"),
        ("arn:aws:iam:us-east-1:123456789012:role/x", "has a region"),
        ("arn:aws:iam::123456789012:user/alice", "not a role ARN"),
        ("arn:aws:sts::123456789012:assumed-role/Pull/sess", "assumed-role session"),
        ("arn:aws:s3::123456789012:role/x", "expected 'iam'"),
        ("arn:aws:iam::123456789012:role/", "not a role ARN"),
        ("arn:aws:iam::123456789012:role/path/", "name is missing"),
        ("arn:aws:iam::123456789012:role/" + "a" * 65, "at most 64"),
        ("arn:aws:iam::123456789012:role/bad name", "contains ' '"),
        ("arn:aws:iam::123456789012:role/a//b", "path segment"),
        ("arn:azure:iam::123456789012:role/x", "partition"),
    ],
)
def test_invalid_role_arns(arn: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        validate_role_arn(arn)
    assert "\n" not in str(info.value)
    assert info.value.hint


def test_assumed_role_hint_names_the_role() -> None:
    with pytest.raises(InputError) as info:
        validate_role_arn("arn:aws:sts::123456789012:assumed-role/Pull/sess")
    assert info.value.hint.endswith("arn:aws:iam::123456789012:role/Pull")


def test_role_name_and_account_from_arn() -> None:
    arn = "arn:aws:iam::123456789012:role/ci/puller"
    assert role_name_from_arn(arn) == "puller"
    assert account_from_arn(arn) == "123456789012"
    with pytest.raises(InputError):
        account_from_arn("arn:aws:s3:::bucket")


def test_share_message() -> None:
    s = Settings(tag="2026-01-26-001")
    text = share_message(s, "arn:aws:iam::123456789012:role/CurrentsEcrPull")
    assert "arn:aws:iam::123456789012:role/CurrentsEcrPull" in text
    assert "123456789012" in text
    assert "2026-01-26-001" in text
    for svc in SERVICES:
        assert f"513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/{svc}\n" in text
    with pytest.raises(InputError):
        share_message(s, "not-an-arn")


def test_share_message_uses_overridden_registry() -> None:
    s = Settings(source_registry="127.0.0.1:5001", services=("api",))
    text = share_message(s, "arn:aws:iam::123456789012:role/R")
    assert "127.0.0.1:5001/currents/on-prem/api" in text
    assert "staging" in text  # default tag
