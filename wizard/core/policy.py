"""IAM policies for pulling Currents images: generate, render, check; role ARN helpers.

The customer's role needs ``ecr:GetAuthorizationToken`` on ``"*"`` and the three pull actions
on each vendor repository ``arn:<partition>:ecr:<region>:<account>:repository/<prefix>/<svc>``.
:func:`check_policy` is a strict checker for any policy document a user already has.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.core.errors import InputError
from wizard.core.settings import DEFAULT_TAG, Settings, validate_account

POLICY_VERSION = "2012-10-17"
AUTH_ACTION = "ecr:GetAuthorizationToken"
PULL_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)
REQUIRED_ACTIONS: tuple[str, ...] = (AUTH_ACTION, *PULL_ACTIONS)
SID_AUTH = "CurrentsEcrAuthToken"
SID_PULL = "CurrentsEcrPullImages"
SID_TRUST = "AllowAssumeRole"

INVALID_ARN_EXPLANATION = (
    "The policy on Currents' published page also lists resources such as "
    "arn:aws:ecr:us-east-1:513558712013:currents/on-prem/api/*. Those are not ECR resource ARNs: "
    "the only ECR resource type is a repository, written "
    "arn:aws:ecr:<region>:<account>:repository/<name>, and images inside a repository have no ARN "
    "of their own. Such entries match nothing, so they grant nothing; the policy here omits them. "
    "The repository/currents/on-prem/<service> entries are the ones that give access."
)

_PARTITIONS: tuple[tuple[str, str], ...] = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
)
_KNOWN_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_IAM_NAME_RE = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_ROLE_NAME_MAX = 64
_ROLE_PATH_MAX = 512
_PRINCIPAL_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:(?:iam::\d{12}:(?:root|(?:user|role)/(?:[\w+=,.@-]+/)*[\w+=,.@-]+)"
    r"|sts::\d{12}:assumed-role/[\w+=,.@-]+/[\w+=,.@-]+)$",
    re.ASCII,
)


def partition_for_region(region: str) -> str:
    """``us-east-1`` -> ``aws``; ``cn-north-1`` -> ``aws-cn``; ``us-gov-west-1`` -> ``aws-us-gov``."""
    for prefix, partition in _PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


def repository_arn(settings: Settings, service: str) -> str:
    """The ECR repository ARN of one vendor image."""
    partition = partition_for_region(settings.region)
    return f"arn:{partition}:ecr:{settings.region}:{settings.vendor_account}:repository/{settings.source_repo(service)}"


def identity_policy(settings: Settings) -> dict[str, Any]:
    """The identity (permissions) policy for the customer's role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": SID_AUTH,
                "Effect": "Allow",
                "Action": [AUTH_ACTION],
                "Resource": "*",
            },
            {
                "Sid": SID_PULL,
                "Effect": "Allow",
                "Action": list(PULL_ACTIONS),
                "Resource": [repository_arn(settings, s) for s in settings.services],
            },
        ],
    }


def validate_principal(value: str) -> str:
    """Check an IAM principal ARN (root, user, role or assumed-role); a bare account id becomes ``root``."""
    v = value.strip()
    if _ACCOUNT_RE.match(v):
        return f"arn:aws:iam::{v}:root"
    if not _PRINCIPAL_RE.match(v):
        raise InputError(
            f"invalid principal ARN {value!r}",
            "use arn:aws:iam::<12-digit account>:root, …:role/NAME or …:user/NAME",
        )
    if v.split(":")[1] not in _KNOWN_PARTITIONS:
        raise InputError(f"unknown AWS partition in principal {value!r}", f"use one of {', '.join(_KNOWN_PARTITIONS)}")
    return v


