"""The VU-position classifier: one compact CNN for TRTR / TSTR / TRTS and the embedding space.

Input ``[N, C, H, W]`` float in [-1, 1] (uint8 arrays are read as the dataset stores them). Four
3x3 stride-2 convolutions (16, 32, 64, 64 channels, BatchNorm, ReLU), global average pooling, a
64-d fully connected layer (ReLU) -- the **embedding** -- and a linear class head, in torch's
channels-last layout (measured: 9.1 against 12.0 CPU-s for one training on 3,000 VUs). Training: Adam,
class-weighted cross-entropy (inverse class frequency, so rare positions count), seeded shuffling.
About 4 M multiply-adds per 9x64x64 VU, so a few thousand VUs train in seconds on two CPU cores.

The classifier trained on the real train split is cached per dataset fingerprint, train patients,
scheme, classes, seed and settings in ``$SYNTHVU_CACHE`` (or ``~/.cache/synthvu``)``/encoders/``
as safetensors, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.storage import atomic_path

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset


@dataclass(frozen=True)
class EncoderConfig:
    """Training settings of the VU-position classifier."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    embed_dim: int = 64
    min_steps: int = 150  # small training sets get more epochs, so the network (and BatchNorm) settles


#: Torch intra-op threads while the classifier trains or embeds. The network is small (about 4 M multiply-adds
#: per VU): a second thread buys little and, on a shared 2-core machine, costs far more than it buys (training
#: on 3,000 VUs: 15 CPU-s with one thread, 94 CPU-s and 4.6x the wall time with two).
CLASSIFIER_THREADS = 1

#: Held while a classifier is seeded and built (and while a cached one is built before its weights are loaded):
#: torch's default generator is process-wide, and the evaluation's two workers may build classifiers at the same time.
_INIT_LOCK = threading.Lock()


@contextmanager
def torch_threads(n: int = CLASSIFIER_THREADS) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (at most the current number), restoring them after.

    Args:
        n: threads for the block.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache_dir() -> Path:
    """The cache folder: ``$SYNTHVU_CACHE`` or ``~/.cache/synthvu``."""
    return Path(os.environ.get("SYNTHVU_CACHE") or Path.home() / ".cache" / "synthvu")


def build_classifier(in_channels: int, n_classes: int, config: EncoderConfig = EncoderConfig()) -> Any:
    """A fresh (untrained) classifier module; ``forward(x) -> logits [N, K]``, ``embed(x) -> [N, embed_dim]``."""
    import torch
    from torch import nn

    w = config.width

    class VUClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()

            def block(i: int, o: int) -> list[nn.Module]:
                return [nn.Conv2d(i, o, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

            self.features = nn.Sequential(
                *block(in_channels, w), *block(w, 2 * w), *block(2 * w, 4 * w), *block(4 * w, 4 * w)
            )
            self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, config.embed_dim), nn.ReLU(inplace=True))
            self.head = nn.Linear(config.embed_dim, max(n_classes, 1))
            self.n_classes = n_classes

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            h = self.features(x)
            return self.embedding(torch.nn.functional.adaptive_avg_pool2d(h, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(x))

    # channels-last convolutions: about 25 % less CPU per training step than the default layout on x86 CPUs
    return VUClassifier().to(memory_format=torch.channels_last)


def _new_classifier(in_channels: int, n_classes: int, config: EncoderConfig, seed: int | None = None) -> Any:
    """:func:`build_classifier` under :data:`_INIT_LOCK` (seeded first when ``seed`` is given): building draws
    torch's process-wide generator, so no other worker may draw it between a seed and the build it seeds."""
    import torch

    with _INIT_LOCK:
        if seed is not None:
            torch.manual_seed(seed)
        return build_classifier(in_channels, n_classes, config)


def as_float(x: np.ndarray) -> np.ndarray:
    """float32 copy in [-1, 1] (uint8 input is mapped as the dataset stores VUs)."""
    from synthvu_core.data.dataset import to_float

    x = np.asarray(x)
    if x.dtype == np.uint8:
        return to_float(x)
    return x.astype(np.float32, copy=False)


def train_classifier(
    images: np.ndarray, labels: np.ndarray, n_classes: int, *, config: EncoderConfig = EncoderConfig(), seed: int = 0
) -> Any:
    """Train on ``images`` ``[N, C, H, W]`` with integer ``labels`` ``[N]`` in ``0..n_classes-1``.

    With fewer than two classes present nothing can be learned: the module is returned untrained
    (its embedding is then a fixed random convolutional feature map) with ``trained = False``.
    """
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    model = _new_classifier(int(np.shape(images)[1]), n_classes, config, seed)
    model.trained = False
    ok = labels >= 0
    present = np.unique(labels[ok])
    if len(present) < 2 or ok.sum() < 2:
        model.eval()
        return model
    idx_all = np.flatnonzero(ok)
    counts = np.bincount(labels[ok], minlength=n_classes).astype(np.float64)
    weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(present), 0.0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float32))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(seed)
    per_epoch = len(batch_starts(len(idx_all), config.batch_size))
    epochs = max(config.epochs, int(np.ceil(config.min_steps / per_epoch)))
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(steps, 1))
    model.train()
    with torch_threads():
        _fit(model, images, labels, idx_all, epochs, config, rng, opt, sched, loss_fn)
    model.eval()
    model.trained = True
    return model


