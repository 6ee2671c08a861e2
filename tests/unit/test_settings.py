from __future__ import annotations

from pathlib import Path

import pytest

from wizard.core.errors import InputError
from wizard.core.settings import (
    Settings,
    env_name,
    parse_target,
    validate_services,
    validate_tag,
)


def test_defaults_build_vendor_names() -> None:
    s = Settings()
    assert s.vendor_registry == "513558712013.dkr.ecr.us-east-1.amazonaws.com"
    assert s.source_ref("api", "staging") == "513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/api:staging"
    assert s.services == ("api", "director", "change-streams", "scheduler", "writer", "webhooks")


@pytest.mark.parametrize(
    ("raw", "host", "path", "insecure", "prefix"),
    [
        ("registry.example.com/currents", "registry.example.com", "currents", False, "registry.example.com/currents/"),
        ("registry.example.com/currents/", "registry.example.com", "currents", False, "registry.example.com/currents/"),
        ("http://127.0.0.1:5002/m/x", "127.0.0.1:5002", "m/x", True, "127.0.0.1:5002/m/x/"),
        ("https://reg.local", "reg.local", "", False, "reg.local/"),
    ],
)
def test_parse_target(raw: str, host: str, path: str, insecure: bool, prefix: str) -> None:
    t = parse_target(raw)
    assert (t.host, t.path, t.insecure, t.repository_prefix) == (host, path, insecure, prefix)
    assert parse_target(t.spec) == t


@pytest.mark.parametrize(
    "raw",
    ["", "Registry.Example.com/Currents", "reg.example.com/UPPER", "ftp://x/y", "host:99999/x", "a b/c", "h/a//b"],
)
def test_parse_target_rejects(raw: str) -> None:
    with pytest.raises(InputError):
        parse_target(raw)


@pytest.mark.parametrize("tag", ["staging", "2026-01-26-001", "v1.2.3", "_x"])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "a:b", "x" * 129, "tag with space"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InputError):
        validate_tag(tag)


def test_services_validation() -> None:
    assert validate_services(("api", "api", "writer")) == ("api", "writer")
    with pytest.raises(InputError, match="unknown service 'web'"):
        validate_services(("web",))


def test_validate_reports_first_bad_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="region"):
        Settings(region="mars").validate()
    with pytest.raises(InputError, match="vendor account"):
        Settings(vendor_account="12").validate()
    with pytest.raises(InputError, match="CA file"):
        Settings(ca_file=tmp_path / "nope.pem").validate()
    with pytest.raises(InputError, match="engine"):
        Settings(engine="podman").validate()


def test_env_names() -> None:
    assert env_name("--source-registry") == "CURRENTS_WIZARD_SOURCE_REGISTRY"
    assert env_name("target-password-stdin") == "CURRENTS_WIZARD_TARGET_PASSWORD_STDIN"
