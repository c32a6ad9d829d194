"""ctglip synth: real NIfTI files, real reports; truth checked against the images and the text."""
from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from ctglip_cli import synth as synth_cli
from ctglip_cli.main import app
from stages.common.anatomy import organ_units, totalseg_class_map
from stages.common.errors import SetupError
from stages.common.manifest import read_manifest
from stages.synth import (ABNORMALITIES, SynthConfig, generate_scan, planned_abnormalities, read_dataset, run,
                          scan_id_for)
from stages.synth import phrases
from stages.synth.config import parse_triple
from stages.synth.lesions import Finding
from stages.synth.reports import write_report

# Mean HU of each organ unit on portal-venous contrast CT (literature ranges, widened for partial
# volume at 3 mm): what a radiologist would accept as that tissue.
TISSUE_HU = {
    "lung_left": (-900, -650), "lung_right": (-900, -650), "trachea": (-1000, -300),
    "liver": (60, 150), "spleen": (70, 160), "kidney_left": (70, 220), "kidney_right": (70, 220),
    "pancreas": (40, 150), "gallbladder": (-20, 45), "heart": (60, 250), "aorta": (100, 350),
    "inferior_vena_cava": (60, 250), "superior_vena_cava": (60, 250), "esophagus": (-150, 90),
    "autochthon_left": (20, 90), "autochthon_right": (20, 90), "spinal_cord": (-20, 150),
    "vertebrae_thoracic": (150, 700), "vertebrae_lumbar": (150, 700), "ribs_left": (150, 800),
    "ribs_right": (150, 800), "sternum": (150, 700), "costal_cartilages": (40, 300),
}

# Independent lexicon for "is this abnormality stated as present in this sentence?"
POSITIVE = {
    "nodule": r"nodul", "pleural effusion": r"pleural (?:effusion|fluid)|fluid is present in the \w+ pleural|effusions",
    "emphysema": r"emphysem", "consolidation": r"consolidat|airspace opacity|opacity in the",
    "hypodense lesion": r"hypodens|hypoattenuat|low-attenuation (?:liver )?lesion",
    "steatosis": r"steatosis|fatty|decreased liver attenuation|low liver attenuation",
    "cyst": r"cyst", "stone": r"calcul|stone|nephrolith", "splenomegaly": r"splenomegaly|enlarged|increased in size",
    "cardiomegaly": r"cardiomegaly|enlarge|size is increased", "pericardial effusion": r"pericardial (?:effusion|fluid|sac)",
    "calcification": r"calcif|atheroma|atherosclero", "gallstone": r"gallstone|cholelith|stone|calcul",
}
ORGAN_CUE = {"lung": r"lung|lobe|pulmonary|pleural|emphysem|consolidat|nodul", "liver": r"liver|hepat",
             "kidney": r"kidney|renal|nephro", "spleen": r"splen|spleen", "heart": r"heart|cardi|pericard",
             "aorta": r"aort", "gallbladder": r"gallbladder|gallstone|cholelith"}
NEGATION = re.compile(r"\b(?:no|not|neither|nor|without|free of)\b", re.IGNORECASE)


def _organs_for(base: str) -> list[str]:
    return [organ for organ in ABNORMALITIES if organ.split("_")[0] == base]


def positive_mentions(text: str) -> list[tuple[list[str], str, str]]:
    """(candidate organs, abnormality, sentence) for every non-negated mention in ``text``."""
    mentions = []
    for sentence in re.split(r"(?<=\.)\s+|\s*\d+\.\s+", text):
        lowered = sentence.lower()
        for base, cue in ORGAN_CUE.items():
            if not re.search(cue, lowered):
                continue
            for abnormality in {a for organ in _organs_for(base) for a in ABNORMALITIES[organ]}:
                match = re.search(POSITIVE[abnormality], lowered)
                if match is None or NEGATION.search(lowered[: match.start()]):
                    continue
                organs = _organs_for(base)
                sides = {side for side in ("left", "right") if side in lowered}
                if len(organs) == 2 and len(sides) == 1 and not re.search(r"both|bilateral", lowered):
                    side = sides.pop()
                    organs = [organ for organ in organs if organ.endswith(side)]
                elif len(organs) == 2:
                    organs = ["&".join(organs)]
                mentions.append((organs, abnormality, sentence))
    return mentions


