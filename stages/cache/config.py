"""Typed config of ``ctglip cache``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.cache.preprocess import WINDOW_PRESETS, PreprocessConfig
from stages.common.errors import SetupError
from stages.common.hu_check import HU_CHECK_MODES
from stages.common.shards import check_shard
from stages.common.text_encoder import DEFAULT_ENCODER_ID, LONG_TEXT_POLICY

DEFAULT_NORMAL_TEMPLATE = "{Organ} shows no significant abnormality."
# A report sentence about both lungs ("The lungs are clear.") is grounded to each lung; named by
# its unit, each lung's text differs, so left and right stay apart in the organ-text objective.
DEFAULT_ORGAN_TEXT_TEMPLATE = "{Organ}: {text}"
ABNORMALITY_TEMPLATE = "{Organ} with {phrase}."
IMAGE_DTYPES = ("uint8", "float16")
# The whole-volume text of --mode global: the report's sentences grounded to organs (findings then
# impression), the raw impression column, or the raw findings + impression columns.
GLOBAL_TEXTS = ("organ_sentences", "impression", "findings_impression")
CACHE_FORMAT_VERSION = 3  # bump when the shard layout changes, so old caches are refused, not misread


@dataclass(frozen=True)
class CacheConfig:
    """What ``ctglip cache`` does; every CLI option maps to one field."""

    ct_dir: Path
    masks_dir: Path
    reports_dir: Path
    out_dir: Path
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    text_encoder: str = DEFAULT_ENCODER_ID
    normal_template: str = DEFAULT_NORMAL_TEMPLATE
    organ_text_template: str = DEFAULT_ORGAN_TEXT_TEMPLATE
    image_dtype: str = "uint8"
    include_volume: bool = True
    global_text: str = "organ_sentences"
    reports_table: Path | None = None  # raw reports for global_text impression/findings_impression
    workers: int = 1
    overwrite: bool = False
    hu_check: str = "error"  # what to do with a CT not in HU: error, warn, off (not part of the content)
    shard: tuple[int, int] = (1, 1)  # (k, n): build every n-th scan's shard from the k-th; n = 1 also merges

    def __post_init__(self) -> None:
        if self.image_dtype not in IMAGE_DTYPES:
            raise SetupError(f"image dtype must be one of {IMAGE_DTYPES}, got {self.image_dtype!r}")
        if "{Organ}" not in self.normal_template and "{organ}" not in self.normal_template:
            raise SetupError("the normal template must contain {organ} or {Organ}")
        if "{text}" not in self.organ_text_template:
            raise SetupError("the organ text template must contain {text} (the organ's report sentences)")
        try:
            fill_template(self.organ_text_template, "liver", text="")
        except (KeyError, IndexError, ValueError) as error:
            raise SetupError(f"organ text template {self.organ_text_template!r}: only {{organ}}, {{Organ}} and "
                             f"{{text}} can be filled ({error})") from None
        if self.global_text not in GLOBAL_TEXTS:
            raise SetupError(f"global text must be one of {', '.join(GLOBAL_TEXTS)}, got {self.global_text!r}")
        if self.workers < 1:
            raise SetupError(f"workers must be >= 1, got {self.workers}")
        check_shard(self.shard, self.overwrite)
        if self.hu_check not in HU_CHECK_MODES:
            raise SetupError(f"--hu-check must be one of {', '.join(HU_CHECK_MODES)}, got {self.hu_check!r}")

    def content_config(self) -> dict[str, Any]:
        """The part that decides the cache's content; its hash keys the cache folder."""
        return {
            "format_version": CACHE_FORMAT_VERSION,
            "preprocess": self.preprocess.to_dict(),
            "text_encoder": self.text_encoder,
            "long_texts": LONG_TEXT_POLICY,
            "normal_template": self.normal_template,
            "organ_text_template": self.organ_text_template,
            "image_dtype": self.image_dtype,
            "include_volume": self.include_volume,
            "global_text": self.global_text,
        }


def parse_window(window: tuple[float, float] | None, preset: str | None) -> tuple[float, float]:
    """An explicit ``(lo, hi)`` or a preset name -> (lo, hi); fVLM's window by default."""
    if window is not None and preset is not None:
        raise SetupError("give either --window LO HI or --window-preset, not both")
    if preset is not None:
        if preset not in WINDOW_PRESETS:
            raise SetupError(f"unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS)}")
        return WINDOW_PRESETS[preset]
    return (float(window[0]), float(window[1])) if window is not None else WINDOW_PRESETS["fvlm"]


def fill_template(template: str, display_name: str, **fields: str) -> str:
    """Fill ``{organ}``/``{Organ}`` (capitalised) and extra fields of a text template."""
    return template.format(organ=display_name, Organ=display_name[:1].upper() + display_name[1:], **fields)
