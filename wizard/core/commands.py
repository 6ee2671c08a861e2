"""The shell commands a person would type to do each step by hand ("print commands").

Everything is quoted with :func:`shlex.quote`. No function here takes a secret, so none can
print one: credentials appear only as placeholders (``<SecretAccessKey>``) or are piped
through ``--password-stdin``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.core import policy
from wizard.core.envfile import REPOSITORY_KEY, TAG_KEY, normalise_repository
from wizard.core.settings import DEFAULT_TAG, Settings, Target, parse_target, validate_tag

DEFAULT_ROLE_NAME = "CurrentsEcrPull"
DEFAULT_POLICY_NAME = "CurrentsEcrPull"
DEFAULT_SESSION_NAME = "currents-wizard"
PLACEHOLDER_ROLE_ARN = "<YOUR_ROLE_ARN>"
PLACEHOLDER_TARGET = "<TARGET_REGISTRY>"
REDACTED = "<redacted>"

_ECR_HOST_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$"
)


@dataclass(frozen=True)
class Command:
    """One thing to type: what it does, and the (already quoted) shell text."""

    description: str
    argv_str: str

    def __str__(self) -> str:
        return f"# {self.description}\n{self.argv_str}"


def q(argv: Sequence[str]) -> str:
    """Quote each word for a POSIX shell and join them."""
    return " ".join(shlex.quote(a) for a in argv)


def _with_profile(argv: list[str], settings: Settings) -> list[str]:
    return [*argv, "--profile", settings.profile] if settings.profile else argv


def _host(value: str) -> str:
    raw = value.split("://", 1)[-1]
    return raw.split("/", 1)[0]


def ecr_region(host: str) -> str | None:
    """The region of a private ECR host (``<acct>.dkr.ecr.<region>.amazonaws.com``), else None."""
    m = _ECR_HOST_RE.match(_host(host).lower().removesuffix(":443"))
    return m.group("region") if m else None


def _target(settings: Settings, target: Target | str | None) -> Target:
    t = target if isinstance(target, Target) else parse_target(target or settings.target)
    if not t.insecure and t.host in settings.insecure_registries:
        t = Target(t.host, t.path, insecure=True)
    return t


def _target_ref(t: Target, service: str, tag: str) -> str:
    return f"{t.host}/{t.repo(service)}:{tag}"


def heredoc(path: str, content: str, expand: bool = False) -> str:
    """``cat > PATH <<'EOF' … EOF`` (``expand`` leaves the delimiter unquoted so ``$VARS`` expand)."""
    delim = "EOF" if expand else "'EOF'"
    body = content if content.endswith("\n") else content + "\n"
    return f"cat > {shlex.quote(path)} <<{delim}\n{body}EOF"


# -- step 1: policy and role --------------------------------------------------------------------


def create_role_commands(
    settings: Settings,
    role_name: str = DEFAULT_ROLE_NAME,
    account: str | None = None,
    policy_name: str = DEFAULT_POLICY_NAME,
    trust_file: str = "trust.json",
    policy_file: str = "currents-ecr-pull-policy.json",
) -> list[Command]:
    """Write the two policy files, create the role, attach the inline pull policy.

    Without ``account`` the trust policy names ``$ACCOUNT_ID``, looked up by the first command.
    """
    cmds: list[Command] = []
    if account is None:
        lookup = _with_profile(
            ["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"], settings
        )
        cmds.append(Command("Find your AWS account id", f"ACCOUNT_ID=$({q(lookup)})"))
        trust_text = policy.render(policy.trust_policy("000000000000")).replace("000000000000", "${ACCOUNT_ID}")
        cmds.append(
            Command("Write the role's trust policy (your account may assume it)", heredoc(trust_file, trust_text, True))
        )
    else:
        trust_text = policy.render(policy.trust_policy(account))
        cmds.append(
            Command("Write the role's trust policy (your account may assume it)", heredoc(trust_file, trust_text))
        )
    cmds.append(
        Command(
            "Write the permissions policy (ECR login + pull of the Currents repositories)",
            heredoc(policy_file, policy.render(policy.identity_policy(settings))),
        )
    )
    create = [
        "aws", "iam", "create-role",
        "--role-name", role_name,
        "--assume-role-policy-document", f"file://{trust_file}",
        "--query", "Role.Arn", "--output", "text",
    ]  # fmt: skip
    cmds.append(Command(f"Create the IAM role {role_name} (prints its ARN)", q(_with_profile(create, settings))))
    put = [
        "aws", "iam", "put-role-policy",
        "--role-name", role_name,
        "--policy-name", policy_name,
        "--policy-document", f"file://{policy_file}",
    ]  # fmt: skip
    cmds.append(Command(f"Attach the pull policy {policy_name} to the role", q(_with_profile(put, settings))))
    return cmds


def share_commands(settings: Settings, role_arn: str | None) -> list[Command]:
    """Step 2 is a message, not a command: show it as comments."""
    if role_arn:
        text = policy.share_message(settings, role_arn)
    else:
        text = f"Send the role ARN ({PLACEHOLDER_ROLE_ARN}) to your Currents contact."
    body = "\n".join(f"#   {line}".rstrip() for line in text.rstrip("\n").splitlines())
    return [Command("Send this to your Currents contact, then wait for access", body)]


# -- step 3: authenticate ----------------------------------------------------------------------


def assume_role_commands(
    settings: Settings, role_arn: str | None, session_name: str = DEFAULT_SESSION_NAME
) -> list[Command]:
    """``aws sts assume-role`` and the exports of its result (placeholders, never values)."""
    arn = policy.validate_role_arn(role_arn) if role_arn else PLACEHOLDER_ROLE_ARN
    argv = _with_profile(
        ["aws", "sts", "assume-role", "--role-arn", arn, "--role-session-name", session_name], settings
    )
    text = q(argv) if role_arn else q(argv).replace(shlex.quote(PLACEHOLDER_ROLE_ARN), PLACEHOLDER_ROLE_ARN)
    exports = "\n".join(
        f"export {var}=<{field}>"
        for var, field in (
            ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
            ("AWS_SESSION_TOKEN", "SessionToken"),
        )
    )
    return [
        Command("Assume the role (prints temporary credentials)", text),
        Command("Export the temporary credentials from that response (values not shown here)", exports),
    ]


def ecr_login_commands(settings: Settings, tool: str = "docker") -> list[Command]:
    """Log ``docker`` or ``skopeo`` in to Currents' ECR with the assumed role's credentials."""
    host = _host(settings.vendor_registry)
    region = ecr_region(host) or settings.region
    # No --profile: the exported assumed-role credentials must be the ones used.
    token = ["aws", "ecr", "get-login-password", "--region", region]
    login = [tool, "login", "--username", "AWS", "--password-stdin"]
    if tool == "skopeo" and host in settings.insecure_registries:
        login.append("--tls-verify=false")
    return [Command(f"Log {tool} in to the Currents registry {host}", f"{q(token)} | {q([*login, host])}")]


def target_login_commands(
    settings: Settings, target: Target | str | None = None, tool: str = "docker"
) -> list[Command]:
    """Log in to the customer's registry (ECR via ``aws ecr get-login-password``, others interactively)."""
    t = _target(settings, target)
    region = ecr_region(t.host)
    if region is not None:
        token = _with_profile(["aws", "ecr", "get-login-password", "--region", region], settings)
        login = [tool, "login", "--username", "AWS", "--password-stdin", t.host]
        return [Command(f"Log {tool} in to your ECR registry {t.host}", f"{q(token)} | {q(login)}")]
    login = [tool, "login"]
    if settings.target_username:
        login += ["--username", settings.target_username]
    if tool == "skopeo" and t.insecure:
        login.append("--tls-verify=false")
    return [Command(f"Log {tool} in to your registry {t.host} (asks for the password)", q([*login, t.host]))]


