"""Build a cache: scans + masks + parsed reports -> organ crops, texts, frozen embeddings."""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from stages.cache import io
from stages.cache.config import ABNORMALITY_TEMPLATE, CacheConfig, fill_template
from stages.cache.preprocess import PreprocessConfig, organ_samples, preprocess_scan, volume_sample
from stages.common.anatomy import ANATOMY_TABLE_VERSION, organ_units
from stages.common.ct_folder import list_ct_folder
from stages.common.errors import SetupError
from stages.common.manifest import (DONE_EARLIER, USABLE, ItemStatus, StageResult, ok_items, package_versions,
                                    read_manifest, write_manifest)
from stages.common.nifti import InputError
from stages.common.outputs import claim_output
from stages.common.progress import ProgressReporter, SilentProgress
from stages.common.text_encoder import TextEncoder
from stages.parse_reports.io import read_abnormality_dictionary, read_organ_texts
from stages.segment.io import read_masks_dir

VOLUME_ORGAN = "volume"


def _process_scan(task: tuple[Path, Path, Path, str, PreprocessConfig, str, bool, str, str]) -> tuple[str, str, float]:
    """Worker: preprocess one scan and write its shard. Returns (scan_id, error, seconds)."""
    cache_dir, ct_path, mask_path, scan_id, preprocess, dtype, include_volume, hu_check, content_hash = task
    started = time.perf_counter()
    try:
        scan = preprocess_scan(ct_path, mask_path, preprocess, hu_check)
        samples = organ_samples(scan, preprocess)
        if not samples:
            raise InputError(f"{mask_path}: no organ with at least {preprocess.min_organ_voxels} voxels")
        volume = volume_sample(scan, preprocess) if include_volume else None
        io.write_scan_shard(cache_dir, scan_id, samples, volume, dtype, content_hash, scan.densities[""])
        return scan_id, "", time.perf_counter() - started
    except (InputError, OSError, ValueError) as error:
        return scan_id, str(error), time.perf_counter() - started


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _plan(config: CacheConfig) -> tuple[list[tuple[str, Path, Path]], list[ItemStatus]]:
    """Pair CTs with ok masks and parsed reports; anything unpaired is a failed item."""
    masks = read_masks_dir(config.masks_dir)
    reports = set(ok_items(read_manifest(config.reports_dir, "parse-reports")))
    listing = list_ct_folder(Path(config.ct_dir))
    todo, failed = [], list(listing.rejected)
    for scan_id, ct_path in listing.scans.items():
        if scan_id not in masks:
            failed.append(ItemStatus(scan_id, "failed", f"{ct_path}: no ok mask in {config.masks_dir}; "
                                     "run `ctglip segment` for it"))
        elif scan_id not in reports:
            failed.append(ItemStatus(scan_id, "failed", f"{ct_path}: no parsed report for {scan_id} in "
                                     f"{config.reports_dir}"))
        else:
            todo.append((scan_id, ct_path, masks[scan_id]))
    return todo, failed


