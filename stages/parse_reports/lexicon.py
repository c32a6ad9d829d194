"""The parser's vocabulary, read from the JSON data files in ``lexicon/`` plus the shared anatomy table.

Keeping every word list as data lets users extend the parser for their institution's phrasing
without touching code; :func:`load_lexicon` turns the files into read-only typed tables.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from negspacy.termsets import termset

from stages.common import anatomy
from stages.common.anatomy import OrganUnit, organ_units
from stages.common.errors import InputError

LEXICON_DIR = Path(__file__).with_name("lexicon")
LEXICON_FILES = ("findings.json", "organ_terms.json", "negation.json", "hedging.json", "sections.json", "language.json")
NEGEX_KEYS = ("pseudo_negations", "preceding_negations", "following_negations", "termination")


class LexiconError(InputError):
    """A lexicon data file is malformed; the message names the file and entry."""


@dataclass(frozen=True)
class FindingEntry:
    """One abnormality: its surface forms and how it is normalised and grounded."""

    key: str
    phrase: str | None
    surfaces: tuple[str, ...]
    organs: tuple[str, ...]
    fallback: tuple[str, ...]
    by_organ: Mapping[str, str | None]
    heads: Mapping[str, str]
    fallback_words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    sites: frozenset[str] | None = None
    region_prior: bool = False  # a region word places it at its prior organs there ("degenerative ... bones": spine)
    outside: bool = False  # never an organ unit's finding (lymph nodes, ascites): an organ beside it is its place only

    def prior(self, words: set[str]) -> tuple[str, ...]:
        """The organs assumed when nothing in the report places the finding: a word cue in its sentence
        ("biliary" for a stone), else ``fallback``."""
        cued = [organ for word, organs in self.fallback_words.items() if word in words for organ in organs]
        return tuple(dict.fromkeys(cued)) if cued else self.fallback

    def fits(self, unit: OrganUnit) -> bool:
        """Whether the previous sentence's organ may take this finding (``sites``; None: any)."""
        return (self.sites is None or unit.name in self.sites or unit.base in self.sites) and self.phrase_for(unit) is not None

    def phrase_for(self, unit: OrganUnit) -> str | None:
        """Normalised phrase of this finding in ``unit`` (None: not an abnormality there)."""
        for key in (unit.name, unit.base):
            if key in self.by_organ:
                return self.by_organ[key]
        return self.phrase


@dataclass(frozen=True)
class OrganTerm:
    """A word for an organ: fixed ``units``, or a sided ``base`` resolved from laterality words.

    ``owners``: organs this part-word ("right lobe", "upper pole", "tail") can belong to; an owner named in
    the context wins over the default ``units``/``base``. A part-word with neither names an organ only
    through such an owner.
    """

    text: str
    units: tuple[str, ...]
    base: str | None
    weak: bool
    owners: frozenset[str] = frozenset()

    @cached_property
    def bases(self) -> frozenset[str]:
        """The side-less organs the term names (its ``base``, or its units' bases); kept, as grounding asks often."""
        units = organ_units()
        return frozenset({self.base} if self.base else {units[name].base for name in self.units})


@dataclass(frozen=True)
class Lexicon:
    findings: Mapping[str, FindingEntry]
    organ_terms: tuple[OrganTerm, ...]
    blocked_terms: tuple[str, ...]
    side_words: Mapping[str, str]
    after_side_prefixes: tuple[tuple[str, ...], ...]
    section_headers: Mapping[str, str]
    region_headings: Mapping[tuple[str, ...], tuple[str, ...]]
    report_sections: tuple[str, ...]
    predicates: frozenset[str]
    clause_breaks: frozenset[str]
    no_break_after: frozenset[str]
    abbreviations: frozenset[str]
    list_markers: frozenset[str]
    finding_modifiers: frozenset[str]
    new_topic_words: frozenset[str]
    outside_words: frozenset[str]
    negation: Mapping[str, list[str]]
    hedging: Mapping[str, list[str]]
    word_norms: Mapping[str, str]
    digest: str

    @cached_property
    def organ_texts(self) -> frozenset[str]:
        """Every organ term's text (a plural "lobes" is an organ word when "lobe" is one)."""
        return frozenset(term.text for term in self.organ_terms)

    @cached_property
    def region_starts(self) -> frozenset[str]:
        """First words of the region headings."""
        return frozenset(words[0] for words in self.region_headings)

    def is_sided_base(self, name: str) -> bool:
        """True for a side-less base of paired organs ("lung", "kidney")."""
        return f"{name}_left" in organ_units() and name not in organ_units()

    def resolve_targets(self, targets: tuple[str, ...], sides: frozenset[str]) -> tuple[str, ...]:
        """Organ units named by ``targets`` (unit names or sided bases, given the sides found)."""
        units = organ_units()
        resolved: list[str] = []
        for target in targets:
            if target in units:
                resolved.append(target)
                continue
            for side in ("left", "right"):
                if (not sides or side in sides) and f"{target}_{side}" in units:
                    resolved.append(f"{target}_{side}")
        return tuple(resolved)


