"""3-D evaluation of sub-volume generators: a 3-D position classifier for TRTR / TSTR / TRTS and fidelity in its
embedding.

The classifier (:class:`VolumeClassifier`) is a small 3-D CNN over a sub-volume ``[D, H, W]`` (average-pooled by
``pool`` first: the position of a disc is a coarse question), three strided convolutions with group norm, global
average pooling to a ``embed_dim`` embedding and a linear head. One definition serves the three settings:

* TRTR: trained on the real train split, tested on the real holdout;
* TSTR: trained on as many synthetic sub-volumes as the real train split has, with its label distribution
  (:func:`~synthvu_core.evaluation.utility.matched_synthetic_subset`), tested on the real holdout;
* TRTS: the real-trained classifier tested on the synthetic sub-volumes.

Balanced accuracy is the mean over classifier seeds, with a 95 % interval over bootstrap replicates of the
holdout patients and seeds (:func:`~synthvu_core.evaluation.utility.patient_bootstrap`), the TSTR/TRTR ratio with
the paired interval, and chance (1 / the classes present in the holdout); a TSTR interval that reaches chance is
"not useful for this task". Fidelity (Fréchet distance, precision / recall / density / coverage, k = 5) compares
the real holdout with the synthetic sub-volumes in the embedding of the first real-trained classifier
(:func:`~synthvu_core.evaluation.fidelity.fidelity_scores`). The VU evaluation's numerics are not touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synthvu_core.evaluation import fidelity, utility


@dataclass(frozen=True)
class VolumeClassifierConfig:
    """The 3-D position classifier: widths, pooling and its short training."""

    width: int = 8  # channels of the first convolution (doubled twice)
    embed_dim: int = 32
    pool: int = 2  # average pooling of the input before the first convolution
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3


def build_volume_classifier(n_classes: int, config: VolumeClassifierConfig = VolumeClassifierConfig()) -> Any:
    """An untrained :class:`VolumeClassifier` (torch imported here, not at module level)."""
    from torch import nn

    class VolumeClassifier(nn.Module):
        """``[N, D, H, W]`` in [-1, 1] -> logits ``[N, K]``; :meth:`embed` gives the ``[N, embed_dim]`` features."""

        def __init__(self) -> None:
            super().__init__()
            w = config.width
            layers: list[nn.Module] = [nn.AvgPool3d(config.pool)] if config.pool > 1 else []
            for c_in, c_out in ((1, w), (w, 2 * w), (2 * w, 4 * w)):
                layers += [nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(4, c_out), nn.SiLU()]
            layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4 * w, config.embed_dim), nn.SiLU()]
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(config.embed_dim, n_classes)

        def embed(self, x):
            return self.features(x.unsqueeze(1))

        def forward(self, x):
            return self.head(self.embed(x))

    return VolumeClassifier()


def _as_float(images: np.ndarray, idx: np.ndarray) -> Any:
    import torch

    x = np.asarray(images[idx])
    x = x.astype(np.float32) / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return torch.from_numpy(x)


def train_volume_classifier(
    images: np.ndarray, labels: np.ndarray, n_classes: int, *, seed: int = 0,
    config: VolumeClassifierConfig = VolumeClassifierConfig(),
) -> Any:
    """A classifier trained on ``images`` (uint8 or float in [-1, 1], ``[N, D, H, W]``) and ``labels`` ``[N]``;
    class-balanced cross-entropy, seeded (initialisation and batch order)."""
    import torch

    torch.manual_seed(seed)
    model = build_volume_classifier(n_classes, config)
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
    weight = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(config.epochs):
        order = rng.permutation(len(labels))
        for s in range(0, len(order), config.batch_size):
            idx = np.sort(order[s : s + config.batch_size])
            loss = torch.nn.functional.cross_entropy(model(_as_float(images, idx)), torch.from_numpy(labels[idx]),
                                                     weight=weight.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def _batched(model: Any, images: np.ndarray, fn: str, batch: int = 64) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            y = getattr(model, fn)(_as_float(images, np.arange(s, min(s + batch, len(images)))))
            out.append((y.argmax(1) if fn == "forward" else y).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def predict(model: Any, images: np.ndarray) -> np.ndarray:
    """Predicted classes ``[N]``."""
    return _batched(model, images, "forward").astype(np.int64)


def embed(model: Any, images: np.ndarray) -> np.ndarray:
    """Embeddings ``[N, embed_dim]`` (float64)."""
    return _batched(model, images, "embed").astype(np.float64)


@dataclass
class VolumeEvaluation:
    """Scalars (``utility.*``, ``fidelity.*``) and what was measured; :meth:`as_dict` is the JSON report."""

    scalars: dict[str, float | None]
    usefulness: str
    counts: dict[str, int]
    seeds: list[int]
    classifier: dict[str, Any]
    reasons: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (None, None)


def evaluate_volumes(  # long: three settings over seeds, then the bootstrap and fidelity; one sitting
    real: np.ndarray, real_labels: np.ndarray, real_patients: np.ndarray, parts: np.ndarray,
    synthetic: np.ndarray, synthetic_labels: np.ndarray, n_classes: int, *, seeds: Sequence[int] = (0, 1, 2),
    config: VolumeClassifierConfig = VolumeClassifierConfig(), n_boot: int = 2000,
) -> VolumeEvaluation:
    """TRTR / TSTR / TRTS and fidelity of ``synthetic`` sub-volumes against a real dataset's train and holdout.

    ``real`` ``[N, D, H, W]`` with ``real_labels``, ``real_patients`` and ``parts`` (``train`` / ``holdout`` /
    ``reference``) per row; ``synthetic`` ``[M, D, H, W]`` with ``synthetic_labels``.
    """
    tr, ho = np.flatnonzero(parts == "train"), np.flatnonzero(parts == "holdout")
    y_tr, y_ho = np.asarray(real_labels)[tr], np.asarray(real_labels)[ho]
    sub = utility.matched_synthetic_subset(y_tr, synthetic_labels, n_classes, seed=0)
    x_tr = np.asarray(real[tr])
    x_ho = np.asarray(real[ho])
    preds: dict[str, list[np.ndarray]] = {"trtr": [], "tstr": [], "trts": []}
    first_real = None
    for seed in seeds:
        m_real = train_volume_classifier(x_tr, y_tr, n_classes, seed=seed, config=config)
        m_syn = train_volume_classifier(synthetic[sub], np.asarray(synthetic_labels)[sub], n_classes, seed=seed,
                                        config=config)
        preds["trtr"].append(predict(m_real, x_ho))
        preds["tstr"].append(predict(m_syn, x_ho))
        preds["trts"].append(predict(m_real, synthetic))
        first_real = first_real or m_real
    scalars: dict[str, float | None] = {}
    for name in ("trtr", "tstr", "trts"):
        truth = np.asarray(synthetic_labels) if name == "trts" else y_ho
        results = [utility.classification_result(truth, p, n_classes) for p in preds[name]]
        scalars[f"utility.{name}.balanced_accuracy"] = utility.pooled(results, n_classes).balanced_accuracy
    boot = utility.patient_bootstrap(y_ho, {k: np.stack(preds[k]) for k in ("trtr", "tstr")},
                                     np.asarray(real_patients)[ho], n_classes, n_boot=n_boot)
    for name in ("trtr", "tstr"):
        lo, hi = _interval(boot[name])
        key = f"utility.{name}.balanced_accuracy"
        scalars[f"{key}_ci_low"], scalars[f"{key}_ci_high"] = lo, hi
    trtr, tstr = scalars["utility.trtr.balanced_accuracy"], scalars["utility.tstr.balanced_accuracy"]
    scalars["utility.tstr_over_trtr"] = tstr / trtr if trtr and tstr is not None else None
    with np.errstate(invalid="ignore", divide="ignore"):
        lo, hi = _interval(boot["tstr"] / boot["trtr"])
    scalars["utility.tstr_over_trtr_ci_low"], scalars["utility.tstr_over_trtr_ci_high"] = lo, hi
    chance = utility.chance_level(y_ho, n_classes)
    scalars["utility.chance"] = chance
    u = utility.usefulness(tstr, scalars["utility.tstr.balanced_accuracy_ci_low"],
                           scalars["utility.tstr.balanced_accuracy_ci_high"], chance)
    fid, reasons = fidelity.fidelity_scores(embed(first_real, x_ho), embed(first_real, synthetic))
    scalars.update({f"fidelity.{k}": v for k, v in fid.items()})
    counts = {"real_train": int(len(tr)), "real_holdout": int(len(ho)), "synthetic": int(len(synthetic)),
              "synthetic_for_tstr": int(len(sub)),
              "holdout_patients": int(len(np.unique(np.asarray(real_patients)[ho])))}
    return VolumeEvaluation(scalars, u.text, counts, list(seeds), asdict(config), reasons)


#: The sub-volume report's file in a generator's ``report/`` folder (beside, never in place of, a VU report).
VOLUME_REPORT = "volume_report.json"
PRIVACY_NOT_EVALUATED = (
    "not evaluated: the membership attacks, their controls and verdicts are not run on sub-volumes yet; "
    "no privacy claim is made for this generator"
)


def is_volume_card(card: dict[str, Any]) -> bool:
    """True for a generator of 3-D sub-volumes (``architecture.spatial_dims == 3``)."""
    return (card.get("architecture") or {}).get("spatial_dims") == 3


def evaluate_volume_generator(
    folder: Any, *, dataset: Any = None, n_synthetic: int | None = None, seed: int = 0,
    seeds: Sequence[int] = (0, 1, 2), config: VolumeClassifierConfig = VolumeClassifierConfig(),
) -> dict[str, Any]:
    """Sample a sub-volume generator, run :func:`evaluate_volumes` against its dataset and write
    ``report/volume_report.json`` (atomically). ``n_synthetic`` defaults to the real train split's size."""
    import time
    from pathlib import Path

    from synthvu_core.data.build import dataset_of_card
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import sample_uint8
    from synthvu_core.storage import write_json

    folder = Path(folder)
    gen = load_generator(folder)
    card = gen.card
    ds = VUDataset.load(dataset) if dataset is not None else dataset_of_card(card, folder)
    split = (card.get("dataset") or {}).get("split") or {}
    from synthvu_core.data.dataset import SplitConfig

    ds = ds.with_split(SplitConfig.from_card(split) or ds.split_config())
    classes = list(card["classes"])
    labels = ds.labels(card["scheme"], classes)
    n = int(n_synthetic or len(ds.indices("train")))
    t0 = time.process_time()
    syn = sample_uint8(gen, n, seed=seed, batch_size=16)  # a 3-D batch of 256 would need gigabytes
    sample_cpu_s = time.process_time() - t0
    keep = labels >= 0
    ev = evaluate_volumes(ds.images, labels, ds.units["patient_id"].astype(str).to_numpy(),
                          np.where(keep, ds.units["split"].to_numpy(), "none"), syn.images, syn.labels, len(classes),
                          seeds=seeds, config=config)
    report = {
        "model": card.get("name", folder.name),
        "dataset": ds.fingerprint,
        "classes": classes,
        "shape": list(ds.shape),
        "n_synthetic": n,
        "seed": seed,
        "sampling": {"steps": gen.sampling_steps, "guidance": gen.guidance, "cpu_seconds": round(sample_cpu_s, 1)},
        **ev.as_dict(),
        "privacy": PRIVACY_NOT_EVALUATED,
    }
    write_json(folder / "report" / VOLUME_REPORT, report)
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report's utility and fidelity as a few printed lines."""
    s = report["scalars"]

    def ci(key: str) -> str:
        v, lo, hi = s.get(key), s.get(f"{key}_ci_low"), s.get(f"{key}_ci_high")
        if v is None:
            return "not estimable"
        return f"{v:.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")

    fd = s.get("fidelity.frechet_distance")
    return [
        f"TRTR {ci('utility.trtr.balanced_accuracy')}, TSTR {ci('utility.tstr.balanced_accuracy')}, "
        f"TRTS {ci('utility.trts.balanced_accuracy')}, TSTR/TRTR {ci('utility.tstr_over_trtr')}, chance "
        f"{s['utility.chance']:.3f}" if s.get("utility.chance") else "chance not estimable",
        report["usefulness"],
        "Fréchet distance " + ("not estimable" if fd is None else f"{fd:.3f}") + ", precision / recall / density / "
        "coverage " + " / ".join("—" if s.get(f"fidelity.{k}") is None else f"{s[f'fidelity.{k}']:.2f}"
                                 for k in ("precision", "recall", "density", "coverage")),
        f"privacy: {report['privacy']}",
    ]
