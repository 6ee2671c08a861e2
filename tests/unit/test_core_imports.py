"""The core never imports a UI library: import every core module in a fresh interpreter and check."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import wizard.core

ROOT = Path(__file__).resolve().parents[2]


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(wizard.core.__path__, prefix="wizard.core."))


def test_core_has_the_expected_modules() -> None:
    names = set(core_modules())
    for expected in ("wizard.core.settings", "wizard.core.state", "wizard.core.steps", "wizard.core.events"):
        assert expected in names


def test_core_never_imports_textual_or_questionary() -> None:
    modules = core_modules()
    code = (
        "import importlib, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('textual', 'questionary', 'prompt_toolkit'))\n"
        "print(len(mods), ' '.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"core pulled in UI modules: {out.stdout} {out.stderr}"
    count = int(out.stdout.split()[0])
    assert count == len(modules) and count >= 8


def test_the_mirror_path_imports_no_http_stack_it_does_not_use() -> None:
    """The registry client runs over wire.py: httpcore/h11 load only for a proxy, and never the optional
    trio or httpx's command line (each costs tens of ms at every start)."""
    code = (
        "import sys\n"
        "from wizard.core import mirror\n"
        "from wizard.core.transports.registry import RegistryTransport\n"
        "t = RegistryTransport.for_host('http://127.0.0.1:9')\n"
        "t.close()\n"
        "unused = ('httpcore', 'h11', 'trio')\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in unused or k == 'httpx._main'))\n"
        "from wizard.core.registry import RegistryClient, RegistryEndpoint\n"
        "RegistryClient(RegistryEndpoint.parse('http://127.0.0.1:9', proxy='http://127.0.0.1:8')).close()\n"
        "print('httpcore' in sys.modules, 'trio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    plain, proxied = out.stdout.splitlines()
    assert plain == "[]"
    assert proxied == "True False"
