"""A randomised procedural head: tissue labels on an axial stack from the vertex to the skull base.

Why procedural and not an atlas: it needs no download, every subject differs (size, shape,
rotation, skull, folding, ventricles), and it is cheap (well under a second per head). The
anatomy is built in a head frame in millimetres (x: left→right, y: anterior→posterior, z: up)
from smooth implicit shapes: ellipsoids for the cerebrum, temporal lobes, cerebellum and
brainstem; radial clefts from a smooth random field for the sulci; a handful of ellipsoids for
the ventricles and deep grey nuclei; thin tubes for the venous sinuses and cortical vessels.
Landmarks (sella, pineal region, cerebellopontine angles, ...) are stored so that tumours and
haemorrhages can be placed where they occur in real patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np
from scipy import ndimage


class Tissue(IntEnum):
    """Label values of :attr:`Head.labels`; stable, other modules store them."""

    BACKGROUND = 0  # air, including the paranasal sinuses
    SCALP_FAT = 1  # scalp, subcutaneous and orbital fat
    SKULL = 2  # cortical bone of the vault and the skull base
    CSF = 3  # subarachnoid and sulcal CSF, interhemispheric fissure
    GREY = 4  # cortex and deep grey nuclei
    WHITE = 5
    VENTRICLE = 6
    VESSEL = 7  # venous sinuses, choroid plexus, large arteries


BRAIN_TISSUES = (Tissue.CSF, Tissue.GREY, Tissue.WHITE, Tissue.VENTRICLE, Tissue.VESSEL)


@dataclass(frozen=True)
class Head:
    """Tissue labels of one subject on an axial stack (slice 0 is the top of the head)."""

    labels: np.ndarray  # (Z, H, W) uint8 of Tissue
    spacing: tuple[float, float, float]  # mm: slice, row, column
    intracranial: np.ndarray  # (Z, H, W) bool: inside the inner table of the skull
    landmarks: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # voxel zyx

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape

    @property
    def brain_mask(self) -> np.ndarray:
        """Brain, CSF, ventricles and vessels inside the skull (what skull stripping keeps)."""
        return np.isin(self.labels, BRAIN_TISSUES) & self.intracranial

    def tissue(self, *kinds: Tissue) -> np.ndarray:
        return np.isin(self.labels, kinds)

    def slab(self, start: int, stop: int) -> Head:
        """Slices ``start:stop`` only (landmarks shifted), to render a few slices cheaply."""
        marks = {k: (z - start, r, c) for k, (z, r, c) in self.landmarks.items()}
        return Head(self.labels[start:stop], self.spacing, self.intracranial[start:stop], marks)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], scale: tuple[float, ...]
) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``scale`` (voxels).

    White noise on a grid of half the correlation length, interpolated with Gaussian weights
    one axis at a time (a matrix product each): the field that filtering full-resolution noise
    would give, at a fraction of the cost of ``ndimage.gaussian_filter`` or spline zooms.
    """
    field = rng.standard_normal(
        [max(2, int(np.ceil(n / max(1.0, s / 2.0))) + 1) for n, s in zip(shape, scale, strict=True)]
    ).astype(np.float32)
    for axis, n in enumerate(shape):
        c = field.shape[axis]
        pos = np.linspace(0.0, c - 1.0, n, dtype=np.float32)[:, None]
        weights = np.exp(-0.5 * (pos - np.arange(c, dtype=np.float32)) ** 2)
        weights /= weights.sum(axis=1, keepdims=True)
        field = np.moveaxis(np.tensordot(weights, field, axes=(1, axis)), 0, axis)
    return (field - field.mean()) / (field.std() + 1e-8)