def assert_mentions_are_true(text: str, present: set[tuple[str, str]]) -> None:
    for organs, abnormality, sentence in positive_mentions(text):
        ok = any(all((part, abnormality) in present for part in organ.split("&")) for organ in organs)
        assert ok, f"report states {abnormality!r} ({organs}) that the image lacks: {sentence!r}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    result = run(SynthConfig(out_dir=out, n_scans=6, seed=3, prevalence=0.5))
    assert result.exit_code == 0, [item.error for item in result.failed]
    return read_dataset(out)


def test_run_writes_the_documented_files(dataset):
    assert dataset.scan_ids == [scan_id_for(3, i) for i in range(6)] == [f"synth_s3_000{i}" for i in range(6)]
    assert sorted(dataset.reports["scan_id"]) == dataset.scan_ids
    assert dataset.label_space == {organ: list(p) for organ, p in ABNORMALITIES.items()}
    assert dataset.manifest["generator_version"] and dataset.manifest["seed"] == 3
    for name in ("examples.png", "prevalence.png"):
        assert (dataset.folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for scan_id in dataset.scan_ids:
        ct, mask = nib.load(dataset.ct(scan_id)), nib.load(dataset.mask(scan_id))
        assert ct.get_data_dtype() == np.int16 and mask.get_data_dtype() == np.uint8
        assert ct.shape == mask.shape == (96, 96, 96) and ct.header.get_zooms() == (3.0, 3.0, 3.0)
        assert nib.aff2axcodes(ct.affine) == ("R", "A", "S") and np.allclose(ct.affine, mask.affine)
        assert b"kidney_cyst_left" in mask.header.extensions[0].get_content()
        rows = dataset.labels[dataset.labels["scan_id"] == scan_id]
        assert not rows.duplicated(["organ", "abnormality"]).any()
        assert {(o, a) for o, a in zip(rows["organ"], rows["abnormality"])} <= {
            (organ, phrase) for organ, phrases_ in ABNORMALITIES.items() for phrase in phrases_}


def test_label_space_reads_naturally_in_prompts():
    units = organ_units()
    assert len(ABNORMALITIES) >= 6 and len({p for v in ABNORMALITIES.values() for p in v}) >= 10
    prompts = [f"{units[organ].display_name} with {phrase}" for organ, p in ABNORMALITIES.items() for phrase in p]
    assert "left kidney with stone" in prompts and "liver with steatosis" in prompts


def _centroid(mask: np.ndarray, affine: np.ndarray, ids) -> np.ndarray:
    voxels = np.argwhere(np.isin(mask, ids))
    return (affine[:3, :3] @ voxels.mean(axis=0)) + affine[:3, 3]


def test_masks_use_totalsegmentator_ids_in_plausible_places(dataset):
    names = {name: label for label, name in totalseg_class_map().items()}
    units = organ_units()
    for scan_id in dataset.scan_ids[:3]:
        image = nib.load(dataset.mask(scan_id))
        mask, affine = np.asarray(image.dataobj), image.affine
        ids = set(np.unique(mask).tolist()) - {0}
        assert ids <= set(totalseg_class_map())
        present_units = {unit for unit, u in units.items() if ids & set(u.label_ids)}
        assert len(present_units) >= 15, present_units
        center = {unit: _centroid(mask, affine, units[unit].label_ids)
                  for unit in ("liver", "spleen", "heart", "lung_left", "lung_right", "kidney_left", "kidney_right",
                               "aorta", "vertebrae_thoracic")}
        assert center["liver"][0] > 0 > center["spleen"][0]          # RAS: +x is the patient's right
        assert center["lung_right"][0] > 0 > center["lung_left"][0]
        assert center["heart"][2] > center["liver"][2] > center["kidney_right"][2]
        assert center["kidney_left"][1] < center["liver"][1] and center["kidney_right"][1] < center["heart"][1]
        assert abs(center["aorta"][0]) < 40 and abs(center["vertebrae_thoracic"][0]) < 10
        lobes = {names[f"lung_{lobe}_lobe_{side}"] for lobe, side in
                 [("upper", "left"), ("lower", "left"), ("upper", "right"), ("middle", "right"), ("lower", "right")]}
        assert lobes <= ids
        levels = [level for level in ("T8", "T9", "T10", "T11", "T12", "L1", "L2") if names[f"vertebrae_{level}"] in ids]
        heights = [_centroid(mask, affine, [names[f"vertebrae_{level}"]])[2] for level in levels]
        assert len(levels) >= 5 and heights == sorted(heights, reverse=True)
        assert sum(names[f"rib_left_{i}"] in ids for i in range(1, 13)) >= 8


def test_mean_hu_inside_each_organ_is_in_its_tissue_range():
    config = SynthConfig(out_dir=Path("unused"), seed=11, prevalence=0.0)
    units = organ_units()
    for index in range(3):
        scan = generate_scan(config, index)
        assert not any(scan.truth.values())
        assert scan.ct[0, -1, -1] < -900  # air in front of the body
        for unit, (low, high) in TISSUE_HU.items():
            inside = np.isin(scan.mask, units[unit].label_ids)
            if inside.sum() >= 30:
                mean = float(scan.ct[inside].mean())
                assert low <= mean <= high, f"{scan.scan_id} {unit}: mean {mean:.0f} HU outside [{low}, {high}]"


FOCAL = {"nodule", "consolidation", "hypodense lesion", "cyst", "stone", "calcification", "gallstone"}


def _assert_visible(full, without, organ: str, phrase: str) -> None:
    ids = organ_units()[organ].label_ids
    before, after = np.isin(without.mask, ids), np.isin(full.mask, ids)
    organ_region = before | after
    difference = full.ct.astype(np.float32) - without.ct
    changed = np.abs(difference) >= 30
    assert changed[organ_region].sum() >= 3, (organ, phrase)
    if phrase in FOCAL:
        near = ndimage.binary_dilation(organ_region, iterations=2)
        assert changed[near].sum() >= 0.7 * changed.sum(), (organ, phrase, "changes outside the organ")
        assert changed.mean() < 0.005, (organ, phrase, "lesion is not sparse")
        assert np.abs(difference[organ_region]).max() >= 40, (organ, phrase, "lesion too faint")
    elif phrase in ("splenomegaly", "cardiomegaly"):
        assert after.sum() >= 1.3 * before.sum(), (organ, phrase)
    elif phrase in ("steatosis", "emphysema"):
        drop = float(without.ct[before].mean() - full.ct[after].mean())
        assert drop >= 15, (organ, phrase, drop)
    elif phrase == "pericardial effusion":
        assert full.ct[after].mean() <= without.ct[before].mean() - 10
    elif phrase == "pleural effusion":
        assert after.sum() < before.sum() and full.ct[before].mean() > without.ct[before].mean() + 10


def test_every_abnormality_changes_the_image_inside_its_organ():
    """Each abnormality type, once: the scan with it vs the same scan generated without it."""
    config = SynthConfig(out_dir=Path("unused"), seed=5, prevalence=0.9)
    unchecked = {phrase for phrases_ in ABNORMALITIES.values() for phrase in phrases_}
    for index in range(40):
        planned = {(organ, phrase) for organ, phrase in planned_abnormalities(config, index) if phrase in unchecked}
        if not planned:
            continue
        full = generate_scan(config, index)
        for organ, phrase in sorted(planned):
            if phrase in unchecked and full.truth.get((organ, phrase)):
                without = generate_scan(config, index, without=[(organ, phrase)])
                assert without.truth[(organ, phrase)] is False
                _assert_visible(full, without, organ, phrase)
                unchecked.discard(phrase)
        if not unchecked:
            return
    raise AssertionError(f"never generated: {sorted(unchecked)}")


def test_generate_scan_refuses_unknown_abnormalities():
    with pytest.raises(ValueError, match="unknown"):
        generate_scan(SynthConfig(out_dir=Path("unused")), 0, without=[("liver", "cirrhosis")])


def _example_findings(rng: np.random.Generator) -> list[Finding]:
    lobes = {"lung_left": ["left upper lobe", "left lower lobe"],
             "lung_right": ["right upper lobe", "right middle lobe", "right lower lobe"]}
    findings = []
    for organ, phrases_ in ABNORMALITIES.items():
        for phrase in phrases_:
            if rng.random() < 0.3:
                details = {"size_mm": int(rng.integers(4, 30)), "count": int(rng.integers(1, 4)),
                           "severity": str(rng.choice(["small", "moderate", "mild"])), "length_cm": 14.5,
                           "location": "upper pole", "lobe": str(rng.choice(lobes.get(organ, ["right"])))}
                findings.append(Finding(organ, phrase, details))
    return findings


def test_the_lexicon_check_recognises_every_abnormal_phrasing():
    slots = {"side": "left", "lobe": "left upper lobe", "size": "9 mm", "location": "upper pole",
             "severity": "small", "count": 2, "length": 15.0}
    for organ, phrases_ in ABNORMALITIES.items():
        for phrase in phrases_:
            for template in phrases.ABNORMAL[phrase] + phrases.HEDGED[phrase]:
                sentence = template.format(**{**slots, "lobe": "left upper lobe" if "lung" in organ else "left"})
                found = {(tuple(organs), kind) for organs, kind, _ in positive_mentions(sentence)}
                expected = organ if organ.endswith("left") or "_" not in organ else organ.replace("right", "left")
                assert any(kind == phrase and expected in organs for organs, kind in found), sentence
                with pytest.raises(AssertionError):
                    assert_mentions_are_true(sentence, set())


def test_reports_state_only_true_findings_and_vary():
    rng = np.random.default_rng(0)
    orders = set()
    for _ in range(300):
        findings = _example_findings(rng)
        report = write_report(findings, list(ABNORMALITIES), rng, omit_fraction=0.1)
        present = {(f.organ, f.abnormality) for f in findings}
        assert set(report.reported) <= present
        assert_mentions_are_true(report.findings + " " + report.impression, present)
        if findings:
            orders.add(tuple(sorted((report.findings.find(w), w) for w in ("iver", "ung", "idney"))))
    assert len(orders) > 50
    silent = write_report(_example_findings(np.random.default_rng(1)), list(ABNORMALITIES), rng, omit_fraction=1.0)
    assert silent.reported == () and not positive_mentions(silent.findings + " " + silent.impression)
    findings = _example_findings(np.random.default_rng(2))
    complete = write_report(findings, list(ABNORMALITIES), rng, omit_fraction=0.0)
    assert set(complete.reported) == {(f.organ, f.abnormality) for f in findings}


def test_dataset_reports_match_the_image_truth(dataset):
    labels = dataset.labels
    texts = " ".join(dataset.reports["findings"])
    assert re.search(r"technique|contrast|indication|history", texts, re.IGNORECASE)
    for _, row in dataset.reports.iterrows():
        rows = labels[labels["scan_id"] == row["scan_id"]]
        present = {(o, a) for o, a, p in zip(rows["organ"], rows["abnormality"], rows["present"]) if p}
        assert row["findings"] and row["impression"]
        assert_mentions_are_true(row["findings"] + " " + row["impression"], present)
    assert labels["present"].mean() > 0.05


def test_phrasing_variety_and_templates_fill():
    slots = {"side": "left", "other_side": "right", "lobe": "left upper lobe", "lobe2": "right lower lobe",
             "size": "9 mm", "size2": "5 mm", "location": "upper pole", "severity": "small", "count": 2,
             "length": 15.0, "organs": "liver and spleen"}
    for phrase in {p for v in ABNORMALITIES.values() for p in v}:
        assert len(phrases.ABNORMAL[phrase]) >= 5, phrase
    assert all(len(options) >= 5 for options in phrases.NORMAL.values())
    for table in (phrases.ABNORMAL, phrases.HEDGED, phrases.BILATERAL, phrases.IMPRESSION, phrases.NEGATION,
                  phrases.NORMAL):
        for options in table.values():
            for template in options:
                assert template.format(**slots)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_same_arguments_give_byte_identical_files(tmp_path):
    first = run(SynthConfig(out_dir=tmp_path / "a", n_scans=2, seed=7, workers=1))
    second = run(SynthConfig(out_dir=tmp_path / "b", n_scans=2, seed=7, workers=2))
    assert first.exit_code == second.exit_code == 0
    files = _files(tmp_path / "a")
    assert len(files) == 9 and files == _files(tmp_path / "b")
    run(SynthConfig(out_dir=tmp_path / "c", n_scans=2, seed=8, preview=False))
    assert not {p for p in _files(tmp_path / "c") if p.startswith("ct/")} & set(files)


def test_a_failed_scan_is_listed_and_the_others_are_written(tmp_path):
    out = tmp_path / "data"
    blocker = out / "masks" / f"{scan_id_for(0, 1)}.nii.gz"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("not ours")
    result = run(SynthConfig(out_dir=out, n_scans=3, seed=0, overwrite=True, preview=False))
    assert result.exit_code == 1
    assert [item.item_id for item in result.failed] == [scan_id_for(0, 1)]
    assert "synth_s0_0001.nii.gz" in result.failed[0].error
    data = read_dataset(out)
    assert data.scan_ids == [scan_id_for(0, 0), scan_id_for(0, 2)]
    assert list(data.reports["scan_id"]) == data.scan_ids
    assert read_manifest(out, "synth")["items"][scan_id_for(0, 1)]["status"] == "failed"


def test_output_folder_rules(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SetupError, match="notes.txt"):
        run(SynthConfig(out_dir=foreign, n_scans=1))
    out = tmp_path / "data"
    run(SynthConfig(out_dir=out, n_scans=3, preview=False))
    with pytest.raises(SetupError, match="--overwrite"):
        run(SynthConfig(out_dir=out, n_scans=2))
    (out / ".reports.csv.k2j4.csv").write_text("temp file of a killed run")
    run(SynthConfig(out_dir=out, n_scans=2, seed=1, overwrite=True, preview=False))
    assert sorted(p.name for p in (out / "ct").iterdir()) == ["synth_s1_0000.nii.gz", "synth_s1_0001.nii.gz"]
    assert not (out / ".reports.csv.k2j4.csv").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"n_scans": 0}, "--n-scans"), ({"seed": -1}, "--seed"), ({"prevalence": 1.5}, "--prevalence"),
    ({"omit_fraction": -0.1}, "--omit-fraction"), ({"workers": 0}, "--workers"),
    ({"shape": (8, 96, 96)}, "--shape"), ({"spacing": (3.0, 0.0, 3.0)}, "--spacing"),
    ({"shape": (40, 40, 40)}, "field of view"),
])
def test_bad_config_names_the_option(kwargs, message):
    with pytest.raises(SetupError, match=message):
        SynthConfig(out_dir=Path("x"), **kwargs)


