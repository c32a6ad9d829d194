"""``ctglip parse-reports`` as a Python function: reports table in, organ texts + abnormality dictionary out.

One bad report never stops the run: it is marked failed in the manifest and listed at the end.
Empty reports get the status ``empty`` (not "skipped": that means "already done" elsewhere); a text the
parser cannot read (another language) is ``failed`` with the reason. ``workers > 1`` parses chunks in separate processes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stages.common.anatomy import organ_units
from stages.common.errors import SetupError
from stages.common.manifest import EMPTY, MANIFEST_NAME, ItemStatus, StageResult, jsonable, package_versions, write_manifest
from stages.common.outputs import check_output_folder, claim_output
from stages.common.progress import ProgressReporter, SilentProgress
from stages.parse_reports import io
from stages.parse_reports.config import ParseReportsConfig
from stages.parse_reports.heap import static_heap_frozen
from stages.parse_reports.lexicon import load_lexicon
from stages.parse_reports.parser import ParseResult, ReportParser, ReportText
from stages.parse_reports.pipeline import COMPONENTS
from stages.parse_reports.plots import plot_summary
from stages.parse_reports.readable import UnreadableReport

LOG = logging.getLogger("ctglip.parse_reports")
MAX_CHUNK = 64
RERUN_FREE = {"workers", "overwrite", "out_dir"}  # options that do not change what is written
_worker_parser: ReportParser | None = None


@dataclass
class ReportOutcome:
    """The parse of one report, in plain values so it can cross process boundaries."""

    scan_id: str
    status: str
    error: str = ""
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    unassigned: list[dict[str, Any]] = field(default_factory=list)


def parse_records(parser: ReportParser, records: list[io.ReportRecord]) -> Iterator[ReportOutcome]:
    """Parse the reports in batches (:meth:`ReportParser.parse_many`); an error becomes a failed outcome naming the row."""
    texts = (ReportText(record.findings, record.impression, record.text) for record in records)
    for record, result in zip(records, parser.parse_many(texts)):
        yield _outcome(record, result)


def _outcome(record: io.ReportRecord, result: ParseResult) -> ReportOutcome:
    error, report = result.error, result.report
    if isinstance(error, UnreadableReport):
        return ReportOutcome(record.scan_id, "failed", f"row {record.row}: {error}", result.seconds)
    if error is not None:
        return ReportOutcome(record.scan_id, "failed", f"row {record.row}: {type(error).__name__}: {error}",
                             result.seconds)
    rows = [{"scan_id": record.scan_id, "organ": organ, "text": result.text, "abnormal": result.abnormal,
             "uncertain": result.uncertain, "abnormalities": result.abnormalities,
             "hedged_abnormalities": result.hedged_abnormalities,
             "negated_abnormalities": result.negated_abnormalities, "grounded_by": result.grounded_by}
            for organ, result in report.organs.items()]
    unassigned = [{"scan_id": record.scan_id, "section": sentence.section, "sentence": sentence.text,
                   "abnormalities": sentence.abnormalities} for sentence in report.unassigned]
    return ReportOutcome(record.scan_id, "ok", "", result.seconds, rows, unassigned)


def _init_worker(lexicon_dir: Path | None) -> None:
    global _worker_parser
    _worker_parser = ReportParser(lexicon_dir)


def _parse_chunk(records: list[io.ReportRecord]) -> list[ReportOutcome]:
    with static_heap_frozen():
        return list(parse_records(_worker_parser, records))


def _parse_all(records: list[io.ReportRecord], config: ParseReportsConfig,
               progress: ProgressReporter) -> Iterator[ReportOutcome]:
    progress.start(len(records), "parse reports")
    if config.workers == 1 or len(records) < 2:
        parser = ReportParser(config.lexicon_dir)
        with static_heap_frozen():
            for outcome in parse_records(parser, records):
                progress.advance(1)
                yield outcome
        return
    size = max(1, min(MAX_CHUNK, math.ceil(len(records) / (config.workers * 4))))
    chunks = [records[i:i + size] for i in range(0, len(records), size)]
    with ProcessPoolExecutor(max_workers=config.workers, initializer=_init_worker,
                             initargs=(config.lexicon_dir,)) as pool:
        for outcomes in pool.map(_parse_chunk, chunks):
            progress.advance(len(outcomes))
            yield from outcomes


def build_dictionary(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Organ -> phrase -> number of reports stating it (affirmed, hedged included), anatomy-table order."""
    counts: dict[str, Counter] = {}
    for row in rows:
        counts.setdefault(row["organ"], Counter()).update(row["abnormalities"])
    order = {name: index for index, name in enumerate(organ_units())}
    return {organ: dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))
            for organ, counter in sorted(counts.items(), key=lambda item: order.get(item[0], len(order)))
            if counter}


