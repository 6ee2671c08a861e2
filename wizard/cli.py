"""Command line: parses flags (+ ``CURRENTS_WIZARD_*`` env vars), picks a front end, maps errors to exit codes.

Front ends: the Textual app (default, interactive), ``--plain`` questionary prompts, and the
non-interactive subcommands (``run --yes``, one subcommand per step, ``status``, ``reset``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from wizard import __version__
from wizard.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_GRANTED,
    EXIT_OK,
    Cancelled,
    InputError,
    WizardError,
)
from wizard.core.settings import ENV_PREFIX, SERVICES, Settings, env_name

PROG = "currents-wizard"

EPILOG = f"""\
Every option can also be set with an environment variable {ENV_PREFIX}<OPTION>
(e.g. {ENV_PREFIX}TARGET=registry.example.com/currents). AWS credentials come from boto3's
usual chain (AWS_PROFILE, --profile, SSO, env vars). Secrets are never taken from argv:
use {ENV_PREFIX}TARGET_PASSWORD or --target-password-stdin.

exit codes: 0 ok · 1 failed · 2 bad input / needs input · 3 access not granted yet ·
            4 another run holds the lock · 130 interrupted
"""


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _apply_env_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option reads ``CURRENTS_WIZARD_<OPTION>`` as its default (flags still win).

    Done once over the whole parser rather than option by option, so no option can miss it.
    Options whose default is SUPPRESS (a subcommand's copy of a common option) are left alone:
    the top-level parser already supplies their default.
    """
    for action in parser._actions:
        if not action.option_strings or action.default is argparse.SUPPRESS or action.dest in ("help", "version"):
            continue
        raw = os.environ.get(env_name(max(action.option_strings, key=len)), "")
        if not raw:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            action.default = _truthy(raw)
        elif isinstance(action, argparse._AppendAction):
            action.default = [h.strip() for h in raw.split(",") if h.strip()] or None
        else:
            action.default = raw  # argparse applies ``type`` to string defaults


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (what is wrong + where to look), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Group:
    """Adds options to a group; with ``suppress`` their defaults are SUPPRESS so a subcommand's copy
    of an option never overwrites a value given before the subcommand name."""

    def __init__(self, group: argparse._ArgumentGroup, suppress: bool) -> None:
        self.group, self.suppress = group, suppress

    def add_argument(self, *names: str, **kw: Any) -> None:
        if self.suppress:
            kw["default"] = argparse.SUPPRESS
        self.group.add_argument(*names, **kw)


