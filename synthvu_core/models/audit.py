"""An empirical lower bound on a DP recipe's epsilon, from one training run with canaries.

Steinke, Nasr & Jagielski, "Privacy auditing with one (1) training run" (NeurIPS 2023): ``m`` canary
patients are each included in training with probability 1/2, independently; after training an auditor
scores every canary, guesses "included" for the ``r/2`` highest scores and "excluded" for the ``r/2`` lowest
(abstaining on the rest) and counts ``v`` correct guesses. Under (epsilon, delta)-DP the number of correct
guesses is dominated by a Binomial(r, e^eps / (1 + e^eps)) plus a delta term (their Theorem 3 / Algorithm 2,
:func:`p_value` and :func:`epsilon_lower_bound`); the largest epsilon rejected at 95 % confidence is an
empirical **lower** bound: a correct mechanism stays below its claim, a broken one need not.

Here (:func:`run_audit`):

* canaries: patients with one out-of-distribution VU each (a random coarse black-and-white block pattern per
  slice, unlike any spine), a random class each, added to the train patients of a (public) base cohort;
* the recipe: a DP generator's card (``dp`` block and training settings: steps, sample rate, clip norm,
  VUs per patient, private layers, learning rate, prior), replayed on the audit cohort at the same sample rate;
* the score: how much D's class loss on the canary (under its random class) fell between D's start and its end
  (white-box on the released discriminator, which DP covers by post-processing); the guesses: the top and bottom
  m/20 scores (r = m/10). Score and r were fixed on two pilot runs of the planted-bug recipe with other seeds
  (scores compared: this one, the fall of the real/fake loss, and the alignment of D's move with each canary's
  centred gradient); the pilots' per-canary scores of all three are kept in ``audit.json``.

The result is written as ``audit.json`` beside the card; pages only draw it. The audit's training run is
recorded in the base dataset's privacy ledger like any run.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core.errors import SelectionError

if TYPE_CHECKING:
    import torch

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.acgan import Discriminator
    from synthvu_core.models.training import TrainConfig, Trainer

AUDIT_FILE = "audit.json"
METHOD = ("one-run audit (Steinke, Nasr & Jagielski 2023): canary patients with one out-of-distribution VU each and a "
          "random class, each included with probability 1/2; score = fall of D's class loss on the canary from D's "
          "start to its end; guesses on the highest and lowest scores")


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses correct] under (eps, delta)-DP, ``m`` canaries (their Algorithm 2)."""
    from scipy.stats import binom

    q = 1.0 / (1.0 + math.exp(-eps))
    beta = float(binom.sf(v - 1, r, q))
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += float(binom.pmf(v - i, r, q))
        alpha = max(alpha, total / i)
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest epsilon that ``v`` correct of ``r`` guesses on ``m`` canaries rejects at ``confidence``."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    p = 1.0 - confidence
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < p and hi < 100:
        hi += 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(m, r, v, mid, delta) < p else (lo, mid)
    return lo


