"""Procedural spine phantom: patient-specific MRI-like sagittal volumes with vertebral-body labels.

Each patient is a chain of rigid segments along a curved spine (dens, C2 body, disc, C3 body, ...,
L5 body, L5/S1 disc, S1 body and fused sacral segments). Every segment lies between two planes, so
discs and bodies become wedges where the spine bends (lordosis, kyphosis, sacral slope). The
sagittal geometry is computed on a 2-D (AP x SI) grid; each structure carries a lateral half-width
map, so the 3-D volume costs one broadcast per layer. Texture, partial volume, bias field and
Rician noise give the MRI look.

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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthvu_core.errors import DataError
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


def _smooth_noise(rng: np.random.Generator, n: int, sd: float, rho: float = 0.6) -> np.ndarray:
    """AR(1) noise of length n with marginal std ``sd`` (gradual level-to-level variation)."""
    e = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho**2) * e[i]
    return out * sd


def _patient(index: int, seed: int, contrast: str) -> dict[str, Any]:
    """Draw every anatomical parameter of patient ``index`` from ``(seed, index)``."""
    rng = np.random.default_rng([int(seed), int(index), 7])
    age = int(rng.integers(22, 86))
    sex = "F" if rng.random() < 0.5 else "M"
    scale = (0.94 if sex == "F" else 1.0) * float(np.exp(rng.normal(0, 0.045)))
    nb = len(BODY_NAMES)
    idx = np.arange(nb)
    morph = np.stack([np.interp(idx, _ANCHORS[:, 0], _ANCHORS[:, c]) for c in range(1, 6)], axis=1)
    # patient-level shape factors (slenderness, body depth vs height) plus gradual per-level noise
    h = morph[:, 0] * scale * np.exp(rng.normal(0, 0.04) + _smooth_noise(rng, nb, 0.035))
    d = morph[:, 1] * scale * np.exp(rng.normal(0, 0.05) + _smooth_noise(rng, nb, 0.035))
    w = morph[:, 2] * scale * np.exp(rng.normal(0, 0.05) + _smooth_noise(rng, nb, 0.03))
    disc = morph[:, 3] * scale * np.exp(rng.normal(0, 0.08) + _smooth_noise(rng, nb, 0.06))
    canal = morph[:, 4] * np.exp(rng.normal(0, 0.07) + _smooth_noise(rng, nb, 0.04))

    # disc degeneration grows with age, earlier at the lower cervical and lower lumbar discs
    onset = np.full(nb - 1, 68.0)
    onset[[3, 4]] = 56.0  # C5/C6, C6/C7
    onset[[20, 21, 22]] = [60.0, 52.0, 52.0]  # L3/L4, L4/L5, L5/S1
    onset += _smooth_noise(rng, nb - 1, 6.0) + rng.normal(0, 7.0)
    degen = 1.0 / (1.0 + np.exp(-(age - onset) / 8.0))
    degen = np.clip(degen * rng.uniform(0.3, 1.1, nb - 1), 0, 1)
    disc[:-1] *= 1.0 - 0.4 * degen

    conc = float(rng.uniform(0.6, 1.4))  # endplate concavity factor
    curv = {
        "cervical_lordosis_deg": float(rng.uniform(15, 40)),
        "thoracic_kyphosis_deg": float(rng.uniform(20, 48) + 0.15 * max(age - 50, 0)),
        "lumbar_lordosis_deg": float(rng.uniform(44, 64)),
        "sacral_slope_deg": float(rng.uniform(30, 50)),
    }
    findings: list[dict[str, Any]] = []
    n_find = int(rng.poisson(0.9 + 0.015 * max(age - 40, 0)))
    for _ in range(n_find):
        kind = str(rng.choice(FINDING_KINDS, p=[0.32, 0.24, 0.16, 0.08, 0.2]))
        if kind == "fusion_implant":
            lvl = int(rng.choice([3, 4, 19, 20, 21, 22]))  # C5, C6, L2..L5 upper body of the fused pair
            findings.append({"kind": kind, "level": BODY_NAMES[lvl], "index": lvl,
                             "size": float(rng.uniform(0.8, 1.2))})
        else:
            lvl = int(rng.integers(0, nb - 1))
            findings.append({"kind": kind, "level": BODY_NAMES[lvl], "index": lvl,
                             "size": float(rng.uniform(0.6, 1.3)),
                             "pos": [float(v) for v in rng.uniform(-1, 1, 3)]})
    for f in findings:
        if f["kind"] == "wedge_fracture":
            h[f["index"]] *= 0.85
    bend_weights = rng.uniform(0.7, 1.3, nb - 1)
    lateral = [float(rng.normal(0, 1.5)), float(rng.uniform(0, 5)), float(rng.uniform(0.6, 1.6)), float(rng.random())]
    lean_deg = float(rng.normal(1.0 + 0.06 * max(age - 40, 0), 2.0))
    tissue = dict(_TISSUE[contrast])
    # per-scan contrast jitter (no per-level offsets)
    for k in tissue:
        tissue[k] = float(np.clip(tissue[k] * np.exp(rng.normal(0, 0.06)), 0, 1.2))
    marrow_age = (age - 50) / 40.0  # fattier marrow with age
    tissue["marrow"] = float(np.clip(tissue["marrow"] + (0.06 if contrast == "T1" else 0.05) * marrow_age, 0.2, 1))
    return dict(age=age, sex=sex, scale=scale, conc=conc, bend_weights=bend_weights, lateral=lateral, lean_deg=lean_deg, h=h, d=d, w=w, disc=disc, canal=canal, degen=degen,
                curv=curv, findings=findings, tissue=tissue, rng=rng, contrast=contrast)


def _disc_angles(p: dict[str, Any]) -> np.ndarray:
    """Signed bend (radians) at each disc, positive = kyphotic; sums match the patient's angles."""
    nb = len(BODY_NAMES)
    c = p["curv"]
    ang = np.zeros(nb - 1)
    wts = p["bend_weights"]
    cerv = np.arange(0, 5)  # C2/C3 .. C6/C7
    thor = np.arange(6, 17)  # T1/T2 .. T11/T12
    lumb = np.arange(18, 23)  # L1/L2 .. L5/S1
    ang[cerv] = -c["cervical_lordosis_deg"] * wts[cerv] / wts[cerv].sum()
    ang[thor] = c["thoracic_kyphosis_deg"] * wts[thor] / wts[thor].sum()
    lw = wts[lumb] * np.array([0.5, 0.7, 1.0, 1.3, 1.6])
    ang[lumb] = -c["lumbar_lordosis_deg"] * lw / lw.sum()
    return np.deg2rad(ang)


