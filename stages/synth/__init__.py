"""``ctglip synth``: a synthetic CT + report benchmark whose truth is known.

Python use::

    from stages.synth import SynthConfig, run, generate_scan
    result = run(SynthConfig(out_dir=Path("data/synth"), n_scans=200, seed=0, workers=2))
    scan = generate_scan(SynthConfig(out_dir=Path("unused")), index=3, without=[("liver", "steatosis")])
"""
from stages.synth.config import GENERATOR_VERSION, SynthConfig
from stages.synth.generate import SynthScan, generate_scan, planned_abnormalities, scan_id_for
from stages.synth.io import SynthDataset, read_dataset
from stages.synth.labelspace import ABNORMALITIES, label_space
from stages.synth.stage import run

__all__ = ["ABNORMALITIES", "GENERATOR_VERSION", "SynthConfig", "SynthDataset", "SynthScan", "generate_scan",
           "label_space", "planned_abnormalities", "read_dataset", "run", "scan_id_for"]
