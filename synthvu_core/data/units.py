"""VU geometry: body centroids, disc-centred (or body-centred) crops, intensity scaling.

A **vertebral unit** (VU) is a stack of ``C`` parasagittal slices of ``H × W`` pixels cut out of a
volume around the disc between two consecutive labelled bodies ``a`` / ``a+1``:

* centre: the midpoint of the two bodies' centroids (world mm);
* vertical axis ``u``: from the lower to the upper centroid (``align=True``, the default: every VU is
  upright in its own frame whatever the lordosis or kyphosis) or the world's superior axis;
* lateral axis ``l``: the world's left→right axis made orthogonal to ``u``; slice ``k`` lies at
  ``(k - (C-1)/2) · slice_mm`` along ``l`` (slice 0 on the patient's left);
* anterior axis ``a = u × l``.

Every crop is laid out the same way for every subject and orientation of the file on disk:
**row 0 is superior, column 0 is anterior** (anterior on the left, as in the published study's
figures). The in-plane field of view is ``fov_factor ×`` the centroid distance (default 1.8: the disc
in the middle, about half of each body above and below) or ``fixed_mm``. Pixels are sampled directly
in world mm with trilinear interpolation (``scipy.ndimage.map_coordinates``, order 1), so no resampled
copy of the volume is ever made and the file's orientation does not change the result.

A **sub-volume** (``ExtractConfig.subvolume``, ``data build --unit subvolume``) is the same crop made
isotropic: ``D`` slices ``spacing`` mm apart and ``H × W`` pixels of ``spacing`` mm, whatever the disc's
size, so a ``[D, H, W]`` array is a small 3-D image with the VU's axes (left→right, superior→inferior,
anterior→posterior). It is stored exactly as a VU (``images.npy`` uint8 ``[N, D, H, W]``, memory-mapped).

Intensities are scaled per volume: the ``percentiles`` (default 0.5 and 99.5) of the whole volume map
to -1 and 1, values outside are clipped; points outside the volume read as -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthvu_core import levels
from synthvu_core.data.nifti import Volume
from synthvu_core.errors import DataError
from synthvu_core.names import UNIT_KINDS, VU_FOV_FACTOR, VU_MODES, VU_SIZE, VU_SLICE_MM, VU_SLICES


@dataclass(frozen=True)
class ExtractConfig:
    """How VUs are cut. ``size`` is ``H`` (= ``W``) or ``(H, W)``; lengths in mm."""

    slices: int = VU_SLICES
    size: int | tuple[int, int] = VU_SIZE
    slice_mm: float = VU_SLICE_MM
    fov_factor: float = VU_FOV_FACTOR
    fixed_mm: float | None = None
    mode: str = VU_MODES[0]
    align: bool = True
    percentiles: tuple[float, float] = (0.5, 99.5)
    unit: str = UNIT_KINDS[0]

    @classmethod
    def subvolume(cls, size: tuple[int, int, int], spacing_mm: float, **kwargs: Any) -> ExtractConfig:
        """An isotropic 3-D sub-volume ``[D, H, W]`` of ``spacing_mm`` voxels around each disc (or body).

        ``D`` runs left -> right, ``H`` superior -> inferior, ``W`` anterior -> posterior, as a VU's axes; the
        field of view is ``size × spacing_mm`` along each axis.
        """
        d, h, w = (int(n) for n in size)
        if not (math.isfinite(spacing_mm) and spacing_mm > 0):  # nan and inf too: inf mm voxels read nothing
            raise DataError(f"--spacing must be a positive finite number of mm, got {spacing_mm}")
        return cls(slices=d, size=(h, w), slice_mm=float(spacing_mm), fixed_mm=h * float(spacing_mm),
                   unit="subvolume", **kwargs)

    @property
    def spacing_mm(self) -> float:
        """A sub-volume's voxel size (mm); for a VU the in-plane pixel depends on each disc's field of view."""
        if self.unit != "subvolume":
            raise DataError("only a sub-volume has one voxel size; a VU's pixel follows its field of view")
        return float(self.slice_mm)

    def __post_init__(self) -> None:
        if self.unit not in UNIT_KINDS:
            raise DataError(f"unknown unit {self.unit!r}; choose one of {', '.join(UNIT_KINDS)}")
        if self.unit == "subvolume" and (
            self.fixed_mm is None or abs(self.fixed_mm / self.shape[1] - self.slice_mm) > 1e-9
        ):
            raise DataError("a sub-volume is isotropic: build it with ExtractConfig.subvolume(size, spacing_mm)")
        if self.mode not in VU_MODES:
            raise DataError(f"unknown VU mode {self.mode!r}; choose one of {', '.join(VU_MODES)}")
        h, w = self.shape[1:]
        if self.slices < 1 or h < 2 or w < 2:
            raise DataError(f"VU shape must be at least 1×2×2, got {self.shape}")
        # nan and inf refused too: an infinite slice distance or field of view samples outside the volume (blank units)
        for option, value, zero_ok in (("--slice-mm", self.slice_mm, True), ("--fov-factor", self.fov_factor, False),
                                       ("--fixed-mm", self.fixed_mm, False)):
            if value is not None and not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
                raise DataError(f"{option} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise DataError(f"intensity percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        h, w = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        return int(self.slices), int(h), int(w)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slices": self.slices,
            "size": list(self.shape[1:]),
            "slice_mm": self.slice_mm,
            "fov_factor": self.fov_factor,
            "fixed_mm": self.fixed_mm,
            "mode": self.mode,
            "align": self.align,
            "percentiles": list(self.percentiles),
            **({"unit": self.unit} if self.unit != UNIT_KINDS[0] else {}),  # VU cards stay as they were
        }


#: Smallest vertebral body (mm³) taken as one: a cervical body is about 2,000 mm³, a lumbar one 20,000 or more.
MIN_BODY_MM3 = 100.0


def body_centroids(volume: Volume) -> dict[int, np.ndarray]:
    """World-mm centroid ``[3]`` of every labelled body, keyed by VerSe code (superior first).

    A body is the largest connected piece of its label (26-connected): a stray voxel or speck of the same
    code elsewhere in the label map does not move its centre (and so the VU). A code whose largest piece is
    under :data:`MIN_BODY_MM3` is a speck, not a body: it is left out with a warning naming the label file.
    """
    import warnings

    from scipy import ndimage

    idx = np.nonzero(volume.labels)
    codes = volume.labels[idx].astype(np.int64)
    counts = np.bincount(codes)
    sums = np.stack([np.bincount(codes, weights=i.astype(np.float64), minlength=len(counts)) for i in idx], axis=1)
    boxes = ndimage.find_objects(np.clip(volume.labels, 0, None).astype(np.int32, copy=False))
    voxel_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
    out: dict[int, np.ndarray] = {}
    for c in levels.sort_codes(np.flatnonzero(counts)):
        vox = sums[c] / counts[c]
        parts, n = ndimage.label(volume.labels[boxes[c - 1]] == c, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(parts.ravel())[1:]
        if sizes.max() * voxel_mm3 < MIN_BODY_MM3:
            warnings.warn(f"{volume.label_path}: label {levels.name(c)} holds only {int(sizes.max())} connected "
                          f"voxel(s) ({sizes.max() * voxel_mm3:.1f} mm³): a speck, not a body; left out", stacklevel=2)
            continue
        if n > 1:  # keep the largest piece: the body
            keep = np.nonzero(parts == np.argmax(sizes) + 1)
            vox = np.array([k.mean() + sl.start for k, sl in zip(keep, boxes[c - 1], strict=True)])
        out[c] = volume.affine[:3, :3] @ vox + volume.affine[:3, 3]
    return out


#: Highest median distance (mm) between the centroids of consecutive bodies read as cervical (C2 ... C7).
#: Adult cervical bodies sit about 15-20 mm apart, lumbar ones 32-45 mm: a label map whose bodies are
#: farther apart than this but read as cervical uses another numbering (e.g. ordinal 1..N on a lumbar view).
MAX_CERVICAL_SPACING_MM = 28.0


def check_anatomy(volume: Volume) -> None:
    """Refuse (:class:`DataError`) a label map whose VerSe reading contradicts its geometry.

    Codes 2-7 name the cervical bodies C2-C7; where consecutive ones are, at their median, farther
    apart than :data:`MAX_CERVICAL_SPACING_MM`, the map is not numbered as VerSe (an ordinal 1..N map
    of a lumbar field of view would silently become C1, C2, ...).
    """
    cents = body_centroids(volume)
    gaps = [float(np.linalg.norm(cents[a] - cents[b])) for a, b in levels.vu_pairs(cents) if 2 <= a <= 6]
    if not gaps or float(np.median(gaps)) <= MAX_CERVICAL_SPACING_MM:
        return
    codes = sorted(cents)
    raise DataError(
        f"{volume.label_path}: label values {codes[0]}..{codes[-1]} read as VerSe codes would be "
        f"{levels.name(codes[0])}..{levels.name(codes[-1])}, but those bodies are {np.median(gaps):.0f} mm apart "
        f"(cervical bodies are about 15-20 mm apart): the map uses another numbering. Give a label mapping "
        "(--mapping '1=L1,2=L2,...' or a JSON file), or point --label-glob at VerSe-numbered label maps"
    )


def intensity_window(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """Intensities that map to -1 and 1 (percentiles of the volume; a regular subsample above 2 M voxels)."""
    step = max(1, int(np.ceil((image.size / 2e6) ** (1 / 3))))
    sample = image[::step, ::step, ::step]
    lo, hi = np.percentile(sample, percentiles)
    if not hi > lo:
        lo, hi = float(image.min()), float(image.max())
    return float(lo), float(hi)


def unit_frame(upper: np.ndarray, lower: np.ndarray | None = None, *, align: bool = True) -> np.ndarray:
    """Orthonormal world axes ``[3, 3]`` of a crop: rows ``(u superior, a anterior, l lateral → right)``.

    ``u`` runs from ``lower`` to ``upper`` when ``align`` (else the world's superior axis).
    """
    if align and lower is not None:
        u = np.asarray(upper, float) - np.asarray(lower, float)
        n = np.linalg.norm(u)
        u = u / n if n > 0 else np.array([0.0, 0.0, 1.0])
    else:
        u = np.array([0.0, 0.0, 1.0])
    x = np.array([1.0, 0.0, 0.0])
    lat = x - (x @ u) * u
    if np.linalg.norm(lat) < 1e-3:  # vertical axis along left-right: fall back to the world's posterior axis
        y = np.array([0.0, -1.0, 0.0])
        lat = np.cross(u, y - (y @ u) * u)
    lat /= np.linalg.norm(lat)
    ant = np.cross(u, lat)
    return np.stack([u, ant, lat])


def sample_unit(
    volume: Volume,
    centre: np.ndarray,
    frame: np.ndarray,
    pixel_mm: float,
    config: ExtractConfig,
    window: tuple[float, float],
) -> np.ndarray:
    """Sample one crop: float32 ``[C, H, W]`` in [-1, 1] (row 0 superior, column 0 anterior)."""
    from scipy.ndimage import affine_transform

    c, h, w = config.shape
    u, a, lat = frame
    # output index (k, i, j) -> world: linear, so one affine_transform samples the whole stack
    steps = np.stack([config.slice_mm * lat, -pixel_mm * u, -pixel_mm * a], axis=1)  # [3 world, 3 index]
    origin = np.asarray(centre, float) - steps @ np.array([(c - 1) / 2, (h - 1) / 2, (w - 1) / 2])
    inv = np.linalg.inv(volume.affine)
    matrix = inv[:3, :3] @ steps
    offset = inv[:3, :3] @ origin + inv[:3, 3]
    lo, hi = window
    vals = affine_transform(volume.image, matrix, offset, output_shape=(c, h, w), order=1, mode="constant", cval=lo,
                            prefilter=False)
    out = (vals - lo) * (2.0 / (hi - lo)) - 1.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def extract_units(
    volume: Volume, config: ExtractConfig = ExtractConfig(), *, patient_id: str | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Cut every VU of a volume: uint8 ``[n, C, H, W]`` (``x = u8 / 127.5 - 1``) and one table row per VU.

    Disc mode gives one VU per pair of consecutive labelled bodies, body mode one per body with at
    least one consecutive neighbour. Raises :class:`DataError` naming the label file when none is possible.
    """
    from synthvu_core.data.dataset import to_uint8

    cents = body_centroids(volume)
    pid = patient_id if patient_id is not None else volume.image_path.name.split("_")[0]
    sites = []  # (level, upper, lower, centre, frame, distance)
    if config.mode == "disc":
        for a, b in levels.vu_pairs(cents):
            dist = float(np.linalg.norm(cents[a] - cents[b]))
            frame = unit_frame(cents[a], cents[b], align=config.align)
            sites.append((levels.vu_name(a, b), a, b, (cents[a] + cents[b]) / 2, frame, dist))
    else:
        codes = list(cents)
        for code in codes:
            up = next((c for c in codes if levels.are_consecutive(c, code)), None)
            down = next((c for c in codes if levels.are_consecutive(code, c)), None)
            if up is None and down is None:
                if config.fixed_mm is None:
                    continue
                sites.append((levels.name(code), code, code, cents[code], unit_frame(cents[code], align=False), 0.0))
                continue
            hi = cents[up] if up is not None else cents[code]
            lo = cents[down] if down is not None else cents[code]
            dists = [float(np.linalg.norm(cents[n] - cents[code])) for n in (up, down) if n is not None]
            frame = unit_frame(hi, lo, align=config.align)
            sites.append((levels.name(code), code, code, cents[code], frame, float(np.mean(dists))))
    if not sites:
        names = ", ".join(levels.name(c) for c in cents)
        raise DataError(
            f"{volume.label_path}: labelled bodies ({names}) hold no two consecutive vertebrae: no VU possible"
        )

    window = intensity_window(volume.image, config.percentiles)
    if not window[1] > window[0]:
        raise DataError(f"{volume.image_path}: image is constant (every voxel {window[0]:g}): no contrast to cut VUs "
                        "from")
    c, h, w = config.shape
    images = np.empty((len(sites), c, h, w), dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    for i, (level, a, b, centre, frame, dist) in enumerate(sites):
        fov = float(config.fixed_mm) if config.fixed_mm is not None else config.fov_factor * dist
        pixel = fov / h
        images[i] = to_uint8(sample_unit(volume, centre, frame, pixel, config, window))
        vox = volume.world_to_source_voxel(centre[None])[0]
        rows.append(
            {
                "patient_id": str(pid),
                "level": level,
                "region": levels.region(level),
                "source": volume.image_path.name,
                "center_vox_0": round(float(vox[0]), 3),
                "center_vox_1": round(float(vox[1]), 3),
                "center_vox_2": round(float(vox[2]), 3),
                "center_world_x": round(float(centre[0]), 3),
                "center_world_y": round(float(centre[1]), 3),
                "center_world_z": round(float(centre[2]), 3),
                "spacing_mm": round(pixel, 6),
                "slice_mm": float(config.slice_mm),
                "crop_mm": round(fov, 3),
                "label_source": volume.label_path.name,
                "upper_code": int(a),
                "lower_code": int(b),
                "centroid_distance_mm": round(dist, 3),
                "mode": config.mode,
                **({"source_max_mm": round(max(volume.spacing), 6)} if config.unit == "subvolume" else {}),
            }
        )
    return images, rows
