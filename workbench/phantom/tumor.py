"""Brain tumours placed in a phantom head: masks of the enhancing or solid core, the necrotic or
cystic centre, calcifications and the surrounding oedema.

Each kind is a :class:`TumorLook`: where it arises, its size and shape, whether it enhances
solidly or as a ring, cysts, calcifications, oedema and its relaxation times. The kinds follow
the textbook picture of each entity (intra-axial gliomas in the white matter, extra-axial
dural-based meningiomas, sellar adenomas, schwannomas at the cerebellopontine angle, ...) so that
a classifier has something real to learn.

The segmentation target (:attr:`Tumor.mask`) is the tumour itself: core ∪ necrosis ∪
calcification. The LGG study's masks (Buda et al.) are drawn on FLAIR and include the whole FLAIR
abnormality, so :attr:`Tumor.flair_mask` adds the oedema; the ``kaggle_3m`` writer uses that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from workbench.errors import InputError
from workbench.phantom.head import Head, Tissue, smooth_field
from workbench.phantom.mr import Relaxation

_NECROTIC = Relaxation(2500.0, 400.0, 0.9)  # necrotic fluid and debris


@dataclass(frozen=True)
class TumorLook:
    """The appearance of one kind of tumour."""

    site: str  # a key of SITES
    radius: tuple[float, float]  # mm, range of the mean radius
    core: Relaxation
    enhancement: float = 0.0  # gadolinium in the core (mM)
    necrosis: float = 0.0  # relative radius of the necrotic or cystic centre (0: solid)
    cavity: Relaxation = _NECROTIC  # what fills the necrosis
    eccentric: float = 0.0  # shift of the centre cavity (a cyst with a mural nodule)
    bubbles: float = 0.0  # fraction of small cysts through the core ("soap bubbles")
    calcified: float = 0.0  # fraction of calcified specks
    oedema: float = 0.0  # mm the oedema reaches into the white matter
    lobulation: float = 0.25  # amplitude of the surface irregularity
    patchiness: float = -3.0  # threshold of patchy (weak) enhancement; -3: uniform
    count: tuple[int, int] = (1, 1)  # lesions per subject
    extra_axial: bool = False  # dural based: grows from the inner table, with a dural tail


_SOLID = Relaxation(1100.0, 120.0, 0.85)
_CYST = Relaxation(3000.0, 1200.0, 0.95)  # proteinaceous fluid: not fully nulled on FLAIR
_CASEOUS = Relaxation(1300.0, 60.0, 0.7)  # caseating necrosis: dark on T2

TUMOR_KINDS: dict[str, TumorLook] = {
    # the diffuse glioma of the Kaggle detection set: anything from low to high grade
    "glioma": TumorLook(
        "white",
        (10, 24),
        Relaxation(1250.0, 160.0, 0.86),
        0.3,
        necrosis=0.4,
        oedema=8.0,
        patchiness=0.0,
    ),
    "astrocytoma": TumorLook(
        "white", (12, 26), Relaxation(1350.0, 190.0, 0.88), 0.0, oedema=3.0, lobulation=0.35
    ),
    "oligodendroglioma": TumorLook(
        "cortex",
        (12, 24),
        Relaxation(1300.0, 170.0, 0.86),
        0.1,
        calcified=0.08,
        oedema=3.0,
        patchiness=0.5,
    ),
    "glioblastoma": TumorLook(
        "white", (16, 30), _SOLID, 0.6, necrosis=0.6, oedema=18.0, lobulation=0.4
    ),
    "metastasis": TumorLook(
        "cortex", (5, 13), _SOLID, 0.6, necrosis=0.45, oedema=22.0, lobulation=0.1, count=(1, 3)
    ),
    "meningioma": TumorLook(
        "dural",
        (12, 26),
        Relaxation(1000.0, 100.0, 0.82),
        0.7,
        oedema=5.0,
        lobulation=0.1,
        extra_axial=True,
    ),
    "pituitary": TumorLook(
        "sella", (7, 14), Relaxation(950.0, 100.0, 0.8), 0.5, lobulation=0.1, extra_axial=True
    ),
    "schwannoma": TumorLook(
        "cpa", (8, 16), _SOLID, 0.5, necrosis=0.35, cavity=_CYST, lobulation=0.15, extra_axial=True
    ),
    "ependymoma": TumorLook(
        "fourth_ventricle",
        (10, 18),
        Relaxation(1150.0, 140.0, 0.86),
        0.35,
        bubbles=0.12,
        calcified=0.05,
        patchiness=0.3,
    ),
    "ganglioglioma": TumorLook(
        "cortex", (10, 20), _SOLID, 0.5, necrosis=0.75, cavity=_CYST, eccentric=0.35, calcified=0.04
    ),
    "germinoma": TumorLook("pineal", (8, 15), Relaxation(1000.0, 85.0, 0.82), 0.6, lobulation=0.12),
    "granuloma": TumorLook(
        "cortex", (4, 8), _SOLID, 0.45, necrosis=0.55, cavity=_CASEOUS, oedema=10.0, lobulation=0.05
    ),
    "medulloblastoma": TumorLook(
        "vermis", (12, 20), Relaxation(1250.0, 95.0, 0.84), 0.4, oedema=4.0, patchiness=0.2
    ),
    "neurocytoma": TumorLook(
        "foramen_monro", (10, 18), Relaxation(1100.0, 130.0, 0.85), 0.3, bubbles=0.3, calcified=0.05
    ),
    "papilloma": TumorLook("atrium", (8, 15), Relaxation(1000.0, 110.0, 0.84), 0.9, lobulation=0.5),
    "tuberculoma": TumorLook(
        "cortex",
        (4, 9),
        _SOLID,
        0.5,
        necrosis=0.5,
        cavity=_CASEOUS,
        oedema=12.0,
        lobulation=0.1,
        count=(2, 4),
    ),
}


@dataclass
class Tumor:
    """Boolean (Z, H, W) masks of one subject's tumour(s) and how they look."""

    core: np.ndarray  # enhancing or solid tumour
    necrosis: np.ndarray  # necrotic or cystic centre
    oedema: np.ndarray  # peritumoral vasogenic oedema (FLAIR/T2 bright)
    kind: str
    calcification: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.calcification is None:
            self.calcification = np.zeros_like(self.core)

    @property
    def look(self) -> TumorLook:
        return TUMOR_KINDS[self.kind]

    @property
    def mask(self) -> np.ndarray:
        """The tumour itself: core ∪ necrosis ∪ calcification."""
        return self.core | self.necrosis | self.calcification

    def slab(self, start: int, stop: int) -> Tumor:
        """Slices ``start:stop`` only, matching :meth:`Head.slab`."""
        cut = slice(start, stop)
        return Tumor(
            self.core[cut], self.necrosis[cut], self.oedema[cut], self.kind, self.calcification[cut]
        )

    @property
    def flair_mask(self) -> np.ndarray:
        """The whole FLAIR abnormality, tumour and oedema, as the LGG masks were drawn."""
        return self.mask | self.oedema


