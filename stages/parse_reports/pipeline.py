"""The spaCy 3.8 pipeline that reads a radiology report.

``spacy.blank("en")`` tokenizer, then registered components (``Language.factory`` with a
``default_config``, as spaCy's own rule components):

1. ``ctglip_report_sections`` - FINDINGS / IMPRESSION / TECHNIQUE / HISTORY ... headers -> ``doc.spans["sections"]``
2. ``ctglip_report_terms`` - organ words, laterality words, abnormality phrases (one ``PhraseMatcher`` on
   token norms, so plurals and British spellings match) -> ``doc.spans["organs"]``, ``["sides"]``, ``["findings"]``;
   a describing finding and the one it describes become one ("hypodense" + "focal lesion", see ``heads``)
3. ``ctglip_report_segmenter`` - sentences that survive radiology style, then clauses where one sentence
   talks about several organs; clause starts become ``is_sent_start`` so NegEx scopes stop there
4. ``ctglip_negex`` (negspacy's NegEx, see :mod:`scoped_negex`; radiology-extended termset) over
   ``doc.spans["findings"]`` -> ``span._.negex``
5. the same with the hedging termset -> ``span._.hedged``
6. ``ctglip_report_grounding`` - organ units per clause (see :mod:`grounding`) -> ``doc._.report_clauses``
"""
from __future__ import annotations

from pathlib import Path

import numpy
import spacy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from stages.parse_reports.grounding import ground_doc
from stages.parse_reports.lexicon import Lexicon, load_lexicon
from stages.parse_reports.scoped_negex import make_scoped_negex  # noqa: F401  (registers "ctglip_negex")
from stages.parse_reports.tokens import TokenView, token_view

INITIAL_SECTION = "ctglip_initial_section"
COLUMN_TEXT = "ctglip_column_text"
COMPONENTS = ("ctglip_report_sections", "ctglip_report_terms", "ctglip_report_segmenter", "negation", "hedging",
              "ctglip_report_grounding")
SENTENCE_END = {".", "!", "?", ";"}
MODIFIER_WINDOW = 8
COORDINATORS = {"and", "or", "/"}
HEADER_SUFFIXES = {":", "-", "–"}

if not Doc.has_extension("report_clauses"):
    Doc.set_extension("report_clauses", default=None)


def _lexicon(lexicon_dir: str) -> Lexicon:
    return load_lexicon(Path(lexicon_dir) if lexicon_dir else None)


def _line_start(doc: Doc, index: int) -> bool:
    if index == 0:
        return True
    previous = doc[index - 1]
    return ("\n" in previous.text and previous.is_space) or previous.text in SENTENCE_END


class ReportSections:
    """Finds section headers at line starts ("IMPRESSION:", a lone "FINDINGS" line).

    In a FINDINGS or IMPRESSION column (``doc.user_data[COLUMN_TEXT]``) the column names the section:
    an inline "History: ..." there covers its own sentence only, then the column's section resumes.
    """

    def __init__(self, nlp: Language, lexicon: Lexicon):
        self.report_sections = lexicon.report_sections
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for phrase, kind in lexicon.section_headers.items():
            self.matcher.add(kind, [nlp.make_doc(phrase)])

    def __call__(self, doc: Doc) -> Doc:
        initial = doc.user_data.get(INITIAL_SECTION, "findings")
        headers: list[Span] = []
        for match_id, start, end in self.matcher(doc):
            if not _line_start(doc, start):
                continue
            if end < len(doc) and doc[end].text in HEADER_SUFFIXES:
                headers.append(Span(doc, start, end + 1, label=match_id))
            elif end == len(doc) or (doc[end].is_space and "\n" in doc[end].text):
                if doc[start:end].text.isupper():
                    headers.append(Span(doc, start, end, label=match_id))
        headers = filter_spans(headers)
        column_text = doc.user_data.get(COLUMN_TEXT, False)
        sections: list[Span] = []
        cursor, kind = 0, initial
        for index, header in enumerate(headers):
            if header.start > cursor:
                sections.append(Span(doc, cursor, header.start, label=kind))
            cursor, kind = header.end, header.label_
            if column_text and kind not in self.report_sections:
                limit = headers[index + 1].start if index + 1 < len(headers) else len(doc)
                stop = _first_sentence_end(doc, cursor, limit)
                sections.append(Span(doc, cursor, stop, label=kind))
                cursor, kind = stop, initial
        if cursor < len(doc):
            sections.append(Span(doc, cursor, len(doc), label=kind))
        doc.spans["section_headers"] = headers
        doc.spans["sections"] = sections
        return doc


