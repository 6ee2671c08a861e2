"""``kill -9`` at random moments of ``currents-wizard run --yes``, then run again (issue 7).

Each cycle starts a fresh on-prem folder and a fresh target path, kills the run (SIGKILL, no chance
to clean up) a few times at random moments — during the mirror, around the ``.env`` write, or
anywhere — and then lets a run finish.  After every kill:

* the state file, when present, parses (``json.loads``) and no step that was done is undone;
* the ``.env`` is byte-equal to the old version or to the new one (never half-written), and every
  backup is byte-equal to the old version;
* a blob whose upload the target registry had completed (``201`` seen by the proxy) is never sent
  again by a later run.

The final run of every cycle must exit 0 with all six images digest-identical at the target
(skopeo), every step done and the ``.env`` in its new version.  The kill moments are drawn from a
seeded RNG over the durations measured by an uninterrupted calibration run.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TAG_OLD, SeededVendor
from tests.faultproxy import REGISTRY_BLOB_GET, Fault, FaultProxy, Rule
from tests.integration.test_faults import base_env, cli_argv, make_onprem, oracle_digests, source_env
from tests.testbed import MotoServer, Registry

pytestmark = pytest.mark.integration

STATUSES = {"pending", "running", "done", "failed", "skipped"}
MIRROR_LINE = "==> Mirror images"
PLAN_LINE = "    plan: "
CONFIGURE_LINE = "==> Configure .env"


# ------------------------------------------------------------------------------------------------
# a run we can watch and kill
# ------------------------------------------------------------------------------------------------


class Run:
    """``currents-wizard run --yes ...`` as a subprocess whose stderr lines are time-stamped as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._err.start()
        self._out: list[str] = []
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_thread.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._out.extend(self.proc.stdout)

    def wait_line(self, prefix: str, timeout: float = 60) -> float | None:
        """Seconds from start until a stderr line starting with ``prefix``; None if the run ended first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, ln in self.lines:
                    if ln.startswith(prefix):
                        return t
                if self.proc.poll() is not None and not self._err.is_alive():
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {prefix!r} line within {timeout}s: {self.stderr[-2000:]}")
                self._cond.wait(min(left, 0.05))

    def kill(self) -> bool:
        """SIGKILL now; True when the process was still running (a real kill)."""
        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise
        finally:
            self._err.join(timeout=10)
            self._out_thread.join(timeout=10)

    @property
    def stderr(self) -> str:
        return "\n".join(ln for _, ln in self.lines)


# ------------------------------------------------------------------------------------------------
# the invariants
# ------------------------------------------------------------------------------------------------


def expected_env(old: bytes, repository: str, tag: str) -> bytes:
    """The ``.env`` as it must be after configure: the two lines replaced, every other byte kept."""
    new = re.sub(rb"(?m)^DC_CURRENTS_IMAGE_REPOSITORY=.*$", b"DC_CURRENTS_IMAGE_REPOSITORY=" + repository.encode(), old)
    return re.sub(rb"(?m)^DC_CURRENTS_IMAGE_TAG=.*$", b"DC_CURRENTS_IMAGE_TAG=" + tag.encode(), new)


@dataclass
class Cycle:
    """One on-prem folder + target path, killed several times, then finished."""

    onprem: Path
    prefix: str
    target_host: str
    old_env: bytes
    new_env: bytes
    done_steps: set[str] = field(default_factory=set)
    finished_uploads: set[str] = field(default_factory=set)  # digests whose upload completed
    log_mark: int = 0  # target proxy log position at the last kill
    kills: int = 0
    notes: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)  # per kill: "partial-mirror", "env-old", "env-new", ...

    @property
    def state_path(self) -> Path:
        return self.onprem / ".currents-wizard" / "state.json"

    def check_after(self, what: str, target: FaultProxy) -> None:
        """Everything that must hold on disk and at the target after a kill (or a finished run)."""
        if self.state_path.exists():
            raw = self.state_path.read_text()
            try:
                state = json.loads(raw)
            except ValueError as exc:
                pytest.fail(f"{what}: state file does not parse ({exc}): {raw[:300]!r}")
            steps = state["steps"]
            assert {r["status"] for r in steps.values()} <= STATUSES, (what, steps)
            now_done = {s for s, r in steps.items() if r["status"] == "done"}
            assert self.done_steps <= now_done, f"{what}: steps undone: {self.done_steps - now_done}"
            self.done_steps = now_done
        env_now = (self.onprem / ".env").read_bytes()
        assert env_now in (self.old_env, self.new_env), f"{what}: .env is neither the old nor the new version"
        for bak in self.onprem.glob(".env.bak-*"):
            assert bak.read_bytes() == self.old_env, f"{what}: backup {bak.name} is not the old .env"
        time.sleep(0.1)  # let the proxy finish with the dead client's last requests
        resent = self.uploads_since(target) & self.finished_uploads
        assert not resent, f"{what}: blobs already stored at the target were sent again: {sorted(resent)}"
        with target.lock:
            self.finished_uploads |= {
                d for (repo, d), n in target.uploads_completed.items() if n and repo.startswith(self.prefix + "/")
            }
            self.log_mark = len(target.log)

    def outcome(self) -> str:
        """Where the last kill left things: no-mirror-yet / partial-mirror / env-old / env-new."""
        if "mirror" not in self.done_steps:
            return "partial-mirror" if self.finished_uploads else "no-blob-yet"
        return "env-new" if (self.onprem / ".env").read_bytes() == self.new_env else "env-old"

    def uploads_since(self, target: FaultProxy) -> set[str]:
        """Digests whose upload (PUT with bytes) to this cycle's repositories started after the last check."""
        with target.lock:
            recs = target.log[self.log_mark :]
        return {
            r.target.split("digest=", 1)[1].split("&", 1)[0]
            for r in recs
            if r.method == "PUT"
            and r.target.startswith(f"/v2/{self.prefix}/")
            and "/blobs/uploads/" in r.target
            and "digest=" in r.target
            and r.bytes_in > 0
        }


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    moto: MotoServer
    vendor: SeededVendor
    source: FaultProxy
    target: FaultProxy
    target_registry: Registry
    tmp: Path
    rng: random.Random
    timeline: dict[str, float] = field(default_factory=dict)
    cycles: int = 0
    outcomes: list[str] = field(default_factory=list)

    def env(self, onprem: Path) -> dict[str, str]:
        return {**base_env(self.moto, onprem), **source_env(self.source.host)}

    def new_cycle(self) -> Cycle:
        self.cycles += 1
        onprem = make_onprem(self.tmp / f"on-prem-{self.cycles}")
        prefix = f"crash{self.cycles}-{self.rng.randrange(10**6)}"
        old = (onprem / ".env").read_bytes()
        new = expected_env(old, f"{self.target.host}/{prefix}/", TAG_OLD)
        return Cycle(onprem, prefix, self.target.host, old, new)

    def start(self, cycle: Cycle) -> Run:
        argv = cli_argv("run", "--yes", "--tag", TAG_OLD, "--target", f"http://{self.target.host}/{cycle.prefix}")
        return Run(argv, self.env(cycle.onprem))

    def finish_cycle(self, cycle: Cycle) -> None:
        """A run with no kill: must complete; then the oracle and the invariants."""
        run = self.start(cycle)
        code = run.finish()
        assert code == 0, f"re-run after {cycle.kills} kill(s) failed ({code}): {run.stderr[-3000:]}"
        cycle.check_after("final run", self.target)
        state = json.loads(cycle.state_path.read_text())
        assert all(r["status"] == "done" for r in state["steps"].values()), state["steps"]
        assert (cycle.onprem / ".env").read_bytes() == cycle.new_env
        got = oracle_digests(self.target_registry, cycle.prefix, TAG_OLD)
        assert got == self.vendor.digests[TAG_OLD], f"cycle {cycle.prefix}: {cycle.notes}"


