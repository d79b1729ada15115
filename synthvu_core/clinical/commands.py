"""CLI ``clinical train | table | sample | evaluate``: the joint generator of synthetic patients (argparse only at
import time) and the run of its evaluation (:func:`evaluate_joint`, which writes ``report/clinical.json``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.names import CLINICAL_REPORT_FILE, REPORT_DIR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.dp import DPConfig
    from synthvu_core.models.training import TrainConfig

#: 3: anonymeter attacks the members and the control at one size (the larger set subsampled)
#: 4: the released table's and pair's ``reading`` beside the leaky control (inconclusive where the control is not
#: caught); the grades the recognition check requests (``grades``) and those it skips (``skipped``)
CLINICAL_REPORT_VERSION = 4
#: Training steps of the VU half without DP.
STEPS = 600


def register(sub: argparse._SubParsersAction) -> None:
    clinical = sub.add_parser("clinical", help="synthetic patients: a clinical row and its VUs (train, evaluate)")
    csub = clinical.add_subparsers(dest="clinical_command", metavar="ACTION", required=True)

    t = csub.add_parser("train", help="train the grade-conditioned VU generator, then sample its synthetic table")
    _dataset_arg(t)
    t.add_argument("--out", required=True, metavar="MODEL", help="generator folder to write")
    t.add_argument("--steps", type=int, default=None,
                   help=f"training steps (default: {STEPS}; under DP {DP_STEPS})")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help=f"generator (with its discriminator) to start from (default: {PRIOR}; under DP the "
                        f"grade-conditioned {DP_PRIOR}, trained on the public phantom)")
    t.add_argument("--seed", type=int, default=0, help="seed of the run (default: %(default)s)")
    t.add_argument("--aux-weight", type=float, default=0.5,
                   help="weight of the class and grade losses in both networks' losses (default: %(default)s)")
    t.add_argument("--balance-grades", action=argparse.BooleanOptionalAction, default=None,
                   help="draw each region's grades equally often, real and generated (default: on; off under DP, "
                        "where it is refused)")
    t.add_argument("--projection", action=argparse.BooleanOptionalAction, default=None,
                   help="D's real/fake logit also judges each VU against its region and grade (a projection "
                        "discriminator) (default: on)")
    _table_args(t)
    _dp_args(t)
    t.set_defaults(func=_train)

    tab = csub.add_parser("table", help="fit the table synthesiser on the train patients' rows; write the table")
    tab.add_argument("model", metavar="MODEL", help="joint generator folder")
    _dataset_arg(tab, None)
    tab.add_argument("--seed", type=int, default=0, help="seed of the table (default: %(default)s)")
    _table_args(tab)
    tab.set_defaults(func=_table)

    s = csub.add_parser("sample", help="synthetic patients: rows of the table and one VU per level with its grade")
    s.add_argument("model", metavar="MODEL", help="joint generator folder")
    s.add_argument("--patients", type=int, default=4, help="how many patients (default: %(default)s)")
    s.add_argument("--levels", default="L3/L4,L4/L5,L5/S1", help="VUs per patient (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    s.add_argument("--out", required=True, metavar="FILE.npz", help="images [patients, levels, C, H, W] and rows")
    s.set_defaults(func=_sample)

    e = csub.add_parser("evaluate", help="grade recognition, grade TSTR/TRTR, table fidelity and privacy")
    e.add_argument("model", metavar="MODEL", help="joint generator folder")
    _dataset_arg(e, None)
    e.add_argument("--n-recognition", type=int, default=1000,
                   help="VUs generated for the grade check (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    e.set_defaults(func=_evaluate)


def _dataset_arg(p: argparse.ArgumentParser, default: str | None = "demo") -> None:
    said = "%(default)s" if default else "the dataset the generator was trained on, as its card records"
    p.add_argument("--dataset", default=default, metavar="DATASET",
                   help=f"VU dataset folder with a clinical table, or `demo` (default: {said})")


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table-rows", type=int, default=1000, help="synthetic rows released (default: %(default)s)")
    p.add_argument("--table-method", choices=("gaussian_copula", "ctgan", "ordinal_copula", "mst", "aim"),
                   default="ordinal_copula",
                   help="SDV synthesiser; ordinal_copula: a Gaussian copula with the grades, finding counts and "
                        "binary columns as thresholded latent normals (scipy, no SDV); or smartnoise-synth's "
                        "differentially private MST / AIM (default: %(default)s)")
    p.add_argument("--table-grades", choices=("numerical", "ordinal"), default="numerical",
                   help="SDV: the grade columns as numbers or as ordered categories (default: %(default)s)")
    p.add_argument("--table-epsilon", type=float, default=None,
                   help="epsilon of a DP table (mst, aim); composed with every run on the patients in the ledger")
    p.add_argument("--table-delta", type=float, default=None,
                   help="delta of a DP table (default min(1e-5, 1/(10 N_patients)))")


#: Where the VU half starts: the public phantom prior; under DP the shipped joint generator, whose grade
#: conditioning was learnt on the public phantom (a DP run checks that its patients are not the private ones).
PRIOR = "acgan-phantom"
DP_PRIOR = "acgan-joint-phantom"
#: The VU half under DP (``--target-epsilon``), as the shipped DP generators were trained: 64 expected patients
#: per step, 2 VUs of each, only D's heads private (its body as pretrained on the public phantom), Adam at 5e-5.
DP_PATIENTS_PER_STEP = 64.0
DP_VUS_PER_PATIENT = 2
DP_STEPS = 100
DP_LR = 5e-5


def _dp_args(p: argparse.ArgumentParser) -> None:
    dp = p.add_argument_group("differential privacy of the VU generator (patient-level DP-SGD on D)")
    dp.add_argument("--target-epsilon", type=float, default=None,
                    help="epsilon per patient of the VU half (needs a DP table: --table-method mst or aim with "
                         "--table-epsilon); both runs compose in the dataset's ledger")
    dp.add_argument("--delta", type=float, default=None, help="delta of the VU half (default min(1e-5, 1/(10 N)))")
    dp.add_argument("--clip-norm", type=float, default=1.0, help="bound on a patient's gradient (default: %(default)s)")
    dp.add_argument("--patients-per-step", type=float, default=DP_PATIENTS_PER_STEP,
                    help="expected patients per step (Poisson; default: %(default)s)")
    dp.add_argument("--vus-per-patient", type=int, default=DP_VUS_PER_PATIENT,
                    help="at most this many VUs of a sampled patient per step (default: %(default)s)")
    dp.add_argument("--private-layers", choices=("all", "heads"), default="heads",
                    help="what of D is trained privately: its heads (body as pretrained on public data) or all "
                         "(default: %(default)s)")


def dp_config(args: argparse.Namespace) -> DPConfig | None:
    """The VU half's :class:`DPConfig` (None without ``--target-epsilon``); refuses a DP VU half beside a table
    without DP before any work: the pair would be no DP."""
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.dp import DPConfig
    from synthvu_core.models.dp_table import DP_METHODS

    if args.target_epsilon is None:
        return None
    if args.table_method not in DP_METHODS or args.table_epsilon is None:
        raise SelectionError(f"--target-epsilon makes the VU half private, but the table ({args.table_method}) would "
                             f"not be: give --table-method mst (or aim) and --table-epsilon")
    dp = DPConfig(target_epsilon=args.target_epsilon, delta=args.delta, clip_norm=args.clip_norm,
                  patients_per_step=args.patients_per_step, vus_per_patient=args.vus_per_patient,
                  private_layers=args.private_layers)
    dp.validate()
    return dp


def load_dataset(name: str) -> VUDataset:
    from synthvu_core.data.dataset import VUDataset

    if name == "demo" and not Path(name).exists():
        from synthvu_core.data.build import demo_dataset

        return demo_dataset()
    return VUDataset.load(name)


def joint_dataset(
    model: str | Path, dataset: VUDataset | str | Path | None, command: str, *, table: bool = True
) -> tuple[Path, dict[str, Any], VUDataset]:
    """The joint generator's folder and card, and the dataset it was trained on under the card's split (its train
    patients are the members), checked before any work: refused where the card is not a joint generator's
    (:func:`~synthvu_core.models.joint.check_joint`; ``table``: its released table present too) or where ``dataset``
    (a ``VUDataset``, a folder, ``demo``, or None for the card's own) is not the one the card names."""
    from synthvu_core.data.build import dataset_of_card
    from synthvu_core.data.dataset import SplitConfig, VUDataset
    from synthvu_core.data.sketch import same_dataset
    from synthvu_core.errors import CheckpointError
    from synthvu_core.models.joint import check_joint
    from synthvu_core.models.registry import load_card
    from synthvu_core.names import CARD_FILE

    folder = Path(model)
    card = load_card(folder)
    check_joint(folder, card, table=table)
    info = card.get("dataset") or {}
    if dataset is None:
        ds = dataset_of_card(card, folder, f"clinical {command}")  # checked there; never the demo by default
    else:
        ds = dataset if isinstance(dataset, VUDataset) else load_dataset(dataset)
        if not same_dataset(ds, info.get("fingerprint"), info.get("sketch"), notice=True):
            given = dataset.root if isinstance(dataset, VUDataset) else dataset
            raise CheckpointError(f"{folder / CARD_FILE}: generator was trained on dataset {info.get('fingerprint')}, "
                                  f"but the dataset given ({given or 'in memory'}) is {ds.fingerprint}")
    split = SplitConfig.from_card(info.get("split") or {})
    if split is not None:
        members = ds.with_split(split)
        members.clinical = getattr(ds, "clinical", None)  # a split of the same patients keeps their table
        ds = members
    return folder, card, ds


def check_table_method(members: pd.DataFrame, method: str, *, epsilon: float | None, delta: float | None,
                       grades: str) -> float | None:
    """Refuse a table run on ``members`` (the train patients' rows) that could not succeed, before any work: the
    method's options, its library, its columns (:func:`dp_table.check_fit`, :func:`tabular.check_fit`). Returns
    the delta of a DP table (None without DP)."""
    from synthvu_core.errors import SelectionError
    from synthvu_core.models import dp_table, tabular

    if method in dp_table.DP_METHODS:
        if epsilon is None:
            raise SelectionError(f"--table-method {method} is differentially private: give --table-epsilon")
        from synthvu_core.models.dp import check_delta

        if grades != "numerical":
            raise SelectionError(f"--table-grades {grades} is an SDV option; a DP table bins the grades itself")
        delta = check_delta(delta, len(members))
        dp_table.check_fit(members, method, epsilon=epsilon, delta=delta)
        return delta
    if epsilon is not None:
        raise SelectionError(f"--table-epsilon needs a DP table method (mst, aim), not {method}")
    tabular.check_fit(members, method, grades)
    return None


def write_table(model: str | Path, dataset: VUDataset | str | Path | None = None, *, rows: int, method: str,
                seed: int, epsilon: float | None = None, delta: float | None = None,
                grades: str = "numerical") -> dict[str, Any]:
    """Fit the synthesiser on the train patients' rows, write ``clinical_synthetic.csv`` and the card's table block.

    ``model`` is a grade-conditioned VU generator (a joint one, or one waiting for its table) and ``dataset`` the
    one it was trained on (None: the card's own; :func:`joint_dataset`). Everything is checked before the fit (the
    method, its columns, the privacy ledgers readable); the run is appended to the dataset's privacy ledger before
    the table is published, and the folder is marked joint once it is. A DP method (``mst``, ``aim``) needs
    ``epsilon``; the card's ledger block is recomposed over every run on these patients (the VU generator's
    included)."""
    from synthvu_core.data.clinical import dataset_table, save_table
    from synthvu_core.models import ledger
    from synthvu_core.models.dp_table import DP_METHODS, fit_sample_dp
    from synthvu_core.models.joint import mark_joint, record_table_run, table_members
    from synthvu_core.models.tabular import fit_sample
    from synthvu_core.names import SYNTHETIC_TABLE_FILE
    from synthvu_core.storage import atomic_path

    folder, _, dataset = joint_dataset(model, dataset, "table", table=False)
    members = table_members(dataset, dataset_table(dataset), "train")
    delta = check_table_method(members, method, epsilon=epsilon, delta=delta, grades=grades)
    ledger.check_readable(dataset)  # the run is recorded there before the table is released
    if method in DP_METHODS:
        synthetic, about = fit_sample_dp(members, rows, epsilon=epsilon, delta=delta, method=method, seed=seed)
    else:
        synthetic, about = fit_sample(members, rows, method=method, seed=seed, grades=grades)
    with atomic_path(folder / SYNTHETIC_TABLE_FILE) as tmp:  # staged; published once the ledger holds the run
        save_table(synthetic, tmp)
        record_table_run(folder, dataset, about)
    mark_joint(folder, table={**about, "file": SYNTHETIC_TABLE_FILE})
    return about


def _train(args: argparse.Namespace) -> int:
    from synthvu_core.data.clinical import dataset_table
    from synthvu_core.errors import SynthVUError
    from synthvu_core.models.joint import table_members, train_images

    dp = dp_config(args)
    dataset = load_dataset(args.dataset)
    config = _train_config(args, dp)
    members = table_members(dataset, dataset_table(dataset), "train")  # the table's checks, before any training
    check_table_method(members, args.table_method, epsilon=args.table_epsilon, delta=args.table_delta,
                       grades=args.table_grades)
    folder = train_images(dataset, args.out, config)
    try:
        about = write_table(folder, dataset, rows=args.table_rows, method=args.table_method, seed=args.seed,
                            epsilon=args.table_epsilon, delta=args.table_delta, grades=args.table_grades)
    except SynthVUError as e:  # the VU half (and its ledger entry) is kept: say how to finish it
        again = f"--table-method {args.table_method}" + (
            f" --table-epsilon {args.table_epsilon:g}" if args.table_epsilon is not None else "")
        e.args = (f"{e}; the trained VU half is kept in {folder} (not joint until its table is written): write it "
                  f"with `python -m synthvu_core clinical table {folder} --dataset {args.dataset} {again}`",)
        raise
    print(f"{folder}: grade-conditioned VU generator and {about['rows_sampled']} synthetic rows ({about['method']})")
    return 0


def _train_config(args: argparse.Namespace, dp: Any) -> TrainConfig:
    """The VU half's :class:`TrainConfig`. Under DP: from :data:`DP_PRIOR`, without grade balancing (its weights
    count private VUs; asked for, it is refused), at :data:`DP_STEPS` / :data:`DP_LR` unless ``--steps`` is given."""
    from synthvu_core.models.joint import GRADE_NAMES
    from synthvu_core.models.training import ArchOverrides, TrainConfig

    private = dp is not None
    steps = args.steps if args.steps is not None else (DP_STEPS if private else STEPS)
    init = args.init_from or (DP_PRIOR if private else PRIOR)
    balance = (not private) if args.balance_grades is None else args.balance_grades
    projection = True if args.projection is None else args.projection
    command = (f"python -m synthvu_core clinical train --dataset {args.dataset} --out {args.out} --steps {steps} "
               f"--init-from {init} --aux-weight {args.aux_weight:g} "
               f"{'--balance-grades' if balance else '--no-balance-grades'} "
               f"{'--projection' if projection else '--no-projection'} --seed {args.seed}")
    if private:
        command += (f" --target-epsilon {dp.target_epsilon:g} --clip-norm {dp.clip_norm:g} --patients-per-step "
                    f"{dp.patients_per_step:g} --vus-per-patient {dp.vus_per_patient} --private-layers "
                    f"{dp.private_layers}" + (f" --delta {dp.delta:g}" if dp.delta is not None else ""))
    command += (f" --table-method {args.table_method} --table-rows {args.table_rows}"
                + (f" --table-epsilon {args.table_epsilon:g}" if args.table_epsilon is not None else ""))
    config = TrainConfig(arch="default", scheme="region", steps=steps, init_from=init, seed=args.seed,
                         overrides=ArchOverrides(aux_weight=args.aux_weight, projection=projection or None,
                                                 lr=DP_LR if private else None),
                         balance_sources=balance, condition_source=True, dp=dp, device="cpu", checkpoint_every=100,
                         name=Path(args.out).name, keep_checkpoint=not private, command=command,
                         source_names=GRADE_NAMES if private else None)
    config.validate()
    return config


def _table(args: argparse.Namespace) -> int:
    about = write_table(args.model, args.dataset, rows=args.table_rows, method=args.table_method,
                        seed=args.seed, epsilon=args.table_epsilon, delta=args.table_delta, grades=args.table_grades)
    print(f"{args.model}: {about['rows_sampled']} synthetic rows from {about['rows_fitted']} train patients "
          f"({about['library']} {about['version']} {about['method']})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from synthvu_core.models.joint import sample_patients
    from synthvu_core.storage import atomic_path, check_suffix

    out = check_suffix(args.out, (".npz",), "sample")
    levels = [v.strip() for v in args.levels.split(",") if v.strip()]
    rows, images = sample_patients(args.model, args.patients, levels, seed=args.seed)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=images, levels=np.array(levels), rows=rows.to_csv(index=False))
    print(f"{out}: {len(rows)} synthetic patients x {len(levels)} VUs")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    report = evaluate_joint(args.model, args.dataset, n_recognition=args.n_recognition, seed=args.seed)
    for line in report_lines(report):
        print(line)
    print(f"written: {Path(args.model) / REPORT_DIR / CLINICAL_REPORT_FILE}")
    return 0


def _ci(interval: list[float] | None) -> str:
    """``[0.741, 0.820]``, or ``(no interval)`` where the bootstrap gave none."""
    from synthvu_core.records import interval_text

    return interval_text(*interval) if interval else "(no interval)"


def _score(value: float | None, interval: list[float] | None, chance: float | None = None) -> str:
    """A measured number with its 95 % interval and, for an accuracy, its chance level."""
    from synthvu_core.records import number_text

    return f"{number_text(value)} {_ci(interval)}" + ("" if chance is None else f" (chance {chance:.3f})")


def _grades_text(grades: list[int]) -> str:
    return ", ".join(str(g) for g in grades)


def _reading(own: bool, control: bool) -> str:
    from synthvu_core.evaluation.clinical import reading

    said = reading(own, control)
    why = {"caught": "", "not caught": " (the leaky control is caught: the attacks have power)",
           "inconclusive (no power)": ": the same attacks miss the leaky control"}
    return f"reading: {said}{why.get(said, '')}"


def _accuracy(result: dict[str, Any], chance: float | None) -> str:
    return _score(result["balanced_accuracy"], result["interval"], chance)


def _verdict(name: str, own: dict[str, Any], control: dict[str, Any]) -> str:
    """The released part's reading beside the control's; the control's own result."""
    if name == "released":
        return _reading(own["caught"], control["caught"])
    return f"caught: {'yes' if own['caught'] else 'no (the attack has no power here)'}"


def report_lines(report: dict[str, Any]) -> list[str]:
    """The clinical report as printed: every accuracy with its interval and chance level, every AUC and risk with its
    interval, and the released table's and pair's reading beside the leaky control (no power where it is missed)."""
    r, u = report["recognition"], report["utility"]
    asked = r.get("grades") or list(range(1, 6))
    lines = [f"grade recognised in VUs generated for grades {_grades_text(asked)}: balanced accuracy "
             f"{_accuracy(r, r['chance'])}"]
    if r.get("skipped"):
        lines.append(f"grades {_grades_text(r['skipped'])} skipped: the train split holds no VU of them (chance is "
                     f"1 / the {len(asked)} grades requested)")
    ratio = _score(u["ratio"]["value"], u["ratio"]["interval"])
    lines.append(f"disc grade from real holdout VUs: TRTR {_accuracy(u['trtr'], u['chance'])}, TSTR "
                 f"{_accuracy(u['tstr'], u['chance'])}; TSTR/TRTR {ratio}")
    ag = report["fidelity"]["age_grade"]
    lines.append(f"age-grade rho: real {_score(ag['real']['rho'], ag['real']['interval'])}, synthetic "
                 f"{_score(ag['synthetic']['rho'], ag['synthetic']['interval'])} (within the real interval: "
                 f"{'yes' if ag['within_real_interval'] else 'no'})")
    privacy, joint = report["privacy"], report["joint_membership"]
    for name in ("released", "leaky_control"):
        p = privacy[name]
        risks = ", ".join(f"{k.replace('_', ' ')} {_score(p[k]['risk'], p[k]['interval'])}"
                          for k in ("singling_out", "linkability", "inference"))
        lines.append(f"{name.replace('_', ' ')} table: {risks}; DCR AUC {_score(p['dcr']['auc'], p['dcr']['interval'])}"
                     f"; {_verdict(name, p, privacy['leaky_control'])}")
    for name in ("released", "leaky_control"):
        j = joint[name]
        parts = ", ".join(f"{label} {_score(j[k]['auc'], j[k]['interval'])}"
                          for k, label in (("row", "row"), ("vus", "VUs"), ("joint", "joint")))
        lines.append(f"joint membership attack, {name.replace('_', ' ')}: AUC {parts}; "
                     f"{_verdict(name, j, joint['leaky_control'])}")
    return lines


# ---- the run ------------------------------------------------------------------------------------------------


def _vu_arrays(dataset: VUDataset, grades: np.ndarray, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = dataset.indices(part)
    return dataset.images[idx], grades[idx], dataset.units["patient_id"].astype(str).to_numpy()[idx]


def synthetic_pairs(model: str | Path, n_patients: int, vus: list[str], seed: int) -> tuple[Any, Any]:
    """VUs of ``n_patients`` synthetic patients (every level in ``vus``) as uint8 and their rows' grades."""
    from synthvu_core.data.clinical import grade_column
    from synthvu_core.data.dataset import to_uint8
    from synthvu_core.models.joint import sample_patients

    rows, images = sample_patients(model, n_patients, vus, seed=seed)
    grades = rows[[grade_column(v) for v in vus]].to_numpy(dtype="int64").reshape(-1)
    return to_uint8(images.reshape(-1, *images.shape[2:])), grades


def recognition_grades(card: dict[str, Any], dataset: VUDataset, grades: np.ndarray) -> tuple[list[int], list[int]]:
    """``(requested, skipped)``: the grades the recognition check asks for (those the train split's VUs hold and the
    generator is conditioned on) and the others; :class:`SelectionError` (naming the clinical table) where fewer
    than two remain, for a balanced accuracy over one grade measures nothing."""
    import numpy as np

    from synthvu_core.data.clinical import GRADES
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.joint import grade_name, table_file

    held = {int(g) for g in np.unique(grades[dataset.indices("train")])}
    names = set(card.get("sources") or [])
    requested = [g for g in GRADES if g in held and grade_name(g) in names]
    if len(requested) < 2:
        raise SelectionError(f"{table_file(dataset)}: the train split's VUs hold grade(s) "
                             f"{_grades_text(sorted(held & set(GRADES))) or 'none'} only; grade recognition and "
                             "grade TRTR/TSTR need at least two grades")
    return requested, [g for g in GRADES if g not in requested]


def recognition_samples(
    model: str | Path, dataset: VUDataset, grades: np.ndarray, n: int, seed: int,
    requested_grades: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` VUs generated for grades drawn uniformly from ``requested_grades`` (default: those the train split's
    VUs hold), each at a level drawn from the real train VUs of that grade (so the request is one the data hold), as
    uint8, and the requested grades."""
    import numpy as np

    from synthvu_core.data.dataset import to_uint8
    from synthvu_core.models.joint import sample_conditioned
    from synthvu_core.models.registry import load_generator

    rng = np.random.default_rng(seed)
    idx = dataset.indices("train")
    levels_of = dataset.units["level"].astype(str).to_numpy()[idx]
    if requested_grades is None:
        from synthvu_core.data.clinical import GRADES

        requested_grades = [g for g in GRADES if (grades[idx] == g).any()]
    requested = rng.choice(np.array(requested_grades), size=int(n))
    positions = [str(rng.choice(levels_of[grades[idx] == g])) for g in requested]
    images = sample_conditioned(load_generator(model), positions, requested.tolist(), seed=seed + 1)
    return to_uint8(images), requested


def table_report(
    members: pd.DataFrame, others: pd.DataFrame, released: pd.DataFrame, seed: int = 0
) -> dict[str, Any]:
    """Fidelity of the released table against the members' rows, and its privacy beside the leaky control's."""
    from synthvu_core.evaluation import clinical

    privacy = {}
    for name, rows in (("released", released), ("leaky_control", clinical.leaky_table(members, len(released), seed))):
        privacy[name] = clinical.table_privacy(members, others, rows, seed=seed)
        privacy[name]["caught"] = clinical.caught(privacy[name])
    privacy["released"]["reading"] = clinical.reading(privacy["released"]["caught"], privacy["leaky_control"]["caught"])
    return {"fidelity": clinical.table_fidelity(members, released, seed), "privacy": privacy}


def joint_attack(
    dataset: VUDataset, table: pd.DataFrame, released: pd.DataFrame, synthetic_vus: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """The patient-level joint membership attack (row and VUs together) on the released pair and on the leaky
    control: member rows copied into the table and :data:`~synthvu_core.names.POWER_FRACTION` of the synthetic VUs
    replaced by lightly perturbed member VUs (the VU evaluation's graded control). Candidates are the VU
    evaluation's membership design (training against holdout patients, as many VUs each)."""
    import numpy as np

    from synthvu_core.data.clinical import ID_COLUMN
    from synthvu_core.data.dataset import to_uint8
    from synthvu_core.evaluation import clinical
    from synthvu_core.evaluation.controls import graded_replacements
    from synthvu_core.evaluation.design import membership_design
    from synthvu_core.names import POWER_FRACTION

    design = membership_design(dataset, np.zeros(len(dataset.units), np.int64), seed=seed)
    names, first = np.unique(design.patient, return_index=True)
    patients, is_member = names[np.argsort(first)], design.is_member[np.sort(first)]
    rows = table.set_index(table[ID_COLUMN].astype(str)).loc[patients].reset_index(drop=True)
    vus = dataset.images[design.candidates]
    members = rows[is_member]
    positions, copies = graded_replacements(dataset, len(synthetic_vus), design.candidates[design.is_member],
                                            POWER_FRACTION, seed=seed)
    leaky_vus = np.array(synthetic_vus, copy=True)
    leaky_vus[positions] = to_uint8(copies)
    out = {}
    for name, syn_rows, syn_vus in (("released", released, synthetic_vus),
                                    ("leaky_control", clinical.leaky_table(members, len(released), seed), leaky_vus)):
        out[name] = clinical.joint_membership(rows, is_member, vus, design.patient, syn_rows, syn_vus, seed=seed)
    out["released"]["reading"] = clinical.reading(out["released"]["caught"], out["leaky_control"]["caught"])
    out["leaky_control"]["definition"] = (f"member rows copied into the table (as many as it holds) and "
                                          f"{POWER_FRACTION:.0%} of the synthetic VUs replaced by lightly perturbed "
                                          "member VUs")
    out["design"] = design.notes
    return out


def evaluate_joint(
    model: str | Path, dataset: VUDataset | str | Path | None = None, *, n_recognition: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The joint evaluation of a joint generator on its dataset (None: the card's own; another is refused, and the
    card's split decides members, :func:`joint_dataset`); writes and returns ``report/clinical.json``."""
    from synthvu_core import levels
    from synthvu_core.data.clinical import dataset_table, vu_grades
    from synthvu_core.evaluation import clinical
    from synthvu_core.models.joint import synthetic_table, table_file, table_members
    from synthvu_core.storage import check_writable, write_json

    started = time.process_time()
    folder, card, dataset = joint_dataset(model, dataset, "evaluate")
    check_writable(folder / REPORT_DIR / CLINICAL_REPORT_FILE, "clinical report")
    table = dataset_table(dataset)
    grades = vu_grades(dataset.units, table, table_file(dataset))
    asked, skipped = recognition_grades(card, dataset, grades)  # before any classifier is trained
    clinical.check_installed()  # the table's privacy needs anonymeter: refused before the classifiers too
    members = table_members(dataset, table, "train")
    others = table[~table["patient_id"].isin(members["patient_id"])].reset_index(drop=True)
    released = synthetic_table(folder)
    vus = levels.sort_vus(dataset.units["level"].astype(str).unique())
    train_x, train_y, _ = _vu_arrays(dataset, grades, "train")
    test_x, test_y, test_p = _vu_arrays(dataset, grades, "holdout")
    synth_x, synth_y = synthetic_pairs(folder, len(members), vus, seed)
    utility, real_models = clinical.grade_utility(train_x, train_y, synth_x, synth_y, test_x, test_y, test_p)
    gen_x, requested = recognition_samples(folder, dataset, grades, n_recognition, seed, asked)
    recognition = {**clinical.grade_recognition(real_models[0], gen_x, requested, seed), "grades": asked,
                   "skipped": skipped}
    report = {
        "version": CLINICAL_REPORT_VERSION,
        "model": folder.name,
        "dataset": dataset.fingerprint,
        "recognition": recognition,
        "utility": utility,
        **table_report(members, others, released, seed),
        "joint_membership": joint_attack(dataset, table, released, synth_x, seed),
        "cpu_seconds": round(time.process_time() - started, 1),
        "seed": seed,
    }
    write_json(folder / REPORT_DIR / CLINICAL_REPORT_FILE, report)
    return report