def _site_from_landmark(name: str, jitter: float = 3.0):
    def pick(head: Head, rng: np.random.Generator, radius: float) -> np.ndarray:
        if name in head.landmarks:
            point = np.array(head.landmarks[name])
        else:  # a paired landmark: either side
            point = np.array(head.landmarks[f"{name}_{rng.choice(['left', 'right'])}"])
        return point + rng.normal(0.0, jitter, 3) / np.array(head.spacing)

    return pick


def _site_in_tissue(tissue: Tissue, depth: float):
    """A random voxel of ``tissue`` at least ``depth`` mm inside the brain (in plane)."""

    def pick(head: Head, rng: np.random.Generator, radius: float) -> np.ndarray:
        # on every other row and column: a site needs no finer grid, and it is 4× cheaper
        sp = (head.spacing[0], 2 * head.spacing[1], 2 * head.spacing[2])
        labels = head.labels[:, ::2, ::2]
        inside = ndimage.distance_transform_edt(head.brain_mask[:, ::2, ::2], sampling=sp)
        z = np.arange(labels.shape[0])[:, None, None]
        supratentorial = z < head.landmarks["fourth_ventricle"][0] - 2
        ok = (labels == tissue) & (inside > depth + 0.3 * radius) & supratentorial
        if not ok.any():
            ok = (labels == tissue) & (inside > 0)
        idx = np.flatnonzero(ok)
        if not idx.size:
            raise InputError("The phantom head has no brain in its slices; use a taller stack.")
        return np.array(np.unravel_index(rng.choice(idx), labels.shape), dtype=float) * (1, 2, 2)

    return pick


