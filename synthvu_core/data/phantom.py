"""Procedural spine phantom: patient-specific MRI-like sagittal volumes with vertebral-body labels.

Each patient is a chain of rigid segments along a curved spine (dens, C2 body, disc, C3 body, ...,
L5 body, L5/S1 disc, S1 body and fused sacral segments). Every segment lies between two planes, so
discs and bodies become wedges where the spine bends (lordosis, kyphosis, sacral slope). The
sagittal geometry is computed on a 2-D (AP x SI) grid; each structure carries a lateral half-width
map, so the 3-D volume costs one broadcast per layer. Texture, partial volume, bias field and
Rician noise give the MRI look.

``render_patient`` reads as the recipe: draw the patient's parameters, lay out the chain of segments
(balanced so that C2 sits above S1), set up the voxel frame, then paint background, anterior ligament
and great vessels, canal, posterior elements, bodies and discs, findings, and finally the acquisition
(blur, bias field, Rician noise). All stages share one random generator, so their order is fixed.

Volumes are RAS: array axis 0 runs left -> right (``LR_MM`` between sagittal slices), axis 1
posterior -> anterior and axis 2 inferior -> superior (1 mm). Label codes follow VerSe
(C2=2 ... L5=24, S1=26); only vertebral bodies are labelled.

Patient ``i`` depends only on ``(seed, i)``: a cohort of 10 and a cohort of 120 share their first
10 patients, and the same seed writes the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from synthvu_core.errors import DataError
from synthvu_core.names import IMAGE_SUFFIX, LABEL_SUFFIX, PATIENTS_CSV
from synthvu_core.storage import atomic_path

LR_MM = 2.0  #: distance between sagittal slices
N_LR = 24  #: sagittal slices (48 mm across the midline)
CONTRASTS = ("T2", "T1")

BODY_NAMES: tuple[str, ...] = (
    *(f"C{i}" for i in range(2, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)
BODY_CODES: tuple[int, ...] = (*range(2, 25), 26)

# Morphometry anchors by body index (0 = C2 ... 22 = L5, 23 = S1):
# body height, AP depth, width, disc height below, canal AP (mm).
_ANCHORS = np.array(
    [
        # idx  height depth width disc  canal
        [0, 15.5, 15.0, 18.0, 5.0, 16.5],
        [1, 14.0, 15.5, 21.5, 5.0, 16.0],
        [3, 14.5, 16.0, 23.5, 5.5, 15.0],
        [5, 15.0, 17.0, 25.0, 5.3, 14.5],
        [6, 17.0, 17.5, 26.0, 4.4, 14.0],
        [9, 18.5, 19.5, 27.5, 4.6, 13.5],
        [12, 20.5, 23.5, 30.0, 5.5, 13.5],
        [14, 21.5, 25.5, 31.5, 6.0, 14.0],
        [15, 22.5, 27.0, 33.0, 6.6, 14.5],
        [17, 24.5, 29.5, 37.0, 8.0, 15.5],
        [18, 25.5, 31.0, 41.0, 9.5, 16.0],
        [20, 26.5, 33.5, 45.0, 10.5, 16.0],
        [21, 27.0, 34.5, 47.0, 11.5, 16.0],
        [22, 27.0, 35.0, 49.0, 10.5, 16.5],
        [23, 28.0, 34.0, 46.0, 2.0, 14.0],
    ],
    dtype=np.float64,
)

# Relative signal per tissue (ANATOMY.md contrast table).
_TISSUE = {
    "T2": dict(csf=1.0, nucleus=0.85, degen=0.27, annulus=0.15, marrow=0.33, cortex=0.05, cord=0.40,
               fat=0.75, muscle=0.25, hemangioma=0.82, modic=0.78, void=0.0, vessel=0.06, air=0.02,
               ligament=0.05, organ=0.35, vein=0.8),
    "T1": dict(csf=0.12, nucleus=0.35, degen=0.30, annulus=0.30, marrow=0.75, cortex=0.05, cord=0.45,
               fat=0.95, muscle=0.35, hemangioma=0.92, modic=0.22, void=0.0, vessel=0.1, air=0.02,
               ligament=0.05, organ=0.4, vein=0.55),
}

FINDING_KINDS = ("hemangioma", "schmorl_node", "wedge_fracture", "fusion_implant", "modic")


@dataclass
class PhantomVolume:
    """One rendered patient.

    ``image``: uint8 ``[LR, AP, SI]`` in 1..255; ``labels``: uint8, same shape, VerSe body codes;
    ``affine``: 4x4 voxel -> RAS mm; ``attributes``: age, sex, findings, curvature and size factors.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    attributes: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# patient parameters
#
# Every random number of a patient comes from one generator seeded with ``(seed, index)``. The
# draws happen in a fixed order: first the parameters below (``_draw_patient``), then the rendering
# stages in the order ``render_patient`` calls them. Changing that order changes every phantom.


@dataclass(frozen=True)
class Curvature:
    """Sagittal curvature of one patient, in degrees (the sacral slope is the balanced one)."""

    cervical_lordosis_deg: float
    thoracic_kyphosis_deg: float
    lumbar_lordosis_deg: float
    sacral_slope_deg: float


@dataclass(frozen=True)
class Finding:
    """One patient-specific finding at a vertebral body (``index``: 0 = C2 ... 23 = S1).

    ``position``: where in the body, each in [-1, 1] (anterior, inferior, lateral); unused by implants.
    """

    kind: str
    index: int
    size: float
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def level(self) -> str:
        return BODY_NAMES[self.index]


@dataclass(frozen=True)
class LateralDrift:
    """Mild scoliosis / off-centre spine: the mid-sagittal plane's LR offset along the SI axis (mm)."""

    offset: float
    amplitude: float
    cycles: float  # sine periods over the field of view
    phase: float  # in periods


@dataclass(frozen=True)
class PatientParams:
    """Every anatomical parameter of one patient; arrays run over the 24 bodies (C2 ... S1) or the
    23 discs between them, in mm unless named otherwise. The arrays are read-only."""

    age: int
    sex: str
    size: float  # overall size factor
    endplate_concavity: float
    bend_weights: np.ndarray  # share of each disc in its region's curvature
    lateral: LateralDrift
    lean_deg: float  # forward lean of the C2-S1 line
    body_height: np.ndarray
    body_depth: np.ndarray
    body_width: np.ndarray
    disc_height: np.ndarray  # below each body (the last: S1 to the first sacral segment)
    canal_depth: np.ndarray
    degeneration: np.ndarray  # per disc, 0..1
    curvature: Curvature
    findings: tuple[Finding, ...]
    tissue: Mapping[str, float]  # relative signal per tissue in this scan
    contrast: str

    def __post_init__(self) -> None:
        for name in ("bend_weights", "body_height", "body_depth", "body_width", "disc_height", "canal_depth",
                     "degeneration"):
            getattr(self, name).flags.writeable = False


def _smooth_noise(rng: np.random.Generator, n: int, sd: float, rho: float = 0.6) -> np.ndarray:
    """AR(1) noise of length n with marginal std ``sd`` (gradual level-to-level variation)."""
    innovations = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = innovations[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho**2) * innovations[i]
    return out * sd


def _interp_anchor(col: int) -> np.ndarray:
    """One column of :data:`_ANCHORS` (0 height, 1 depth, 2 width, 3 disc, 4 canal) at every body."""
    return np.interp(np.arange(len(BODY_NAMES)), _ANCHORS[:, 0], _ANCHORS[:, col + 1])


def _draw_morphometry(rng: np.random.Generator, size: float) -> tuple[np.ndarray, ...]:
    """Body height, depth, width, disc height and canal depth per level: the anchors times patient-level
    shape factors (slenderness, depth vs height) and gradual per-level noise."""
    n_bodies = len(BODY_NAMES)
    height = _interp_anchor(0) * size * np.exp(rng.normal(0, 0.04) + _smooth_noise(rng, n_bodies, 0.035))
    depth = _interp_anchor(1) * size * np.exp(rng.normal(0, 0.05) + _smooth_noise(rng, n_bodies, 0.035))
    width = _interp_anchor(2) * size * np.exp(rng.normal(0, 0.05) + _smooth_noise(rng, n_bodies, 0.03))
    disc = _interp_anchor(3) * size * np.exp(rng.normal(0, 0.08) + _smooth_noise(rng, n_bodies, 0.06))
    canal = _interp_anchor(4) * np.exp(rng.normal(0, 0.07) + _smooth_noise(rng, n_bodies, 0.04))
    return height, depth, width, disc, canal