@pytest.fixture(scope="module")
def bench(
    moto: MotoServer,
    seeded_vendor: SeededVendor,
    registry_factory: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bench]:
    """Vendor (bodies slowed a little, so a kill often lands mid-blob) and target behind proxies,
    and the measured timeline of an uninterrupted run."""
    moto.reset()
    target_registry = registry_factory()  # type: ignore[operator]
    with (
        FaultProxy(seeded_vendor.registry.url, upstream_auth=seeded_vendor.auth, lifetime=600) as source,
        FaultProxy(target_registry.url, lifetime=600) as target,
    ):
        source.add(Rule(Fault.slow(piece=16 * 1024, delay=0.02), REGISTRY_BLOB_GET, name="slow"))
        b = Bench(
            moto,
            seeded_vendor,
            source,
            target,
            target_registry,
            tmp_path_factory.mktemp("crash"),
            random.Random(int(os.environ.get("CRASH_SEED", "20261127"))),
        )
        cal = b.new_cycle()
        run = b.start(cal)
        t_mirror = run.wait_line(MIRROR_LINE)
        t_plan = run.wait_line(PLAN_LINE)
        t_configure = run.wait_line(CONFIGURE_LINE)
        code = run.finish()
        assert code == 0 and None not in (t_mirror, t_plan, t_configure), run.stderr
        b.timeline = {
            "mirror": t_mirror,
            "plan": t_plan,
            "configure": t_configure,
            "end": time.monotonic() - run.t0,
        }  # type: ignore[dict-item]
        yield b


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------


