"""Edit a Currents on-prem ``.env`` in place: set the image repository and tag, nothing else.

python-dotenv's own parser finds the assignments (so "which line counts" follows dotenv's
rules: the last assignment of a key wins); the edit replaces only the value characters of
that one assignment, so every other byte of the file — comments, blank lines, quoting,
``export`` prefixes, CRLF line endings, a missing final newline — stays as it was.
Writes are atomic (temp file + fsync + ``os.replace``) and preceded by a timestamped backup.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import Binding, parse_stream

from wizard.core.errors import InputError
from wizard.core.fsutil import fsync_dir
from wizard.core.settings import validate_host, validate_repo_path, validate_tag

REPOSITORY_KEY = "DC_CURRENTS_IMAGE_REPOSITORY"
TAG_KEY = "DC_CURRENTS_IMAGE_TAG"
KEYS: tuple[str, ...] = (REPOSITORY_KEY, TAG_KEY)
EXAMPLE_NAME = ".env.example"
VERSION_NAME = "VERSION"

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # non-UTF-8 bytes survive a read/write round trip unchanged
_NEWLINE_RE = re.compile(r"\r\n|\n|\r")
# One dotenv binding, mirroring python-dotenv's grammar (dotenv/parser.py), with spans.
_BINDING_RE = re.compile(
    r"(?P<lead>\s*)"
    r"(?P<export>(?:export[^\S\r\n]+)?)"
    r"(?P<key>'[^']+'|[^=\#\s]+)"
    r"(?P<ws>[^\S\r\n]*)"
    r"(?:(?P<eq>=[^\S\r\n]*)"
    r"(?P<value>'(?:\\'|[^'])*'|\"(?:\\\"|[^\"])*\"|[^\r\n]*))?"
    r"(?P<rest>.*)\Z",
    re.DOTALL,
)


@dataclass
class EnvChange:
    """A planned edit of one ``.env``. ``changes`` holds ``(key, old value or None, new value)``."""

    path: Path
    old_text: str
    new_text: str
    changes: list[tuple[str, str | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. duplicate keys: which assignment was updated
    repository: str = ""
    tag: str = ""

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        """A unified diff for people (line endings shown as plain newlines)."""
        old = _display_lines(self.old_text)
        new = _display_lines(self.new_text)
        out: list[str] = []
        for line in difflib.unified_diff(old, new, fromfile=str(self.path), tofile=f"{self.path} (new)"):
            if line.endswith("\n"):
                out.append(line)
            else:
                out.append(line + "\n\\ No newline at end of file\n")
        return "".join(out)


def _display_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return [_NEWLINE_RE.sub("\n", ln) for ln in lines]


def normalise_repository(value: str) -> str:
    """``host[:port][/path]`` with exactly one trailing slash, e.g. ``127.0.0.1:5002/mirror/``."""
    raw = value.strip()
    for scheme in ("http://", "https://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme) :]
    if "://" in raw:
        raise InputError(f"invalid image repository {value!r}: unsupported scheme", "use HOST[:PORT]/PATH/")
    raw = raw.strip("/")
    if not raw:
        raise InputError("the image repository is empty", "give HOST[:PORT]/PATH/, e.g. registry.example.com/currents/")
    host, _, path = raw.partition("/")
    validate_host(host)
    if path:
        validate_repo_path(path, "image repository path")
    return raw + "/"


def _read_text(path: Path, purpose: str = "read") -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        example = path.parent / EXAMPLE_NAME
        if example.is_file():
            hint = f"create it from {EXAMPLE_NAME} (the wizard can do this) or pass --env-file with your .env"
        else:
            hint = "run in your Currents on-prem folder (--dir) or pass --env-file with your .env"
        raise InputError(f"{path} does not exist", hint) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a .env file", "pass --env-file with the file itself") from None
    except PermissionError:
        raise InputError(f"cannot {purpose} {path}: permission denied", "check its owner and mode") from None
    except OSError as e:
        raise InputError(f"cannot {purpose} {path}: {e.strerror or e}", "check the path and retry") from None
    return data.decode(_ENCODING, _ERRORS)


def _parse(text: str) -> list[Binding]:
    bindings = list(parse_stream(io.StringIO(text, newline="")))
    if "".join(b.original.string for b in bindings) != text:  # pragma: no cover - dotenv invariant
        raise InputError("could not parse the .env file losslessly", "report this file's layout as a bug")
    return bindings


def _quote(value: str, quote: str) -> str:
    if quote == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if quote == "'":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def _replace_value(original: str, new_value: str) -> str:
    """Rewrite one binding's text with a new value, keeping key, quoting, export and comments."""
    m = _BINDING_RE.match(original)
    if m is None:  # pragma: no cover - dotenv accepted it, so the mirror grammar does too
        raise InputError("could not locate a value in the .env file", "report this file's layout as a bug")
    if m.group("eq") is None:  # a bare ``KEY`` line: make it an assignment
        end = m.end("key")
        return original[:end] + "=" + new_value + original[end:]
    start, vtext = m.start("value"), m.group("value")
    if vtext[:1] in ("'", '"'):
        return original[:start] + _quote(new_value, vtext[0]) + original[m.end("value") :]
    kept = re.sub(r"\s+#.*", "", vtext).rstrip()  # dotenv's unquoted value: the rest is an inline comment
    return original[:start] + new_value + original[start + len(kept) :]


