"""Error types shared by the whole core.

Every error the wizard raises on purpose is a :class:`WizardError`: one line saying what is
wrong (``message``), one saying what to do next (``hint``), and the process exit code a
front end should use.  Front ends print ``str(err)`` and never a traceback.
"""

from __future__ import annotations

# Documented exit codes (README "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_GRANTED = 3
EXIT_BUSY = 4
EXIT_INTERRUPTED = 130


class WizardError(Exception):
    """An expected failure with a message for people and a next step."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message


class InputError(WizardError):
    """Bad or missing input from the user (flags, env vars, files). Nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class StateError(WizardError):
    """The state file is corrupt, from a newer version, or unreadable."""

    exit_code = EXIT_BAD_INPUT


class LockedError(WizardError):
    """Another wizard run holds the state lock."""

    exit_code = EXIT_BUSY


class AwsError(WizardError):
    """An AWS call failed (credentials, permissions, throttling, ...)."""


class AccessNotGranted(WizardError):
    """The vendor registry refused our role: Currents has not granted access (yet)."""

    exit_code = EXIT_NOT_GRANTED


class RegistryError(WizardError):
    """A registry answered with an error we could not recover from."""


class Cancelled(WizardError):
    """The user asked to stop. State is kept; a re-run resumes."""

    exit_code = EXIT_INTERRUPTED
