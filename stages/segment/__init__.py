"""``ctglip segment``: one TotalSegmentator multilabel mask per CT, on the CT's own grid.

Usable from Python like the CLI: ``run(SegmentConfig(ct_dir, out_dir, engine="import",
import_from=src))``.
"""
from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib

from stages.common.anatomy import ANATOMY_TABLE_VERSION, TOTALSEG_TASK, totalseg_class_map
from stages.common.atomic import atomic_path
from stages.common.ct_folder import list_ct_folder
from stages.common.errors import SetupError
from stages.common.ids import InvalidScanId, scan_id_from_path, validate_scan_id
from stages.common.manifest import DONE_EARLIER, ItemStatus, StageResult, package_versions, write_manifest
from stages.common.hu_check import check_hu
from stages.common.nifti import InputError, check_voxel_data, load_volume, read_array
from stages.common.outputs import claim_output
from stages.common.progress import ProgressReporter, SilentProgress
from stages.segment import io
from stages.common.shards import parse_shard
from stages.segment.config import SegmentConfig
from stages.segment.engines import (WeightsMissing, check_totalseg_weights, load_imported_mask,
                                    run_totalsegmentator, validated_mask)

__all__ = ["SegmentConfig", "WeightsMissing", "parse_shard", "run", "shard_files"]


def shard_files(files: list[Path], shard: tuple[int, int]) -> list[Path]:
    """This process's share of the sorted file list (deterministic across machines)."""
    k, n = shard
    return [path for index, path in enumerate(sorted(files, key=lambda p: p.name)) if index % n == k - 1]


def _segment_one(config: SegmentConfig, ct_path: Path, scan_id: str) -> None:
    ct = load_volume(ct_path, "CT")
    if config.hu_check != "off":
        check_hu(read_array(ct, ct_path), ct_path, config.hu_check)  # reads every voxel
    else:
        check_voxel_data(ct_path, ct)  # the import engine never reads the CT's voxels otherwise
    if config.engine == "import":
        mask, source = load_imported_mask(Path(config.import_from), scan_id)
    else:
        mask, source = run_totalsegmentator(ct_path, config.fast, config.device), ct_path
    out = validated_mask(ct, mask, source, config.affine_tolerance_mm)
    _add_label_names(out)
    with atomic_path(io.mask_path(config.out_dir, scan_id)) as temp:
        nib.save(out, temp)


def _add_label_names(image: nib.Nifti1Image) -> None:
    """Store id -> class name in the NIfTI extension, as TotalSegmentator does."""
    from totalsegmentator.nifti_ext_header import add_label_map_to_nifti

    add_label_map_to_nifti(image, totalseg_class_map())


def run(config: SegmentConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Segment (or import) every CT of this shard; resumable, one failure never stops the rest."""
    progress = progress or SilentProgress()
    out_dir = Path(config.out_dir)
    listing = list_ct_folder(Path(config.ct_dir))
    files = shard_files(list(listing.scans.values()), config.shard)
    if config.engine == "totalsegmentator":
        check_totalseg_weights(config.fast)
    if config.engine == "import" and not Path(config.import_from).is_dir():
        raise SetupError(f"{config.import_from}: segmentation folder does not exist")
    k, n = config.shard  # shards share the folder: each locks alone, and --overwrite redoes its scans in place
    with claim_output(out_dir, "segment", overwrite=config.overwrite and n == 1,
                      lock_name="" if n == 1 else f"shard-{k}of{n}"):
        return _segment_all(config, files, listing.rejected, out_dir, progress)


def _segment_all(config: SegmentConfig, files: list[Path], rejected: list[ItemStatus], out_dir: Path,
                 progress: ProgressReporter) -> StageResult:
    items = _record_rejected(rejected, config.engine, out_dir)  # every shard lists the folder's problems
    progress.start(len(files), f"segment ({config.engine})")
    for ct_path in files:
        started = time.perf_counter()
        scan_id = scan_id_from_path(ct_path)
        previous = io.read_status(out_dir, scan_id)
        if (not config.overwrite and previous and previous["status"] == "ok"
                and io.mask_path(out_dir, scan_id).is_file()):
            item = ItemStatus(scan_id, DONE_EARLIER, extra={"engine": previous.get("engine", config.engine)})
        else:
            try:
                _segment_one(config, ct_path, scan_id)
                item = ItemStatus(scan_id, "ok", extra={"engine": config.engine})
            except (InputError, OSError, ValueError) as error:
                item = ItemStatus(scan_id, "failed", str(error), extra={"engine": config.engine})
            item.seconds = time.perf_counter() - started
            io.write_status(out_dir, item)
        items.append(item)
        progress.advance(failed=sum(i.status == "failed" for i in items))
    _write_manifests(config, out_dir)
    return StageResult("segment", out_dir, items)


def _record_rejected(rejected: list[ItemStatus], engine: str, out_dir: Path) -> list[ItemStatus]:
    """Folder entries that cannot be segmented, as failed items; those with a usable id also get a
    status file, so the manifest lists them and a mask from an earlier run is no longer trusted."""
    items = []
    for item in rejected:
        item = ItemStatus(item.item_id, "failed", item.error, extra={"engine": engine})
        try:
            validate_scan_id(item.item_id)
        except InvalidScanId:
            items.append(item)
            continue
        io.write_status(out_dir, item)
        items.append(item)
    return items


def _write_manifests(config: SegmentConfig, out_dir: Path) -> None:
    """Rebuild manifest.csv/json from every shard's status files (a scan done earlier stays ok there)."""
    statuses = io.all_statuses(out_dir)
    io.write_manifest_csv(out_dir, statuses)
    write_manifest(out_dir, "segment", config, statuses,
                   package_versions("totalsegmentator", "nibabel", "torch"),
                   extra={"totalsegmentator_task": TOTALSEG_TASK, "anatomy_table_version": ANATOMY_TABLE_VERSION,
                          "labels": {str(k): v for k, v in totalseg_class_map().items()}})