def _draw_degeneration(rng: np.random.Generator, age: int) -> np.ndarray:
    """Disc degeneration 0..1 per disc: grows with age, earlier at the lower cervical and lumbar discs."""
    n_discs = len(BODY_NAMES) - 1
    onset = np.full(n_discs, 68.0)
    onset[[3, 4]] = 56.0  # C5/C6, C6/C7
    onset[[20, 21, 22]] = [60.0, 52.0, 52.0]  # L3/L4, L4/L5, L5/S1
    onset += _smooth_noise(rng, n_discs, 6.0) + rng.normal(0, 7.0)
    degeneration = 1.0 / (1.0 + np.exp(-(age - onset) / 8.0))
    return np.clip(degeneration * rng.uniform(0.3, 1.1, n_discs), 0, 1)


def _draw_curvature(rng: np.random.Generator, age: int) -> Curvature:
    """Regional curvature before balancing (the sacral slope is adjusted by :func:`_balanced_chain`)."""
    return Curvature(
        cervical_lordosis_deg=float(rng.uniform(15, 40)),
        thoracic_kyphosis_deg=float(rng.uniform(20, 48) + 0.15 * max(age - 50, 0)),
        lumbar_lordosis_deg=float(rng.uniform(44, 64)),
        sacral_slope_deg=float(rng.uniform(30, 50)),
    )


def _draw_findings(rng: np.random.Generator, age: int) -> tuple[Finding, ...]:
    """Findings: more with age; implants only at the levels where fusions are common."""
    findings: list[Finding] = []
    for _ in range(int(rng.poisson(0.9 + 0.015 * max(age - 40, 0)))):
        kind = str(rng.choice(FINDING_KINDS, p=[0.32, 0.24, 0.16, 0.08, 0.2]))
        if kind == "fusion_implant":
            level = int(rng.choice([3, 4, 19, 20, 21, 22]))  # C5, C6, L2..L5 upper body of the fused pair
            findings.append(Finding(kind, level, float(rng.uniform(0.8, 1.2))))
        else:
            level = int(rng.integers(0, len(BODY_NAMES) - 1))
            size = float(rng.uniform(0.6, 1.3))
            anterior, inferior, lateral = (float(v) for v in rng.uniform(-1, 1, 3))
            findings.append(Finding(kind, level, size, (anterior, inferior, lateral)))
    return tuple(findings)


def _draw_tissue(rng: np.random.Generator, contrast: str, age: int) -> Mapping[str, float]:
    """Per-scan contrast jitter of every tissue (no per-level offsets); marrow gets fattier with age."""
    tissue = dict(_TISSUE[contrast])
    for name in tissue:
        tissue[name] = float(np.clip(tissue[name] * np.exp(rng.normal(0, 0.06)), 0, 1.2))
    marrow_age = (age - 50) / 40.0
    marrow_gain = 0.06 if contrast == "T1" else 0.05
    tissue["marrow"] = float(np.clip(tissue["marrow"] + marrow_gain * marrow_age, 0.2, 1))
    return MappingProxyType(tissue)


def _draw_patient(index: int, seed: int, contrast: str) -> tuple[PatientParams, np.random.Generator]:
    """Draw every anatomical parameter of patient ``index``; the generator goes on to the rendering."""
    rng = np.random.default_rng([int(seed), int(index), 7])
    age = int(rng.integers(22, 86))
    sex = "F" if rng.random() < 0.5 else "M"
    size = (0.94 if sex == "F" else 1.0) * float(np.exp(rng.normal(0, 0.045)))
    height, depth, width, disc, canal = _draw_morphometry(rng, size)
    degeneration = _draw_degeneration(rng, age)
    disc[:-1] *= 1.0 - 0.4 * degeneration
    endplate_concavity = float(rng.uniform(0.6, 1.4))
    curvature = _draw_curvature(rng, age)
    findings = _draw_findings(rng, age)
    for finding in findings:
        if finding.kind == "wedge_fracture":
            height[finding.index] *= 0.85
    bend_weights = rng.uniform(0.7, 1.3, len(BODY_NAMES) - 1)
    lateral = LateralDrift(float(rng.normal(0, 1.5)), float(rng.uniform(0, 5)), float(rng.uniform(0.6, 1.6)),
                           float(rng.random()))
    lean_deg = float(rng.normal(1.0 + 0.06 * max(age - 40, 0), 2.0))
    tissue = _draw_tissue(rng, contrast, age)
    params = PatientParams(
        age=age, sex=sex, size=size, endplate_concavity=endplate_concavity, bend_weights=bend_weights,
        lateral=lateral, lean_deg=lean_deg, body_height=height, body_depth=depth, body_width=width,
        disc_height=disc, canal_depth=canal, degeneration=degeneration, curvature=curvature,
        findings=findings, tissue=tissue, contrast=contrast,
    )
    return params, rng


# ----------------------------------------------------------------------------------------------
# the chain of segments


@dataclass
class _Segment:
    kind: str  # dens, body, disc, sacral, sdisc
    code: int  # VerSe code for labelled bodies, else 0
    depth: float
    width: float
    canal: float
    wall: float  # depth whose posterior face bounds the canal
    shift: float = 0.0  # AP offset of the structure centre (anterior +)
    degen: float = 0.0  # disc degeneration 0..1
    index: int = -1  # body index (0=C2 .. 23=S1) of a body, upper body of a disc


_Index = TypeVar("_Index", int, np.ndarray)


def _body_segment(i: _Index) -> _Index:
    """Segment number of body ``i`` (0 = C2; an int or an array): after the dens, bodies and discs alternate."""
    return 1 + 2 * i


S1_SEGMENT = _body_segment(len(BODY_NAMES) - 1)


@dataclass(frozen=True)
class _Chain:
    """The segments and the planes between them in the mid-sagittal (AP, SI) plane, in mm.

    Plane ``k`` tops segment ``k``; ``normals`` point down the spine, ``plane_anterior`` forwards.
    ``centres`` and ``anterior`` are each segment's centre and mean anterior axis; ``arc`` is the
    distance along the spine from the top of the dens to each plane.
    """

    segments: tuple[_Segment, ...]
    points: np.ndarray  # [n_segments + 1, 2]
    normals: np.ndarray  # [n_segments + 1, 2]
    arc: np.ndarray  # [n_segments + 1]
    plane_anterior: np.ndarray  # [n_segments + 1, 2]
    centres: np.ndarray  # [n_segments, 2]
    anterior: np.ndarray  # [n_segments, 2]


def _disc_angles(params: PatientParams) -> np.ndarray:
    """Signed bend (radians) at each disc, positive = kyphotic; sums match the patient's angles."""
    curvature, weights = params.curvature, params.bend_weights
    angles = np.zeros(len(BODY_NAMES) - 1)
    cervical = np.arange(0, 5)  # C2/C3 .. C6/C7
    thoracic = np.arange(6, 17)  # T1/T2 .. T11/T12
    lumbar = np.arange(18, 23)  # L1/L2 .. L5/S1
    angles[cervical] = -curvature.cervical_lordosis_deg * weights[cervical] / weights[cervical].sum()
    angles[thoracic] = curvature.thoracic_kyphosis_deg * weights[thoracic] / weights[thoracic].sum()
    lumbar_weights = weights[lumbar] * np.array([0.5, 0.7, 1.0, 1.3, 1.6])
    angles[lumbar] = -curvature.lumbar_lordosis_deg * lumbar_weights / lumbar_weights.sum()
    return np.deg2rad(angles)