@dataclass(frozen=True)
class _Frame:
    """Head-frame coordinates (mm) of every voxel, and the inverse map for landmarks.

    x: left→right, y: anterior→posterior, z: up, origin at the centre of the cerebrum (about
    the level of the foramina of Monro). The subject is shifted and rotated in plane and
    tilted (pitch), as positioning varies between real scans.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    centre: tuple[float, float]  # in-plane offset of the head (mm)
    angle: float  # in-plane rotation (rad)
    pitch: float  # forward tilt (rad)
    z_top: float  # head-frame z of slice 0 (mm)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y of shape (1, H, W) and z of shape (Z, H, W), float32."""
        nz, nh, nw = self.shape
        dz, dy, dx = self.spacing
        rows = (np.arange(nh, dtype=np.float32) - (nh - 1) / 2) * dy - self.centre[1]
        cols = (np.arange(nw, dtype=np.float32) - (nw - 1) / 2) * dx - self.centre[0]
        c, s = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        x = (c * cols[None, :] + s * rows[:, None])[None]
        y = (-s * cols[None, :] + c * rows[:, None])[None]
        down = dz * np.arange(nz, dtype=np.float32)[:, None, None]
        z = np.float32(self.z_top) - down + np.float32(np.tan(self.pitch)) * y
        return x, y, z

    def to_voxel(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """(slice, row, column) of a head-frame point; may lie outside the stack."""
        _, nh, nw = self.shape
        dz, dy, dx = self.spacing
        c, s = np.cos(self.angle), np.sin(self.angle)
        cols, rows = c * x - s * y + self.centre[0], s * x + c * y + self.centre[1]
        k = (self.z_top + np.tan(self.pitch) * y - z) / dz
        return float(k), float(rows / dy + (nh - 1) / 2), float(cols / dx + (nw - 1) / 2)


def ellipsoid_depth(x, y, z, centre, axes, down: float | None = None) -> np.ndarray:
    """Signed depth (mm, > 0 inside) below an ellipsoid's surface along the ray from its
    centre: |p|·(1/ρ − 1). Exact on spheres and close elsewhere; unlike a distance transform
    it is continuous between the coarse axial slices. ``down``: the lower z semi-axis."""
    px, py, pz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    az = (
        np.float32(axes[2])
        if down is None
        else np.where(pz < 0, np.float32(down), np.float32(axes[2]))
    )
    rho = np.sqrt(
        (px / np.float32(axes[0])) ** 2 + (py / np.float32(axes[1])) ** 2 + (pz / az) ** 2
    )
    return np.sqrt(px**2 + py**2 + pz**2) * (1.0 / np.maximum(rho, np.float32(1e-3)) - 1.0)


class _Blob(NamedTuple):
    """An ellipsoid in the head frame; ``shear`` bends it outwards towards the back."""

    centre: tuple[float, float, float]
    axes: tuple[float, float, float]
    shear: float = 0.0


def _box(x, y, z, centre, radius: float) -> tuple[slice, slice, slice] | None:
    """The voxel bounding box of a cube of half-side ``radius`` mm round a head-frame point."""
    inplane = (np.abs(x[0] - centre[0]) < radius) & (np.abs(y[0] - centre[1]) < radius)
    rows, cols = np.flatnonzero(inplane.any(1)), np.flatnonzero(inplane.any(0))
    if not rows.size:
        return None
    zc = z[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ks = np.flatnonzero((np.abs(zc - centre[2]) < radius).any((1, 2)))
    if not ks.size:
        return None
    return slice(ks[0], ks[-1] + 1), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def blobs(x, y, z, parts, jitter: np.ndarray | None = None) -> np.ndarray:
    """Union of ellipsoids as a boolean mask, each evaluated only inside its bounding box;
    ``jitter`` (mm, full volume) roughens their surfaces."""
    out = np.zeros(z.shape, dtype=bool)
    for centre, axes, shear in parts:
        box = _box(x, y, z, centre, max(axes) + 3.0 + abs(shear) * 40.0)
        if box is None:
            continue
        xb, yb = x[:, box[1], box[2]], y[:, box[1], box[2]]
        xb = xb - np.float32(shear) * np.maximum(yb, -10.0)
        depth = ellipsoid_depth(xb, yb, z[box], centre, axes)
        if jitter is not None:
            depth = depth + jitter[box]
        out[box] |= depth > 0
    return out


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-t))


