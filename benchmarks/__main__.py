"""`make bench`: the project against a baseline, in one run, on the same loopback servers.

python -m benchmarks [--only memory,copy,large,pages,reconcile,course] [--size-mib 512]
                     [--large-mib 2048] [--objects 100000] [--repeat 5] [--videos 100]
                     [--render-seconds 20] [--large-videos 500] [--quick]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime

from benchmarks.servers import ROOT, FakeHeyGenProcess, bench_env, big_mp4, start_s3


def run(module: str, *args: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=3600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def transfer(size_mib: int, repeat: int, rows: list) -> None:
    """Each side `repeat` times, interleaved (so drift in the machine hits all sides alike);
    times are medians, memory the worst run."""
    s3 = start_s3()
    heygen = FakeHeyGenProcess()
    runs: dict[str, list[dict]] = {"pipeline": [], "original": [], "plain_upload": []}
    try:
        video = big_mp4(size_mib)
        host = f"127.0.0.1:{heygen.port}"
        env = bench_env({"AVATAR_DOWNLOAD_ALLOWED_HOSTS": host}, s3)
        for _ in range(repeat):
            for mode, results in runs.items():
                arg = str(video) if mode == "plain_upload" else heygen.rendered_url(video)
                results.append(run("benchmarks.probe", mode, arg, env=env))
    finally:
        heygen.stop()
        s3.stop()
    ours, original, plain = (
        {
            "seconds": statistics.median(r["seconds"] for r in results),
            "rss_growth_mib": max(r["rss_growth_mib"] for r in results),
        }
        for results in runs.values()
    )
    for mode, results in runs.items():
        times = ", ".join(f"{r['seconds']:.2f}" for r in results)
        print(f"{mode:14} seconds: {times}", file=sys.stderr)
    rows.append((f"memory: peak RSS growth, {size_mib} MiB video", "MiB",
                 ours["rss_growth_mib"], original["rss_growth_mib"],
                 ours["rss_growth_mib"] / original["rss_growth_mib"], "< 64 MiB"))  # fmt: skip
    rows.append(("copy: provider->storage / plain disk upload", "s",
                 ours["seconds"], plain["seconds"], ours["seconds"] / plain["seconds"],
                 "<= 1.10"))  # fmt: skip
    rows.append(("(original design copy time)", "s", original["seconds"], plain["seconds"],
                 original["seconds"] / plain["seconds"], "-"))  # fmt: skip


def large(size_mib: int, put_mib: int, repeat: int, rows: list) -> None:
    """A large video (`size_mib`, parts sized by its length) against a plain upload of the
    same bytes from disk, once each; then a video at the single-PUT threshold (`put_mib`) as
    one streamed PUT against the same in 8 MiB parts, `repeat` times each (medians; memory
    the worst run). Ratios within one run."""
    s3 = start_s3()
    heygen = FakeHeyGenProcess()
    try:
        video, at_threshold = big_mp4(size_mib), big_mp4(put_mib)
        env = bench_env({"AVATAR_DOWNLOAD_ALLOWED_HOSTS": heygen.host_port}, s3)
        ours = run("benchmarks.probe", "pipeline", heygen.rendered_url(video), env=env)
        plain = run("benchmarks.probe", "plain_upload", str(video), env=env)
        url = heygen.rendered_url(at_threshold)
        puts, parts = [], []
        for _ in range(repeat):  # interleaved; medians
            puts.append(run("benchmarks.probe", "pipeline", url, env=env))
            parts.append(run("benchmarks.probe", "pipeline", url,
                             env={**env, "SUPABASE_S3_SINGLE_PUT_MAX_BYTES": "0"}))  # fmt: skip
    finally:
        heygen.stop()
        s3.stop()
    for name, results in (("large", [ours]), ("plain", [plain]), ("put", puts), ("parts", parts)):
        print(f"{name:6} {json.dumps(results)}", file=sys.stderr)
    one_put, in_parts = (
        {
            "seconds": statistics.median(r["seconds"] for r in results),
            "rss_growth_mib": max(r["rss_growth_mib"] for r in results),
        }
        for results in (puts, parts)
    )
    rows.append((f"large: {size_mib} MiB copy / plain disk upload", "s", ours["seconds"],
                 plain["seconds"], ours["seconds"] / plain["seconds"], "<= 1.10"))  # fmt: skip
    rows.append((f"large: peak RSS growth, {size_mib} MiB copy / plain upload", "MiB",
                 ours["rss_growth_mib"], plain["rss_growth_mib"],
                 ours["rss_growth_mib"] / plain["rss_growth_mib"], "bounded"))  # fmt: skip
    rows.append((f"large: {put_mib} MiB, one streamed PUT / 8 MiB parts", "s",
                 one_put["seconds"], in_parts["seconds"],
                 one_put["seconds"] / in_parts["seconds"], "<= 1.00"))  # fmt: skip
    rows.append((f"large: peak RSS growth, {put_mib} MiB one PUT / parts", "MiB",
                 one_put["rss_growth_mib"], in_parts["rss_growth_mib"],
                 one_put["rss_growth_mib"] / in_parts["rss_growth_mib"], "bounded"))  # fmt: skip


def pages(rows: list) -> None:
    env = bench_env({})
    small = run("benchmarks.scale", "pages", "10", env=env)
    large = run("benchmarks.scale", "pages", "10000", env=env)
    for name in small:
        rows.append((f"pages: {name} SQL queries, 10k vs 10 items", "queries",
                     large[name]["queries"], small[name]["queries"],
                     large[name]["queries"] / small[name]["queries"], "= 1.00"))  # fmt: skip
        rows.append((f"pages: {name} render time, 10k vs 10 items", "s",
                     large[name]["seconds"], small[name]["seconds"],
                     large[name]["seconds"] / small[name]["seconds"], "< 1.5"))  # fmt: skip


def reconcile(objects: int, rows: list) -> None:
    s3 = start_s3()
    try:
        env = bench_env({}, s3)
        run("benchmarks.scale", "populate", str(objects), env=env)
        bare = run("benchmarks.scale", "listing", env=env)
        ours = run("benchmarks.scale", "reconcile", env=env)
    finally:
        s3.stop()
    assert ours["objects"] == bare["objects"] == objects, (ours, bare)
    rows.append((f"reconcile: {objects} objects+rows / bare listing", "s", ours["seconds"],
                 bare["seconds"], ours["seconds"] / bare["seconds"], "< 1.5"))  # fmt: skip
    rows.append((f"reconcile: peak RSS, {objects} objects", "MiB", ours["peak_rss_mib"],
                 200, ours["peak_rss_mib"] / 200, "< 200 MiB"))  # fmt: skip


def course(args: argparse.Namespace, rows: list) -> None:
    """Course scale (benchmarks/course.py): its own servers and processes; progress on stderr."""
    options = ["--quick"] if args.quick else []
    for flag, value in (("--videos", args.videos), ("--render-seconds", args.render_seconds),
                        ("--large-videos", args.large_videos)):  # fmt: skip
        if value is not None:
            options += [flag, str(value)]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.course", *options], cwd=ROOT, env=bench_env({}),
        stdout=subprocess.PIPE, text=True, timeout=3600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError("benchmarks.course failed (its log is above)")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report["details"], indent=1), file=sys.stderr)
    rows.extend(tuple(row) for row in report["rows"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="memory,pages,reconcile,course")
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--large-mib", type=int, default=2048, help="large: the video's size")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="copy/memory runs per side")
    parser.add_argument("--videos", type=int, default=None, help="course: N of a batch (100)")
    parser.add_argument("--render-seconds", type=float, default=None, help="course: R (20)")
    parser.add_argument("--large-videos", type=int, default=None, help="course: large N (500)")
    parser.add_argument("--quick", action="store_true", help="course: R=5, small N (< 2 min)")
    args = parser.parse_args()
    chosen = set(args.only.replace("copy", "memory").split(","))
    rows: list = []
    if "memory" in chosen:
        transfer(args.size_mib, args.repeat, rows)
    if "large" in chosen:
        large(args.large_mib, 256, args.repeat, rows)
    if "pages" in chosen:
        pages(rows)
    if "reconcile" in chosen:
        reconcile(args.objects, rows)
    if "course" in chosen:
        course(args, rows)
    print(f"Content Studio benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    width = max([58, *(len(row[0]) for row in rows)])
    print(f"{'benchmark':{width}} {'unit':>7} {'ours':>10} {'baseline':>10} {'ratio':>7}  target")
    for name, unit, ours, base, ratio, target in rows:
        print(f"{name:{width}} {unit:>7} {ours:10.2f} {base:10.2f} {ratio:7.2f}  {target}")


if __name__ == "__main__":
    main()