def _chain(p: dict[str, Any]) -> tuple[list[_Segment], np.ndarray, np.ndarray, np.ndarray]:
    """Segments and their bounding planes (point, downward normal) in (AP, SI) mm, plus arc positions."""
    h, d, w, disc, canal = p["h"], p["d"], p["w"], p["disc"], p["canal"]
    nb = len(BODY_NAMES)
    bend = _disc_angles(p)
    # wedge fractures: bodies lose anterior height (a kyphotic bend inside the body)
    body_bend = np.zeros(nb)
    for f in p["findings"]:
        if f["kind"] == "wedge_fracture":
            body_bend[f["index"]] = np.deg2rad(8 + 10 * f["size"])
    # sacral segments below S1 (fused, unlabelled), bending posteriorly
    sac_h = h[-1] * np.array([0.78, 0.62, 0.5])
    sac_d = d[-1] * np.array([0.78, 0.62, 0.5])
    sac_w = w[-1] * np.array([0.8, 0.6, 0.45])

    segs: list[_Segment] = []
    heights: list[float] = []
    bends: list[float] = []  # change of direction across the segment
    segs.append(_Segment("dens", 0, d[0] * 0.62, w[0] * 0.5, canal[0], d[0], shift=-0.05 * d[0], index=0))
    heights.append(h[0] * 0.95)
    bends.append(0.0)
    for i in range(nb):
        kind = "body"
        segs.append(_Segment(kind, BODY_CODES[i], d[i], w[i], canal[i], d[i], index=i))
        heights.append(h[i])
        bends.append(body_bend[i])
        if i < nb - 1:
            dd = 0.5 * (d[i] + d[i + 1])
            g = p["degen"][i]
            bulge = 1.0 + 2.5 * g
            segs.append(_Segment("disc", 0, dd + bulge, 0.5 * (w[i] + w[i + 1]) + bulge, 0.5 * (canal[i] + canal[i + 1]),
                                 dd, shift=-0.5 * bulge * 0.6, degen=g, index=i))
            heights.append(disc[i])
            bends.append(bend[i])
    for j in range(3):
        segs.append(_Segment("sdisc", 0, sac_d[j] + 1, sac_w[j], canal[-1] * (0.8 - 0.15 * j), sac_d[j], index=nb - 1))
        heights.append(2.0)
        bends.append(np.deg2rad(6.0))
        segs.append(_Segment("sacral", 0, sac_d[j], sac_w[j], canal[-1] * (0.75 - 0.15 * j), sac_d[j], index=nb - 1))
        heights.append(sac_h[j])
        bends.append(np.deg2rad(10.0))

    # direction at the S1 body: tilted posteriorly by the sacral slope; integrate back to the top
    i_s1 = 1 + 2 * (nb - 1)
    phi = np.empty(len(segs) + 1)  # direction of plane k (angle from straight down, + = anterior)
    phi_s1 = -np.deg2rad(p["curv"]["sacral_slope_deg"])
    phi[i_s1] = phi_s1
    for k in range(i_s1 - 1, -1, -1):
        phi[k] = phi[k + 1] - bends[k]
    for k in range(i_s1 + 1, len(segs) + 1):
        phi[k] = phi[k - 1] + bends[k - 1]
    pts = np.zeros((len(segs) + 1, 2))
    arc = np.zeros(len(segs) + 1)
    for k, hk in enumerate(heights):
        mid = 0.5 * (phi[k] + phi[k + 1])
        pts[k + 1] = pts[k] + hk * np.array([np.sin(mid), -np.cos(mid)])
        arc[k + 1] = arc[k] + hk
    # standing balance: C2 sits roughly above S1 (small forward lean with age)
    c2 = 0.5 * (pts[1] + pts[2])
    s1 = 0.5 * (pts[i_s1] + pts[i_s1 + 1])
    lean = np.arctan2(c2[0] - s1[0], c2[1] - s1[1])
    target = np.deg2rad(p["lean_deg"])
    beta = target - lean  # rotate so the C2-S1 line leans forward by ``target``
    phi = phi - beta
    rot = np.array([[np.cos(beta), np.sin(beta)], [-np.sin(beta), np.cos(beta)]])
    pts = (pts - s1) @ rot.T
    p["curv"]["sacral_slope_deg"] = float(np.rad2deg(-phi[i_s1]))
    normals = np.stack([np.sin(phi), -np.cos(phi)], axis=1)  # downward axis of each plane
    return segs, pts, normals, arc