def _segments(params: PatientParams) -> tuple[list[_Segment], list[float], list[float]]:
    """Segments from the dens down to the sacrum, each with its height and the change of direction
    across it (disc bends; wedge fractures bend inside the body; the sacrum curves posteriorly)."""
    height, depth, width = params.body_height, params.body_depth, params.body_width
    canal, disc = params.canal_depth, params.disc_height
    n_bodies = len(BODY_NAMES)
    disc_bend = _disc_angles(params)
    body_bend = np.zeros(n_bodies)  # wedge fractures: bodies lose anterior height
    for finding in params.findings:
        if finding.kind == "wedge_fracture":
            body_bend[finding.index] = np.deg2rad(8 + 10 * finding.size)
    segments = [_Segment("dens", 0, depth[0] * 0.62, width[0] * 0.5, canal[0], depth[0], shift=-0.05 * depth[0],
                         index=0)]
    heights = [height[0] * 0.95]
    bends = [0.0]
    for i in range(n_bodies):
        segments.append(_Segment("body", BODY_CODES[i], depth[i], width[i], canal[i], depth[i], index=i))
        heights.append(height[i])
        bends.append(body_bend[i])
        if i < n_bodies - 1:
            mean_depth = 0.5 * (depth[i] + depth[i + 1])
            degeneration = params.degeneration[i]
            bulge = 1.0 + 2.5 * degeneration
            segments.append(_Segment("disc", 0, mean_depth + bulge, 0.5 * (width[i] + width[i + 1]) + bulge,
                                     0.5 * (canal[i] + canal[i + 1]), mean_depth, shift=-0.5 * bulge * 0.6,
                                     degen=degeneration, index=i))
            heights.append(disc[i])
            bends.append(disc_bend[i])
    # sacral segments below S1 (fused, unlabelled), bending posteriorly
    sacral_height = height[-1] * np.array([0.78, 0.62, 0.5])
    sacral_depth = depth[-1] * np.array([0.78, 0.62, 0.5])
    sacral_width = width[-1] * np.array([0.8, 0.6, 0.45])
    for j in range(3):
        segments.append(_Segment("sdisc", 0, sacral_depth[j] + 1, sacral_width[j], canal[-1] * (0.8 - 0.15 * j),
                                 sacral_depth[j], index=n_bodies - 1))
        heights.append(2.0)
        bends.append(np.deg2rad(6.0))
        segments.append(_Segment("sacral", 0, sacral_depth[j], sacral_width[j], canal[-1] * (0.75 - 0.15 * j),
                                 sacral_depth[j], index=n_bodies - 1))
        heights.append(sacral_height[j])
        bends.append(np.deg2rad(10.0))
    return segments, heights, bends


def _chain(params: PatientParams) -> tuple[_Chain, float]:
    """Lay the segments out from S1 (tilted by the sacral slope) and rotate the spine so that C2 sits
    above S1 with the patient's forward lean. Returns the chain and the balanced sacral slope (deg)."""
    segments, heights, bends = _segments(params)
    n = len(segments)
    direction = np.empty(n + 1)  # of plane k: angle from straight down, + = anterior
    direction[S1_SEGMENT] = -np.deg2rad(params.curvature.sacral_slope_deg)
    for k in range(S1_SEGMENT - 1, -1, -1):
        direction[k] = direction[k + 1] - bends[k]
    for k in range(S1_SEGMENT + 1, n + 1):
        direction[k] = direction[k - 1] + bends[k - 1]
    points = np.zeros((n + 1, 2))
    arc = np.zeros(n + 1)
    for k, height in enumerate(heights):
        mid = 0.5 * (direction[k] + direction[k + 1])
        points[k + 1] = points[k] + height * np.array([np.sin(mid), -np.cos(mid)])
        arc[k + 1] = arc[k] + height
    # standing balance: C2 sits roughly above S1 (small forward lean with age)
    c2 = 0.5 * (points[1] + points[2])
    s1 = 0.5 * (points[S1_SEGMENT] + points[S1_SEGMENT + 1])
    lean = np.arctan2(c2[0] - s1[0], c2[1] - s1[1])
    beta = np.deg2rad(params.lean_deg) - lean  # rotate so the C2-S1 line leans forward by the target
    direction = direction - beta
    rotation = np.array([[np.cos(beta), np.sin(beta)], [-np.sin(beta), np.cos(beta)]])
    points = (points - s1) @ rotation.T
    normals = np.stack([np.sin(direction), -np.cos(direction)], axis=1)  # downward axis of each plane
    plane_anterior = np.stack([-normals[:, 1], normals[:, 0]], axis=1)
    chain = _Chain(
        segments=tuple(segments), points=points, normals=normals, arc=arc, plane_anterior=plane_anterior,
        centres=0.5 * (points[:-1] + points[1:]), anterior=0.5 * (plane_anterior[:-1] + plane_anterior[1:]),
    )
    return chain, float(np.rad2deg(-direction[S1_SEGMENT]))


def _balanced_chain(params: PatientParams) -> tuple[PatientParams, _Chain]:
    """The chain, with the lumbar lordosis adjusted (up to three times) to keep the balanced sacral slope
    in 30-50 deg; returns the parameters with the final lordosis and balanced slope."""

    def with_curvature(**change: float) -> PatientParams:
        return replace(params, curvature=replace(params.curvature, **change))

    chain, slope = _chain(params)
    params = with_curvature(sacral_slope_deg=slope)
    for _ in range(3):
        slope = params.curvature.sacral_slope_deg
        if 30.0 <= slope <= 50.0:
            break
        lordosis = params.curvature.lumbar_lordosis_deg + 1.3 * (float(np.clip(slope, 31.0, 49.0)) - slope)
        params = with_curvature(lumbar_lordosis_deg=lordosis)
        chain, slope = _chain(params)
        params = with_curvature(sacral_slope_deg=slope)
    return params, chain


# ----------------------------------------------------------------------------------------------
# rendering helpers


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (float32): white noise filtered along each axis."""
    from scipy import ndimage

    noise = rng.standard_normal(shape, dtype=np.float32)
    for axis, axis_sigma in enumerate(sigma):
        if axis_sigma > 0 and shape[axis] > 1:
            noise = ndimage.gaussian_filter1d(noise, axis_sigma, axis=axis, truncate=2.0, mode="nearest")
    noise -= noise.mean()
    noise /= noise.std() + 1e-6
    return noise


_POOL: list[np.ndarray] = []
_POOL_SIZE = 1 << 23


def _white_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of ``shape`` (read-only view): a window of a fixed pool at an offset
    drawn from ``rng``, so only the offset costs per patient (the pool is the same in every process)."""
    if not _POOL:
        _POOL.append(np.random.default_rng(20240917).standard_normal(_POOL_SIZE, dtype=np.float32))
    n = int(np.prod(shape))
    if n > _POOL_SIZE // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    offset = int(rng.integers(0, _POOL_SIZE - n))
    return _POOL[0][offset : offset + n].reshape(shape)


def _slab_texture(rng: np.random.Generator, nx: int, ny: int, nz: int, step: int = 3) -> np.ndarray:
    """Smooth marrow / tissue texture ``[nx, ny, nz]`` (float32 view): one 2-D field, each sagittal slice
    a window shifted by ``step`` mm in AP, so neighbouring slices are correlated but not equal."""
    from numpy.lib.stride_tricks import as_strided

    field2d = _smooth_field(rng, (ny + step * nx, nz), (1.3, 1.3))
    stride_ap, stride_si = field2d.strides
    return as_strided(field2d, shape=(nx, ny, nz), strides=(step * stride_ap, stride_ap, stride_si), writeable=False)


