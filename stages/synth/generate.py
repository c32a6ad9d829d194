"""One synthetic scan in memory: CT (HU), TotalSegmentator-style labels, image truth and report.

Every random choice comes from a stream keyed by (seed, scan index, purpose), and each
abnormality has its own stream, so ``generate_scan(config, i, without=[...])`` gives the same
scan with only those abnormalities left out (tests compare the two images).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stages.common.anatomy import organ_units
from stages.common.ids import validate_scan_id
from stages.synth.config import SynthConfig
from stages.synth.labelspace import ABNORMALITIES, BILATERAL_TENDENCY, finding_keys
from stages.synth.lesions import Finding, LesionContext, draw_diffuse, paint_abnormalities
from stages.synth.phantom import (Body, Canvas, Diffuse, Layout, Textures, paint_abdomen, paint_airways, paint_body,
                                  paint_bowel, paint_great_vessels, paint_heart, paint_lungs, paint_mediastinum,
                                  place_heart)
from stages.synth.reports import Report, write_report
from stages.synth.shapes import Grid, smooth_noise
from stages.synth.skeleton import paint_ribs, paint_spine

ANATOMY, TEXTURE, PRESENCE, REPORT, NOISE = range(5)
FINDING_STREAM_BASE = 100
MIN_ORGAN_ML = 5.0
HU_RANGE = (-1024, 3071)


@dataclass
class SynthScan:
    """A generated scan: arrays on one RAS grid plus its truth and report."""

    scan_id: str
    ct: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    truth: dict[tuple[str, str], bool]
    findings: list[Finding]
    report: Report


def scan_id_for(seed: int, index: int) -> str:
    """Ids carry the seed so that sets generated with different seeds never collide."""
    return validate_scan_id(f"synth_s{seed}_{index:04d}")


def scan_id_of(config: SynthConfig, index: int) -> str:
    """The id of scan ``index``: ``synth_s<seed>_<index>``, or CT-RATE's ``train_<n>_a_1`` with that layout."""
    if config.layout == "ctrate":
        from stages.synth.ctrate import volume_id

        return volume_id(index)
    return scan_id_for(config.seed, index)


def _stream(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, purpose)))


def sample_abnormalities(rng: np.random.Generator, prevalence: float) -> set[tuple[str, str]]:
    """Which abnormalities a scan has: each organ unit is abnormal with probability ``prevalence``
    (one type, sometimes more); effusion and emphysema tend to be bilateral. All draws are made
    whatever the outcome, so the sequence never shifts."""
    present: set[tuple[str, str]] = set()
    for organ, phrases in ABNORMALITIES.items():
        abnormal = rng.random() < prevalence
        first = int(rng.integers(len(phrases)))
        extra = rng.random(len(phrases))
        if abnormal:
            present.add((organ, phrases[first]))
            present.update((organ, phrase) for phrase, draw in zip(phrases, extra) if draw < 0.15)
    for phrase in sorted(BILATERAL_TENDENCY):
        spread = rng.random() < 0.3
        sides = [(organ, phrase) for organ in ("lung_left", "lung_right")]
        if spread and any(key in present for key in sides):
            present.update(sides)
    return present


def planned_abnormalities(config: SynthConfig, index: int) -> set[tuple[str, str]]:
    """The abnormalities scan ``index`` is drawn with (cheap: no image is made). One whose organ
    or lesion site falls outside the field of view is dropped when the scan is generated."""
    return sample_abnormalities(_stream(config.seed, index, PRESENCE), config.prevalence)


def _grid(config: SynthConfig, rng: np.random.Generator) -> Grid:
    center = (rng.normal(0.0, 6.0), rng.normal(-10.0, 6.0), rng.normal(-15.0, 10.0))
    origin = tuple(c - (n - 1) / 2.0 * s for c, n, s in zip(center, config.shape, config.spacing))
    return Grid.build(config.shape, config.spacing, origin)