def _read(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LexiconError(f"{path}: cannot read lexicon file ({error})") from error
    if not isinstance(data, dict):
        raise LexiconError(f"{path}: expected a JSON object")
    return data


def _findings(data: dict[str, Any], path: Path) -> dict[str, FindingEntry]:
    known = set(organ_units()) | {unit.base for unit in organ_units().values()}
    entries: dict[str, FindingEntry] = {}
    for key, spec in data.items():
        if key.startswith("_"):
            continue
        if not isinstance(spec, dict) or not spec.get("surfaces"):
            raise LexiconError(f"{path}: entry {key!r} needs a non-empty 'surfaces' list")
        organs = tuple(spec.get("organs", ()))
        fallback = tuple(spec.get("fallback", ()))
        by_organ = dict(spec.get("by_organ", {}))
        words = {word.lower(): tuple(names) for word, names in spec.get("fallback_words", {}).items()}
        sites = frozenset(spec["sites"]) if "sites" in spec else None
        region_prior, outside = spec.get("region_prior", False), spec.get("outside", False)
        if not isinstance(region_prior, bool) or not isinstance(outside, bool):
            raise LexiconError(f"{path}: entry {key!r}: 'region_prior' and 'outside' must be true or false")
        unknown = [name for name in (*organs, *fallback, *by_organ, *(sites or ()), *(n for v in words.values() for n in v))
                   if name not in known]
        if unknown:
            raise LexiconError(f"{path}: entry {key!r} names unknown organs {unknown}; see `ctglip organs`")
        entries[key] = FindingEntry(key=key, phrase=spec.get("phrase"), surfaces=tuple(spec["surfaces"]),
                                    organs=organs, fallback=fallback, by_organ=MappingProxyType(by_organ),
                                    heads=MappingProxyType(dict(spec.get("heads", {}))),
                                    fallback_words=MappingProxyType(words), sites=sites, region_prior=region_prior,
                                    outside=outside)
    for key, entry in entries.items():
        unknown = [name for pair in entry.heads.items() for name in pair if name not in entries]
        if unknown:
            raise LexiconError(f"{path}: entry {key!r} names unknown finding entries {unknown} in 'heads'")
    return entries


def _organ_terms(data: dict[str, Any], path: Path) -> tuple[OrganTerm, ...]:
    """Anatomy-table synonyms and unit names, overridden and extended by ``organ_terms.json``."""
    units = organ_units()
    weak = {term.lower() for term in data.get("weak", [])}
    terms: dict[str, tuple[tuple[str, ...], str | None]] = {}
    for unit in units.values():
        for text in (*unit.synonyms, unit.base.replace("_", " ")):
            terms[text.lower()] = ((), unit.base) if unit.side else ((unit.name,), None)
    for entry in data.get("terms", []):
        if "group" in entry:
            fixed = tuple(name for name, unit in units.items() if unit.group == entry["group"])
            target: tuple[tuple[str, ...], str | None] = (fixed, None)
        elif "units" in entry:
            target = (tuple(entry["units"]), None)
        else:
            target = ((), entry.get("base"))
        unknown = [name for name in target[0] if name not in units]
        if unknown or not (target[0] or target[1]):
            raise LexiconError(f"{path}: organ term entry {entry.get('terms', [])[:3]} names unknown units {unknown}")
        for text in entry.get("terms", []):
            terms[text.lower()] = target
    for level, unit in _spine_levels(data.get("spine_levels", {})).items():
        terms[level.lower()] = ((unit,), None)
    owners = _part_owners(data.get("parts", []), path)
    for text in owners:
        terms.setdefault(text, ((), None))
    return tuple(OrganTerm(text=text, units=fixed, base=base, weak=text in weak, owners=owners.get(text, frozenset()))
                 for text, (fixed, base) in terms.items())


def _part_owners(entries: list[dict[str, Any]], path: Path) -> dict[str, frozenset[str]]:
    """Part-word -> organ units or sided bases that can own it (``parts`` of ``organ_terms.json``)."""
    known = set(organ_units()) | {unit.base for unit in organ_units().values()}
    owners: dict[str, frozenset[str]] = {}
    for entry in entries:
        names = frozenset(entry.get("owners", ()))
        unknown = sorted(names - known)
        if unknown or not names:
            raise LexiconError(f"{path}: part entry {entry.get('terms', [])[:3]} needs known 'owners', got {unknown}")
        for text in entry.get("terms", []):
            owners[text.lower()] = names
    return owners


def _regions(spec: dict[str, list[str]], path: Path) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Region heading words ("upper abdomen") -> the organ units of that region (``regions`` of ``sections.json``)."""
    units = organ_units()
    regions: dict[tuple[str, ...], tuple[str, ...]] = {}
    for phrase, names in spec.items():
        if phrase.startswith("_"):
            continue
        resolved = [name for target in names for name in units if name == target or units[name].base == target]
        unknown = [target for target in names if not any(units[n].base == target or n == target for n in units)]
        if unknown or not resolved:
            raise LexiconError(f"{path}: region {phrase!r} names unknown organs {unknown}; see `ctglip organs`")
        regions[tuple(phrase.lower().split())] = tuple(dict.fromkeys(resolved))
    return regions


def _spine_levels(spec: dict[str, list[Any]]) -> dict[str, str]:
    levels: dict[str, str] = {}
    for prefix, (unit, highest) in spec.items():
        for number in range(1, int(highest) + 1):
            levels[f"{prefix}{number}"] = unit
    return levels


def _negation_termset(spec: dict[str, Any], path: Path) -> dict[str, list[str]]:
    base = termset(spec.get("base", "en_clinical")).get_patterns()
    result: dict[str, list[str]] = {}
    for key in NEGEX_KEYS:
        removed = set(spec.get("remove", {}).get(key, []))
        merged = [term for term in base[key] if term not in removed]
        merged += [term for term in spec.get("add", {}).get(key, []) if term not in merged]
        result[key] = merged
    if not all(result.values()):
        raise LexiconError(f"{path}: every NegEx list must stay non-empty")
    return result


def _hedge_termination(negation_terms: list[str], spec: dict[str, list[str]], path: Path) -> list[str]:
    """Negation termination terms minus ``remove`` (links a hedge reaches across), plus ``add``."""
    if not isinstance(spec, dict):
        raise LexiconError(f"{path}: 'termination' must be an object with 'add' and 'remove' lists")
    removed = set(spec.get("remove", []))
    return [term for term in negation_terms if term not in removed] + list(spec.get("add", []))


def plural_forms(word: str, irregular: Mapping[str, list[str]]) -> set[str]:
    """English plural forms of a lexicon word (rules plus the irregular table)."""
    forms = set(irregular.get(word, ()))
    if word.endswith("sis"):
        forms.add(word[:-2] + "es")
    elif word.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word + "es")
    elif word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    else:
        forms.add(word + "s")
    return forms


def build_word_norms(words: set[str], language: dict[str, Any]) -> dict[str, str]:
    """Variant -> canonical word: plurals and British spellings of every lexicon word."""
    irregular = language.get("irregular_plurals", {})
    stopwords = set(language.get("stopwords", []))
    distinct = set(language.get("distinct_plurals", []))
    rules = [(re.compile(pattern), replacement) for pattern, replacement in language.get("british_spellings", [])]
    norms: dict[str, str] = {}
    for word in sorted(words):
        if word in stopwords or len(word) < 3 or not word.isalpha():
            continue
        spellings = {word} | {rule.sub(replacement, word) for rule, replacement in rules if rule.search(word)}
        for spelling in spellings:
            for form in {spelling} | plural_forms(spelling, irregular):
                if form != word and form not in distinct:
                    norms.setdefault(form, word)
    for singular, plurals in irregular.items():
        for plural in plurals:
            if " " not in singular:
                norms.setdefault(plural, singular)
    return {form: root for form in norms if (root := _root(form, norms)) != form}


def _root(word: str, norms: dict[str, str]) -> str:
    """Follow variant -> canonical links to the end ("lungses" -> "lungs" -> "lung")."""
    seen = {word}
    while word in norms and norms[word] not in seen:
        word = norms[word]
        seen.add(word)
    return word


def _lexicon_words(findings: Mapping[str, FindingEntry], terms: tuple[OrganTerm, ...]) -> set[str]:
    words: set[str] = set()
    texts = [surface for entry in findings.values() for surface in entry.surfaces] + [term.text for term in terms]
    for text in texts:
        words.update(re.findall(r"[a-z']+", text.lower()))
    return words


def _digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for name in LEXICON_FILES:
        sha.update((folder / name).read_bytes())
    sha.update(Path(anatomy.__file__).with_name("anatomy_synonyms.json").read_bytes())
    return sha.hexdigest()[:16]


@lru_cache(maxsize=4)
def load_lexicon(folder: Path | None = None) -> Lexicon:
    """Read and check the lexicon files (default: the packaged ``lexicon/`` folder)."""
    folder = Path(folder) if folder else LEXICON_DIR
    findings = _findings(_read(folder, "findings.json"), folder / "findings.json")
    organ_data = _read(folder, "organ_terms.json")
    terms = _organ_terms(organ_data, folder / "organ_terms.json")
    sections = _read(folder, "sections.json")
    language = _read(folder, "language.json")
    hedging = _read(folder, "hedging.json")
    negation = _negation_termset(_read(folder, "negation.json"), folder / "negation.json")
    hedge_sets = {key: list(hedging.get(key, [])) for key in NEGEX_KEYS[:3]}
    hedge_sets["termination"] = _hedge_termination(negation["termination"], hedging.get("termination", {}),
                                                   folder / "hedging.json")
    headers = {phrase.lower(): kind for kind, phrases in sections.get("headers", {}).items() for phrase in phrases}
    side_words = {word: side for side, words in language.get("side_words", {}).items() for word in words}
    return Lexicon(
        findings=MappingProxyType(findings),
        organ_terms=terms,
        blocked_terms=tuple(organ_data.get("blocked", [])),
        side_words=MappingProxyType(side_words),
        after_side_prefixes=tuple(tuple(prefix) for prefix in language.get("after_side_prefixes", [])),
        section_headers=MappingProxyType(headers),
        region_headings=MappingProxyType(_regions(sections.get("regions", {}), folder / "sections.json")),
        report_sections=tuple(sections.get("report_sections", ("findings", "impression"))),
        predicates=frozenset(language.get("predicates", [])),
        clause_breaks=frozenset(language.get("clause_breaks", [])),
        no_break_after=frozenset(language.get("no_break_after", [])),
        abbreviations=frozenset(language.get("abbreviations", [])),
        list_markers=frozenset(language.get("list_markers", [])),
        finding_modifiers=frozenset(word.lower() for word in language.get("finding_modifiers", [])),
        new_topic_words=frozenset(word.lower() for word in language.get("new_topic_words", [])),
        outside_words=frozenset(word.lower() for word in language.get("outside_words", [])),
        negation=MappingProxyType(negation),
        hedging=MappingProxyType(hedge_sets),
        word_norms=MappingProxyType(build_word_norms(_lexicon_words(findings, terms), language)),
        digest=_digest(folder),
    )