def _first_sentence_end(doc: Doc, start: int, limit: int) -> int:
    for index in range(start, limit):
        token = doc[index]
        if token.text in {".", "!", "?"} or (token.is_space and "\n" in token.text and index > start):
            return index + 1
    return limit


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


class ReportSegmenter:
    """Sentences, then clauses; clause starts become the sentence starts NegEx scopes by."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

    def _sentence_starts(self, doc: Doc) -> list[int]:
        tokens = token_view(doc)
        starts = {0}
        for header in doc.spans["section_headers"]:
            starts.update((header.start, header.end))
        sentence_begin, count = 0, len(tokens.text)
        for index, text in enumerate(tokens.text):
            if index in starts:
                sentence_begin = index
            after = index + 1
            if after >= count:
                break
            if tokens.space[index] and "\n" in text:
                if self._breaks_line(tokens, index, after):
                    starts.add(after)
            elif text in SENTENCE_END and self._ends_sentence(tokens, index, sentence_begin):
                starts.add(after)
                sentence_begin = after
        return sorted(start for start in starts if start < count)

    def _breaks_line(self, tokens: TokenView, index: int, after: int) -> bool:
        following = tokens.text[after]
        return (tokens.text[index].count("\n") > 1 or index == 0 or tokens.text[index - 1] in SENTENCE_END | {":"}
                or following[:1].isupper() or following[:1].isdigit() or following in self.lexicon.list_markers)

    def _ends_sentence(self, tokens: TokenView, index: int, sentence_begin: int) -> bool:
        following = tokens.text[index + 1]
        following_lower = following[:1].islower() or following[:1].isdigit()
        if tokens.text[index] == "?" and following_lower:
            return False
        if tokens.text[index] == "." and index > 0:
            if tokens.like_num[index - 1] and len(tokens.text[index - 1]) <= 2 and index - 1 == sentence_begin:
                return False
            if tokens.lower[index - 1] in self.lexicon.abbreviations and following_lower:
                return False
        return True

    def __call__(self, doc: Doc) -> Doc:
        starts = self._sentence_starts(doc)
        bounds = list(zip(starts, starts[1:] + [len(doc)]))
        header_tokens = {i for span in doc.spans["section_headers"] for i in range(span.start, span.end)}
        section_of = {}
        for section in doc.spans["sections"]:
            section_of.update(dict.fromkeys(range(section.start, section.end), section.label_))
        features = _TokenFeatures(doc, self.lexicon)
        tokens = features.tokens
        sentences, clauses = [], []
        for start, end in bounds:
            start = _skip_markers(tokens, start, end, header_tokens, self.lexicon.list_markers)
            while end > start and tokens.space[end - 1]:
                end -= 1
            if start >= end or not any(tokens.alpha[i] for i in range(start, end)):
                continue
            label = section_of.get(start, "findings")
            sentences.append(Span(doc, start, end, label=label))
            clauses += [Span(doc, s, e, label=label) for s, e in features.split_clauses(start, end)]
        if len(doc):
            sent_starts = numpy.full((len(doc), 1), -1, dtype="int64")
            sent_starts[[0, *starts, *(clause.start for clause in clauses)]] = 1
            doc.from_array([SENT_START], sent_starts.astype("uint64"))
        doc.spans["sentences"] = sentences
        doc.spans["clauses"] = clauses
        return doc


def _skip_markers(tokens: TokenView, start: int, end: int, header_tokens: set[int], markers: frozenset[str]) -> int:
    """First token of a sentence after headers, whitespace and list markers ("1.", "2)", "-")."""
    text = tokens.text
    while start < end and (start in header_tokens or tokens.space[start] or text[start] in markers
                           or text[start] in {".", ")", ":"}
                           or (tokens.like_num[start] and start + 1 < end and text[start + 1] in {".", ")"})):
        start += 1
    return start


class _TokenFeatures:
    """Per-token facts the clause splitter needs: organ references, predicates, findings."""

    def __init__(self, doc: Doc, lexicon: Lexicon):
        self.lexicon = lexicon
        self.tokens = token_view(doc)
        self.organ_ref = set()
        for span in doc.spans["organs"]:
            self.organ_ref.add(span.start)
        for span in doc.spans["sides"]:
            self.organ_ref.add(span.start)
        self.finding = set()
        in_finding = set()
        for span in doc.spans["findings"]:
            self.finding.add(span.start)
            in_finding.update(range(span.start, span.end))
            if lexicon.findings[span.kb_id_].organs:
                self.organ_ref.add(span.start)
        self.predicate = {i for i, word in enumerate(self.tokens.lower)
                          if word in lexicon.predicates and i not in in_finding}

    def _has(self, found: set[int], start: int, end: int) -> bool:
        return any(i in found for i in range(start, end))

    def _complete_left(self, start: int, end: int) -> bool:
        return self._has(self.organ_ref, start, end) and (
            self._has(self.predicate, start, end) or self._has(self.finding, start, end))

    def _complete_right(self, start: int, end: int) -> bool:
        """A statement of its own: names an organ and has a predicate, and does not go on a list ("B or C is seen")."""
        predicates = [i for i in range(start, end) if i in self.predicate]
        if not predicates or not self._has(self.organ_ref, start, end):
            return False
        return not any(self.tokens.lower[i] in self.lexicon.no_break_after for i in range(start, predicates[0]))

    def split_clauses(self, start: int, end: int) -> list[tuple[int, int]]:
        """Split a sentence where each side is a statement about an organ of its own."""
        cuts = [i for i in range(start + 1, end - 1) if self.tokens.lower[i] in self.lexicon.clause_breaks]
        if not cuts:
            return [(start, end)]
        pieces = [(a, b) for a, b in zip([start] + cuts, cuts + [end]) if a < b]
        forward: list[tuple[int, int]] = []
        carry: int | None = None
        for a, b in pieces:
            a = carry if carry is not None else a
            carry = None
            names_organ_only = (self._has(self.organ_ref, a, b) and not self._has(self.predicate, a, b)
                                and not self._has(self.finding, a, b))
            if names_organ_only and b < end:
                carry = a
                continue
            forward.append((a, b))
        clauses = [forward[0]]
        for a, b in forward[1:]:
            last_a, last_b = clauses[-1]
            if self._complete_left(last_a, last_b) and self._complete_right(a, b):
                clauses.append((a, b))
            else:
                clauses[-1] = (last_a, b)
        return clauses


class ReportGrounding:
    """Grounds every clause of the report sections to organ units (see :func:`grounding.ground_doc`)."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

    def __call__(self, doc: Doc) -> Doc:
        doc._.report_clauses = ground_doc(doc, self.lexicon)
        return doc


