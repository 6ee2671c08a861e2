#!/usr/bin/env python3
"""Mirror benchmark: this engine vs ``skopeo sync --all`` vs the docker pull/tag/push loop.

Run on demand (not part of pytest), as root on the testbed machine, from the repository root::

    python bench/mirror_bench.py                       # ~600 MB, 3 trials, engine + skopeo
    python bench/mirror_bench.py --docker              # also the docker loop (private dockerd)
    python bench/mirror_bench.py --big-layer-mb 1024   # also peak RSS with one 1 GB layer
    python bench/mirror_bench.py --size-mb 200 --trials 3 --docker --big-layer-mb 1024 --json out.json

What it does: starts a basic-auth "vendor" registry (like ECR: bcrypt htpasswd) and pushes six
generated images × two tags (shared layers as in TESTBED §3; the second tag changes only each
``app`` layer; ``api`` is a multi-arch index with attestations). Then, per trial and with the tool
order rotated each trial (interleaved, so machine noise hits all tools alike), each tool gets a
fresh empty target registry and runs: **cold** (mirror tag 1), **warm** (same again: nothing to
do) and **upgrade** (mirror tag 2). Every run is a separate process timed from the outside
(start-up included). The engine's child process reports its peak RSS (``VmHWM``, its high-water mark).
Medians and ratios are printed at the end, with the issue's goals.
"""

from __future__ import annotations

# Only what the engine child needs is imported here (its start-up is part of what is timed); the
# driver imports the rest where it uses it.
import argparse
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TAG_OLD, TAG_NEW = "2026-01-26-001", "2026-02-10-001"
PREFIX = "currents/on-prem"
GOALS = {"skopeo": 0.7, "docker": 0.25, "warm_s": 1.0, "rss_mb": 150.0}


