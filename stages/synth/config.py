"""Typed config of ``ctglip synth``; every CLI option maps to one field."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import SetupError

GENERATOR_VERSION = "1"
LAYOUTS = ("ctglip", "ctrate")  # ctrate: also the CT-RATE-shaped folder of stages/synth/ctrate.py


@dataclass(frozen=True)
class SynthConfig:
    """How many scans to generate and how they look.

    ``prevalence`` is the probability that an organ unit of the label space is abnormal;
    ``omit_fraction`` the probability that a reader leaves a true finding out of the report.
    The same fields (``workers``, ``overwrite`` and ``preview`` aside) give byte-identical files.
    """

    out_dir: Path
    n_scans: int = 20
    seed: int = 0
    shape: tuple[int, int, int] = (96, 96, 96)
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    prevalence: float = 0.25
    omit_fraction: float = 0.1
    workers: int = 1
    overwrite: bool = False
    preview: bool = True
    layout: str = "ctglip"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        if self.n_scans < 1:
            raise SetupError(f"--n-scans must be at least 1, got {self.n_scans}")
        if self.seed < 0:
            raise SetupError(f"--seed must be a non-negative integer, got {self.seed}")
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise SetupError(f"--shape needs three sizes of at least 16 voxels, got {self.shape}")
        if len(self.spacing) != 3 or not all(math.isfinite(s) and 0.3 <= s <= 10.0 for s in self.spacing):
            raise SetupError(f"--spacing needs three sizes between 0.3 and 10 mm, got {self.spacing}")
        field_of_view = [n * s for n, s in zip(self.shape, self.spacing)]
        if min(field_of_view[:2]) < 200.0 or field_of_view[2] < 150.0:
            raise SetupError(f"field of view {[round(f) for f in field_of_view]} mm is too small for a chest-abdomen "
                             "scan: shape x spacing must reach at least 200 x 200 x 150 mm")
        for name in ("prevalence", "omit_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SetupError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.layout not in LAYOUTS:
            raise SetupError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.workers < 1:
            raise SetupError(f"--workers must be at least 1, got {self.workers}")

    def content_fields(self) -> dict[str, object]:
        """The fields that decide the generated files (not where or how fast)."""
        fields = {"generator_version": GENERATOR_VERSION, "seed": self.seed, "shape": list(self.shape),
                  "spacing": list(self.spacing), "prevalence": self.prevalence, "omit_fraction": self.omit_fraction}
        return {**fields, "layout": self.layout} if self.layout != "ctglip" else fields


def parse_triple(text: str, option: str, kind: type) -> tuple:
    """``"96,96,80"`` -> ``(96, 96, 80)``; a single number is used for all three axes."""
    parts = [part.strip() for part in str(text).replace("x", ",").split(",") if part.strip()]
    try:
        values = tuple(kind(part) for part in parts)
    except ValueError as error:
        raise SetupError(f"{option} {text!r}: expected three numbers such as 96,96,96") from error
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise SetupError(f"{option} {text!r}: expected three numbers such as 96,96,96")
    return values
