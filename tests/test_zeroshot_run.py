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
from stages.zeroshot.metrics import auc
from stages.zeroshot.training import UnfinishedRunWarning
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
    scan_ids = [path.name[:-len(".nii.gz")] for path in sorted(ct_dir.glob("*.nii.gz"))]
    labels = pd.read_csv(tiny_pipeline_dir / "labels.csv", dtype={"scan_id": str})
    labels_path = ct_dir.parent / "labels_3scans.csv"
    labels[labels.scan_id.isin(scan_ids)].to_csv(labels_path, index=False)
    return SimpleNamespace(ct_dir=ct_dir, masks_dir=tiny_pipeline_dir / "segmentations",
                           truth_masks=tiny_pipeline_dir / "masks", labels=labels_path,
                           all_labels=tiny_pipeline_dir / "labels.csv", scan_ids=scan_ids,
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
                                   torch.tensor([sample.position], dtype=torch.float32),
                                   torch.from_numpy(sample.density)[None])[0]
        sides = []
        for prompts in (positive, negative):
            vectors = model.encode_text(torch.from_numpy(encoder.encode(prompts)))
            mean = vectors.mean(dim=0)
            sides.append(float(model.logit_scale) * float(image @ (mean / mean.norm())))
    return float(np.exp(sides[0]) / (np.exp(sides[0]) + np.exp(sides[1])))


def test_grounded_run_on_raw_nifti(scans, grounded_checkpoint, tmp_path):
    out = tmp_path / "out"
    with pytest.warns(UnfinishedRunWarning, match=r"last.pt is not a finished run \(step 2 of \d+"):
        result = run(_raw_config(scans, grounded_checkpoint, out, labels=scans.labels,
                                 abnormalities=scans.abnormalities, save_embeddings=True))
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
    assert metrics["training"]["step"] == 2 and metrics["training"]["finished"] is False
    assert metrics["training"]["total_steps"] > 2
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
    assert "warning:" in done.output and "is not a finished run" in _flat(done)
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


def _wide_labels(long_labels: Path, target: Path, extra: dict[str, list[int]] | None = None) -> Path:
    """A CT-RATE-style wide CSV (VolumeName with .nii.gz, one 0/1 column per finding) made from
    synth's organ-level labels through the shipped label map: a scan is positive when any organ is."""
    from stages.zeroshot.label_map import load_label_map

    long = pd.read_csv(long_labels, dtype={"scan_id": str})
    name_of = {(organ, entry.phrase): name for name, entry in load_label_map().labels.items() for organ in entry.organs}
    long["label"] = [name_of[(o, a)] for o, a in zip(long.organ, long.abnormality)]
    wide = long.groupby(["scan_id", "label"])["present"].max().unstack(fill_value=0).astype(int)
    for name, values in (extra or {}).items():
        wide[name] = values
    wide.index = [f"{scan}.nii.gz" for scan in wide.index]
    wide.rename_axis("VolumeName").to_csv(target)
    return target


def test_wide_scan_labels_aggregate_organ_scores(scans, grounded_checkpoint, tmp_path):
    wide = _wide_labels(scans.labels, tmp_path / "wide.csv")
    out = tmp_path / "out"
    result = run(_raw_config(scans, grounded_checkpoint, out, labels=wide))
    assert result.exit_code == 0
    predictions = read_predictions(out / "predictions.csv")
    metrics = read_metrics(out / "metrics.json")
    section = metrics["scan_labels"]
    assert metrics["protocol"]["name"] == "ctglip" and section["threshold"]["method"] == "roc_nearest_corner"
    truth = pd.read_csv(wide).melt(id_vars="VolumeName", var_name="label", value_name="present")
    truth["scan_id"] = truth.VolumeName.str.replace(".nii.gz", "", regex=False)
    assert set(section["per_label"]) == set(truth.label) and section["unscored"] == {}
    scan_rows = predictions[predictions.task == "scan_label"]
    organ_rows = predictions[predictions.task == "abnormality"]
    assert len(scan_rows) == len(truth)  # every scan has every lung, heart, ... organ of the labels
    row = scan_rows[scan_rows.label == "Lung nodule"].iloc[0]
    lungs = organ_rows[(organ_rows.scan_id == row.scan_id) & organ_rows.organ.isin(["lung_left", "lung_right"])
                       & (organ_rows.label == "nodule")]
    assert len(lungs) == 2 and row.score == pytest.approx(lungs.score.max()) and row.organ in set(lungs.organ)
    merged = scan_rows.merge(truth, on=["scan_id", "label"])
    for label, values in section["per_label"].items():
        rows = merged[merged.label == label]
        present = rows.present.to_numpy(bool)
        expected = (None if present.all() or not present.any()
                    else float(auc(present, rows.score.to_numpy())[0]))
        assert values["auc"]["value"] == (None if expected is None else pytest.approx(expected, abs=1e-6))
        assert values["n"] == 3 and values["n_positive"] == int(present.sum())
    assert read_manifest(out, "zeroshot")["headline"]["scan_labels.macro.auc"] == section["macro"]["auc"]["value"]