@dataclass(frozen=True)
class Subject:
    """The random anatomical parameters of one head (mm unless said otherwise)."""

    lr: float  # half-width of the cerebrum
    ap: float  # half-length
    up: float  # height above the centre
    csf: float  # subarachnoid space thickness (grows with atrophy)
    skull: float
    scalp: float
    cortex: float  # cortical ribbon thickness
    ventricles: float  # lateral-ventricle size factor (1 = young adult)
    sulcal_width: float  # half-width of the sulci (wider with atrophy)
    sulcal_depth: float

    @property
    def outer(self) -> float:
        """CSF + skull + scalp: from the brain surface to the skin."""
        return self.csf + self.skull + self.scalp

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Subject:
        size = rng.normal(1.0, 0.05)
        atrophy = rng.beta(1.5, 4.0)
        return cls(
            lr=size * rng.uniform(62, 72),
            ap=size * rng.uniform(78, 90),
            up=size * rng.uniform(62, 70),
            csf=rng.uniform(1.5, 2.5) + 3.0 * atrophy,
            skull=rng.uniform(5.0, 8.0),
            scalp=rng.uniform(4.0, 8.0),
            cortex=rng.uniform(2.5, 3.5),
            ventricles=rng.uniform(0.8, 1.2) + 1.3 * atrophy,
            sulcal_width=0.45 + 1.2 * atrophy,
            sulcal_depth=rng.uniform(18.0, 26.0),
        )


SKULL_BASE_Z = -58.0  # head-frame height of the foramen magnum region (mm)


def make_head(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (24, 256, 256),
    spacing: tuple[float, float, float] = (5.0, 0.9, 0.9),
) -> Head:
    """Draw one subject's head. Slice 0 is at the top; a stack longer than the head (about
    140 mm) spans vertex to skull base, a shorter one starts anywhere between the vertex and
    as low as still reaching the skull base, as real stacks are positioned."""
    sub = Subject.draw(rng)
    nz, dz = shape[0], float(spacing[0])
    vertex = sub.up + sub.outer + 3.0
    lowest_start = min(vertex, SKULL_BASE_Z + (nz - 1) * dz)
    frame = _Frame(
        shape=tuple(shape),
        spacing=tuple(float(s) for s in spacing),
        centre=tuple(rng.normal(0.0, 4.0, 2)),
        angle=rng.normal(0.0, np.deg2rad(5)),
        pitch=rng.normal(0.0, np.deg2rad(4)),
        z_top=rng.uniform(lowest_start, vertex),
    )
    x, y, z = frame.coordinates()
    vox = np.array(frame.spacing)
    bumps, fine, thickness = (smooth_field(rng, shape, tuple(s / vox)) for s in (20.0, 12.0, 30.0))

    # --- envelopes (signed depth, mm): head, supra-/infratentorial brain, brainstem
    o = sub.outer
    head = ellipsoid_depth(x, y, z, (0, 0, 0), (sub.lr + o, sub.ap + o, sub.up + o), down=150.0)
    head += 1.0 * bumps
    tent = -16.0 - 0.25 * y - 0.1 * np.abs(x)  # tentorium: high at the incisura, low behind
    infra_zone = np.minimum(tent - z, y - 0.05 * sub.ap)  # > 0 below the tentorium
    cerebrum = ellipsoid_depth(x, y, z, (0, 0, 0), (sub.lr, sub.ap, sub.up), down=34.0)
    temporal = np.maximum(
        *(
            ellipsoid_depth(
                x,
                y,
                z,
                (sx * 0.64 * sub.lr, -0.1 * sub.ap, -24.0),
                (0.33 * sub.lr, 0.42 * sub.ap, 20.0),
            )
            for sx in (-1, 1)
        )
    )
    above = np.maximum(
        z - tent, 0.25 * sub.ap - y
    )  # > 0 above the tentorium or before the midbrain
    supra = np.minimum(np.maximum(cerebrum, temporal), above - 1.2) + 1.5 * bumps
    cerebellum = ellipsoid_depth(
        x, y, z, (0, 0.5 * sub.ap, -42.0), (0.72 * sub.lr, 0.38 * sub.ap, 22.0)
    )
    uncut = np.maximum(cerebrum, cerebellum)  # the envelope without the tentorial gap
    cerebellum = np.minimum(cerebellum, infra_zone - 1.2) + 1.5 * bumps
    stem = ellipsoid_depth(x, y, z, (0, 0.14 * sub.ap, -36.0), (13.0, 12.0, 36.0))
    brain_depth = np.maximum(np.maximum(supra, cerebellum), stem)
    brain = brain_depth > 0

    # --- clefts: sulci, cerebellar folia, interhemispheric and Sylvian fissures
    midline = x - 1.5 * smooth_field(rng, (nz, shape[1], 1), (40.0 / dz, 40.0 / vox[1], 1.0))
    fissure_floor = 18.0 - 140.0 * _sigmoid((np.abs(y + 0.02 * sub.ap) - 0.45 * sub.ap) / 3.0)
    fissure = (np.abs(midline) < 0.6 + 0.6 * sub.sulcal_width) & (z > fissure_floor)
    sylvian = _sylvian(x, y, z, sub)
    clefts = ((_sulci(rng, x, y, z, supra, sub) | fissure | sylvian) & (supra > 0)) | (
        _folia(fine, cerebellum) & (cerebellum > 0)
    )

    # --- cortex: within `cortex` mm of the brain surface or of a cleft (measured in plane,
    # where the clefts are nearly perpendicular to the slice); thinner in the cerebellum
    near_cleft = _inplane_distance(~clefts, vox) < sub.cortex * np.where(cerebellum > 0, 0.6, 1.0)
    cortex = (np.maximum(supra, cerebellum) < sub.cortex) | near_cleft

    labels = np.full(shape, Tissue.SKULL, dtype=np.uint8)
    intracranial = (brain_depth > -sub.csf) & (head > sub.scalp)
    labels[intracranial] = Tissue.CSF
    labels[brain] = Tissue.WHITE
    labels[brain & (cortex | blobs(x, y, z, _deep_grey(sub))) & (stem < 1.5)] = Tissue.GREY
    labels[brain & clefts] = Tissue.CSF
    labels[brain & blobs(x, y, z, _ventricles(sub), jitter=0.8 * fine)] = Tissue.VENTRICLE
    _add_skull_base(labels, intracranial, x, y, z, sub)
    labels[(head > 0) & (head < sub.scalp + 1.0 * thickness)] = Tissue.SCALP_FAT
    labels[head <= 0] = Tissue.BACKGROUND
    _add_vessels(rng, labels, x, y, z, sub, tent, brain_depth, uncut, midline)

    landmarks = {name: frame.to_voxel(*point) for name, point in _landmarks(sub).items()}
    return Head(
        labels=labels, spacing=frame.spacing, intracranial=intracranial, landmarks=landmarks
    )


