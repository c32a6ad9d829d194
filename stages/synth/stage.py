"""``run(config)``: generate the dataset on disk, scan by scan, in worker processes.

A scan that fails is recorded as failed and the others go on; reports.csv and labels.csv list
the scans that were written. Nothing depends on the number of workers or on scan order.
"""
from __future__ import annotations

import multiprocessing
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.errors import SetupError
from stages.common.manifest import (MANIFEST_NAME, ItemStatus, StageResult, config_hash, package_versions,
                                    read_manifest, write_manifest)
from stages.common.progress import ProgressReporter, SilentProgress
from stages.synth import io
from stages.synth.config import GENERATOR_VERSION, SynthConfig
from stages.synth import ctrate
from stages.synth.generate import SynthScan, generate_scan, scan_id_of
from stages.synth.labelspace import finding_keys, label_space
from stages.synth.plots import plot_examples, plot_prevalence

PREVIEW_SCANS = 4
EXAMPLES_PNG = "examples.png"
PREVALENCE_PNG = "prevalence.png"


def _display_slices(scan: SynthScan) -> dict[str, Any]:
    """An axial slice through the liver dome region and a coronal one through the kidneys, for the preview."""
    spacing = np.abs(np.diag(scan.affine)[:3])
    z = int(scan.ct.shape[2] * 0.55)
    y = int(scan.ct.shape[1] * 0.42)
    return {"scan_id": scan.scan_id,
            "title": "\n".join(f"{f.organ}: {f.abnormality}" for f in scan.findings[:3]) or "normal",
            "axial": scan.ct[::-1, ::-1, z].T, "axial_mask": scan.mask[::-1, ::-1, z].T,
            "coronal": scan.ct[::-1, y, ::-1].T, "coronal_mask": scan.mask[::-1, y, ::-1].T,
            "axial_aspect": spacing[1] / spacing[0], "coronal_aspect": spacing[2] / spacing[0]}


def make_scan(config: SynthConfig, index: int) -> dict[str, Any]:
    """Generate and write one scan; returns its report, label rows and status (never raises)."""
    started = time.perf_counter()
    scan_id = scan_id_of(config, index)
    try:
        scan = generate_scan(config, index)
        io.write_ct(io.ct_path(config.out_dir, scan.scan_id), scan.ct, scan.affine)
        io.write_mask(io.mask_path(config.out_dir, scan.scan_id), scan.mask, scan.affine)
        if config.layout == "ctrate":
            ctrate.write_stored_volume(config.out_dir, scan.scan_id, scan.ct, scan.affine)
    except Exception as error:  # one bad scan must not stop the batch; the reason goes to the manifest
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"index": index, "scan_id": scan_id, "status": "failed", "error": detail,
                "seconds": time.perf_counter() - started}
    return {
        "index": index, "scan_id": scan_id, "status": "ok", "error": "", "seconds": time.perf_counter() - started,
        "report": {"scan_id": scan_id, "findings": scan.report.findings, "impression": scan.report.impression},
        "labels": [{"scan_id": scan_id, "organ": organ, "abnormality": phrase, "present": present}
                   for (organ, phrase), present in scan.truth.items()],
        "reported": [list(key) for key in scan.report.reported],
        "preview": _display_slices(scan) if config.preview and index < PREVIEW_SCANS else None,
        "ctrate_metadata": ctrate.metadata_row(scan_id, scan.ct.shape, config.spacing),
    }


OUTPUT_NAMES = frozenset({io.CT_DIR, io.MASK_DIR, io.REPORTS_CSV, io.LABELS_CSV, io.ABNORMALITIES_JSON,
                          EXAMPLES_PNG, PREVALENCE_PNG, MANIFEST_NAME, ctrate.DATASET_DIR})