def run(config: CacheConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Build (or resume) the cache in ``config.out_dir``.

    With ``shard=(k, n)``, n > 1, only every n-th scan's shard is built (n machines can share one
    folder, e.g. a SLURM array); the index, texts and embeddings are written by a final run
    without ``shard``, which skips the scans already cached (the merge step).
    """
    progress = progress or SilentProgress()
    out_dir = Path(config.out_dir)
    from stages.parse_reports.io import read_abnormality_dictionary, read_organ_texts

    todo, items = _plan(config)
    k, n = config.shard
    if n > 1:
        todo = [entry for index, entry in enumerate(sorted(todo)) if index % n == k - 1]
        items = items if k == 1 else []
    organ_texts = read_organ_texts(config.reports_dir)
    dictionary = read_abnormality_dictionary(config.reports_dir)
    report_texts = _report_texts(config) if config.include_volume else {}  # before any work: fail fast
    encoder = TextEncoder.load(config.text_encoder) if n == 1 else None
    with claim_output(out_dir, "cache", overwrite=config.overwrite, lock_name="" if n == 1 else f"shard-{k}of{n}"):
        content_hash = io.claim_content_config(out_dir, config.content_config())
        io.retract_tables(out_dir)
        return _build(config, out_dir, todo, items, organ_texts, dictionary, report_texts, encoder, content_hash,
                      progress)


def _build(config: CacheConfig, out_dir: Path, todo: list[tuple[str, Path, Path]], items: list[ItemStatus],
           organ_texts: pd.DataFrame, dictionary: dict[str, dict[str, int]], report_texts: dict[str, str],
           encoder: TextEncoder | None, content_hash: str, progress: ProgressReporter) -> StageResult:
    """Preprocess the pending scans; without a shard, also write the index, texts, embeddings, manifest."""
    pending = []
    for scan_id, ct_path, mask_path in todo:
        if not config.overwrite and io.read_scan_meta(out_dir, scan_id, content_hash) is not None:
            items.append(ItemStatus(scan_id, DONE_EARLIER))
        else:
            pending.append((out_dir, ct_path, mask_path, scan_id, config.preprocess,
                            config.image_dtype, config.include_volume, config.hu_check, content_hash))
    progress.start(len(pending), "cache: preprocess scans")
    failures = 0
    for scan_id, error, seconds in _map(pending, config.workers):
        failures += bool(error)
        items.append(ItemStatus(scan_id, "failed" if error else "ok", error, seconds))
        progress.advance(failed=failures)
    if encoder is None:  # a shard run: the merge run writes the tables
        return StageResult("cache", out_dir, sorted(items, key=lambda i: i.item_id))

    done = sorted(i.item_id for i in items if i.status in USABLE)
    index, texts, vocab = _assemble(out_dir, done, organ_texts, dictionary, config, content_hash, report_texts)
    progress.start(1, "cache: embed texts")
    embeddings = encoder.encode(texts)
    progress.advance()
    io.write_tables(out_dir, index, texts, embeddings, vocab)
    write_manifest(out_dir, "cache", config, sorted(items, key=lambda i: i.item_id),
                   package_versions("monai", "nibabel", "torch", "sentence-transformers"),
                   extra={"content_hash": content_hash,
                          "window": list(config.preprocess.window),
                          "text_encoder": encoder.describe(),
                          "anatomy_table_version": ANATOMY_TABLE_VERSION,
                          "n_samples": {"organ": int((index["kind"] == "organ").sum()),
                                        "volume": int((index["kind"] == "volume").sum())}})
    return StageResult("cache", out_dir, sorted(items, key=lambda i: i.item_id))


def _map(tasks: list[tuple], workers: int):
    if workers == 1 or len(tasks) <= 1:
        yield from map(_process_scan, tasks)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        yield from pool.map(_process_scan, tasks, chunksize=1)


class _TextTable:
    """Distinct texts in first-seen order -> text ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, text: str) -> int:
        return self.ids.setdefault(text, len(self.ids))

    def texts(self) -> list[str]:
        return list(self.ids)


def _report_texts(config: CacheConfig) -> dict[str, str]:
    """Per scan, the raw report text the global baseline pairs with the whole volume ({} for
    ``organ_sentences``, which joins the organ texts instead). The table is ``reports_table``
    or the one ``ctglip parse-reports`` recorded in its manifest."""
    if config.global_text == "organ_sentences":
        return {}
    from stages.parse_reports import io as reports_io

    recorded = read_manifest(config.reports_dir, "parse-reports").get("config", {}).get("reports")
    path = Path(config.reports_table or recorded or "")
    if not path.is_file():
        raise SetupError(f"global text {config.global_text!r} needs the raw reports table: {path} (recorded "
                         f"by parse-reports in {config.reports_dir}) is not a file; pass --reports-table")
    table = reports_io.read_table(path)
    columns = reports_io.resolve_columns(table, path)
    if config.global_text == "impression" and columns.impression is None:
        raise InputError(f"{path}: no impression column; use --global-text findings_impression")
    records, _ = reports_io.load_reports(path, columns, table, merge_duplicates=True)
    texts = {}
    for record in records:
        parts = [record.impression] if config.global_text == "impression" else [record.findings, record.impression]
        text = " ".join(part.strip() for part in parts + [record.text] if part.strip())
        texts[record.scan_id] = text or " ".join(p.strip() for p in (record.findings, record.text) if p.strip())
    return texts