# ------------------------------------------------------------------------------------------------
# child: one engine run in its own process (so start-up and peak RSS are its own)
# ------------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak RSS of this process image: ``VmHWM`` (reset by exec). ``ru_maxrss`` is not used because
    Linux carries the parent's high-water mark into a child across fork/vfork + exec."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_child(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mirror_bench.py engine")
    ap.add_argument("--source", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--source-prefix", default=PREFIX)
    ap.add_argument("--target-prefix", default="engine")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--services", default="api,director,change-streams,scheduler,writer,webhooks")
    ap.add_argument("--parallel", type=int, default=6)
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    from wizard.core import mirror
    from wizard.core.credentials import Credential, StaticCredentials
    from wizard.core.transports.registry import RegistryTransport

    user, password = os.environ.get("BENCH_SOURCE_USER", ""), os.environ.get("BENCH_SOURCE_PASSWORD", "")
    creds = StaticCredentials(Credential(user, password)) if user else None
    src = RegistryTransport.for_host(a.source, credentials=creds)
    dst = RegistryTransport.for_host(a.target)
    jobs = mirror.make_jobs(a.services.split(","), a.tag, a.source_prefix, a.target_prefix)
    t1, c1 = time.monotonic(), sum(os.times()[:2])
    plan = mirror.plan(src, dst, jobs, parallel=a.parallel)
    t2, c2 = time.monotonic(), sum(os.times()[:2])
    result = mirror.execute(plan, src, dst, parallel=a.parallel)
    t3, c3 = time.monotonic(), sum(os.times()[:2])
    # as the wizard's mirror step does: re-read every target manifest and compare digests
    checks = mirror.verify(plan, dst, parallel=a.parallel)
    t4 = time.monotonic()
    src.close()
    dst.close()
    requests = {"source_requests": src.client.stats.requests, "target_requests": dst.client.stats.requests}
    user, system = os.times()[:2]  # one reading, so cpu_s == user_s + sys_s
    out = {
        **requests,
        "ok": result.ok and all(c.ok for c in checks.values()),
        "failed": [f"{i.key}: {i.message}" for i in result.failed],
        "bytes_copied": result.bytes_copied,
        "blobs_copied": result.blobs_copied,
        "blobs_mounted": result.blobs_mounted,
        "import_s": t1 - t0,
        "plan_s": t2 - t1,
        "execute_s": t3 - t2,
        "verify_s": t4 - t3,
        "rss_mb": peak_rss_mb(),
        "cpu_s": user + system,
        "user_s": user,
        "sys_s": system,
        # CPU seconds by phase: start-up and imports, plan, copy
        "cpu_start_s": c1,
        "cpu_plan_s": c2 - c1,
        "cpu_copy_s": c3 - c2,
    }
    print(json.dumps(out))
    return 0 if out["ok"] else 1


# ------------------------------------------------------------------------------------------------
# image generation
# ------------------------------------------------------------------------------------------------


def seed_vendor(vendor: Any, size_mb: float, auth: tuple[str, str]) -> dict[str, Any]:
    from tests import imagegen

    # unique bytes of one tag ≈ 3.8 × image_size (base + 2 runtimes + 6 deps + 6 apps + api's arm64)
    image_size = int(size_mb * 1e6 / 3.8)
    info: dict[str, Any] = {"image_size": image_size}
    for tag in (TAG_OLD, TAG_NEW):
        t = time.monotonic()
        images = imagegen.build_images(tag, image_size=image_size)
        blobs: dict[str, int] = {}
        for img in images.values():
            for b in img.all_blobs():
                blobs[b.digest] = b.size
        imagegen.push_images(vendor.url, PREFIX, tag, auth=auth, images=images)
        info[tag] = {"unique_blob_bytes": sum(blobs.values()), "blobs": len(blobs), "seconds": time.monotonic() - t}
    imagegen.clear_cache()
    return info


def push_big_image(vendor: Any, auth: tuple[str, str], layer_mb: int, workdir: Path) -> int:
    """Push ``bench/big:v1``: one ~``layer_mb`` MB gzip (level 0) layer, generated and sent streaming."""
    import hashlib
    import random
    import tarfile
    import zlib

    import httpx

    size = layer_mb * 1024 * 1024
    path = workdir / "big-layer.tar.gz"
    comp = zlib.compressobj(0, zlib.DEFLATED, 31)
    h_gz, h_tar = hashlib.sha256(), hashlib.sha256()
    rnd = random.Random("big-layer")

    header = tarfile.TarInfo("opt/big.bin")
    header.size, header.mtime = size, 0
    tar_head = header.tobuf(format=tarfile.USTAR_FORMAT)
    pad = (512 - size % 512) % 512
    with open(path, "wb") as f:

        def put(data: bytes) -> None:
            h_tar.update(data)
            out = comp.compress(data)
            if out:
                h_gz.update(out)
                f.write(out)

        put(tar_head)
        left = size
        while left:
            n = min(left, 4 << 20)
            put(rnd.randbytes(n))
            left -= n
        put(b"\0" * pad + b"\0" * 1024)
        tail = comp.flush()
        h_gz.update(tail)
        f.write(tail)
    gz_digest, gz_size = "sha256:" + h_gz.hexdigest(), path.stat().st_size
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h_tar.hexdigest()]},
        }
    ).encode()
    cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with httpx.Client(auth=auth, timeout=600, trust_env=False) as c:
        for digest, body, n in ((gz_digest, None, gz_size), (cfg_digest, config, len(config))):
            r = c.post(f"{vendor.url}/v2/bench/big/blobs/uploads/")
            r.raise_for_status()
            loc = r.headers["Location"]
            loc = loc if loc.startswith("http") else vendor.url + loc
            sep = "&" if "?" in loc else "?"
            if body is None:
                with open(path, "rb") as f:
                    r = c.put(
                        f"{loc}{sep}digest={digest}",
                        content=iter(lambda: f.read(1 << 20), b""),
                        headers={"Content-Length": str(n)},
                    )
            else:
                r = c.put(f"{loc}{sep}digest={digest}", content=body)
            r.raise_for_status()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": cfg_digest,
            },
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz_size, "digest": gz_digest}
            ],
        }
        r = c.put(
            f"{vendor.url}/v2/bench/big/manifests/v1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": manifest["mediaType"]},
        )
        r.raise_for_status()
    path.unlink()
    return gz_size


# ------------------------------------------------------------------------------------------------
# the three tools
# ------------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.monotonic()
    out = fn()
    return time.monotonic() - t, out


