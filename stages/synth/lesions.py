"""Abnormalities painted into the normal anatomy, each where the truth says it is.

Focal lesions are small (a few mm to a few cm in a ~30 cm volume) but have strong contrast
against their organ; diffuse findings change an organ's HU (steatosis, emphysema) or size
(splenomegaly, cardiomegaly, pericardial fluid; those are shaped in ``phantom.Diffuse``).
Every painter draws only from its own random stream and returns a :class:`Finding` with the
details a report mentions, or None when the organ is not in the field of view.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from stages.common.anatomy import organ_units, totalseg_class_map
from stages.synth.phantom import Canvas, Diffuse, Layout, class_id
from stages.synth.shapes import Box, Ellipsoid, Grid, occupancy, smooth_noise

LOBE_NAMES = {"lung_upper_lobe_left": "left upper lobe", "lung_lower_lobe_left": "left lower lobe",
              "lung_upper_lobe_right": "right upper lobe", "lung_middle_lobe_right": "right middle lobe",
              "lung_lower_lobe_right": "right lower lobe"}


@dataclass
class Finding:
    """One abnormality as placed in the image, with what a reader would describe."""

    organ: str
    abnormality: str
    details: dict[str, Any] = field(default_factory=dict)


def draw_diffuse(present: set[tuple[str, str]], rngs: dict[tuple[str, str], np.random.Generator]) -> Diffuse:
    """Size changes that shape the anatomy, drawn from each finding's own stream."""
    spleen = rngs[("spleen", "splenomegaly")].uniform(1.25, 1.5) if ("spleen", "splenomegaly") in present else 1.0
    heart = rngs[("heart", "cardiomegaly")].uniform(1.15, 1.3) if ("heart", "cardiomegaly") in present else 1.0
    fluid = rngs[("heart", "pericardial effusion")].uniform(4.0, 12.0) \
        if ("heart", "pericardial effusion") in present else 0.0
    return Diffuse(spleen_factor=float(spleen), heart_factor=float(heart), pericardial_mm=float(fluid))


def _bounding_box(mask: np.ndarray) -> Box:
    """Smallest index box holding every true voxel of a non-empty mask."""
    box = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(other for other in range(3) if other != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


@dataclass
class LesionContext:
    """The painted scan that lesions are placed into."""

    grid: Grid
    canvas: Canvas
    layout: Layout

    def mask(self, unit: str) -> np.ndarray:
        """Current voxels of an organ unit (all its TotalSegmentator classes)."""
        return np.isin(self.canvas.label, organ_units()[unit].label_ids)

    def pick(self, rng: np.random.Generator, mask: np.ndarray, depth_mm: float) -> tuple[int, int, int] | None:
        """A random voxel of ``mask`` at least ``depth_mm`` inside it (None if there is none)."""
        if not mask.any():
            return None
        box = _bounding_box(mask)
        depth = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=self.grid.spacing)[1:-1, 1:-1, 1:-1]
        candidates = np.flatnonzero(depth >= depth_mm)
        if candidates.size == 0:
            return None
        local = np.unravel_index(candidates[rng.integers(candidates.size)], depth.shape)
        return tuple(int(i + part.start) for i, part in zip(local, box))

    def world(self, voxel: tuple[int, int, int]) -> tuple[float, float, float]:
        return (float(self.grid.x[voxel]), float(self.grid.y[voxel]), float(self.grid.z[voxel]))

    def blob(self, center: tuple[float, float, float], radius: float, value: float, rng: np.random.Generator,
             within: np.ndarray | None = None, label: int | None = None, irregularity: float = 0.15) -> int:
        """Paint an irregular sphere (inside ``within`` if given); returns the voxels it covers at least half."""
        radii = tuple(radius * rng.uniform(0.85, 1.15) for _ in range(3))
        shape = Ellipsoid(center, radii)
        box = self.grid.box(*shape.bounds(4.0))
        if box is None:
            return 0
        sd = shape.distance(*self.grid.coords(box)) + irregularity * radius * self.layout.textures.bump[box]
        occ = occupancy(sd, self.grid.voxel_mm)
        if within is not None:
            occ *= within[box]
        self.canvas.paint(box, occ, value, label)
        return int((occ >= 0.5).sum())


def _size_mm(radius: float) -> int:
    return int(round(2.0 * radius))


