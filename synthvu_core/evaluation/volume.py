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

Privacy (:func:`volume_privacy`): the study's pairwise attack in pixel space (the VU evaluation's primary attack),
on the VU evaluation's membership design (:func:`~synthvu_core.evaluation.design.membership_design`: members from
training patients, non-members from holdout patients, as many VUs each), its distances streamed in blocks
(:func:`~synthvu_core.evaluation.privacy.summarise_distances`), its metrics, graded positive controls (1 / 5 / 20 %
of the synthetic set replaced by lightly perturbed members), power on the 5 % control and the independent negative
control, all through the VU evaluation's own functions. One attack in one space: the other attacks and spaces,
the realistic control and the discriminator are not run on sub-volumes, and the reading says so.

Numerics (:func:`evaluate_volume_generator`): sampling, the classifiers and the attack run on the VU evaluation's
fixed thread count (:func:`~synthvu_core.evaluation.threads.fixed_threads`; the samples on two lanes, the noise drawn
in order), and the report records :func:`~synthvu_core.evaluation.threads.numeric_environment` as ``numerics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.evaluation import fidelity, utility
from synthvu_core.names import VOLUME_REPORT

if TYPE_CHECKING:
    from pathlib import Path

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.evaluation.design import MembershipDesign
    from synthvu_core.evaluation.privacy import AttackResult


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


#: What the privacy reading of a sub-volume generator does not cover (said with every reading).
PRIVACY_SCOPE = (
    "one attack in one space (the study's pairwise attack in pixel space, the VU evaluation's primary); the "
    "distribution, DOMIAS and embedding/UMAP attacks, the realistic control and the discriminator attack are not "
    "run on sub-volumes"
)