def test_organ_free_labels_global_ctclip_and_grounded(scans, global_checkpoint, grounded_checkpoint, tmp_path):
    wide = _wide_labels(scans.labels, tmp_path / "wide.csv", {"Medical material": [1, 0, 0],
                                                              "Lymphadenopathy": [0, 1, 1]})
    out = tmp_path / "global"
    assert run(_raw_config(scans, global_checkpoint, out, labels=wide, protocol="ctclip")).exit_code == 0
    metrics = read_metrics(out / "metrics.json")
    section = metrics["scan_labels"]
    assert section["unscored"] == {} and section["per_label"]["Medical material"]["n"] == 3
    assert section["threshold"] == {"method": "roc_nearest_corner_grid100", "prediction": "score > threshold"}
    assert section["f1_kind"] == "weighted" and metrics["protocol"]["name"] == "ctclip"
    assert "Medical material" in section["macro"]["labels"]
    assert "Medical material" not in section["macro_fvlm16"]["labels"]
    predictions = read_predictions(out / "predictions.csv")
    volume = predictions[(predictions.organ == "volume") & (predictions.task == "abnormality")]
    assert set(volume.label) == {"Medical material", "Lymphadenopathy"} and len(volume) == 6
    prompts = read_manifest(out, "zeroshot")["prompts"]
    assert prompts["abnormality_positive"] == ["{Abnormality} is present."]

    grounded = tmp_path / "grounded"
    assert run(_raw_config(scans, grounded_checkpoint, grounded, labels=wide, protocol="fvlm")).exit_code == 0
    section = read_metrics(grounded / "metrics.json")["scan_labels"]
    assert set(section["unscored"]) == {"Medical material", "Lymphadenopathy"}
    assert "no organ unit" in section["unscored"]["Lymphadenopathy"]
    assert not {"Medical material", "Lymphadenopathy"} & set(section["per_label"])


def _flat(done) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(done.output.split())


def test_inputs_that_match_nothing_are_refused(scans, grounded_checkpoint, tmp_path):
    runner = CliRunner()
    base = ["zeroshot", str(grounded_checkpoint), "--masks-dir", str(scans.masks_dir), "--resamples", "20",
            "--device", "cpu"]
    empty = tmp_path / "empty"
    empty.mkdir()
    done = runner.invoke(app, [*base, "--ct-dir", str(empty), "-o", str(tmp_path / "a")])
    assert done.exit_code == 2 and "no CT files" in _flat(done) and str(empty) in _flat(done)
    assert not (tmp_path / "a").exists()
    others = [scan for scan in pd.read_csv(scans.all_labels, dtype={"scan_id": str}).scan_id.unique()
              if scan not in scans.scan_ids]
    done = runner.invoke(app, [*base, "--ct-dir", str(scans.ct_dir), "-o", str(tmp_path / "b"),
                               "--labels", str(scans.all_labels)])
    assert done.exit_code == 2 and f"{len(others)} of 10 labelled scan ids match no scan" in _flat(done)
    assert others[0] in _flat(done)
    wide = _wide_labels(scans.all_labels, tmp_path / "wide.csv")
    done = runner.invoke(app, [*base, "--ct-dir", str(scans.ct_dir), "-o", str(tmp_path / "c"), "--labels", str(wide)])
    assert done.exit_code == 2 and "match no scan" in _flat(done)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("VolumeName,Lung nodule,Broken leg\n" + "".join(f"{s}.nii.gz,0,1\n" for s in scans.scan_ids))
    done = runner.invoke(app, [*base, "--ct-dir", str(scans.ct_dir), "-o", str(tmp_path / "d"), "--labels",
                               str(unknown)])
    assert done.exit_code == 2 and "'Broken leg'" in _flat(done)
    done = runner.invoke(app, [*base, "--ct-dir", str(scans.ct_dir), "-o", str(tmp_path / "e"), "--labels",
                               str(scans.labels), "--label-map", str(tmp_path / "map.json")])
    assert done.exit_code == 2 and "organ-level" in _flat(done)
    done = runner.invoke(app, [*base, "--ct-dir", str(scans.ct_dir), "-o", str(tmp_path / "f"), "--protocol", "x"])
    assert done.exit_code == 2 and "ctglip, ctclip, fvlm" in _flat(done)
