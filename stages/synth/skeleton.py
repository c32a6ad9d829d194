"""The skeleton and back muscles of the phantom: vertebrae one label each, ribs, cartilage, sternum.

Vertebrae stack from the T12/L1 disc at the per-scan thoracic and lumbar pitch; each rib leaves
its thoracic vertebra and descends along the body wall towards the front, so one axial slice cuts
several ribs, as on real CT.
"""
from __future__ import annotations

import numpy as np

from stages.synth.phantom import MUSCLE_HU, Canvas, Layout, ellipsoid_distance, class_id
from stages.synth.shapes import Ellipsoid, Grid, ellipse_distance_2d, occupancy


def paint_spine(grid: Grid, canvas: Canvas, layout: Layout, rng: np.random.Generator) -> dict[str, float]:
    """Paraspinal muscles, each vertebra (body, arch, processes), discs, canal and spinal cord."""
    body, textures = layout.body, layout.textures
    canal_y, vy, s = body.canal_y, body.vertebra_y, body.organ_scale
    for side, sign in (("right", 1.0), ("left", -1.0)):
        muscle = Ellipsoid((sign * 30.0 * s, canal_y - 12.0, 0.0), (22.0 * s, 17.0, 300.0))
        found = ellipsoid_distance(grid, textures, muscle, 2.0)
        if found is not None:
            canvas.paint(found[0], occupancy(found[1], grid.voxel_mm), MUSCLE_HU + 5.0 * textures.coarse[found[0]],
                         class_id(f"autochthon_{side}"))
    centers = body.vertebra_centers()
    bone = rng.uniform(200.0, 280.0)
    for level, center_z in centers.items():
        lumbar = level.startswith("L")
        pitch = body.lumbar_pitch if lumbar else body.thoracic_pitch
        half_height = 0.5 * pitch - (3.5 if lumbar else 2.5)
        rx, ry = (24.0, 17.0) if lumbar else (18.0, 15.0)
        box = grid.box((-48.0, canal_y - 40.0, center_z - pitch), (48.0, vy + ry + 2.0, center_z + pitch))
        if box is None:
            continue
        x, y, z = grid.coords(box)
        label = class_id(f"vertebrae_{level}")
        dz = np.abs(z - center_z)
        disc = np.maximum(ellipse_distance_2d(x, y, (0.0, vy), (rx * s, ry * s)), dz - 0.5 * pitch)
        canvas.paint(box, occupancy(disc, grid.voxel_mm), 85.0)
        vertebral_body = np.maximum(ellipse_distance_2d(x, y, (0.0, vy), (rx * s, ry * s)), dz - half_height)
        canvas.paint(box, occupancy(vertebral_body, grid.voxel_mm), 650.0, label)
        canvas.paint(box, occupancy(vertebral_body + 2.5, grid.voxel_mm), bone, label)
        ring = np.hypot(x, y - canal_y)
        arch = np.maximum(np.maximum(ring - 13.5, dz - 0.8 * half_height), y - canal_y - 2.0)
        spinous = np.maximum.reduce([np.abs(x) - 4.0, np.abs(y - canal_y + 22.0) - 10.0,
                                     np.abs(z - center_z + 5.0 + 0.25 * (canal_y - y)) - 5.0])
        transverse = np.maximum.reduce([np.abs(x) - (38.0 if lumbar else 30.0), np.abs(y - canal_y - 2.0) - 5.0,
                                        dz - 5.0])
        elements = np.minimum.reduce([arch, spinous, transverse])
        canvas.paint(box, occupancy(elements, grid.voxel_mm), 450.0, label)
        canvas.paint(box, occupancy(np.maximum(ring - 8.5, dz - pitch), grid.voxel_mm), 10.0, 0)
    canal_box = grid.box((-12.0, canal_y - 12.0, -400.0), (12.0, canal_y + 12.0, 400.0))
    if canal_box is not None:
        x, y, _ = grid.coords(canal_box)
        cord = np.hypot(x, y - canal_y) - 5.0
        canvas.paint(canal_box, occupancy(cord, grid.voxel_mm), 35.0, class_id("spinal_cord"))
    return centers


def paint_ribs(grid: Grid, canvas: Canvas, layout: Layout, centers: dict[str, float], rng: np.random.Generator) -> None:
    """Twelve ribs a side descending from their vertebra, costal cartilages and the sternum."""
    body, textures = layout.body, layout.textures
    a, b = body.cavity_radii
    box = grid.box((-a - 20.0, body.center_y - b - 20.0, centers["T12"] - 60.0),
                   (a + 20.0, body.center_y + b + 20.0, 400.0))
    if box is None:
        return
    x, y, z = grid.coords(box)
    wall = ellipse_distance_2d(x, y, (0.0, body.center_y), (a, b)) - 6.0 + 1.5 * textures.bump[box]
    angle = np.arctan2(np.abs(x), body.center_y - y)
    drop = rng.uniform(55.0, 75.0) * (angle / np.pi) ** 1.3
    top = centers["T1"] + 3.0
    pitch = body.thoracic_pitch
    rank = np.rint((top - z - drop) / pitch)
    number = rank + 1
    offset = z + drop - (top - rank * pitch)
    section = np.sqrt((wall / 5.0) ** 2 + (offset / 6.5) ** 2) - 1.0
    rib_end = np.select([number <= 7, number <= 10, number == 11], [2.35, 2.2, 1.7], 1.3)
    cartilage_end = np.select([number <= 7, number <= 10], [2.95, 2.6], 0.0)
    valid = (number >= 1) & (number <= 12) & (angle > 0.35)
    rib = np.where(valid & (angle <= rib_end), section * 5.0, 50.0)
    cartilage = np.where(valid & (angle > rib_end) & (angle <= cartilage_end), section * 5.0, 50.0)
    canvas.paint(box, occupancy(cartilage, grid.voxel_mm), 140.0, class_id("costal_cartilages"))
    rib_occ = occupancy(rib, grid.voxel_mm)
    canvas.paint(box, rib_occ, 480.0, label=None)
    labels = canvas.label[box]
    inside = rib_occ >= 0.5
    for side, mask in (("right", x >= 0), ("left", x < 0)):
        for rib_number in range(1, 13):
            labels[inside & mask & (number == rib_number)] = class_id(f"rib_{side}_{rib_number}")
    front = body.center_y + b
    sternum = np.maximum.reduce([np.abs(x) - 15.0, np.abs(y - front - 4.0) - 6.0,
                                 body.dome_right - 25.0 - z])
    canvas.paint(box, occupancy(sternum, grid.voxel_mm), 380.0, class_id("sternum"))