def _landmarks(sub: Subject) -> dict[str, tuple[float, float, float]]:
    """Head-frame positions (mm) of places where particular lesions arise."""
    return {
        "vertex": (0.0, 0.0, sub.up),
        "centre": (0.0, 0.0, 0.0),
        "foramen_monro": (0.0, -0.12 * sub.ap, 2.0),
        "pineal": (0.0, 0.14 * sub.ap, -6.0),
        "sella": (0.0, -0.16 * sub.ap, -30.0),
        "fourth_ventricle": (0.0, 0.34 * sub.ap, -40.0),
        "cpa_left": (-22.0, 0.2 * sub.ap, -40.0),
        "cpa_right": (22.0, 0.2 * sub.ap, -40.0),
        "atrium_left": (-0.24 * sub.lr, 0.3 * sub.ap, 0.0),
        "atrium_right": (0.24 * sub.lr, 0.3 * sub.ap, 0.0),
    }


def _sulci(rng, x, y, z, depth, sub: Subject) -> np.ndarray:
    """Cerebral sulci: clefts where a smooth 3D field, read at the point's projection on the
    brain surface, crosses zero. The zero set draws gyri on the surface; projecting along rays
    (with a slight slant, so they bend) carries them inwards to a depth that varies per sulcus.
    Near the vertex the slices are tangential to the surface and show the gyral pattern."""
    step = 2.0
    lo = np.array([-sub.lr - 12.0, -sub.ap - 12.0, -60.0])
    grid = tuple(
        int(n) for n in np.ceil((np.array([sub.lr, sub.ap, sub.up]) + 12.0 - lo) / step) + 1
    )
    f = ndimage.gaussian_filter(rng.standard_normal(grid).astype(np.float32), 1.0)
    f /= f.std()
    slope = np.sqrt(sum(g**2 for g in np.gradient(f, step)))
    reach = ndimage.gaussian_filter(rng.standard_normal(grid).astype(np.float32), 4.0)
    reach = sub.sulcal_depth * (1.0 + 0.35 * reach / reach.std())

    idx = np.nonzero((depth > 0) & (depth < 40.0))
    p = np.stack([np.broadcast_to(c, depth.shape)[idx] for c in (x, y, z)])
    d = depth[idx]
    q = p * (1.0 + 0.8 * d / (np.linalg.norm(p, axis=0) + 1e-3))
    coords = (q - lo[:, None]) / step
    fv, sv, rv = (
        ndimage.map_coordinates(g, coords, order=1, mode="nearest") for g in (f, slope, reach)
    )
    out = np.zeros(depth.shape, dtype=bool)
    out[idx] = (np.abs(fv) / (sv + 1e-6) < sub.sulcal_width) & (d < np.minimum(rv, 28.0))
    return out