def _prepare_output(config: SynthConfig) -> None:
    """Accept a new or empty folder, or (with ``overwrite``) an earlier or interrupted synth run.

    Replacing one removes its scans first, so no stale scan from a bigger earlier run is mixed in;
    files that synth does not write are never touched, and their presence refuses the folder.
    """
    out = config.out_dir
    if out.exists() and not out.is_dir():
        raise SetupError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    foreign = sorted(path.name for path in out.iterdir() if not _written_by_synth(path.name))
    if foreign:
        raise SetupError(f"{out}: folder holds files synth did not write ({', '.join(foreign[:5])}); "
                              "choose a new folder")
    if (out / MANIFEST_NAME).is_file():
        read_manifest(out, "synth")
    if not config.overwrite:
        raise SetupError(f"{out}: already holds a synth dataset (complete or interrupted); pass --overwrite "
                              "to replace it or choose another folder")
    for folder in (out / io.CT_DIR, out / io.MASK_DIR):
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            if path.is_file() and path.name.lstrip(".").startswith(("synth_s", f"{ctrate.SPLIT}_")):
                path.unlink()
    shutil.rmtree(out / ctrate.DATASET_DIR, ignore_errors=True)
    for path in out.iterdir():
        if path.is_file():
            path.unlink()


def _written_by_synth(name: str) -> bool:
    """An output name, or the temp file of one that a killed run left behind (``.<name>.<random>``)."""
    return name in OUTPUT_NAMES or any(name.startswith(f".{known}.") for known in OUTPUT_NAMES)


def _records(config: SynthConfig, progress: ProgressReporter) -> list[dict[str, Any]]:
    records = []
    if config.workers == 1:
        for index in range(config.n_scans):
            records.append(make_scan(config, index))
            progress.advance(1, failed=sum(r["status"] == "failed" for r in records))
        return records
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(config.workers, config.n_scans), mp_context=context) as pool:
        futures = [pool.submit(make_scan, config, index) for index in range(config.n_scans)]
        for future in as_completed(futures):
            records.append(future.result())
            progress.advance(1, failed=sum(r["status"] == "failed" for r in records))
    return sorted(records, key=lambda record: record["index"])


def _prevalence(records: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """Per finding: share of scans showing it (among scans where the organ is visible) and reporting it."""
    shown = {key: [0, 0] for key in finding_keys()}
    reported = {key: 0 for key in finding_keys()}
    for record in records:
        for row in record["labels"]:
            counts = shown[(row["organ"], row["abnormality"])]
            counts[0] += int(row["present"])
            counts[1] += 1
        for organ, phrase in record["reported"]:
            reported[(organ, phrase)] += 1
    return [(f"{organ}: {phrase}", shown[(organ, phrase)][0] / max(shown[(organ, phrase)][1], 1),
             reported[(organ, phrase)] / max(shown[(organ, phrase)][1], 1)) for organ, phrase in finding_keys()]


def run(config: SynthConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Generate ``config.n_scans`` scans with reports and truth under ``config.out_dir``."""
    progress = progress or SilentProgress()
    space = label_space()
    _prepare_output(config)
    (config.out_dir / io.CT_DIR).mkdir(parents=True, exist_ok=True)
    (config.out_dir / io.MASK_DIR).mkdir(parents=True, exist_ok=True)
    progress.start(config.n_scans, "synth: generating scans")
    records = _records(config, progress)
    written = [record for record in records if record["status"] == "ok"]
    io.write_reports(config.out_dir / io.REPORTS_CSV, [record["report"] for record in written])
    io.write_labels(config.out_dir / io.LABELS_CSV, [row for record in written for row in record["labels"]])
    io.write_abnormalities(config.out_dir / io.ABNORMALITIES_JSON, space, GENERATOR_VERSION)
    if config.layout == "ctrate":
        ctrate.write_tables(config.out_dir, written)
    prevalence = _prevalence(written)
    if config.preview and written:
        plot_prevalence(config.out_dir / PREVALENCE_PNG, prevalence)
        examples = [record["preview"] for record in written if record["preview"] is not None]
        if examples:
            plot_examples(config.out_dir / EXAMPLES_PNG, examples)
    items = [ItemStatus(item_id=record["scan_id"], status=record["status"], error=record["error"],
                        seconds=record["seconds"],
                        extra={"findings_reported": len(record.get("reported", []))}) for record in records]
    content = config.content_fields()
    write_manifest(config.out_dir, "synth", config, items, package_versions("numpy", "scipy", "nibabel"), extra={
        "generator_version": GENERATOR_VERSION, "seed": config.seed, "dataset_hash": config_hash(content),
        "dataset": content, "label_space": space,
        "prevalence": {name: {"image": round(image, 4), "report": round(report, 4)}
                       for name, image, report in prevalence},
        "mean_seconds_per_scan": round(float(np.mean([r["seconds"] for r in records])), 3),
    })
    return StageResult(stage="synth", output_dir=Path(config.out_dir), items=items)