def _fit(
    model: Any, images: np.ndarray, labels: np.ndarray, idx_all: np.ndarray, epochs: int, config: EncoderConfig,
    rng: np.random.Generator, opt: Any, sched: Any, loss_fn: Any,
) -> None:
    """The training epochs of :func:`train_classifier` (seeded shuffling, one scheduler step per batch)."""
    import torch

    nhwc = channels_last_rows(images)  # once per training, not once per batch and epoch
    starts = batch_starts(len(idx_all), config.batch_size)
    for _ in range(epochs):
        order = idx_all[rng.permutation(len(idx_all))]
        for s, e in zip(starts, [*starts[1:], len(order)], strict=True):
            b = np.sort(order[s:e])
            if len(b) < 2:
                sched.step()
                continue
            x = _nhwc_batch(nhwc[b])
            y = torch.from_numpy(labels[b])
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            sched.step()


#: The fewest VUs the classifier takes a step on: BatchNorm's batch statistics of fewer are noise (its error rises
#: steeply below 16 per batch; Wu & He, Group Normalization, 2018). An epoch's last, smaller batch that would hold
#: fewer joins the batch before it. Without this, 66 train VUs (a 15-patient cohort) made every epoch a batch of 64
#: and one of 2, and half the classifier's steps were taken on 2 VUs (docs/real-data.md, "The classifier's batch of 2").
MIN_BATCH = 16


def batch_starts(n: int, batch_size: int) -> list[int]:
    """Where each batch of an epoch of ``n`` VUs starts: every ``batch_size``, except that a last batch of fewer than
    :data:`MIN_BATCH` VUs joins the one before it (a set smaller than that is one batch)."""
    starts = list(range(0, n, batch_size)) or [0]
    if len(starts) > 1 and n - starts[-1] < MIN_BATCH:
        starts.pop()
    return starts


def channels_last_rows(images: np.ndarray) -> np.ndarray:
    """``images [N, C, H, W]`` as a C-contiguous ``[N, H, W, C]`` array, in their own dtype: the classifier's
    channels-last memory layout, made once (on uint8 VUs a quarter of the bytes of the float batches)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(images), 1, -1))


def _nhwc_batch(rows: np.ndarray) -> Any:
    """A float ``[N, C, H, W]`` tensor in channels-last memory from rows of :func:`channels_last_rows`: the same
    values and strides as ``_batch`` of the same VUs, without its per-batch layout copy."""
    import torch

    return torch.from_numpy(as_float(rows)).permute(0, 3, 1, 2)


def _batch(images: np.ndarray) -> Any:
    """A float tensor of ``images`` in the classifier's channels-last layout."""
    return _nhwc_batch(channels_last_rows(images))


def _batched(model: Any, images: np.ndarray, fn: str, batch: int = 512) -> np.ndarray:
    import torch

    out = []
    model.eval()
    with torch.no_grad(), torch_threads():
        for s in range(0, len(images), batch):
            out.append(getattr(model, fn)(_batch(images[s : s + batch])).numpy())
    if not out:
        return np.empty((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def embed(model: Any, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """Penultimate-layer embedding ``[N, embed_dim]`` float32."""
    return _batched(model, images, "embed", batch)


def predict(model: Any, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """Predicted class ``[N]`` (argmax of the logits)."""
    if len(images) == 0:
        return np.empty(0, dtype=np.int64)
    return _batched(model, images, "forward", batch).argmax(1).astype(np.int64)


def _cache_key(
    dataset: VUDataset, scheme: str, classes: list[str], seed: int, config: EncoderConfig, rows: np.ndarray
) -> str:
    from synthvu_core.evaluation.provenance import code_digest

    train_patients = sorted(set(dataset.units["patient_id"].astype(str).to_numpy()[rows]))
    blob = json.dumps(
        {
            "code": code_digest(("encoder",)),  # the training code and torch's / numpy's versions
            "fp": dataset.fingerprint,
            "scheme": scheme,
            "classes": list(classes),
            "train": train_patients,
            "seed": seed,
            "config": asdict(config),
        },
        sort_keys=True,
    )
    return f"{dataset.fingerprint}-{scheme}-s{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def real_classifier(
    dataset: VUDataset,
    scheme: str,
    classes: list[str],
    *,
    seed: int = 0,
    config: EncoderConfig = EncoderConfig(),
    cache: bool = True,
    rows: np.ndarray | None = None,
) -> Any:
    """The classifier trained on the real train split of ``dataset`` (a ``VUDataset``), cached.

    Labels are ``dataset.labels(scheme, classes)``; VUs whose position is not in ``classes`` are
    left out of training. ``rows`` trains on other dataset rows instead (the attack encoder is
    trained on reference patients); the cache key names the patients trained on.
    """
    import torch
    from safetensors.torch import load_file, save_file

    in_ch = int(dataset.images.shape[1])
    train = dataset.indices("train") if rows is None else np.asarray(rows, dtype=np.int64)
    path = cache_dir() / "encoders" / f"{_cache_key(dataset, scheme, classes, seed, config, train)}.safetensors"
    if cache and path.is_file():
        try:
            model = _new_classifier(in_ch, len(classes), config)
            model.load_state_dict(load_file(str(path)))
            meta = json.loads(path.with_suffix(".json").read_text())
            model.trained = bool(meta.get("trained", True))
            model.eval()
            return model
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained, never trusted
            pass
    model = train_classifier(
        dataset.images[train], dataset.labels(scheme, classes)[train], len(classes), config=config, seed=seed
    )
    if cache:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps({"trained": model.trained, "classes": list(classes), "scheme": scheme}))
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
    return model
