"""Start-up time and memory of the ``ctglip`` command, beside ``python -c pass``.

Each command runs ``--repeats`` times in a fresh process; the median wall time and the
peak resident memory are printed, with the ratio to the bare interpreter measured in the
same run. The last row imports every stage, which is what ``ctglip --help`` cost before
the commands imported their stages lazily. Target: ``ctglip --help`` under 1 s.

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --repeats 10
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from ctglip_cli.main import app; sys.argv[0] = 'ctglip'; app()"]
ALL_STAGES = ("import stages.segment, stages.cache, stages.pretrain, stages.zeroshot, stages.parse_reports, "
              "stages.synth")


def measure(command: list[str], repeats: int) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MiB) of ``command`` over ``repeats`` fresh processes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    walls, peaks = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        peaks.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} exited {os.waitstatus_to_exitcode(status)}")
    return statistics.median(walls), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [("python -c pass", [sys.executable, "-c", "pass"]),
            ("ctglip --help", [*CLI, "--help"]),
            ("ctglip segment --help", [*CLI, "segment", "--help"]),
            ("ctglip organs", [*CLI, "organs"]),
            ("import every stage (the old --help)", [sys.executable, "-c", ALL_STAGES])]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; median of {args.repeats} runs; "
          f"console script {shutil.which('ctglip') or 'not on PATH'} runs the same code")
    print(f"{'command':38s} {'seconds':>8s} {'vs python':>10s} {'peak MiB':>9s}")
    baseline = None
    figures = {}
    for name, command in rows:
        seconds, peak = measure(command, args.repeats)
        baseline = baseline or seconds
        figures[name] = seconds
        print(f"{name:38s} {seconds:8.3f} {seconds / baseline:9.1f}x {peak:9.0f}")
    help_s, old_s = figures["ctglip --help"], figures["import every stage (the old --help)"]
    print(f"ratio: ctglip --help is {old_s / help_s:.1f}x faster than importing every stage; "
          f"target --help < 1 s: {'met' if help_s < 1.0 else 'NOT met'} ({help_s:.2f} s)")


if __name__ == "__main__":
    main()