def hypodense_lesion(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """One to three round lesions 50-90 HU below the surrounding liver."""
    liver = ctx.mask(organ)
    sizes = []
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        radius = float(rng.uniform(4.5, 14.0))
        voxel = ctx.pick(rng, liver, radius)
        if voxel is None:
            continue
        value = float(np.median(ctx.canvas.hu[liver])) - float(rng.uniform(50.0, 90.0))
        if ctx.blob(ctx.world(voxel), radius, value, rng, within=liver):
            sizes.append((radius, ctx.world(voxel)[0]))
    if not sizes:
        return None
    largest = max(sizes)
    lobe = "right" if largest[1] > 0 else "left"
    return Finding(organ, "hypodense lesion", {"count": len(sizes), "size_mm": _size_mm(largest[0]), "lobe": lobe})


def steatosis(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """The whole liver 35-70 HU darker (below the spleen, the CT sign of fatty liver)."""
    liver = ctx.mask(organ)
    if not liver.any():
        return None
    drop = float(rng.uniform(35.0, 70.0))
    ctx.canvas.hu[liver] -= drop
    grade = "mild" if drop < 45 else "moderate" if drop < 58 else "marked"
    return Finding(organ, "steatosis", {"severity": grade})


def _pole(ctx: LesionContext, organ: str, voxel: tuple[int, int, int]) -> str:
    kidney = ctx.layout.organs[organ]
    offset = ctx.world(voxel)[2] - kidney.center[2]
    third = kidney.radii[2] / 3.0
    return "upper pole" if offset > third else "lower pole" if offset < -third else "interpolar region"


def kidney_cyst(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """A water-density cortical cyst, often bulging out of the kidney; labelled ``kidney_cyst_<side>``
    as TotalSegmentator does (that class belongs to the kidney's organ unit)."""
    kidney = ctx.mask(organ)
    radius = float(rng.uniform(5.0, 16.0))
    voxel = ctx.pick(rng, kidney, float(rng.uniform(2.0, 0.8 * radius)))
    if voxel is None:
        return None
    side = organ.split("_")[1]
    if not ctx.blob(ctx.world(voxel), radius, float(rng.uniform(0.0, 15.0)), rng,
                    label=class_id(f"kidney_cyst_{side}"), irregularity=0.03):
        return None
    return Finding(organ, "cyst", {"size_mm": _size_mm(radius), "location": _pole(ctx, organ, voxel)})


def kidney_stone(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """A 5-11 mm calculus deep in the kidney (collecting system), far brighter than bone marrow."""
    kidney = ctx.mask(organ)
    radius = float(rng.uniform(2.5, 5.5))
    voxel = ctx.pick(rng, kidney, 7.0)
    if voxel is None or not ctx.blob(ctx.world(voxel), radius, float(rng.uniform(700.0, 1300.0)), rng,
                                     within=kidney, irregularity=0.1):
        return None
    return Finding(organ, "stone", {"size_mm": _size_mm(radius), "location": _pole(ctx, organ, voxel)})


def _lobe(ctx: LesionContext, voxel: tuple[int, int, int]) -> str:
    return LOBE_NAMES.get(totalseg_class_map().get(int(ctx.canvas.label[voxel]), ""), "")


def lung_nodule(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """A 6-18 mm solid, lobulated nodule; its lobe goes into the report."""
    lung = ctx.mask(organ)
    radius = float(rng.uniform(3.0, 9.0))
    voxel = ctx.pick(rng, lung, 0.8 * radius)
    if voxel is None:
        return None
    lobe = _lobe(ctx, voxel)
    if not ctx.blob(ctx.world(voxel), radius, float(rng.uniform(15.0, 50.0)), rng, within=lung, irregularity=0.25):
        return None
    return Finding(organ, "nodule", {"size_mm": _size_mm(radius), "lobe": lobe})


def pleural_effusion(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """Dependent fluid layer in the posterior costophrenic recess; the lung label recedes from it."""
    lung = ctx.mask(organ)
    if not lung.any():
        return None
    body, grid = ctx.layout.body, ctx.grid
    a, b = body.cavity_radii
    depth = float(rng.uniform(12.0, 45.0))
    height = float(rng.uniform(50.0, 110.0))
    base = float(grid.z[lung].min())
    back = body.center_y - b * np.sqrt(np.clip(1.0 - (grid.x / a) ** 2, 0.0, 1.0))
    layer = depth * np.clip(1.0 - (grid.z - base) / height, 0.0, 1.0)
    fluid = lung & (grid.y - back < layer + 2.0 * ctx.layout.textures.bump)
    if fluid.sum() < 8:
        return None
    ctx.canvas.hu[fluid] = float(rng.uniform(5.0, 20.0))
    ctx.canvas.label[fluid] = 0
    grade = "small" if depth < 22 else "moderate" if depth < 35 else "large"
    return Finding(organ, "pleural effusion", {"severity": grade})


def emphysema(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """Clustered low-attenuation areas (upper-lobe predominant) plus an occasional bulla."""
    lung = ctx.mask(organ)
    if not lung.any():
        return None
    extent = float(rng.uniform(0.15, 0.4))
    field_ = smooth_noise(rng, ctx.grid.shape, ctx.grid.spacing, 7.0) + ctx.grid.z / 150.0
    threshold = np.quantile(field_[lung], 1.0 - extent)
    low = lung & (field_ > threshold)
    ctx.canvas.hu[low] += 0.8 * (-990.0 - ctx.canvas.hu[low])
    for _ in range(int(rng.integers(0, 3))):
        radius = float(rng.uniform(6.0, 14.0))
        voxel = ctx.pick(rng, lung, radius)
        if voxel is not None:
            ctx.blob(ctx.world(voxel), radius, -995.0, rng, within=lung, irregularity=0.05)
    grade = "mild" if extent < 0.22 else "moderate" if extent < 0.32 else "severe"
    return Finding(organ, "emphysema", {"severity": grade})


def consolidation(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """Airspace opacity confined to one lobe, with air bronchograms."""
    lung = ctx.mask(organ)
    voxel = ctx.pick(rng, lung, 6.0)
    if voxel is None:
        return None
    lobe_id = int(ctx.canvas.label[voxel])
    region = Ellipsoid(ctx.world(voxel), tuple(rng.uniform(18.0, 38.0, size=3)))
    box = ctx.grid.box(*region.bounds(6.0))
    sd = region.distance(*ctx.grid.coords(box)) + 6.0 * ctx.layout.textures.bump[box]
    occ = occupancy(sd, ctx.grid.voxel_mm) * (ctx.canvas.label[box] == lobe_id)
    bronchi = ctx.layout.textures.vessels[box]
    ctx.canvas.paint(box, occ, float(rng.uniform(25.0, 50.0)) + bronchi * -900.0, label=None)
    return Finding(organ, "consolidation", {"lobe": _lobe(ctx, voxel)})


def splenomegaly(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    if not ctx.mask(organ).any():
        return None
    length_cm = 2.0 * max(ctx.layout.organs[organ].radii) / 10.0
    return Finding(organ, "splenomegaly", {"length_cm": round(length_cm, 1)})


def cardiomegaly(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    return Finding(organ, "cardiomegaly", {}) if ctx.mask(organ).any() else None


def pericardial_effusion(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    if not ctx.mask(organ).any():
        return None
    grade = "small" if ctx.layout.diffuse.pericardial_mm < 8.0 else "moderate"
    return Finding(organ, "pericardial effusion", {"severity": grade})


def aortic_calcification(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """Bright mural plaques on the aortic wall."""
    aorta = ctx.mask(organ)
    if not aorta.any():
        return None
    wall = aorta & ~ndimage.binary_erosion(aorta)
    placed = 0
    for _ in range(int(rng.integers(2, 7))):
        voxel = ctx.pick(rng, wall, 0.0)
        if voxel is not None and ctx.blob(ctx.world(voxel), float(rng.uniform(2.0, 4.0)), float(rng.uniform(900, 1500)),
                                          rng, within=aorta, irregularity=0.1):
            placed += 1
    return Finding(organ, "calcification", {"count": placed}) if placed else None


def gallstone(ctx: LesionContext, rng: np.random.Generator, organ: str) -> Finding | None:
    """One to three calcified stones in the bile."""
    bladder = ctx.mask(organ)
    sizes = []
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        radius = float(rng.uniform(3.0, 8.0))
        voxel = ctx.pick(rng, bladder, radius * 0.8)
        if voxel is not None and ctx.blob(ctx.world(voxel), radius, float(rng.uniform(250.0, 800.0)), rng,
                                          within=bladder, irregularity=0.05):
            sizes.append(radius)
    return Finding(organ, "gallstone", {"count": len(sizes), "size_mm": _size_mm(max(sizes))}) if sizes else None


Painter = Callable[[LesionContext, np.random.Generator, str], "Finding | None"]

# Painting order: diffuse HU changes first, fluid before the focal lesions placed in what remains.
PAINTERS: tuple[tuple[str, Painter], ...] = (
    ("splenomegaly", splenomegaly), ("cardiomegaly", cardiomegaly), ("pericardial effusion", pericardial_effusion),
    ("steatosis", steatosis), ("emphysema", emphysema), ("pleural effusion", pleural_effusion),
    ("consolidation", consolidation), ("nodule", lung_nodule), ("hypodense lesion", hypodense_lesion),
    ("cyst", kidney_cyst), ("stone", kidney_stone), ("calcification", aortic_calcification),
    ("gallstone", gallstone),
)


def paint_abnormalities(ctx: LesionContext, present: set[tuple[str, str]],
                        rngs: dict[tuple[str, str], np.random.Generator]) -> list[Finding]:
    """Paint every present abnormality in a fixed order; returns the ones actually placed."""
    findings = []
    for abnormality, painter in PAINTERS:
        for organ, phrase in sorted(present):
            if phrase == abnormality:
                finding = painter(ctx, rngs[(organ, phrase)], organ)
                if finding is not None:
                    findings.append(finding)
    return findings
