"""The audit catching a planted bug: the acgan-dp-e1 recipe whose noise is secretly 128x too small.

    python -m synthvu_core data build --phantom 40 --seed 5 --contrast T2 --out phantom-40-s5
    python -m benchmarks.experiments.privacy_audit MODEL BASE_DATASET STEPS SEED OUT.json [FACTOR]

``FACTOR`` (default 128) divides the noise the mechanism draws while the accountant counts the claimed noise
(``synthvu_core.models.audit.plant_quiet_noise``, a test hook with no CLI flag). Honest audits use
``python -m synthvu_core audit MODEL --dataset BASE --steps STEPS --seed SEED``.
"""

from __future__ import annotations

import json
import sys

import torch

from synthvu_core.data.dataset import VUDataset
from synthvu_core.models.audit import AuditConfig, run_audit
from synthvu_core.models.registry import load_card, resolve


def main(argv: list[str]) -> None:
    model, base, steps, seed, out = argv[:5]
    factor = float(argv[5]) if len(argv) > 5 else 128.0
    torch.set_num_threads(1)
    card = load_card(resolve(model))
    result = run_audit(card, VUDataset.load(base), AuditConfig(canaries=200, steps=int(steps), seed=int(seed)),
                       planted_noise_factor=factor, progress=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print({k: result[k] for k in ("claimed_epsilon", "epsilon_lower_bound", "correct", "guesses", "score_auc")})


if __name__ == "__main__":
    main(sys.argv[1:])
