"""Is this report English radiology text the parser can read?

A report in another language, or mostly codes or markup debris, has almost no word the parser knows:
parsed anyway, it would find no organ and no abnormality, and the scan would silently count as normal.
English prose is about half function words, and radiology English adds the lexicon's organ, finding,
negation and hedging words, so a real report knows well over half of its words (the development sets and
synth reports: 60% and more); a Turkish or German one knows a few percent. Reports too short to judge
(fewer than ``MIN_WORDS`` words) are let through.
"""
from __future__ import annotations

import re
from itertools import compress

from spacy.lang.en.stop_words import STOP_WORDS

from stages.common.errors import InputError
from stages.parse_reports.lexicon import Lexicon
from stages.parse_reports.tokens import TokenView

MIN_WORDS = 5
MIN_KNOWN = 0.4


class UnreadableReport(InputError):
    """The text is not English radiology text the parser can read; the message says why."""


def known_words(lexicon: Lexicon) -> frozenset[str]:
    """English function words plus every word of the lexicon (organs, findings, negation, hedging, headers)."""
    texts = [surface for entry in lexicon.findings.values() for surface in entry.surfaces]
    texts += [term.text for term in lexicon.organ_terms] + list(lexicon.section_headers) + list(lexicon.side_words)
    texts += [term for terms in (*lexicon.negation.values(), *lexicon.hedging.values()) for term in terms]
    texts += [*lexicon.predicates, *lexicon.finding_modifiers, *lexicon.abbreviations, *lexicon.word_norms]
    words = {word for text in texts for word in re.findall(r"[a-z]+", text.lower())}
    return frozenset(words | {word.lower() for word in STOP_WORDS})


def check_readable(views: list[TokenView], known: frozenset[str]) -> None:
    """Raise :class:`UnreadableReport` when too few words of a report (its Docs' token views: their letters-only
    tokens of two letters or more) are known."""
    words = [word for view in views for word in compress(view.lower, view.alpha) if len(word) > 1]
    if len(words) < MIN_WORDS:
        return
    share = sum(map(known.__contains__, words)) / len(words)
    if share < MIN_KNOWN:
        raise UnreadableReport(
            f"not read: only {share:.0%} of its {len(words)} words are English or radiology words the parser knows "
            f"(another language, or markup?); the report is left out instead of being read as normal")