def _key_line(b: Binding) -> int:
    m = _BINDING_RE.match(b.original.string)
    lead = m.group("lead") if m else ""
    return b.original.line + len(_NEWLINE_RE.findall(lead))


def plan_env_update(env_path: str | Path, repository: str, tag: str) -> EnvChange:
    """Plan setting ``DC_CURRENTS_IMAGE_REPOSITORY`` and ``DC_CURRENTS_IMAGE_TAG``; nothing is written."""
    path = Path(env_path)
    repo = normalise_repository(repository)
    validate_tag(tag)
    text = _read_text(path)
    bindings = _parse(text)
    pieces = [b.original.string for b in bindings]
    wanted = {REPOSITORY_KEY: repo, TAG_KEY: tag}
    changes: list[tuple[str, str | None, str]] = []
    notes: list[str] = []
    missing: list[str] = []

    def bare_key(b: Binding) -> str | None:
        if b.error or b.key is None:
            return None
        return b.key

    for key in KEYS:
        hits = [i for i, b in enumerate(bindings) if bare_key(b) == key]
        if not hits:
            missing.append(key)
            continue
        last = hits[-1]
        b = bindings[last]
        if len(hits) > 1:
            lines = ", ".join(str(_key_line(bindings[i])) for i in hits)
            notes.append(
                f"{key} is assigned {len(hits)} times (lines {lines}); the last one (line "
                f"{_key_line(b)}) is the one that takes effect, so that is the line updated"
            )
        if b.value == wanted[key]:
            continue
        pieces[last] = _replace_value(b.original.string, wanted[key])
        changes.append((key, b.value, wanted[key]))

    new_text = "".join(pieces)
    if missing:
        m = _NEWLINE_RE.search(text)
        nl = m.group(0) if m else "\n"
        keyed = [b for b in bindings if bare_key(b) is not None]
        export = "export " if keyed and all(b.original.string.lstrip().startswith("export") for b in keyed) else ""
        if new_text and not new_text.endswith(("\n", "\r")):
            new_text += nl
        for key in missing:
            new_text += f"{export}{key}={wanted[key]}{nl}"
            changes.append((key, None, wanted[key]))
            notes.append(f"{key} was not set; it is added at the end of the file")
    return EnvChange(path, text, new_text, changes, notes, repo, tag)


def _match_owner_and_mode(fd: int, st: os.stat_result) -> None:
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if hasattr(os, "fchown") and (os.fstat(fd).st_uid, os.fstat(fd).st_gid) != (st.st_uid, st.st_gid):
        with contextlib.suppress(PermissionError):
            os.fchown(fd, st.st_uid, st.st_gid)