def _assemble(out_dir: Path, scan_ids: list[str], organ_texts: pd.DataFrame,
              dictionary: dict[str, dict[str, int]], config: CacheConfig, content_hash: str,
              report_texts: dict[str, str]):
    """Index rows for every cached sample, the text table and the vocabulary."""
    units = organ_units()
    table = _TextTable()
    reports = {(r.scan_id, r.organ): r for r in organ_texts.itertuples(index=False)}
    shards = {scan_id: io.read_scan_json(out_dir, scan_id, content_hash) or {} for scan_id in scan_ids}
    metas = {scan_id: shard.get("samples", []) for scan_id, shard in shards.items()}
    vocab_organs = sorted({m["organ"] for meta in metas.values() for m in meta} | set(dictionary))
    vocab_organs = [organ for organ in vocab_organs if organ in units]
    organ_index = {organ: i for i, organ in enumerate(vocab_organs)}
    normal_ids = {o: table.add(fill_template(config.normal_template, units[o].display_name)) for o in vocab_organs}
    name_ids = {o: table.add(units[o].display_name) for o in vocab_organs}
    phrase_ids = {o: {p: table.add(fill_template(ABNORMALITY_TEMPLATE, units[o].display_name, phrase=p))
                      for p in sorted(dictionary.get(o, {}))} for o in vocab_organs}
    rows: list[dict[str, Any]] = []
    for scan_id in scan_ids:
        scan_texts = []
        for row_number, meta in enumerate(metas[scan_id]):
            organ = meta["organ"]
            report = reports.get((scan_id, organ))
            if report is not None:
                abnormal, uncertain = bool(report.abnormal), bool(report.uncertain)
                phrases = [str(p) for p in report.abnormalities]
                scan_texts.append(str(report.text))
                text = fill_template(config.organ_text_template, units[organ].display_name, text=str(report.text))
            else:
                text, abnormal, uncertain, phrases = None, False, False, []
            text_id = table.add(text) if text else normal_ids[organ]
            rows.append({"kind": "organ", "scan_id": scan_id, "organ": organ, "organ_index": organ_index[organ],
                         "row": row_number, "text_id": text_id, "abnormal": abnormal, "uncertain": uncertain,
                         "complete": bool(meta["complete"]), "volume_ml": float(meta["volume_ml"]),
                         "bbox_vox": meta["bbox_vox"], "bbox_mm": meta["bbox_mm"], "scale": meta["scale"],
                         "position": meta["position"], "density": meta["density"],
                         "abnormalities": phrases,
                         "abnormality_text_ids": [phrase_ids[organ][p] for p in phrases if p in phrase_ids[organ]]})
        if config.include_volume:
            whole = report_texts.get(scan_id) or " ".join(dict.fromkeys(scan_texts)) or "No significant abnormality."
            scan_abnormal = any(r["abnormal"] for r in rows if r["scan_id"] == scan_id and r["kind"] == "organ")
            rows.append({"kind": "volume", "scan_id": scan_id, "organ": VOLUME_ORGAN, "organ_index": -1,
                         "row": 0, "text_id": table.add(whole), "abnormal": scan_abnormal, "uncertain": False,
                         "complete": True, "volume_ml": 0.0, "bbox_vox": [], "bbox_mm": [], "scale": 1.0,
                         "position": [0.0, 0.0, 0.0], "density": shards[scan_id]["scan_density"],
                         "abnormalities": [], "abnormality_text_ids": []})
    vocab = {"organ_vocab": vocab_organs, "organ_name_text_ids": name_ids, "normal_text_ids": normal_ids,
             "abnormality_dictionary": {o: dict(dictionary.get(o, {})) for o in vocab_organs},
             "abnormality_text_ids": phrase_ids}
    columns = ["kind", "scan_id", "organ", "organ_index", "row", "text_id", "abnormal", "uncertain", "complete",
               "volume_ml", "bbox_vox", "bbox_mm", "scale", "position", "density", "abnormalities",
               "abnormality_text_ids"]
    return pd.DataFrame(rows, columns=columns), table.texts(), vocab
