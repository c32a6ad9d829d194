"""``ctglip ingest``: input mess in, one clean folder of HU NIfTI files out.

``run(IngestConfig(src, out_dir, metadata=...))`` finds NIfTI files and DICOM series under
``src`` (or in a list file), converts, rescales and fixes spacing where the HU check and the
metadata say so, links files that need no change, and writes a manifest per scan.
"""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from stages.common.ids import InvalidScanId
from stages.common.manifest import DONE_EARLIER, FAILED, OK, ItemStatus, StageResult, package_versions, write_manifest
from stages.common.outputs import claim_output
from stages.common.nifti import InputError
from stages.common.progress import ProgressReporter, SilentProgress
from stages.ingest import io
from stages.ingest.config import IngestConfig
from stages.ingest.convert import ingest_one
from stages.ingest.metadata import VolumeMetadata, read_metadata
from stages.ingest.sources import Source, discover

__all__ = ["IngestConfig", "run"]


def _task(args: tuple[Source, Path, VolumeMetadata | None, str]) -> ItemStatus:
    """Worker: one scan, never raising for a bad one (its reason goes to the manifest)."""
    source, out_dir, meta, hu_check = args
    started = time.perf_counter()
    base = {"source": str(source.path), "kind": source.kind}
    try:
        outcome = ingest_one(source, out_dir, meta, hu_check)
        item = ItemStatus(source.scan_id, OK, extra=outcome.extra(source))
    except (InputError, InvalidScanId, OSError) as error:
        item = ItemStatus(source.scan_id, FAILED, str(error), extra=base)
    item.seconds = time.perf_counter() - started
    io.write_status(out_dir, item)
    return item


def _map(tasks: list[tuple], workers: int):
    if workers == 1 or len(tasks) <= 1:
        yield from map(_task, tasks)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_task, tasks, chunksize=1)


def run(config: IngestConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Ingest this shard's scans into ``config.out_dir``; resumable, one bad scan never stops the rest."""
    progress = progress or SilentProgress()
    found = discover(Path(config.src))
    metadata = read_metadata(Path(config.metadata)) if config.metadata else {}
    k, n = config.shard
    mine = [s for index, s in enumerate(found.sources) if index % n == k - 1]
    items = [ItemStatus(path, FAILED, reason) for path, reason in found.invalid] if k == 1 else []
    with claim_output(config.out_dir, "ingest", overwrite=config.overwrite,
                      lock_name=f"shard-{k}of{n}" if n > 1 else "") as out_dir:
        tasks = []
        for source in mine:
            previous = io.read_status(out_dir, source.scan_id)
            output = out_dir / str(previous.get("output", "")) if previous else None
            if (previous and previous["status"] == OK and output is not None and output.is_file()
                    and previous.get("source") == str(source.path)):
                extra = {key: value for key, value in previous.items() if key not in {"scan_id", "status", "error"}}
                items.append(ItemStatus(source.scan_id, DONE_EARLIER, extra=extra))
            else:
                tasks.append((source, out_dir, metadata.get(source.scan_id), config.hu_check))
        progress.start(len(tasks), "ingest")
        failures = 0
        for item in _map(tasks, config.workers):
            items.append(item)
            failures += item.status == FAILED
            progress.advance(failed=failures)
        unmatched = sorted(set(metadata) - {s.scan_id for s in found.sources})
        _write_manifests(config, out_dir, len(found.sources), unmatched)
    return StageResult("ingest", Path(config.out_dir), sorted(items, key=lambda i: i.item_id))


def _write_manifests(config: IngestConfig, out_dir: Path, n_found: int, unmatched: list[str]) -> None:
    """Rebuild manifest.csv/json from every shard's status files."""
    statuses = io.all_statuses(out_dir)
    io.write_manifest_csv(out_dir, statuses)
    write_manifest(out_dir, "ingest", config, statuses,
                   package_versions("nibabel", "SimpleITK", "pydicom"),
                   extra={"found": n_found, "metadata_rows_without_scan": len(unmatched),
                          "metadata_rows_without_scan_examples": unmatched[:20]})
