"""``ctglip zeroshot`` end to end: real synth NIfTI, real segment/cache folders, a tiny model
trained for a few steps by ``stages.pretrain.run``, and the real frozen text encoder."""
from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ctglip_cli import zeroshot as zeroshot_cli
from ctglip_cli.main import app
from stages.cache import organ_samples, preprocess_scan
from stages.common.manifest import read_manifest
from stages.common.text_encoder import TextEncoder
from stages.pretrain import load_checkpoint, make_config
from stages.pretrain import run as pretrain
from stages.segment import SegmentConfig
from stages.segment import run as segment
from stages.zeroshot import ZeroshotConfig, run
from stages.zeroshot.io import read_embeddings, read_metrics, read_predictions
from stages.zeroshot.prompts import abnormality_prompts, load_templates

FAST = dict(resamples=100, device="cpu")


def _train(cache_dir: Path, out_dir: Path, mode: str) -> Path:
    config = make_config(cache_dir, out_dir, mode=mode, preset="tiny", encoder="cnn", device="cpu",
                         stop_after_steps=2, batch_size=8, epochs=1, num_workers=0)
    pretrain(config)
    return out_dir / "last.pt"


@pytest.fixture(scope="module")
def grounded_checkpoint(tiny_cache_dir, tmp_path_factory) -> Path:
    return _train(tiny_cache_dir, tmp_path_factory.mktemp("zs_grounded") / "run", "grounded")


@pytest.fixture(scope="module")
def global_checkpoint(tiny_cache_dir, tmp_path_factory) -> Path:
    return _train(tiny_cache_dir, tmp_path_factory.mktemp("zs_global") / "run", "global")


@pytest.fixture(scope="module")
def scans(tiny_pipeline_dir, tmp_path_factory) -> SimpleNamespace:
    """Three of the tiny pipeline's CTs, its `ctglip segment` folder, labels and label space."""
    ct_dir = tmp_path_factory.mktemp("zs_ct")
    for ct in sorted((tiny_pipeline_dir / "ct").glob("*.nii.gz"))[:3]:
        shutil.copy(ct, ct_dir / ct.name)
    return SimpleNamespace(ct_dir=ct_dir, masks_dir=tiny_pipeline_dir / "segmentations",
                           truth_masks=tiny_pipeline_dir / "masks", labels=tiny_pipeline_dir / "labels.csv",
                           abnormalities=tiny_pipeline_dir / "abnormalities.json")


def _raw_config(scans: SimpleNamespace, checkpoint: Path, out: Path, **options) -> ZeroshotConfig:
    return ZeroshotConfig(checkpoint=checkpoint, output_dir=out, ct_dir=scans.ct_dir, masks_dir=scans.masks_dir,
                          **{**FAST, **options})


def _independent_abnormality_score(checkpoint: Path, ct: Path, mask: Path, organ: str, phrase: str) -> float:
    """The score recomputed step by step, outside the stage's code path."""
    model, loaded = load_checkpoint(checkpoint)
    config = loaded.config
    preprocess = config.cache.preprocess
    sample = next(s for s in organ_samples(preprocess_scan(ct, mask, preprocess), preprocess) if s.organ == organ)
    encoder = TextEncoder.load(config.text_encoder["id"])
    positive, negative = abnormality_prompts(load_templates(), organ, phrase)
    with torch.no_grad():
        image = model.encode_image(torch.from_numpy(sample.image)[None, None],
                                   torch.from_numpy(sample.mask)[None, None],
                                   torch.tensor([sample.position], dtype=torch.float32))[0]
        sides = []
        for prompts in (positive, negative):
            vectors = model.encode_text(torch.from_numpy(encoder.encode(prompts)))
            mean = vectors.mean(dim=0)
            sides.append(float(model.logit_scale) * float(image @ (mean / mean.norm())))
    return float(np.exp(sides[0]) / (np.exp(sides[0]) + np.exp(sides[1])))


