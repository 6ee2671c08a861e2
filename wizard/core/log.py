"""Logging: a rotating log file in the state folder (0600), terminal output with --verbose, and a
filter that redacts every secret registered with :func:`register_secret` (defence in depth: code
never logs secrets on purpose)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from pathlib import Path

LOGGER_NAME = "currents_wizard"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Make sure ``value`` never appears in a log record (replaced by ``<redacted>``)."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def setup(folder: Path | None, verbose: bool = False) -> Path | None:
    """Attach the file handler (``<folder>/wizard.log``, rotated, 0600) and, with ``verbose``, stderr."""
    logger = get()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    path: Path | None = None
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    if folder is not None:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / "wizard.log"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)
            fh = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
            fh.setFormatter(fmt)
            fh.setLevel(logging.DEBUG)
            fh.addFilter(RedactingFilter())
            logger.addHandler(fh)
        except OSError:
            path = None  # a read-only folder must not stop commands that do not write
    if verbose:
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        sh.setLevel(logging.DEBUG)
        sh.addFilter(RedactingFilter())
        logger.addHandler(sh)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return path
