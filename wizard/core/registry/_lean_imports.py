"""Import httpx (and, when needed, httpcore) without optional modules the wizard never uses.

httpx imports its command-line client (``httpx._main``: rich, click, pygments, ~50 ms) and httpcore
imports trio when it is installed (only for async use under trio, ~70 ms). Both libraries support
running without them, so they are imported as if those were not installed. Imported first by
:mod:`wizard.core.registry`; does nothing when httpx/httpcore were already imported by someone else.
httpcore itself (~20 ms with h11) is imported only by :func:`httpcore`, for the transports that use it.
"""

from __future__ import annotations

import importlib
import sys


def _import_without(module: str, optional: tuple[str, ...]) -> None:
    """Import ``module`` as if the ``optional`` modules were not installed, then forget the markers
    (so an explicit import of them later still works)."""
    if module in sys.modules:
        return
    blocked = [name for name in optional if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        importlib.import_module(module)
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


_import_without("httpx", ("httpx._main",))


def httpcore() -> None:
    """Import httpcore (as httpx does, lazily, when it builds its own transport) without trio.

    The registry client runs over :mod:`wizard.core.registry.wire` and never needs httpcore unless a
    proxy is configured; call this before building an ``httpx.Client`` that uses httpx's transport.
    """
    _import_without("httpcore", ("trio",))