def _kill_cycles(
    bench: Bench,
    want_kills: int,
    pick: str,
    kills_per_cycle: int = 3,
    max_cycles: int = 8,
    until: Callable[[list[str]], bool] = lambda outcomes: True,
) -> int:
    """Kill runs at moments chosen by ``pick`` until ``want_kills`` real kills and ``until(outcomes)``."""
    tl = bench.timeline
    total = 0
    for _ in range(max_cycles):
        if total >= want_kills and until(bench.outcomes):
            break
        cycle = bench.new_cycle()
        for _attempt in range(kills_per_cycle):
            run = bench.start(cycle)
            if pick == "mirror" and bench.rng.random() < 0.25:  # login + plan
                anchor = run.wait_line(MIRROR_LINE)
                delay = bench.rng.uniform(0.0, tl["plan"] - tl["mirror"])
            elif pick == "mirror":  # the copy: blobs and manifests moving
                anchor = run.wait_line(PLAN_LINE)
                delay = bench.rng.uniform(0.0, tl["configure"] - tl["plan"])
            elif pick == "configure":
                anchor = run.wait_line(CONFIGURE_LINE)
                delay = bench.rng.choice((0.0, bench.rng.uniform(0.0, 0.01)))
            else:
                anchor = 0.0
                delay = bench.rng.uniform(0.2, tl["end"])
            if anchor is None:  # the run finished (or failed) before the anchor: nothing to kill
                code = run.finish()
                assert code == 0, run.stderr
                break
            time.sleep(max(0.0, anchor + delay - (time.monotonic() - run.t0)))
            killed = run.kill()
            run.finish()
            where = run.lines[-1][1].strip() if run.lines else "(no output yet)"
            cycle.notes.append(f"{'killed' if killed else 'ended'} at {time.monotonic() - run.t0:.2f}s after {where}")
            cycle.check_after(f"kill {cycle.kills + 1} of cycle {cycle.prefix} ({cycle.notes[-1]})", bench.target)
            bench.outcomes.append(cycle.outcome())
            if not killed:
                assert run.proc.returncode == 0, run.stderr
                break
            cycle.kills += 1
            total += 1
        bench.finish_cycle(cycle)
    return total


@pytest.mark.timeout(240)
def test_kill_during_mirror_then_resume(bench: Bench) -> None:
    """Kills spread over the mirror's measured duration (mid-blob, mid-manifest, between images)."""
    bench.outcomes.clear()
    kills = _kill_cycles(
        bench, want_kills=12, pick="mirror", max_cycles=10, until=lambda o: o.count("partial-mirror") >= 4
    )
    assert kills >= 12, f"only {kills} kills landed (timeline {bench.timeline})"
    # the kills really cut mirrors part-way (some blobs stored, not all): the no-resend check had work to do
    assert bench.outcomes.count("partial-mirror") >= 4, bench.outcomes


@pytest.mark.timeout(240)
def test_kill_around_the_env_write_then_resume(bench: Bench) -> None:
    """Kills 0–30 ms after the configure step starts: before, during or after the ``.env`` write."""
    bench.outcomes.clear()

    def both_sides(outcomes: list[str]) -> bool:
        return "env-old" in outcomes and "env-new" in outcomes

    kills = _kill_cycles(bench, want_kills=6, pick="configure", kills_per_cycle=2, max_cycles=10, until=both_sides)
    assert kills >= 6, f"only {kills} kills landed (timeline {bench.timeline})"
    # kills landed before the write (old .env kept) and after it (new .env complete)
    assert both_sides(bench.outcomes), bench.outcomes


@pytest.mark.timeout(240)
def test_kill_anywhere_then_resume(bench: Bench) -> None:
    """Kills at uniformly random moments of the whole run (AWS calls, state writes, verify)."""
    kills = _kill_cycles(bench, want_kills=5, pick="anywhere", kills_per_cycle=2)
    assert kills >= 5, f"only {kills} kills landed (timeline {bench.timeline})"