# -- step 4: mirror ----------------------------------------------------------------------------


def create_target_repos_commands(settings: Settings, target: Target | str | None = None) -> list[Command]:
    """ECR targets need each repository created first; other registries create them on push."""
    t = _target(settings, target)
    region = ecr_region(t.host)
    if region is None:
        return []
    return [
        Command(
            f"Create the ECR repository {t.repo(svc)}",
            q(
                _with_profile(
                    ["aws", "ecr", "create-repository", "--repository-name", t.repo(svc), "--region", region], settings
                )
            ),
        )
        for svc in settings.services
    ]


def mirror_docker_commands(settings: Settings, target: Target | str | None = None, tag: str = "") -> list[Command]:
    """The manual's pull → tag → push loop, filled in for each service (drops multi-arch, re-compresses)."""
    t = _target(settings, target)
    tag = validate_tag(tag or settings.tag or DEFAULT_TAG)
    cmds: list[Command] = []
    for svc in settings.services:
        src, dst = settings.source_ref(svc, tag), _target_ref(t, svc, tag)
        cmds += [
            Command(f"{svc}: pull from Currents", q(["docker", "pull", src])),
            Command(f"{svc}: tag for your registry", q(["docker", "tag", src, dst])),
            Command(f"{svc}: push to your registry", q(["docker", "push", dst])),
        ]
    return cmds


