"""Pipeline component ``ctglip_report_terms``: organ words, laterality words and abnormality phrases.

One ``PhraseMatcher`` on token norms (so plurals and British spellings match) -> ``doc.spans["organs"]``,
``["sides"]``, ``["findings"]``; a describing finding and the one it describes become one ("hypodense" +
"focal lesion", see ``heads`` in ``findings.json``).
"""
from __future__ import annotations

from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.tokens import token_view

MODIFIER_WINDOW = 8
COORDINATORS = {"and", "or", "/"}


class ReportTerms:
    """Organ, laterality and abnormality phrases, matched on token norms with one PhraseMatcher."""

    def __init__(self, nlp: Language, lexicon: Lexicon):
        self.lexicon = lexicon
        for variant, canonical in lexicon.word_norms.items():
            for form in {variant, variant.capitalize(), variant.upper()}:
                nlp.vocab[form].norm_ = canonical
        self.matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        self.kinds: dict[int, tuple[str, str]] = {}
        for index, term in enumerate(lexicon.organ_terms):
            self._add("ORGAN", str(index), [term.text], nlp)
        for key, entry in lexicon.findings.items():
            self._add("FINDING", key, entry.surfaces, nlp)
        for word, side in lexicon.side_words.items():
            self._add("SIDE", side, [word], nlp)
        self._add("BLOCKED", "", lexicon.blocked_terms, nlp)

    def _add(self, kind: str, payload: str, texts: tuple[str, ...] | list[str], nlp: Language) -> None:
        key = f"{kind}:{payload}"
        patterns = []
        for text in texts:
            variants = {text}
            if "-" in text:
                variants |= {text.replace("-", " "), text.replace("-", "")}
            patterns += [nlp.make_doc(variant) for variant in variants]
        self.matcher.add(key, patterns)
        self.kinds[nlp.vocab.strings[key]] = (kind, payload)

    def __call__(self, doc: Doc) -> Doc:
        organs, findings, sides, blocked = [], [], [], []
        for match_id, start, end in self.matcher(doc):
            kind, payload = self.kinds[match_id]
            if kind == "ORGAN":
                organs.append(Span(doc, start, end, label="ORGAN", kb_id=payload))
            elif kind == "FINDING":
                findings.append(Span(doc, start, end, label="FINDING", kb_id=payload))
            elif kind == "SIDE":
                sides.append(Span(doc, start, end, label=payload))
            else:
                blocked.append(Span(doc, start, end, label="BLOCKED"))
        findings = filter_spans(findings)
        covered = {i for span in findings for i in range(span.start, span.end)}
        organs = [span for span in filter_spans(organs + blocked)
                  if span.label_ == "ORGAN" and not covered.issuperset(range(span.start, span.end))]
        organ_tokens = {i for span in organs for i in range(span.start, span.end)}
        sides = [span for span in sides if span.start not in organ_tokens and span.start not in covered]
        word_tokens = organ_tokens | {i for span in sides for i in range(span.start, span.end)}
        doc.spans["findings"] = self._join_described(doc, findings, word_tokens)
        doc.spans["organs"] = organs
        doc.spans["sides"] = sides
        return doc

    def _join_described(self, doc: Doc, findings: list[Span], word_tokens: set[int]) -> list[Span]:
        """One finding for a describing finding and the finding it describes ("hypodense" + "focal lesion").

        Only modifiers, sizes, side and organ words may stand between them ("hypodense right renal lesion");
        the organ and side words keep grounding the joined finding.
        """
        entries = self.lexicon.findings
        joined: list[Span] = []
        index = 0
        while index < len(findings):
            span = findings[index]
            following = findings[index + 1] if index + 1 < len(findings) else None
            whole = entries[span.kb_id_].heads.get(following.kb_id_) if following is not None else None
            if whole and following.start - span.end <= MODIFIER_WINDOW and self._modifiers_only(
                    doc, span.end, following.start, word_tokens):
                joined.append(Span(doc, span.start, following.end, label="FINDING", kb_id=whole))
                index += 2
                continue
            joined.append(span)
            index += 1
        return joined

    def _modifiers_only(self, doc: Doc, start: int, end: int, word_tokens: set[int]) -> bool:
        """Modifiers, numbers, organ and side words, and "and"/"or" between two of the latter ("hepatic and renal")."""
        tokens = token_view(doc)
        modifiers = self.lexicon.finding_modifiers
        return all(i in word_tokens or tokens.like_num[i] or tokens.lower[i] in modifiers
                   or (tokens.lower[i] in COORDINATORS and i - 1 in word_tokens and i + 1 in word_tokens)
                   for i in range(start, end))


@Language.factory("ctglip_report_terms", default_config={"lexicon_dir": ""})
def make_report_terms(nlp: Language, name: str, *, lexicon_dir: str) -> ReportTerms:
    return ReportTerms(nlp, load_lexicon(Path(lexicon_dir) if lexicon_dir else None))