def _write_backup(real: Path, data: bytes, st: os.stat_result) -> Path:
    """Write the backup to a temp file, fsync it, then link it to its final name: a crash never
    leaves a partial ``.env.bak-*`` behind (at worst a stray temp file)."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    base = f"{real.name}.bak-{stamp}"
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.bak.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            _match_owner_and_mode(f.fileno(), st)
            os.fsync(f.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        for n in range(1000):
            candidate = real.parent / (base if n == 0 else f"{base}-{n}")
            try:
                os.link(tmp, candidate)
            except FileExistsError:
                continue
            fsync_dir(real.parent)
            return candidate
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    raise InputError(f"too many backups of {real} this second", "wait a second and retry")  # pragma: no cover


def _atomic_write(real: Path, data: bytes, st: os.stat_result | None, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if st is not None:
                _match_owner_and_mode(f.fileno(), st)
            else:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(real.parent)


def apply_env_update(change: EnvChange, backup: bool = True) -> Path | None:
    """Write a planned change: refuse if the file changed since planned; back up first; atomic replace.

    Returns the backup's path (None when nothing needed writing or ``backup`` is False).
    """
    path = change.path
    real = Path(os.path.realpath(path))
    current = _read_text(real)
    if current != change.old_text:
        raise InputError(
            f"{path} changed since the update was planned; nothing was written",
            "review the file and run the update again",
        )
    if not change.changed:
        return None
    try:
        st = os.stat(real)
    except OSError as e:
        raise InputError(f"cannot stat {path}: {e.strerror or e}", "check the path and retry") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file", "pass --env-file with your .env")
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise InputError(
            f"{path} is read-only (mode {stat.S_IMODE(st.st_mode):04o}); nothing was written",
            "make it writable (chmod u+w) if it should be edited, or pass --env-file",
        )
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write in {real.parent}: permission denied; nothing was written",
            "run as a user who may write there, or pass --env-file",
        )
    backup_path: Path | None = None
    try:
        if backup:
            backup_path = _write_backup(real, change.old_text.encode(_ENCODING, _ERRORS), st)
        if _read_text(real) != change.old_text:
            raise InputError(
                f"{path} changed since the update was planned; nothing was written",
                "review the file and run the update again",
            )
        _atomic_write(real, change.new_text.encode(_ENCODING, _ERRORS), st)
    except InputError:
        if backup_path is not None:
            with contextlib.suppress(OSError):
                backup_path.unlink()
        raise
    except OSError as e:
        if backup_path is not None:
            with contextlib.suppress(OSError):
                backup_path.unlink()
        raise InputError(
            f"cannot write {path}: {e.strerror or e}; nothing was written",
            f"check that {real.parent} is writable and has free space",
        ) from None
    return backup_path


def create_from_example(directory: str | Path) -> Path:
    """Create ``<dir>/.env`` as a copy of ``<dir>/.env.example`` (mode 0600: it will hold secrets)."""
    d = Path(directory)
    env = d / ".env"
    example = d / EXAMPLE_NAME
    if env.exists() or env.is_symlink():
        raise InputError(f"{env} already exists", "the wizard edits it in place; it will not overwrite it")
    if not example.is_file():
        raise InputError(
            f"{example} does not exist",
            "run in your Currents on-prem folder (--dir) or pass --env-file with your .env",
        )
    try:
        data = example.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {example}: {e.strerror or e}", "check its permissions") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".env.", suffix=".tmp", dir=d)
    except OSError as e:
        raise InputError(f"cannot write in {d}: {e.strerror or e}", "check the folder's permissions") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o600)
            os.fsync(f.fileno())
        os.link(tmp, env)  # fails if .env appeared meanwhile: never clobbers
    except FileExistsError:
        raise InputError(f"{env} already exists", "the wizard edits it in place; it will not overwrite it") from None
    except OSError as e:
        raise InputError(f"cannot create {env}: {e.strerror or e}", "check the folder's permissions") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(d)
    return env


def read_current(env_path: str | Path) -> dict[str, str | None]:
    """The two image keys as python-dotenv reads them (last assignment wins; None if absent)."""
    path = Path(env_path)
    values = dotenv_values(stream=io.StringIO(_read_text(path), newline=""), interpolate=False)
    return {key: values.get(key) for key in KEYS}


def read_version(directory: str | Path) -> str | None:
    """The release named by the ``VERSION`` file of a Currents checkout, or None."""
    try:
        text = (Path(directory) / VERSION_NAME).read_text(encoding=_ENCODING, errors="replace")
    except OSError:
        return None
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return first or None


def is_onprem_checkout(directory: str | Path) -> bool:
    """True for a Currents on-prem folder: a ``VERSION`` file beside its .env / compose files."""
    d = Path(directory)
    if not (d / VERSION_NAME).is_file() or read_version(d) is None:
        return False
    markers = [d / ".env", d / EXAMPLE_NAME, d / "compose.currents.yml", d / "templates" / "compose.currents.yml"]
    return any(p.exists() for p in markers) or any(d.glob("docker-compose*.yml"))


def tag_mismatch_warning(directory: str | Path, tag: str) -> str | None:
    """A warning when a checkout's ``VERSION`` differs from the tag about to be written."""
    if not is_onprem_checkout(directory):
        return None
    version = read_version(directory)
    if version is None or version == tag:
        return None
    return (
        f"this Currents checkout is release {version} (its VERSION file) but the image tag is {tag}; "
        f"the checkout's compose files and scripts expect {version}"
    )
