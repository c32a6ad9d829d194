"""Normal anatomy of one synthetic scan, painted organ by organ (a later organ wins a voxel).

World coordinates are mm in RAS (+x patient's right, +y anterior, +z superior) with the right
diaphragm dome near z = 0. Organs are smoothly warped ellipsoids, tubes and slabs placed
relative to per-scan body landmarks; labels are TotalSegmentator ``total`` ids looked up by
class name. Random draws never depend on which abnormalities are present, so a scan rendered
without one abnormality differs from the original only where that abnormality is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from stages.common.anatomy import totalseg_class_map
from stages.common.errors import SetupError
from stages.synth.shapes import (Box, Ellipsoid, Grid, ellipse_distance_2d, frame_from_axis, occupancy,
                                 polyline_bounds, polyline_distance, rotation, smooth_noise, smooth_union)

THORACIC_LEVELS = tuple(f"T{i}" for i in range(1, 13))
LUMBAR_LEVELS = tuple(f"L{i}" for i in range(1, 6))
AIR_HU, FAT_HU, MUSCLE_HU = -1000.0, -95.0, 50.0


@lru_cache(maxsize=1)
def class_ids() -> dict[str, int]:
    """TotalSegmentator ``total`` class name -> label id."""
    return {name: label for label, name in totalseg_class_map().items()}


def class_id(name: str) -> int:
    ids = class_ids()
    if name not in ids:
        raise SetupError(f"TotalSegmentator class {name!r} is missing from the installed 'total' class map")
    return ids[name]


@dataclass
class Canvas:
    """The HU image and label map being painted."""

    hu: np.ndarray
    label: np.ndarray

    def paint(self, box: Box, occ: np.ndarray, value: float | np.ndarray, label: int | None = 0) -> None:
        """Blend ``value`` in by occupancy; voxels at least half covered take ``label`` (None keeps labels)."""
        region = self.hu[box]
        region += occ * (value - region)
        if label is not None:
            self.label[box][occ >= 0.5] = label


@dataclass
class Textures:
    """Smooth random fields shared by the organs of one scan."""

    coarse: np.ndarray
    bump: np.ndarray
    vessels: np.ndarray
    loops: np.ndarray
    gas: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, grid: Grid) -> Textures:
        shape, spacing = grid.shape, grid.spacing
        coarse = smooth_noise(rng, shape, spacing, 20.0)
        bump = smooth_noise(rng, shape, spacing, 25.0)
        first, second = (smooth_noise(rng, shape, spacing, 14.0) for _ in range(2))
        vessels = np.clip(1.0 - (first * first + second * second) / 0.1, 0.0, 1.0)
        loops = smooth_noise(rng, shape, spacing, 16.0)
        gas = smooth_noise(rng, shape, spacing, 9.0)
        return cls(coarse=coarse, bump=bump, vessels=vessels, loops=loops, gas=gas)


@dataclass(frozen=True)
class Body:
    """Per-scan landmarks every organ is placed against."""

    half_width: float
    half_depth: float
    center_y: float
    fat_mm: float
    muscle_mm: float
    dome_right: float
    dome_left: float
    thoracolumbar_z: float
    thoracic_pitch: float
    lumbar_pitch: float
    organ_scale: float
    enhancement: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Body:
        dome_right = float(rng.normal(0.0, 6.0))
        return cls(
            half_width=float(138.0 * np.exp(rng.normal(0, 0.06))),
            half_depth=float(106.0 * np.exp(rng.normal(0, 0.06))),
            center_y=float(rng.normal(-8.0, 3.0)),
            fat_mm=float(rng.uniform(8.0, 30.0)),
            muscle_mm=float(rng.uniform(8.0, 13.0)),
            dome_right=dome_right,
            dome_left=dome_right - float(rng.uniform(8.0, 18.0)),
            thoracolumbar_z=dome_right - float(rng.uniform(55.0, 68.0)),
            thoracic_pitch=float(rng.uniform(21.5, 24.5)),
            lumbar_pitch=float(rng.uniform(30.0, 34.0)),
            organ_scale=float(np.exp(rng.normal(0, 0.05))),
            enhancement=float(rng.uniform(0.8, 1.2)),
        )

    @property
    def cavity_radii(self) -> tuple[float, float]:
        """Half axes of the body cavity inside fat, muscle and ribs."""
        wall = self.fat_mm + self.muscle_mm + 10.0
        return self.half_width - wall, self.half_depth - wall

    @property
    def canal_y(self) -> float:
        return self.center_y - self.half_depth + self.fat_mm + self.muscle_mm + 23.0

    @property
    def vertebra_y(self) -> float:
        return self.canal_y + 27.0

    def diaphragm_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm: two domes, deepest in the lateral and posterior recesses."""
        a, b = self.cavity_radii
        dy = 30.0 * ((y - self.center_y - 0.2 * b) / b) ** 2
        right = self.dome_right - 28.0 * ((x - 0.45 * a) / (0.55 * a)) ** 2 - dy
        left = self.dome_left - 28.0 * ((x + 0.45 * a) / (0.55 * a)) ** 2 - dy
        return np.where(x >= 0, right, left)

    def vertebra_centers(self) -> dict[str, float]:
        """Centre height of every vertebra, counted up and down from the T12/L1 disc."""
        centers = {level: self.thoracolumbar_z + self.thoracic_pitch * (12 - i + 0.5)
                   for i, level in enumerate(THORACIC_LEVELS, start=1)}
        centers.update({level: self.thoracolumbar_z - self.lumbar_pitch * (i - 0.5)
                        for i, level in enumerate(LUMBAR_LEVELS, start=1)})
        return centers