def test_parse_triple():
    assert parse_triple("96,96,80", "--shape", int) == (96, 96, 80)
    assert parse_triple("2.5", "--spacing", float) == (2.5, 2.5, 2.5)
    with pytest.raises(SetupError, match="--shape"):
        parse_triple("96,a,2", "--shape", int)


def test_every_cli_option_is_a_config_field():
    options = set(inspect.signature(synth_cli.command).parameters) - {"output"}
    assert options | {"out_dir"} == {f.name for f in fields(SynthConfig)}


def test_cli_anisotropic_run_and_exit_codes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "aniso"
    args = ["synth", "-o", str(out), "--n-scans", "1", "--shape", "80,80,40", "--spacing", "3.5,3.5,6", "--no-preview"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    image = nib.load(out / "ct" / "synth_s0_0000.nii.gz")
    assert image.shape == (80, 80, 40) and image.header.get_zooms() == (3.5, 3.5, 6.0)
    assert runner.invoke(app, args).exit_code == 2
    bad = runner.invoke(app, ["synth", "-o", str(tmp_path / "bad"), "--prevalence", "2"])
    assert bad.exit_code == 2 and "--prevalence" in bad.output


def test_segment_import_reads_the_masks(dataset, tmp_path):
    result = CliRunner().invoke(app, ["segment", str(dataset.folder / "ct"), "-o", str(tmp_path / "seg"),
                                      "--engine", "import", "--from", str(dataset.folder / "masks")])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "seg", "segment")["items"].keys() == set(dataset.scan_ids)


def test_parse_reports_reads_reports_csv(dataset, tmp_path):
    if not any(command.name == "parse-reports" for command in app.registered_commands):
        pytest.skip("`ctglip parse-reports` is not registered yet")
    result = CliRunner().invoke(app, ["parse-reports", str(dataset.folder / "reports.csv"), "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "p", "parse-reports")["stage"] == "parse-reports"