def paint_anatomy(grid: Grid, canvas: Canvas, body: Body, textures: Textures, rng: np.random.Generator,
                  diffuse: Diffuse) -> Layout:
    """Paint every normal organ in a fixed order (a later organ wins a voxel); returns the layout
    that lesions place themselves in."""
    layout = Layout(body=body, textures=textures, diffuse=diffuse)
    paint_body(grid, canvas, body, textures)
    paint_bowel(grid, canvas, body, textures)
    paint_lungs(grid, canvas, body, textures, rng)
    paint_mediastinum(grid, canvas, body, textures)
    place_heart(layout, rng)
    paint_airways(grid, canvas, layout)
    paint_heart(grid, canvas, layout)
    paint_great_vessels(grid, canvas, layout, rng)
    paint_abdomen(grid, canvas, layout, rng, diffuse)
    centers = paint_spine(grid, canvas, layout, rng)
    paint_ribs(grid, canvas, layout, centers, rng)
    return layout


def _finish_image(hu: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Scanner blur (partial volume) and correlated quantum noise, rounded to int16 HU."""
    blur_mm = rng.uniform(1.0, 1.8)
    image = ndimage.gaussian_filter(hu, [blur_mm / s for s in spacing], mode="nearest")
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), 0.6)
    image += noise * (rng.uniform(10.0, 22.0) / float(noise.std()))
    return np.clip(np.rint(image), *HU_RANGE).astype(np.int16)


def generate_scan(config: SynthConfig, index: int, without: Iterable[tuple[str, str]] = ()) -> SynthScan:
    """Scan number ``index`` of the dataset ``config`` describes, minus the abnormalities in ``without``."""
    seed = config.seed
    excluded = {tuple(key) for key in without}
    unknown = excluded - set(finding_keys())
    if unknown:
        raise ValueError(f"unknown (organ, abnormality) pairs {sorted(unknown)}; see stages.synth.ABNORMALITIES")
    present = planned_abnormalities(config, index) - excluded
    finding_rngs = {key: _stream(seed, index, FINDING_STREAM_BASE + i) for i, key in enumerate(finding_keys())}
    anatomy_rng = _stream(seed, index, ANATOMY)
    body = Body.draw(anatomy_rng)
    grid = _grid(config, anatomy_rng)
    texture_rng = _stream(seed, index, TEXTURE)
    warp = [smooth_noise(texture_rng, grid.shape, grid.spacing, 60.0) for _ in range(3)]
    grid.displace(*warp, amplitude_mm=5.0)
    textures = Textures.draw(texture_rng, grid)
    canvas = Canvas(hu=np.zeros(grid.shape, np.float32), label=np.zeros(grid.shape, np.uint8))
    layout = paint_anatomy(grid, canvas, body, textures, anatomy_rng, draw_diffuse(present, finding_rngs))
    context = LesionContext(grid=grid, canvas=canvas, layout=layout)
    findings = paint_abnormalities(context, present, finding_rngs)
    placed = {(f.organ, f.abnormality) for f in findings}
    voxels = np.bincount(canvas.label.ravel(), minlength=256)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    visible = [organ for organ in ABNORMALITIES
               if voxels[list(organ_units()[organ].label_ids)].sum() * voxel_ml >= MIN_ORGAN_ML]
    truth = {(organ, phrase): (organ, phrase) in placed for organ in visible for phrase in ABNORMALITIES[organ]}
    findings = [f for f in findings if f.organ in visible]
    report = write_report(findings, visible, _stream(seed, index, REPORT), config.omit_fraction)
    affine = np.diag([*grid.spacing, 1.0])
    affine[:3, 3] = [float(axis[0]) for axis in grid.axes]
    ct = _finish_image(canvas.hu, grid.spacing, _stream(seed, index, NOISE))
    return SynthScan(scan_id=scan_id_of(config, index), ct=ct, mask=canvas.label, affine=affine, truth=truth,
                     findings=findings, report=report)
