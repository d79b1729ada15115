import numpy as np
import torch
from evaluation_fixtures import structured_dataset

from synthvu_core.evaluation import encoder as enc

torch.set_num_threads(1)
CFG = enc.EncoderConfig(epochs=4, width=8, embed_dim=16)


def test_classifier_learns_region_and_embeds(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path))
    ds = structured_dataset(20)
    classes = ds.classes("region")
    model = enc.real_classifier(ds, "region", classes, seed=0, config=CFG)
    hold = ds.indices("holdout")
    acc = (enc.predict(model, ds.images[hold]) == ds.labels("region", classes)[hold]).mean()
    assert acc > 0.9
    e = enc.embed(model, ds.images[hold])
    assert e.shape == (len(hold), CFG.embed_dim) and e.dtype == np.float32
    cached = list((tmp_path / "encoders").glob(f"{ds.fingerprint}-region-s0-*.safetensors"))
    assert len(cached) == 1
    again = enc.real_classifier(ds, "region", classes, seed=0, config=CFG)  # from the cache
    np.testing.assert_array_equal(enc.embed(again, ds.images[hold]), e)


def test_training_is_seeded():
    ds = structured_dataset(8)
    y = ds.labels("region")
    a = enc.embed(enc.train_classifier(ds.images, y, 3, config=CFG, seed=1), ds.images[:5])
    b = enc.embed(enc.train_classifier(ds.images, y, 3, config=CFG, seed=1), ds.images[:5])
    c = enc.embed(enc.train_classifier(ds.images, y, 3, config=CFG, seed=2), ds.images[:5])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_one_class_is_not_trained():
    ds = structured_dataset(4, levels=("L2/L3", "L4/L5"))
    model = enc.train_classifier(ds.images, ds.labels("region"), 1, config=CFG)
    assert model.trained is False
    assert enc.embed(model, ds.images[:3]).shape == (3, CFG.embed_dim)


def test_a_seeded_build_is_not_disturbed_by_cached_loads_in_another_thread(tmp_path, monkeypatch):
    """The evaluation's two workers build classifiers at the same time: loading a cached one draws torch's global
    generator too, so it must wait for the lock that a seeded build holds from its seed to its weights."""
    import threading

    monkeypatch.setenv("SYNTHVU_CACHE", str(tmp_path))
    ds = structured_dataset(8)
    classes = ds.classes("region")
    enc.real_classifier(ds, "region", classes, seed=0, config=CFG)  # trained once, then loaded from the cache
    done = threading.Event()

    def load_many():
        while not done.is_set():
            enc.real_classifier(ds, "region", classes, seed=0, config=CFG)

    one_class = np.zeros(len(ds.images), dtype=np.int64)  # nothing to learn: the model keeps its seeded weights
    seeded = enc.train_classifier(ds.images, one_class, 3, config=CFG, seed=7)
    first = {k: v.clone() for k, v in seeded.state_dict().items()}
    loader = threading.Thread(target=load_many)
    loader.start()
    try:
        for _ in range(60):
            state = enc.train_classifier(ds.images, one_class, 3, config=CFG, seed=7).state_dict()
            assert all(torch.equal(state[k], first[k]) for k in first)
    finally:
        done.set()
        loader.join()


def test_the_channels_last_rows_made_once_give_the_batches_of_the_per_batch_layout_copy():
    """Training takes its batches from rows put in channels-last layout once: the same values and memory strides as
    the per-batch copy it replaces, so the convolutions (and every report number) are the same."""
    import torch

    x = np.random.default_rng(0).integers(0, 256, size=(10, 9, 8, 8), dtype=np.uint8)
    rows = enc.channels_last_rows(x)
    for batch in (x[[1, 4, 7]], enc.as_float(x[[0, 2]])):
        want = torch.from_numpy(enc.as_float(batch)).contiguous(memory_format=torch.channels_last)
        got = enc._batch(batch)
        assert torch.equal(got, want) and got.stride() == want.stride()
    got = enc._nhwc_batch(rows[[1, 4, 7]])
    want = torch.from_numpy(enc.as_float(x[[1, 4, 7]])).contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want) and got.stride() == want.stride()


def test_no_step_is_taken_on_a_sliver_of_a_batch(monkeypatch):
    """66 train VUs (a 15-patient cohort) in batches of 64 made every epoch a batch of 64 and one of 2: half the steps
    on 2 VUs, whose BatchNorm statistics are noise. A last batch under MIN_BATCH joins the one before it."""
    assert enc.batch_starts(66, 64) == [0]
    assert enc.batch_starts(88, 64) == [0, 64]  # 24 VUs: a batch of its own
    assert enc.batch_starts(5520, 64)[-1] == 5504  # 16 VUs: MIN_BATCH, kept
    assert enc.batch_starts(138, 64) == [0, 64]
    assert enc.batch_starts(10, 64) == [0]
    sizes: list[int] = []
    real = enc._nhwc_batch
    monkeypatch.setattr(enc, "_nhwc_batch", lambda rows: sizes.append(len(rows)) or real(rows))
    ds = structured_dataset(22)
    images, y = ds.images[:66], ds.labels("region")[:66]  # 66 of its VUs
    enc.train_classifier(images, y, 3, config=enc.EncoderConfig(epochs=1, width=8, embed_dim=16, min_steps=3), seed=0)
    assert sizes and min(sizes) >= enc.MIN_BATCH and sum(sizes) == 66 * len(sizes), sizes
    assert len(sizes) == 3, "min_steps 3 at one batch an epoch: the schedule counts the merged batches"