@dataclass(frozen=True)
class Diffuse:
    """Size changes that must shape the anatomy itself (set from present abnormalities)."""

    spleen_factor: float = 1.0
    heart_factor: float = 1.0
    pericardial_mm: float = 0.0


@dataclass
class Layout:
    """What lesions and reports need to know about the painted anatomy."""

    body: Body
    textures: Textures
    diffuse: Diffuse
    organs: dict[str, Ellipsoid] = field(default_factory=dict)
    root_z: float = 0.0
    arch_z: float = 0.0
    carina_z: float = 0.0


def _scale(rng: np.random.Generator, sd: float = 0.07) -> float:
    return float(np.exp(rng.normal(0.0, sd)))


def ellipsoid_distance(grid: Grid, textures: Textures, shape: Ellipsoid, bump_mm: float,
                       pad: float = 0.0) -> tuple[Box, np.ndarray] | None:
    """Signed distance of a warped ellipsoid inside its box (None when it misses the grid)."""
    box = grid.box(*shape.bounds(pad + bump_mm))
    if box is None:
        return None
    return box, shape.distance(*grid.coords(box)) + bump_mm * textures.bump[box]


def paint_body(grid: Grid, canvas: Canvas, body: Body, textures: Textures) -> None:
    """Air, couch, subcutaneous fat, body-wall muscle, cavity fat and the diaphragm."""
    full = (slice(None),) * 3
    canvas.hu[...] = AIR_HU
    couch_top = body.center_y - body.half_depth - 12.0
    couch = np.maximum(np.abs(grid.y - (couch_top - 6.0)) - 6.0, np.abs(grid.x) - 160.0)
    canvas.paint(full, occupancy(couch, grid.voxel_mm), 120.0, label=None)
    outline = ellipse_distance_2d(grid.x, grid.y, (0.0, body.center_y), (body.half_width, body.half_depth))
    outline += 4.0 * textures.bump
    canvas.paint(full, occupancy(outline, grid.voxel_mm), FAT_HU + 8.0 * textures.coarse)
    canvas.paint(full, occupancy(outline + body.fat_mm, grid.voxel_mm), MUSCLE_HU + 6.0 * textures.coarse)
    cavity = outline + body.fat_mm + body.muscle_mm
    canvas.paint(full, occupancy(cavity, grid.voxel_mm), FAT_HU + 10.0 + 8.0 * textures.coarse)
    below = np.abs(grid.z - body.diaphragm_z(grid.x, grid.y)) - 3.0
    canvas.paint(full, occupancy(np.maximum(cavity + 4.0, below), grid.voxel_mm), MUSCLE_HU)


def _cavity_sd(grid: Grid, box: Box, body: Body, textures: Textures) -> np.ndarray:
    x, y, z = grid.coords(box)
    a, b = body.cavity_radii
    taper = 1.0 - 0.3 * np.clip((z - 70.0) / 140.0, 0.0, 1.0) ** 2
    return ellipse_distance_2d(x, y, (0.0, body.center_y), (a * taper, b * taper)) + 3.0 * textures.bump[box]