def _site_dural(head: Head, rng: np.random.Generator, radius: float) -> np.ndarray:
    """A point on the inner table over the convexity (or the falx), pushed in by half a radius."""
    inner = head.intracranial & ~ndimage.binary_erosion(head.intracranial, np.ones((1, 3, 3), bool))
    z = np.arange(head.shape[0])[:, None, None]
    inner &= z < head.landmarks["centre"][0] + 2
    idx = np.flatnonzero(inner)
    if not idx.size:
        raise InputError("The phantom head has no skull in its slices; use a taller stack.")
    point = np.array(np.unravel_index(rng.choice(idx), head.shape), dtype=float)
    centre = np.array(head.landmarks["centre"])
    inward = (centre - point) * head.spacing
    inward[0] = 0.0
    return point + 0.5 * radius * inward / (np.linalg.norm(inward) + 1e-6) / np.array(head.spacing)


def _room(head: Head, box: tuple[slice, ...], look: TumorLook) -> np.ndarray:
    """Where a tumour may grow: extra-axial ones anywhere inside the skull; intra-axial ones in
    the brain, effacing its sulci and (for intraventricular kinds) filling the ventricles, but
    at least ~3 mm inside the inner table."""
    if look.extra_axial:
        return head.intracranial[box]
    allowed = [Tissue.GREY, Tissue.WHITE, Tissue.CSF, Tissue.VESSEL]
    if look.site in _INTRAVENTRICULAR:
        allowed.append(Tissue.VENTRICLE)
    steps = max(1, round(3.0 / head.spacing[1]))
    inner = ndimage.binary_erosion(
        head.intracranial[box], np.ones((1, 3, 3), bool), steps, border_value=1
    )
    return inner & np.isin(head.labels[box], allowed)


_INTRAVENTRICULAR = {"fourth_ventricle", "vermis", "pineal", "foramen_monro", "atrium"}

SITES = {
    "white": _site_in_tissue(Tissue.WHITE, 6.0),
    "cortex": _site_in_tissue(Tissue.GREY, 3.0),
    "dural": _site_dural,
    "sella": _site_from_landmark("sella", 1.5),
    "cpa": _site_from_landmark("cpa", 2.0),
    "fourth_ventricle": _site_from_landmark("fourth_ventricle", 2.0),
    "vermis": _site_from_landmark("fourth_ventricle", 3.0),
    "pineal": _site_from_landmark("pineal", 2.0),
    "foramen_monro": _site_from_landmark("foramen_monro", 3.0),
    "atrium": _site_from_landmark("atrium", 2.0),
}


