"""``ctglip ingest`` on the real TotalSegmentator example: nested NIfTI folders, CT-RATE v1/v2
files with metadata, stored values without metadata, DICOM series written with pydicom."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from stages.common.nifti import InputError
from stages.ingest import IngestConfig, run

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module")
def real_ct(shared_example_dir: Path) -> nib.Nifti1Image:
    return nib.load(shared_example_dir / "example_ct_sm.nii.gz")


def _hu(image_or_path) -> np.ndarray:
    image = nib.load(image_or_path) if isinstance(image_or_path, (str, Path)) else image_or_path
    return np.asanyarray(nib.as_closest_canonical(image).dataobj).astype(np.float32)


def _ctrate_tree(real_ct: nib.Nifti1Image, root: Path) -> Path:
    """CT-RATE-like nesting: v2 (HU, right spacing), v1 (stored = HU + 1024, header spacing 1 mm)."""
    hu = np.asanyarray(real_ct.dataobj).astype(np.int16)
    v1_affine = real_ct.affine.copy()
    v1_affine[:3, :3] = np.eye(3)
    for name, data, affine in [("train_1_a_1", hu, real_ct.affine), ("train_2_a_1", hu + 1024, v1_affine),
                               ("train_3_a_1", hu + 1024, real_ct.affine)]:
        case, recon = name.rsplit("_", 2)[0], name.rsplit("_", 1)[0]
        folder = root / "train" / case / recon
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(data.astype(np.int16), affine), folder / f"{name}.nii.gz")
    return root


def _metadata(path: Path, names: list[str]) -> Path:
    lines = ["VolumeName,Manufacturer,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing"]
    lines += [f'{name}.nii.gz,ctglip,1,-1024,"[3.0, 3.0]",3.0' for name in names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_v1_with_metadata_equals_v2_and_stored_values_without_metadata_fail(real_ct, tmp_path: Path) -> None:
    src = _ctrate_tree(real_ct, tmp_path / "ctrate")
    metadata = _metadata(tmp_path / "train_metadata.csv", ["train_1_a_1", "train_2_a_1"])
    out = tmp_path / "ct"
    result = run(IngestConfig(src=src, out_dir=out, metadata=metadata))
    status = {item.item_id: item for item in result.items}
    assert {k: v.status for k, v in status.items()} == {"train_1_a_1": "ok", "train_2_a_1": "ok", "train_3_a_1": "failed"}
    assert result.exit_code == 1
    v2, v1 = _hu(out / "train_1_a_1.nii.gz"), _hu(out / "train_2_a_1.nii.gz")
    assert np.max(np.abs(v1 - v2)) <= 1.0 and np.array_equal(v2, _hu(real_ct))
    assert np.allclose(nib.load(out / "train_2_a_1.nii.gz").affine, real_ct.affine)
    # v2 with v1 metadata: not rescaled twice, linked unchanged, with a note
    v2_entry = status["train_1_a_1"].extra
    assert v2_entry["applied"][0].startswith(("hardlink", "symlink")) and "already HU" in v2_entry["notes"][0]
    assert (out / "train_1_a_1.nii.gz").read_bytes() == (src / "train/train_1/train_1_a/train_1_a_1.nii.gz").read_bytes()
    v1_entry = status["train_2_a_1"].extra
    assert any(a.startswith("rescale slope 1 intercept -1024") for a in v1_entry["applied"])
    assert any(a.startswith("spacing [1.0, 1.0, 1.0] -> [3.0, 3.0, 3.0]") for a in v1_entry["applied"])
    assert v1_entry["hu"]["tissue_fraction"] > 0.5
    error = status["train_3_a_1"].error
    assert "train_3_a_1.nii.gz: not a CT in Hounsfield units" in error and "--metadata" in error
    assert "stored values" in error
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "ingest" and manifest["items"]["train_2_a_1"]["status"] == "ok"
    # resumable: a rerun skips the ok scans and retries the failed one
    again = run(IngestConfig(src=src, out_dir=out, metadata=metadata))
    assert {i.item_id: i.status for i in again.items} == {"train_1_a_1": "done-earlier", "train_2_a_1": "done-earlier",
                                                          "train_3_a_1": "failed"}


def test_cli_exit_codes_and_list_file(real_ct, tmp_path: Path) -> None:
    from ctglip_cli.main import app

    src = _ctrate_tree(real_ct, tmp_path / "ctrate")
    runner = CliRunner()
    failed = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "a")])
    assert failed.exit_code == 1 and sorted(p.name for p in (tmp_path / "a").glob("*.nii.gz")) == ["train_1_a_1.nii.gz"]
    listing = tmp_path / "subset.txt"
    listing.write_text("ctrate/train/train_1/train_1_a/train_1_a_1.nii.gz\n# a comment\n", encoding="utf-8")
    ok = runner.invoke(app, ["ingest", str(listing), "-o", str(tmp_path / "b")])
    assert ok.exit_code == 0, ok.output
    assert [p.name for p in (tmp_path / "b").glob("*.nii.gz")] == ["train_1_a_1.nii.gz"]
    warned = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "c"), "--hu-check", "warn"])
    assert warned.exit_code == 0, warned.output


def test_duplicate_scan_ids_name_both_paths(real_ct, tmp_path: Path) -> None:
    for folder in ("site_a", "site_b/nested"):
        (tmp_path / "src" / folder).mkdir(parents=True)
        nib.save(real_ct, tmp_path / "src" / folder / "case.nii.gz")
    with pytest.raises(InputError) as raised:
        run(IngestConfig(src=tmp_path / "src", out_dir=tmp_path / "out"))
    assert "site_a/case.nii.gz" in str(raised.value) and "site_b/nested/case.nii.gz" in str(raised.value)


def _write_series(folder: Path, hu: np.ndarray, affine: np.ndarray, study: str, series: str, number: int,
                  step: int = 1, image_type: str = "AXIAL", modality: str = "CT") -> None:
    """A DICOM series of ``hu`` (RAS volume) as a scanner writes it: LPS geometry, stored = HU + 1024."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    nx, ny, nz = hu.shape
    spacing = np.abs(np.diag(affine)[:3])
    series_uid = generate_uid()
    for out_index, k in enumerate(range(0, nz, step)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.ImageType = modality, ["ORIGINAL", "PRIMARY", image_type]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series_uid, number
        ds.SeriesDescription, ds.InstanceNumber = series, out_index + 1
        ds.FrameOfReferenceUID = study
        # standard axial orientation: columns go to the patient's left, rows to posterior
        ras_corner = affine @ [nx - 1, ny - 1, k, 1]
        ds.ImagePositionPatient = [float(-ras_corner[0]), float(-ras_corner[1]), float(ras_corner[2])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2] * step)
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        pixels = (hu[::-1, ::-1, k].T.astype(np.int32) + 1024).astype(np.int16)  # signed: the example reaches -1100
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"IM{out_index:04d}", enforce_file_format=True)