@dataclass
class AuditConfig:
    """Settings of one audit run.

    Args:
        canaries: ``m``, canary patients (each included with probability 1/2).
        guesses: ``r``, guesses (half "included" on the top scores, half "excluded" on the bottom); None = m / 10.
        confidence: of the lower bound.
        seed: of the canaries and of who is included (the mechanism's noise still comes from OS entropy).
        steps: None = the recipe's.
    """

    canaries: int = 200
    guesses: int | None = None
    confidence: float = 0.95
    seed: int = 0
    steps: int | None = None

    def n_guesses(self) -> int:
        return max(2, 2 * (self.canaries // 20)) if self.guesses is None else self.guesses

    def validate(self) -> None:
        r = self.n_guesses()
        if self.canaries < 2 or not 2 <= r <= self.canaries or r % 2:
            raise SelectionError(f"audit: need at least 2 canaries and an even number of guesses up to them, got "
                                 f"{self.canaries} canaries and {r} guesses")
        if not 0.5 <= self.confidence < 1:
            raise SelectionError(f"audit: --confidence must lie in [0.5, 1), got {self.confidence}")


def canary_images(m: int, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """``m`` uint8 VUs ``[m, C, H, W]``: per slice a random 8x8 grid of black and white blocks (no spine)."""
    c, h, w = shape
    blocks = rng.integers(0, 2, size=(m, c, 8, 8), dtype=np.uint8) * 255
    return np.kron(blocks, np.ones((1, 1, -(-h // 8), -(-w // 8)), dtype=np.uint8))[:, :, :h, :w]


def audit_dataset(
    base: VUDataset, images: np.ndarray, classes: list[str], included: np.ndarray, scheme: str,
    source: str | None = None,
) -> VUDataset:
    """``base``'s train patients plus the included canaries (one VU each), all in the train split; each canary
    its own source, or ``source`` (one of a source-conditioned recipe's vocabulary, which refuses any other)."""
    import pandas as pd

    from synthvu_core.data.dataset import VUDataset, fingerprint
    from synthvu_core.names import SOURCE_COLUMN

    train = base.indices("train")
    units = base.units.iloc[train].copy()
    template = units.iloc[0]
    rows = []
    for j in np.flatnonzero(included):
        level = classes[j]
        rows.append({**template.to_dict(), "patient_id": f"canary-{j:04d}", "source": f"canary-{j:04d}",
                     **({SOURCE_COLUMN: source} if source else {}), "level": level, "region": level[0],
                     "split": "train"})
    units = pd.concat([units, pd.DataFrame(rows)], ignore_index=True)
    imgs = np.concatenate([np.asarray(base.images[train]), images[included]])
    card = {**base.card, "fingerprint": fingerprint(imgs, units)}
    return VUDataset(imgs, units, card)


def recipe_config(card: dict[str, Any], steps: int | None, n_patients: int) -> TrainConfig:
    """The :class:`TrainConfig` that replays a DP card's recipe on ``n_patients`` at the card's sample rate: the
    same mechanism (DP settings, augmentation and the translation's size, mirroring, mode seeking, frozen stages and
    class modulation, class-loss weight, projection and output filter, source conditioning), as the card records it
    (older cards: the settings they predate, off)."""
    from synthvu_core.models.augment import TRANSLATION_RATIO
    from synthvu_core.models.dp import DPConfig
    from synthvu_core.models.registry import resolve
    from synthvu_core.models.training import ArchOverrides, TrainConfig

    dp, tr = card.get("dp"), card["training"]
    if not dp or dp.get("unit") != "patient":
        raise SelectionError(f"{card.get('name')}: the audit replays a patient-level DP recipe; this card has none")
    init = (tr.get("init_from") or {}).get("name")
    eps = dp.get("target_epsilon")
    config = DPConfig(target_epsilon=eps, noise_multiplier=None if eps is not None else dp["noise_multiplier"],
                      clip_norm=float(dp["clip_norm"]), patients_per_step=float(dp["sample_rate"]) * n_patients,
                      vus_per_patient=dp.get("vus_per_patient"), accountant=dp.get("accountant", "rdp"),
                      private_layers=dp.get("private_layers", "all"),
                      clip_generated=dp.get("generated_gradients", "clipped") != "not clipped")
    arch = card["architecture"]
    head = {k: arch.get(k) for k in ("aux_weight", "projection")}  # None (older cards): the prior's
    head |= {"source_stages": int(arch.get("source_stages", 0)), "split_projection": bool(arch.get("split_projection")),
             "ordinal": bool(arch.get("ordinal"))}
    head["smooth"] = float(arch.get("smooth", 0.0))  # a card leaves it out at 0
    over = ArchOverrides(lr=tr.get("lr"), **head) if init is not None else ArchOverrides(
        lr=tr.get("lr"), width=arch.get("width"), d_width=arch.get("d_width"), g_cond=arch.get("g_cond"),
        aux_fake=arch.get("aux_fake"), **head)
    sources = card.get("sources")
    return TrainConfig(arch=arch["name"], scheme=card["scheme"], steps=steps or int(dp["steps"]),
                       batch_size=int(tr["batch_size"]), overrides=over, dp=config,
                       init_from=None if init is None else str(resolve(init)), classes=list(card["classes"]),
                       augment=str(tr.get("augment") or "none"),
                       translate=float(tr.get("translate", TRANSLATION_RATIO)), mirror=bool(tr.get("mirror", False)),
                       mode_seeking=float(tr.get("mode_seeking", 0.0)), freeze_d=int(tr.get("freeze_d", 0)),
                       freeze_class_modulation=bool(tr.get("freeze_class_modulation", False)),
                       instance_noise=float(tr.get("instance_noise", 0.0)), d_lr=tr.get("d_lr"),
                       condition_source=bool(sources), source_names=tuple(sources) if sources else None,
                       seed=int(tr.get("seed", 0)), device="cpu", checkpoint_every=0, montage_every=0)


def canary_losses(D: Discriminator, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """D's loss on each canary as a real VU, in two parts: real/fake (BCE) and class (CE)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        adv, cls = D(x)
        cls = cls[:, : D.config.n_classes]  # a source-conditioned D appends its source logits
        bce = F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv), reduction="none")
        return bce.cpu().numpy(), F.cross_entropy(cls, y, reduction="none").cpu().numpy()


def canary_gradients(trainer: Trainer, x: torch.Tensor, y: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    """``[m, P]`` gradient of D's real-VU loss on each canary at D's start, over the privately trained parameters,
    with the canaries' mean gradient taken out (a common direction says nothing about one canary)."""
    import torch

    from synthvu_core.models.training import discriminator_loss

    a, aux_fake = trainer.arch.aux_weight, trainer.arch.aux_fake

    def loss_of_one(adv: torch.Tensor, cls: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(adv, cls, torch.ones_like(adv), yy, a, aux_fake).sum()

    rows = []
    for i in range(0, len(x), chunk):
        g = trainer.private.per_vu_gradients(loss_of_one, x[i : i + chunk], y[i : i + chunk])
        rows.append(torch.cat([v.reshape(len(v), -1) for v in g.values()], 1))
    grads = torch.cat(rows)
    return grads - grads.mean(0, keepdim=True)


def alignment_scores(trainer: Trainer, start: dict, grads: torch.Tensor) -> np.ndarray:
    """How far D's parameters moved against each canary's (centred, unit) gradient: the fall of its loss that
    is the canary's own."""
    import torch

    moved = torch.cat([(p.detach() - start[k]).flatten() for k, p in trainer.private.trainable()])
    return (-(grads @ moved) / grads.norm(dim=1).clamp_min(1e-12)).numpy()


def plant_quiet_noise(trainer: Trainer, factor: float) -> None:
    """Test hook (a planted bug): the mechanism draws noise ``factor`` times too small, the accountant is not told."""
    from synthvu_core.models.dp import PatientDPOptimizer

    opt = trainer.private
    claimed = opt.noise_multiplier

    def quiet(summed: dict) -> dict:
        opt.noise_multiplier = claimed / factor
        try:
            return PatientDPOptimizer.add_noise(opt, summed)
        finally:
            opt.noise_multiplier = claimed

    opt.add_noise = quiet


def run_audit(card: dict[str, Any], base: Any, config: AuditConfig, *, planted_noise_factor: float = 1.0,
              progress: bool = False) -> dict[str, Any]:
    """Train ``card``'s recipe on ``base``'s train patients plus canaries; the audit's result (see module doc)."""
    import torch

    from synthvu_core import levels
    from synthvu_core.models.training import Trainer

    config.validate()
    rng = np.random.default_rng(config.seed)
    m = config.canaries
    images = canary_images(m, tuple(base.shape), rng)
    vocab = [c for c in levels.vocabulary("level") if levels.position_class(card["scheme"], c) in card["classes"]]
    classes = [str(c) for c in rng.choice(vocab, size=m)]
    included = rng.random(m) < 0.5
    data = audit_dataset(base, images, classes, included, card["scheme"], (card.get("sources") or [None])[0])
    n = len(data.patients("train"))
    trainer = Trainer(data, Path("audit-run-not-written"), recipe_config(card, config.steps, n))
    if planted_noise_factor != 1.0:
        plant_quiet_noise(trainer, planted_noise_factor)
    from synthvu_core.models.acgan import gaussian_blur

    x = gaussian_blur(torch.from_numpy(images).float() / 127.5 - 1.0, trainer.arch.smooth)  # as D sees a real VU
    y = torch.as_tensor([trainer.classes.index(levels.position_class(card["scheme"], c)) for c in classes])
    start = canary_losses(copy.deepcopy(trainer.D).eval(), x, y)
    grads = canary_gradients(trainer, x, y)
    theta = {k: p.detach().clone() for k, p in trainer.private.trainable()}
    t0 = time.perf_counter()
    while trainer.step_count < trainer.total_steps:
        trainer.step()
        if progress and trainer.step_count % 10 == 0:
            print(f"audit: step {trainer.step_count}/{trainer.total_steps}", flush=True)
    end = canary_losses(trainer.D.eval(), x, y)
    adv_fall, class_fall = start[0] - end[0], start[1] - end[1]
    scores = class_fall  # the pre-specified score (chosen on pilot runs with other seeds; see the module doc)
    r = config.n_guesses()
    order = np.argsort(-scores, kind="stable")
    guessed_in, guessed_out = order[: r // 2], order[m - r // 2 :]
    v = int(included[guessed_in].sum() + (~included[guessed_out]).sum())
    claimed = float(trainer.epsilon())
    record_audit_run(base, card, trainer, claimed, honest=planted_noise_factor == 1.0)
    return {
        "model": card.get("name"),
        "method": METHOD,
        "recipe": {"steps": trainer.total_steps, "sample_rate": trainer.sample_rate,
                   "noise_multiplier": trainer.noise_multiplier, "clip_norm": trainer.config.dp.clip_norm,
                   "vus_per_patient": trainer.config.dp.vus_per_patient,
                   "private_layers": trainer.config.dp.private_layers, "init_from": card["training"].get("init_from",
                                                                                                      {}) and
                   card["training"]["init_from"].get("name"), "lr": trainer.arch.lr},
        "cohort": {"dataset": base.fingerprint, "base_patients": len(base.patients("train")), "n_patients": n},
        "canaries": m, "included": int(included.sum()), "guesses": r, "correct": v,
        "confidence": config.confidence, "delta": trainer.delta, "claimed_epsilon": claimed,
        "epsilon_lower_bound": epsilon_lower_bound(m, r, v, trainer.delta, config.confidence),
        "score_auc": score_auc(scores, included),
        "score": "fall of D's class loss on the canary (its random class) from D's start to its end",
        "scores": {"alignment": [round(float(v), 8) for v in alignment_scores(trainer, theta, grads)],
                   "adv_fall": [round(float(v), 6) for v in adv_fall],
                   "class_fall": [round(float(v), 6) for v in class_fall]},
        "included_canaries": [bool(v) for v in included],
        **({"planted_noise_factor": planted_noise_factor} if planted_noise_factor != 1.0 else {}),
        "seed": config.seed, "seconds": round(time.perf_counter() - t0, 1),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def score_auc(scores: np.ndarray, included: np.ndarray) -> float:
    """AUC of the canary scores for included against excluded (a diagnostic beside the bound)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(included.astype(int), scores))


def record_audit_run(base: VUDataset, card: dict[str, Any], trainer: Trainer, claimed: float, honest: bool) -> None:
    """The audit trained on ``base``'s patients: one more entry in its privacy ledger (where it has a folder).
    A run with a planted bug is entered without DP (its noise was not what the accountant counted)."""
    from synthvu_core.models import ledger

    entry = {"run": f"audit of {card.get('name')}", "created": datetime.now(UTC).isoformat(timespec="seconds"),
             "dp": honest, "epsilon": claimed if honest else None, "mechanism": "dp-sgd (poisson-subsampled gaussian)",
             "noise_multiplier": trainer.noise_multiplier, "sample_rate": trainer.sample_rate,
             "steps": trainer.step_count, "accountant": trainer.config.dp.accountant, "delta": trainer.delta,
             "n_patients": trainer.n_patients}
    ledger.record(base, entry)


def audit_line(audit: dict[str, Any]) -> str:
    """One line: the empirical lower bound beside the claimed epsilon."""
    lb, claimed = float(audit["epsilon_lower_bound"]), float(audit["claimed_epsilon"])
    planted = audit.get("planted_noise_factor")
    return (f"empirical audit of this recipe: epsilon >= {lb:.2f} at {float(audit.get('confidence', 0.95)):.0%} "
            f"confidence against a claimed {claimed:.2f} ({audit.get('correct')} of {audit.get('guesses')} guesses "
            f"right on {audit.get('canaries')} canary patients; the recipe replayed for "
            f"{(audit.get('recipe') or {}).get('steps', '?')} steps on "
            f"{(audit.get('cohort') or {}).get('n_patients', '?')} patients"
            + (f"; noise secretly {planted:g}x too small (planted bug)" if planted else "") + ")"
            + ("; ABOVE the claim: the mechanism is broken" if lb > claimed else ""))


def write_audit(result: dict[str, Any], path: str | Path) -> Path:
    from synthvu_core.storage import write_json

    write_json(Path(path), result)
    return Path(path)


def load_audit(folder: str | Path) -> dict[str, Any] | None:
    """The ``audit.json`` beside a generator's card, or None."""
    import json

    path = Path(folder) / AUDIT_FILE
    try:
        audit = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    keys = ("epsilon_lower_bound", "claimed_epsilon")
    if not isinstance(audit, dict) or not all(isinstance(audit.get(k), int | float) for k in keys):
        return None  # not an audit this code wrote: nothing is shown rather than a half-read number
    return audit


__all__ = ["AuditConfig", "asdict", "epsilon_lower_bound", "load_audit", "p_value", "run_audit"]
