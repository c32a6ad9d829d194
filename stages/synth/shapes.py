"""Geometry for the phantom: the voxel grid, signed distances and smooth noise.

Shapes are signed distances in mm (negative inside) evaluated only inside each shape's
bounding box, turned into partial-volume occupancy at the boundary. Smooth deformations
and textures are low-resolution Gaussian noise upsampled to the grid, so nothing loops
over voxels in Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box = tuple[slice, slice, slice]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                 cell_mm: float) -> np.ndarray:
    """Unit-variance noise on the grid that varies smoothly over ``cell_mm`` (coarse noise, upsampled
    linearly one axis at a time)."""
    coarse = tuple(max(2, math.ceil(n * s / cell_mm) + 1) for n, s in zip(shape, spacing))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), 0.7, mode="wrap").astype(np.float32)
    for axis, (fine, size) in enumerate(zip(shape, coarse)):
        position = np.linspace(0.0, size - 1.0, fine)
        low = np.minimum(np.floor(position).astype(int), size - 2)
        weight = (position - low).astype(np.float32).reshape([fine if a == axis else 1 for a in range(3)])
        field = np.take(field, low, axis=axis) * (1.0 - weight) + np.take(field, low + 1, axis=axis) * weight
    return field / (field.std() + 1e-6)


@dataclass
class Grid:
    """World coordinates (mm, RAS) of every voxel centre, optionally smoothly displaced."""

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    spacing: tuple[float, float, float]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    margin_mm: float

    @classmethod
    def build(cls, shape: tuple[int, int, int], spacing: tuple[float, float, float],
              origin: tuple[float, float, float]) -> Grid:
        axes = tuple((o + s * np.arange(n)).astype(np.float32) for n, s, o in zip(shape, spacing, origin))
        x, y, z = np.meshgrid(*axes, indexing="ij")
        return cls(axes=axes, spacing=spacing, x=x, y=y, z=z, margin_mm=0.0)

    def displace(self, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, amplitude_mm: float) -> None:
        """Warp all shapes smoothly (organs are never perfect ellipsoids)."""
        self.x += amplitude_mm * dx
        self.y += amplitude_mm * dy
        self.z += amplitude_mm * dz
        self.margin_mm = 3.0 * amplitude_mm

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.x.shape

    @property
    def voxel_mm(self) -> float:
        """Edge width used for partial-volume occupancy."""
        return float(np.prod(self.spacing)) ** (1.0 / 3.0)

    def box(self, low: tuple[float, float, float], high: tuple[float, float, float]) -> Box | None:
        """Index box covering the world box ``[low, high]`` (plus the warp margin); None if outside."""
        slices = []
        for axis, lo, hi in zip(self.axes, low, high):
            start = int(np.searchsorted(axis, lo - self.margin_mm, side="left"))
            stop = int(np.searchsorted(axis, hi + self.margin_mm, side="right"))
            if stop <= start:
                return None
            slices.append(slice(start, stop))
        return tuple(slices)

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x[box], self.y[box], self.z[box]


def rotation(degrees_x: float, degrees_y: float, degrees_z: float) -> np.ndarray:
    """Rotation matrix (x, then y, then z axis)."""
    ax, ay, az = (math.radians(v) for v in (degrees_x, degrees_y, degrees_z))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Ellipsoid:
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    rotation: np.ndarray | None = None

    def bounds(self, pad: float = 0.0) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """World box around the (rotated) ellipsoid, ``pad`` mm wider on every side."""
        radii = np.asarray(self.radii, dtype=float)
        if self.rotation is None:
            reach = radii + pad
        else:
            reach = np.sqrt(((self.rotation * radii) ** 2).sum(axis=1)) + pad
        return (tuple(float(c - r) for c, r in zip(self.center, reach)),
                tuple(float(c + r) for c, r in zip(self.center, reach)))

    def local(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates in the ellipsoid's own (rotated, centred) frame."""
        px, py, pz = x - self.center[0], y - self.center[1], z - self.center[2]
        if self.rotation is None:
            return px, py, pz
        r = self.rotation
        return (r[0, 0] * px + r[1, 0] * py + r[2, 0] * pz,
                r[0, 1] * px + r[1, 1] * py + r[2, 1] * pz,
                r[0, 2] * px + r[1, 2] * py + r[2, 2] * pz)

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance in mm (exact on the surface's normal direction near it)."""
        qx, qy, qz = self.local(x, y, z)
        a, b, c = self.radii
        k0 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2 + (qz / c) ** 2)
        k1 = np.sqrt((qx / a**2) ** 2 + (qy / b**2) ** 2 + (qz / c**2) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def ellipse_distance_2d(x: np.ndarray, y: np.ndarray, center: tuple[float, float],
                        radii: tuple[float, float] | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Signed distance (mm) to an axis-aligned ellipse in the x-y plane (radii may vary with z)."""
    a, b = radii
    qx, qy = x - center[0], y - center[1]
    k0 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2)
    k1 = np.sqrt((qx / a**2) ** 2 + (qy / b**2) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def polyline_distance(x: np.ndarray, y: np.ndarray, z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance (mm) to a polyline through ``points`` (n x 3), minimum over its segments."""
    best = np.full(x.shape, np.inf, dtype=np.float32)
    for start, end in zip(points[:-1], points[1:]):
        direction = end - start
        length2 = float(direction @ direction)
        px, py, pz = x - start[0], y - start[1], z - start[2]
        t = np.clip((px * direction[0] + py * direction[1] + pz * direction[2]) / length2, 0.0, 1.0)
        dist2 = (px - t * direction[0]) ** 2 + (py - t * direction[1]) ** 2 + (pz - t * direction[2]) ** 2
        np.minimum(best, dist2, out=best)
    return np.sqrt(best)


def polyline_bounds(points: np.ndarray, radius: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(points.min(axis=0) - radius), tuple(points.max(axis=0) + radius)


def occupancy(distance: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction of a voxel from its signed distance to the boundary."""
    return np.clip(0.5 - distance / width, 0.0, 1.0).astype(np.float32)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float = 8.0) -> np.ndarray:
    """Union of two signed distances with a rounded seam of about ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def frame_from_axis(direction: tuple[float, float, float]) -> np.ndarray:
    """Rotation whose first column is ``direction`` (an ellipsoid's long axis)."""
    first = np.asarray(direction, dtype=float)
    first /= np.linalg.norm(first)
    helper = np.array([0.0, 0.0, 1.0]) if abs(first[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    second = np.cross(helper, first)
    second /= np.linalg.norm(second)
    return np.stack([first, second, np.cross(first, second)], axis=1)
