"""Zero-shot prompt templates: a versioned data file, optional user overrides, filling.

Templates are data (``prompt_templates.json``), as open_clip keeps its zero-shot
templates apart from code; a ``--prompts`` YAML/JSON file replaces any of the three
ensembles, and ``--protocol ctclip|fvlm`` swaps in a publication's abnormality prompts
(which name no organ). Organ names come from the anatomy table's display names, so prompts read
"left kidney with cyst." exactly like the texts the cache stage trained on.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from stages.common.anatomy import organ_units
from stages.common.errors import InputError
from stages.zeroshot.protocols import Protocol

DEFAULT_TEMPLATES_FILE = Path(__file__).with_name("prompt_templates.json")
ENSEMBLES = ("organ", "abnormality_positive", "abnormality_negative")
_ALLOWED_FIELDS = {
    "organ": {"organ", "Organ"},
    "abnormality_positive": {"organ", "Organ", "abnormality", "Abnormality"},
    "abnormality_negative": {"organ", "Organ", "abnormality", "Abnormality"},
}


class PromptError(InputError):
    """A prompt file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class PromptTemplates:
    """The three prompt ensembles and where they came from."""

    organ: tuple[str, ...]
    abnormality_positive: tuple[str, ...]
    abnormality_negative: tuple[str, ...]
    version: str
    source: str

    def describe(self) -> dict[str, object]:
        return {"version": self.version, "source": self.source,
                **{name: list(getattr(self, name)) for name in ENSEMBLES}}


def _read_mapping(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PromptError(f"{path}: cannot read prompt file ({error})") from error
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise PromptError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                          f"({error})") from error
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping with keys {', '.join(ENSEMBLES)}")
    return data


def _checked_ensemble(path: Path, name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise PromptError(f"{path}: '{name}' must be a non-empty list of non-empty strings")
    for template in value:
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
        except ValueError as error:
            raise PromptError(f"{path}: template {template!r} in '{name}' is malformed ({error})") from error
        unknown = fields - _ALLOWED_FIELDS[name]
        if unknown:
            raise PromptError(f"{path}: template {template!r} in '{name}' uses unknown placeholder(s) "
                              f"{sorted(unknown)}; allowed: {sorted(_ALLOWED_FIELDS[name])}")
        if not fields:  # an abnormality prompt may leave the organ out, as CT-CLIP's and fVLM's do
            raise PromptError(f"{path}: template {template!r} in '{name}' does not name the organ "
                              "({organ} or {Organ})" + ("" if name == "organ" else " or the abnormality"))
    return tuple(value)


def load_templates(path: Path | None = None, protocol: Protocol | None = None) -> PromptTemplates:
    """Default templates, then a protocol's abnormality prompts, then the ensembles a user file
    gives, each replacing the one before."""
    defaults = _read_mapping(DEFAULT_TEMPLATES_FILE)
    ensembles = {name: _checked_ensemble(DEFAULT_TEMPLATES_FILE, name, defaults[name]) for name in ENSEMBLES}
    version, source = str(defaults["version"]), "default"
    if protocol is not None and protocol.abnormality_positive is not None:
        ensembles["abnormality_positive"] = protocol.abnormality_positive
        ensembles["abnormality_negative"] = protocol.abnormality_negative
        version, source = f"{version}+{protocol.name}", f"protocol {protocol.name}"
    if path is not None:
        path = Path(path)
        user = _read_mapping(path)
        unknown = set(user) - set(ENSEMBLES) - {"version"} - {k for k in user if str(k).startswith("_")}
        if unknown:
            raise PromptError(f"{path}: unknown key(s) {sorted(unknown)}; expected {', '.join(ENSEMBLES)}")
        given = [name for name in ENSEMBLES if name in user]
        if not given:
            raise PromptError(f"{path}: none of {', '.join(ENSEMBLES)} given")
        for name in given:
            ensembles[name] = _checked_ensemble(path, name, user[name])
        version, source = str(user.get("version", "custom")), str(path)
    return PromptTemplates(version=version, source=source, **ensembles)


def organ_display_name(unit: str) -> str:
    """Display name of an organ unit ("kidney_left" -> "left kidney"); unknown units read as words."""
    known = organ_units().get(unit)
    return known.display_name if known else unit.replace("_", " ")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill(template: str, unit: str, abnormality: str | None = None) -> str:
    """One prompt: the template with the organ (and abnormality) filled in."""
    organ = organ_display_name(unit)
    values = {"organ": organ, "Organ": _capitalised(organ)}
    if abnormality is not None:
        values.update(abnormality=abnormality, Abnormality=_capitalised(abnormality))
    return template.format(**values)


def organ_prompts(templates: PromptTemplates, unit: str) -> list[str]:
    """The organ-recognition ensemble for one organ unit."""
    return [fill(template, unit) for template in templates.organ]


def abnormality_prompts(templates: PromptTemplates, unit: str, abnormality: str) -> tuple[list[str], list[str]]:
    """(positive, negative) ensembles for one abnormality of one organ unit."""
    return ([fill(template, unit, abnormality) for template in templates.abnormality_positive],
            [fill(template, unit, abnormality) for template in templates.abnormality_negative])
