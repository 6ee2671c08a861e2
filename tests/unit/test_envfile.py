"""The .env writer: byte-exact edits (real Currents .env.example), backups, atomic writes, refusals."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from wizard.core import envfile
from wizard.core.envfile import (
    REPOSITORY_KEY,
    TAG_KEY,
    apply_env_update,
    create_from_example,
    is_onprem_checkout,
    normalise_repository,
    plan_env_update,
    read_current,
    read_version,
    tag_mismatch_warning,
)
from wizard.core.errors import InputError

# The real Currents files (currents-dev/docker, on-prem/2026-01-26-001), bundled unchanged in the package.
FIXTURES = Path(__file__).resolve().parents[2] / "wizard" / "demo_data"
SHARED_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "currents-onprem"  # beside the clone
REPO = "127.0.0.1:5002/mirror/"
BACKUP_RE = re.compile(r"^\.env\.bak-\d{8}T\d{6}(-\d+)?$")


@pytest.fixture
def onprem(tmp_path: Path) -> Path:
    """A Currents checkout in tmp: .env (a byte copy of the real .env.example), .env.example, VERSION."""
    example = (FIXTURES / ".env.example").read_bytes()
    (tmp_path / ".env").write_bytes(example)
    (tmp_path / ".env").chmod(0o640)
    (tmp_path / ".env.example").write_bytes(example)
    (tmp_path / "VERSION").write_bytes((FIXTURES / "VERSION").read_bytes())
    return tmp_path


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def other_files(directory: Path, keep: set[str]) -> set[str]:
    return {p.name for p in directory.iterdir()} - keep


# -- the real Currents file -------------------------------------------------------------------


def test_real_env_example_only_two_lines_change(onprem: Path) -> None:
    env = onprem / ".env"
    before = env.read_bytes()
    change = plan_env_update(env, "127.0.0.1:5002/mirror", "2026-02-01-001")
    assert change.changed
    assert change.changes == [
        (REPOSITORY_KEY, "513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/", REPO),
        (TAG_KEY, "2026-01-26-001", "2026-02-01-001"),
    ]
    assert change.notes == []
    assert env.read_bytes() == before  # planning writes nothing

    backup = apply_env_update(change)
    after = env.read_bytes()
    old_lines, new_lines = before.split(b"\n"), after.split(b"\n")
    assert len(old_lines) == len(new_lines)
    differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert [new_lines[i] for i in differing] == [
        b"DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/",
        b"DC_CURRENTS_IMAGE_TAG=2026-02-01-001",
    ]
    # byte-exact everywhere else
    expected = before.replace(
        b"DC_CURRENTS_IMAGE_REPOSITORY=513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/\n",
        b"DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\n",
    ).replace(b"DC_CURRENTS_IMAGE_TAG=2026-01-26-001\n", b"DC_CURRENTS_IMAGE_TAG=2026-02-01-001\n")
    assert after == expected
    # dotenv reads every other key exactly as before
    old_values = dotenv_values(FIXTURES / ".env.example", interpolate=False)
    new_values = dotenv_values(env, interpolate=False)
    assert new_values.pop(REPOSITORY_KEY) == REPO and new_values.pop(TAG_KEY) == "2026-02-01-001"
    old_values.pop(REPOSITORY_KEY), old_values.pop(TAG_KEY)
    assert new_values == old_values
    # backup: the old bytes, same mode; the file keeps its mode
    assert backup is not None and BACKUP_RE.match(backup.name) and backup.parent == onprem
    assert backup.read_bytes() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    # no temp files left behind
    assert other_files(onprem, {".env", ".env.example", "VERSION", backup.name}) == set()


def test_diff_shows_the_two_lines(onprem: Path) -> None:
    d = plan_env_update(onprem / ".env", REPO, "v9").diff()
    assert "-DC_CURRENTS_IMAGE_TAG=2026-01-26-001\n" in d
    assert "+DC_CURRENTS_IMAGE_TAG=v9\n" in d
    assert "+DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\n" in d
    assert d.count("\n-") == 2 and d.count("\n+") == 2 + 1  # +1: the "+++" header


def test_same_values_change_nothing(onprem: Path) -> None:
    env = onprem / ".env"
    change = plan_env_update(env, "513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem", "2026-01-26-001")
    assert not change.changed and change.changes == [] and change.diff() == ""
    assert apply_env_update(change) is None
    assert other_files(onprem, {".env", ".env.example", "VERSION"}) == set()


# -- formats ----------------------------------------------------------------------------------


def test_crlf_kept(tmp_path: Path) -> None:
    env = write(
        tmp_path / ".env",
        b"# head\r\nA=1\r\nDC_CURRENTS_IMAGE_REPOSITORY=old/\r\n\r\nDC_CURRENTS_IMAGE_TAG=t\r\nB=2\r\n",
    )
    apply_env_update(plan_env_update(env, REPO, "v2"), backup=False)
    assert env.read_bytes() == (
        b"# head\r\nA=1\r\nDC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\r\n"
        b"\r\nDC_CURRENTS_IMAGE_TAG=v2\r\nB=2\r\n"
    )


def test_crlf_missing_keys_appended_with_crlf(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\r\nB=2")
    apply_env_update(plan_env_update(env, REPO, "v2"), backup=False)
    assert (
        env.read_bytes()
        == b"A=1\r\nB=2\r\nDC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\r\nDC_CURRENTS_IMAGE_TAG=v2\r\n"
    )


def test_export_prefix_and_quotes_kept(tmp_path: Path) -> None:
    env = write(
        tmp_path / ".env",
        b"export A='x'\n"
        b"export DC_CURRENTS_IMAGE_REPOSITORY='old.example.com/c/'  # inline comment\n"
        b'DC_CURRENTS_IMAGE_TAG="staging" # another\n'
        b'C="multi\nline"\n',
    )
    change = plan_env_update(env, "reg.example.com:5000/currents", "2026-02-01-001")
    apply_env_update(change, backup=False)
    assert env.read_bytes() == (
        b"export A='x'\n"
        b"export DC_CURRENTS_IMAGE_REPOSITORY='reg.example.com:5000/currents/'  # inline comment\n"
        b'DC_CURRENTS_IMAGE_TAG="2026-02-01-001" # another\n'
        b'C="multi\nline"\n'
    )
    assert read_current(env) == {REPOSITORY_KEY: "reg.example.com:5000/currents/", TAG_KEY: "2026-02-01-001"}
    assert dotenv_values(env)["C"] == "multi\nline"


def test_unquoted_value_with_inline_comment_and_spaces(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG = old   # keep me\nDC_CURRENTS_IMAGE_REPOSITORY=\n")
    apply_env_update(plan_env_update(env, REPO, "new"), backup=False)
    assert (
        env.read_bytes()
        == b"DC_CURRENTS_IMAGE_TAG = new   # keep me\nDC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\n"
    )


def test_all_export_file_appends_with_export(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"export A=1\nexport B=2\n")
    apply_env_update(plan_env_update(env, REPO, "t"), backup=False)
    assert env.read_bytes().endswith(
        b"export DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\nexport DC_CURRENTS_IMAGE_TAG=t\n"
    )


def test_duplicate_keys_update_the_last_one(tmp_path: Path) -> None:
    data = (
        b"DC_CURRENTS_IMAGE_TAG=first\n"
        b"# DC_CURRENTS_IMAGE_TAG=commented\n"
        b"DC_CURRENTS_IMAGE_REPOSITORY=r/\n"
        b"\n"
        b"DC_CURRENTS_IMAGE_TAG=second\n"
        b"X=1\n"
    )
    env = write(tmp_path / ".env", data)
    assert read_current(env)[TAG_KEY] == "second"  # dotenv: last wins
    change = plan_env_update(env, REPO, "third")
    assert (TAG_KEY, "second", "third") in change.changes
    assert len(change.notes) == 1
    assert "2 times (lines 1, 5)" in change.notes[0] and "line 5" in change.notes[0]
    apply_env_update(change, backup=False)
    assert env.read_bytes() == data.replace(b"=second", b"=third").replace(b"=r/", b"=127.0.0.1:5002/mirror/")
    assert read_current(env)[TAG_KEY] == "third"


def test_no_trailing_newline_kept_when_last_line_replaced(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_REPOSITORY=a/\nDC_CURRENTS_IMAGE_TAG=old")
    apply_env_update(plan_env_update(env, REPO, "new"), backup=False)
    assert env.read_bytes() == b"DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\nDC_CURRENTS_IMAGE_TAG=new"


def test_missing_keys_appended(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"# only a comment\nA=1\n")
    change = plan_env_update(env, REPO, "t1")
    assert change.changes == [(REPOSITORY_KEY, None, REPO), (TAG_KEY, None, "t1")]
    assert all("added at the end" in n for n in change.notes)
    apply_env_update(change, backup=False)
    assert (
        env.read_bytes()
        == b"# only a comment\nA=1\nDC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\nDC_CURRENTS_IMAGE_TAG=t1\n"
    )


def test_empty_file(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"")
    apply_env_update(plan_env_update(env, REPO, "t1"), backup=False)
    assert env.read_bytes() == b"DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\nDC_CURRENTS_IMAGE_TAG=t1\n"


def test_bare_key_becomes_assignment(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG\nDC_CURRENTS_IMAGE_REPOSITORY=x/\n")
    change = plan_env_update(env, REPO, "t")
    assert (TAG_KEY, None, "t") in change.changes
    apply_env_update(change, backup=False)
    assert env.read_bytes() == b"DC_CURRENTS_IMAGE_TAG=t\nDC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\n"


def test_non_utf8_bytes_and_unparseable_lines_survive(tmp_path: Path) -> None:
    data = b"# caf\xe9 latin-1 comment\n'unterminated\nDC_CURRENTS_IMAGE_TAG=a\n\xff\xfe=odd\n"
    env = write(tmp_path / ".env", data)
    apply_env_update(plan_env_update(env, REPO, "b"), backup=False)
    assert (
        env.read_bytes() == data.replace(b"TAG=a", b"TAG=b") + b"DC_CURRENTS_IMAGE_REPOSITORY=127.0.0.1:5002/mirror/\n"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:5002/mirror", "127.0.0.1:5002/mirror/"),
        ("127.0.0.1:5002/mirror///", "127.0.0.1:5002/mirror/"),
        ("  reg.example.com/a/b/  ", "reg.example.com/a/b/"),
        ("https://reg.example.com/x", "reg.example.com/x/"),
        ("localhost:5000", "localhost:5000/"),
    ],
)
def test_repository_normalised(given: str, expected: str) -> None:
    assert normalise_repository(given) == expected


@pytest.mark.parametrize("bad", ["", "/", "reg.example.com/UPPER", "reg example.com/x", "ftp://x/y", "h/a b"])
def test_bad_repository_rejected(tmp_path: Path, bad: str) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    with pytest.raises(InputError):
        plan_env_update(env, bad, "t")


def test_bad_tag_rejected(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    with pytest.raises(InputError, match="tag"):
        plan_env_update(env, REPO, "bad tag")


# -- applying: backups, modes, refusals --------------------------------------------------------


def test_backup_names_are_unique_and_keep_mode(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n", 0o600)
    backups = []
    for tag in ("b", "c", "d"):
        backups.append(apply_env_update(plan_env_update(env, REPO, tag)))
    names = [b.name for b in backups if b is not None]
    assert len(set(names)) == 3 and all(BACKUP_RE.match(n) for n in names)
    contents = sorted(b.read_bytes() for b in backups if b is not None)
    assert contents[0] == b"DC_CURRENTS_IMAGE_TAG=a\n"
    assert all(stat.S_IMODE(b.stat().st_mode) == 0o600 for b in backups if b is not None)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_backup_false_writes_no_backup(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n", 0o644)
    assert apply_env_update(plan_env_update(env, REPO, "b"), backup=False) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o644


def test_refuses_when_file_changed_since_planned(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n")
    change = plan_env_update(env, REPO, "b")
    env.write_bytes(b"DC_CURRENTS_IMAGE_TAG=a\nSOMEONE=else\n")
    with pytest.raises(InputError, match="changed since the update was planned") as info:
        apply_env_update(change)
    assert "\n" not in str(info.value)
    assert env.read_bytes() == b"DC_CURRENTS_IMAGE_TAG=a\nSOMEONE=else\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # no backup, no temp file


def test_refuses_when_file_deleted_since_planned(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n")
    change = plan_env_update(env, REPO, "b")
    env.unlink()
    with pytest.raises(InputError, match="does not exist"):
        apply_env_update(change)
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_refused(tmp_path: Path) -> None:
    env = write(tmp_path / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n", 0o444)
    change = plan_env_update(env, REPO, "b")
    with pytest.raises(InputError, match=r"read-only \(mode 0444\)"):
        apply_env_update(change)
    assert env.read_bytes() == b"DC_CURRENTS_IMAGE_TAG=a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a 0555 directory")
def test_read_only_directory_refused(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    env = write(d / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n")
    change = plan_env_update(env, REPO, "b")
    d.chmod(0o555)
    try:
        with pytest.raises(InputError, match="permission denied"):
            apply_env_update(change)
        assert env.read_bytes() == b"DC_CURRENTS_IMAGE_TAG=a\n"
        assert sorted(p.name for p in d.iterdir()) == [".env"]
    finally:
        d.chmod(0o755)


def test_unwritable_directory_maps_to_input_error(tmp_path: Path) -> None:
    """A directory that vanished between plan and write (rename) gives one clean InputError."""
    d = tmp_path / "d"
    d.mkdir()
    env = write(d / ".env", b"DC_CURRENTS_IMAGE_TAG=a\n")
    change = plan_env_update(env, REPO, "b")
    d.rename(tmp_path / "moved")
    with pytest.raises(InputError):
        apply_env_update(change)
    assert (tmp_path / "moved" / ".env").read_bytes() == b"DC_CURRENTS_IMAGE_TAG=a\n"


def test_symlinked_env_edits_the_target(tmp_path: Path) -> None:
    real = write(tmp_path / "real.env", b"DC_CURRENTS_IMAGE_TAG=a\n", 0o640)
    link = tmp_path / ".env"
    link.symlink_to(real.name)
    backup = apply_env_update(plan_env_update(link, REPO, "b"))
    assert link.is_symlink()
    assert real.read_bytes().startswith(b"DC_CURRENTS_IMAGE_TAG=b\n")
    assert backup is not None and backup.name.startswith("real.env.bak-")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_missing_env_errors_and_hints(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as info:
        plan_env_update(tmp_path / ".env", REPO, "t")
    assert "--env-file" in info.value.hint and ".env.example" not in info.value.hint
    (tmp_path / ".env.example").write_text("A=1\n")
    with pytest.raises(InputError) as info:
        plan_env_update(tmp_path / ".env", REPO, "t")
    assert ".env.example" in info.value.hint
    with pytest.raises(InputError, match="directory"):
        plan_env_update(tmp_path, REPO, "t")
    with pytest.raises(InputError, match="does not exist"):
        read_current(tmp_path / ".env")


# -- create from example, VERSION ----------------------------------------------------------------


def test_create_from_example(onprem: Path) -> None:
    (onprem / ".env").unlink()
    env = create_from_example(onprem)
    assert env == onprem / ".env"
    assert env.read_bytes() == (FIXTURES / ".env.example").read_bytes()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert sorted(p.name for p in onprem.iterdir()) == [".env", ".env.example", "VERSION"]
    with pytest.raises(InputError, match="already exists"):
        create_from_example(onprem)


def test_create_from_example_needs_the_example(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.env\.example does not exist"):
        create_from_example(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_current(onprem: Path) -> None:
    assert read_current(onprem / ".env") == {
        REPOSITORY_KEY: "513558712013.dkr.ecr.us-east-1.amazonaws.com/currents/on-prem/",
        TAG_KEY: "2026-01-26-001",
    }
    other = write(onprem / "other.env", b"A=1\n")
    assert read_current(other) == {REPOSITORY_KEY: None, TAG_KEY: None}


def test_version_and_checkout_detection(onprem: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert read_version(onprem) == (FIXTURES / "VERSION").read_text().strip() == "2026-01-26-001"
    assert is_onprem_checkout(onprem)
    assert is_onprem_checkout(FIXTURES)
    assert tag_mismatch_warning(onprem, "2026-01-26-001") is None
    warning = tag_mismatch_warning(onprem, "staging")
    assert warning is not None and "2026-01-26-001" in warning and "staging" in warning

    empty = tmp_path_factory.mktemp("empty")
    assert read_version(empty) is None and not is_onprem_checkout(empty)
    assert tag_mismatch_warning(empty, "staging") is None
    (empty / "VERSION").write_text("1.0\n")  # a VERSION alone is not a Currents checkout
    assert not is_onprem_checkout(empty)
    (empty / "docker-compose.yml").write_text("services: {}\n")
    assert is_onprem_checkout(empty)
    (empty / "VERSION").write_text("\n\n")
    assert read_version(empty) is None and not is_onprem_checkout(empty)


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="the shared fixture folder exists only on the dev machine")
def test_bundled_files_are_the_real_ones() -> None:
    for name in (".env.example", "VERSION", "compose.currents.yml"):
        assert (FIXTURES / name).read_bytes() == (SHARED_FIXTURES / name).read_bytes()


def test_module_constants() -> None:
    assert envfile.KEYS == ("DC_CURRENTS_IMAGE_REPOSITORY", "DC_CURRENTS_IMAGE_TAG")