def _sylvian(x, y, z, sub: Subject) -> np.ndarray:
    """The lateral (Sylvian) fissures: from the lateral surface back and in to the insula."""
    out = np.zeros(z.shape, dtype=bool)
    for side in (-1.0, 1.0):
        a = np.array([side * 1.1 * sub.lr, -0.25 * sub.ap])
        b = np.array([side * 0.45 * sub.lr, 0.05 * sub.ap])
        t = np.clip(
            ((x - a[0]) * (b - a)[0] + (y - a[1]) * (b - a)[1]) / np.sum((b - a) ** 2), 0, 1
        )
        dist = np.hypot(x - a[0] - t * (b - a)[0], y - a[1] - t * (b - a)[1])
        out |= (dist < 0.8 + sub.sulcal_width) & (z > -24.0) & (z < -4.0 + 0.1 * y)
    return out


def _folia(field: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Cerebellar folia: fine fissures roughly parallel to the cerebellar surface, every ~5 mm."""
    out = np.zeros(depth.shape, dtype=bool)
    idx = np.nonzero((depth > 1.5) & (depth < 16.0))
    out[idx] = np.abs(np.sin(np.pi * (depth[idx] + 2.5 * field[idx]) / 5.0)) < 0.3
    return out


def _ventricles(sub: Subject) -> list[_Blob]:
    """Lateral ventricles (frontal horns, bodies diverging backwards, atria, occipital and
    temporal horns), third and fourth ventricles."""
    s, lr, ap = sub.ventricles, sub.lr, sub.ap
    parts = []
    for side in (-1.0, 1.0):
        shear = side * 0.12
        parts += [
            _Blob((side * (2.5 + 3 * s), -0.3 * ap, 4.0), (3.0 * s, 0.13 * ap, 7.0 * s), shear),
            _Blob((side * (2.5 + 3 * s), -0.02 * ap, 9.0), (3.2 * s, 0.26 * ap, 5.0 * s), shear),
            _Blob((side * (4.0 + 4 * s), 0.28 * ap, 2.0), (4.5 * s, 0.12 * ap, 8.0 * s), shear),
            _Blob((side * (4.0 + 4 * s), 0.45 * ap, -2.0), (2.2 * s, 0.12 * ap, 4.0 * s), shear),
            _Blob((side * 0.55 * lr, 0.0, -20.0), (1.6 * s, 0.2 * ap, 3.0 * s)),
        ]
    return [
        *parts,
        _Blob((0.0, 0.0, -8.0), (1.2 + 0.6 * s, 0.15 * ap, 8.0)),
        _Blob((0.0, 0.34 * ap, -40.0), (4.0 + 1.5 * s, 3.5, 7.0)),
    ]


def _deep_grey(sub: Subject) -> list[_Blob]:
    """Caudate heads, thalami and lentiform nuclei."""
    s, lr, ap = sub.ventricles, sub.lr, sub.ap
    parts = []
    for side in (-1.0, 1.0):
        parts += [
            _Blob((side * (7.0 + 6.0 * s), -0.24 * ap, 5.0), (4.0, 0.09 * ap, 8.0)),
            _Blob((side * 10.0, 0.04 * ap, -6.0), (7.5, 0.12 * ap, 9.0)),
            _Blob((side * 0.34 * lr, -0.06 * ap, -5.0), (5.0, 0.15 * ap, 9.0)),
        ]
    return parts


def _inplane_distance(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) within each slice from every True voxel to the nearest False one."""
    out = np.full(mask.shape, np.inf, dtype=np.float32)
    for k, m in enumerate(mask):
        if not m.all():
            out[k] = ndimage.distance_transform_edt(m, sampling=spacing[1:])
    return out


def _add_skull_base(labels, intracranial, x, y, z, sub: Subject) -> None:
    """Orbital fat and the globes (vitreous labelled CSF: a fluid outside the skull), air in
    the sphenoid and frontal sinuses and the mastoid cells, carved out of the bone."""
    lr, ap = sub.lr, sub.ap
    bone = ~intracranial
    sides = (-1.0, 1.0)
    orbits = [_Blob((s * 0.45 * lr, -0.82 * ap, -30.0), (15.0, 0.25 * ap, 13.0)) for s in sides]
    globes = [_Blob((s * 0.45 * lr, -0.97 * ap, -30.0), (11.5, 11.5, 11.5)) for s in sides]
    air = [_Blob((s * 0.78 * lr, 0.3 * ap, -48.0), (7.0, 9.0, 8.0)) for s in sides] + [
        _Blob((0.0, -0.3 * ap, -44.0), (13.0, 12.0, 10.0)),  # sphenoid
        _Blob((0.0, -0.98 * ap, -8.0), (12.0, 5.0, 9.0)),  # frontal
    ]
    labels[bone & blobs(x, y, z, orbits)] = Tissue.SCALP_FAT
    labels[bone & blobs(x, y, z, globes)] = Tissue.CSF
    labels[bone & blobs(x, y, z, air)] = Tissue.BACKGROUND


def _add_vessels(rng, labels, x, y, z, sub: Subject, tent, brain_depth, uncut, midline) -> None:
    """Dural venous sinuses, choroid plexus, the large arteries and cortical vessels."""
    ap, lr = sub.ap, sub.lr
    shell = (brain_depth > -(sub.csf + 3.5)) & (brain_depth < 1.0)
    sss = shell & (np.abs(midline) < 3.2) & (z > tent + 2.0) & ((y > 0) | (z > -10.0))
    transverse = (np.abs(uncut + sub.csf + 1.5) < 2.5) & (np.abs(z - tent) < 3.0) & (y > 0.3 * ap)
    straight = (
        (np.abs(midline) < 2.2)
        & (np.abs(z - tent - 1.0) < 2.5)
        & (y > 0.2 * ap)
        & (brain_depth > 0)
    )
    labels[sss | transverse | straight] = Tissue.VESSEL

    choroid = blobs(
        x, y, z, [_Blob((s * 0.24 * lr, 0.3 * ap, 0.0), (3.0, 6.0, 4.0)) for s in (-1, 1)]
    )
    labels[choroid & (labels == Tissue.VENTRICLE)] = Tissue.VESSEL

    arteries = [(0.0, 0.14 * ap - 14.0, 2.0)] + [(s * 15.0, -0.14 * ap, 2.2) for s in (-1, 1)]
    low = (z > -70.0) & (z < -24.0)
    for cx, cy, r in arteries:  # basilar and internal carotid arteries
        labels[low & ((x - cx) ** 2 + (y - cy) ** 2 < r**2)] = Tissue.VESSEL

    # cortical vessels: small flow voids in the subarachnoid space and the sulci
    csf = np.flatnonzero((labels == Tissue.CSF) & (brain_depth > -sub.csf) & (brain_depth < 15.0))
    if csf.size:
        dots = np.zeros(labels.size, dtype=bool)
        dots[rng.choice(csf, size=min(csf.size, 8 * labels.shape[0]), replace=False)] = True
        dots = ndimage.binary_dilation(dots.reshape(labels.shape), np.ones((1, 2, 2), bool))
        labels[dots & (labels == Tissue.CSF)] = Tissue.VESSEL