def test_dicom_series_found_converted_and_ct_series_chosen(real_ct, tmp_path: Path) -> None:
    from pydicom.uid import generate_uid

    hu = np.asanyarray(real_ct.dataobj).astype(np.int16)
    study = tmp_path / "dicom" / "patient7" / "study_2019"
    uid = generate_uid()
    _write_series(study / "s2_thin", hu, real_ct.affine, uid, "soft tissue 3 mm", 2)
    _write_series(study / "s3_thick", hu, real_ct.affine, uid, "soft tissue 6 mm", 3, step=2)
    _write_series(study / "s1_scout", hu[:, :, :1], real_ct.affine, uid, "topogram", 1, image_type="LOCALIZER")
    nested = tmp_path / "dicom" / "nifti_here" / "deeper"
    nested.mkdir(parents=True)
    nib.save(real_ct, nested / "plain.nii.gz")
    out = tmp_path / "ct"
    result = run(IngestConfig(src=tmp_path / "dicom", out_dir=out, workers=2))
    assert {i.item_id: i.status for i in result.items} == {"study_2019": "ok", "plain": "ok"}, \
        [(i.item_id, i.error) for i in result.items]
    converted = nib.load(out / "study_2019.nii.gz")
    assert np.array_equal(_hu(converted), _hu(real_ct))  # HU after the rescale, orientation from the geometry
    assert np.allclose(nib.as_closest_canonical(converted).affine, real_ct.affine, atol=1e-3)
    entry = {i.item_id: i for i in result.items}["study_2019"].extra
    assert entry["series"]["chosen"]["description"] == "soft tissue 3 mm"
    reasons = {p["description"]: p["reason"] for p in entry["series"]["passed_over"]}
    assert "LOCALIZER" in reasons["topogram"] and "fewer slices" in reasons["soft tissue 6 mm"]
    assert entry["applied"][0].startswith("DICOM -> NIfTI (30 slices")


