"""Conditional sampling, interpolation and export of synthetic VUs.

All noise and labels of a request are drawn up front from one seeded generator, so the same seed gives
the same VUs whatever the batch size. Positions are class names of the generator's scheme: a region
(``"L"``) or a VU name (``"L4/L5"``). A VU name asked of a region generator maps to its region; a region
asked of a level generator draws that region's levels with their training prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthvu_core import levels
from synthvu_core.errors import SelectionError
from synthvu_core.storage import atomic_path


@dataclass
class Samples:
    """``images`` float32 ``[n, C, H, W]`` in [-1, 1]; ``labels`` int64 ``[n]`` indexing ``classes``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def positions(self) -> list[str]:
        return [self.classes[i] for i in self.labels]


def _as_generator(generator: Any, device: str | None = None) -> Any:
    if isinstance(generator, str | Path):
        from synthvu_core.models.registry import load_generator, resolve

        return load_generator(resolve(generator), device=device or "cpu")
    return generator


def position_weights(card: dict[str, Any], position: str | None) -> np.ndarray:
    """Class probabilities for a requested position (None = the training prior)."""
    classes, prior = card["classes"], np.asarray(card["class_prior"], dtype=np.float64)
    if position is None:
        return prior / prior.sum()
    pos = str(position).strip()
    wanted = pos.upper()
    scheme = card["scheme"]
    if "/" in wanted and scheme == "region":
        wanted = levels.region(wanted)
    lookup = {c.upper(): i for i, c in enumerate(classes)}
    w = np.zeros(len(classes))
    if wanted in lookup:
        w[lookup[wanted]] = 1.0
    elif scheme == "level" and wanted in levels.REGIONS:
        for c, i in lookup.items():
            if levels.region(c) == wanted:
                w[i] = max(prior[i], 1e-12)
    if w.sum() == 0:
        raise SelectionError(f"position {pos!r} is not a class of this {scheme} generator (classes: {', '.join(classes)})")
    return w / w.sum()


def sample(generator: Any, n: int, position: str | None = None, seed: int = 0, batch_size: int = 256) -> Samples:
    """``n`` VUs for ``position`` (None = training prior). ``generator``: module from
    :func:`~synthvu_core.models.registry.load_generator`, a folder or a registered name."""
    import torch

    gen = _as_generator(generator)
    card = gen.card
    n = int(n)
    if n < 1:
        raise SelectionError(f"asked for {n} samples: at least one is needed")
    weights = position_weights(card, position)
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.multinomial(torch.from_numpy(weights), n, replacement=True, generator=g)
    z = torch.randn(n, card["latent_dim"], generator=g)
    return Samples(_run(gen, z, labels=labels, batch_size=batch_size), labels.numpy().astype(np.int64), list(card["classes"]))


def _run(gen: Any, z: Any, labels: Any, batch_size: int = 256) -> np.ndarray:
    """``gen(z, labels)`` in batches; ``labels`` are class indices ``[n]`` or class weights ``[n, K]``."""
    import torch

    device = next(gen.parameters()).device
    out = np.empty((len(z), *gen.config.shape), dtype=np.float32)
    gen.eval()
    with torch.no_grad():
        for s in range(0, len(z), max(1, int(batch_size))):
            zb = z[s : s + batch_size].to(device)
            x = gen(zb, labels[s : s + batch_size].to(device))
            out[s : s + len(zb)] = x.float().cpu().numpy()
    return out


def interpolate(generator: Any, position_a: str, position_b: str, steps: int = 8, seed: int = 0) -> Samples:
    """``steps`` VUs moving linearly from (z_a, class a) to (z_b, class b) in latent and class-code space.

    Labels are the nearer class at each step.
    """
    import torch

    gen = _as_generator(generator)
    card = gen.card
    if steps < 2:
        raise SelectionError("interpolation needs at least 2 steps")
    wa, wb = (torch.from_numpy(position_weights(card, p)).float() for p in (position_a, position_b))
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(2, card["latent_dim"], generator=g)
    t = torch.linspace(0, 1, steps)[:, None]
    zs = (1 - t) * z[0] + t * z[1]
    codes = (1 - t) * wa + t * wb
    images = _run(gen, zs, codes)
    return Samples(images, codes.argmax(1).numpy().astype(np.int64), list(card["classes"]))


# ---- export ---------------------------------------------------------------------------------
def montage_image(grid: np.ndarray) -> Any:
    """PIL grey image of a ``[rows, cols, H, W]`` grid of [-1, 1] tiles (1-pixel gaps)."""
    from PIL import Image

    from synthvu_core.data.dataset import to_uint8

    rows, cols, h, w = grid.shape
    canvas = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1), dtype=np.uint8)
    tiles = to_uint8(grid)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tiles[r, c]
    return Image.fromarray(canvas, mode="L")