def children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (a delta around one run is that run's)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds a running process (a registry) has used so far; 0 if unknown."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def precompile() -> None:
    """Byte-compile the package and this script, as ``pip install`` does for an installed tool.

    Without it, a machine with ``PYTHONDONTWRITEBYTECODE`` set (or a read-only checkout) would make
    every engine run compile ~30 modules from source (~50 ms of CPU) and time that instead.
    """
    import compileall

    for folder in (ROOT / "wizard", Path(__file__).resolve().parent):
        compileall.compile_dir(str(folder), quiet=1)


def run_engine(
    vendor: Any,
    target: Any,
    tag: str,
    auth: tuple[str, str],
    parallel: int,
    services: str | None = None,
    source_prefix: str = PREFIX,
) -> dict[str, Any]:
    import subprocess

    # The child imports this module (compiled, see ``precompile``) instead of running it as a script,
    # which Python would compile from source every time.
    argv = [
        sys.executable,
        "-c",
        "import sys; import mirror_bench; sys.exit(mirror_bench.engine_child(sys.argv[1:]))",
        "--source",
        vendor.url,
        "--target",
        target.url,
        "--tag",
        tag,
        "--parallel",
        str(parallel),
        "--source-prefix",
        source_prefix,
    ]
    if services:
        argv += ["--services", services]
    if os.environ.get("BENCH_ENGINE_WRAP"):
        argv = os.environ["BENCH_ENGINE_WRAP"].split() + argv
    env = {
        **os.environ,
        "BENCH_SOURCE_USER": auth[0],
        "BENCH_SOURCE_PASSWORD": auth[1],
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).resolve().parent)]),
    }
    cpu = children_cpu()
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, env=env, timeout=3600)
    wall = time.monotonic() - t
    if res.returncode != 0:
        raise RuntimeError(f"engine run failed: {res.stdout.decode()[-2000:]} {res.stderr.decode()[-2000:]}")
    out = json.loads(res.stdout.decode().strip().splitlines()[-1])
    out["wall_s"] = wall
    out["client_cpu_s"] = children_cpu() - cpu
    return out


def run_skopeo(vendor: Any, target: Any, tag: str, auth: tuple[str, str], workdir: Path) -> dict[str, Any]:
    import subprocess

    from tests.imagegen import SERVICES

    cfg = workdir / "sync.yml"
    lines = [
        f"{vendor.host}:",
        "  tls-verify: false",
        f"  credentials: {{username: {auth[0]}, password: {auth[1]}}}",
        "  images:",
        *[f"    {PREFIX}/{s}: [{tag}]" for s in SERVICES],
    ]
    cfg.write_text("\n".join(lines) + "\n")
    cfg.chmod(0o600)
    authfile = workdir / "empty-auth.json"
    authfile.write_text('{"auths": {}}\n')
    argv = [
        "skopeo",
        "sync",
        "--all",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        "--authfile",
        str(authfile),
        str(cfg),
        f"{target.host}/skopeo",
    ]
    cpu = children_cpu()
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, timeout=3600)
    wall = time.monotonic() - t
    if res.returncode != 0:
        raise RuntimeError(f"skopeo sync failed: {res.stderr.decode()[-2000:]}")
    return {"wall_s": wall, "client_cpu_s": children_cpu() - cpu}