def test_grounded_run_on_raw_nifti(scans, grounded_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run(_raw_config(scans, grounded_checkpoint, out, labels=scans.labels, abnormalities=scans.abnormalities,
                             save_embeddings=True))
    assert result.exit_code == 0 and result.counts()["ok"] == 3
    predictions = read_predictions(out / "predictions.csv")
    checkpoint_config = load_checkpoint(grounded_checkpoint)[1].config
    recognition = predictions[predictions.task == "organ_recognition"]
    abnormality = predictions[predictions.task == "abnormality"]
    assert set(recognition.organ) <= set(checkpoint_config.organ_vocab)
    assert set(recognition.predicted_organ) <= set(checkpoint_config.organ_vocab)
    assert recognition["rank"].between(1, len(checkpoint_config.organ_vocab)).all()
    assert ((recognition["rank"] == 1) == (recognition.organ == recognition.predicted_organ)).all()
    space = json.loads(scans.abnormalities.read_text())["abnormalities"]
    assert set(zip(abnormality.organ, abnormality.label)) <= {(o, p) for o, ps in space.items() for p in ps}
    assert abnormality.score.between(0, 1).all() and len(abnormality) > 0

    row = abnormality.iloc[0]
    expected = _independent_abnormality_score(grounded_checkpoint, scans.ct_dir / f"{row.scan_id}.nii.gz",
                                              scans.masks_dir / f"{row.scan_id}.nii.gz", row.organ, row.label)
    assert row.score == pytest.approx(expected, abs=1e-4)

    metrics = read_metrics(out / "metrics.json")
    assert metrics["organ_recognition"]["top1"] == pytest.approx((recognition["rank"] == 1).mean(), abs=1e-6)
    assert metrics["organ_recognition"]["top5"] == pytest.approx((recognition["rank"] <= 5).mean(), abs=1e-6)
    section = metrics["abnormality"]
    assert {"auc_macro", "f1_macro", "macro", "per_abnormality"} <= set(section)
    assert section["threshold"]["method"] == "roc_nearest_corner"
    assert section["bootstrap"]["resamples"] == 100
    labels = pd.read_csv(scans.labels, dtype={"scan_id": str})
    assert section["n_labels_matched"] + section["n_labels_unmatched"] == len(labels)
    assert section["n_scans"] == 3
    for name in ("confusion_organs.png", "roc_abnormalities.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"

    embeddings, index = read_embeddings(out)
    organ_rows = predictions.drop_duplicates(["scan_id", "organ"])
    assert len(index) == len(organ_rows) and embeddings.shape[0] == len(index)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert set(index.source) == {"organ"}
    manifest = read_manifest(out, "zeroshot")
    assert manifest["headline"]["organ_recognition.top1"] == metrics["organ_recognition"]["top1"]
    assert set(manifest["outputs"]) >= {"predictions.csv", "metrics.json", "embeddings.npy"}


def test_cache_input_gives_the_raw_scores(scans, tiny_cache_dir, grounded_checkpoint, tmp_path):
    """The same scans through --cache and through raw NIfTI: same scores (cache images are 8-bit)."""
    from_cache = run(ZeroshotConfig(checkpoint=grounded_checkpoint, output_dir=tmp_path / "cache",
                                    cache_dir=tiny_cache_dir, **FAST))
    from_raw = run(_raw_config(scans, grounded_checkpoint, tmp_path / "raw"))
    assert from_cache.exit_code == 0 and from_raw.exit_code == 0
    keys = ["scan_id", "organ", "task", "label"]
    raw = read_predictions(tmp_path / "raw" / "predictions.csv")
    merged = raw.merge(read_predictions(tmp_path / "cache" / "predictions.csv"), on=keys,
                       suffixes=("_raw", "_cache"))
    assert len(merged) == len(raw) > 0
    np.testing.assert_allclose(merged.score_raw, merged.score_cache, atol=0.02)
    assert (merged.complete_raw == merged.complete_cache).all()


def test_global_checkpoint_scores_the_whole_volume(scans, global_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run(_raw_config(scans, global_checkpoint, out, labels=scans.labels, save_embeddings=True))
    assert result.exit_code == 0
    predictions = read_predictions(out / "predictions.csv")
    recognition = predictions[predictions.task == "organ_recognition"]
    # one embedding per scan: every organ of a scan gets the same top-1 organ
    assert (recognition.groupby("scan_id").predicted_organ.nunique() == 1).all()
    embeddings, index = read_embeddings(out)
    assert list(index.organ) == ["volume"] * 3 and embeddings.shape[0] == 3
    metrics = read_metrics(out / "metrics.json")
    assert metrics["mode"] == "global" and "abnormality" in metrics


def _write_like(reference: nib.Nifti1Image, data: np.ndarray, path: Path) -> None:
    nib.save(nib.Nifti1Image(data, reference.affine), str(path))


def test_bad_scans_are_recorded_and_the_rest_goes_on(scans, grounded_checkpoint, tmp_path):
    good = sorted(scans.ct_dir.glob("*.nii.gz"))[0]
    good_mask = scans.truth_masks / good.name
    ct_dir, source = tmp_path / "ct", tmp_path / "source_masks"
    ct_dir.mkdir()
    source.mkdir()
    for name in ("good", "nomask", "wronggrid", "emptymask", "corrupt"):
        shutil.copy(good, ct_dir / f"{name}.nii.gz")
        if name != "nomask":
            shutil.copy(good_mask, source / f"{name}.nii.gz")
    segment(SegmentConfig(ct_dir=ct_dir, out_dir=tmp_path / "masks", engine="import", import_from=source,
                          device="cpu"))
    mask = nib.load(str(good_mask))
    labels = np.asarray(mask.dataobj)
    _write_like(mask, labels[:-4].copy(), tmp_path / "masks" / "wronggrid.nii.gz")
    _write_like(mask, np.zeros_like(labels), tmp_path / "masks" / "emptymask.nii.gz")
    (ct_dir / "corrupt.nii.gz").write_bytes(b"not a nifti file")

    result = run(ZeroshotConfig(checkpoint=grounded_checkpoint, output_dir=tmp_path / "out", ct_dir=ct_dir,
                                masks_dir=tmp_path / "masks", **FAST))
    status = {item.item_id: item for item in result.items}
    assert status["good"].status == "ok" and result.exit_code == 1
    assert "no mask" in status["nomask"].error
    assert "not on the CT's grid" in status["wronggrid"].error and "wronggrid.nii.gz" in status["wronggrid"].error
    assert "no organ" in status["emptymask"].error
    assert "corrupt.nii.gz" in status["corrupt"].error
    predictions = read_predictions(tmp_path / "out" / "predictions.csv")
    assert set(predictions.scan_id) == {"good"}
    assert read_manifest(tmp_path / "out", "zeroshot")["items"]["corrupt"]["status"] == "failed"


def test_cli_exit_codes_and_options(scans, tiny_cache_dir, grounded_checkpoint, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("organ: ['CT of the {organ}.']\n")
    args = ["zeroshot", str(grounded_checkpoint), "--ct-dir", str(scans.ct_dir), "--masks-dir", str(scans.masks_dir),
            "-o", str(out), "--labels", str(scans.labels), "--prompts", str(prompts), "--threshold", "0.5",
            "--resamples", "50", "--device", "cpu"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "organ recognition" in done.output and "macro" in done.output
    metrics = read_metrics(out / "metrics.json")
    assert metrics["abnormality"]["threshold"] == {"method": "given", "value": 0.5, "prediction": "score >= threshold"}
    assert read_manifest(out, "zeroshot")["prompts"]["organ"] == ["CT of the {organ}."]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    validation = runner.invoke(app, [*args[:-6], "--val-fraction", "0.34", "--resamples", "50", "--device", "cpu",
                                     "--overwrite"])
    assert validation.exit_code == 0, validation.output
    threshold = read_metrics(out / "metrics.json")["abnormality"]["threshold"]
    assert threshold["method"] == "validation_best_f1" and len(threshold["validation_scans"]) == 1
    both = runner.invoke(app, ["zeroshot", str(grounded_checkpoint), "--cache", str(tiny_cache_dir), "--ct-dir",
                               str(tmp_path), "-o", str(tmp_path / "x")])
    assert both.exit_code == 2 and "not both" in both.output
    missing = runner.invoke(app, ["zeroshot", str(tmp_path / "nope.pt"), "--cache", str(tiny_cache_dir),
                                  "-o", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "checkpoint not found" in missing.output


def test_every_cli_option_maps_to_a_config_field():
    fields = set(ZeroshotConfig.__dataclass_fields__)
    options = set(inspect.signature(zeroshot_cli.command).parameters)
    mapped = {zeroshot_cli.OPTION_FIELDS.get(option, option) for option in options}
    assert mapped == fields


def test_real_ct_with_totalsegmentator_mask(shared_example_dir, grounded_checkpoint, tmp_path):
    """The real example CT and its TotalSegmentator segmentation go through like synth data."""
    ct_dir, source = tmp_path / "ct", tmp_path / "source"
    ct_dir.mkdir()
    source.mkdir()
    shutil.copy(shared_example_dir / "example_ct_sm.nii.gz", ct_dir / "case1.nii.gz")
    shutil.copy(shared_example_dir / "example_seg.nii.gz", source / "case1.nii.gz")
    segment(SegmentConfig(ct_dir=ct_dir, out_dir=tmp_path / "masks", engine="import", import_from=source, device="cpu"))
    result = run(ZeroshotConfig(checkpoint=grounded_checkpoint, output_dir=tmp_path / "out", ct_dir=ct_dir,
                                masks_dir=tmp_path / "masks", save_embeddings=True, **FAST))
    assert result.exit_code == 0, result.failed
    predictions = read_predictions(tmp_path / "out" / "predictions.csv")
    checkpoint_config = load_checkpoint(grounded_checkpoint)[1].config
    present = set(np.unique(np.asarray(nib.load(str(shared_example_dir / "example_seg.nii.gz")).dataobj)))
    scored = set(predictions[predictions.task == "organ_recognition"].organ)
    assert scored and scored <= set(checkpoint_config.organ_vocab)
    assert len(present) > len(scored)  # organs outside the vocabulary and label space are not cropped
    embeddings, index = read_embeddings(tmp_path / "out")
    assert set(index.organ) == set(predictions.organ) and np.isfinite(embeddings).all()
