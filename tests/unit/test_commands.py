"""Equivalent shell commands: content, quoting (checked with a real shell), and no secrets."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from wizard.core import commands, policy
from wizard.core.commands import (
    Command,
    all_commands,
    assume_role_commands,
    create_role_commands,
    create_target_repos_commands,
    ecr_login_commands,
    ecr_region,
    env_commands,
    for_wizard,
    mirror_docker_commands,
    mirror_skopeo_commands,
    render,
    target_login_commands,
)
from wizard.core.errors import InputError
from wizard.core.settings import SERVICES, Settings

ROLE = "arn:aws:iam::123456789012:role/CurrentsEcrPull"
VENDOR = "513558712013.dkr.ecr.us-east-1.amazonaws.com"
ECR_TARGET = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/currents"


def argv(cmd: Command) -> list[str]:
    return shlex.split(cmd.argv_str)


def run_bash(script: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(["bash", "-euc", script], cwd=cwd, env=env, check=True, timeout=30)


def test_create_role_with_account_writes_real_policy_files(tmp_path: Path) -> None:
    s = Settings()
    cmds = create_role_commands(s, "CurrentsEcrPull", account="123456789012")
    writes = [c for c in cmds if c.argv_str.startswith("cat > ")]
    assert len(writes) == 2
    run_bash("\n".join(c.argv_str for c in writes), tmp_path)
    assert json.loads((tmp_path / "trust.json").read_text()) == policy.trust_policy("123456789012")
    assert (tmp_path / "currents-ecr-pull-policy.json").read_text() == policy.render(policy.identity_policy(s))
    create, put = (argv(c) for c in cmds if c.argv_str.startswith("aws iam"))
    assert create[:3] == ["aws", "iam", "create-role"]
    assert create[create.index("--role-name") + 1] == "CurrentsEcrPull"
    assert create[create.index("--assume-role-policy-document") + 1] == "file://trust.json"
    assert put[:3] == ["aws", "iam", "put-role-policy"]
    assert put[put.index("--policy-name") + 1] == "CurrentsEcrPull"
    assert put[put.index("--policy-document") + 1] == "file://currents-ecr-pull-policy.json"
    assert "--profile" not in create and "--profile" not in put


def test_create_role_without_account_uses_a_shell_variable(tmp_path: Path) -> None:
    cmds = create_role_commands(Settings(profile="dev"), "R")
    assert argv(cmds[0])[0].startswith("ACCOUNT_ID=$(aws")  # looked up first
    assert "get-caller-identity" in cmds[0].argv_str and "--profile dev" in cmds[0].argv_str
    trust = cmds[1].argv_str
    run_bash(trust, tmp_path, env={"ACCOUNT_ID": "999988887777", "PATH": "/usr/bin:/bin"})
    assert json.loads((tmp_path / "trust.json").read_text()) == policy.trust_policy("999988887777")
    assert all("--profile" in c.argv_str for c in cmds if c.argv_str.startswith("aws iam"))


def test_profile_with_spaces_is_quoted() -> None:
    cmds = create_role_commands(Settings(profile="my profile; rm -rf /"), "R", account="123456789012")
    create = next(c for c in cmds if "create-role" in c.argv_str)
    assert argv(create)[-2:] == ["--profile", "my profile; rm -rf /"]


def test_assume_role_has_placeholders_only() -> None:
    assume, exports = assume_role_commands(Settings(profile="dev"), ROLE, session_name="s1")
    assert argv(assume) == [
        "aws", "sts", "assume-role", "--role-arn", ROLE, "--role-session-name", "s1", "--profile", "dev",
    ]  # fmt: skip
    assert exports.argv_str.splitlines() == [
        "export AWS_ACCESS_KEY_ID=<AccessKeyId>",
        "export AWS_SECRET_ACCESS_KEY=<SecretAccessKey>",
        "export AWS_SESSION_TOKEN=<SessionToken>",
    ]


def test_assume_role_without_arn_and_with_bad_arn() -> None:
    assume, _ = assume_role_commands(Settings(), None)
    assert "--role-arn <YOUR_ROLE_ARN>" in assume.argv_str
    with pytest.raises(InputError):
        assume_role_commands(Settings(), "arn:aws:iam::1:role/x")


def test_ecr_login_pipeline() -> None:
    (login,) = ecr_login_commands(Settings(profile="dev"))
    left, right = login.argv_str.split(" | ")
    assert shlex.split(left) == [
        "aws",
        "ecr",
        "get-login-password",
        "--region",
        "us-east-1",
    ]  # assumed creds: no profile
    assert shlex.split(right) == ["docker", "login", "--username", "AWS", "--password-stdin", VENDOR]
    (sk,) = ecr_login_commands(Settings(region="eu-central-1", vendor_account="111122223333"), tool="skopeo")
    assert sk.argv_str == (
        "aws ecr get-login-password --region eu-central-1 | "
        "skopeo login --username AWS --password-stdin 111122223333.dkr.ecr.eu-central-1.amazonaws.com"
    )


def test_target_login() -> None:
    (ecr,) = target_login_commands(Settings(profile="p"), ECR_TARGET)
    assert ecr.argv_str == (
        "aws ecr get-login-password --region eu-west-1 --profile p | "
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )
    (plain,) = target_login_commands(Settings(target_username="ci"), "http://127.0.0.1:5002/m", tool="skopeo")
    assert argv(plain) == ["skopeo", "login", "--username", "ci", "--tls-verify=false", "127.0.0.1:5002"]


def test_docker_mirror_loop_filled_in() -> None:
    cmds = mirror_docker_commands(Settings(), "registry.example.com/currents", "2026-01-26-001")
    assert len(cmds) == 3 * len(SERVICES)
    for i, svc in enumerate(SERVICES):
        src = f"{VENDOR}/currents/on-prem/{svc}:2026-01-26-001"
        dst = f"registry.example.com/currents/{svc}:2026-01-26-001"
        assert [argv(c) for c in cmds[3 * i : 3 * i + 3]] == [
            ["docker", "pull", src],
            ["docker", "tag", src, dst],
            ["docker", "push", dst],
        ]


def test_skopeo_copy_all() -> None:
    s = Settings(source_registry="127.0.0.1:5001", insecure_registries=("127.0.0.1:5001",), services=("api", "writer"))
    cmds = mirror_skopeo_commands(s, "http://127.0.0.1:5002/mirror", "v1")
    assert [argv(c) for c in cmds] == [
        [
            "skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"docker://127.0.0.1:5001/currents/on-prem/{svc}:v1", f"docker://127.0.0.1:5002/mirror/{svc}:v1",
        ]
        for svc in ("api", "writer")
    ]  # fmt: skip
    plain = mirror_skopeo_commands(Settings(tag="t"), "reg.example.com")
    assert argv(plain[0]) == [
        "skopeo", "copy", "--all", f"docker://{VENDOR}/currents/on-prem/api:t", "docker://reg.example.com/api:t",
    ]  # fmt: skip


def test_create_target_repos_only_for_ecr() -> None:
    assert create_target_repos_commands(Settings(), "registry.example.com/currents") == []
    cmds = create_target_repos_commands(Settings(profile="p"), ECR_TARGET)
    assert [argv(c) for c in cmds] == [
        ["aws", "ecr", "create-repository", "--repository-name", f"currents/{svc}", "--region", "eu-west-1",
         "--profile", "p"]
        for svc in SERVICES
    ]  # fmt: skip


def test_ecr_region() -> None:
    assert ecr_region("123456789012.dkr.ecr.eu-west-1.amazonaws.com") == "eu-west-1"
    assert ecr_region("https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x") == "cn-north-1"
    assert ecr_region("registry.example.com") is None


def test_env_lines() -> None:
    (cmd,) = env_commands("127.0.0.1:5002/mirror", "2026-01-26-001", "/srv/on-prem/.env")
    assert "/srv/on-prem/.env" in cmd.description
    assert cmd.argv_str == "DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\nDC_CURRENTS_IMAGE_TAG=2026-01-26-001"
    with pytest.raises(InputError):
        env_commands("x", "bad tag")


def test_all_commands_order_and_no_secrets() -> None:
    s = Settings(profile="dev", tag="2026-01-26-001")
    cmds = all_commands(s, role_arn=ROLE, target=ECR_TARGET, engine="registry")
    text = render(cmds)
    order = [
        "aws iam create-role",
        "aws iam put-role-policy",
        "Role ARN:      " + ROLE,
        "aws sts assume-role",
        "skopeo login --username AWS --password-stdin " + VENDOR,
        "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
        "aws ecr create-repository",
        "skopeo copy --all",
        "DC_CURRENTS_IMAGE_TAG=2026-01-26-001",
    ]
    positions = [text.index(piece) for piece in order]
    assert positions == sorted(positions)
    # credentials only ever appear as placeholders
    for line in text.splitlines():
        if "AWS_SECRET_ACCESS_KEY=" in line or "AWS_SESSION_TOKEN=" in line:
            assert line.split("=", 1)[1] in ("<SecretAccessKey>", "<SessionToken>")
    assert "--password " not in text and " -p " not in text
    # the account of the role ARN goes into the trust policy
    assert '"AWS": "arn:aws:iam::123456789012:root"' in text


def test_all_commands_without_target() -> None:
    text = render(all_commands(Settings(), engine="docker"))
    assert "docker login --username AWS --password-stdin " + VENDOR in text
    assert "--target" in text and "docker pull" not in text


def test_every_shell_line_parses() -> None:
    s = Settings(profile="a b", insecure_registries=("127.0.0.1:5002",))
    for engine in ("registry", "docker"):
        for cmd in all_commands(s, role_arn=ROLE, target="127.0.0.1:5002/mirror", tag="v1", engine=engine):
            assert cmd.description and "\n" not in cmd.description
            if not cmd.argv_str.startswith(("cat >", "#", "export", "DC_")):
                shlex.split(cmd.argv_str)  # balanced quoting


def test_render_and_str() -> None:
    c = Command("say hi", "echo hi")
    assert str(c) == "# say hi\necho hi"
    assert render([c, c]) == "# say hi\necho hi\n\n# say hi\necho hi\n"


def test_for_wizard_uses_state_inputs(tmp_path: Path) -> None:
    wiz = SimpleNamespace(
        settings=Settings(dir=tmp_path),
        state=SimpleNamespace(
            inputs={"role_arn": ROLE, "role_name": "MyPull", "target": "http://127.0.0.1:5002/mirror"}
        ),
        tag="v7",
        engine="docker",
    )
    lines = for_wizard(wiz)
    text = "\n".join(lines)
    assert all(isinstance(x, str) and "\n" not in x for x in lines)
    assert "--role-name MyPull" in text
    assert f"docker pull {VENDOR}/currents/on-prem/api:v7" in text
    assert "docker push 127.0.0.1:5002/mirror/webhooks:v7" in text
    assert f"In {tmp_path / '.env'}" in text
    assert "DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/" in lines


def test_defaults_match_the_rest_of_the_wizard() -> None:
    assert commands.DEFAULT_ROLE_NAME == "CurrentsEcrPull"
    assert commands.DEFAULT_POLICY_NAME == "CurrentsEcrPull"