def paint_lungs(grid: Grid, canvas: Canvas, body: Body, textures: Textures, rng: np.random.Generator) -> None:
    """Both lungs above the diaphragm, split into TotalSegmentator's five lobes by fissure planes."""
    a, b = body.cavity_radii
    box = grid.box((-a, body.center_y - b, body.dome_left - 90.0), (a, body.center_y + b, 400.0))
    if box is None:
        return
    x, y, z = grid.coords(box)
    lung_sd = np.maximum(_cavity_sd(grid, box, body, textures), body.diaphragm_z(x, y) + 4.0 - z)
    base = rng.uniform(-885.0, -840.0)
    parenchyma = base + 12.0 * textures.coarse[box] + textures.vessels[box] * 0.85 * (60.0 - base)
    oblique_z = body.dome_right + rng.uniform(35.0, 50.0) - rng.uniform(0.7, 0.9) * (y - body.center_y)
    oblique_z += 5.0 * textures.bump[box]
    horizontal_z = body.dome_right + rng.uniform(60.0, 80.0)
    upper = z > oblique_z
    for side, sign in (("right", 1.0), ("left", -1.0)):
        medial = rng.uniform(9.0, 14.0)
        side_sd = np.maximum(lung_sd, medial - sign * x + 2.0 * textures.bump[box])
        occ = occupancy(side_sd, grid.voxel_mm)
        canvas.paint(box, occ, parenchyma, label=None)
        inside = occ >= 0.5
        labels = canvas.label[box]
        if side == "left":
            labels[inside & upper] = class_id("lung_upper_lobe_left")
            labels[inside & ~upper] = class_id("lung_lower_lobe_left")
        else:
            labels[inside & upper & (z >= horizontal_z)] = class_id("lung_upper_lobe_right")
            labels[inside & upper & (z < horizontal_z)] = class_id("lung_middle_lobe_right")
            labels[inside & ~upper] = class_id("lung_lower_lobe_right")


def paint_mediastinum(grid: Grid, canvas: Canvas, body: Body, textures: Textures) -> None:
    """Fat between the lungs; heart, vessels and airways are painted into it afterwards."""
    box = grid.box((-40.0, body.center_y - 60.0, body.dome_left - 20.0), (40.0, body.center_y + 120.0, 400.0))
    if box is None:
        return
    x, y, z = grid.coords(box)
    band = ellipse_distance_2d(x, y, (-4.0, body.center_y + 20.0), (24.0, 110.0)) + 3.0 * textures.bump[box]
    band = np.maximum(band, body.diaphragm_z(x, y) - z)
    canvas.paint(box, occupancy(band, grid.voxel_mm), FAT_HU + 15.0 + 8.0 * textures.coarse[box])


def place_heart(layout: Layout, rng: np.random.Generator) -> None:
    """Heart ellipsoid and the heights of aortic root, arch and carina (from the normal-sized heart)."""
    body, diffuse = layout.body, layout.diffuse
    radii = np.array([55.0, 42.0, 46.0]) * body.organ_scale * _scale(rng)
    frame = frame_from_axis((-1.0, rng.uniform(0.6, 1.0), rng.uniform(-0.7, -0.4)))
    center = np.array([rng.normal(-22.0, 4.0), body.center_y + rng.normal(32.0, 4.0),
                       body.dome_left + 0.8 * float(np.sqrt(((frame[2, :] * radii) ** 2).sum()))])
    layout.root_z = float(center[2]) + 25.0
    layout.arch_z = layout.root_z + float(rng.uniform(55.0, 75.0))
    layout.carina_z = layout.arch_z - float(rng.uniform(15.0, 25.0))
    enlarged = (diffuse.heart_factor - 1.0) / 0.3
    grown = radii * diffuse.heart_factor
    center[0] -= 10.0 * enlarged
    center[2] += 0.8 * float(np.sqrt(((frame[2, :] * grown) ** 2).sum())) - 0.8 * float(
        np.sqrt(((frame[2, :] * radii) ** 2).sum())) - 6.0 * enlarged
    layout.organs["heart"] = Ellipsoid(tuple(center), tuple(grown), frame)


