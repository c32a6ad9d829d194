"""Reports per second of ``ctglip parse-reports``, against a plain spaCy baseline measured in the same run.

Reports of ~190 words are composed (fixed seed) from the sentences of the labelled development set,
which mixes chest and abdominal CT phrasing. Figures printed:

* ctglip parser, one process (``ReportParser.parse`` per report)
* baseline: ``spacy.blank("en")`` tokenizer + sentencizer + one PhraseMatcher holding the same organ
  and abnormality terms, over the same reports (``nlp.pipe``), and the ratio ctglip / baseline
* the whole stage (CSV in, parquet/JSON/CSV/PNG out) with ``--workers 1`` and ``--workers N``

Usage: ``python benchmarks/bench_parse_reports.py [--reports 2000] [--workers 2]``
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

from stages.parse_reports import ParseReportsConfig, ReportParser, run  # noqa: E402
from stages.parse_reports.lexicon import load_lexicon  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    reports = make_reports(args.reports)
    words = sum(len(r.split()) for r in reports) / len(reports)
    print(f"{len(reports)} reports, {words:.0f} words each on average; rates: reports/s wall-clock "
          "(reports per CPU-second)")

    report_parser = ReportParser()
    report_parser.parse(findings=reports[0])
    ctglip = timed(lambda: [report_parser.parse(findings=report) for report in reports])
    nlp, matcher = baseline_pipeline()
    found: list[int] = []
    baseline = timed(lambda: found.extend(len(matcher(doc)) + sum(1 for _ in doc.sents) for doc in nlp.pipe(reports)))
    ctglip_rate, baseline_rate = (len(reports) / ctglip[0], len(reports) / ctglip[1]), \
        (len(reports) / baseline[0], len(reports) / baseline[1])
    print(f"ctglip parser, 1 process:                  {ctglip_rate[0]:8.1f}  ({ctglip_rate[1]:.1f})")
    print(f"baseline (tokenizer+sentencizer+matcher):  {baseline_rate[0]:8.1f}  ({baseline_rate[1]:.1f}); "
          f"{sum(found)} matches+sentences")
    print(f"ratio ctglip / baseline:                   {ctglip_rate[0] / baseline_rate[0]:8.3f}  "
          f"({ctglip_rate[1] / baseline_rate[1]:.3f})")
    verdicts = ["met" if value >= TARGET_RATE else "NOT met" for value in ctglip_rate]
    print(f"target >= {TARGET_RATE:.0f} reports/s in one process: wall-clock {ctglip_rate[0]:.0f} ({verdicts[0]}), "
          f"per CPU-second {ctglip_rate[1]:.0f} ({verdicts[1]}; what one free core gives)")

    with tempfile.TemporaryDirectory() as folder:
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