def mirror_skopeo_commands(settings: Settings, target: Target | str | None = None, tag: str = "") -> list[Command]:
    """``skopeo copy --all`` per service: every architecture, digests unchanged."""
    t = _target(settings, target)
    tag = validate_tag(tag or settings.tag or DEFAULT_TAG)
    src_insecure = _host(settings.vendor_registry) in settings.insecure_registries
    cmds: list[Command] = []
    for svc in settings.services:
        argv = ["skopeo", "copy", "--all"]
        if src_insecure:
            argv.append("--src-tls-verify=false")
        if t.insecure:
            argv.append("--dest-tls-verify=false")
        argv += [f"docker://{settings.source_ref(svc, tag)}", f"docker://{_target_ref(t, svc, tag)}"]
        cmds.append(Command(f"{svc}: copy every architecture to your registry", q(argv)))
    return cmds


# -- step 5: configure -------------------------------------------------------------------------


def env_commands(repository: str, tag: str, env_path: str | Path = ".env") -> list[Command]:
    """The two ``.env`` lines to set (replace the existing ones; everything else stays)."""
    repo = normalise_repository(repository)
    validate_tag(tag)
    return [
        Command(
            f"In {env_path}, set these two lines (replace the existing ones, keep everything else)",
            f"{REPOSITORY_KEY}={repo}\n{TAG_KEY}={tag}",
        )
    ]


def verify_commands(env_path: str | Path = ".env", compose_file: str = "docker-compose.yml") -> list[Command]:
    """Show which image references compose now resolves."""
    argv = ["docker", "compose", "-f", compose_file, "--env-file", str(env_path), "config", "--images"]
    return [Command("Check the image references compose will use", q(argv))]


# -- everything --------------------------------------------------------------------------------


def render(commands: Iterable[Command]) -> str:
    """Commands as a readable script: ``# description`` above each, blank line between."""
    return "\n\n".join(str(c) for c in commands) + "\n"


def all_commands(
    settings: Settings,
    *,
    role_arn: str | None = None,
    role_name: str = DEFAULT_ROLE_NAME,
    account: str | None = None,
    target: Target | str | None = None,
    tag: str = "",
    engine: str = "registry",
) -> list[Command]:
    """Every step by hand, in order. ``engine`` docker → the docker loop; otherwise skopeo."""
    tag = tag or settings.tag or DEFAULT_TAG
    tool = "docker" if engine == "docker" else "skopeo"
    if role_arn and account is None:
        account = policy.account_from_arn(role_arn)
    cmds = create_role_commands(settings, role_name, account)
    cmds += share_commands(settings.with_(tag=tag), role_arn)
    cmds += assume_role_commands(settings, role_arn)
    cmds += ecr_login_commands(settings, tool)
    tgt_raw = target if target is not None else settings.target
    if tgt_raw:
        t = _target(settings, tgt_raw)
        if ecr_region(t.host) is not None:
            cmds.append(
                Command(
                    "Go back to your own AWS credentials for your ECR (the assumed role cannot push there)",
                    "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
                )
            )
        cmds += target_login_commands(settings, t, tool)
        cmds += create_target_repos_commands(settings, t)
        mirror = mirror_docker_commands if engine == "docker" else mirror_skopeo_commands
        cmds += mirror(settings, t, tag)
        cmds += env_commands(t.repository_prefix, tag, settings.env_path)
    else:
        cmds.append(Command("Mirror and configure need a target registry", "# pass --target HOST[:PORT]/PATH"))
    return cmds


def for_wizard(wizard: Any) -> list[str]:
    """Lines of :func:`all_commands` for a :class:`wizard.core.steps.Wizard` (its settings and inputs)."""
    inputs = wizard.state.inputs
    role_name = inputs.get("role_name") or DEFAULT_ROLE_NAME
    cmds = all_commands(
        wizard.settings,
        role_arn=inputs.get("role_arn") or None,
        role_name=role_name,
        target=inputs.get("target") or None,
        tag=wizard.tag,
        engine=wizard.engine,
    )
    return render(cmds).rstrip("\n").split("\n")