def paint_heart(grid: Grid, canvas: Canvas, layout: Layout) -> None:
    """Myocardium, contrast-filled chambers, septum; pericardial fluid and enlargement when present."""
    body, textures, heart = layout.body, layout.textures, layout.organs["heart"]
    shell = layout.diffuse.pericardial_mm
    found = ellipsoid_distance(grid, textures, heart, 3.0, pad=shell + 8.0)
    if found is None:
        return
    box, sd = found
    sd = np.maximum(sd, _cavity_sd(grid, box, body, textures) + 4.0)
    heart_id = class_id("heart")
    canvas.paint(box, occupancy(sd - shell - 5.0, grid.voxel_mm), FAT_HU + 10.0)
    if shell > 0:
        canvas.paint(box, occupancy(sd - shell, grid.voxel_mm), 12.0 + 4.0 * textures.coarse[box], heart_id)
    canvas.paint(box, occupancy(sd, grid.voxel_mm), 95.0 + 6.0 * textures.coarse[box], heart_id)
    _, qy, _ = heart.local(*grid.coords(box))
    blood = np.maximum(sd + 9.0, 5.0 - np.abs(qy))
    canvas.paint(box, occupancy(blood, grid.voxel_mm), 175.0 * body.enhancement + 8.0 * textures.coarse[box], heart_id)


def _tube(grid: Grid, canvas: Canvas, textures: Textures, points: np.ndarray, radius: float, value: float,
          label: int | None, halo_mm: float = 0.0, lumen: tuple[float, float] | None = None) -> None:
    """A vessel or airway along a polyline, optionally with a fat halo and an inner lumen (wall, HU)."""
    box = grid.box(*polyline_bounds(points, radius + halo_mm + 3.0))
    if box is None:
        return
    sd = polyline_distance(*grid.coords(box), points) - radius + 1.0 * textures.bump[box]
    if halo_mm:
        canvas.paint(box, occupancy(sd - halo_mm, grid.voxel_mm), FAT_HU + 10.0)
    canvas.paint(box, occupancy(sd, grid.voxel_mm), value + 6.0 * textures.coarse[box], label)
    if lumen is not None:
        wall, lumen_hu = lumen
        canvas.paint(box, occupancy(sd + wall, grid.voxel_mm), lumen_hu, label)


def paint_airways(grid: Grid, canvas: Canvas, layout: Layout) -> None:
    """Trachea with both main bronchi (one label, as TotalSegmentator's trachea) and the esophagus."""
    body, textures = layout.body, layout.textures
    vy, s = body.vertebra_y, body.organ_scale
    trachea_y = vy + 40.0
    trachea = np.array([(4.0, trachea_y, 400.0), (4.0, trachea_y, layout.carina_z)])
    _tube(grid, canvas, textures, trachea, 10.0 * s, 60.0, class_id("trachea"), halo_mm=2.0, lumen=(1.5, AIR_HU))
    for end_x, drop in ((32.0, 20.0), (-36.0, 28.0)):
        bronchus = np.array([(4.0, trachea_y, layout.carina_z), (end_x, trachea_y - 4.0, layout.carina_z - drop)])
        _tube(grid, canvas, textures, bronchus, 6.5 * s, 60.0, class_id("trachea"), lumen=(1.5, AIR_HU))
    esophagus = np.array([(-2.0, vy + 22.0, 400.0), (-8.0, vy + 26.0, body.dome_left),
                          (-32.0, body.center_y + 18.0, body.dome_left - 35.0)])
    _tube(grid, canvas, textures, esophagus, 7.5 * s, 40.0, class_id("esophagus"), halo_mm=2.0)


def paint_great_vessels(grid: Grid, canvas: Canvas, layout: Layout, rng: np.random.Generator) -> None:
    """Aorta (root, arch, descending, abdominal) and superior vena cava, contrast-enhanced."""
    body, textures = layout.body, layout.textures
    vy, s = body.vertebra_y, body.organ_scale
    root_z, arch_z = layout.root_z, layout.arch_z
    aorta = np.array([
        (rng.normal(4.0, 3.0), body.center_y + 32.0, root_z), (8.0, body.center_y + 30.0, arch_z - 30.0),
        (0.0, body.center_y + 22.0, arch_z - 5.0), (-20.0, vy + 30.0, arch_z), (-30.0, vy + 8.0, arch_z - 18.0),
        (-28.0, vy + 6.0, arch_z - 60.0), (-20.0, vy + 14.0, body.dome_left - 20.0),
        (-12.0, vy + 26.0, body.dome_right - 90.0), (-8.0, vy + 26.0, body.dome_right - 300.0)])
    _tube(grid, canvas, textures, aorta, 12.5 * s * _scale(rng, 0.08), 180.0 * body.enhancement,
          class_id("aorta"), halo_mm=3.0)
    svc = np.array([(22.0, body.center_y + 22.0, 400.0), (20.0, body.center_y + 25.0, root_z)])
    _tube(grid, canvas, textures, svc, 9.0 * s, 140.0 * body.enhancement, class_id("superior_vena_cava"), 2.0)


