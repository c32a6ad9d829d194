"""The lexicon's grounding facts compiled once into plain lookup tables.

Grounding asks the same questions about organ units and finding entries for every clause of every
report: a unit's side and base, a finding's phrase in a unit, which units a sided organ resolves to,
whether the previous sentence's organ may take a finding. Answering them from the lexicon's objects
costs a chain of small calls each time; these tables answer them with one dict lookup. They hold only
lexicon facts (nothing from any report), built when the grounding component is made.
"""
from __future__ import annotations

from stages.common.anatomy import organ_units
from stages.parse_reports.lexicon import Lexicon


class GroundingRules:
    """Per-lexicon tables: organ terms by span value, unit sides and bases, finding phrases per unit, side-word
    prefixes by first word, sided-organ resolution."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        self.organ_term = {str(index): term for index, term in enumerate(lexicon.organ_terms)}  # the terms' span value
        units = organ_units()
        self.side = {name: unit.side for name, unit in units.items()}
        self.base = {name: unit.base for name, unit in units.items()}
        self.phrase = {key: {name: entry.phrase_for(unit) for name, unit in units.items()}
                       for key, entry in lexicon.findings.items()}
        self.fits = {key: frozenset(name for name, unit in units.items() if entry.fits(unit))
                     for key, entry in lexicon.findings.items()}
        self.after_side_prefixes: dict[str, list[tuple[str, ...]]] = {}  # first word -> prefixes, in the lexicon's order
        for prefix in lexicon.after_side_prefixes:
            self.after_side_prefixes.setdefault(prefix[0], []).append(prefix)
        self._sided: dict[str, bool] = {}
        self._resolved: dict[tuple[tuple[str, ...], frozenset[str]], tuple[str, ...]] = {}

    def is_sided_base(self, name: str) -> bool:
        """:meth:`Lexicon.is_sided_base`, looked up."""
        sided = self._sided.get(name)
        if sided is None:
            sided = self._sided[name] = self.lexicon.is_sided_base(name)
        return sided

    def resolve(self, targets: tuple[str, ...], sides: frozenset[str]) -> tuple[str, ...]:
        """:meth:`Lexicon.resolve_targets`, looked up (a lexicon has few organ names and four side sets)."""
        key = (targets, sides)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = self.lexicon.resolve_targets(targets, sides)
        return resolved