def montage_slices(images: np.ndarray, max_slices: int = 9) -> np.ndarray:
    """``[n, C, H, W]`` -> ``[n, k, H, W]`` with k = min(C, 9) slices spread evenly over C."""
    c = images.shape[1]
    pick = np.unique(np.linspace(0, c - 1, min(c, max_slices)).round().astype(int))
    return images[:, pick]


def export(samples: Samples, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write samples by suffix (atomically):

    * ``.npz``: ``images`` uint8 ``[n, C, H, W]``, ``labels`` ``[n]``, ``classes`` ``[K]``, ``positions`` ``[n]``;
    * ``.nii.gz`` / ``.nii``: one 4-D NIfTI ``[C, H, W, n]`` (:func:`write_nifti`), plus a ``.csv`` beside it
      naming each VU's position;
    * ``.png``: montage, one row per VU, up to 9 slices per row.
    """
    from synthvu_core.data.dataset import to_uint8

    path = Path(path)
    name = path.name.lower()
    if len(samples) == 0:
        raise SelectionError("no samples to export")
    if name.endswith(".npz"):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f,
                    images=to_uint8(samples.images),
                    labels=samples.labels.astype(np.int64),
                    classes=np.array(samples.classes, dtype=str),
                    positions=np.array(samples.positions, dtype=str),
                )
        return path
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        return write_nifti(samples, path, card)
    if name.endswith(".png"):
        with atomic_path(path) as tmp:
            montage_image(montage_slices(samples.images)).save(tmp, format="PNG")
        return path
    raise SelectionError(f"{path}: unknown export format; use .npz, .nii.gz or .png")


def nifti_affine(spacing: list[float] | tuple[float, ...], shape: tuple[int, int, int]) -> np.ndarray:
    """4×4 affine of a VU ``[C, H, W]`` in RAS+ world mm, centred on the VU.

    A VU's axes are (slices left→right, rows superior→inferior, columns anterior→posterior), so
    index axis 0 runs along +x (R), axis 1 along -z (I), axis 2 along -y (P): a viewer shows the
    VU upright, anterior on the left of a sagittal view, as the dashboard does.
    """
    s_slice, s_row, s_col = (float(v) for v in spacing)
    aff = np.zeros((4, 4))
    aff[0, 0] = s_slice  # slice k -> right
    aff[2, 1] = -s_row  # row j -> inferior
    aff[1, 2] = -s_col  # column i -> posterior
    aff[3, 3] = 1.0
    aff[:3, 3] = -aff[:3, :3] @ ((np.asarray(shape, float) - 1) / 2)  # the VU's centre at the origin
    return aff


def write_nifti(samples: Samples, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """One 4-D NIfTI ``[C, H, W, n]`` (uint8; the 4th axis indexes VUs), oriented by :func:`nifti_affine`
    with the voxel size of the card's ``dataset.spacing`` in mm, and ``<stem>.csv`` beside it naming each
    VU's position (both atomic)."""
    import nibabel as nib

    from synthvu_core.data.dataset import to_uint8

    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    spacing = ((card or {}).get("dataset") or {}).get("spacing") or [1.0, 1.0, 1.0]
    vol = np.moveaxis(to_uint8(samples.images), 0, -1)  # [C, H, W, n]
    aff = nifti_affine(spacing, vol.shape[:3])
    img = nib.Nifti1Image(vol, aff)
    img.set_qform(aff, code=2)
    img.set_sform(aff, code=2)
    img.header.set_zooms((*map(float, spacing), 1.0))
    img.header.set_xyzt_units(xyz="mm", t="unknown")  # axis 4 indexes VUs, it is not time
    img.header["descrip"] = b"synthvu synthetic VUs; axis 4 = VU"
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp) + (".nii.gz" if gz else ".nii"))
        Path(str(tmp) + (".nii.gz" if gz else ".nii")).rename(tmp)
    with atomic_path(positions_path(path)) as tmp:
        rows = (f"{i},{p},{lab}\n" for i, (p, lab) in enumerate(zip(samples.positions, samples.labels)))
        tmp.write_text("index,position,label\n" + "".join(rows))
    return path


def positions_path(nifti: str | Path) -> Path:
    """The positions CSV written beside a NIfTI export (``vus.nii.gz`` -> ``vus.csv``)."""
    nifti = Path(nifti)
    stem = nifti.name[: -len(".nii.gz")] if nifti.name.lower().endswith(".gz") else nifti.stem
    return nifti.with_name(stem + ".csv")
