"""Who is attacked, and what the attacks may be fitted on.

* **Candidates.** Members are VUs of training patients, non-members VUs of holdout patients. The
  member side gets as many patients as the holdout has, capped so that it holds at most ``per_group``
  VUs; the non-member side gets every holdout patient (capped at ``nonmember_cap`` VUs for speed only,
  the count stated in the notes), so a TPR at a low FPR is estimable wherever the cohort allows. Every
  chosen patient contributes the same number of VUs (the smallest count among them), drawn seeded.
* **Reference halves.** The reference patients (in neither candidate group) are split seeded into
  two disjoint halves: ``fit`` fits every attack space (the attack encoder, the attack UMAP) and is
  DOMIAS's reference density; ``control`` is all the independent (negative) control is built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset


@dataclass
class MembershipDesign:
    """Candidate rows (members first), membership, patients, and the two reference halves (dataset rows)."""

    candidates: np.ndarray
    is_member: np.ndarray
    patient: np.ndarray
    fit_rows: np.ndarray
    control_rows: np.ndarray
    vus_per_patient: int
    notes: dict[str, str]

    def counts(self) -> dict[str, int]:
        """Patients and VUs on each side, and in each reference half."""
        m = self.is_member
        return {
            "n_candidates": int(len(self.candidates)),
            "n_members": int(m.sum()),
            "n_nonmembers": int((~m).sum()),
            "n_member_patients": int(len(set(self.patient[m]))),
            "n_nonmember_patients": int(len(set(self.patient[~m]))),
            "vus_per_patient": int(self.vus_per_patient),
            "n_reference_fit": int(len(self.fit_rows)),
            "n_reference_control": int(len(self.control_rows)),
        }


def _rows_by_patient(dataset: VUDataset, part: str, labelled: np.ndarray) -> dict[str, np.ndarray]:
    rows = dataset.indices(part)
    rows = rows[labelled[rows]]
    pid = dataset.units["patient_id"].astype(str).to_numpy()[rows]
    return {p: rows[pid == p] for p in sorted(set(pid))}


def reference_halves(dataset: VUDataset, labelled: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference rows split by patient into ``(fit, control)`` halves (fit gets the odd patient)."""
    by_patient = _rows_by_patient(dataset, "reference", labelled)
    names = sorted(by_patient)
    order = np.random.default_rng([seed, 17]).permutation(len(names))
    n_fit = (len(names) + 1) // 2
    pick = lambda ids: (  # noqa: E731
        np.sort(np.concatenate([by_patient[names[i]] for i in ids])) if len(ids) else np.empty(0, np.int64)
    )
    return pick(order[:n_fit]).astype(np.int64), pick(order[n_fit:]).astype(np.int64)


def membership_design(
    dataset: VUDataset, labels: np.ndarray, per_group: int | None = None, seed: int = 0,
    nonmember_cap: int | None = None,
) -> MembershipDesign:
    """The candidate set and the reference halves of ``dataset`` (a ``VUDataset``).

    Only VUs with a class (``labels >= 0``) take part. ``per_group`` caps the member VUs, ``nonmember_cap``
    the non-member VUs (None: every holdout patient).
    """
    labelled = np.asarray(labels) >= 0
    rng = np.random.default_rng([seed, 7])
    mem, non = _rows_by_patient(dataset, "train", labelled), _rows_by_patient(dataset, "holdout", labelled)
    n_pat = min(len(mem), len(non))
    notes: dict[str, str] = {}
    chosen = {
        side: [names[i] for i in np.sort(rng.choice(len(names), size=n, replace=False))] if n else []
        for side, names, n in (("member", sorted(mem), n_pat), ("nonmember", sorted(non), len(non) if n_pat else 0))
    }
    v = min((len(g[p]) for g, side in ((mem, "member"), (non, "nonmember")) for p in chosen[side]), default=0)
    for side, cap in (("member", per_group), ("nonmember", nonmember_cap)):
        ids = chosen[side]
        if cap is not None and v and len(ids) * v > cap:
            n_keep = max(cap // v, 2)
            notes[f"{side}s"] = f"capped at {cap} VUs for speed: {n_keep} of {len(ids)} {side} patients"
            chosen[side] = sorted(rng.choice(ids, size=min(n_keep, len(ids)), replace=False).tolist())
    rows, member = [], []
    for side, groups in (("member", mem), ("nonmember", non)):
        for p in chosen[side]:
            rows.append(np.sort(rng.choice(groups[p], size=v, replace=False)))
            member.append(np.full(v, side == "member"))
    cand = np.concatenate(rows).astype(np.int64) if rows else np.empty(0, np.int64)
    is_member = np.concatenate(member) if member else np.empty(0, bool)
    patient = dataset.units["patient_id"].astype(str).to_numpy()[cand]
    fit_rows, control_rows = reference_halves(dataset, labelled, seed)
    notes["sides"] = (
        f"{len(chosen['member'])} of {len(mem)} training and {len(chosen['nonmember'])} of {len(non)} holdout "
        f"patients, {v} VUs each"
    )
    return MembershipDesign(cand, is_member, patient, fit_rows, control_rows, v, notes)