def _common_parser(suppress: bool = False) -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    g = _Group(p.add_argument_group("common options"), suppress)
    g.add_argument("--dir", type=Path, help="the Currents on-prem folder (default: current folder)")
    g.add_argument("--env-file", type=Path, help="the .env to edit (default: DIR/.env)")
    g.add_argument("--state", type=Path, help="state file (default: DIR/.currents-wizard/state.json)")
    g.add_argument("--tag", help="image tag to mirror, e.g. 2026-01-26-001 or staging")
    g.add_argument("--role-arn", help="your IAM role that Currents grants pull access")
    g.add_argument("--target", help="your registry: HOST[:PORT]/PATH (http:// for plain HTTP)")
    g.add_argument("--source-registry", help="vendor registry host (default: Currents' ECR)")
    g.add_argument("--source-prefix", help="vendor repository prefix (currents/on-prem)")
    g.add_argument("--services", help=f"comma-separated subset of: {','.join(SERVICES)}")
    g.add_argument("--vendor-account", help="vendor AWS account (513558712013)")
    g.add_argument("--region", help="vendor registry region (us-east-1)")
    g.add_argument("--profile", help="AWS profile for your own credentials")
    g.add_argument(
        "--engine",
        choices=("registry", "docker", "archive"),
        help="how to mirror: registry (default, digest-exact), docker (pull/tag/push), archive",
    )
    g.add_argument("--archive", type=Path, help="write images to an OCI layout dir or .tar")
    g.add_argument("--from-archive", type=Path, help="push images from an OCI archive")
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=None,
        metavar="HOST",
        help=f"use plain HTTP for HOST (repeatable; {ENV_PREFIX}INSECURE_REGISTRY takes a comma-separated list)",
    )
    g.add_argument("--ca-file", type=Path, help="PEM CA bundle to trust for registries")
    g.add_argument("--target-username", help="username for your registry")
    g.add_argument(
        "--target-ecr",
        action="store_true",
        help="treat the target as Amazon ECR (token from your credentials, repositories created)",
    )
    g.add_argument(
        "--tag-mutability",
        choices=("MUTABLE", "IMMUTABLE"),
        help="for ECR repositories the wizard creates (IMMUTABLE blocks re-pushing a moving tag like staging)",
    )
    g.add_argument(
        "--scan-on-push",
        action="store_true",
        help="enable scan on push for ECR repositories the wizard creates",
    )
    g.add_argument(
        "--session-duration",
        type=int,
        help="seconds for the assumed-role session (900-43200, default 3600)",
    )
    g.add_argument(
        "--target-password-stdin",
        action="store_true",
        help=f"read your registry password from stdin (or set {ENV_PREFIX}TARGET_PASSWORD)",
    )
    g.add_argument("--yes", "-y", action="store_true", help="do not ask; assume yes")
    g.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
    g.add_argument(
        "--print-commands",
        action="store_true",
        help="print the equivalent shell commands (secrets redacted)",
    )
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--verbose", "-v", action="store_true", help="log details to the terminal")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    sub_common = _common_parser(suppress=True)
    parser = _Parser(
        prog=PROG,
        description="Mirror Currents on-prem images from Currents' ECR into your registry and configure your .env.",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="show the whole flow offline, with no AWS account (scratch folder unless --dir)",
    )
    parser.add_argument("--plain", action="store_true", help="plain prompts instead of the full-screen app")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[sub_common],
            help=help_,
            description=help_,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = add("run", "run every step that is not done yet, non-interactively")
    run.add_argument("--steps", help="only these steps (comma-separated)")
    run.add_argument(
        "--create-role",
        metavar="NAME",
        help="create the IAM role NAME with the generated policy (policy step)",
    )
    run.add_argument("--demo", action="store_true", help="offline demo backend")

    pol = add("policy", "print the IAM policy for your pull role (or check one)")
    pol.add_argument("--trust", action="store_true", help="print the role's trust policy instead")
    pol.add_argument(
        "--account",
        help="your AWS account for the trust policy (default: from your credentials)",
    )
    pol.add_argument("--check", type=Path, metavar="FILE", help="check a policy JSON file for mistakes")
    pol.add_argument("--output", "-o", type=Path, help="write to FILE instead of stdout")

    role = add("role", "create (or compare) the IAM role with the generated policies")
    role.add_argument("--role-name", default="CurrentsEcrPull", help="role name (CurrentsEcrPull)")
    role.add_argument(
        "--update",
        action="store_true",
        help="update an existing role whose policy differs",
    )

    add("share", "print the message to send your Currents contact")
    add("probe", "check whether Currents has granted your role access")
    add("login", "assume your role and get a token for Currents' registry (the authenticate step)")
    add("mirror", "copy the images into your registry (or an archive)")
    cfg = add("configure", "set DC_CURRENTS_IMAGE_REPOSITORY and DC_CURRENTS_IMAGE_TAG in the .env")
    cfg.add_argument("--repository", help="value for DC_CURRENTS_IMAGE_REPOSITORY")
    cfg.add_argument(
        "--create-env",
        action="store_true",
        help="create .env from .env.example when missing",
    )
    add("verify", "check the mirrored images and the .env")
    add("status", "show what is done")
    add("reset", "forget the wizard's state (the .env and your registry are untouched)")
    for p in (parser, *sub.choices.values()):
        _apply_env_defaults(p)
    return parser