def _largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest connected piece: clipping to the room it may grow in can cut off lobes."""
    parts, n = ndimage.label(mask, np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask
    return parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))


def _lesion(
    head: Head, rng: np.random.Generator, look: TumorLook, centre: np.ndarray, radius: float
):
    """Masks (core, necrosis, calcification, oedema) of one lesion inside a local box."""
    sp = np.array(head.spacing)
    half = np.ceil((radius * (1.0 + look.lobulation) + look.oedema + 4.0) / sp).astype(int)
    lo = np.maximum(np.round(centre).astype(int) - half, 0)
    hi = np.minimum(np.round(centre).astype(int) + half + 1, head.shape)
    if np.any(hi <= lo):
        raise InputError("The tumour site lies outside the phantom's slices; use a taller stack.")
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    shape = tuple(hi - lo)
    grids = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij")
    offset = [(g - c) * s for g, c, s in zip(grids, centre, sp, strict=True)]
    axes = radius * rng.uniform(0.75, 1.25, 3)
    rho = np.sqrt(sum((o / a) ** 2 for o, a in zip(offset, axes, strict=True)))
    rough = smooth_field(rng, shape, tuple(np.maximum(radius / 1.5 / sp, 1.0)))
    whole = rho < 1.0 + look.lobulation * rough
    whole &= _room(head, box, look)
    whole = _largest_part(whole)
    necrosis = np.zeros(shape, dtype=bool)
    if look.necrosis:
        shift = look.eccentric * rng.normal(size=3)
        rho_c = np.sqrt(
            sum(((o / a) - d) ** 2 for o, a, d in zip(offset, axes, shift, strict=True))
        )
        necrosis = whole & (rho_c < look.necrosis * (1.0 + 0.15 * rough))
    fine = smooth_field(rng, shape, tuple(np.maximum(2.0 / sp, 0.5)))
    if look.bubbles:
        necrosis |= whole & (fine > np.quantile(fine, 1.0 - look.bubbles))
    calcification = (
        whole & ~necrosis & (fine < np.quantile(fine, look.calcified))
        if look.calcified
        else np.zeros_like(whole)
    )
    core = whole & ~necrosis & ~calcification
    if look.extra_axial and look.site == "dural":  # the dural tail: enhancing dura next to it
        near = ndimage.distance_transform_edt(~whole, sampling=sp) < 0.6 * radius
        inner = head.intracranial[box] & ~ndimage.binary_erosion(
            head.intracranial[box], np.ones((1, 3, 3), bool), border_value=1
        )
        core |= near & inner
    oedema = np.zeros(shape, dtype=bool)
    if look.oedema:
        reach = look.oedema * (
            1.0 + 0.5 * smooth_field(rng, shape, tuple(np.maximum(8.0 / sp, 1.0)))
        )
        white = head.labels[box] == Tissue.WHITE
        oedema = white & ~whole & (ndimage.distance_transform_edt(~whole, sampling=sp) < reach)
        # keep only oedema connected to the tumour (white matter can pinch it off)
        parts, _ = ndimage.label(oedema | whole, np.ones((3, 3, 3), bool))
        oedema &= np.isin(parts, np.unique(parts[whole]))
    return box, core, necrosis, calcification, oedema


def make_tumor(head: Head, rng: np.random.Generator, kind: str | None = None) -> Tumor:
    """Place a tumour of ``kind`` (a key of :data:`TUMOR_KINDS`; random when None) in ``head``."""
    kind = kind or str(rng.choice(list(TUMOR_KINDS)))
    if kind not in TUMOR_KINDS:
        raise InputError(f"Unknown tumour kind {kind!r}; choose one of {', '.join(TUMOR_KINDS)}.")
    look = TUMOR_KINDS[kind]
    masks = [np.zeros(head.shape, dtype=bool) for _ in range(4)]
    for _ in range(rng.integers(look.count[0], look.count[1] + 1)):
        radius = rng.uniform(*look.radius)
        centre = SITES[look.site](head, rng, radius)
        box, *parts = _lesion(head, rng, look, centre, radius)
        for full, part in zip(masks, parts, strict=True):
            full[box] |= part
    core, necrosis, calcification, oedema = masks
    tumour = core | necrosis | calcification
    return Tumor(
        core=core,
        necrosis=necrosis & ~core,
        oedema=oedema & ~tumour,
        kind=kind,
        calcification=calcification & ~core & ~necrosis,
    )
