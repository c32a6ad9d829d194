"""Speed of ``ctglip synth`` (target: 200 scans in under 2 minutes with 2 workers) and lesion sparsity.

Baseline, measured in the same run: one worker on ``--baseline-scans`` scans; the ratio is the
throughput of the parallel run over it. Sparsity: for a few scans generated with and without each
focal finding, the share of the volume and of the organ that the finding changes (>= 30 HU).

    python benchmarks/bench_synth.py                       # 200 scans, 2 workers
    python benchmarks/bench_synth.py --n-scans 40 --workers 2 --baseline-scans 10
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from stages.common.anatomy import organ_units
from stages.synth import SynthConfig, generate_scan, run

FOCAL = ("nodule", "consolidation", "hypodense lesion", "cyst", "stone", "calcification", "gallstone")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished workers (independent of other load on the machine)."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def timed_run(out: Path, n_scans: int, workers: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``run``."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = run(SynthConfig(out_dir=out, n_scans=n_scans, seed=0, workers=workers))
    seconds = time.perf_counter() - started
    if result.failed:
        raise SystemExit(f"{len(result.failed)} scans failed: {result.failed[0].error}")
    return seconds, _cpu_seconds() - cpu


def sparsity(n_scans: int) -> dict[str, list[tuple[float, float]]]:
    """Per focal finding type: (share of the volume, share of its organ) changed by >= 30 HU."""
    config = SynthConfig(out_dir=Path("unused"), seed=99, prevalence=0.6)
    units = organ_units()
    shares: dict[str, list[tuple[float, float]]] = {kind: [] for kind in FOCAL}
    for index in range(n_scans):
        full = generate_scan(config, index)
        for finding in full.findings:
            if finding.abnormality not in FOCAL:
                continue
            without = generate_scan(config, index, without=[(finding.organ, finding.abnormality)])
            changed = np.abs(full.ct.astype(np.int32) - without.ct) >= 30
            organ = np.isin(without.mask, units[finding.organ].label_ids)
            shares[finding.abnormality].append((changed.mean(), changed[organ].sum() / max(organ.sum(), 1)))
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scans", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-scans", type=int, default=20)
    parser.add_argument("--sparsity-scans", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        baseline, baseline_cpu = timed_run(Path(folder) / "baseline", args.baseline_scans, workers=1)
        parallel, parallel_cpu = timed_run(Path(folder) / "parallel", args.n_scans, workers=args.workers)
    base_rate, rate = args.baseline_scans / baseline, args.n_scans / parallel
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other jobs slow wall times)")
    print(f"baseline  1 worker : {args.baseline_scans:4d} scans in {baseline:6.1f} s  ({base_rate:.2f} scans/s, "
          f"{baseline_cpu / args.baseline_scans:.2f} CPU-s/scan)")
    print(f"synth {args.workers:2d} workers : {args.n_scans:4d} scans in {parallel:6.1f} s  ({rate:.2f} scans/s, "
          f"{parallel_cpu / args.n_scans:.2f} CPU-s/scan)")
    print(f"ratio (throughput vs baseline): {rate / base_rate:.2f}x")
    verdict = "met" if parallel < 120.0 * args.n_scans / 200 else "MISSED"
    print(f"target 200 scans < 120 s (scaled to {args.n_scans}): {verdict}; "
          f"CPU work alone on {args.workers} free cores: {parallel_cpu / args.workers:.0f} s")
    print("\nfocal lesion sparsity (changed >= 30 HU): share of volume | share of organ")
    for kind, values in sparsity(args.sparsity_scans).items():
        if values:
            volume, organ = np.mean(values, axis=0)
            print(f"  {kind:18s} n={len(values):2d}  {100 * volume:6.3f} % | {100 * organ:6.2f} %")


if __name__ == "__main__":
    main()
