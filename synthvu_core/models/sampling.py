"""Conditional sampling, interpolation and export of synthetic VUs.

All noise and labels of a request are drawn up front from one seeded generator, so the same seed gives
the same VUs whatever the batch size. Positions are class names of the generator's scheme: a region
(``"L"``) or a VU name (``"L4/L5"``). A VU name asked of a region generator maps to its region; a region
asked of a level generator draws that region's levels with their training prior.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import levels
from synthvu_core.errors import DiskFullError, SelectionError, SynthVUError
from synthvu_core.storage import atomic_path, disk_full

if TYPE_CHECKING:
    from synthvu_core.models.acgan import Generator, SnapshotEnsemble
    from synthvu_core.models.diffusion import DiffusionGenerator


@dataclass
class Samples:
    """``images`` float32 ``[n, C, H, W]`` in [-1, 1] (uint8 from :func:`sample_uint8`); ``labels`` int64 ``[n]``
    indexing ``classes``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def positions(self) -> list[str]:
        return [self.classes[i] for i in self.labels]


def _as_generator(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, device: str | None = None
) -> Any:
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
    if "/" in wanted and scheme == "region":  # a level asked of a region generator: never answered silently
        region = levels.region(wanted)
        raise SelectionError(
            f"position {pos!r} is a level, but this generator makes regions ({', '.join(classes)}) and cannot "
            f"place a VU at one level: ask for position {region!r} for VUs from anywhere in that region"
        )
    lookup = {c.upper(): i for i, c in enumerate(classes)}
    w = np.zeros(len(classes))
    if wanted in lookup:
        w[lookup[wanted]] = 1.0
    elif scheme == "level" and wanted in levels.REGIONS:
        for c, i in lookup.items():
            if levels.region(c) == wanted:
                w[i] = max(prior[i], 1e-12)
    if w.sum() == 0:
        raise SelectionError(
            f"position {pos!r} is not a class of this {scheme} generator (classes: {', '.join(classes)})"
        )
    return w / w.sum()


def _check_batch_size(batch_size: int) -> int:
    b = int(batch_size)
    if b < 1:
        raise SelectionError(f"batch size {batch_size}: it must be at least 1")
    return b


def _draw_labels(card: dict[str, Any], n: int, position: str | None, seed: int) -> tuple[Any, Any]:
    """(torch generator after the labels, labels int64 ``[n]``): the first draws of every request."""
    import torch

    n = int(n)
    if n < 1:
        raise SelectionError(f"asked for {n} samples: at least one is needed")
    weights = position_weights(card, position)
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.multinomial(torch.from_numpy(weights), n, replacement=True, generator=g)
    return g, labels


