"""Is this volume a CT in Hounsfield units? Cheap statistics, one verdict, one line.

The field's most damaging data bug is a CT whose voxels are not HU: stored values that still
need RescaleSlope/RescaleIntercept (air near 0, soft tissue near 1024), values rescaled twice
(soft tissue near -1000), or not a CT at all (MR, a label mask, an 8-bit image). Every density
finding breaks silently, so every stage that reads a CT calls :func:`check_hu`.

The statistics hold for any body CT, also for a small field of view without air: body tissue
(fat -100, water 0, soft tissue 30-60 HU) dominates every CT, so a real one has a large share
of voxels in [-200, 250] HU, some negative values (fat, lung or air) and few above 400 HU.
Measured on the real TotalSegmentator example, crops of it inside the body down to 20 % per
axis and ``ctglip synth`` scans (see ``benchmarks/bench_hu_check.py``); stored, double-rescaled,
noise and mask versions of the same scan all fail at least one of them.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stages.common.errors import InputError, SetupError

HU_CHECK_MODES = ("error", "warn", "off")
SAMPLE_VOXELS = 1_000_000  # a strided subsample keeps the check at a few ms per scan
TISSUE_BAND = (-200.0, 250.0)  # fat, water, soft tissue, blood, unenhanced organs
DENSE_HU = 400.0  # above: cortical bone, contrast, metal

MIN_TISSUE_FRACTION = 0.2  # real example 0.63, crops 0.92-0.95, synth >= 0.5
MAX_DENSE_FRACTION = 0.35  # real example 0.006, bone-rich crop 0.05
MAX_LOW_PERCENTILE = -50.0  # 1st percentile: real example -1012, 20 % crop -110
MIN_SPREAD = 200.0  # 99.5th minus 0.5th percentile: a mask or an 8-bit image spans less
MIN_DISTINCT = 32  # label masks hold a handful of values
STORED_SHIFT = 1024.0  # the usual RescaleIntercept (-1024): stored = HU + 1024


class HUCheckError(InputError):
    """A volume that is not a CT in Hounsfield units; the message names the file and the fix."""


@dataclass(frozen=True)
class HUStats:
    """What the check measured; recorded in manifests so a user can see why a scan passed."""

    p01: float
    p1: float
    p50: float
    p99: float
    p995: float
    tissue_fraction: float  # share of voxels in TISSUE_BAND
    dense_fraction: float  # share above DENSE_HU
    air_fraction: float  # share in [-1100, -900]: air and inflated lung
    distinct: int  # distinct values in the subsample (capped at 1000)

    def to_dict(self) -> dict[str, float | int]:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items()}

    def short(self) -> str:
        return (f"1st/50th/99th percentile {self.p1:.0f}/{self.p50:.0f}/{self.p99:.0f}, "
                f"{self.tissue_fraction:.0%} in [-200, 250], {self.dense_fraction:.0%} above 400, "
                f"{self.air_fraction:.0%} air")


def _sample(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values).reshape(-1)
    step = max(1, flat.size // SAMPLE_VOXELS)
    sample = flat[::step].astype(np.float32, copy=False)
    return sample[np.isfinite(sample)]


def hu_stats(values: np.ndarray) -> HUStats:
    """The statistics of :func:`verdict` on a strided subsample of ``values``."""
    sample = _sample(values)
    if sample.size == 0:
        return HUStats(*(float("nan"),) * 8, distinct=0)
    p01, p1, p50, p99, p995 = (float(v) for v in np.percentile(sample, [0.5, 1, 50, 99, 99.5]))
    lo, hi = TISSUE_BAND
    return HUStats(
        p01=p01, p1=p1, p50=p50, p99=p99, p995=p995,
        tissue_fraction=float(np.mean((sample >= lo) & (sample <= hi))),
        dense_fraction=float(np.mean(sample > DENSE_HU)),
        air_fraction=float(np.mean((sample >= -1100) & (sample <= -900))),
        distinct=int(min(np.unique(sample[:200_000]).size, 1000)),
    )


def problems(stats: HUStats) -> list[str]:
    """Which HU expectations ``stats`` break (empty list = looks like a CT in HU)."""
    found = []
    if stats.distinct < MIN_DISTINCT:
        found.append(f"only {stats.distinct} distinct values (a label mask?)")
    if not stats.p995 - stats.p01 >= MIN_SPREAD:
        found.append(f"values span only {stats.p01:.4g}..{stats.p995:.4g}")
    if not stats.tissue_fraction >= MIN_TISSUE_FRACTION:
        found.append(f"{stats.tissue_fraction:.0%} of voxels in the soft-tissue band [-200, 250] HU "
                     f"(a CT has >= {MIN_TISSUE_FRACTION:.0%})")
    if not stats.dense_fraction <= MAX_DENSE_FRACTION:
        found.append(f"{stats.dense_fraction:.0%} above {DENSE_HU:.0f} HU (a CT has <= {MAX_DENSE_FRACTION:.0%})")
    if not stats.p1 <= MAX_LOW_PERCENTILE:
        found.append(f"1st percentile {stats.p1:.4g} (a CT has fat, lung or air below {MAX_LOW_PERCENTILE:.0f} HU)")
    return found


def looks_like_hu(values: np.ndarray) -> bool:
    return not problems(hu_stats(values))


def diagnosis(values: np.ndarray) -> str:
    """The likeliest cause of a failed check, for the error message."""
    sample = _sample(values)
    if not problems(hu_stats(sample - STORED_SHIFT)):
        return "looks like stored values (air near 0, soft tissue near 1024): RescaleIntercept not applied"
    if not problems(hu_stats(sample + STORED_SHIFT)):
        return "looks rescaled twice (soft tissue near -1000): RescaleIntercept applied to values already in HU"
    return "does not look like a CT in HU (MR, a mask, an image, or an unusual rescale)"


def check_hu(values: np.ndarray, path: Path | str, mode: str = "error") -> HUStats | None:
    """Measure ``values`` and refuse (``error``), warn (``warn``) or skip (``off``) a non-HU volume."""
    if mode not in HU_CHECK_MODES:
        raise SetupError(f"--hu-check must be one of {', '.join(HU_CHECK_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    stats = hu_stats(values)
    found = problems(stats)
    if found:
        message = (f"{path}: not a CT in Hounsfield units: {'; '.join(found)}; {diagnosis(values)}. "
                   "Convert it with `ctglip ingest SRC -o CT_DIR --metadata METADATA.csv` (RescaleSlope/"
                   "RescaleIntercept per volume)")
        if mode == "error":
            raise HUCheckError(f"{message}, or pass --hu-check warn if you know it is right")
        warnings.warn(f"{message}; used anyway (--hu-check warn)", stacklevel=2)
    return stats