@Language.factory("ctglip_report_sections", default_config={"lexicon_dir": ""})
def make_report_sections(nlp: Language, name: str, *, lexicon_dir: str) -> ReportSections:
    return ReportSections(nlp, _lexicon(lexicon_dir))


@Language.factory("ctglip_report_terms", default_config={"lexicon_dir": ""})
def make_report_terms(nlp: Language, name: str, *, lexicon_dir: str) -> ReportTerms:
    return ReportTerms(nlp, _lexicon(lexicon_dir))


@Language.factory("ctglip_report_segmenter", default_config={"lexicon_dir": ""})
def make_report_segmenter(nlp: Language, name: str, *, lexicon_dir: str) -> ReportSegmenter:
    return ReportSegmenter(_lexicon(lexicon_dir))


@Language.factory("ctglip_report_grounding", default_config={"lexicon_dir": ""})
def make_report_grounding(nlp: Language, name: str, *, lexicon_dir: str) -> ReportGrounding:
    return ReportGrounding(_lexicon(lexicon_dir))


def build_pipeline(lexicon_dir: Path | None = None) -> Language:
    """A fresh report pipeline; every component is rebuilt from ``nlp.config`` plus these factories."""
    lexicon = load_lexicon(lexicon_dir)
    config = {"lexicon_dir": str(lexicon_dir) if lexicon_dir else ""}
    nlp = spacy.blank("en")
    nlp.max_length = 2_000_000
    nlp.add_pipe("ctglip_report_sections", config=config)
    nlp.add_pipe("ctglip_report_terms", config=config)
    nlp.add_pipe("ctglip_report_segmenter", config=config)
    nlp.add_pipe("ctglip_negex", name="negation", config={"neg_termset": dict(lexicon.negation)})
    nlp.add_pipe("ctglip_negex", name="hedging", config={"neg_termset": dict(lexicon.hedging),
                                                          "extension_name": "hedged"})
    nlp.add_pipe("ctglip_report_grounding", config=config)
    return nlp
