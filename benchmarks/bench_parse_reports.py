"""Reports per second of ``ctglip parse-reports``, against a plain spaCy baseline measured in the same run.

Reports of ~190 words are composed (fixed seed) from the sentences of the labelled development set,
which mixes chest and abdominal CT phrasing. Figures printed:

* ctglip parser, one process, as the stage runs it (``ReportParser.parse_many``: batches of reports, each
  component over a whole batch, as ``nlp.pipe`` runs the baseline), and report by report (``ReportParser.parse``)
* baseline: ``spacy.blank("en")`` tokenizer + sentencizer + one PhraseMatcher holding the same organ
  and abnormality terms, over the same reports (``nlp.pipe``), and the ratio ctglip / baseline
* where the parser's time goes: CPU milliseconds per report for the tokenizer, the token view, each pipeline component
  (sections, terms, sentences, clause split, negation, hedging, grounding), the parser's own bookkeeping,
  and the stage's reading and writing (CSV in; parquet, JSON, CSV and PNG out)
* the whole stage (CSV in, parquet/JSON/CSV/PNG out) with ``--workers 1`` and ``--workers N``

The parser is timed as the stage runs it: inside ``static_heap_frozen`` (see ``stages/parse_reports/heap.py``);
so is the baseline.

Usage: ``python benchmarks/bench_parse_reports.py [--reports 2000] [--workers 2] [--repeats 9]``
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import spacy
from spacy.matcher import PhraseMatcher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.parse_reports import ParseReportsConfig, ReportParser, io, run  # noqa: E402
from stages.parse_reports.heap import static_heap_frozen  # noqa: E402
from stages.parse_reports.lexicon import load_lexicon  # noqa: E402
from stages.parse_reports.parser import BATCH_REPORTS, ReportText  # noqa: E402
from stages.parse_reports.plots import plot_summary  # noqa: E402
from stages.parse_reports.stage import build_dictionary, parse_records  # noqa: E402
from stages.parse_reports.tokens import token_view  # noqa: E402

DEV_SET = ROOT / "tests" / "data" / "report_dev_set.jsonl"
TARGET_WORDS = 190
TARGET_RATE = 300.0


def make_reports(count: int, seed: int = 0) -> list[str]:
    sentences = [json.loads(line)["text"] for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line]
    rng = random.Random(seed)
    reports = []
    for _ in range(count):
        chosen, words = [], 0
        while words < TARGET_WORDS:
            sentence = rng.choice(sentences)
            chosen.append(sentence)
            words += len(sentence.split())
        reports.append(" ".join(chosen))
    return reports


def baseline_pipeline():
    lexicon = load_lexicon()
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    matcher.add("ORGAN", [nlp.make_doc(term.text) for term in lexicon.organ_terms])
    matcher.add("FINDING", [nlp.make_doc(s) for entry in lexicon.findings.values() for s in entry.surfaces])
    return nlp, matcher


def timed(work) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``work()`` (CPU time shows the cost on a busy, shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def component_profile(report_parser: ReportParser, reports: list[str]) -> dict[str, float]:
    """CPU seconds per step over all reports, run as ``parse_many`` runs them (each step over a batch of reports):
    tokenizer, token view, each component, the rest of the parse (readability check, organ results)."""
    view = "token view (read by every rule component)"
    seconds: dict[str, float] = {"tokenizer": 0.0, view: 0.0, **{name: 0.0 for name in report_parser.nlp.pipe_names},
                                 "parser: readability check, organ results": 0.0}
    with static_heap_frozen():
        for first in range(0, len(reports), BATCH_REPORTS):
            started = time.process_time()
            docs = [doc for report in reports[first:first + BATCH_REPORTS]
                    for doc in report_parser._make_docs(report, "findings", True)]
            seconds["tokenizer"] += time.process_time() - started
            started = time.process_time()
            for doc in docs:
                token_view(doc)  # else the first component to read it pays for it
            seconds[view] += time.process_time() - started
            for name, component in report_parser.nlp.pipeline:
                started = time.process_time()
                docs = [component(doc) for doc in docs]
                seconds[name] += time.process_time() - started
            started = time.process_time()
            for doc in docs:
                report_parser._organ_results([doc])
            seconds["parser: readability check, organ results"] += time.process_time() - started
    return seconds


def io_profile(report_parser: ReportParser, reports: list[str], folder: Path) -> dict[str, float]:
    """CPU seconds of the stage's reading (CSV -> records) and writing (parquet, JSON, CSV, PNG)."""
    table_path = folder / "profile.csv"
    pd.DataFrame({"scan_id": [f"r{i:06d}" for i in range(len(reports))], "findings": reports}).to_csv(
        table_path, index=False)
    loaded: list = []

    def read() -> None:
        table = io.read_table(table_path)
        loaded.extend(io.load_reports(table_path, io.resolve_columns(table, table_path), table)[0])
    read_seconds = timed(read)[1]
    with static_heap_frozen():
        outcomes = list(parse_records(report_parser, loaded))
    rows = [row for outcome in outcomes for row in outcome.rows]
    unassigned = [row for outcome in outcomes for row in outcome.unassigned]
    out = folder / "profile_out"
    out.mkdir()

    def write() -> None:
        dictionary = build_dictionary(rows)
        io.write_organ_texts(out, rows), io.write_dictionary(out, dictionary), io.write_unassigned(out, unassigned)
        plot_summary(out / io.PLOT, dictionary, rows)
    return {"stage: read reports table": read_seconds, "stage: write outputs and plot": timed(write)[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs of parser and baseline; the best counts")
    args = parser.parse_args()
    reports = make_reports(args.reports)
    words = sum(len(r.split()) for r in reports) / len(reports)
    print(f"{len(reports)} reports, {words:.0f} words each on average; rates: reports/s wall-clock "
          "(reports per CPU-second)")

    report_parser = ReportParser()
    report_parser.parse(findings=reports[0])
    nlp, matcher = baseline_pipeline()
    found: list[int] = []
    ctglip_runs, single_runs, baseline_runs = [], [], []
    texts = [ReportText(findings=report) for report in reports]
    failed = [result.error for result in report_parser.parse_many(texts) if result.error is not None]
    if failed:
        raise SystemExit(f"{len(failed)} benchmark report(s) failed to parse, e.g. {failed[0]!r}")
    for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
        with static_heap_frozen():
            ctglip_runs.append(timed(lambda: list(report_parser.parse_many(texts))))
            single_runs.append(timed(lambda: [report_parser.parse(findings=report) for report in reports]))
            found.clear()  # the baseline too: the same garbage-collector conditions for both
            baseline_runs.append(timed(lambda: found.extend(len(matcher(doc)) + sum(1 for _ in doc.sents)
                                                            for doc in nlp.pipe(reports))))
    ctglip = (min(run[0] for run in ctglip_runs), min(run[1] for run in ctglip_runs))
    baseline = (min(run[0] for run in baseline_runs), min(run[1] for run in baseline_runs))
    single = (min(run[0] for run in single_runs), min(run[1] for run in single_runs))
    ctglip_rate, baseline_rate = (len(reports) / ctglip[0], len(reports) / ctglip[1]), \
        (len(reports) / baseline[0], len(reports) / baseline[1])
    single_rate = (len(reports) / single[0], len(reports) / single[1])
    print(f"ctglip parser, 1 process (parse_many):     {ctglip_rate[0]:8.1f}  ({ctglip_rate[1]:.1f})")
    print(f"  report by report (parse):                {single_rate[0]:8.1f}  ({single_rate[1]:.1f}); "
          f"ratio to the baseline {single_rate[0] / baseline_rate[0]:.3f} ({single_rate[1] / baseline_rate[1]:.3f})")
    print(f"baseline (tokenizer+sentencizer+matcher):  {baseline_rate[0]:8.1f}  ({baseline_rate[1]:.1f}); "
          f"{sum(found)} matches+sentences")
    print(f"ratio ctglip / baseline:                   {ctglip_rate[0] / baseline_rate[0]:8.3f}  "
          f"({ctglip_rate[1] / baseline_rate[1]:.3f})")
    verdicts = ["met" if value >= TARGET_RATE else "NOT met" for value in ctglip_rate]
    print(f"target >= {TARGET_RATE:.0f} reports/s in one process: wall-clock {ctglip_rate[0]:.0f} ({verdicts[0]}), "
          f"per CPU-second {ctglip_rate[1]:.0f} ({verdicts[1]}; what one free core gives)")

    with tempfile.TemporaryDirectory() as folder:
        profile = {**component_profile(report_parser, reports), **io_profile(report_parser, reports, Path(folder))}
        total = sum(profile.values())
        print(f"\nwhere the time goes (CPU ms per report; {total / len(reports) * 1000:.2f} ms in all):")
        for name, seconds in profile.items():
            print(f"  {name:<38} {seconds / len(reports) * 1000:7.3f}  {seconds / total:6.1%}")
        print()
        table = Path(folder) / "reports.csv"
        pd.DataFrame({"scan_id": [f"r{i:06d}" for i in range(len(reports))], "findings": reports}).to_csv(
            table, index=False)
        for workers in sorted({1, args.workers}):
            config = ParseReportsConfig(reports=table, out_dir=Path(folder) / f"out{workers}", workers=workers)
            wall, _ = timed(lambda: run(config))
            print(f"stage end to end, --workers {workers}:           {len(reports) / wall:8.1f}  "
                  f"({wall:.1f} s wall incl. worker start-up and writing)")


if __name__ == "__main__":
    main()
