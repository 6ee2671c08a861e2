"""Every option of every command also reads CURRENTS_WIZARD_<OPTION> (the CLI contract)."""

from __future__ import annotations

import argparse

import pytest

from wizard.cli import build_parser
from wizard.core.settings import env_name

SKIP = {"help", "version"}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest not in SKIP and a.dest != "command"]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    root = build_parser()
    subs = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return {"": root, **subs.choices}


@pytest.mark.parametrize("command", sorted(_parsers()))
def test_every_option_reads_its_env_var(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    options = _options(_parsers()[command])
    assert options
    for action in options:
        name = max(action.option_strings, key=len)
        flag = isinstance(action, argparse._StoreTrueAction)
        value = "1" if flag else ("3600" if action.type is int else "x-from-env")
        if action.choices:
            value = next(iter(action.choices))
        monkeypatch.setenv(env_name(name), value)
    args = build_parser().parse_args([command]) if command else build_parser().parse_args([])
    for action in options:
        name = max(action.option_strings, key=len)
        got = getattr(args, action.dest, None)
        assert got not in (None, False, []), f"{command or '(top)'} {name}: {env_name(name)} was not read"