def _ramp(sd: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Soft inside-fraction of a signed distance (negative inside): partial volume over ``width`` mm."""
    return np.clip(0.5 - sd * (1.0 / width), 0.0, 1.0)


def _box_sd(sd_a: np.ndarray, sd_b: np.ndarray, radius: float) -> np.ndarray:
    """Rounded intersection of two half-spaces' signed distances."""
    qa = sd_a + radius
    qb = sd_b + radius
    return np.sqrt(np.maximum(qa, 0) ** 2 + np.maximum(qb, 0) ** 2) + np.minimum(np.maximum(qa, qb), 0) - radius


_Coordinate = np.ndarray | float


def _capsule_sd(py: np.ndarray, pz: np.ndarray, ay: _Coordinate, az: _Coordinate, by: _Coordinate, bz: _Coordinate,
                radius: _Coordinate) -> np.ndarray:
    """Distance from points ``(py, pz)`` to the segment A-B minus ``radius`` (a capsule; arrays broadcast)."""
    vy, vz = by - ay, bz - az
    t = np.clip(((py - ay) * vy + (pz - az) * vz) / (vy * vy + vz * vz + 1e-9), 0, 1)
    return np.hypot(py - ay - t * vy, pz - az - t * vz) - radius


def _paint(active: np.ndarray, fn: Callable[[slice, slice], None], chunk: int = 48) -> None:
    """Apply ``fn(ap_slice, si_slice)`` on SI chunks cropped in AP to where ``active`` ([AP, SI]) is set."""
    n_si = active.shape[1]
    for k0 in range(0, n_si, chunk):
        si = slice(k0, min(k0 + chunk, n_si))
        rows = np.flatnonzero(active[:, si].any(axis=1))
        if rows.size:
            fn(slice(rows[0], rows[-1] + 1), si)


# ----------------------------------------------------------------------------------------------
# the voxel frame


@dataclass(frozen=True)
class _Frame:
    """The voxel grid around the spine and every pixel's coordinates relative to its own segment.

    2-D maps are ``[AP, SI]`` (the same on every sagittal slice); lateral maps are ``[LR, 1, SI]``.
    """

    ap_origin: float  # mm of the first AP row
    si_origin: float  # mm of the first SI column
    lr: np.ndarray  # [LR] mm of each sagittal slice
    lr_drift: np.ndarray  # [SI] mm: LR offset of the spine's mid-sagittal plane
    lateral: np.ndarray  # [LR, 1, SI] signed distance from the spine's plane
    lateral_abs: np.ndarray
    lateral_sq: np.ndarray
    ap: np.ndarray  # [AP, SI] mm
    si: np.ndarray  # [AP, SI] mm
    segment: np.ndarray  # [AP, SI] index of the segment a pixel lies in
    above_top: np.ndarray  # [AP, SI] above the dens (no segment)
    below_top: np.ndarray  # distance below the segment's top plane
    below_bottom: np.ndarray  # distance below the segment's bottom plane (negative inside)
    anterior: np.ndarray  # distance anterior of the segment centre
    fraction: np.ndarray  # 0 at the segment's top plane .. 1 at its bottom
    arc: np.ndarray  # distance along the spine from the dens top
    region: np.ndarray  # arc as a fraction of the spine's length (0 top .. 1 sacrum)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.lr), self.ap.shape[0], self.ap.shape[1]

    def gather(self, per_segment: Sequence[float] | np.ndarray) -> np.ndarray:
        """A per-segment value at every pixel (float32 ``[AP, SI]``)."""
        return np.asarray(per_segment, np.float32)[self.segment]

    def segment_field(self, chain: _Chain, name: str) -> np.ndarray:
        """A :class:`_Segment` attribute at every pixel."""
        return self.gather([getattr(s, name) for s in chain.segments])


def _frame(params: PatientParams, chain: _Chain, lr_mm: float = LR_MM) -> _Frame:
    """Field of view tight around the spine (1 mm in-plane; ``N_LR × LR_MM`` mm across in slices ``lr_mm`` apart)
    and segment coordinates."""
    depth = np.array([s.depth for s in chain.segments])
    centres, anterior = chain.centres, chain.anterior
    ap_front = np.max(centres[:, 0] + anterior[:, 0] * (depth / 2 + 15))
    ap_back = np.min(centres[:, 0] - anterior[:, 0] * (depth / 2 + 48))
    si_top = chain.points[0, 1] - chain.normals[0, 1] * 22.0
    si_bottom = chain.points[S1_SEGMENT + 3, 1] - 14.0
    ny = int(np.ceil(ap_front - ap_back))
    nz = int(np.ceil(si_top - si_bottom))
    nx = lateral_slices(lr_mm)
    y0, z0 = float(np.floor(ap_back)), float(np.floor(si_bottom))
    ap = (y0 + np.arange(ny, dtype=np.float32))[:, None] * np.ones((1, nz), np.float32)
    si = (z0 + np.arange(nz, dtype=np.float32))[None, :] * np.ones((ny, 1), np.float32)
    lr = ((np.arange(nx) - (nx - 1) / 2) * lr_mm).astype(np.float32)
    drift = params.lateral
    si_rel = np.arange(nz, dtype=np.float32) / nz
    lr_drift = drift.offset + drift.amplitude * np.sin(np.float32(2 * np.pi) * (si_rel * drift.cycles + drift.phase))
    lr_drift = lr_drift.astype(np.float32)
    lateral = lr[:, None, None] - lr_drift[None, None, :]
    lateral_abs = np.abs(lateral)
    return _Frame(ap_origin=y0, si_origin=z0, lr=lr, lr_drift=lr_drift, lateral=lateral, lateral_abs=lateral_abs,
                  lateral_sq=lateral_abs * lateral_abs, ap=ap, si=si, **_segment_coordinates(chain, ap, si))


def _segment_coordinates(chain: _Chain, ap: np.ndarray, si: np.ndarray) -> dict[str, np.ndarray]:
    """Each pixel's segment (the number of planes it lies below) and its coordinates in that segment."""
    points, normals = chain.points, chain.normals
    n_segments = len(chain.segments)
    below = np.zeros(ap.shape, np.int16)
    for k in range(n_segments + 1):
        below += ((ap - points[k, 0]) * normals[k, 0] + (si - points[k, 1]) * normals[k, 1] >= 0)
    segment = np.clip(below.astype(np.int32) - 1, 0, n_segments - 1)

    def gather(per_segment: np.ndarray) -> np.ndarray:
        return np.asarray(per_segment, np.float32)[segment]

    top_ap, top_si = gather(points[:-1, 0]), gather(points[:-1, 1])
    bottom_ap, bottom_si = gather(points[1:, 0]), gather(points[1:, 1])
    below_top = (ap - top_ap) * gather(normals[:-1, 0]) + (si - top_si) * gather(normals[:-1, 1])
    below_bottom = (ap - bottom_ap) * gather(normals[1:, 0]) + (si - bottom_si) * gather(normals[1:, 1])
    centre_ap, centre_si = gather(chain.centres[:, 0]), gather(chain.centres[:, 1])
    anterior = (ap - centre_ap) * gather(chain.anterior[:, 0]) + (si - centre_si) * gather(chain.anterior[:, 1])
    fraction = np.clip(below_top / np.maximum(below_top - below_bottom, 1e-3), -0.5, 1.5)
    arc = gather(chain.arc[:-1]) + below_top
    return dict(segment=segment, above_top=below == 0, below_top=below_top, below_bottom=below_bottom,
                anterior=anterior, fraction=fraction, arc=arc, region=arc / max(chain.arc[-1], 1))


# ----------------------------------------------------------------------------------------------
# rendering stages, in the order render_patient calls them


def _background(frame: _Frame, chain: _Chain, tissue: Mapping[str, float],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Muscle, fat, air and organs from the AP position relative to the spine, with texture.

    Returns the float32 image ``[LR, AP, SI]`` and the texture the later stages reuse.
    """
    from scipy import ndimage

    nx, ny, nz = frame.shape
    depth = frame.segment_field(chain, "depth")
    canal = frame.segment_field(chain, "canal")
    wall = -frame.segment_field(chain, "wall") / 2 - 1.2  # posterior longitudinal ligament
    # smoothed frame for soft tissue (segment frames jump slightly at the planes)
    behind_wall = -ndimage.gaussian_filter(frame.anterior - wall, 3.0)
    in_front = ndimage.gaussian_filter(frame.anterior - depth / 2, 3.0)  # mm in front of the bodies
    canal_smooth = ndimage.gaussian_filter(canal, 3.0)
    region = frame.region
    muscle_end = (canal_smooth + 6 + np.float32(38 + 20 * rng.random())
                  + 22 * np.clip((region - 0.5) * 2, 0, 1))
    tissue_map = np.full((ny, nz), tissue["muscle"], np.float32)
    fat_layer = (behind_wall > muscle_end) & (behind_wall < muscle_end + 8 + 20 * rng.random())
    tissue_map = np.where(fat_layer, tissue["fat"], tissue_map)
    tissue_map = np.where(behind_wall >= muscle_end + 28, tissue["air"], tissue_map)
    cervical = np.clip((0.3 - region) / 0.04, 0, 1)
    tissue_map = np.where(in_front > 0, tissue["fat"] * 0.5 + tissue["muscle"] * 0.5, tissue_map)
    tissue_map = np.where((in_front > 0) & (in_front < 3.0 + 3 * cervical), tissue["muscle"] * 1.1, tissue_map)
    airway = (in_front > 9) & (in_front < 22) & (cervical > 0.5)
    tissue_map = np.where(airway, tissue["air"], tissue_map)
    tissue_map = ndimage.gaussian_filter(tissue_map, 1.0)
    texture = _slab_texture(rng, nx, ny, nz)
    texture_soft = _smooth_field(rng, (ny, nz), (3.0, 5.0))
    image = tissue_map[None] * (1 + 0.12 * texture_soft[None] + 0.07 * texture)
    return image, texture


def _paint_anterior_ligament(image: np.ndarray, frame: _Frame, chain: _Chain, tissue: Mapping[str, float]) -> None:
    """Anterior longitudinal ligament: a dark line on the front of bodies and discs."""
    depth = frame.segment_field(chain, "depth")
    width = frame.segment_field(chain, "width")
    sd = np.abs(frame.anterior - depth / 2 - 0.2) - 0.5
    sd = np.where(frame.arc > 10, sd, 1e3).astype(np.float32)

    def paint(ap: slice, si: slice) -> None:
        inside = _ramp(sd[ap, si], 0.8)[None] * _ramp(frame.lateral_abs[..., si] - (width[ap, si] * 0.35)[None], 2.0)
        image[:, ap, si] += (tissue["ligament"] - image[:, ap, si]) * inside

    _paint(sd < 1, paint)


def _paint_great_vessels(image: np.ndarray, frame: _Frame, chain: _Chain, params: PatientParams,
                         rng: np.random.Generator) -> None:
    """Flow voids in front of the thoracic/lumbar spine: aorta left, inferior vena cava right."""
    depth = frame.segment_field(chain, "depth")
    vessel = params.tissue["vessel"]
    thoracolumbar = (frame.region > 0.3) & (frame.arc < chain.arc[S1_SEGMENT] - 25)
    for side, radius, gap in ((-1, 11.0 * params.size, 2.0), (1, 10.0 * params.size, 3.5)):
        centre_lr = np.float32(side * (7.0 + 7 * rng.random()))
        from_centre = frame.anterior - (depth / 2 + gap + radius)

        def paint(ap: slice, si: slice, from_centre: np.ndarray = from_centre, centre_lr: np.float32 = centre_lr,
                  radius: float = radius) -> None:
            sd = np.sqrt(from_centre[ap, si][None] ** 2 + (frame.lateral[..., si] - centre_lr) ** 2) - radius
            image[:, ap, si] += (vessel - image[:, ap, si]) * _ramp(sd, 1.5)

        _paint(thoracolumbar & (np.abs(from_centre) < radius + 2), paint)


def _paint_canal(image: np.ndarray, texture: np.ndarray, frame: _Frame, chain: _Chain, params: PatientParams,
                 rng: np.random.Generator) -> None:
    """Epidural fat, the thecal sac with CSF, the cord down to the conus, then the cauda equina."""
    tissue = params.tissue
    canal = frame.segment_field(chain, "canal")
    wall = -frame.segment_field(chain, "wall") / 2 - 1.2  # posterior longitudinal ligament
    anterior, arc = frame.anterior, frame.arc
    canal_centre = wall - canal / 2
    canal_half_width = np.float32(0.65) * canal + 2.0
    fat_sd = np.where(arc > 8, np.abs(anterior - canal_centre) - canal / 2, 1e3).astype(np.float32)
    fat_sd = np.maximum(fat_sd, anterior - canal_centre - 0.2 * canal)  # epidural fat mostly dorsal
    sac_depth = canal * np.where(frame.region > 0.75, 0.8, 0.9).astype(np.float32)
    sac_centre = wall - sac_depth / 2 - 0.3
    sac_end = chain.arc[S1_SEGMENT + 2] + 4
    sac_sd = np.maximum(np.abs(anterior - sac_centre) - sac_depth / 2, arc - sac_end).astype(np.float32)
    conus = chain.arc[_body_segment(18)] + params.body_height[18] * (0.3 + 0.9 * rng.random())  # near L1
    cord_profile = np.interp(arc, [0, chain.arc[_body_segment(6)], chain.arc[_body_segment(14)], conus - 25, conus],
                             [1.0, 1.0, 0.78, 0.85, 0.0])
    cord_depth = (8.5 * params.size * cord_profile).astype(np.float32)
    cord_width = (6.5 * params.size * cord_profile).astype(np.float32) + np.float32(0.01)
    cord_centre = sac_centre + 0.06 * sac_depth
    cord_ellipse = ((anterior - cord_centre) / np.maximum(cord_depth / 2, 0.01)) ** 2
    inv_cord_width_sq = 1.0 / cord_width**2
    lateral_abs, lateral_sq = frame.lateral_abs, frame.lateral_sq

    def paint(ap: slice, si: slice) -> None:
        sub = image[:, ap, si]
        fat = _ramp(fat_sd[ap, si], 1.0)[None] * _ramp(lateral_abs[..., si] - canal_half_width[ap, si][None], 1.5)
        sub += (tissue["fat"] * (1 + 0.1 * texture[:, ap, si]) - sub) * fat
        sac = np.maximum(sac_sd[ap, si][None], lateral_abs[..., si] - (canal_half_width[ap, si] * 0.85)[None])
        sub += (tissue["ligament"] - sub) * _ramp(sac, 0.8)
        sub += (tissue["csf"] - sub) * _ramp(sac + 0.6, 0.8)
        cord = np.clip((1 - cord_ellipse[ap, si][None] - lateral_sq[..., si] * inv_cord_width_sq[ap, si][None]) * 3
                       + 0.5, 0, 1)
        sub += (tissue["cord"] - sub) * (cord * (cord_depth[ap, si] > 0.3)[None])

    _paint(fat_sd < 1.5, paint)
    # cauda equina: thin strands in the posterior sac below the conus, one sagittal slice each
    below_conus = (arc > conus - 5) & (arc < sac_end - 10)
    n_lr = frame.shape[0]
    for _ in range(7):
        slice_index = int(rng.integers(n_lr // 2 - 4, n_lr // 2 + 4))
        offset = rng.uniform(0.05, 0.45)
        sd = np.abs(anterior - (sac_centre - sac_depth / 2 + offset * sac_depth + 0.02 * (arc - conus))) - 0.45
        image[slice_index] += (tissue["cord"] * 0.8 - image[slice_index]) * (_ramp(sd, 0.8) * below_conus * 0.7)


def _arch_sds(frame: _Frame, chain: _Chain, params: PatientParams, vertebra: np.ndarray) -> tuple[np.ndarray, ...]:
    """Signed distances of the posterior arch of ``vertebra`` (a body index per pixel) in its own frame.

    Returns ``(midline_sd, midline_half_width, lateral_sd, lateral_inner, lateral_outer)``: laminae and
    spinous process (midline, out to a half-width) and pedicles and facets (between two LR bounds).
    """
    segment = _body_segment(vertebra)
    top_ap, top_si = chain.points[segment, 0].astype(np.float32), chain.points[segment, 1].astype(np.float32)
    down_ap, down_si = chain.normals[segment, 0].astype(np.float32), chain.normals[segment, 1].astype(np.float32)
    below = (frame.ap - top_ap) * down_ap + (frame.si - top_si) * down_si  # below the body's top plane (+ down)
    in_front = (frame.ap - top_ap) * (-down_si) + (frame.si - top_si) * down_ap  # anterior of the plane's centre
    depth = np.asarray(params.body_depth, np.float32)[vertebra]
    height = np.asarray(params.body_height, np.float32)[vertebra]
    canal = np.asarray(params.canal_depth, np.float32)[vertebra]
    disc = np.asarray(params.disc_height, np.float32)[vertebra]
    behind = -(in_front + depth / 2) - 1.2  # behind the posterior wall
    thoracic = ((vertebra >= 6) & (vertebra <= 17)).astype(np.float32)
    cervical = (vertebra <= 5).astype(np.float32)
    pedicle = _box_sd(np.abs(below - 0.3 * height) - 0.22 * height, np.abs(behind - canal / 2) - canal / 2 - 1, 1.0)
    facet = _box_sd(np.abs(below - 0.5 * (height + disc) + 0.1 * height) - 0.55 * height,
                    np.abs(behind - canal - 1) - 5.5, 2.0)
    lamina = _capsule_sd(behind, below, canal + 3, 0.1 * height, canal + 6, height + 0.7 * disc, 2.8)
    angle = np.deg2rad(15 + 45 * thoracic - 5 * cervical)
    length = (25 + 12 * thoracic + 6 * (1 - cervical - thoracic)) * np.float32(params.size)
    thickness = 3.5 + 4.0 * (1 - cervical - thoracic)
    spinous = _capsule_sd(behind, below, canal + 5, 0.45 * height, canal + 5 + length * np.cos(angle),
                          0.45 * height + length * np.sin(angle), thickness)
    canal_half_width = 0.65 * canal + 2.0
    midline_half_width = np.where(lamina < spinous, canal_half_width + 7, 3.0 + 1.5 * cervical)
    return (np.minimum(lamina, spinous), midline_half_width, np.minimum(pedicle, facet), canal_half_width - 1,
            canal_half_width + 6 + 2 * (1 - cervical))


def _paint_posterior_elements(image: np.ndarray, texture: np.ndarray, frame: _Frame, chain: _Chain,
                              params: PatientParams) -> None:
    """Pedicles, facets, laminae and spinous processes of the vertebra a pixel belongs to and its two
    neighbours (the nearest arch wins), painted as bone with a cortical rim."""
    tissue = params.tissue
    _, ny, nz = frame.shape
    owner = np.array([s.index for s in chain.segments])[frame.segment]
    midline_sd = np.full((ny, nz), 1e3, np.float32)
    midline_width = np.zeros((ny, nz), np.float32)
    lateral_sd = np.full((ny, nz), 1e3, np.float32)
    lateral_inner = np.zeros((ny, nz), np.float32)
    lateral_outer = np.zeros((ny, nz), np.float32)
    for neighbour in (-1, 0, 1):
        vertebra = np.clip(owner + neighbour, 0, len(BODY_NAMES) - 2)  # S1 has no free arch
        mid_sd, mid_width, lat_sd, lat_inner, lat_outer = _arch_sds(frame, chain, params, vertebra)
        nearer = mid_sd < midline_sd
        midline_sd = np.where(nearer, mid_sd, midline_sd)
        midline_width = np.where(nearer, mid_width, midline_width)
        nearer = lat_sd < lateral_sd
        lateral_sd = np.where(nearer, lat_sd, lateral_sd)
        lateral_inner = np.where(nearer, lat_inner, lateral_inner)
        lateral_outer = np.where(nearer, lat_outer, lateral_outer)
    midline_sd = np.where(frame.above_top, 1e3, midline_sd).astype(np.float32)
    lateral_sd = np.where(frame.above_top, 1e3, lateral_sd).astype(np.float32)
    midline_width, lateral_inner, lateral_outer = (
        a.astype(np.float32) for a in (midline_width, lateral_inner, lateral_outer))
    arch_marrow = np.float32(tissue["marrow"] * 0.95)
    lateral_abs = frame.lateral_abs

    def bone(ap: slice, si: slice, sd: np.ndarray) -> None:
        core = _ramp(sd + 1.3, 1.0)
        value = tissue["cortex"] + (arch_marrow * (1 + 0.09 * texture[:, ap, si]) - tissue["cortex"]) * core
        image[:, ap, si] += (value - image[:, ap, si]) * _ramp(sd, 1.0)

    def midline(ap: slice, si: slice) -> None:
        bone(ap, si, np.maximum(midline_sd[ap, si][None], lateral_abs[..., si] - midline_width[ap, si][None]))

    def lateral(ap: slice, si: slice) -> None:
        outside = np.maximum(lateral_abs[..., si] - lateral_outer[ap, si][None],
                             lateral_inner[ap, si][None] - lateral_abs[..., si])
        bone(ap, si, np.maximum(lateral_sd[ap, si][None], outside))

    _paint(midline_sd < 1, midline)
    _paint(lateral_sd < 1, lateral)


@dataclass(frozen=True)
class _BodyDiscShape:
    """Sagittal shape of bodies and discs (they tile the mid-sagittal plane), float32 ``[AP, SI]`` maps."""

    is_bone: np.ndarray
    is_disc: np.ndarray
    from_centre: np.ndarray  # AP distance from the structure's centre (anterior +)
    depth: np.ndarray
    width: np.ndarray
    slab_sd: np.ndarray  # between the planes, rounded: the whole structure
    shape_sd: np.ndarray  # with concave endplates (bodies)
    half_width: np.ndarray  # lateral half-width at each pixel (rounded towards the AP faces)


def _body_disc_shape(frame: _Frame, chain: _Chain, params: PatientParams) -> _BodyDiscShape:
    """Bodies: flat posterior wall, slightly concave anterior wall (waist); discs bulge; the disc
    bulges into the bodies' concave endplates (biconvex discs on sagittal slices)."""
    kind = np.array([s.kind for s in chain.segments])
    is_bone = frame.gather(np.isin(kind, ["dens", "body", "sacral"])) > 0
    is_disc = frame.gather(np.isin(kind, ["disc", "sdisc"])) > 0
    depth = frame.segment_field(chain, "depth")
    width = frame.segment_field(chain, "width")
    from_centre = frame.anterior - frame.segment_field(chain, "shift")
    fraction, below_top, below_bottom = frame.fraction, frame.below_top, frame.below_bottom
    waist = np.where(is_bone, 1.2 * (1 - (2 * fraction - 1) ** 2), 0.0).astype(np.float32)
    half = depth / 2
    ap_sd = np.where(from_centre > 0, from_centre - (half - waist), -from_centre - half)
    planes_sd = np.maximum(-below_top, below_bottom)
    planes_sd = np.where(frame.above_top, 1e3, planes_sd)
    slab_sd = _box_sd(planes_sd, ap_sd, 1.6).astype(np.float32)
    concavity_depth = frame.gather([0.0 if s.kind == "dens" else (0.06 * params.body_height[s.index]
                                                                  * params.endplate_concavity)
                                    for s in chain.segments])
    concavity = np.where(is_bone, concavity_depth * np.clip(1 - (from_centre / (0.42 * depth)) ** 2, 0, 1), 0)
    concavity = concavity.astype(np.float32)
    concavity_top = np.where(kind[frame.segment] == "body", concavity, 0)  # C2 top carries the dens
    shape_sd = np.where(is_bone, _box_sd(np.maximum(concavity_top - below_top, below_bottom + concavity), ap_sd, 1.6),
                        slab_sd)
    rel = np.clip(np.abs(from_centre) / np.maximum(half, 1), 0, 1)
    half_width = (width / 2) * np.cbrt(np.clip(1 - rel**3, 0, 1))
    return _BodyDiscShape(is_bone=is_bone, is_disc=is_disc, from_centre=from_centre, depth=depth, width=width,
                          slab_sd=slab_sd, shape_sd=shape_sd, half_width=half_width)


@dataclass(frozen=True)
class _BodyDiscSignal:
    """Signal of bodies and discs, float32 ``[AP, SI]`` maps: a core (marrow or nucleus) inside a shell
    (cortex or annulus), and the disc material that fills a body's endplate concavities."""

    core: np.ndarray
    shell: np.ndarray
    fill: np.ndarray
    rim: np.ndarray  # cortical rim thickness (mm)
    nucleus_inplane: np.ndarray  # nucleus ellipse: inside where 1 - inplane - lateral^2 * inv_lateral_sq > 0
    nucleus_inv_lateral_sq: np.ndarray
    texture_amplitude: np.ndarray


def _body_disc_signal(frame: _Frame, chain: _Chain, tissue: Mapping[str, float],
                      shape: _BodyDiscShape) -> _BodyDiscSignal:
    """Marrow with the basivertebral vein, nuclei darkening and shrinking with degeneration (with the
    intranuclear cleft), cortex and annulus."""
    is_bone, is_disc, depth, from_centre = shape.is_bone, shape.is_disc, shape.depth, shape.from_centre
    fraction = frame.fraction
    degeneration = frame.segment_field(chain, "degen")
    core = np.where(is_bone, tissue["marrow"], tissue["nucleus"] + (tissue["degen"] - tissue["nucleus"]) * degeneration)
    cleft = np.exp(-((fraction - 0.5) ** 2) / 0.003) * (0.35 + 0.4 * degeneration)
    core = np.where(is_disc, core * (1 - cleft), core)
    # basivertebral vein: bright short line at mid-height of the posterior body
    half = depth / 2
    vein = is_bone & (from_centre < -half + 6) & (np.abs(fraction - 0.5) < 0.03)
    core = np.where(vein, 0.5 * (tissue["vein"] + tissue["marrow"]), core)
    # disc material filling the endplate concavities of a body (from the disc above / below)
    nucleus = np.array([tissue["nucleus"] + (tissue["degen"] - tissue["nucleus"]) * s.degen for s in chain.segments],
                       np.float32)
    neighbour = np.clip(np.where(fraction < 0.5, frame.segment - 1, frame.segment + 1), 0, len(chain.segments) - 1)
    fill = np.where(np.abs(from_centre) < 0.3 * depth, nucleus[neighbour], tissue["annulus"]).astype(np.float32)
    shell = np.where(is_bone, tissue["cortex"], tissue["annulus"]).astype(np.float32)
    rim = np.where(is_bone, 0.8, 0.0).astype(np.float32)
    nucleus_scale = 1 - 0.35 * degeneration
    inplane = np.where(is_bone, -10.0, ((fraction - 0.5) / (0.34 * nucleus_scale)) ** 2
                       + ((from_centre + 0.08 * depth) / (0.3 * depth * nucleus_scale)) ** 2)
    inv_lateral_sq = np.where(is_bone, 0.0, 1.0 / (0.3 * shape.width * nucleus_scale) ** 2)
    amplitude = np.where(is_bone, 0.07, 0.04).astype(np.float32)
    sacral_disc = frame.gather(np.array([s.kind for s in chain.segments]) == "sdisc") > 0
    core = np.where(sacral_disc, tissue["annulus"], core.astype(np.float32))
    return _BodyDiscSignal(core=core, shell=shell, fill=fill, rim=rim, nucleus_inplane=inplane.astype(np.float32),
                           nucleus_inv_lateral_sq=inv_lateral_sq.astype(np.float32), texture_amplitude=amplitude)


def _paint_bodies_and_discs(image: np.ndarray, texture: np.ndarray, frame: _Frame, chain: _Chain,
                            params: PatientParams) -> np.ndarray:
    """Paint bodies and discs (one layer: they tile the sagittal plane); returns the body labels
    (uint8 ``[LR, AP, SI]``, VerSe codes)."""
    shape = _body_disc_shape(frame, chain, params)
    signal = _body_disc_signal(frame, chain, params.tissue, shape)
    labels = np.zeros(frame.shape, np.uint8)
    codes = frame.segment_field(chain, "code").astype(np.uint8)
    labels_2d = np.where(shape.is_bone & (shape.shape_sd < 0.5), codes, 0).astype(np.uint8)
    shape_sd = shape.shape_sd.astype(np.float32)
    half_width = shape.half_width.astype(np.float32)
    slab_sd = shape.slab_sd
    lateral_abs, lateral_sq = frame.lateral_abs, frame.lateral_sq

    def paint(ap: slice, si: slice) -> None:
        outside_lateral = lateral_abs[..., si] - half_width[ap, si][None]
        sd = np.maximum(shape_sd[ap, si][None], outside_lateral)
        nucleus = np.clip((1 - signal.nucleus_inplane[ap, si][None]
                           - lateral_sq[..., si] * signal.nucleus_inv_lateral_sq[ap, si][None]) * 3, 0, 1)
        core = _ramp(sd + signal.rim[ap, si][None], 1.0) * nucleus
        shell = signal.shell[ap, si][None]
        core_value = signal.core[ap, si][None] * (1 + signal.texture_amplitude[ap, si][None] * texture[:, ap, si])
        value = shell + (core_value - shell) * core
        fill = signal.fill[ap, si][None]
        value = fill + (value - fill) * _ramp(sd, 1.0)
        image[:, ap, si] += (value - image[:, ap, si]) * _ramp(np.maximum(slab_sd[ap, si][None], outside_lateral), 1.0)
        labels[:, ap, si] = np.where(sd < 0, labels_2d[ap, si][None], 0)

    _paint(slab_sd < 1, paint)
    return labels


# ----------------------------------------------------------------------------------------------
# findings


@dataclass(frozen=True)
class _FindingSite:
    """Where a finding is painted: the image, the frame, and the finding's body (centre and axes)."""

    image: np.ndarray
    frame: _Frame
    chain: _Chain
    params: PatientParams
    segment: int  # the body's segment
    centre: np.ndarray  # (AP, SI) mm
    down: np.ndarray  # the body's downward axis
    anterior: np.ndarray  # the body's anterior axis

    def ellipsoid(self, centre: np.ndarray, centre_lr: float, radii: tuple[float, float, float], value: float,
                  soft: float = 1.0, shell: tuple[float, float] | None = None) -> None:
        """Paint an ellipsoid with semi-axes ``radii`` along the body's (anterior, down, LR) axes, centred
        at ``centre`` (AP, SI) and ``centre_lr`` mm from the spine's plane; ``shell``: (thickness, value)."""
        frame, image = self.frame, self.image
        y0, z0 = frame.ap_origin, frame.si_origin
        reach = max(radii) + 3
        j0 = max(int(centre[0] - y0 - reach), 0)
        j1 = min(int(centre[0] - y0 + reach) + 1, image.shape[1])
        k0 = max(int(centre[1] - z0 - reach), 0)
        k1 = min(int(centre[1] - z0 + reach) + 1, image.shape[2])
        if j0 >= j1 or k0 >= k1:
            return
        ap = (y0 + np.arange(j0, j1, dtype=np.float32))[None, :, None] - centre[0]
        si = (z0 + np.arange(k0, k1, dtype=np.float32))[None, None, :] - centre[1]
        drift = frame.lr_drift[int(np.clip(centre[1] - z0, 0, len(frame.lr_drift) - 1))]
        lr = frame.lr[:, None, None] - centre_lr - drift
        along_anterior = ap * self.anterior[0] + si * self.anterior[1]  # rotate into the vertebra frame
        along_down = ap * self.down[0] + si * self.down[1]
        q = np.sqrt((along_anterior / radii[0]) ** 2 + (along_down / radii[1]) ** 2 + (lr / radii[2]) ** 2)
        sd = (q - 1) * min(radii)
        sub = image[:, j0:j1, k0:k1]
        if shell is not None:
            sub += (shell[1] - sub) * _ramp(sd - shell[0], soft)
        sub += (value - sub) * _ramp(sd, soft)


def _endplate(finding: Finding) -> tuple[int, str]:
    """The endplate a finding sits at: ``(+1, "inferior")`` or ``(-1, "superior")``."""
    return (1, "inferior") if finding.position[1] > 0 else (-1, "superior")


def _hemangioma(site: _FindingSite, finding: Finding) -> str:
    height, depth = site.params.body_height[finding.index], site.params.body_depth[finding.index]
    pos = finding.position
    r = 3.0 + 4.0 * finding.size
    centre = (site.centre + site.anterior * pos[0] * (depth / 2 - r - 1) * 0.8
              + site.down * pos[1] * (height / 2 - r - 1) * 0.7)
    site.ellipsoid(centre, pos[2] * 5, (r, r * 0.9, r * 1.3), site.params.tissue["hemangioma"], soft=1.5)
    return f"hemangioma@{finding.level}:r={r:.1f}mm"


def _schmorl_node(site: _FindingSite, finding: Finding) -> str:
    height, depth = site.params.body_height[finding.index], site.params.body_depth[finding.index]
    tissue, pos = site.params.tissue, finding.position
    sign, endplate = _endplate(finding)
    r = 2.0 + 2.5 * finding.size
    centre = site.centre + site.down * sign * (height / 2 - r * 0.4) + site.anterior * pos[0] * depth * 0.2
    site.ellipsoid(centre, pos[2] * 5, (r, r, r * 1.2), tissue["annulus"] * 1.4, soft=1.0,
                   shell=(1.2, tissue["cortex"]))
    return f"schmorl_node@{finding.level}:{endplate}:r={r:.1f}mm"


def _modic(site: _FindingSite, finding: Finding) -> str:
    params, i = site.params, finding.index
    sign, endplate = _endplate(finding)
    band = 3.0 + 3.0 * finding.size
    centre = site.centre + site.down * sign * (params.body_height[i] / 2 - band / 2 - 1.0)
    radii = (params.body_depth[i] * 0.42, band / 2, params.body_width[i] * 0.35)
    site.ellipsoid(centre, 0.0, radii, params.tissue["modic"], soft=2.0)
    return f"modic@{finding.level}:{endplate}:band={band:.1f}mm"


def _wedge_fracture(site: _FindingSite, finding: Finding) -> str:
    """The height loss itself is in the geometry (:func:`_draw_patient`, :func:`_segments`); this is the oedema."""
    params, i = site.params, finding.index
    height, depth = params.body_height[i], params.body_depth[i]
    centre = site.centre + site.down * (-height * 0.3) + site.anterior * depth * 0.1
    site.ellipsoid(centre, 0.0, (depth * 0.4, 2.0, params.body_width[i] * 0.35), params.tissue["modic"] * 0.9, soft=2.0)
    return f"wedge_fracture@{finding.level}:height=0.85"


def _fusion_implant(site: _FindingSite, finding: Finding) -> str:
    """Interbody cage and pedicle screws in two adjacent bodies: signal voids with blooming."""
    params, chain, i = site.params, site.chain, finding.index
    tissue, depth = params.tissue, params.body_depth[i]
    upper, lower = site.segment, _body_segment(i + 1)
    cage_centre = 0.5 * (chain.points[upper + 1] + chain.points[lower])
    site.ellipsoid(cage_centre, 0.0, (depth * 0.3, params.disc_height[i] * 0.45 + 1, 8.0), tissue["void"], soft=2.5,
                   shell=(2.0, tissue["fat"] * 1.1))
    for segment in (upper, lower):
        for side in (-1, 1):
            screw_centre = chain.centres[segment] - chain.anterior[segment] * (depth * 0.05)
            site.ellipsoid(screw_centre, side * 7.0, (depth * 0.45, 3.0, 2.5), tissue["void"], soft=2.5,
                           shell=(1.5, tissue["fat"]))
    return f"fusion_implant@{finding.level}/{BODY_NAMES[i + 1]}"


#: Painter of each finding kind: paints into the site's image and returns the finding's description.
_FINDING_PAINTERS: dict[str, Callable[[_FindingSite, Finding], str]] = {
    "hemangioma": _hemangioma,
    "schmorl_node": _schmorl_node,
    "wedge_fracture": _wedge_fracture,
    "fusion_implant": _fusion_implant,
    "modic": _modic,
}


def _paint_finding(image: np.ndarray, finding: Finding, frame: _Frame, chain: _Chain, params: PatientParams) -> str:
    """Paint one finding into ``image`` (in place) and describe it in one string."""
    segment = _body_segment(finding.index)
    site = _FindingSite(image=image, frame=frame, chain=chain, params=params, segment=segment,
                        centre=chain.centres[segment], down=chain.normals[segment], anterior=chain.anterior[segment])
    return _FINDING_PAINTERS[finding.kind](site, finding)


# ----------------------------------------------------------------------------------------------
# acquisition


def _acquire(image: np.ndarray, frame: _Frame, tissue: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    """The scanner's view of the painted tissue: partial volume (in-plane blur), a smooth bias field,
    Rician noise and a per-scan gain; returns uint8 in 1..255."""
    from scipy import ndimage

    image = ndimage.gaussian_filter1d(image, 0.75, axis=1, truncate=2.0)
    image = ndimage.gaussian_filter1d(image, 0.75, axis=2, truncate=2.0)
    image *= _bias_field(frame, rng)
    sigma = np.float32(rng.uniform(0.012, 0.03))
    real_noise, imaginary_noise = _white_noise(rng, image.shape), _white_noise(rng, image.shape)
    image += sigma * real_noise
    imaginary_noise = imaginary_noise * sigma
    image = np.sqrt(image * image + imaginary_noise * imaginary_noise)  # magnitude of a complex signal: Rician
    gain = np.float32(255 * rng.uniform(0.72, 0.95) / max(tissue["csf"], tissue["fat"], 0.8))
    image *= gain
    return np.clip(image, 1, 255).astype(np.uint8)


def _bias_field(frame: _Frame, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative coil sensitivity ``[LR, AP, SI]``: low-order in-plane terms times a LR falloff."""
    _, ny, nz = frame.shape
    ap = (np.arange(ny, dtype=np.float32) / ny - 0.5)[:, None]
    si = (np.arange(nz, dtype=np.float32) / nz - 0.5)[None, :]
    c = rng.normal(0, 1, 5).astype(np.float32)
    in_plane = np.exp(0.25 * c[0] * ap + 0.3 * c[1] * si + 0.25 * c[2] * si**2 + 0.25 * c[3] * ap * si
                      + 0.5 * np.sin(np.float32(np.pi) * si * (2 + c[4])) * 0.3).astype(np.float32)
    lateral = (1 - 0.0015 * (frame.lr - rng.normal(0, 10)) ** 2 / 4).astype(np.float32)[:, None, None]
    return in_plane[None] * lateral


# ----------------------------------------------------------------------------------------------
# the patient


def _attributes(index: int, seed: int, params: PatientParams, findings: list[str]) -> dict[str, Any]:
    """The patient's attributes as written to ``patients.csv``."""
    size = params.size
    return {
        "patient_id": f"sub-{index:04d}",
        "age": params.age,
        "sex": params.sex,
        "size_factor": round(size, 4),
        **{name: round(value, 2) for name, value in asdict(params.curvature).items()},
        "disc_height_factor": round(float(np.mean(params.disc_height[:-1] / _interp_anchor(3)[:-1] / size)), 4),
        "degeneration": {f"{BODY_NAMES[i]}/{BODY_NAMES[i + 1]}": round(float(x), 3)
                         for i, x in enumerate(params.degeneration)},
        "findings": findings,
        "contrast": params.contrast,
        "seed": seed,
    }


def lateral_slices(lr_mm: float) -> int:
    """Sagittal slices ``lr_mm`` apart that cover the phantom's ``N_LR × LR_MM`` mm across the midline."""
    if not 0.25 <= lr_mm <= LR_MM:
        raise DataError(f"phantom slice distance {lr_mm} mm must lie between 0.25 and {LR_MM} mm")
    return int(round(N_LR * LR_MM / lr_mm))


def render_patient(index: int, *, seed: int = 0, contrast: str = "T2", lr_mm: float = LR_MM) -> PhantomVolume:
    """Render patient ``index`` of the cohort drawn with ``seed``.

    Returns a :class:`PhantomVolume` with ``image``/``labels`` uint8 ``[LR, AP, SI]`` (RAS) and the
    patient's attributes. Depends only on ``(seed, index, contrast, lr_mm)``. The stages run in a fixed order
    because they share one random generator. ``lr_mm`` (default :data:`LR_MM`) is the distance between sagittal
    slices: 1 mm renders an isotropic volume for 1 mm sub-volumes (the same anatomy and findings, since the
    patient's parameters are drawn first; texture and noise differ because their arrays are larger).
    """
    if contrast not in CONTRASTS:
        raise DataError(f"phantom contrast {contrast!r} is not one of {', '.join(CONTRASTS)}")
    params, rng = _draw_patient(index, seed, contrast)
    params, chain = _balanced_chain(params)
    frame = _frame(params, chain, lr_mm)
    image, texture = _background(frame, chain, params.tissue, rng)
    _paint_anterior_ligament(image, frame, chain, params.tissue)
    _paint_great_vessels(image, frame, chain, params, rng)
    _paint_canal(image, texture, frame, chain, params, rng)
    _paint_posterior_elements(image, texture, frame, chain, params)
    labels = _paint_bodies_and_discs(image, texture, frame, chain, params)
    findings = [_paint_finding(image, finding, frame, chain, params) for finding in params.findings]
    scan = _acquire(image, frame, params.tissue, rng)
    affine = np.diag([float(lr_mm), 1.0, 1.0, 1.0])
    affine[:3, 3] = [float(frame.lr[0]), frame.ap_origin, frame.si_origin]
    attributes = _attributes(index, seed, params, findings)
    return PhantomVolume(image=scan, labels=labels, affine=affine, attributes=attributes)


# ----------------------------------------------------------------------------------------------
# NIfTI output


def _nifti_bytes(arr: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzip-compressed NIfTI-1 bytes with a fixed gzip header (deterministic)."""
    import nibabel as nib

    im = nib.Nifti1Image(arr, affine)
    im.header.set_xyzt_units("mm", "sec")
    im.header.set_qform(affine, code=1)
    im.header.set_sform(affine, code=1)
    raw = im.to_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=1, mtime=0) as gz:
        gz.write(raw)
    return buf.getvalue()


def _write_patient(args: tuple[str, int, int, str, float]) -> tuple[str, str, dict[str, Any]]:
    out_dir, index, seed, contrast, lr_mm = args
    vol = render_patient(index, seed=seed, contrast=contrast, lr_mm=lr_mm)
    pid = vol.attributes["patient_id"]
    img_path = Path(out_dir) / f"{pid}{IMAGE_SUFFIX}"
    lbl_path = Path(out_dir) / f"{pid}{LABEL_SUFFIX}"
    for path, arr in ((img_path, vol.image), (lbl_path, vol.labels)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(_nifti_bytes(arr, vol.affine))
    return str(img_path), str(lbl_path), vol.attributes


CSV_COLUMNS = ("patient_id", "age", "sex", "findings", "size_factor", "disc_height_factor",
               "cervical_lordosis_deg", "thoracic_kyphosis_deg", "lumbar_lordosis_deg", "sacral_slope_deg",
               "contrast", "seed")


def write_cohort(
    out_dir: str | Path, n_patients: int, *, seed: int = 0, contrast: str = "T2", workers: int | None = None,
    lr_mm: float = LR_MM,
) -> list[tuple[Path, Path]]:
    """Render ``n_patients`` (sagittal slices ``lr_mm`` apart) and write ``sub-NNNN_img.nii.gz``,
    ``sub-NNNN_vert.nii.gz`` (uint8) and ``patients.csv`` (written last) into ``out_dir``. Returns the
    (image, labels) paths in order."""
    if n_patients < 1:
        raise DataError(f"{out_dir}: a phantom cohort needs at least one patient, got {n_patients}")
    if contrast not in CONTRASTS:
        raise DataError(f"phantom contrast {contrast!r} is not one of {', '.join(CONTRASTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lateral_slices(lr_mm)  # refused before any work
    jobs = [(str(out), i, int(seed), contrast, float(lr_mm)) for i in range(n_patients)]
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if workers == 1 or n_patients == 1:
        results = [_write_patient(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, n_patients)) as pool:
            results = list(pool.map(_write_patient, jobs, chunksize=1))
    with atomic_path(out / PATIENTS_CSV) as tmp:
        with open(tmp, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            wr.writeheader()
            for _, _, a in results:
                wr.writerow({**a, "findings": ";".join(a["findings"])})
    return [(Path(i), Path(lb)) for i, lb, _ in results]