def _pairwise_pixel_scores(candidates: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Pairwise attack scores ``-d_min / median`` of each candidate against ``synthetic`` (pixel space, streamed)."""
    from synthvu_core.evaluation import privacy

    return privacy.pairwise_scores(privacy.summarise_distances(candidates, synthetic, quantiles=()))[0]


def _control_sets(
    dataset: VUDataset, design: MembershipDesign, synthetic: np.ndarray, seed: int
) -> dict[str, np.ndarray | str]:
    """The graded mixtures (float32 copies of ``synthetic`` with members planted) and the independent control (or
    why there is none), by control name."""
    from synthvu_core.evaluation.controls import graded_replacements, independent_samples
    from synthvu_core.evaluation.encoder import as_float
    from synthvu_core.names import GRADED_FRACTIONS, INDEPENDENT_CONTROL, graded_control

    members = design.candidates[design.is_member]
    out: dict[str, np.ndarray | str] = {}
    base = as_float(synthetic)
    for f in GRADED_FRACTIONS:
        pos, imgs = graded_replacements(dataset, len(synthetic), members, f, seed=seed)
        mix = base.copy()
        mix[pos] = imgs
        out[graded_control(f)] = mix
    indep, why = independent_samples(dataset, design.control_rows, len(synthetic), seed=seed)
    out[INDEPENDENT_CONTROL] = indep if indep is not None else str(why)
    return out


def privacy_reading(own: dict[str, Any], power: dict[str, Any], independent: dict[str, Any] | None,
                    per_side: int) -> tuple[str, str]:
    """``(level, text)`` of the one attack: a key of :data:`~synthvu_core.evaluation.verdicts.LEVEL_WORDS`.

    The VU evaluation's reading of its primary attack, alone: without power on the 5 % control nothing is read
    ("inconclusive"); a significant AUC above 0.5 is a leak at AUC >= ``LEAK_AUC``, else caution; an independent
    control off chance is a design imbalance; fewer patients per side than the design needs (or than
    ``MIN_PATIENTS_PER_SIDE``) is inconclusive; otherwise ok.
    """
    from synthvu_core.evaluation import verdicts as v

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    auc, lo, hi, p = (own.get(k) for k in ("auc", "auc_ci_low", "auc_ci_high", "p_value"))
    ci = f"AUC {f(auc)} [{f(lo)}, {f(hi)}], p = {f(p)}"
    if not power.get("has_power"):
        return "inconclusive", f"the attack does not detect the 5 % control on these sub-volumes ({ci}): no power"
    if p is not None and p < v.ALPHA:
        level = "leak" if auc is not None and auc >= v.LEAK_AUC else "caution"
        return level, f"the attack separates training from holdout patients ({ci})"
    i_lo, i_hi = (independent or {}).get("auc_ci_low"), (independent or {}).get("auc_ci_high")
    if i_lo is not None and i_hi is not None and not i_lo <= 0.5 <= i_hi:
        return "imbalance", f"the independent control is off chance (AUC CI [{f(i_lo)}, {f(i_hi)}]): the design is " \
                            f"imbalanced ({ci})"
    needed = max(v.MIN_PATIENTS_PER_SIDE, power.get("patients_needed") or 0)
    if per_side < needed:
        return "inconclusive", f"no membership signal ({ci}), but {per_side} patients per side are fewer than the " \
                               f"{needed} the design needs"
    return "ok", f"no membership signal ({ci}); the attack detects the 5 % control"


def volume_privacy(dataset: VUDataset, labels: np.ndarray, synthetic: np.ndarray, *, seed: int = 0, n_boot: int = 1000,
                   n_perm: int = 5000) -> dict[str, Any]:
    """The pairwise pixel attack on a sub-volume generator's ``synthetic`` set ``[M, D, H, W]`` with its controls.

    ``dataset`` is the real ``VUDataset`` (its split decides members and non-members), ``labels`` its class per row
    (``-1``: none). Returns the report's ``privacy`` section: design counts, the attack's metrics, each control's,
    power, the reading and the CPU seconds it took.
    """
    import time

    from synthvu_core.evaluation.design import membership_design
    from synthvu_core.evaluation.inference import permutation_test
    from synthvu_core.evaluation.verdicts import CURVE_KEYS, PRIMARY, attack_metrics, power_curves
    from synthvu_core.names import INDEPENDENT_CONTROL

    t0 = time.process_time()
    d = membership_design(dataset, labels, seed=seed)
    cand = np.asarray(dataset.images[d.candidates])
    name = PRIMARY  # "pairwise/pixel"

    def metrics(syn: np.ndarray) -> AttackResult:
        scores = _pairwise_pixel_scores(cand, syn)
        test = permutation_test({name: scores}, d.is_member, d.patient, n_perm=n_perm, seed=seed)
        return attack_metrics(scores, d.is_member, d.patient, test=test, name=name, n_boot=n_boot, seed=seed)

    own = metrics(np.asarray(synthetic))
    controls: dict[str, AttackResult] = {}
    reasons: dict[str, str] = {}
    for control, syn in _control_sets(dataset, d, synthetic, seed).items():
        if isinstance(syn, str):
            reasons[control] = syn
        else:
            controls[control] = metrics(syn)
    power = power_curves({k: {name: r} for k, r in controls.items()}, {name: own}, d.is_member, d.patient)[name]
    counts = d.counts()
    indep = controls[INDEPENDENT_CONTROL].scalars if INDEPENDENT_CONTROL in controls else None
    level, text = privacy_reading(own.scalars, power, indep,
                                  min(counts["n_member_patients"], counts["n_nonmember_patients"]))
    return {
        "attack": name, "level": level, "text": f"{text}; {PRIVACY_SCOPE}", "design": {**counts, "notes": d.notes},
        "scalars": own.scalars, "reasons": own.reasons,
        "controls": {k: r.scalars for k, r in controls.items()}, "control_reasons": reasons,
        "power": {k: power[k] for k in ("has_power", "status", "power_text", "patients_needed", *CURVE_KEYS)},
        "n_synthetic": int(len(synthetic)), "cpu_seconds": round(time.process_time() - t0, 1),
    }


def is_volume_card(card: dict[str, Any]) -> bool:
    """True for a generator of 3-D sub-volumes (``architecture.spatial_dims == 3``)."""
    return (card.get("architecture") or {}).get("spatial_dims") == 3


def report_of(report: Any, card: Mapping[str, Any]) -> bool:
    """Whether a sub-volume report (JSON) belongs to the generator of ``card``: its name, and its dataset or the
    generator's dataset that a recognised rebuild stood in for."""
    own = (card.get("dataset") or {}).get("fingerprint")
    return isinstance(report, dict) and report.get("model") == card.get("name") and own is not None and own in (
        report.get("dataset"), report.get("generator_dataset"))


def load_volume_report(folder: str | Path, card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The saved ``report/volume_report.json`` of the sub-volume generator in ``folder`` (its ``card``); None where
    there is none; :class:`ReportError` (one line naming the file) where it cannot be read or belongs to another
    generator or dataset."""
    import json
    from pathlib import Path

    from synthvu_core.errors import ReportError
    from synthvu_core.names import REPORT_DIR

    path = Path(folder) / REPORT_DIR / VOLUME_REPORT
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ReportError(f"{path}: not a readable sub-volume report ({type(e).__name__}); re-run `python -m "
                          f"synthvu_core evaluate {folder}`") from None
    if not report_of(report, card) or not isinstance(report.get("scalars"), dict):
        raise ReportError(f"{path}: written for another generator or dataset; re-run `python -m synthvu_core "
                          f"evaluate {folder}`")
    return report


def measured_line(report: Mapping[str, Any]) -> str:
    """What a sub-volume report measured on: synthetic sub-volumes, seed, sampler, and the classifier's data."""
    c, smp = report.get("counts") or {}, report.get("sampling") or {}
    return (f"model {report.get('model', '?')} · dataset {report.get('dataset', '?')} · sub-volume evaluation: "
            f"{report.get('n_synthetic', '?')} synthetic sub-volumes, seed "
            f"{report.get('seed', '?')}, {smp.get('steps', '?')} flow steps, guidance {smp.get('guidance', '?')}; "
            f"a 3-D position classifier trained on {c.get('real_train', '?')} real or "
            f"{c.get('synthetic_for_tstr', '?')} synthetic sub-volumes, tested on {c.get('real_holdout', '?')} real "
            f"holdout sub-volumes of {c.get('holdout_patients', '?')} patients (classifier seeds "
            f"{report.get('seeds')}; 95% interval over holdout patients and seeds)")


def _check_dataset(folder: Path, card: dict[str, Any], ds: VUDataset) -> None:
    """Refuse a dataset that is not the generator's (same bytes, or a rebuild its card's sketch recognises)."""
    from synthvu_core.data.sketch import same_dataset
    from synthvu_core.errors import CheckpointError
    from synthvu_core.names import CARD_FILE

    info = card.get("dataset") or {}
    if not same_dataset(ds, info.get("fingerprint"), info.get("sketch"), notice=True):
        raise CheckpointError(f"{folder / CARD_FILE}: generator was trained on dataset {info.get('fingerprint')}, "
                              f"but the dataset given is {ds.fingerprint}")


def evaluate_volume_generator(
    folder: str | Path, *, dataset: str | Path | None = None, n_synthetic: int | None = None, seed: int = 0,
    seeds: Sequence[int] = (0, 1, 2), config: VolumeClassifierConfig = VolumeClassifierConfig(),
    privacy: bool = True,
) -> dict[str, Any]:
    """Sample a sub-volume generator, run :func:`evaluate_volumes` and :func:`volume_privacy` (unless ``privacy``
    is False) against its dataset and write ``report/volume_report.json`` (atomically). ``n_synthetic`` defaults
    to the real train split's size."""
    import time
    from pathlib import Path

    from synthvu_core.data.build import dataset_of_card
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.evaluation.threads import fixed_threads, numeric_environment
    from synthvu_core.models.registry import load_generator
    from synthvu_core.models.sampling import sample_uint8
    from synthvu_core.storage import write_json

    folder = Path(folder)
    gen = load_generator(folder)
    card = gen.card
    if dataset is None:
        ds = dataset_of_card(card, folder)  # checked there (bytes, or a rebuild the card's sketch recognises)
    else:
        ds = VUDataset.load(dataset)
        _check_dataset(folder, card, ds)
    split = (card.get("dataset") or {}).get("split") or {}
    from synthvu_core.data.dataset import SplitConfig

    ds = ds.with_split(SplitConfig.from_card(split) or ds.split_config())
    classes = list(card["classes"])
    labels = ds.labels(card["scheme"], classes)
    n = int(n_synthetic or len(ds.indices("train")))
    keep = labels >= 0
    with fixed_threads():  # as the VU evaluation: a 2-core and a 64-core machine evaluate the same sub-volumes
        t0 = time.process_time()
        syn = sample_uint8(gen, n, seed=seed, batch_size=16,  # a 3-D batch of 256 would need gigabytes
                           workers=2, worker_context=fixed_threads)  # two lanes; the noise drawn in order
        sample_cpu_s = time.process_time() - t0
        ev = evaluate_volumes(ds.images, labels, ds.units["patient_id"].astype(str).to_numpy(),
                              np.where(keep, ds.units["split"].to_numpy(), "none"), syn.images, syn.labels,
                              len(classes), seeds=seeds, config=config)
        private = volume_privacy(ds, labels, syn.images, seed=seed) if privacy else None
    report = {
        "model": card.get("name", folder.name),
        "dataset": ds.fingerprint,
        "generator_dataset": (card.get("dataset") or {}).get("fingerprint"),  # differs on a recognised rebuild
        "classes": classes,
        "shape": list(ds.shape),
        "n_synthetic": n,
        "seed": seed,
        "sampling": {"steps": gen.sampling_steps, "guidance": gen.guidance, "cpu_seconds": round(sample_cpu_s, 1)},
        **ev.as_dict(),
        "privacy": private,
        "numerics": numeric_environment(),  # the fixed thread count, kernel level and BLAS architecture
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

    fd, chance = s.get("fidelity.frechet_distance"), s.get("utility.chance")
    return [
        f"TRTR {ci('utility.trtr.balanced_accuracy')}, TSTR {ci('utility.tstr.balanced_accuracy')}, "
        f"TRTS {ci('utility.trts.balanced_accuracy')}, TSTR/TRTR {ci('utility.tstr_over_trtr')}, chance "
        + (f"{chance:.3f}" if chance else "not estimable"),
        report.get("usefulness") or "usefulness not recorded",
        "Fréchet distance " + ("not estimable" if fd is None else f"{fd:.3f}") + ", precision / recall / density / "
        "coverage " + " / ".join("—" if s.get(f"fidelity.{k}") is None else f"{s[f'fidelity.{k}']:.2f}"
                                 for k in ("precision", "recall", "density", "coverage")),
        f"privacy: {privacy_line(report.get('privacy'))}",
    ]


def privacy_line(privacy: dict[str, Any] | str | None) -> str:
    """The privacy section of a sub-volume report in one line (older reports hold a sentence)."""
    if privacy is None or isinstance(privacy, str):
        return privacy or "not evaluated"
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    return f"{LEVEL_WORDS.get(privacy['level'], privacy['level'])}: {privacy['text']}"