def _check_output(config: ParseReportsConfig) -> None:
    """Refuse a foreign or other stage's folder before parsing, and earlier output of other inputs unless ``overwrite``.

    A rerun with the same reports file, lexicon and options writes the same output, so it is allowed.
    """
    check_output_folder(config.out_dir, io.STAGE)
    manifest = config.out_dir / MANIFEST_NAME
    if config.overwrite or not manifest.is_file():
        return
    try:
        earlier = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        earlier = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    settings = {key: value for key, value in jsonable(config).items() if key not in RERUN_FREE}
    before = {key: value for key, value in earlier.get("config", {}).items() if key not in RERUN_FREE}
    changed = [key for key in sorted(set(settings) | set(before)) if settings.get(key) != before.get(key)]
    if earlier.get("inputs", {}).get("sha256") != _sha256(config.reports):
        changed.append("reports file content")
    if earlier.get("pipeline", {}).get("lexicon_digest") != load_lexicon(config.lexicon_dir).digest:
        changed.append("lexicon")
    if changed:
        raise SetupError(f"{config.out_dir} already holds parse-reports output made with other inputs "
                              f"({', '.join(changed)} differ); pass --overwrite to replace it, or choose another "
                              "folder")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(config: ParseReportsConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Parse every report of ``config.reports`` and write the stage's outputs to ``config.out_dir``."""
    progress = progress or SilentProgress()
    _check_output(config)
    table = io.read_table(config.reports, config.encoding)
    if table.empty:
        raise io.ReportsInputError(f"{config.reports}: no reports (the table has {len(table.columns)} column(s) "
                                   "but no rows)")
    columns = io.resolve_columns(table, config.reports, config.id_column, config.findings_column,
                                 config.impression_column, config.text_column)
    records, bad_ids = io.load_reports(config.reports, columns, table, config.merge_duplicates)
    empty = [record for record in records if record.empty]
    if empty:
        LOG.warning("%s: %d empty report(s) skipped: %s%s", config.reports, len(empty),
                    ", ".join(r.scan_id for r in empty[:5]), " ..." if len(empty) > 5 else "")
    outcomes = {o.scan_id: o for o in _parse_all([r for r in records if not r.empty], config, progress)}
    items = [ItemStatus(label, "failed", reason) for label, reason in bad_ids]
    rows: list[dict[str, Any]] = []
    unassigned: list[dict[str, Any]] = []
    for record in records:
        outcome = outcomes.get(record.scan_id)
        if outcome is None:
            items.append(ItemStatus(record.scan_id, EMPTY, "empty report: no findings or impression text"))
            continue
        rows += outcome.rows
        unassigned += outcome.unassigned
        items.append(ItemStatus(record.scan_id, outcome.status, outcome.error, outcome.seconds,
                                {"organs": len(outcome.rows), "abnormal": sum(r["abnormal"] for r in outcome.rows)}))
    with claim_output(config.out_dir, io.STAGE, overwrite=config.overwrite):
        dictionary = build_dictionary(rows)
        outputs = [io.write_organ_texts(config.out_dir, rows), io.write_dictionary(config.out_dir, dictionary),
                   io.write_unassigned(config.out_dir, unassigned)]
        plot = config.out_dir / io.PLOT
        plot_summary(plot, dictionary, rows)
        counts = {"reports": len(records), "parsed": len(outcomes), "empty": len(empty),
                  "failed": sum(1 for item in items if item.status == "failed"), "organ_rows": len(rows),
                  "abnormal_rows": sum(row["abnormal"] for row in rows), "unassigned_sentences": len(unassigned)}
        write_manifest(config.out_dir, io.STAGE, config, items,
                       package_versions("spacy", "negspacy", "pandas", "pyarrow"),
                       extra={"inputs": {"reports": str(config.reports.resolve()), "sha256": _sha256(config.reports),
                                         "rows": len(table), "columns": asdict(columns)},
                              "pipeline": {"components": list(COMPONENTS),
                                           "lexicon_digest": load_lexicon(config.lexicon_dir).digest},
                              "counts": counts, "outputs": [path.name for path in outputs] + [plot.name]})
    return StageResult(stage=io.STAGE, output_dir=config.out_dir, items=items)
