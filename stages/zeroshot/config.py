"""What ``ctglip zeroshot`` is asked to do: one frozen dataclass, every CLI option one field."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.device import check_device_name
from stages.common.errors import SetupError
from stages.common.hu_check import HU_CHECK_MODES
from stages.zeroshot.evaluate import EvaluationConfig
from stages.zeroshot.protocols import PROTOCOL_NAMES, get_protocol


@dataclass(frozen=True)
class ZeroshotConfig:
    """What ``ctglip zeroshot`` does; every CLI option maps to one field.

    Input is either ``ct_dir`` + ``masks_dir`` (raw NIfTI, preprocessed in memory with the
    checkpoint's config) or ``cache_dir``. ``threshold`` fixes the F1 threshold;
    ``validation_fraction`` picks per-abnormality thresholds on that share of scans;
    neither: the ``protocol``'s rule. ``labels`` is long (organ-level) or wide (scan-level, read
    through ``label_map``, default the shipped one).
    """

    checkpoint: Path
    output_dir: Path
    ct_dir: Path | None = None
    masks_dir: Path | None = None
    cache_dir: Path | None = None
    labels: Path | None = None
    label_map: Path | None = None
    protocol: str = "ctglip"
    abnormalities: Path | None = None
    prompts: Path | None = None
    threshold: float | None = None
    validation_fraction: float | None = None
    resamples: int = 1000
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"
    text_encoder: Path | None = None
    save_embeddings: bool = False
    overwrite: bool = False
    hu_check: str = "error"  # a CT not in HU: error (scan failed), warn, off

    def __post_init__(self) -> None:
        raw = self.ct_dir is not None or self.masks_dir is not None
        if raw == (self.cache_dir is not None):
            raise SetupError("give either --ct-dir and --masks-dir, or --cache (not both)")
        if raw and (self.ct_dir is None or self.masks_dir is None):
            raise SetupError("--ct-dir and --masks-dir go together")
        if self.threshold is not None and self.validation_fraction is not None:
            raise SetupError("give --threshold or --val-fraction, not both")
        if self.validation_fraction is not None and not 0.0 < self.validation_fraction < 1.0:
            raise SetupError(f"--val-fraction must be between 0 and 1, got {self.validation_fraction}")
        if self.hu_check not in HU_CHECK_MODES:
            raise SetupError(f"--hu-check must be one of {', '.join(HU_CHECK_MODES)}, got {self.hu_check!r}")
        if self.protocol not in PROTOCOL_NAMES:
            raise SetupError(f"--protocol must be one of {', '.join(PROTOCOL_NAMES)}, got {self.protocol!r}")
        if self.label_map is not None and self.labels is None:
            raise SetupError("--label-map maps the columns of a wide --labels CSV; give --labels too")
        if self.batch_size < 1 or self.resamples < 1:
            raise SetupError("--batch-size and --resamples must be at least 1")
        check_device_name(self.device)

    def evaluation(self) -> EvaluationConfig:
        """Threshold rule and F1 flavour: the protocol's, unless --threshold or --val-fraction is given."""
        protocol = get_protocol(self.protocol)
        common = dict(resamples=self.resamples, seed=self.seed, f1=protocol.f1)
        if self.threshold is not None:
            return EvaluationConfig("given", self.threshold, **common)
        if self.validation_fraction is not None:
            return EvaluationConfig("validation", validation_fraction=self.validation_fraction, **common)
        return EvaluationConfig(protocol.threshold, **common)