def paint_bowel(grid: Grid, canvas: Canvas, body: Body, textures: Textures) -> None:
    """Small-bowel loops with gas pockets filling the free lower abdomen."""
    a, b = body.cavity_radii
    box = grid.box((-a, body.vertebra_y, -400.0), (a, body.center_y + b, body.dome_right - 45.0))
    if box is None:
        return
    x, y, z = grid.coords(box)
    region = np.maximum(_cavity_sd(grid, box, body, textures) + 6.0, z - (body.dome_right - 55.0))
    region = np.maximum(region, body.vertebra_y + 25.0 - y)
    loops = np.maximum(region, 6.0 * (0.35 - textures.loops[box]))
    canvas.paint(box, occupancy(loops, grid.voxel_mm), 40.0 + 8.0 * textures.coarse[box], class_id("small_bowel"))
    gas = np.maximum(loops + 3.0, 6.0 * (1.5 - textures.gas[box]))
    canvas.paint(box, occupancy(gas, grid.voxel_mm), -950.0, label=None)


def _below_diaphragm(grid: Grid, box: Box, body: Body, sd: np.ndarray, gap: float = 2.0) -> np.ndarray:
    x, y, z = grid.coords(box)
    return np.maximum(sd, z - (body.diaphragm_z(x, y) - gap))


def paint_abdomen(grid: Grid, canvas: Canvas, layout: Layout, rng: np.random.Generator, diffuse: Diffuse) -> None:
    """Liver, gallbladder, stomach, pancreas, spleen, kidneys and inferior vena cava."""
    body, textures = layout.body, layout.textures
    s, e, vy = body.organ_scale, body.enhancement, body.vertebra_y
    dr, dl = body.dome_right, body.dome_left
    liver_scale = s * _scale(rng)
    main = Ellipsoid((rng.normal(45.0, 4.0), body.center_y + 5.0, dr - 70.0),
                     tuple(np.array([75.0, 72.0, 85.0]) * liver_scale), rotation(0, 0, rng.normal(0, 5)))
    left_lobe = Ellipsoid((rng.normal(-15.0, 5.0), body.center_y + 42.0, dr - 30.0),
                          tuple(np.array([48.0, 30.0, 28.0]) * liver_scale), rotation(0, 15, 20))
    liver_hu = float(rng.uniform(95.0, 115.0) * np.sqrt(e))
    box = grid.box((-80.0, body.center_y - 100.0, dr - 160.0), (150.0, body.center_y + 100.0, dr + 10.0))
    if box is not None:
        x, y, z = grid.coords(box)
        sd = smooth_union(main.distance(x, y, z), left_lobe.distance(x, y, z)) + 3.0 * textures.bump[box]
        sd = np.maximum(_below_diaphragm(grid, box, body, sd), _cavity_sd(grid, box, body, textures) + 2.0)
        value = liver_hu + 5.0 * textures.coarse[box] + 45.0 * textures.vessels[box]
        canvas.paint(box, occupancy(sd, grid.voxel_mm), value, class_id("liver"))
    gallbladder = Ellipsoid((rng.normal(45.0, 5.0), body.center_y + rng.normal(48.0, 5.0), dr - rng.uniform(90, 110)),
                            tuple(np.array([14.0, 16.0, 30.0]) * s * _scale(rng, 0.12)), rotation(-30, 10, 0))
    found = ellipsoid_distance(grid, textures, gallbladder, 1.5)
    if found is not None:
        canvas.paint(found[0], occupancy(found[1], grid.voxel_mm), rng.uniform(0.0, 15.0), class_id("gallbladder"))
    stomach = Ellipsoid((-48.0, body.center_y + 35.0, dl - 45.0), tuple(np.array([40.0, 30.0, 45.0]) * s * _scale(rng)),
                        rotation(0, -20, 20))
    found = ellipsoid_distance(grid, textures, stomach, 3.0)
    if found is not None:
        box, sd = found
        sd = _below_diaphragm(grid, box, body, sd, gap=3.0)
        canvas.paint(box, occupancy(sd, grid.voxel_mm), 55.0, class_id("stomach"))
        canvas.paint(box, occupancy(sd + 4.0, grid.voxel_mm), rng.uniform(5.0, 30.0), class_id("stomach"))
        air = np.maximum(sd + 4.0, stomach.center[1] + rng.uniform(0.2, 0.6) * 30.0 - grid.coords(box)[1])
        canvas.paint(box, occupancy(air, grid.voxel_mm), AIR_HU, class_id("stomach"))
    pancreas = np.array([(28.0, vy + 45.0, dr - 105.0), (-8.0, vy + 52.0, dr - 92.0), (-62.0, vy + 32.0, dl - 72.0)])
    pancreas += rng.normal(0.0, 4.0, size=pancreas.shape)
    _tube(grid, canvas, textures, pancreas, 11.0 * s, 95.0 * np.sqrt(e), class_id("pancreas"))
    for side, sign in (("right", 1.0), ("left", -1.0)):
        _paint_kidney(grid, canvas, layout, rng, side, sign)
    _paint_spleen(grid, canvas, layout, rng, diffuse)
    ivc = np.array([(22.0, vy + 24.0, -400.0), (24.0, vy + 28.0, dr - 40.0), (20.0, body.center_y + 20.0, dr + 8.0)])
    _tube(grid, canvas, textures, ivc, 11.0 * s, 125.0 * e, class_id("inferior_vena_cava"))