def _noise_chunks(g: Any, n: int, latent_dim: int, rows: int) -> Iterator[Any]:
    """``randn(n, latent_dim)`` drawn in chunks of ``rows`` rows (rounded up to 16).

    torch fills normal noise 16 values at a time (the last 16 redrawn), so chunks of whole 16-row
    blocks give the same values as one ``randn(n, latent_dim)`` call whatever the chunk size, as long as
    every chunk holds at least 16 values; a latent smaller than 16 is drawn in one call.
    """
    import torch

    if latent_dim < 16:
        yield torch.randn(n, latent_dim, generator=g)
        return
    rows = 16 * -(-int(rows) // 16)
    for s in range(0, n, rows):
        yield torch.randn(min(rows, n - s), latent_dim, generator=g)


def _rebatch(chunks: Iterator[Any], batch_size: int) -> Iterator[Any]:
    """Re-cut a stream of row chunks into batches of ``batch_size`` rows (the last may be shorter)."""
    import torch

    buf: list[Any] = []
    have = 0
    for c in chunks:
        buf.append(c)
        have += len(c)
        while have >= batch_size:
            cat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield cat[:batch_size]
            rest = cat[batch_size:]
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield torch.cat(buf) if len(buf) > 1 else buf[0]


#: VUs converted to uint8 at a time: a slice whose float maps stay in the CPU cache through the five passes
#: (shift, scale, round, clip, cast), about 1.5x faster than whole-batch passes at 256 VUs; the same values.
UINT8_ROWS = 8


def to_uint8_torch(x: Any) -> Any:
    """float tensor in [-1, 1] -> uint8 tensor (contiguous), in place where it can; same values as
    :func:`synthvu_core.data.dataset.to_uint8` (round half to even, clipped)."""
    import torch

    x = x.float()
    if x.dim() < 2 or len(x) <= UINT8_ROWS:
        x = x.add_(1.0).mul_(127.5).round_().clamp_(0, 255)
        return x.to(torch.uint8, memory_format=torch.contiguous_format)
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    for s in range(0, len(x), UINT8_ROWS):
        out[s : s + UINT8_ROWS].copy_(x[s : s + UINT8_ROWS].add_(1.0).mul_(127.5).round_().clamp_(0, 255))
    return out


def all_finite(x: Any) -> bool:
    """True where every value of ``x`` is finite. One summation pass (NaN and infinity make the sum non-finite);
    only where the sum is not finite (a non-finite value, or an overflow of finite ones) is every value tested."""
    import torch

    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def _check_finite(gen: Generator | SnapshotEnsemble | DiffusionGenerator, x: Any, start: int) -> None:
    """:class:`CheckpointError` naming the generator where a batch holds NaN or infinity (never silent black VUs)."""
    if not all_finite(x):
        from synthvu_core.errors import CheckpointError

        where = getattr(gen, "source_dir", None) or "the generator"
        raise CheckpointError(f"{where}: the generator produced non-finite values (NaN or infinity) from VU {start} "
                              "on; its weights are broken; nothing was written")


def sample_batches(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, position: str | None = None,
    seed: int = 0, batch_size: int = 256, *, uint8: bool = True, workers: int = 1,
    worker_context: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream ``n`` VUs as ``(start, images, labels)`` batches; memory is bounded by the batch, not by ``n``.

    ``images`` uint8 ``[b, C, H, W]`` (converted on the torch side) or, with ``uint8=False``, float32 in
    [-1, 1]; the same VUs as :func:`sample` for the same seed, whatever ``batch_size``. ``workers`` > 1: the
    batches run on that many threads, each batch inside ``worker_context()`` (e.g. the evaluation's fixed thread
    count, which a new thread does not inherit); the noise is still drawn in order here, so the VUs are the same.
    """
    import torch

    gen = _as_generator(generator)
    b = _check_batch_size(batch_size)
    g, labels = _draw_labels(gen.card, n, position, seed)
    device = next(gen.parameters()).device
    gen.eval()
    if device.type == "cpu":  # oneDNN's NHWC kernels: about 1.4x faster on CPU, same values to float32 rounding
        three_d = getattr(getattr(gen, "config", None), "spatial_dims", 2) == 3  # sub-volumes: NDHWC
        gen.to(memory_format=torch.channels_last_3d if three_d else torch.channels_last)

    def one(start: int, zb: torch.Tensor) -> tuple[int, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            x = gen(zb.to(device), labels[start : start + len(zb)].to(device))
            _check_finite(gen, x, start)
            x = to_uint8_torch(x) if uint8 else x.float().contiguous()
            return start, x.cpu().numpy(), labels[start : start + len(zb)].numpy().astype(np.int64)

    batches = _with_starts(_rebatch(_noise_chunks(g, len(labels), int(gen.card["latent_dim"]), b), b))
    if workers <= 1:
        for start, zb in batches:
            yield one(start, zb)
        return

    def inside(start: int, zb: torch.Tensor) -> tuple[int, np.ndarray, np.ndarray]:
        with worker_context() if worker_context is not None else contextlib.nullcontext():
            return one(start, zb)

    yield from _in_order(inside, batches, workers)


def _with_starts(chunks: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """``(start, chunk)``: each chunk with the index of its first row."""
    start = 0
    for c in chunks:
        yield start, c
        start += len(c)


def _in_order(
    fn: Callable[..., tuple[int, np.ndarray, np.ndarray]], items: Iterable[tuple[Any, ...]], workers: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``fn(*item)`` for each item on ``workers`` threads, yielded in the items' order; at most ``workers + 1``
    results in flight (memory stays bounded by a few batches). The items are drawn in the calling thread."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthvu-sample") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, *item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def sample(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, position: str | None = None,
    seed: int = 0, batch_size: int = 256,
) -> Samples:
    """``n`` VUs for ``position`` (None = training prior). ``generator``: module from
    :func:`~synthvu_core.models.registry.load_generator`, a folder or a registered name.

    Holds every VU as float32; for many VUs stream with :func:`sample_batches` or :func:`sample_to_file`.
    """
    gen = _as_generator(generator)
    b = _check_batch_size(batch_size)
    out = np.empty((max(int(n), 0), *gen.config.shape), dtype=np.float32)
    labels = np.empty(max(int(n), 0), dtype=np.int64)
    for start, x, y in sample_batches(gen, n, position, seed, b, uint8=False):
        out[start : start + len(x)], labels[start : start + len(y)] = x, y
    return Samples(out, labels, list(gen.card["classes"]))


def sample_uint8(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, position: str | None = None,
    seed: int = 0, batch_size: int = 256, *, workers: int = 1,
    worker_context: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Samples:
    """:func:`sample` with ``images`` uint8 ``[n, C, H, W]`` (as exported), converted batch by batch on the torch
    side: a quarter of the float32 memory, no float copy of the whole set; ``workers``, ``worker_context``: as
    :func:`sample_batches`."""
    gen = _as_generator(generator)
    b = _check_batch_size(batch_size)
    out = np.empty((max(int(n), 0), *gen.config.shape), dtype=np.uint8)
    labels = np.empty(max(int(n), 0), dtype=np.int64)
    for start, x, y in sample_batches(gen, n, position, seed, b, workers=workers, worker_context=worker_context):
        out[start : start + len(x)], labels[start : start + len(y)] = x, y
    return Samples(out, labels, list(gen.card["classes"]))


def _run(
    gen: Generator | SnapshotEnsemble | DiffusionGenerator, z: Any, labels: Any, batch_size: int = 256,
    member: int | None = None,
) -> np.ndarray:
    """``gen(z, labels)`` in batches; ``labels`` are class indices ``[n]`` or class weights ``[n, K]``; ``member``:
    the one member of a snapshot ensemble to use."""
    pin = {} if member is None else {"member": member}
    import torch

    device = next(gen.parameters()).device
    out = np.empty((len(z), *gen.config.shape), dtype=np.float32)
    gen.eval()
    with torch.no_grad():
        for s in range(0, len(z), max(1, int(batch_size))):
            zb = z[s : s + batch_size].to(device)
            x = gen(zb, labels[s : s + batch_size].to(device), **pin)
            out[s : s + len(zb)] = x.float().cpu().numpy()
    return out


def interpolate(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, position_a: str, position_b: str,
    steps: int = 8, seed: int = 0,
) -> Samples:
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
    from synthvu_core.models.acgan import SnapshotEnsemble, snapshot_of

    # a snapshot ensemble draws the whole path from the member of its start
    member = int(snapshot_of(z[:1], len(gen.members))[0]) if isinstance(gen, SnapshotEnsemble) else None
    images = _run(gen, zs, codes, member=member)
    return Samples(images, codes.argmax(1).numpy().astype(np.int64), list(card["classes"]))


# ---- export ---------------------------------------------------------------------------------
def montage_image(grid: np.ndarray, row_labels: Sequence[str] | None = None) -> Any:
    """PIL grey image of a ``[rows, cols, H, W]`` grid of [-1, 1] (or uint8) tiles with 1-pixel gaps; with
    ``row_labels`` (one per row: its level or position) each row carries its label on the left."""
    from PIL import Image

    from synthvu_core.data.dataset import label_rows, tile_montage

    rows, cols, h, w = grid.shape
    if row_labels is None:
        return Image.fromarray(tile_montage(grid.reshape(rows * cols, h, w), cols, gap=1, margin=0), mode="L")
    if len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} montage rows")
    # one pixel of gap below every row but the last, as in the unlabelled grid
    strips = [
        np.pad(tile_montage(grid[r], cols, gap=1, margin=0), ((0, int(r < rows - 1)), (0, 0))) for r in range(rows)
    ]
    return Image.fromarray(label_rows([(str(t), s) for t, s in zip(row_labels, strips)]), mode="L")


def montage_slices(images: np.ndarray, max_slices: int = 9) -> np.ndarray:
    """``[n, C, H, W]`` -> ``[n, k, H, W]`` with k = min(C, 9) slices spread evenly over C."""
    c = images.shape[1]
    pick = np.unique(np.linspace(0, c - 1, min(c, max_slices)).round().astype(int))
    return images[:, pick]


#: Output suffixes :func:`export` and :func:`sample_to_file` write.
SUFFIXES: tuple[str, ...] = (".npz", ".nii.gz", ".nii", ".png")
#: Rows of one streamed batch of ``positions`` strings.
_TEXT_ROWS = 65536


def export_suffix(path: str | Path) -> str:
    """The known output suffix of ``path``; :class:`SelectionError` naming the file otherwise."""
    name = Path(path).name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise SelectionError(f"{path}: unknown export format; use .npz, .nii.gz or .png")


def _npy_header(dtype: Any, shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def write_npz_stream(
    path: str | Path,
    batches: Iterable[tuple[int, np.ndarray, np.ndarray]],
    n: int,
    shape: tuple[int, ...],
    classes: list[str],
    *,
    compress: bool = False,
) -> Path:
    """Write an ``.npz`` as the batches arrive (atomically); memory is one batch plus ``8 n`` bytes of labels.

    Args:
        path: the ``.npz`` file to write.
        batches: ``(start, images uint8 [b, *shape], labels [b])`` in order, ``n`` rows in all.
        n: number of VUs.
        shape: one VU's shape ``(C, H, W)``.
        classes: class names; ``positions`` are ``classes[labels]``.
        compress: deflate the members (level 1) instead of storing them.

    Members as :func:`numpy.savez` writes them: ``images`` uint8 ``[n, *shape]``, ``labels`` int64 ``[n]``,
    ``classes`` ``[K]`` and ``positions`` ``[n]`` (unicode); :func:`numpy.load` reads the file.
    """
    import zipfile

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    labels = np.empty(n, dtype=np.int64)
    names = np.array(classes, dtype=str)
    done = 0
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=method, compresslevel=1 if compress else None, allowZip64=True) as zf,
    ):
        with zf.open("images.npy", "w", force_zip64=True) as f:
            f.write(_npy_header(np.uint8, (n, *shape)))
            for start, images, lab in batches:
                if start != done or images.dtype != np.uint8 or tuple(images.shape[1:]) != tuple(shape):
                    raise ValueError(f"batch at {start}: expected uint8 rows from {done} of shape {tuple(shape)}")
                f.write(np.ascontiguousarray(images).data)
                labels[start : start + len(lab)] = lab
                done += len(images)
        if done != n:
            raise ValueError(f"{done} VUs arrived, {n} announced")
        with zf.open("labels.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, labels, allow_pickle=False)
        with zf.open("classes.npy", "w") as f:
            np.lib.format.write_array(f, names, allow_pickle=False)
        with zf.open("positions.npy", "w", force_zip64=True) as f:
            f.write(_npy_header(names.dtype, (n,)))
            for s in range(0, n, _TEXT_ROWS):
                f.write(names[labels[s : s + _TEXT_ROWS]].data)
    return Path(path)


def open_images(path: str | Path) -> np.ndarray:
    """The ``images`` member of an uncompressed ``.npz`` (as :func:`write_npz_stream` stores it), memory-mapped.

    Args:
        path: an ``.npz`` written without ``--compress``.
    """
    import struct
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("images.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise SelectionError(f"{path}: images are compressed; memory-mapping needs an .npz written without --compress")
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran:
        raise SelectionError(f"{path}: images are in Fortran order")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _uint8_batches(samples: Samples, rows: int = 256) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    from synthvu_core.data.dataset import to_uint8

    for s in range(0, len(samples), rows):
        yield s, to_uint8(samples.images[s : s + rows]), samples.labels[s : s + rows]


def export(samples: Samples, path: str | Path, card: dict[str, Any] | None = None, *, compress: bool = False) -> Path:
    """Write samples by suffix (atomically):

    * ``.npz``: ``images`` uint8 ``[n, C, H, W]``, ``labels`` ``[n]``, ``classes`` ``[K]``, ``positions`` ``[n]``
      (members stored; ``compress`` deflates them);
    * ``.nii.gz`` / ``.nii``: one 4-D NIfTI ``[C, H, W, n]`` (uint8; the 4th axis indexes VUs; voxel size from
      the card's ``dataset.spacing``: for VUs the in-plane size is the dataset's median, said in the header),
      plus a ``.csv`` beside it
      naming each VU's position (:func:`write_nifti`);
    * ``.png``: montage, one row per VU (labelled with its position), up to 9 slices per row.

    ``samples.images`` may be float in [-1, 1] or already uint8.
    """

    path = Path(path)
    name = path.name.lower()
    export_suffix(path)
    if len(samples) == 0:
        raise SelectionError("no samples to export")
    if name.endswith(".npz"):
        return write_npz_stream(
            path,
            _uint8_batches(samples),
            len(samples),
            tuple(samples.images.shape[1:]),
            list(samples.classes),
            compress=compress,
        )
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        return write_nifti(samples, path, card)
    if name.endswith(".png"):
        with atomic_path(path) as tmp:
            montage_image(montage_slices(samples.images), samples.positions).save(tmp, format="PNG")
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


def spacing_is_median(card: dict[str, Any] | None) -> bool:
    """Whether the in-plane mm of a generator card's ``dataset.spacing`` is only the training dataset's median.

    A VU's field of view follows its disc (``fov_factor`` × the centroid distance), so its pixel size differs
    from VU to VU and from class to class (in the phantom demo a cervical pixel is about half a lumbar one); the
    card records one median for all. Exact are a sub-volume's (isotropic, one voxel size: a 3-D generator or a
    ``subvolume`` recipe) and a VU recipe's with a fixed field of view (``fixed_mm``); the slice distance is
    always exact."""
    card = card or {}
    if (card.get("architecture") or {}).get("spatial_dims") == 3:
        return False
    extract = ((card.get("dataset") or {}).get("recipe") or {}).get("extract") or card.get("extract") or {}
    return extract.get("unit") != "subvolume" and extract.get("fixed_mm") is None


#: The NIfTI header's ``descrip`` (at most 80 bytes) where the in-plane mm is the dataset's median.
MEDIAN_SPACING_DESCRIP = b"synthvu synthetic VUs; axis 4 = VU; in-plane mm approx.: dataset median"


def write_nifti(samples: Samples, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """One 4-D NIfTI ``[C, H, W, n]`` (uint8; the 4th axis indexes VUs), oriented by :func:`nifti_affine`
    with the voxel size of the card's ``dataset.spacing`` in mm, and ``<stem>.csv`` beside it naming each
    VU's position (both atomic). Where that in-plane size is the dataset's median (:func:`spacing_is_median`: a
    VU's pixel follows its disc, so it is approximate for every class), the header's description says so."""
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
    median = bool(((card or {}).get("dataset") or {}).get("spacing")) and spacing_is_median(card)
    img.header["descrip"] = MEDIAN_SPACING_DESCRIP if median else b"synthvu synthetic VUs; axis 4 = VU"
    with atomic_path(path) as tmp:
        named = Path(str(tmp) + (".nii.gz" if gz else ".nii"))  # nibabel picks the format by the suffix
        try:
            nib.save(img, str(named))
            named.rename(tmp)
        finally:
            named.unlink(missing_ok=True)  # a failed save leaves nothing behind
    with atomic_path(positions_path(path)) as tmp:
        rows = (f"{i},{p},{lab}\n" for i, (p, lab) in enumerate(zip(samples.positions, samples.labels)))
        tmp.write_text("index,position,label\n" + "".join(rows))
    return path


def positions_path(nifti: str | Path) -> Path:
    """The positions CSV written beside a NIfTI export (``vus.nii.gz`` -> ``vus.csv``)."""
    nifti = Path(nifti)
    stem = nifti.name[: -len(".nii.gz")] if nifti.name.lower().endswith(".gz") else nifti.stem
    return nifti.with_name(stem + ".csv")


# ---- streamed export with up-front checks ------------------------------------------------------
#: Share of the available memory (``MemAvailable``) a sampling run may plan to use.
MEMORY_SHARE = 0.8
#: Bytes one VU needs during the forward pass, per output voxel (float32 activations of the widest
#: layers, measured for the shipped architectures at batch 256 with a margin).
FORWARD_BYTES_PER_VOXEL = 48


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gib(x: float) -> str:
    return f"{x / 2**30:.1f} GiB" if x >= 2**28 else f"{x / 2**20:.0f} MiB"


@dataclass
class ExportPlan:
    """What a streamed export will need: the file's size and the peak memory, both in bytes."""

    path: Path
    suffix: str
    n: int
    batch_size: int
    disk_bytes: int
    memory_bytes: int


def check_writable_folder(path: Path) -> None:
    """The folder that will hold ``path`` exists (or can be made) and takes a new file; one-line error otherwise."""
    import tempfile

    if path.is_dir():
        raise SynthVUError(f"{path}: is a folder; give a file name ending in {', '.join(SUFFIXES)}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise SynthVUError(f"{path}: cannot write into {folder} ({e.strerror or e})") from None


def plan_export(
    path: str | Path, n: int, shape: tuple[int, ...], classes: list[str], batch_size: int = 256
) -> ExportPlan:
    """Check a sampling request before any work: count, batch size, suffix, writable folder, and that the
    output fits the free disk and the peak memory fits the available memory (errors name the limit).

    ``.npz`` streams (memory: one batch, ``8 n`` bytes of labels); ``.nii``/``.nii.gz``/``.png`` hold every
    VU as uint8 (about twice ``n`` x voxels while writing).
    """
    import shutil

    path = Path(path)
    n, b = int(n), _check_batch_size(batch_size)
    if n < 1:
        raise SelectionError(f"asked for {n} samples: at least one is needed")
    suffix = export_suffix(path)
    check_writable_folder(path)
    voxels = int(np.prod(shape))
    text = 4 * max(len(c) for c in classes)
    disk = n * (voxels + 8 + text) + 4096
    forward = min(b, n) * voxels * FORWARD_BYTES_PER_VOXEL
    held = 8 * n + min(n, _TEXT_ROWS) * (text + 8) if suffix == ".npz" else 2 * n * (voxels + 8 + text)
    memory = forward + held
    free = shutil.disk_usage(path.parent).free
    if disk > free:
        raise SelectionError(
            f"{path}: {n} VUs need about {_gib(disk)} on disk, the folder's disk has {_gib(free)} free"
        )
    avail = available_memory()
    if avail is not None and memory > MEMORY_SHARE * avail:
        hint = " (.npz is written as it is sampled: use it)" if suffix != ".npz" else " (use a smaller --batch-size)"
        raise SelectionError(
            f"{path}: {n} VUs at batch {b} need about {_gib(memory)} of memory, "
            f"{_gib(MEMORY_SHARE * avail)} is the limit ({MEMORY_SHARE:.0%} of the available){hint}"
        )
    return ExportPlan(path, suffix, n, b, disk, memory)


#: glibc ``mallopt`` parameters and the values :func:`keep_freed_memory` sets.
_MALLOPT: dict[int, int] = {-1: 4 << 30, -2: 512 << 20, -3: 1 << 30}  # M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the kernel at once.

    Every forward pass allocates and frees batch-sized feature maps; by default glibc maps each afresh and
    unmaps it, so every batch page-faults its memory again (in a 1 thread sampling run about 15 % of the CPU
    time went to the kernel; with this, under 3 %). Peak memory grows by about one batch's maps (the
    ``sample`` command at 5,000 VUs: 383 -> 452 MiB).
    Returns False where the C library has no ``mallopt`` (nothing changes).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT.items())


@contextlib.contextmanager
def collector_paused_then_frozen() -> Iterator[None]:
    """Run the block (imports, loading a generator) with the cyclic garbage collector paused, then move every
    live object to the collector's permanent generation (``gc.freeze``) and resume it.

    For a command's process. ``import torch`` creates about 170,000 objects (modules, classes, registrations)
    that live until exit; the collector walks them again and again while they are created, and again as the
    interpreter shuts down. Paused and then frozen, they are walked neither time (a ``sample`` process at one
    thread: 2.6 instead of 3.9 CPU-s with 16 VUs, the shutdown 0.2 instead of 1.2). Objects are still freed by
    reference counting; only reference cycles among the objects alive at the freeze are kept until exit.
    Objects created afterwards (the sampling loop's) are collected as before.
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def sample_to_file(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path,
    n: int,
    path: str | Path,
    *,
    position: str | None = None,
    seed: int = 0,
    batch_size: int = 256,
    compress: bool = False,
) -> ExportPlan:
    """Sample ``n`` VUs and write them to ``path`` (suffix as in :func:`export`), checked first by
    :func:`plan_export`. ``.npz`` is written as the batches come (memory bounded by the batch); other
    formats gather uint8 VUs (a quarter of the float32 memory) and go through :func:`export`.

    Args:
        generator: module from :func:`~synthvu_core.models.registry.load_generator`, a folder or a name.
        n: number of VUs.
        path: output file (``.npz``, ``.nii.gz``, ``.nii`` or ``.png``).
        position: region or VU name; None = the training prior.
        seed: seed of labels and noise (the same VUs whatever ``batch_size``).
        batch_size: VUs per forward pass.
        compress: deflate the ``.npz`` members.
    """
    gen = _as_generator(generator)
    card = gen.card
    shape = tuple(int(v) for v in gen.config.shape)
    plan = plan_export(path, n, shape, list(card["classes"]), batch_size)
    batches = sample_batches(gen, plan.n, position, seed, plan.batch_size)
    try:
        if plan.suffix == ".npz":
            write_npz_stream(plan.path, batches, plan.n, shape, list(card["classes"]), compress=compress)
        else:
            images = np.empty((plan.n, *shape), dtype=np.uint8)
            labels = np.empty(plan.n, dtype=np.int64)
            for start, x, y in batches:
                images[start : start + len(x)], labels[start : start + len(y)] = x, y
            export(Samples(images, labels, list(card["classes"])), plan.path, card)
    except DiskFullError:
        raise disk_full(plan.path, needed=plan.disk_bytes) from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full(plan.path, needed=plan.disk_bytes) from None
        raise SynthVUError(f"{plan.path}: could not be written ({e.strerror or e})") from None
    return plan


def sample_rows(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, rows: Any, seed: int = 0
) -> np.ndarray:
    """float32 ``[len(rows), C, H, W]``: rows ``rows`` of ``sample(generator, n, seed=seed)`` (positions from the
    training prior) without generating the other ``n - len(rows)`` VUs: the same draws as :func:`sample` (labels
    first, then noise, from one seeded torch generator), so a page can show VU 4,211 of a report's sample."""
    import torch

    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise SelectionError(f"synthetic VU rows must lie in 0..{n - 1}")
    gen = _as_generator(generator)
    g, labels = _draw_labels(gen.card, n, None, seed)
    z = torch.randn(int(n), gen.card["latent_dim"], generator=g)
    idx = torch.from_numpy(rows)
    with torch.no_grad():
        return gen(z[idx], labels[idx]).float().cpu().numpy()