def test_shards_share_one_folder(real_ct, tmp_path: Path) -> None:
    src = _ctrate_tree(real_ct, tmp_path / "ctrate")
    metadata = _metadata(tmp_path / "meta.csv", ["train_1_a_1", "train_2_a_1", "train_3_a_1"])
    out = tmp_path / "ct"
    first = run(IngestConfig(src=src, out_dir=out, metadata=metadata, shard=(1, 2)))
    second = run(IngestConfig(src=src, out_dir=out, metadata=metadata, shard=(2, 2)))
    assert [i.item_id for i in first.items] == ["train_1_a_1", "train_3_a_1"]
    assert [i.item_id for i in second.items] == ["train_2_a_1"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["items"]) == ["train_1_a_1", "train_2_a_1", "train_3_a_1"]
    assert all(item["status"] == "ok" for item in manifest["items"].values())


def test_bad_inputs_fail_alone_with_the_reason(real_ct, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "good").mkdir(parents=True)
    nib.save(real_ct, src / "good" / "good.nii.gz")
    (src / "good" / "broken.nii.gz").write_bytes(b"not a nifti")
    nib.save(real_ct, src / "good" / "bad name.nii.gz")
    mask = np.asanyarray(real_ct.dataobj) > 100
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), real_ct.affine), src / "good" / "mask.nii.gz")
    from pydicom.uid import generate_uid

    _write_series(src / "scout_only", np.asanyarray(real_ct.dataobj)[:, :, :1].astype(np.int16), real_ct.affine,
                  generate_uid(), "topogram", 1, image_type="LOCALIZER")
    result = run(IngestConfig(src=src, out_dir=tmp_path / "out"))
    status = {Path(i.item_id).name: i for i in result.items}
    assert status["good"].status == "ok"
    assert "cannot read CT NIfTI" in status["broken"].error
    assert "is not allowed" in status["bad name.nii.gz"].error
    assert "not a CT in Hounsfield units" in status["mask"].error
    assert "no CT series" in status["scout_only"].error and "LOCALIZER" in status["scout_only"].error
    assert result.exit_code == 1


def test_setup_errors_stop_before_any_work(real_ct, tmp_path: Path) -> None:
    from ctglip_cli.main import app

    src = _ctrate_tree(real_ct, tmp_path / "ctrate")
    bad_meta = tmp_path / "meta.csv"
    bad_meta.write_text("VolumeName,Slope\ntrain_1_a_1.nii.gz,1\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "out"), "--metadata", str(bad_meta)])
    assert result.exit_code == 2 and "RescaleSlope" in result.output
    listing = tmp_path / "list.txt"
    listing.write_text("missing/scan.nii.gz\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(listing), "-o", str(tmp_path / "out2")])
    assert result.exit_code == 2 and "do not exist" in result.output
    result = runner.invoke(app, ["ingest", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out3")])
    assert result.exit_code == 2 and "does not exist" in result.output