def run_docker_loop(dockerd: Any, vendor: Any, target: Any, tag: str, auth: tuple[str, str]) -> dict[str, Any]:
    import docker

    from tests.imagegen import SERVICES

    t = time.monotonic()
    client = docker.DockerClient(base_url=dockerd.docker_host, timeout=600)
    client.login(username=auth[0], password=auth[1], registry=vendor.host, reauth=True)

    def check(stream: Any, what: str) -> None:
        for ev in stream:
            if "error" in ev:
                raise RuntimeError(f"docker {what}: {ev['error']}")

    for svc in SERVICES:
        src = f"{vendor.host}/{PREFIX}/{svc}"
        dst = f"{target.host}/docker/{svc}"
        check(client.api.pull(src, tag=tag, stream=True, decode=True), f"pull {svc}")
        client.api.tag(f"{src}:{tag}", dst, tag=tag)
        check(client.api.push(dst, tag=tag, stream=True, decode=True), f"push {svc}")
    client.close()
    return {"wall_s": time.monotonic() - t}


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def fmt_s(v: float | None) -> str:
    return "   -   " if v is None else f"{v:7.2f}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["engine"]:
        return engine_child(argv[1:])
    import shutil
    import statistics
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=600, help="unique bytes of one tag (default 600)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds of every tool first (default 1)")
    ap.add_argument("--parallel", type=int, default=6, help="engine blob streams (default 6)")
    ap.add_argument("--docker", action="store_true", help="also time the docker pull/tag/push loop")
    ap.add_argument("--no-skopeo", action="store_true")
    ap.add_argument("--big-layer-mb", type=int, default=0, help="also mirror one image with a layer this big")
    ap.add_argument("--json", type=Path, help="write raw figures here")
    a = ap.parse_args(argv)

    from tests import testbed

    precompile()
    auth = (testbed.ECR_USER, testbed.ECR_PASSWORD)  # the testbed's fake ECR token, not a secret
    work = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    os.environ.setdefault("DOCKER_CONFIG", str(work / "docker-config"))
    (work / "docker-config").mkdir(exist_ok=True)
    (work / "docker-config" / "config.json").write_text("{}\n")
    tools = ["engine"]
    if not a.no_skopeo and shutil.which("skopeo"):
        tools.append("skopeo")
    if a.docker:
        tools.append("docker")
    raw: dict[str, dict[str, list[float]]] = {t: {"cold": [], "warm": [], "upgrade": []} for t in tools}
    # CPU seconds of the cold phase: the tool's own process, the target and the vendor registry
    cpu: dict[str, dict[str, list[float]]] = {t: {"client": [], "target": [], "vendor": []} for t in tools}
    rss: list[float] = []
    engine_detail: list[dict[str, Any]] = []
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(a).items()}}
    try:
        vendor = testbed.Registry(auth=auth)
        print(f"vendor registry {vendor.url}; generating and pushing ~{a.size_mb:.0f} MB × 2 tags ...", flush=True)
        info = seed_vendor(vendor, a.size_mb, auth)
        report["images"] = info
        print(
            f"  tag 1: {info[TAG_OLD]['blobs']} unique blobs, {info[TAG_OLD]['unique_blob_bytes'] / 1e6:.0f} MB "
            f"(pushed in {info[TAG_OLD]['seconds']:.1f} s)",
            flush=True,
        )
        # Warm-up rounds (not recorded): the first copies after the seeding run slower whoever makes
        # them (measured: ~+0.6 CPU-s on the target), and the rotation below always puts the engine
        # first in trial 1.
        for trial in range(-a.warmup, a.trials):
            record = trial >= 0
            order = tools[trial % len(tools) :] + tools[: trial % len(tools)] if record else tools
            for tool in order:
                target = testbed.Registry()
                dockerd = testbed.Dockerd() if tool == "docker" else None
                try:
                    for phase, tag in (("cold", TAG_OLD), ("warm", TAG_OLD), ("upgrade", TAG_NEW)):
                        # Every run starts with no dirty pages left by the seeding or by the previous
                        # tool's copy: their writeback would otherwise land on whoever runs next.
                        os.sync()
                        cpu_target, cpu_vendor = process_cpu(target.pid), process_cpu(vendor.pid)
                        if tool == "engine":
                            out = run_engine(vendor, target, tag, auth, a.parallel)
                            if record:
                                rss.append(out["rss_mb"])
                                engine_detail.append({"trial": trial, "phase": phase, **out})
                        elif tool == "skopeo":
                            out = run_skopeo(vendor, target, tag, auth, work)
                        else:
                            out = run_docker_loop(dockerd, vendor, target, tag, auth)
                        out["target_cpu_s"] = process_cpu(target.pid) - cpu_target
                        out["vendor_cpu_s"] = process_cpu(vendor.pid) - cpu_vendor
                        if record:
                            raw[tool][phase].append(out["wall_s"])
                        if record and phase == "cold" and "client_cpu_s" in out:
                            for side in ("client", "target", "vendor"):
                                cpu[tool][side].append(out[f"{side}_cpu_s"])
                        extra = (
                            f" (plan {out['plan_s']:.2f}s, copy {out['execute_s']:.2f}s, "
                            f"{out['bytes_copied'] / 1e6:.0f} MB, RSS {out['rss_mb']:.0f} MB)"
                            if tool == "engine"
                            else ""
                        )
                        cpus = (
                            f" cpu {out['client_cpu_s']:.2f} s, target {out['target_cpu_s']:.2f} s, "
                            f"vendor {out['vendor_cpu_s']:.2f} s"
                            if "client_cpu_s" in out
                            else ""
                        )
                        label = f"trial {trial + 1}" if record else "warm-up"
                        print(
                            f"  {label} {tool:<7} {phase:<8} {out['wall_s']:7.2f} s{extra}{cpus}"
                            f" (load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
                finally:
                    if dockerd is not None:
                        dockerd.stop()
                    target.stop()

        big: dict[str, Any] = {}
        if a.big_layer_mb:
            print(f"big layer: generating and pushing one {a.big_layer_mb} MB layer ...", flush=True)
            gz = push_big_image(vendor, auth, a.big_layer_mb, work)
            target = testbed.Registry()
            try:
                out = run_engine(vendor, target, "v1", auth, a.parallel, services="big", source_prefix="bench")
            finally:
                target.stop()
            big = {"layer_bytes": gz, **out}
            print(f"  engine  big      {out['wall_s']:7.2f} s (RSS {out['rss_mb']:.0f} MB)", flush=True)
        report["big_layer"] = big
    finally:
        testbed.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    med = {t: {p: (statistics.median(v) if v else None) for p, v in ph.items()} for t, ph in raw.items()}
    med_cpu = {t: {k: (statistics.median(v) if v else None) for k, v in ph.items()} for t, ph in cpu.items()}
    report.update(
        raw=raw,
        median=med,
        cold_cpu=cpu,
        median_cold_cpu=med_cpu,
        engine_runs=engine_detail,
        engine_peak_rss_mb=max(rss) if rss else None,
    )
    print()
    print(f"Medians over {a.trials} interleaved trials (seconds, wall time of each process):")
    print(f"  {'tool':<8} {'cold':>7} {'warm':>7} {'upgrade':>7}")
    for t in tools:
        m = med[t]
        print(f"  {t:<8} {fmt_s(m['cold'])} {fmt_s(m['warm'])} {fmt_s(m['upgrade'])}")
    if any(med_cpu[t]["client"] is not None for t in tools):
        print("CPU seconds of the cold copy (medians; user + system):")
        print(f"  {'tool':<8} {'client':>7} {'target':>7} {'vendor':>7} {'total':>7}")
        for t in tools:
            c = med_cpu[t]
            if c["client"] is None:
                continue
            total = sum(v for v in c.values() if v is not None)
            print(f"  {t:<8} {fmt_s(c['client'])} {fmt_s(c['target'])} {fmt_s(c['vendor'])} {fmt_s(total)}")
    e = med["engine"]
    ratios: dict[str, float] = {}
    for other in ("skopeo", "docker"):
        if other in med and med[other]["cold"]:
            for phase in ("cold", "upgrade"):
                if e[phase] and med[other][phase]:
                    ratios[f"{phase}_vs_{other}"] = e[phase] / med[other][phase]
    report["ratios"] = ratios
    # Per trial too: the cold ratio of the engine and each other tool run back to back in one trial.
    per_trial = {
        other: [round(x / y, 3) for x, y in zip(raw["engine"]["cold"], raw[other]["cold"], strict=False)]
        for other in raw
        if other != "engine" and raw[other]["cold"]
    }
    report["cold_ratio_per_trial"] = per_trial
    print("Ratios (engine / other, lower is better):")
    for k, v in ratios.items():
        goal = GOALS.get(k.rsplit("_", 1)[-1])
        mark = "" if goal is None or not k.startswith("cold") else (" ok" if v <= goal else f" MISSES goal ≤ {goal}")
        print(f"  {k:<20} {v:5.2f}{mark}")
    for other, values in per_trial.items():
        print(f"  cold_vs_{other} per trial: {', '.join(f'{v:.2f}' for v in values)}")
    warm = e["warm"]
    if warm is not None:
        print(f"Warm re-run: {warm:.2f} s" + (" ok" if warm <= GOALS["warm_s"] else " MISSES goal ≤ 1 s"))
    if rss:
        print(f"Engine peak RSS (6 images): {max(rss):.0f} MB")
    if big:
        ok = big["rss_mb"] <= GOALS["rss_mb"]
        print(
            f"Engine peak RSS with a {big['layer_bytes'] / 1e6:.0f} MB layer: {big['rss_mb']:.0f} MB"
            + (" ok" if ok else " MISSES goal ≤ 150 MB")
        )
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
    sys.exit(130)