# ----------------------------------------------------------------------------------------------
# rendering


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (float32): white noise filtered along each axis."""
    from scipy import ndimage

    g = rng.standard_normal(shape, dtype=np.float32)
    for ax, s in enumerate(sigma):
        if s > 0 and shape[ax] > 1:
            g = ndimage.gaussian_filter1d(g, s, axis=ax, truncate=2.0, mode="nearest")
    g -= g.mean()
    g /= g.std() + 1e-6
    return g


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
    off = int(rng.integers(0, _POOL_SIZE - n))
    return _POOL[0][off : off + n].reshape(shape)


def _slab_texture(rng: np.random.Generator, nx: int, ny: int, nz: int, step: int = 3) -> np.ndarray:
    """Smooth marrow / tissue texture ``[nx, ny, nz]`` (float32 view): one 2-D field, each sagittal slice
    a window shifted by ``step`` mm in AP, so neighbouring slices are correlated but not equal."""
    from numpy.lib.stride_tricks import as_strided

    field2d = _smooth_field(rng, (ny + step * nx, nz), (1.3, 1.3))
    s0, s1 = field2d.strides
    return as_strided(field2d, shape=(nx, ny, nz), strides=(step * s0, s0, s1), writeable=False)


def _ramp(sd: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Soft inside-fraction of a signed distance (negative inside): partial volume over ``width`` mm."""
    return np.clip(0.5 - sd * (1.0 / width), 0.0, 1.0)


def _box_sd(sa: np.ndarray, sb: np.ndarray, r: float) -> np.ndarray:
    """Rounded intersection of two half-spaces' signed distances."""
    qa = sa + r
    qb = sb + r
    return np.sqrt(np.maximum(qa, 0) ** 2 + np.maximum(qb, 0) ** 2) + np.minimum(np.maximum(qa, qb), 0) - r


def _segment_sd(py, pz, ay, az, by, bz, r):
    """Distance from points to segment AB minus radius r (capsule)."""
    vy, vz = by - ay, bz - az
    t = np.clip(((py - ay) * vy + (pz - az) * vz) / (vy * vy + vz * vz + 1e-9), 0, 1)
    return np.hypot(py - ay - t * vy, pz - az - t * vz) - r


