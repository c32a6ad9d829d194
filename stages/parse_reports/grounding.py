"""Which organ units each clause of a report describes, and which abnormalities it states there.

Rules, in the order they apply inside one clause:

1. Organ words become mentions. A *weak* word ("lobe", "lower pole") is dropped when a different
   organ claims it ("right lobe of the liver"). Sided organs take their side from laterality words
   before them ("left-sided pleural", "both lungs"), after them ("on the right", "bilaterally") or
   from the same organ named right after ("lower lobe of the left lung"); no side word means both.
   A part-word ("right lobe", "upper pole", "tail") belongs to an organ that can own it named in the
   clause (nearest first), in the sentence before it or by the "Organ:" heading ("Liver: lesion in the
   right lobe"); else it keeps its default organ ("lobe" -> lung) or, having none, names nothing.
2. A generic mention next to a narrower one of the same organ is dropped ("L1 vertebral body",
   "right upper lobe of the lung"). Mentions joined by "and", "," or "of" form one group.
3. A finding with an implied organ ("emphysema", "cardiomegaly", "hiatal hernia") belongs to it, as named
   in its own part of a list ("right lower lobe consolidation and left lower lobe atelectasis"); other
   findings belong to the nearest group (commas count as distance; a region word such as "bone structures"
   gives a ``region_prior`` finding its prior organs there), else to the organs implied by other findings in
   the clause, the current "Organ:" heading, or the finding's fallback organ (not in a sentence about the
   breast or skin, nor outside a ruling region heading). An ``outside`` finding (lymph nodes, ascites) is
   no organ's.
4. A clause naming only a side ("..., the right is normal"; "...; the left is thickened") refers to the
   organ of the clause before.
5. A clause stating no finding that opens with "in" frames its sentence: it describes only the organs the
   rest of the sentence names.

A line that is only a heading ("Upper abdomen:", "Lungs and airways:", "Upper abdominal organs included in
the sections:", "Lymph nodes:": it ends with ":" and states no finding) sets the heading for the lines after
it, across a blank line too, as "Heading: text" on one line does; it describes nothing itself. One naming no
organ ends the previous heading (a heading starts a new topic), alone on its line or inline ("Chest wall:").
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter

from typing import NamedTuple

from spacy.tokens import Doc

from stages.parse_reports.grounding_rules import GroundingRules
from stages.parse_reports.lexicon import FindingEntry, OrganTerm
from stages.parse_reports.tokens import TokenView, any_between, flagged_spans, plain_spans, token_view

BACKWARD_SIDE_WINDOW = 4
FORWARD_SIDE_WINDOW = 8
STOP_PREPOSITIONS = {"in", "of", "on", "at", "with", "from", "to", "within", "into", "along", "near", "adjacent",
                     "than", "by", "for", "but", "while", "whereas"}
GROUP_CONNECTORS = {",", "and", "or", "/", "&", "the", "both", "of", "as", "well", "-", "including", "bilateral"}
INHERIT_CONNECTORS = {"of", "the", "in", "within", "at", "-"}
PUNCT_COST = 5
FRAMING_WORDS = {"in", "within", "at", "on", "throughout"}
SIDE_COORDINATORS = {"and", "or", "/", "&"}
LIST_SEPARATORS = {",", "and", "with", "plus", "while", "whereas", "but"}
HEADING_MARKS = {":", "-", "–"}
HEADING_TAIL = 6  # words that may follow a heading's organ words before its ":" ("... included in the sections:")
SOURCES = ("clause", "context", "heading", "prior")  # most trusted first
SOURCE_RANK = {source: rank for rank, source in enumerate(SOURCES)}
TRAILING_MARKS = {",", ";", ":", "-"}
_NO_SIDES: frozenset[str] = frozenset()
_START = attrgetter("start")  # sort key of mentions and findings
LEADING_CONJUNCTIONS = {"and", "but", "whereas", "while", "however", "although", "though", "yet", "also"}


class _Piece(NamedTuple):
    """A sentence or clause: token bounds and its section."""

    start: int
    end: int
    label: str


_as_piece = partial(tuple.__new__, _Piece)  # a kept ``(start, end, section)`` span as a _Piece; C-level ``_Piece._make``


class FindingResult(NamedTuple):
    """One abnormality stated in a clause about one organ (a tuple: a report makes dozens)."""

    phrase: str
    negated: bool
    hedged: bool


@dataclass(slots=True)
class ClauseResult:
    """A clause of a FINDINGS/IMPRESSION sentence and the organ units it describes."""

    sentence: int
    section: str
    text: str
    units: dict[str, list[FindingResult]] = field(default_factory=dict)
    unplaced: list[FindingResult] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # unit -> what placed it there (see SOURCES)
    heading: bool = False  # a heading-only line: it sets the context and describes no organ

    def place(self, unit: str, source: str) -> None:
        """Note that ``source`` grounds ``unit`` here; the most trusted source is kept."""
        known = self.sources.get(unit)  # units and sources always hold the same keys
        if known is None:
            self.units[unit] = []
            self.sources[unit] = source
        elif SOURCE_RANK[source] < SOURCE_RANK[known]:
            self.sources[unit] = source


@dataclass(slots=True)
class _Mention:
    start: int
    end: int
    term: OrganTerm
    keys: frozenset[str]
    units: tuple[str, ...] = ()
    side_source: str = ""  # "fixed", "before", "after", "plural" or "" (no side given: both)
    sides: frozenset[str] = frozenset()  # the laterality words found for it ({"left"}); empty: none or both

    @property
    def explicit_side(self) -> bool:
        return bool(self.side_source)


@dataclass(slots=True)
class _Finding:
    """A matched abnormality phrase with its NegEx verdicts (read once from the span)."""

    start: int
    end: int
    entry: FindingEntry
    negated: bool
    hedged: bool
    sides: frozenset[str] = frozenset()  # laterality words found for it (see ``_ClauseGrounder._set_sides``)
    own: frozenset[str] = frozenset()  # ... as a side set: empty for none or both


_finding_result = partial(tuple.__new__, FindingResult)  # FindingResult((phrase, negated, hedged)), C-level


class _ClauseGrounder:
    """Grounds the clauses of one Doc; holds the per-Doc token lookups."""

    def __init__(self, doc: Doc, rules: GroundingRules):
        self.doc, self.rules, self.lexicon = doc, rules, rules.lexicon
        lexicon = rules.lexicon
        self.tokens = token_view(doc)
        negated, hedged = flagged_spans(doc, "negex", "findings"), flagged_spans(doc, "hedged", "findings")
        entries, lower = lexicon.findings, self.tokens.lower
        prefixed = "non" in lower or "non-" in lower  # most reports have no "non": no finding needs the look-back
        self.findings = [_Finding(start, end, entries[key],
                                  (start, end) in negated or (prefixed and _after_non(lower, start)), (start, end) in hedged)
                         for start, end, key in plain_spans(doc, "findings")]
        self.findings.sort(key=_START)
        self.side, self.base = rules.side, rules.base
        self.sides_at = {i: side for start, end, side in plain_spans(doc, "sides") for i in range(start, end)}
        bilaterally = [i for i, word in enumerate(lower) if word == "bilaterally"] if "bilaterally" in lower else []
        self.side_words = sorted(self.sides_at)
        self.side_cues = sorted([*self.sides_at, *bilaterally])  # a side found by scanning comes from one of these
        self.cues_here = False  # the current clause holds one of ``side_cues``
        terms = rules.organ_term
        self.mentions = [_Mention(start, end, terms[index], terms[index].bases)
                         for start, end, index in plain_spans(doc, "organs")]
        self.mentions.sort(key=_START)
        # token -> its organ mention, for the side scans (only asked in a clause holding a side cue)
        self.owner = {i: m for m in self.mentions for i in range(m.start, m.end)} if self.side_cues else {}
        self.part_starts = [m.start for m in self.mentions if m.term.owners]  # "right lobe", "upper pole": _own_parts
        self.mention_starts = list(map(_START, self.mentions))
        self.finding_starts = list(map(_START, self.findings))
        self.heading: tuple[str, ...] = ()
        self.named_region = False  # the heading is a region word ("Mediastinum:"), not organ words ("Bones:")
        self.after_heading_line = False  # the sentence before was a heading-only line (a blank line keeps its heading)
        self.heading_line = False  # the heading stood alone on its line: it rules every line up to the next heading
        self.heading_sentence = -1  # start of the sentence an inline heading opened (in a one-line report it may
        # have ended unsaid: a later finding whose prior lies outside the region goes to the prior)
        self._subject: tuple[str, ...] | None = ()  # see ``subject``; None: not worked out yet
        self._previous_results: list[ClauseResult] = []
        self.sentence = _Piece(0, 0, "")  # the current sentence; its words cue a finding's prior
        self._words: set[str] | None = None

    @property
    def words(self) -> set[str]:
        """Words and word norms of the current sentence (built when a rule first asks; few do, so norms are read from
        the Doc's tokens here rather than kept for every token)."""
        if self._words is None:
            start, end = self.sentence.start, self.sentence.end
            self._words = set(self.tokens.lower[start:end]) | {token.norm_ for token in self.doc[start:end]}
        return self._words

    def new_sentence(self, sentence: _Piece, previous_results: list[ClauseResult]) -> None:
        """Start ``sentence``; ``previous_results``: the clauses of the sentence before (its subject, if a rule asks)."""
        self.sentence, self._words = sentence, None
        self._subject, self._previous_results = None, previous_results

    @property
    def subject(self) -> tuple[str, ...]:
        """Organ units of the previous sentence, when it names one organ (worked out when a rule first asks)."""
        if self._subject is None:
            self._subject = _subject(self._previous_results, self.base)
        return self._subject

    @subject.setter
    def subject(self, units: tuple[str, ...]) -> None:
        self._subject = units

    def _between(self, start: int, end: int, allowed: set[str]) -> bool:
        """Whether only ``allowed`` words and side words lie between ``start`` and ``end``."""
        lower, sides_at = self.tokens.lower, self.sides_at
        for index in range(start, end):
            if lower[index] not in allowed and index not in sides_at:
                return False
        return True

    def _drop_weak(self, mentions: list[_Mention]) -> list[_Mention]:
        """Drop a weak word a neighbouring mention claims (so a lone mention is kept)."""
        kept = []
        for index, mention in enumerate(mentions):
            if mention.term.weak:
                before = mentions[index - 1] if index else None
                after = mentions[index + 1] if index + 1 < len(mentions) else None
                claimed_before = (before is not None and mention.start - before.end <= 2 and not before.keys & mention.keys
                                  and self._between(before.end, mention.start, {"the", "-"}))
                claimed_after = (after is not None and after.start - mention.end <= 3 and not after.keys & mention.keys
                                 and self._between(mention.end, after.start, INHERIT_CONNECTORS))
                if claimed_before or claimed_after:
                    continue
            kept.append(mention)
        return kept

    def _backward_sides(self, start: int, lower: int, keys: frozenset[str]) -> set[str]:
        found: set[str] = set()
        index, steps = start - 1, 0
        owner, sides_at, punct, text, words = self.owner, self.sides_at, self.tokens.punct, self.tokens.text, \
            self.tokens.lower
        while index >= lower and steps < BACKWARD_SIDE_WINDOW:
            if index in owner:
                if not owner[index].keys & keys:
                    break
            elif index in sides_at:
                found.add(sides_at[index])
                steps += 1
            elif (punct[index] and text[index] not in "-/") or words[index] in STOP_PREPOSITIONS:
                break
            else:
                steps += 1
            index -= 1
        return found

    def _forward_sides(self, mention_end: int, upper: int, keys: frozenset[str], plural: bool,
                       later: list[_Mention]) -> set[str]:
        starts = {m.start: m for m in later} if later else {}
        tokens = self.tokens
        punct, text, words, prefixes = tokens.punct, tokens.text, tokens.lower, self.rules.after_side_prefixes
        for index in range(mention_end, min(upper, mention_end + FORWARD_SIDE_WINDOW)):
            if punct[index] and text[index] not in "-/":
                break
            if index in starts:
                other = starts[index]
                coordinated = other.side_source == "after"
                if other.keys & keys and other.explicit_side and (
                        coordinated or self._between(mention_end, index, INHERIT_CONNECTORS)):
                    return self._sides_of_units(other.units)
                break
            if words[index] == "bilaterally":
                return {"both"}
            if not plural and words[index] in prefixes:
                for prefix in prefixes[words[index]]:
                    stop = index + len(prefix)
                    # "on the right", not "of the right lung": a side word before an organ word is that organ's
                    if stop < upper and stop in self.sides_at and stop + 1 not in self.owner and \
                            tuple(words[index:stop]) == prefix:
                        return {self.sides_at[stop]}
        return set()

    def _sides_of_units(self, units: tuple[str, ...]) -> set[str]:
        return {self.side[name] for name in units if self.side[name]}

    def _plural(self, mention: _Mention) -> bool:
        lower, norm = self.tokens.lower[mention.end - 1], self.doc[mention.end - 1].norm_
        return lower != norm or (lower.endswith("s") and lower[:-1] in self.lexicon.organ_texts)

    def _resolve(self, mentions: list[_Mention], clause: _Piece) -> None:
        for index in range(len(mentions) - 1, -1, -1):
            mention = mentions[index]
            if mention.term.units:
                mention.units, mention.side_source = mention.term.units, "fixed"
                if self.cues_here and mention.start - 2 >= clause.start:
                    self._add_coordinated_side(mention)
                continue
            plural = self._plural(mention)
            # with no side word nor "bilaterally" in the clause, only a later mention can give a side
            sides = self._backward_sides(mention.start, clause.start, mention.keys) \
                if self.cues_here and any_between(self.side_words, clause.start, mention.start) else set()
            source = "before"
            if not sides and (index + 1 < len(mentions) or (
                    self.cues_here and any_between(self.side_cues, mention.end, clause.end))):
                sides, source = self._forward_sides(mention.end, clause.end, mention.keys, plural,
                                                    mentions[index + 1:]), "after"
            mention.side_source = source if sides else ("plural" if plural else "")
            mention.sides = _side_set(sides)
            mention.units = self.rules.resolve((mention.term.base,), mention.sides)

    def _add_coordinated_side(self, mention: _Mention) -> None:
        """"Right and left lower lobe": the side word before "and" names the same organ on that side."""
        start, sides_at, lower = mention.start, self.sides_at, self.tokens.lower
        if start - 2 in sides_at and lower[start - 1] in SIDE_COORDINATORS and lower[start] in self.lexicon.side_words:
            other = self.rules.resolve(tuple(dict.fromkeys(self.base[u] for u in mention.units)),
                                       frozenset({sides_at[start - 2]}))
            mention.units = tuple(dict.fromkeys(mention.units + other))

    def _own_parts(self, mentions: list[_Mention], context: list[_Mention]) -> list[_Mention]:
        """Give each part-word the organ that owns it in this context (see rule 1); drop it if none."""
        named = [m for m in mentions if not m.term.owners]
        kept = []
        for mention in mentions:
            owners = mention.term.owners
            if owners:
                owned = self._owner_units(mention, named, context, owners)
                if owned:
                    self._take_owner(mention, owned)
                elif not mention.units:
                    continue
            kept.append(mention)
        return kept

    def _owner_units(self, part: _Mention, named: list[_Mention], context: list[_Mention],
                     owners: frozenset[str]) -> tuple[str, ...]:
        for units in self._owner_candidates(part, named, context):
            owned = tuple(u for u in units if u in owners or self.base[u] in owners)
            if owned:
                return owned
        return ()

    def _owner_candidates(self, part: _Mention, named: list[_Mention], context: list[_Mention]
                          ) -> Iterator[tuple[str, ...]]:
        """Organ units that may own a part-word, most trusted first (the later ones are worked out only if asked)."""
        yield from (m.units for m in sorted(named, key=lambda m: part.start - m.end if m.end <= part.start
                                            else m.start - part.end))
        yield from (m.units for m in reversed(context))
        yield self.subject
        yield self.heading

    def _take_owner(self, part: _Mention, owned: tuple[str, ...]) -> None:
        bases = tuple(dict.fromkeys(self.base[u] for u in owned))
        if part.sides and any(self.rules.is_sided_base(base) for base in bases):
            owned = self.rules.resolve(bases, part.sides)
        base = bases[0] if len(bases) == 1 and self.rules.is_sided_base(bases[0]) else None
        term = OrganTerm(text=part.term.text, units=() if base else owned, base=base, weak=part.term.weak)
        part.term, part.keys, part.units, part.side_source = term, term.bases, owned, "fixed"

    def _drop_generic(self, mentions: list[_Mention]) -> list[_Mention]:
        """Drop a mention that a narrower one of the same organ makes redundant."""
        dropped: set[int] = set()
        for index in range(len(mentions) - 1):
            first, second = mentions[index], mentions[index + 1]
            if second.start - first.end > 3 or not self._between(first.end, second.start, INHERIT_CONNECTORS):
                continue
            a, b = set(first.units), set(second.units)
            if a > b:
                dropped.add(index)
            elif b > a:
                dropped.add(index + 1)
        for index, mention in enumerate(mentions):
            # (a mention left with no side was resolved as singular: only a fixed one's number is unknown here)
            if mention.side_source not in ("", "fixed") or (mention.side_source == "fixed" and self._plural(mention)):
                continue
            if any(set(other.units) < set(mention.units) and other.keys <= mention.keys for other in mentions):
                dropped.add(index)
        return [m for i, m in enumerate(mentions) if i not in dropped]

    def _groups(self, mentions: list[_Mention]) -> list[list[_Mention]]:
        groups: list[list[_Mention]] = []
        for mention in mentions:
            if groups and self._between(groups[-1][-1].end, mention.start, GROUP_CONNECTORS):
                groups[-1].append(mention)
            else:
                groups.append([mention])
        return groups

    def _cost(self, finding: _Finding, group: list[_Mention]) -> tuple[int, int]:
        start, end = group[0].start, group[-1].end
        if end <= finding.start:
            gap, after = range(end, finding.start), 0
        elif start >= finding.end:
            gap, after = range(finding.end, start), 1
        else:
            return 0, 0
        punct = sum(1 for i in gap if self.tokens.punct[i] and self.tokens.text[i] not in "-/")
        return len(gap) + PUNCT_COST * punct, after

    def _set_sides(self, findings: list[_Finding], clause: _Piece, organ_named: bool) -> None:
        """Each finding's own laterality words (only asked where the clause holds a side word or "bilaterally");
        ``organ_named``: an organ word lies in the clause."""
        for finding in findings:
            # a scan finds only side words (and "bilaterally" forward): none in its reach, no scan
            sides = self._backward_sides(finding.start, clause.start, _NO_SIDES) \
                if any_between(self.side_words, clause.start, finding.start) else set()
            if not sides and any_between(self.side_cues, finding.end, clause.end):
                sides = self._forward_sides(finding.end, clause.end, _NO_SIDES, False, [])
            if not sides and not organ_named:
                sides = {self.sides_at[i] for i in range(clause.start, clause.end) if i in self.sides_at}
            # "On the left, a 12 mm adenoma": with no organ word, the clause's side is its own
            finding.sides, finding.own = frozenset(sides), _side_set(sides)

    def _implied(self, ent: _Finding, entry: FindingEntry, mentions: list[_Mention], groups: list[list[_Mention]],
                 context: list[_Mention], clause: _Piece, findings: list[_Finding]) -> tuple[str, ...]:
        """Units of a finding that names its organ; sides from the clause, then the sentence, then itself."""
        units: list[str] = []
        own_sides = ent.own
        for target in entry.organs:
            named = self._named(target, mentions)
            if named and len(groups) > 1 and len(findings) > 1:
                named = self._named_near(ent, target, groups, clause, findings)
            if not named or own_sides:
                named = self._named(target, [m for m in context if m.explicit_side])
            if not named and not ent.sides and not ent.negated:  # "No hydronephrosis.": both
                named = [u for u in self.subject if target in (u, self.base[u])]
            units += named if named and not own_sides else self.rules.resolve((target,), own_sides)
        return tuple(dict.fromkeys(units))

    def _named_near(self, ent: _Finding, target: str, groups: list[list[_Mention]], clause: _Piece,
                    findings: list[_Finding]) -> list[str]:
        """Units of the organ ``target`` named in the clause, less those in another finding's part of a list:
        "Right lower lobe consolidation and left lower lobe atelectasis" puts each in one lung."""
        named = [(group, units) for group in groups if (units := self._named(target, group))]
        if len(named) > 1:
            part_of = self._list_parts(groups, clause)
            busy = {part_of(other.start) for other in findings if other is not ent}
            mine = part_of(ent.start)
            kept = [units for group, units in named if part_of(group[0].start) == mine
                    or part_of(group[0].start) not in busy]
            if kept:
                return [u for units in kept for u in units]
        return [u for _, units in named for u in units]

    def _list_parts(self, groups: list[list[_Mention]], clause: _Piece) -> Callable[[int], int]:
        """Token index -> which part of the clause's list ("A, B and C with D") it lies in; a separator inside
        an organ group ("right and left lower lobes") splits nothing."""
        inside = {i for group in groups for i in range(group[0].start, group[-1].end)}
        lower = self.tokens.lower
        cuts = [i for i in range(clause.start, clause.end) if lower[i] in LIST_SEPARATORS and i not in inside]
        return partial(bisect_left, cuts)

    def _named(self, target: str, mentions: list[_Mention]) -> list[str]:
        """Units of ``mentions`` that are the organ ``target`` (a unit or a sided base)."""
        return [u for m in mentions if target in m.keys or target in m.units for u in m.units
                if target in (u, self.base[u])]

    def _place(self, ent: _Finding, entry: FindingEntry, groups: list[list[_Mention]], implied: list[str],
               clause: _Piece) -> tuple[tuple[str, ...], int | None, str]:
        """(organ units, index of the group it was attached to or None, source) of a finding naming no organ."""
        if groups:
            index = min(range(len(groups)), key=lambda i: self._cost(ent, groups[i])) if len(groups) > 1 else 0
            group, own = groups[index], ent.own
            if len(group) == 1 and not own:
                if entry.region_prior and len(group[0].term.bases) > 2 and not ent.negated:
                    return self._region_part(entry, group[0].units), index, "clause"
                return group[0].units, index, "clause"  # (a mention's units hold no duplicates)
            units = [u for m in group for u in m.units]
            if own and not any(m.explicit_side for m in group):
                units = [u for u in units if self.side[u] is None or self.side[u] in own]
            return tuple(dict.fromkeys(units)), index, "clause"
        own = ent.own
        sided = bool(ent.sides) and not any(self.side[u] for u in implied)
        if implied and not sided:
            return tuple(dict.fromkeys(implied)), None, "clause"
        subject = self._from_subject(entry, own)
        if subject:
            return subject, None, "context"
        if self.words & self.lexicon.outside_words:  # "A 1 cm nodule in the left breast": in no organ unit
            return (tuple(dict.fromkeys(implied)), None, "clause") if implied else ((), None, "prior")
        prior = entry.prior(self.words)
        region = self.region_heading
        ruling = region and (self.heading_line or self.sentence.start == self.heading_sentence)
        if sided:
            paired = [key for key, phrase in entry.by_organ.items() if phrase and self.rules.is_sided_base(key)]
            paired += [key for key in prior if self.rules.is_sided_base(key)]
            if ruling:  # "Upper abdomen: Nodular thickening on the left": not the left lung
                paired = [key for key in paired if any(self.base[u] == key for u in self.heading)]
            if paired:
                return self.rules.resolve(tuple(paired[:1]), own), None, "heading" if ruling else "prior"
        if implied:
            return tuple(dict.fromkeys(implied)), None, "clause"
        if self.heading and not region:
            return (), None, "heading"
        units = self.rules.resolve(prior, own)
        if region:
            inside = tuple(u for u in units if u in self.heading)
            if inside or ruling:
                return inside or self._fitting_in_region(entry, own), None, "heading"
        return units, None, "prior"

    def _fitting_in_region(self, entry: FindingEntry, own: frozenset[str]) -> tuple[str, ...]:
        """The one organ of a ruling region heading the finding can be in (``sites``), else none: a finding under
        "Neck:" or "Upper abdomen:" is never put outside the region by its prior ("Neck: an 11 mm nodule")."""
        if entry.sites is None:
            return ()
        fitting = [u for u in self.heading if (u in entry.sites or self.base[u] in entry.sites)
                   and (not own or self.side[u] is None or self.side[u] in own)]
        return tuple(fitting) if len({self.base[u] for u in fitting}) == 1 else ()

    def _region_part(self, entry: FindingEntry, units: tuple[str, ...]) -> tuple[str, ...]:
        """The finding's prior organs among a region's ("Degenerative changes in the bone structures": the spine,
        not the skull and femurs); the whole region if none is in it."""
        inside = tuple(u for u in self.rules.resolve(entry.prior(self.words), _NO_SIDES) if u in units)
        return inside or units

    @property
    def region_heading(self) -> bool:
        """The current heading names a region ("Upper abdomen:", "Bones:"), not one organ ("Liver:", "Kidneys:")."""
        return len({self.base[u] for u in self.heading}) > 1

    def _from_subject(self, entry: FindingEntry, own: frozenset[str]) -> tuple[str, ...]:
        """The previous sentence's organ, if the finding can be there ("The left adrenal is thickened. An adenoma...")."""
        if self.words & self.lexicon.new_topic_words:
            return ()
        units = [u for u in self.subject if u in self.rules.fits[entry.key]]
        if not units or not own:
            return tuple(units)
        if not any(self.side[u] for u in units):
            return ()  # "Enlarged heart. Large right effusion.": a side word points to a paired organ
        bases = {self.base[u] for u in units}
        if len(bases) == 1 and self.rules.is_sided_base(next(iter(bases))):
            return self.rules.resolve(tuple(bases), own)
        return tuple(u for u in units if self.side[u] is None or self.side[u] in own)

    def ground(self, clause: _Piece, sentence: int, context: list[_Mention], carried: list[_Mention],
               mentions: list[_Mention], findings: list[_Finding]) -> tuple[ClauseResult, list[_Mention]]:
        """Ground one clause; ``mentions``, ``findings``: those lying inside it (see :func:`_inside`).

        ``context``: mentions of earlier clauses of the same sentence (for "..., the right is normal");
        ``carried``: mentions of the clause before a ";" (for "Normal aortic caliber; no calcification").
        """
        start, end = clause.start, clause.end
        self.cues_here = any_between(self.side_cues, start, end)
        organ_named = bool(mentions)
        if mentions:
            if len(mentions) > 1:
                mentions = self._drop_weak(mentions)
            self._resolve(mentions, clause)
            if self.part_starts and any_between(self.part_starts, start, end):
                mentions = self._own_parts(mentions, context)
            if len(mentions) > 1:
                mentions = self._drop_generic(mentions)
        if not mentions and (context or carried):  # "The right adrenal is normal; the left is thickened"
            mentions = self._ellipsis(clause, [m for m in context or carried if m.term.base])
        if self.cues_here:  # else every finding keeps the default: no sides
            self._set_sides(findings, clause, organ_named)
        self.after_heading_line = (not findings and start == self.sentence.start and end == self.sentence.end
                                   and self.tokens.text[end - 1] == ":")  # a heading alone on its line
        if self.after_heading_line:
            region = self._region_at(clause)
            self.heading, self.named_region = (region[1], True) if region else (
                tuple(dict.fromkeys(u for m in mentions for u in m.units)), False)
            self.heading_line = True
            self.subject = ()
            return ClauseResult(sentence, clause.label, "", {}, [], {}, True), []
        mention_source = "clause"
        if not mentions and carried and not any(ent.entry.organs for ent in findings):
            mentions, mention_source = carried, "context"
        heading_end = None
        if (mentions and mentions[0].start == start) or self.tokens.lower[start] in self.lexicon.region_starts:
            heading_end = self._update_heading(clause, mentions)  # most clauses open with neither: no heading
        if heading_end is None and self.heading and start == self.sentence.start and \
                self._opens_with_other_heading(clause):
            self.heading = ()  # "Heart: Normal. Lymph nodes: No enlarged nodes.": the nodes are not the heart's
        if heading_end is not None:
            self.subject = ()  # a heading starts a new topic
        result = ClauseResult(sentence, clause.label, "", {}, [], {})  # fresh containers: faster than the factories
        if heading_end is not None and self.region_heading:
            mentions = [m for m in mentions if m.start >= heading_end]
            if not mentions and not findings and not any(self.tokens.alpha[heading_end:clause.end]):
                return result, mentions
        if not mentions and not findings and not self.heading:
            return result, mentions
        for mention in mentions:
            for unit in mention.units:
                result.place(unit, mention_source)
        narrowing = self._place_findings(result, findings, mentions, context, clause, mention_source) \
            if findings else None
        if not result.units and self.heading and not (
                any(not ent.negated for ent in findings) and self.region_heading) and not (
                findings and self.named_region):
            for ent in findings:
                self._record(result, ent, ent.entry, self.heading, "heading")
            for unit in self.heading:
                result.place(unit, "heading")
            result.unplaced = []
        if narrowing is not None:
            self._narrow(result, narrowing)
        if result.units:
            result.text = _tidy(self.tokens, clause.start, clause.end)
        return result, mentions

    def _place_findings(self, result: ClauseResult, findings: list[_Finding], mentions: list[_Mention],
                        context: list[_Mention], clause: _Piece, mention_source: str
                        ) -> list[tuple[list[_Mention], set[str]]] | None:
        """Record each finding at the organ units it belongs to (rule 3); returns the groups to :meth:`_narrow`
        to the units their findings were placed at (their sides, or part of a region), if any."""
        groups = self._groups(mentions) if mentions else []
        implied: dict[int, tuple[str, ...]] = {}  # finding start -> units of a finding naming its organ
        for ent in findings:
            if ent.entry.organs:
                implied[ent.start] = self._implied(ent, ent.entry, mentions, groups, context, clause, findings)
        implied_units = [unit for units in implied.values() for unit in units] if implied else []
        sided_groups: dict[int, frozenset[str] | None] = {}
        region_parts: dict[int, set[str]] | None = None  # group -> units its region_prior findings took
        outside = 0  # findings in no organ unit
        for ent in findings:
            entry = ent.entry
            if entry.outside:  # "Enlarged lymph nodes adjacent to the left adrenal gland": in no organ unit
                self._record(result, ent, entry, (), "clause")
                outside += 1
                continue
            units, group, source = (implied[ent.start], None, "clause") if ent.start in implied else \
                self._place(ent, entry, groups, implied_units, clause)
            if group is not None:
                own, source = ent.own, mention_source
                previous = sided_groups.get(group, _NO_SIDES)
                sided_groups[group] = None if previous is None or not own else previous | own
                if entry.region_prior:  # (units another finding took are not empty: _narrow keeps them)
                    region_parts = region_parts or {}
                    region_parts.setdefault(group, set()).update(units)
            self._record(result, ent, entry, units, source)
        # a group whose findings all have a side of their own, and no side word of its own, is narrowed to those sides
        narrowed = [(groups[index], {u for m in groups[index] for u in m.units
                                     if self.side[u] is None or self.side[u] in sides})
                    for index, sides in sided_groups.items()
                    if sides and not any(m.explicit_side for m in groups[index])] if any(sided_groups.values()) else []
        if region_parts:
            narrowed += [(groups[index], part) for index, part in region_parts.items()]
        if outside == len(findings) and groups and not all(ent.negated for ent in findings):
            narrowed += [(group, set()) for group in groups]  # its organs are only where it lies
        return narrowed or None

    def _record(self, result: ClauseResult, ent: _Finding, entry: FindingEntry, units: tuple[str, ...],
                source: str) -> None:
        negated, hedged = ent.negated, ent.hedged
        if not units and entry.phrase:
            result.unplaced.append(FindingResult(entry.phrase, negated, hedged))
        phrases, placed = self.rules.phrase[entry.key], result.units
        stated = None  # one tuple per phrase, shared by the units stating it
        for unit in units:
            result.place(unit, source)
            phrase = phrases[unit]
            if phrase:
                if stated is None or phrase != stated[0]:
                    stated = _finding_result((phrase, negated, hedged))
                placed[unit].append(stated)

    def _narrow(self, result: ClauseResult, narrowed: list[tuple[list[_Mention], set[str]]]) -> None:
        """"Pleura: small right effusion" describes the right side only, "degenerative changes in the bones" the
        spine: drop the group's other units when empty."""
        for group, kept in narrowed:
            for mention in group:
                for unit in mention.units:
                    if unit not in kept and not result.units.get(unit):
                        result.units.pop(unit, None)
                        result.sources.pop(unit, None)

    def _ellipsis(self, clause: _Piece, context: list[_Mention]) -> list[_Mention]:
        sides = {self.sides_at[i] for i in range(clause.start, clause.end) if i in self.sides_at}
        if not sides or not context:  # no earlier sided organ ("Thyroid. Left ..."): the side refers to nothing
            return []
        base = context[-1]
        units = self.rules.resolve((base.term.base,), _side_set(sides))
        return [_Mention(clause.start, clause.start, base.term, base.keys, units, "before")]

    def _update_heading(self, clause: _Piece, mentions: list[_Mention]) -> int | None:
        """Take a heading at the clause start ("Liver:", "Upper abdomen:"); returns the token after its mark."""
        region = self._region_at(clause)
        if region is not None:
            self.heading, self.named_region = region[1], True
            self.heading_line, self.heading_sentence = False, self.sentence.start
            return region[0]
        if not mentions or mentions[0].start != clause.start or mentions[0].end <= clause.start:
            return None
        first_group = self._groups(mentions)[0]
        mark = self._heading_mark(first_group[-1].end, clause.end)
        if mark is not None:
            self.heading, self.named_region = tuple(dict.fromkeys(u for m in first_group for u in m.units)), False
            self.heading_line, self.heading_sentence = False, self.sentence.start
            return mark + 1
        return None

    def _heading_mark(self, start: int, end: int) -> int | None:
        """The mark ending a heading whose organ words end at ``start``: right there ("Liver:", "Liver -"), or a
        ":" after a few words naming no finding nor other organ ("Upper abdominal organs included in the sections:")."""
        text, punct = self.tokens.text, self.tokens.punct
        if start < end and text[start] in HEADING_MARKS:
            return start
        for index in range(start, min(end, start + HEADING_TAIL)):
            if text[index] == ":":
                stated = any_between(self.finding_starts, start, index) or any_between(self.mention_starts, start, index)
                return None if stated else index
            if punct[index]:
                return None
        return None

    def _opens_with_other_heading(self, clause: _Piece) -> bool:
        """Whether the clause opens with a heading of a few words naming no organ nor finding ("Lymph nodes:",
        "Chest wall:") followed by its text."""
        text, alpha = self.tokens.text, self.tokens.alpha
        if ":" not in text[clause.start:clause.start + HEADING_TAIL]:  # (most sentences)
            return False
        for index in range(clause.start, min(clause.end - 1, clause.start + HEADING_TAIL)):
            if text[index] == ":":
                return index > clause.start and not any_between(self.mention_starts, clause.start, index) and \
                    not any_between(self.finding_starts, clause.start, index)
            if not alpha[index]:
                return False
        return False

    def _region_at(self, clause: _Piece) -> tuple[int, tuple[str, ...]] | None:
        """(token after the mark, units) of a region heading opening the clause ("Upper abdomen:"), if any."""
        lower = self.tokens.lower
        if lower[clause.start] not in self.lexicon.region_starts:
            return None
        for words, units in self.lexicon.region_headings.items():
            after = clause.start + len(words)
            if after < clause.end and tuple(lower[clause.start:after]) == words and self.tokens.text[after] in HEADING_MARKS:
                return after + 1, units
        return None

    def new_paragraph(self) -> None:
        self.heading, self.subject = (), ()


def _inside(items: list, starts: list[int], clause: _Piece) -> list:
    """The items (sorted by ``starts``, not overlapping) lying inside the clause."""
    inside = items[bisect_left(starts, clause.start):bisect_left(starts, clause.end)]
    while inside and inside[-1].end > clause.end:
        inside.pop()
    return inside


def _after_non(lower: tuple[str, ...], start: int) -> bool:
    """Whether the finding at ``start`` follows "non"/"non-" ("non-calcified nodule"): negated, whatever NegEx says."""
    previous = lower[max(0, start - 2):start]
    return bool(previous) and (previous[-1] in {"non", "non-"} or previous == ("non", "-"))


def _side_set(sides: set[str]) -> frozenset[str]:
    if not sides or "both" in sides:
        return _NO_SIDES
    return frozenset(sides)


def tidy_text(doc: Doc, start: int, end: int) -> str:
    """Clause text as a sentence: no leading conjunction or comma, capitalised, final punctuation."""
    return _tidy(token_view(doc), start, end)


def _tidy(tokens: TokenView, start: int, end: int) -> str:
    """:func:`tidy_text` on the Doc's token view (the grounder holds it already)."""
    punct, space, words, text = tokens.punct, tokens.space, tokens.lower, tokens.text
    while start < end and (punct[start] or space[start] or words[start] in LEADING_CONJUNCTIONS):
        start += 1
    while end > start and (text[end - 1] in TRAILING_MARKS or space[end - 1]):
        end -= 1
    if end == start:
        return ""
    text = tokens.string[tokens.idx[start]:tokens.idx[end - 1] + len(text[end - 1])]  # tokens.text_of, inlined
    if True in space[start:end]:  # only whitespace tokens hold line breaks or runs of spaces (spaCy splits at whitespace)
        text = " ".join(text.split())
    if not text:
        return ""
    if text[-1] not in ".?!":
        text += "."
    return text if text[0].isupper() else text[0].upper() + text[1:]


def ground_doc(doc: Doc, rules: GroundingRules) -> list[ClauseResult]:
    """Ground every clause of the report sections (FINDINGS, IMPRESSION) to organ units."""
    grounder, report_sections = _ClauseGrounder(doc, rules), rules.lexicon.report_sections
    tokens = grounder.tokens
    sentences = list(map(_as_piece, plain_spans(doc, "sentences")))
    last_sentence = len(sentences) - 1
    results: list[ClauseResult] = []
    sentence_index, previous, last, carried, section = -1, [], [], [], None
    sentence_results: list[ClauseResult] = []
    clauses = list(map(_as_piece, plain_spans(doc, "clauses")))
    lower = tokens.lower
    framing_starts = {clause.start for clause in clauses if lower[clause.start] in FRAMING_WORDS}
    framing: list[int] = []  # indices in sentence_results of clauses opening with a framing word
    framed = False
    for clause in clauses:
        while sentence_index < last_sentence and sentences[sentence_index + 1].start <= clause.start:
            sentence_index += 1
            after_semicolon = sentence_index > 0 and tokens.text[sentences[sentence_index - 1].end - 1] == ";"
            carried = last if after_semicolon else []
            previous = []
            if framing:
                framed = _trim_framing(framing, sentence_results) or framed
                framing = []
            grounder.new_sentence(sentences[sentence_index], sentence_results)
            sentence_results = []
            if clause.label != section or (_blank_line_before(tokens, sentences, sentence_index)
                                           and not grounder.after_heading_line):
                grounder.new_paragraph()
        section = clause.label
        if section not in report_sections:
            continue
        result, last = grounder.ground(clause, sentence_index, previous, carried,
                                       _inside(grounder.mentions, grounder.mention_starts, clause),
                                       _inside(grounder.findings, grounder.finding_starts, clause))
        if clause.start in framing_starts:
            framing.append(len(sentence_results))
        sentence_results.append(result)
        carried = []
        previous.extend(last)  # (a new list each sentence; ground keeps no reference to it)
        if result.units or result.unplaced or result.heading:
            results.append(result)
    if (framing and _trim_framing(framing, sentence_results)) or framed:
        return [result for result in results if result.units or result.unplaced or result.heading]
    return results


def _trim_framing(framing: list[int], results: list[ClauseResult]) -> bool:
    """A clause stating no finding that opens with "in" ("In the upper abdominal organs within the sections, a
    2 cm cyst in the liver") frames its sentence: it describes only the organs the rest of the sentence names.
    Returns whether it dropped any."""
    trimmed = False
    for index in framing:
        result = results[index]
        later = {unit for other in results[index + 1:] for unit in other.units}
        if later and result.units and not result.unplaced and not any(result.units.values()):
            for unit in [unit for unit in result.units if unit not in later]:
                del result.units[unit]
                del result.sources[unit]
                trimmed = True
    return trimmed


def _blank_line_before(tokens: TokenView, sentences: list[_Piece], index: int) -> bool:
    """Whether more than one line break separates sentence ``index`` from the one before (a new paragraph)."""
    gap_start = sentences[index - 1].end if index else 0
    if gap_start >= sentences[index].start:
        return False  # no token between the sentences (most)
    return sum(tokens.text[i].count("\n") for i in range(gap_start, sentences[index].start) if tokens.space[i]) > 1


def _subject(results: list[ClauseResult], base: dict[str, str]) -> tuple[str, ...]:
    """Organ units a sentence was about, when it names one organ (both kidneys count as one); else none."""
    named = [unit for result in results for unit, source in result.sources.items() if source in ("clause", "context")]
    return tuple(dict.fromkeys(named)) if len({base[unit] for unit in named}) == 1 else ()