def _paint_spleen(grid: Grid, canvas: Canvas, layout: Layout, rng: np.random.Generator, diffuse: Diffuse) -> None:
    body, textures = layout.body, layout.textures
    grow = (diffuse.spleen_factor - 1.0) / 0.45
    radii = np.array([20.0, 45.0, 52.0]) * body.organ_scale * _scale(rng, 0.09) * diffuse.spleen_factor
    a, b = body.cavity_radii
    center_x = -(a - 15.0) + rng.normal(0.0, 3.0) + 10.0 * grow
    center_y = body.center_y - 0.35 * b + rng.normal(0.0, 3.0) + 18.0 * grow
    roof = float(body.diaphragm_z(np.float32(center_x), np.float32(center_y)))
    center = (center_x, center_y, roof - 0.4 * radii[2] - 10.0 * grow)
    spleen = Ellipsoid(center, tuple(radii), rotation(rng.normal(30, 5), 0, rng.normal(45, 6)))
    layout.organs["spleen"] = spleen
    found = ellipsoid_distance(grid, textures, spleen, 3.0)
    if found is None:
        return
    box, sd = found
    sd = np.maximum(_below_diaphragm(grid, box, body, sd), _cavity_sd(grid, box, body, textures) + 2.0)
    value = 112.0 * np.sqrt(body.enhancement) + rng.normal(0, 5) + 5.0 * textures.coarse[box]
    canvas.paint(box, occupancy(sd, grid.voxel_mm), value, class_id("spleen"))


def _paint_kidney(grid: Grid, canvas: Canvas, layout: Layout, rng: np.random.Generator, side: str, sign: float) -> None:
    body, textures = layout.body, layout.textures
    height = body.dome_right - (110.0 if side == "right" else 100.0) + rng.normal(0, 6)
    kidney = Ellipsoid((sign * rng.normal(53.0, 3.0), body.vertebra_y + rng.normal(-2.0, 4.0), height),
                       tuple(np.array([24.0, 20.0, 52.0]) * body.organ_scale * _scale(rng)),
                       rotation(-18.0, -sign * 14.0, sign * 30.0))
    layout.organs[f"kidney_{side}"] = kidney
    found = ellipsoid_distance(grid, textures, kidney, 2.0, pad=10.0)
    if found is None:
        return
    box, sd = found
    label = class_id(f"kidney_{side}")
    canvas.paint(box, occupancy(sd - 7.0, grid.voxel_mm), FAT_HU + 5.0)
    canvas.paint(box, occupancy(sd, grid.voxel_mm), 165.0 * body.enhancement + 8.0 * textures.coarse[box], label)
    qx, qy, qz = kidney.local(*grid.coords(box))
    a, b, c = kidney.radii
    sinus = np.sqrt(((qx + sign * 0.45 * a) / (0.5 * a)) ** 2 + (qy / (0.45 * b)) ** 2 + (qz / (0.45 * c)) ** 2)
    canvas.paint(box, occupancy((sinus - 1.0) * 0.45 * b, grid.voxel_mm), -40.0, label)
