"""The published zero-shot evaluation protocols, so a figure means what the table beside it means.

A protocol fixes the abnormality prompts, what fills them, the threshold rule and the F1
flavour. ``ctclip`` follows CT-CLIP's released code (``run_zero_shot.py`` prompts and
``bootstrap_values.py``: 100-point threshold grid, ROC point nearest (0, 1), ``score > t``,
scikit-learn weighted F1, positive-class precision); ``fvlm`` uses fVLM's per-anatomy
prompts with the same threshold rule and weighted F1, as its evaluation copies CT-CLIP's;
``ctglip`` is this project's default (organ prompt ensembles, exact ROC threshold, F1 of
the positive class). ``--threshold`` and ``--val-fraction`` still replace the threshold rule.
"""
from __future__ import annotations

from dataclasses import dataclass

from stages.common.errors import SetupError

PROTOCOL_NAMES = ("ctglip", "ctclip", "fvlm")


@dataclass(frozen=True)
class Protocol:
    """Prompts and threshold rules of one publication's zero-shot evaluation."""

    name: str
    abnormality_positive: tuple[str, ...] | None  # None: the prompt templates (default or --prompts)
    abnormality_negative: tuple[str, ...] | None
    label_text: str  # what fills {abnormality} for a scan label: the map's "phrase" or the label "name"
    threshold: str  # "roc": exact ROC point nearest (0, 1); "roc_grid": CT-CLIP's 100-point grid, score > t
    f1: str  # "binary" or "weighted"
    reference: str

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "label_text": self.label_text, "threshold": self.threshold, "f1": self.f1,
                "reference": self.reference}


PROTOCOLS = {
    "ctglip": Protocol("ctglip", None, None, "phrase", "roc", "binary",
                       "ctglip: organ prompt ensembles ('Left lung with nodule.' vs 'Left lung without nodule.', "
                       "...), threshold at the exact ROC point nearest (0,1), F1 of the positive class"),
    "ctclip": Protocol("ctclip", ("{Abnormality} is present.",), ("{Abnormality} is not present.",), "name",
                       "roc_grid", "weighted",
                       "CT-CLIP (Hamamci et al.) released code: '{X} is present.' / '{X} is not present.', "
                       "softmax, threshold nearest (0,1) on a 100-point grid, weighted F1"),
    "fvlm": Protocol("fvlm", ("{Abnormality}.",), ("Not {abnormality}.",), "name", "roc_grid", "weighted",
                     "fVLM (Shui et al., ICLR 2025): per anatomy 'X.' / 'Not X.', softmax, CT-CLIP's threshold "
                     "rule and weighted F1"),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; unknown names list the known ones."""
    if name not in PROTOCOLS:
        raise SetupError(f"--protocol must be one of {', '.join(PROTOCOL_NAMES)}, got {name!r}")
    return PROTOCOLS[name]
