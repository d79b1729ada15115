"""torchrun / DistributedDataParallel: two CPU processes (gloo) train the model one process trains.

The two processes are started with ``torch.multiprocessing`` and torchrun's environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), and run the ordinary
:func:`~synthvu_core.models.training.train`. Tolerance: after 4 steps every weight of G (its moving
average) and D agrees with the one-process run to 1e-6 (measured: 4e-9; float32 gradients averaged over
two shares instead of summed over one batch differ only in rounding). A one-process run with half the
batch differs by about 1e-3, so the test tells another batch apart.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from synthvu_core.errors import SelectionError
from synthvu_core.models import distributed
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.training import ArchOverrides, TrainConfig, Trainer, train
from tests.test_sampling import tiny_dataset

SHAPE = (3, 16, 16)
TOL = 1e-6


def config(batch: int = 4, **kw) -> TrainConfig:
    return TrainConfig(overrides=ArchOverrides(width=4, d_width=4), batch_size=batch, steps=4, checkpoint_every=2,
                       montage_every=0, device="cpu", weights_dtype="float32", seed=1, **kw)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        train(tiny_dataset(SHAPE), out, config(), progress=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {
        f"{f}/{k}": v for f in ("generator", "discriminator") for k, v in load_file(folder / f"{f}.safetensors").items()
    }


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def test_two_processes_train_the_one_process_model(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    torch.set_num_threads(1)
    one = train(tiny_dataset(SHAPE), tmp_path / "one", config(), progress=False)
    half = train(tiny_dataset(SHAPE), tmp_path / "half", config(batch=2), progress=False)
    two = tmp_path / "two"
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(two)), nprocs=2, join=True)
    w1, w2 = _weights(one), _weights(two)
    assert _max_diff(w1, w2) <= TOL
    assert _max_diff(w1, _weights(half)) > 100 * TOL  # the test can tell another batch apart
    c1, c2 = (json.loads((f / "card.json").read_text()) for f in (one, two))
    assert c1.keys() == c2.keys() and c1["training"]["steps"] == c2["training"]["steps"] == 4
    assert c1["training"]["batch_size"] == c2["training"]["batch_size"] == 4  # the global batch
    assert (two / "training" / "checkpoint").is_dir()  # rank 0 wrote the checkpoint, once


class _FakeGroup(distributed.DistContext):
    pass


def test_private_training_and_uneven_batches_are_refused_before_any_step(tmp_path):
    ctx = _FakeGroup(rank=0, world_size=2, local_rank=0, backend="gloo")
    dp = Trainer(tiny_dataset(SHAPE), tmp_path / "dp", config(dp=DPConfig(noise_multiplier=1.0)))
    with pytest.raises(SelectionError, match="differential privacy with 2 processes"):
        distributed.attach(dp, ctx)
    odd = Trainer(tiny_dataset(SHAPE), tmp_path / "odd", config(batch=3))
    with pytest.raises(SelectionError, match="does not split evenly over 2"):
        distributed.attach(odd, ctx)
    assert dp.step_count == odd.step_count == 0 and dp.dist is None


def test_one_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup("cpu") is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup("cpu") is None
    ctx = distributed.DistContext(rank=1, world_size=3, local_rank=1, backend="gloo")
    a = torch.arange(9)
    assert ctx.shard(a)[0].tolist() == [1, 4, 7]
