"""``ctglip zeroshot``: zero-shot organ recognition and abnormality detection with text prompts.

Usable from Python like the CLI: ``run(ZeroshotConfig(checkpoint, output_dir, ct_dir=..., masks_dir=...))``.
"""
from stages.zeroshot.config import ZeroshotConfig
from stages.zeroshot.report import headline
from stages.zeroshot.run import run

__all__ = ["ZeroshotConfig", "headline", "run"]
