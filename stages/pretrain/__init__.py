"""``ctglip pretrain``: grounded organ-text and abnormality-text contrastive pretraining (CT-GLIP).

Python use, without the CLI::

    from stages.pretrain import make_config, run
    result = run(make_config(Path("cache"), Path("runs/tiny"), preset="tiny", encoder="cnn"))

``zeroshot`` needs only :func:`load_checkpoint` and the model's ``encode_image`` /
``encode_text`` / ``logit_scale``.
"""
from stages.pretrain.config import PretrainConfig, TrainConfig, make_config
from stages.pretrain.factory import build_model, list_presets, load_checkpoint, load_preset
from stages.pretrain.model import CTGlipModel
from stages.pretrain.train import PretrainResult, run

__all__ = ["CTGlipModel", "PretrainConfig", "PretrainResult", "TrainConfig", "build_model", "list_presets",
           "load_checkpoint", "load_preset", "make_config", "run"]