def render_patient(index: int, *, seed: int = 0, contrast: str = "T2") -> PhantomVolume:
    """Render patient ``index`` of the cohort drawn with ``seed``.

    Returns a :class:`PhantomVolume` with ``image``/``labels`` uint8 ``[LR, AP, SI]`` (RAS) and the
    patient's attributes. Depends only on ``(seed, index, contrast)``.
    """
    if contrast not in CONTRASTS:
        raise DataError(f"phantom contrast {contrast!r} is not one of {', '.join(CONTRASTS)}")
    p = _patient(index, seed, contrast)
    rng: np.random.Generator = p["rng"]
    tis = p["tissue"]
    segs, pts, nrm, arc = _chain(p)
    for _ in range(3):  # keep the balanced sacral slope in 30-50 deg by adjusting the lumbar lordosis
        ss = p["curv"]["sacral_slope_deg"]
        if 30.0 <= ss <= 50.0:
            break
        p["curv"]["lumbar_lordosis_deg"] += 1.3 * (float(np.clip(ss, 31.0, 49.0)) - ss)
        segs, pts, nrm, arc = _chain(p)
    nseg = len(segs)

    # field of view: tight around the spine, 1 mm in-plane
    mids = 0.5 * (pts[:-1] + pts[1:])
    perp = np.stack([-nrm[:, 1], nrm[:, 0]], axis=1)  # anterior unit vector of each plane
    perp_mid = 0.5 * (perp[:-1] + perp[1:])
    depth = np.array([s.depth for s in segs])
    top_ext = pts[0] + perp[0] * 0 - nrm[0] * 22.0
    y_front = np.max(mids[:, 0] + perp_mid[:, 0] * (depth / 2 + 15))
    y_back = np.min(mids[:, 0] - perp_mid[:, 0] * (depth / 2 + 48))
    z_top = top_ext[1]
    i_s1 = 1 + 2 * (len(BODY_NAMES) - 1)
    z_bot = pts[i_s1 + 3, 1] - 14.0
    ny = int(np.ceil(y_front - y_back))
    nz = int(np.ceil(z_top - z_bot))
    nx = N_LR
    y0, z0 = float(np.floor(y_back)), float(np.floor(z_bot))
    Y = (y0 + np.arange(ny, dtype=np.float32))[:, None] * np.ones((1, nz), np.float32)
    Z = (z0 + np.arange(nz, dtype=np.float32))[None, :] * np.ones((ny, 1), np.float32)
    xs = ((np.arange(nx) - (nx - 1) / 2) * LR_MM).astype(np.float32)
    # mild scoliosis / off-centre spine: the mid-sagittal plane drifts laterally along SI
    zrel = np.arange(nz, dtype=np.float32) / nz
    xoff = (p["lateral"][0] + p["lateral"][1] * np.sin(np.float32(2 * np.pi) * (zrel * p["lateral"][2] + p["lateral"][3])))
    xoff = xoff.astype(np.float32)
    XS = xs[:, None, None] - xoff[None, None, :]  # [nx, 1, nz] lateral coordinate from the spine's plane
    X = np.abs(XS)
    X2 = X * X

    # segment index of every pixel: number of planes it lies below
    below = np.zeros((ny, nz), np.int16)
    for k in range(nseg + 1):
        below += ((Y - pts[k, 0]) * nrm[k, 0] + (Z - pts[k, 1]) * nrm[k, 1] >= 0)
    seg = np.clip(below.astype(np.int32) - 1, 0, nseg - 1)
    outside_top = below == 0
    g = lambda arr: np.asarray(arr, np.float32)[seg]  # noqa: E731  gather a per-segment value

    # plane coordinates of the own segment
    a_top = (Y - g(pts[:-1, 0])) * g(nrm[:-1, 0]) + (Z - g(pts[:-1, 1])) * g(nrm[:-1, 1])
    a_bot = (Y - g(pts[1:, 0])) * g(nrm[1:, 0]) + (Z - g(pts[1:, 1])) * g(nrm[1:, 1])
    cy, cz = g(mids[:, 0]), g(mids[:, 1])
    v = (Y - cy) * g(perp_mid[:, 0]) + (Z - cz) * g(perp_mid[:, 1])  # anterior +
    t = np.clip(a_top / np.maximum(a_top - a_bot, 1e-3), -0.5, 1.5)  # 0 top .. 1 bottom
    u = g(arc[:-1]) + a_top  # arc position (mm from dens top)

    kind = np.array([s.kind for s in segs])
    is_bone_s = np.isin(kind, ["dens", "body", "sacral"])
    is_disc_s = np.isin(kind, ["disc", "sdisc"])
    is_bone = g(is_bone_s) > 0
    is_disc = g(is_disc_s) > 0
    D = g([s.depth for s in segs])
    W = g([s.width for s in segs])
    shift = g([s.shift for s in segs])
    vv = v - shift
    # bodies: flat posterior wall, slightly concave anterior wall (waist); discs bulge
    waist = np.where(is_bone, 1.2 * (1 - (2 * t - 1) ** 2), 0.0).astype(np.float32)
    half = D / 2
    s_ap = np.where(vv > 0, vv - (half - waist), -vv - half)
    s_pl = np.maximum(-a_top, a_bot)
    s_pl = np.where(outside_top, 1e3, s_pl)
    sd_slab = _box_sd(s_pl, s_ap, 1.6).astype(np.float32)
    # concave endplates: the disc bulges into the bodies (biconvex disc on sagittal slices)
    cdep = g([0.0 if s.kind == "dens" else (0.06 * p["h"][s.index] * p["conc"]) for s in segs])
    conc = np.where(is_bone, cdep * np.clip(1 - (vv / (0.42 * D)) ** 2, 0, 1), 0).astype(np.float32)
    conc_top = np.where(kind[seg] == "body", conc, 0)  # C2 top carries the dens, no concavity
    sd2 = np.where(is_bone, _box_sd(np.maximum(conc_top - a_top, a_bot + conc), s_ap, 1.6), sd_slab)
    rel = np.clip(np.abs(vv) / np.maximum(half, 1), 0, 1)
    wl = (W / 2) * np.cbrt(np.clip(1 - rel**3, 0, 1))

    # marrow, cortical rim, disc nucleus
    degen = g([s.degen for s in segs])
    core_val = np.where(is_bone, tis["marrow"], tis["nucleus"] + (tis["degen"] - tis["nucleus"]) * degen)
    cleft = np.exp(-((t - 0.5) ** 2) / 0.003) * (0.35 + 0.4 * degen)
    core_val = np.where(is_disc, core_val * (1 - cleft), core_val)
    # basivertebral vein: bright short line at mid-height of the posterior body
    bv = is_bone & (vv < -half + 6) & (np.abs(t - 0.5) < 0.03)
    core_val = np.where(bv, 0.5 * (tis["vein"] + tis["marrow"]), core_val)
    # disc material filling the endplate concavities of a body (from the disc above / below)
    nuc_seg = np.array([tis["nucleus"] + (tis["degen"] - tis["nucleus"]) * s.degen for s in segs], np.float32)
    nb_seg = np.clip(np.where(t < 0.5, seg - 1, seg + 1), 0, nseg - 1)
    fill = np.where(np.abs(vv) < 0.3 * D, nuc_seg[nb_seg], tis["annulus"]).astype(np.float32)
    shell_val = np.where(is_bone, tis["cortex"], tis["annulus"]).astype(np.float32)
    rim = np.where(is_bone, 0.8, 0.0).astype(np.float32)
    nuc_r = 1 - 0.35 * degen
    A = np.where(is_bone, -10.0, ((t - 0.5) / (0.34 * nuc_r)) ** 2 + ((vv + 0.08 * D) / (0.3 * D * nuc_r)) ** 2)
    B = np.where(is_bone, 0.0, 1.0 / (0.3 * W * nuc_r) ** 2)
    amp = np.where(is_bone, 0.07, 0.04).astype(np.float32)
    A, B, core_val = A.astype(np.float32), B.astype(np.float32), core_val.astype(np.float32)
    sdisc = g(kind == "sdisc") > 0
    core_val = np.where(sdisc, tis["annulus"], core_val)

    # ---- background: muscle / fat / organs, from the AP position relative to the spine
    from scipy import ndimage

    canal = g([s.canal for s in segs])
    wall = -g([s.wall for s in segs]) / 2 - 1.2  # posterior longitudinal ligament
    region_u = u / max(arc[-1], 1)
    # smoothed frame for soft tissue (segment frames jump slightly at the planes)
    vs = ndimage.gaussian_filter(v - wall, 3.0)
    back = -vs  # mm behind the PLL (positive behind)
    front = ndimage.gaussian_filter(v - D / 2, 3.0)  # mm in front of the bodies
    canal_s = ndimage.gaussian_filter(canal, 3.0)
    musc_end = canal_s + 6 + np.float32(38 + 20 * rng.random()) + 22 * np.clip((region_u - 0.5) * 2, 0, 1)
    bg = np.full((ny, nz), tis["muscle"], np.float32)
    fat_sub = (back > musc_end) & (back < musc_end + 8 + 20 * rng.random())
    bg = np.where(fat_sub, tis["fat"], bg)
    bg = np.where(back >= musc_end + 28, tis["air"], bg)
    c_blend = np.clip((0.3 - region_u) / 0.04, 0, 1)  # cervical weight
    bg = np.where(front > 0, tis["fat"] * 0.5 + tis["muscle"] * 0.5, bg)
    bg = np.where((front > 0) & (front < 3.0 + 3 * c_blend), tis["muscle"] * 1.1, bg)
    airway = (front > 9) & (front < 22) & (c_blend > 0.5)
    bg = np.where(airway, tis["air"], bg)
    bg = ndimage.gaussian_filter(bg, 1.0)
    tex = _slab_texture(rng, nx, ny, nz)
    tex_soft = _smooth_field(rng, (ny, nz), (3.0, 5.0))
    img = bg[None] * (1 + 0.12 * tex_soft[None] + 0.07 * tex)

    def paint(active: np.ndarray, fn, chunk: int = 48) -> None:
        """Apply ``fn(ys, zs)`` on z-chunks cropped in y to where ``active`` (2-D) is set."""
        for k0 in range(0, nz, chunk):
            zs = slice(k0, min(k0 + chunk, nz))
            rows = np.flatnonzero(active[:, zs].any(axis=1))
            if rows.size:
                fn(slice(rows[0], rows[-1] + 1), zs)

    # anterior longitudinal ligament: dark line on the front of bodies and discs
    all_sd = np.abs(v - D / 2 - 0.2) - 0.5
    all_sd = np.where(u > 10, all_sd, 1e3).astype(np.float32)

    def _all(ys, zs):
        m = _ramp(all_sd[ys, zs], 0.8)[None] * _ramp(X[..., zs] - (W[ys, zs] * 0.35)[None], 2.0)
        img[:, ys, zs] += (tis["ligament"] - img[:, ys, zs]) * m

    paint(all_sd < 1, _all)

    # great vessels in front of the thoracic/lumbar spine (flow voids), aorta left, IVC right
    tl = (region_u > 0.3) & (u < arc[i_s1] - 25)
    for side, rad, gap in ((-1, 11.0 * p["scale"], 2.0), (1, 10.0 * p["scale"], 3.5)):
        xc = np.float32(side * (7.0 + 7 * rng.random()))
        dv = v - (D / 2 + gap + rad)

        def _vessel(ys, zs, dv=dv, xc=xc, rad=rad):
            d3 = np.sqrt(dv[ys, zs][None] ** 2 + (XS[..., zs] - xc) ** 2) - rad
            img[:, ys, zs] += (tis["vessel"] - img[:, ys, zs]) * _ramp(d3, 1.5)

        paint(tl & (np.abs(dv) < rad + 2), _vessel)

    # ---- epidural fat, thecal sac with CSF, cord, cauda equina
    canal_c = wall - canal / 2
    chw = np.float32(0.65) * canal + 2.0
    fat_sd = np.where(u > 8, np.abs(v - canal_c) - canal / 2, 1e3).astype(np.float32)
    fat_sd = np.maximum(fat_sd, v - canal_c - 0.2 * canal)  # epidural fat mostly dorsal
    sac_ap = canal * np.where(region_u > 0.75, 0.8, 0.9).astype(np.float32)
    sac_c = wall - sac_ap / 2 - 0.3
    end_sac = arc[i_s1 + 2] + 4
    sac_sd2 = np.maximum(np.abs(v - sac_c) - sac_ap / 2, u - end_sac).astype(np.float32)
    conus = arc[1 + 2 * 18] + p["h"][18] * (0.3 + 0.9 * rng.random())
    reg = np.interp(u, [0, arc[1 + 2 * 6], arc[1 + 2 * 14], conus - 25, conus], [1.0, 1.0, 0.78, 0.85, 0.0])
    cord_ap = (8.5 * p["scale"] * reg).astype(np.float32)
    cord_w = (6.5 * p["scale"] * reg).astype(np.float32) + np.float32(0.01)
    cord_c = sac_c + 0.06 * sac_ap
    cord_e = ((v - cord_c) / np.maximum(cord_ap / 2, 0.01)) ** 2
    inv_cw2 = 1.0 / cord_w**2

    def _canal(ys, zs):
        sub = img[:, ys, zs]
        fm = _ramp(fat_sd[ys, zs], 1.0)[None] * _ramp(X[..., zs] - chw[ys, zs][None], 1.5)
        sub += (tis["fat"] * (1 + 0.1 * tex[:, ys, zs]) - sub) * fm
        s3 = np.maximum(sac_sd2[ys, zs][None], X[..., zs] - (chw[ys, zs] * 0.85)[None])
        sub += (tis["ligament"] - sub) * _ramp(s3, 0.8)
        sub += (tis["csf"] - sub) * _ramp(s3 + 0.6, 0.8)
        cm = np.clip((1 - cord_e[ys, zs][None] - X2[..., zs] * inv_cw2[ys, zs][None]) * 3 + 0.5, 0, 1)
        sub += (tis["cord"] - sub) * (cm * (cord_ap[ys, zs] > 0.3)[None])

    paint(fat_sd < 1.5, _canal)
    # cauda equina: thin strands in the posterior sac below the conus, one sagittal slice each
    below_conus = (u > conus - 5) & (u < end_sac - 10)
    for _ in range(7):
        i = int(rng.integers(nx // 2 - 4, nx // 2 + 4))
        off = rng.uniform(0.05, 0.45)
        sd = np.abs(v - (sac_c - sac_ap / 2 + off * sac_ap + 0.02 * (u - conus))) - 0.45
        img[i] += (tis["cord"] * 0.8 - img[i]) * (_ramp(sd, 0.8) * below_conus * 0.7)

    # ---- posterior elements (pedicles, facets, laminae, spinous processes) of nearby vertebrae
    body_seg = np.array([k for k, s in enumerate(segs) if s.kind == "body"])
    owner = np.array([s.index for s in segs])
    own = owner[seg]
    mid_sd = np.full((ny, nz), 1e3, np.float32)
    mid_w = np.zeros((ny, nz), np.float32)
    lat_sd = np.full((ny, nz), 1e3, np.float32)
    lat_in = np.zeros((ny, nz), np.float32)
    lat_out = np.zeros((ny, nz), np.float32)
    nbody = len(BODY_NAMES)
    for di in (-1, 0, 1):
        bi = np.clip(own + di, 0, nbody - 2)  # vertebra index (S1 has no free arch)
        ks = body_seg[bi]
        qy, qz = pts[ks, 0].astype(np.float32), pts[ks, 1].astype(np.float32)
        dy, dz = nrm[ks, 0].astype(np.float32), nrm[ks, 1].astype(np.float32)
        at = (Y - qy) * dy + (Z - qz) * dz  # below the body's top plane (+ down)
        ap = (Y - qy) * (-dz) + (Z - qz) * dy  # anterior of the top plane's centre
        dep = np.asarray(p["d"], np.float32)[bi]
        hh = np.asarray(p["h"], np.float32)[bi]
        can = np.asarray(p["canal"], np.float32)[bi]
        dsc = np.asarray(p["disc"], np.float32)[bi]
        b = -(ap + dep / 2) - 1.2  # behind the posterior wall
        thor = ((bi >= 6) & (bi <= 17)).astype(np.float32)
        cerv = (bi <= 5).astype(np.float32)
        ped = _box_sd(np.abs(at - 0.3 * hh) - 0.22 * hh, np.abs(b - can / 2) - can / 2 - 1, 1.0)
        fac = _box_sd(np.abs(at - 0.5 * (hh + dsc) + 0.1 * hh) - 0.55 * hh, np.abs(b - can - 1) - 5.5, 2.0)
        lam = _segment_sd(b, at, can + 3, 0.1 * hh, can + 6, hh + 0.7 * dsc, 2.8)
        ang = np.deg2rad(15 + 45 * thor - 5 * cerv)
        ln = (25 + 12 * thor + 6 * (1 - cerv - thor)) * np.float32(p["scale"])
        th = 3.5 + 4.0 * (1 - cerv - thor)
        sp = _segment_sd(b, at, can + 5, 0.45 * hh, can + 5 + ln * np.cos(ang), 0.45 * hh + ln * np.sin(ang), th)
        chw_i = 0.65 * can + 2.0
        m = np.minimum(lam, sp)
        upd = m < mid_sd
        mid_sd = np.where(upd, m, mid_sd)
        mid_w = np.where(upd, np.where(lam < sp, chw_i + 7, 3.0 + 1.5 * cerv), mid_w)
        lt = np.minimum(ped, fac)
        upd = lt < lat_sd
        lat_sd = np.where(upd, lt, lat_sd)
        lat_in = np.where(upd, chw_i - 1, lat_in)
        lat_out = np.where(upd, chw_i + 6 + 2 * (1 - cerv), lat_out)
    mid_sd = np.where(outside_top, 1e3, mid_sd).astype(np.float32)
    lat_sd = np.where(outside_top, 1e3, lat_sd).astype(np.float32)
    mid_w, lat_in, lat_out = (a_.astype(np.float32) for a_ in (mid_w, lat_in, lat_out))
    pe_val = np.float32(tis["marrow"] * 0.95)

    def _bone(ys, zs, s3):
        core = _ramp(s3 + 1.3, 1.0)
        val = tis["cortex"] + (pe_val * (1 + 0.09 * tex[:, ys, zs]) - tis["cortex"]) * core
        img[:, ys, zs] += (val - img[:, ys, zs]) * _ramp(s3, 1.0)

    paint(mid_sd < 1, lambda ys, zs: _bone(ys, zs, np.maximum(mid_sd[ys, zs][None], X[..., zs] - mid_w[ys, zs][None])))
    paint(lat_sd < 1, lambda ys, zs: _bone(ys, zs, np.maximum(
        lat_sd[ys, zs][None], np.maximum(X[..., zs] - lat_out[ys, zs][None], lat_in[ys, zs][None] - X[..., zs]))))

    # ---- bodies and discs (one layer: they tile the sagittal plane)
    labels = np.zeros((nx, ny, nz), np.uint8)
    codes = g([s.code for s in segs]).astype(np.uint8)
    lab2d = np.where(is_bone & (sd2 < 0.5), codes, 0).astype(np.uint8)
    sd2 = sd2.astype(np.float32)
    wl = wl.astype(np.float32)

    def _spine(ys, zs):
        lat = X[..., zs] - wl[ys, zs][None]
        sd3 = np.maximum(sd2[ys, zs][None], lat)
        core = _ramp(sd3 + rim[ys, zs][None], 1.0) * np.clip(
            (1 - A[ys, zs][None] - X2[..., zs] * B[ys, zs][None]) * 3, 0, 1)
        sh = shell_val[ys, zs][None]
        val = sh + (core_val[ys, zs][None] * (1 + amp[ys, zs][None] * tex[:, ys, zs]) - sh) * core
        fl = fill[ys, zs][None]
        val = fl + (val - fl) * _ramp(sd3, 1.0)
        img[:, ys, zs] += (val - img[:, ys, zs]) * _ramp(np.maximum(sd_slab[ys, zs][None], lat), 1.0)
        labels[:, ys, zs] = np.where(sd3 < 0, lab2d[ys, zs][None], 0)

    paint(sd_slab < 1, _spine)

    # ---- patient-specific findings
    attrs_findings = []
    for f in p["findings"]:
        desc = _paint_finding(f, img, labels, segs, pts, nrm, mids, perp_mid, p, tis, xs, y0, z0, xoff)
        attrs_findings.append(desc)

    # ---- partial volume, bias field, Rician noise, per-scan scaling
    img = ndimage.gaussian_filter1d(img, 0.75, axis=1, truncate=2.0)
    img = ndimage.gaussian_filter1d(img, 0.75, axis=2, truncate=2.0)
    yy = (np.arange(ny, dtype=np.float32) / ny - 0.5)[:, None]
    zz = (np.arange(nz, dtype=np.float32) / nz - 0.5)[None, :]
    cb = rng.normal(0, 1, 5).astype(np.float32)
    bias2 = np.exp(0.25 * cb[0] * yy + 0.3 * cb[1] * zz + 0.25 * cb[2] * zz**2 + 0.25 * cb[3] * yy * zz
                   + 0.5 * np.sin(np.float32(np.pi) * zz * (2 + cb[4])) * 0.3).astype(np.float32)
    bias_x = (1 - 0.0015 * (xs - rng.normal(0, 10)) ** 2 / 4).astype(np.float32)[:, None, None]
    img *= bias2[None] * bias_x
    sigma = np.float32(rng.uniform(0.012, 0.03))
    n1, n2 = _white_noise(rng, img.shape), _white_noise(rng, img.shape)
    img += sigma * n1
    n2 = n2 * sigma
    img = np.sqrt(img * img + n2 * n2)
    gain = np.float32(255 * rng.uniform(0.72, 0.95) / max(tis["csf"], tis["fat"], 0.8))
    img *= gain
    image = np.clip(img, 1, 255).astype(np.uint8)

    affine = np.diag([LR_MM, 1.0, 1.0, 1.0])
    affine[:3, 3] = [float(xs[0]), y0, z0]
    attrs = {
        "patient_id": f"sub-{index:04d}",
        "age": p["age"],
        "sex": p["sex"],
        "size_factor": round(p["scale"], 4),
        **{k: round(val_, 2) for k, val_ in p["curv"].items()},
        "disc_height_factor": round(float(np.mean(p["disc"][:-1] / _interp_anchor(3)[:-1] / p["scale"])), 4),
        "degeneration": {f"{BODY_NAMES[i]}/{BODY_NAMES[i + 1]}": round(float(x), 3) for i, x in enumerate(p["degen"])},
        "findings": attrs_findings,
        "contrast": contrast,
        "seed": seed,
    }
    return PhantomVolume(image=image, labels=labels, affine=affine, attributes=attrs)


def _interp_anchor(col: int) -> np.ndarray:
    return np.interp(np.arange(len(BODY_NAMES)), _ANCHORS[:, 0], _ANCHORS[:, col + 1])


def _paint_finding(f, img, labels, segs, pts, nrm, mids, perp_mid, p, tis, xs, y0, z0, xoff) -> str:
    """Paint one finding into ``img`` (in place) and describe it in one string."""
    bi = f["index"]
    k = [i for i, s in enumerate(segs) if s.kind == "body"][bi]
    c, n, a = mids[k], nrm[k], perp_mid[k]  # centre, downward axis, anterior axis
    h, d = p["h"][bi], p["d"][bi]
    size = f["size"]
    pos = f.get("pos", [0.0, 0.0, 0.0])

    def blob(center_ap_si, cx, radii, value, soft=1.0, shell=None):
        """Ellipsoid (axes: AP, SI, LR) painted in a sub-box."""
        r = max(radii) + 3
        j0 = max(int(center_ap_si[0] - y0 - r), 0)
        j1 = min(int(center_ap_si[0] - y0 + r) + 1, img.shape[1])
        k0 = max(int(center_ap_si[1] - z0 - r), 0)
        k1 = min(int(center_ap_si[1] - z0 + r) + 1, img.shape[2])
        if j0 >= j1 or k0 >= k1:
            return
        yy = (y0 + np.arange(j0, j1, dtype=np.float32))[None, :, None] - center_ap_si[0]
        zz = (z0 + np.arange(k0, k1, dtype=np.float32))[None, None, :] - center_ap_si[1]
        xx = xs[:, None, None] - cx - xoff[int(np.clip(center_ap_si[1] - z0, 0, len(xoff) - 1))]
        # rotate into the vertebra frame
        la = yy * a[0] + zz * a[1]
        ls = yy * n[0] + zz * n[1]
        q = np.sqrt((la / radii[0]) ** 2 + (ls / radii[1]) ** 2 + (xx / radii[2]) ** 2)
        sd = (q - 1) * min(radii)
        sub = img[:, j0:j1, k0:k1]
        if shell is not None:
            sub += (shell[1] - sub) * _ramp(sd - shell[0], soft)
        sub += (value - sub) * _ramp(sd, soft)

    kind = f["kind"]
    if kind == "hemangioma":
        r = 3.0 + 4.0 * size
        cen = c + a * pos[0] * (d / 2 - r - 1) * 0.8 + n * pos[1] * (h / 2 - r - 1) * 0.7
        blob(cen, pos[2] * 5, (r, r * 0.9, r * 1.3), tis["hemangioma"], soft=1.5)
        return f"hemangioma@{f['level']}:r={r:.1f}mm"
    if kind == "schmorl_node":
        sign = 1 if pos[1] > 0 else -1  # inferior or superior endplate
        r = 2.0 + 2.5 * size
        cen = c + n * sign * (h / 2 - r * 0.4) + a * pos[0] * d * 0.2
        blob(cen, pos[2] * 5, (r, r, r * 1.2), tis["annulus"] * 1.4, soft=1.0, shell=(1.2, tis["cortex"]))
        return f"schmorl_node@{f['level']}:{'inferior' if sign > 0 else 'superior'}:r={r:.1f}mm"
    if kind == "modic":
        sign = 1 if pos[1] > 0 else -1
        th = 3.0 + 3.0 * size
        cen = c + n * sign * (h / 2 - th / 2 - 1.0)
        blob(cen, 0.0, (d * 0.42, th / 2, p["w"][bi] * 0.35), tis["modic"], soft=2.0)
        return f"modic@{f['level']}:{'inferior' if sign > 0 else 'superior'}:band={th:.1f}mm"
    if kind == "wedge_fracture":
        blob(c + n * (-h * 0.3) + a * d * 0.1, 0.0, (d * 0.4, 2.0, p["w"][bi] * 0.35), tis["modic"] * 0.9, soft=2.0)
        return f"wedge_fracture@{f['level']}:height=0.85"
    if kind == "fusion_implant":
        # interbody cage + pedicle screws in two adjacent bodies: signal voids with blooming
        k2 = [i for i, s in enumerate(segs) if s.kind == "body"][bi + 1]
        dc = 0.5 * (pts[k + 1] + pts[k2])
        blob(dc, 0.0, (d * 0.3, p["disc"][bi] * 0.45 + 1, 8.0), tis["void"], soft=2.5, shell=(2.0, tis["fat"] * 1.1))
        for kk in (k, k2):
            for side in (-1, 1):
                cen = mids[kk] - perp_mid[kk] * (p["d"][bi] * 0.05)
                blob(cen, side * 7.0, (p["d"][bi] * 0.45, 3.0, 2.5), tis["void"], soft=2.5, shell=(1.5, tis["fat"]))
        return f"fusion_implant@{f['level']}/{BODY_NAMES[bi + 1]}"
    raise AssertionError(kind)


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


def _write_patient(args: tuple[str, int, int, str]) -> tuple[str, str, dict[str, Any]]:
    out_dir, index, seed, contrast = args
    vol = render_patient(index, seed=seed, contrast=contrast)
    pid = vol.attributes["patient_id"]
    img_path = Path(out_dir) / f"{pid}_img.nii.gz"
    lbl_path = Path(out_dir) / f"{pid}_vert.nii.gz"
    for path, arr in ((img_path, vol.image), (lbl_path, vol.labels)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(_nifti_bytes(arr, vol.affine))
    return str(img_path), str(lbl_path), vol.attributes


CSV_COLUMNS = ("patient_id", "age", "sex", "findings", "size_factor", "disc_height_factor",
               "cervical_lordosis_deg", "thoracic_kyphosis_deg", "lumbar_lordosis_deg", "sacral_slope_deg",
               "contrast", "seed")


def write_cohort(
    out_dir: str | Path, n_patients: int, *, seed: int = 0, contrast: str = "T2", workers: int | None = None
) -> list[tuple[Path, Path]]:
    """Render ``n_patients`` and write ``sub-NNNN_img.nii.gz``, ``sub-NNNN_vert.nii.gz`` (uint8) and
    ``patients.csv`` (written last) into ``out_dir``. Returns the (image, labels) paths in order."""
    if n_patients < 1:
        raise DataError(f"{out_dir}: a phantom cohort needs at least one patient, got {n_patients}")
    if contrast not in CONTRASTS:
        raise DataError(f"phantom contrast {contrast!r} is not one of {', '.join(CONTRASTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), i, int(seed), contrast) for i in range(n_patients)]
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if workers == 1 or n_patients == 1:
        results = [_write_patient(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, n_patients)) as pool:
            results = list(pool.map(_write_patient, jobs, chunksize=1))
    with atomic_path(out / "patients.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            wr.writeheader()
            for _, _, a in results:
                wr.writerow({**a, "findings": ";".join(a["findings"])})
    return [(Path(i), Path(lb)) for i, lb, _ in results]