def trust_policy(
    account_id: str,
    principals: list[str] | None = None,
    external_id: str | None = None,
    partition: str = "aws",
) -> dict[str, Any]:
    """The role's trust policy: the customer's own account (``:root``) or the named principals may assume it."""
    validate_account(account_id, "account")
    if partition not in _KNOWN_PARTITIONS:
        raise InputError(f"unknown AWS partition {partition!r}", f"use one of {', '.join(_KNOWN_PARTITIONS)}")
    if principals:
        arns = list(dict.fromkeys(validate_principal(p) for p in principals))
    else:
        arns = [f"arn:{partition}:iam::{account_id}:root"]
    statement: dict[str, Any] = {
        "Sid": SID_TRUST,
        "Effect": "Allow",
        "Principal": {"AWS": arns[0] if len(arns) == 1 else arns},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        if not re.match(r"^[\w+=,.@:/-]{2,1224}$", external_id, re.ASCII):
            raise InputError(
                "invalid external id",
                "use 2-1224 characters from letters, digits and +=,.@:/-",
            )
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def render(policy: dict[str, Any]) -> str:
    """Stable pretty JSON: indent 2, key order as generated, trailing newline."""
    return json.dumps(policy, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Role ARNs


def validate_role_arn(arn: str) -> str:
    """Check ``arn:aws[-x]:iam::<12 digits>:role/[path/]name``; return it stripped or raise InputError."""
    hint = "copy the role's ARN from the IAM console, e.g. arn:aws:iam::123456789012:role/currents-ecr-pull"
    value = arn.strip()
    if not value:
        raise InputError("the role ARN is empty", hint)
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise InputError(f"{value!r} is not an ARN (expected arn:aws:iam::ACCOUNT:role/NAME)", hint)
    _, partition, service, region, account, resource = parts
    if not re.match(r"^aws(?:-[a-z]+)*$", partition):
        raise InputError(f"invalid partition {partition!r} in role ARN {value!r}", hint)
    if service == "sts" and resource.startswith("assumed-role/"):
        role = resource.split("/")[1] if "/" in resource else "NAME"
        raise InputError(
            f"{value!r} is an assumed-role session, not a role",
            f"use the role itself: arn:{partition}:iam::{account}:role/{role}",
        )
    if service != "iam":
        raise InputError(f"role ARN {value!r} has service {service!r}, expected 'iam'", hint)
    if region:
        raise InputError(f"role ARN {value!r} has a region ({region!r}); IAM ARNs have none", hint)
    if not _ACCOUNT_RE.match(account):
        raise InputError(f"role ARN {value!r} has account {account!r}; expected 12 digits", hint)
    kind, _, rest = resource.partition("/")
    if kind != "role" or not rest:
        raise InputError(f"{value!r} is not a role ARN (its resource is {resource!r}, expected role/NAME)", hint)
    *path, name = rest.split("/")
    if not name:
        raise InputError(f"role ARN {value!r} ends with '/': the role name is missing", hint)
    if len(name) > _ROLE_NAME_MAX:
        raise InputError(f"role name {name!r} is {len(name)} characters; IAM allows at most {_ROLE_NAME_MAX}", hint)
    if not _IAM_NAME_RE.match(name):
        bad = sorted({c for c in name if not _IAM_NAME_RE.match(c)})
        raise InputError(
            f"role name {name!r} contains {''.join(bad)!r}; IAM allows letters, digits and +=,.@_-",
            hint,
        )
    if path:
        if len("/" + "/".join(path) + "/") > _ROLE_PATH_MAX:
            raise InputError(f"role path in {value!r} is longer than {_ROLE_PATH_MAX} characters", hint)
        for seg in path:
            if not seg or not _IAM_NAME_RE.match(seg):
                raise InputError(f"role path segment {seg!r} in {value!r} is not allowed", hint)
    return value


def role_name_from_arn(arn: str) -> str:
    """``arn:aws:iam::123456789012:role/ci/puller`` -> ``puller``."""
    return validate_role_arn(arn).rsplit("/", 1)[1]


def account_from_arn(arn: str) -> str:
    """The 12-digit account of any ARN that carries one."""
    parts = arn.strip().split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not _ACCOUNT_RE.match(parts[4]):
        raise InputError(
            f"cannot read an account id from {arn!r}", "give a full ARN such as arn:aws:iam::123456789012:role/NAME"
        )
    return parts[4]


def share_message(settings: Settings, role_arn: str) -> str:
    """Ready-to-send text for the Currents contact asking for cross-account pull access."""
    arn = validate_role_arn(role_arn)
    account = account_from_arn(arn)
    tag = settings.tag or DEFAULT_TAG
    repos = "\n".join(f"  - {settings.vendor_registry}/{settings.source_repo(s)}" for s in settings.services)
    return (
        "Hello,\n"
        "\n"
        "Please grant our IAM role pull access to the Currents on-prem images.\n"
        "\n"
        f"Role ARN:      {arn}\n"
        f"AWS account:   {account}\n"
        f"Image tag:     {tag}\n"
        "\n"
        f"Repositories ({len(settings.services)}):\n"
        f"{repos}\n"
        "\n"
        "The role needs ecr:BatchCheckLayerAvailability, ecr:BatchGetImage and "
        "ecr:GetDownloadUrlForLayer on these repositories (their repository policies must allow "
        "this role or our account).\n"
        "\n"
        "Thank you!\n"
    )


# --------------------------------------------------------------------------------------------
# Strict checker


@dataclass(frozen=True)
class Finding:
    """One problem in a policy. ``severity`` is ``error`` (access will not work / invalid) or ``warning``."""

    severity: str
    message: str
    hint: str = ""
    statement: int | None = None  # index into Statement (0-based), None for document-level findings
    resource: str | None = None
    code: str = ""

    def __str__(self) -> str:
        where = f"statement {self.statement}: " if self.statement is not None else ""
        text = f"{self.severity}: {where}{self.message}"
        return f"{text} — {self.hint}" if self.hint else text


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    return None


def _glob(pattern: str, value: str, ignore_case: bool) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` exactly one."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _any_glob(patterns: list[str], value: str, ignore_case: bool) -> bool:
    return any(_glob(p, value, ignore_case) for p in patterns)


@dataclass
class _Stmt:
    index: int
    effect: str
    actions: list[str] | None
    not_actions: list[str] | None
    resources: list[str] | None
    not_resources: list[str] | None
    has_condition: bool

    def matches_action(self, action: str) -> bool:
        if self.actions is not None:
            return _any_glob(self.actions, action, True)
        if self.not_actions is not None:
            return not _any_glob(self.not_actions, action, True)
        return False

    def applies(self, action: str, resource: str) -> bool:
        if not self.matches_action(action):
            return False
        if self.resources is not None:
            return _any_glob(self.resources, resource, False)
        if self.not_resources is not None:
            return not _any_glob(self.not_resources, resource, False)
        return False


def check_policy(doc: dict[str, Any] | str, settings: Settings | None = None) -> list[Finding]:
    """Strictly check an identity policy for pulling the Currents images.

    ``doc`` is a parsed policy or its JSON text. Returns findings (empty = the policy grants
    exactly what is needed, with nothing suspicious). Errors mean pulling will fail or IAM will
    reject the document; warnings mean over-broad or unverifiable parts.
    """
    s = settings if settings is not None else Settings()
    findings: list[Finding] = []

    def add(sev: str, code: str, msg: str, hint: str = "", stmt: int | None = None, res: str | None = None) -> None:
        findings.append(Finding(sev, msg, hint, stmt, res, code))

    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as e:
            add(
                "error",
                "invalid-json",
                f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                "fix the JSON syntax (a policy is one JSON object)",
            )
            return findings
    if not isinstance(doc, dict):
        add(
            "error",
            "not-object",
            "a policy must be a JSON object with Version and Statement",
            "start from `currents-wizard policy`",
        )
        return findings

    version = doc.get("Version")
    if version is None:
        add(
            "warning",
            "missing-version",
            "no Version: IAM then uses the old 2008-10-17 language",
            f'add "Version": "{POLICY_VERSION}"',
        )
    elif version == "2008-10-17":
        add(
            "warning",
            "old-version",
            'Version is "2008-10-17" (old policy language)',
            f'use "Version": "{POLICY_VERSION}"',
        )
    elif version != POLICY_VERSION:
        add(
            "error",
            "bad-version",
            f"Version {version!r} is not a policy language version; IAM rejects it",
            f'use "Version": "{POLICY_VERSION}"',
        )

    raw_statements = doc.get("Statement")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        add(
            "error",
            "missing-statement",
            "the policy has no Statement list",
            "add the statements from `currents-wizard policy`",
        )
        return findings

    partition = partition_for_region(s.region)
    prefix_path = f"{s.source_prefix}/" if s.source_prefix else ""
    wanted_repos = {s.source_repo(svc) for svc in s.services}
    statements: list[_Stmt] = []

    for i, st in enumerate(raw_statements):
        if not isinstance(st, dict):
            add("error", "bad-statement", "a statement must be a JSON object", stmt=i)
            continue
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            add("error", "bad-effect", f'Effect must be "Allow" or "Deny", not {effect!r}', stmt=i)
            continue
        if "Principal" in st or "NotPrincipal" in st:
            add(
                "error",
                "principal-in-identity-policy",
                "Principal belongs in a trust or resource policy, not in the role's permissions policy",
                "remove Principal from this statement (the trust policy is separate: `policy --trust`)",
                stmt=i,
            )
        actions = _as_list(st.get("Action")) if "Action" in st else None
        not_actions = _as_list(st.get("NotAction")) if "NotAction" in st else None
        resources = _as_list(st.get("Resource")) if "Resource" in st else None
        not_resources = _as_list(st.get("NotResource")) if "NotResource" in st else None
        if ("Action" in st) == ("NotAction" in st):
            add("error", "action-shape", "a statement needs exactly one of Action or NotAction", stmt=i)
            continue
        if ("Resource" in st) == ("NotResource" in st):
            add("error", "resource-shape", "a statement needs exactly one of Resource or NotResource", stmt=i)
            continue
        lists = [x for x in (actions, not_actions, resources, not_resources) if x is not None]
        if (
            (actions is None and not_actions is None)
            or (resources is None and not_resources is None)
            or any(not all(isinstance(v, str) for v in x) for x in lists)
        ):
            add("error", "bad-types", "Action/Resource must be a string or a list of strings", stmt=i)
            continue
        stmt = _Stmt(i, effect, actions, not_actions, resources, not_resources, "Condition" in st)
        statements.append(stmt)

        if effect == "Allow" and not_actions is not None:
            add(
                "warning",
                "not-action",
                "Allow with NotAction grants every action not listed (over-broad)",
                "list the four ECR actions under Action instead",
                stmt=i,
            )
        if effect == "Allow" and not_resources is not None:
            add(
                "warning",
                "not-resource",
                "Allow with NotResource grants on every resource not listed (over-broad)",
                "list the repository ARNs under Resource instead",
                stmt=i,
            )
        if effect == "Deny" and (not_actions is not None or not_resources is not None):
            add(
                "warning",
                "not-action-deny",
                "Deny with NotAction/NotResource is hard to reason about; check it does not cover ECR pulls",
                stmt=i,
            )

        ecr_relevant = any(stmt.matches_action(a) for a in REQUIRED_ACTIONS) or any(
            a.lower().startswith("ecr:") for a in (actions or [])
        )
        if effect == "Allow" and actions is not None:
            for a in actions:
                if ("*" in a or "?" in a) and any(_glob(a, r, True) for r in REQUIRED_ACTIONS):
                    add(
                        "warning",
                        "wildcard-action",
                        f"wildcard action {a!r} is over-broad (it also grants push/delete or more)",
                        f"list only {', '.join(REQUIRED_ACTIONS)}",
                        stmt=i,
                    )
        if effect == "Allow" and resources is not None and ecr_relevant:
            for r in resources:
                _check_resource(r, i, s, partition, prefix_path, wanted_repos, add)

    if findings and any(
        f.code in ("bad-statement", "bad-effect", "action-shape", "resource-shape", "bad-types") for f in findings
    ):
        # The document is malformed; coverage over the statements we could read would mislead.
        return findings
    _check_coverage(statements, s, add)
    return findings


def _check_coverage(statements: list[_Stmt], s: Settings, add: Any) -> None:
    """Every required action/resource pair must be allowed by some statement and denied by none."""

    def allowed(action: str, resource: str) -> list[_Stmt]:
        return [st for st in statements if st.effect == "Allow" and st.applies(action, resource)]

    def mentioned(action: str) -> list[_Stmt]:
        return [st for st in statements if st.effect == "Allow" and st.matches_action(action)]

    reported: set[tuple[str, int]] = set()

    def once(kind: str, index: int) -> bool:
        if (kind, index) in reported:
            return False
        reported.add((kind, index))
        return True

    def check_pair(action: str, resource: str) -> None:
        grants = allowed(action, resource)
        if grants and all(g.has_condition for g in grants) and once("cond", grants[0].index):
            add(
                "warning",
                "conditional-allow",
                f"{action} is allowed only under a Condition, which this check cannot evaluate",
                "make sure the condition holds when the wizard runs",
                stmt=grants[0].index,
            )
        for st in statements:
            if st.effect != "Deny" or not st.applies(action, resource) or not once("deny", st.index):
                continue
            if st.has_condition:
                add(
                    "warning",
                    "conditional-deny",
                    f"a conditional Deny may block {action} on {resource}",
                    "check its Condition: an explicit Deny overrides every Allow",
                    stmt=st.index,
                    res=resource,
                )
            else:
                add(
                    "error",
                    "deny",
                    f"Deny blocks {action} on {resource}",
                    "an explicit Deny overrides every Allow: narrow or remove this statement",
                    stmt=st.index,
                    res=resource,
                )

    if not allowed(AUTH_ACTION, "*"):
        scoped = mentioned(AUTH_ACTION)
        if scoped:
            add(
                "error",
                "auth-not-star",
                f'{AUTH_ACTION} is not on Resource "*": it takes no resource, so a narrower Resource grants nothing',
                f'give {AUTH_ACTION} "Resource": "*"',
                stmt=scoped[0].index,
            )
        else:
            add(
                "error",
                "missing-action",
                f"{AUTH_ACTION} is not allowed; logging in to ECR will fail",
                f'add {AUTH_ACTION} on "Resource": "*"',
            )
    check_pair(AUTH_ACTION, "*")

    repo_arns = {svc: repository_arn(s, svc) for svc in s.services}
    present: list[str] = []
    for action in PULL_ACTIONS:
        if mentioned(action):
            present.append(action)
        else:
            add(
                "error",
                "missing-action",
                f"{action} is not allowed; pulling images will fail",
                f"add {action} on the Currents repository ARNs",
            )
    for st in statements:
        if (
            st.effect == "Allow"
            and st.resources is not None
            and "*" in st.resources
            and any(st.matches_action(a) for a in PULL_ACTIONS)
        ):
            add(
                "warning",
                "wildcard-resource",
                'pull actions on Resource "*" reach every repository shared with this role (over-broad)',
                "list the six repository ARNs instead",
                stmt=st.index,
                res="*",
            )
    for svc, arn in repo_arns.items():
        missing = [a for a in present if not allowed(a, arn)]
        if missing:
            add(
                "error",
                "missing-repository",
                f"repository {s.source_repo(svc)} is not granted {', '.join(missing)}",
                f"add {arn} to the Resource list of the pull statement",
                res=arn,
            )
        for action in PULL_ACTIONS:
            check_pair(action, arn)


def _check_resource(
    r: str,
    i: int,
    s: Settings,
    partition: str,
    prefix_path: str,
    wanted_repos: set[str],
    add: Any,
) -> None:
    """Findings for one Resource entry of a statement that concerns ECR actions."""
    if r == "*":
        return
    if not r.startswith("arn:"):
        add("error", "not-an-arn", f'resource {r!r} is neither "*" nor an ARN', "use a repository ARN", stmt=i, res=r)
        return
    parts = r.split(":", 5)
    if len(parts) != 6:
        add(
            "error",
            "malformed-arn",
            f"resource {r!r} is not a well-formed ARN (arn:partition:service:region:account:resource)",
            stmt=i,
            res=r,
        )
        return
    _, part, service, region, account, res = parts
    if service != "ecr":
        if service != "*":
            add("warning", "not-ecr", f"resource {r!r} is not an ECR ARN; it gives no image access", stmt=i, res=r)
        return
    if not res.startswith("repository/"):
        svc_form = None
        for svc in s.services:
            if res in (f"{prefix_path}{svc}/*", f"{prefix_path}{svc}"):
                svc_form = svc
        if svc_form is not None:
            good = f"arn:{part}:ecr:{region}:{account}:repository/{s.source_repo(svc_form)}"
            add(
                "error",
                "invalid-ecr-resource",
                f"{r} is not an ECR resource ARN (the form from the published page); it grants nothing",
                f"use {good} (ECR's only resource type is repository/<name>)",
                stmt=i,
                res=r,
            )
        else:
            add(
                "error",
                "invalid-ecr-resource",
                f"{r} is not an ECR resource ARN; it grants nothing",
                "ECR's only resource type is repository/<name>: arn:aws:ecr:REGION:ACCOUNT:repository/NAME",
                stmt=i,
                res=r,
            )
        return
    name = res[len("repository/") :]
    currents = name.startswith(prefix_path) or name in wanted_repos or name.split("/")[-1] in s.services
    sev = "error" if currents else "warning"
    if part != partition and part != "*":
        add(
            sev,
            "wrong-partition",
            f"{r} uses partition {part!r}; region {s.region} is in {partition!r}",
            f"use arn:{partition}:ecr:…",
            stmt=i,
            res=r,
        )
    if region != s.region and not _glob(region, s.region, False):
        add(
            sev,
            "wrong-region",
            f"{r} names region {region or '(empty)'}; the Currents images are in {s.region}",
            f"use region {s.region}",
            stmt=i,
            res=r,
        )
    if account != s.vendor_account and not _glob(account, s.vendor_account, False):
        add(
            sev,
            "wrong-account",
            f"{r} names account {account or '(empty)'}; the Currents images are in account {s.vendor_account}",
            f"use account {s.vendor_account}",
            stmt=i,
            res=r,
        )
    if not currents:
        add(
            "warning",
            "unrelated-repository",
            f"{r} is not one of the Currents repositories",
            "it is not needed to pull the Currents images",
            stmt=i,
            res=r,
        )
        return
    for svc in s.services:
        if name == f"{s.source_repo(svc)}/*":
            add(
                "warning",
                "repository-children",
                f"{r} matches repositories below {s.source_repo(svc)}/, not the repository itself",
                f"use repository/{s.source_repo(svc)}",
                stmt=i,
                res=r,
            )


def load_policy_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON policy file; InputError for a missing/unreadable file or invalid JSON."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"policy file {p} does not exist", "check the path passed to --check") from None
    except IsADirectoryError:
        raise InputError(f"policy file {p} is a directory", "pass the JSON file itself") from None
    except UnicodeDecodeError:
        raise InputError(f"policy file {p} is not UTF-8 text", "save the policy as a UTF-8 JSON file") from None
    except OSError as e:
        raise InputError(f"cannot read policy file {p}: {e.strerror or e}", "check its permissions") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"policy file {p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            "fix the JSON syntax and run the check again",
        ) from None
    if not isinstance(doc, dict):
        raise InputError(
            f"policy file {p} does not hold a JSON object", "a policy is an object with Version and Statement"
        )
    return doc