# --------------------------------------------------------------------------------------------
def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build and validate Settings from parsed args (flags already fell back to env vars)."""
    kw: dict[str, Any] = {}
    if args.dir is not None:
        if getattr(args, "demo", False) and not args.dir.exists():
            args.dir.mkdir(parents=True)  # a demo may start in a new folder
        if not args.dir.is_dir():
            raise InputError(f"folder {args.dir} does not exist", "pass --dir with your Currents on-prem folder")
        kw["dir"] = args.dir.resolve()
    for name in (
        "tag",
        "role_arn",
        "target",
        "source_registry",
        "source_prefix",
        "vendor_account",
        "region",
        "profile",
        "engine",
        "target_username",
    ):
        value = getattr(args, name, None)
        if value:
            kw[name] = value.strip() if isinstance(value, str) else value
    if args.services:
        kw["services"] = tuple(s.strip() for s in args.services.split(",") if s.strip())
    for name in ("env_file", "archive", "from_archive", "ca_file"):
        value = getattr(args, name, None)
        if value is not None:
            kw[name] = Path(value)
    if args.state is not None:
        kw["state_file"] = Path(args.state)
    insecure = list(dict.fromkeys(args.insecure_registry or []))
    if insecure:
        kw["insecure_registries"] = tuple(insecure)
    if kw.get("archive") and "engine" not in kw:
        kw["engine"] = "archive"
    if getattr(args, "demo", False):
        kw["demo"] = True
    for flag in ("target_ecr", "scan_on_push"):
        if getattr(args, flag, False):
            kw[flag] = True
    if getattr(args, "tag_mutability", None):
        kw["tag_mutability"] = args.tag_mutability
    if getattr(args, "session_duration", None) is not None:
        try:
            kw["session_duration"] = int(args.session_duration)
        except ValueError as exc:
            raise InputError("--session-duration must be a number of seconds", "e.g. 3600") from exc
    return Settings(**kw).validate()


def _read_target_password(args: argparse.Namespace) -> str:
    if getattr(args, "target_password_stdin", False):
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(
                "--target-password-stdin needs the password on standard input",
                'pipe it in, e.g. `printf %s "$PW" | currents-wizard ...`',
            )
        return sys.stdin.readline().rstrip("\r\n")
    return os.environ.get(ENV_PREFIX + "TARGET_PASSWORD", "")


def make_wizard(settings: Settings, dir_given: bool = True):  # type: ignore[no-untyped-def]
    """The step model with the real backend, or the offline demo one (scratch folder unless --dir)."""
    from wizard.core.steps import Wizard

    if settings.demo:
        from wizard.core import demo

        try:
            pace = float(os.environ.get(ENV_PREFIX + "DEMO_PACE", "1") or 1)
        except ValueError as exc:
            raise InputError(f"{ENV_PREFIX}DEMO_PACE must be a number", "e.g. 0 for no pauses, 1 for normal") from exc
        settings, backend = demo.prepare(settings.dir if dir_given else None, settings, pace=pace)
        return Wizard(settings, backend)
    from wizard.core.backend import RealBackend

    return Wizard(settings, RealBackend(settings))


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise InputError(f"{question.rstrip('?')} needs confirmation", "pass --yes to proceed without asking")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from wizard.core import log as logs

    logger = logs.get()
    logger.addHandler(logging.NullHandler())
    try:
        settings = settings_from_args(args)
        if args.command not in (None, "policy", "status", "reset") or args.plain:
            logs.setup(settings.state_path.parent, verbose=args.verbose)
        return _dispatch(args, settings)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted — state is saved; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Cancelled as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except WizardError as exc:
        logger.error("%s: %s", type(exc).__name__, exc)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: keep the traceback in the log, show one line
        logger.exception("unexpected error")
        print(f"{PROG}: unexpected error: {type(exc).__name__}: {logs.redact(str(exc))}", file=sys.stderr)
        print(f"{PROG}: details are in {settings_log_hint(args)}; please report this", file=sys.stderr)
        return EXIT_FAILED


def settings_log_hint(args: argparse.Namespace) -> str:
    base = Path(args.state).parent if args.state else (args.dir or Path.cwd()) / ".currents-wizard"
    return str(base / "wizard.log")


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command is None:
        return _interactive(args, settings)
    if command == "policy":
        return _cmd_policy(args, settings)
    if command == "status":
        return _cmd_status(args, settings)
    if command == "reset":
        return _cmd_reset(args, settings)
    handler: Callable[[argparse.Namespace, Any], int] = globals()[f"_cmd_{command}"]
    wizard = make_wizard(settings, dir_given=args.dir is not None)
    password = _read_target_password(args)
    with wizard:
        if password or settings.target_username:
            wizard.set_target_credential(settings.target_username or "", password)
        return handler(args, wizard)


def _interactive(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_target_password(args)
    if args.plain:
        from wizard import prompt

        wizard = make_wizard(settings, dir_given=args.dir is not None)
        with wizard:
            if password:
                wizard.set_target_credential(settings.target_username or "", password)
            return prompt.run(wizard)
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise InputError(
            "no terminal for the interactive wizard",
            "run `currents-wizard run --yes ...` for non-interactive use, or --plain on a simple terminal",
        )
    from wizard.tui.app import run_app

    wizard = make_wizard(settings, dir_given=args.dir is not None)
    with wizard:
        if password:
            wizard.set_target_credential(settings.target_username or "", password)
        return run_app(wizard, demo=settings.demo)


# -- subcommands -----------------------------------------------------------------------------
def _cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    from wizard.core import policy

    if args.check:
        findings = policy.check_policy(policy.load_policy_file(args.check), settings)
        if args.json:
            _print_json([f.__dict__ for f in findings])
        else:
            for f in findings:
                print(f"{f.severity}: {f.message}" + (f" — {f.hint}" if f.hint else ""))
            if not findings:
                print(f"{args.check}: no problems found")
        return EXIT_FAILED if any(f.severity == "error" for f in findings) else EXIT_OK
    if args.trust:
        account = args.account
        if not account:
            from wizard.core.backend import RealBackend

            account = RealBackend(settings).identity().account
        text = policy.render(policy.trust_policy(account))
    else:
        text = policy.render(policy.identity_policy(settings))
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        if not args.trust and not args.json:
            print("\n" + policy.INVALID_ARN_EXPLANATION, file=sys.stderr)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from wizard.core.state import StateStore
    from wizard.core.steps import STEP_IDS, TITLES

    state = StateStore(settings.state_path).load()
    if args.json:
        _print_json(state.to_json())
        return EXIT_OK
    tag = state.inputs.get("tag", "-")
    print(f"state:  {settings.state_path}")
    print(f"tag:    {tag}    target: {state.inputs.get('target', '-')}    role: {state.inputs.get('role_arn', '-')}")
    for sid in STEP_IDS:
        rec = state.step(sid)
        detail = rec.error or rec.summary
        print(f"  {rec.status:<8} {TITLES[sid]:<16} {detail}")
    for service, rec in sorted(state.images.get(tag, {}).items()):
        print(f"  {service:<15} {rec.target_digest or rec.source_digest or '-'}")
    return EXIT_OK


def _cmd_reset(args: argparse.Namespace, settings: Settings) -> int:
    from wizard.core.state import StateStore

    store = StateStore(settings.state_path)
    if not store.exists():
        print("nothing to reset")
        return EXIT_OK
    if not _confirm(args, f"Forget the wizard's progress in {settings.state_path}?"):
        return EXIT_FAILED
    with store.locked():
        moved = store.reset()
    print(f"state moved aside to {moved}; the .env and your registry were not touched")
    return EXIT_OK


def _renderer(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from wizard.render import LineRenderer

    return LineRenderer(sys.stderr, verbose=args.verbose)


def _run_steps(args: argparse.Namespace, wizard: Any, steps: Sequence[str]) -> int:
    cancel = threading.Event()
    renderer = _renderer(args)
    try:
        for sid in steps:
            wizard.run_step(sid, renderer, cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        renderer.close()
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, wizard: Any) -> int:
    from wizard.core.state import STEP_IDS

    if not args.yes and not args.dry_run:
        raise InputError("`run` changes things without asking", "pass --yes (or --dry-run to only look)")
    if args.create_role:
        wizard.set_input("role_name", args.create_role)
    only = [s.strip() for s in args.steps.split(",")] if args.steps else list(STEP_IDS)
    for s in only:
        if s not in STEP_IDS:
            raise InputError(f"unknown step {s!r} in --steps", f"choose from: {', '.join(STEP_IDS)}")
    pending = wizard.pending_steps(only)
    if args.print_commands:
        _print_commands(wizard)
    if not args.dry_run:
        wizard.check_inputs(pending)
    if args.dry_run:
        _print_json({"would_run": pending, "tag": wizard.tag}) if args.json else print(
            "would run: " + (", ".join(pending) or "nothing — everything is done")
        )
        return EXIT_OK
    if not pending:
        print(f"nothing to do: every step is done for {wizard.tag}", file=sys.stderr)
        return EXIT_OK
    return _run_steps(args, wizard, pending)


def _print_commands(wizard: Any) -> None:
    from wizard.core import commands

    for line in commands.for_wizard(wizard):
        print(line)


def _cmd_role(args: argparse.Namespace, wizard: Any) -> int:
    from wizard.core import policy

    ident = wizard.backend.identity()
    trust = policy.trust_policy(ident.account)
    doc = policy.identity_policy(wizard.settings)
    if args.dry_run:
        print(f"would create or compare role {args.role_name} in account {ident.account} with:")
        print(policy.render(trust) + policy.render(doc))
        return EXIT_OK
    if not _confirm(args, f"Create IAM role {args.role_name} in account {ident.account}?"):
        return EXIT_FAILED
    outcome = wizard.backend.ensure_role(args.role_name, trust, doc, update=args.update)
    wizard.set_input("role_arn", outcome.arn)
    wizard.set_input("role_name", args.role_name)
    wizard.mark("policy", "done", f"role {outcome.arn} {outcome.status}")
    print(f"{outcome.arn}: {outcome.status}" + (f" — {outcome.message}" if outcome.message else ""))
    return EXIT_FAILED if outcome.status == "differs" else EXIT_OK


def _cmd_share(args: argparse.Namespace, wizard: Any) -> int:
    print(wizard.share_text())
    return EXIT_OK


def _cmd_probe(args: argparse.Namespace, wizard: Any) -> int:
    result = wizard.probe()
    if args.json:
        _print_json(
            {
                "verdict": result.verdict,
                "message": result.message,
                "hint": result.hint,
                "status_code": result.status_code,
                "tag": wizard.tag,
            }
        )
    else:
        print(f"{result.verdict}: {result.message}" + (f" — {result.hint}" if result.hint else ""))
    if result.verdict == "granted":
        return EXIT_OK
    return EXIT_NOT_GRANTED if result.verdict == "not_granted" else EXIT_FAILED


def _cmd_login(args: argparse.Namespace, wizard: Any) -> int:
    return _run_steps(args, wizard, ["auth"])


def _cmd_mirror(args: argparse.Namespace, wizard: Any) -> int:
    if args.print_commands:
        _print_commands(wizard)
        return EXIT_OK
    if args.dry_run:
        plan = wizard.mirror_plan()
        if args.json:
            _print_json(plan.to_dict())
        else:
            print(plan.describe())
        return EXIT_OK
    if not _confirm(args, f"Mirror {len(wizard.settings.services)} images at {wizard.tag}?"):
        return EXIT_FAILED
    return _run_steps(args, wizard, ["mirror"])


def _cmd_configure(args: argparse.Namespace, wizard: Any) -> int:
    from wizard.core import envfile
    from wizard.core.settings import parse_target

    target = parse_target(args.repository) if args.repository else wizard.target()
    if args.create_env and not wizard.settings.env_path.exists():
        envfile.create_from_example(wizard.settings.env_path.parent)
    # read and plan the .env first: a missing/unreadable file must leave no state behind
    change = envfile.plan_env_update(wizard.settings.env_path, target.repository_prefix, wizard.tag)
    if args.repository:
        wizard.set_input("target", target.spec)
    if args.dry_run or args.print_commands:
        print(change.diff() or f"{change.path}: already up to date")
        return EXIT_OK
    if change.changed:
        print(change.diff())
        if not _confirm(args, f"Write {change.path}?"):
            return EXIT_FAILED
    return _run_steps(args, wizard, ["configure"])


def _cmd_verify(args: argparse.Namespace, wizard: Any) -> int:
    code = EXIT_OK
    try:
        _run_steps(args, wizard, ["verify"])
    except WizardError:
        code = EXIT_FAILED
        if not args.json:
            raise
    if args.json:
        images = wizard.state.images.get(wizard.tag, {})
        _print_json(
            {
                "ok": code == EXIT_OK,
                "tag": wizard.tag,
                "status": wizard.status("verify"),
                "error": wizard.state.step("verify").error,
                "images": {s: r.to_json() for s, r in images.items()},
            }
        )
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
