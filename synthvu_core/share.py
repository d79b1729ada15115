"""What may leave a generator folder, decided here once: ``share MODEL --out DIR``, the wheel (the build
hook in ``setup.py``), the container image (which installs that wheel) and the dashboard's public mode
all apply this whitelist (never a blacklist).

What may leave: the generator weights, ``card.json`` with local paths and source file names removed, the
human-readable ``README.md`` written from that card, a public report (aggregate scalars, whitelisted meta
keys, and only the aggregate or synthetic arrays named in :data:`PUBLIC_ARRAYS`), the training log and
montages (generated VUs only), and ``share.json``, which lists what was included and what was left out and
why. A new report array or meta key is left out until it is added here. The discriminator is included
only on request and only when it was trained with differential privacy (otherwise it is a membership
oracle), or when the generator is one of the public priors of :data:`PUBLIC_PRIORS`.

Standard library only at import: the wheel's build hook runs this module before any dependency exists.
"""

from __future__ import annotations

import copy
import errno
import json
import re
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthvu_core.errors import CheckpointError, SynthVUError
from synthvu_core.names import (
    ARRAYS_FILE,
    CARD_FILE,
    CLINICAL_REPORT_FILE,
    CONTROLS_DIR,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    NOT_COVERED_BY_DP,
    REPORT_DIR,
    REPORT_FILE,
    SYNTHETIC_TABLE_FILE,
    VOLUME_REPORT,
)

SHARE_FILE = "share.json"
#: Report arrays that may leave: aggregate counts and curves, and synthetic VUs' coordinates.
PUBLIC_ARRAYS: tuple[str, ...] = (
    r"utility/(trtr|tstr|trts)/(confusion|recall)",  # class-level counts and recalls on the holdout split
    r"fidelity/position/classes",  # class names
    r"privacy/[a-z_]+/[a-z_]+/roc_(fpr|tpr)",  # ROC curves (aggregate over all candidates)
    r"umap/synthetic(_labels|_index)?",  # synthetic VUs only, projected into the UMAP
)
#: Report meta keys that may leave (counts, settings, provenance; no timings, no folders).
PUBLIC_META: tuple[str, ...] = (
    "report_version", "dataset_fingerprint", "generator_dataset_fingerprint", "n_synthetic", "synthetic_seed", "seed",
    "created", "code_version",
    "scheme", "classes", "synthetic_class_counts", "n_candidates", "n_members", "n_nonmembers", "n_member_patients",
    "n_nonmember_patients", "n_reference", "tstr_train_size", "classifier_trained", "umap", "config",
    "discriminator_attack", "missing", "notes", "model", "dp_epsilon", "dp_delta", "control_definitions",
    "generator_sha256", "dp_unit", "dp_n_patients", "dp_private_runs", "dp_composed_bound", "dp_composed_epsilon",
    "dp_composed_runs",
    "utility",  # the classifier seeds, the train and holdout sizes (counts) and the kind of interval
    # the verdicts and what they are read from (aggregates: AUCs, intervals, p-values, power), and the digest
    "verdicts", "power", "independent_control", "content_sha256",
)
#: Report arrays that the dashboard's public mode reads on the server but never sends: real VUs' UMAP
#: coordinates are drawn as a binned density only (counts per cell, never a VU's position).
PUBLIC_MODE_DENSITY: tuple[str, ...] = ("umap/real", "umap/real_labels")
#: Scalar key prefixes that may leave (every scalar of a report is an aggregate over VUs or patients).
PUBLIC_SCALARS: tuple[str, ...] = ("utility.", "fidelity.", "privacy.", "cohort.", "dp.")
#: Generators whose discriminator may leave although trained without DP, with the dataset fingerprint
#: they must have been trained on and why. ``acgan-phantom`` was trained only on the public phantom demo
#: dataset (synthetic patients written by ``synthvu_core.data.phantom``, no person behind any VU), so its
#: discriminator is a membership oracle over nobody; fine-tuning on a user's data starts from generator
#: and discriminator together, so the installed package needs both.
PUBLIC_PRIORS: dict[str, tuple[str, str]] = {
    "acgan-phantom": (
        "595b965595de2117",
        "trained only on the public phantom demo dataset (phantom-demo-120-s0, no real patient); the starting "
        "point of fine-tuning on a user's data needs its discriminator",
    ),
}
#: Paths inside a released generator folder that may leave (each file is written by :func:`share`).
RELEASE_FILES: tuple[str, ...] = (
    r"generator\.safetensors",
    r"card\.json",  # the public card (:func:`public_card`)
    r"README\.md",  # written from the public card and public report
    SHARE_FILE,
    r"report/(controls/[a-z0-9_-]+/)?(report\.json|arrays\.npz)",  # the public report (:func:`_public_report`)
    r"training/(log\.csv|montage_step\d+\.png)",  # the loss log and montages of generated VUs
    r"audit\.json",  # an empirical DP audit: run on public phantom patients and canaries only
    r"clinical_synthetic\.csv",  # a joint generator's released synthetic table (synthetic rows only)
    r"report/clinical\.json",  # its clinical evaluation: aggregate numbers, no row of a real patient
    r"report/volume_report\.json",  # a sub-volume generator's evaluation: aggregate numbers only, no array
)
#: Everything else the wheel may carry: the library, the dashboard and its settings, the package metadata.
WHEEL_CODE: tuple[str, ...] = (
    r"synthvu_core/([a-z_]+/)?[a-z_]+\.py",
    r"synthvu_core/evaluation/tolerances\.json",  # the tolerance rules a report records (no data)
    r"synthvu_app/app\.py",
    r"synthvu_app/(app_pages|dashboard)/[a-z_]+\.py",
    r"synthvu_app/dashboard/vendor/revealjs/(reveal\.js|reveal\.css|LICENSE|VERSION)",  # the slide deck's library (MIT)
    r"synthvu_app/\.streamlit/config\.toml",
    r"synthvu-[0-9.]+\.dist-info/(METADATA|WHEEL|entry_points\.txt|top_level\.txt|RECORD|licenses/.+)",
)
#: The folder of the wheel that holds the shipped generators.
WHEEL_MODELS = "synthvu_app/models"
ABSENT = {
    "real-derived report arrays": "real VUs' embeddings and UMAP coordinates, candidate indices and membership, "
                                  "per-candidate scores, distances and nearest neighbours, per-patient scores and "
                                  "closest real-synthetic pairs never leave (only aggregate or synthetic arrays do)",
    "training checkpoint": "optimiser state and the discriminator of an unfinished run; under DP also the "
                           "mechanism's random state (private material: it replays the noise), never shared",
    "training command": "it names local folders",
}


def public_array(key: str) -> bool:
    """True where report array ``key`` is on the whitelist."""
    return any(re.fullmatch(p, key) for p in PUBLIC_ARRAYS)


def public_prior(card: dict[str, Any]) -> bool:
    """True where ``card`` is one of :data:`PUBLIC_PRIORS`, trained on the dataset the whitelist names."""
    name, ds = card.get("name"), card.get("dataset") or {}
    return name in PUBLIC_PRIORS and isinstance(ds, dict) and ds.get("fingerprint") == PUBLIC_PRIORS[name][0]


def wheel_file_may_leave(path: str) -> bool:
    """True where ``path`` (a file inside the wheel) is on the whitelist; a discriminator only for a public prior."""
    if any(re.fullmatch(p, path) for p in WHEEL_CODE):
        return True
    m = re.fullmatch(re.escape(WHEEL_MODELS) + r"/([a-z0-9_-]+)/(.+)", path)
    if m is None:
        return False
    name, inner = m.groups()
    if inner == DISCRIMINATOR_FILE:
        return name in PUBLIC_PRIORS
    return any(re.fullmatch(p, inner) for p in RELEASE_FILES)


def public_card(card: dict[str, Any], *, with_discriminator: bool | None) -> dict[str, Any]:
    """The card as shared: source file names become a count, the dataset path and the command line (local
    paths) are dropped. ``with_discriminator`` None leaves the card's discriminator entry as it is."""
    out = copy.deepcopy(dict(card))
    ds = out.get("dataset")
    if isinstance(ds, dict):
        if isinstance(ds.get("sources"), list):
            ds["sources"] = f"{len(ds['sources'])} source files"
        ds.pop("path", None)
    tr = out.get("training")
    if isinstance(tr, dict):
        tr.pop("command", None)
        if isinstance(tr.get("teacher_training"), dict):  # a distilled student carries its teacher's record
            tr["teacher_training"].pop("command", None)
    if with_discriminator is not None:
        out["discriminator"] = {**(out.get("discriminator") or {}), "kept": with_discriminator}
    if isinstance(out.get("dp"), dict) and isinstance(tr, dict):
        tr.pop("seconds", None)  # its time grows with the (private) number of sampled real VUs, as each step's
        out["dp"]["not_covered"] = NOT_COVERED_BY_DP
    return out


def _discriminator_is_private(card: dict[str, Any]) -> bool:
    """Whether DP-SGD trained the discriminator and a bound still holds for its patients: not where a run without
    DP on them makes the composed ε infinite (:func:`~synthvu_core.models.ledger.composed_of`)."""
    import math

    from synthvu_core.models.ledger import composed_of

    found = composed_of(card) if _dp_trained_discriminator(card) else None
    return _dp_trained_discriminator(card) and (found is None or math.isfinite(found[0]))


def _dp_trained_discriminator(card: dict[str, Any]) -> bool:
    dp = card.get("dp") or {}
    return bool(dp) and dp.get("private_module", "discriminator") == "discriminator" and dp.get("epsilon") is not None


def _why_kept_private(card: dict[str, Any]) -> str:
    """Why a discriminator may not leave: trained without DP, or with DP whose bound another run voided."""
    if _dp_trained_discriminator(card):
        return ("trained with differential privacy, but a run without it on the same patients leaves them no bound "
                "(composed ε = ∞), so it is a membership oracle")
    return "trained without differential privacy, and a released discriminator is a membership oracle"


def discriminator_may_leave(card: dict[str, Any]) -> bool:
    """True where the discriminator was trained with DP or the generator is a public prior."""
    return _discriminator_is_private(card) or public_prior(card)


def _public_arrays(src: Path, dst: Path) -> list[str]:
    """Copy the whitelisted arrays of ``src`` (an ``.npz``, a zip of ``KEY.npy`` members) to ``dst``
    byte for byte; returns the keys left out."""
    left_out: list[str] = []
    try:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                key = info.filename.removesuffix(".npy")
                if public_array(key):
                    zout.writestr(info.filename, zin.read(info))
                else:
                    left_out.append(key)
    except (OSError, zipfile.BadZipFile) as e:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise  # the copy's disk, not the source: the enclosing atomic write names the output
        raise SynthVUError(f"{src}: unreadable report arrays ({e})") from None
    return left_out


def _public_report(src: Path, dst: Path) -> list[str]:
    """Write the public copy of report folder ``src`` at ``dst``; returns the array keys left out."""
    doc = json.loads((src / REPORT_FILE).read_text())
    scalars = {k: v for k, v in doc["scalars"].items() if k.startswith(PUBLIC_SCALARS)}
    meta = {k: v for k, v in doc["meta"].items() if k in PUBLIC_META}
    meta["public"] = True
    controls = [c for c in doc.get("controls", []) if (src / CONTROLS_DIR / c / REPORT_FILE).is_file()]
    dst.mkdir(parents=True)
    out = {"scalars": scalars, "definitions": {k: v for k, v in doc["definitions"].items() if k in scalars},
           "meta": meta, "controls": controls}
    (dst / REPORT_FILE).write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
    left_out = _public_arrays(src / ARRAYS_FILE, dst / ARRAYS_FILE)
    for name in controls:
        left_out += _public_report(src / "controls" / name, dst / "controls" / name)
    return left_out


def share(model_dir: str | Path, out: str | Path, *, with_discriminator: bool = False, check: bool = True) -> Path:
    """Write the shareable copy of a generator folder at ``out`` (atomically); returns ``out``.

    Args:
        model_dir: the generator folder.
        out: the folder to write; it must not exist, or be empty.
        with_discriminator: include the discriminator (refused unless it was trained with DP).
        check: load the weights and the report first (refusing what a collaborator could not use); the wheel's
            build hook passes False, as it runs without torch (the test suite loads every shipped generator).
    """
    from synthvu_core import modelcard
    from synthvu_core.models.ledger import recomposed_block
    from synthvu_core.models.registry import load_card
    from synthvu_core.storage import atomic_path

    src, out = Path(model_dir), Path(out)
    card = load_card(src)
    block = recomposed_block(card)  # the bound as this machine knows it now: a recipient cannot recompose it
    if block is not None:
        card = {**card, "privacy_ledger": block}
    if with_discriminator and not discriminator_may_leave(card):
        raise CheckpointError(
            f"{src / DISCRIMINATOR_FILE}: refused: this discriminator was {_why_kept_private(card)} (share without it)"
        )
    if with_discriminator and not (src / DISCRIMINATOR_FILE).is_file():
        raise CheckpointError(f"{src / DISCRIMINATOR_FILE}: no discriminator in this folder")
    if not (src / GENERATOR_FILE).is_file():
        raise CheckpointError(f"{src / GENERATOR_FILE}: generator weights are missing")
    if check:
        _check_loads(src)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SynthVUError(f"{out}: already exists and is not an empty folder; choose a new --out")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise SynthVUError(f"{out}: inside the generator folder {src}; choose a folder outside it")
    if out.is_dir():
        out.rmdir()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        manifest = _write_parts(src, tmp, card, with_discriminator)
        (tmp / SHARE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        modelcard.write(tmp)
        manifest["included"].append(modelcard.README_FILE)
        (tmp / SHARE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _check_loads(src: Path) -> None:
    """Refuse, before anything is written, what a collaborator could not use: weights that ``sample`` refuses
    (:class:`CheckpointError`: damaged, foreign, not safetensors) and a report that is not of these weights or is
    damaged (:class:`~synthvu_core.errors.ReportError`), each naming the file."""
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.models.registry import load_generator

    load_generator(src)
    if (src / REPORT_DIR / REPORT_FILE).is_file():
        load_report(src)


def _blank_timing(log: Path) -> None:
    """Empty the per-step ``vus_per_s`` column of a DP run's log: a step's time grows with the (private) number of
    sampled real VUs."""
    import csv
    import io

    if not log.is_file():
        return
    with log.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "vus_per_s" not in rows[0]:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "vus_per_s": ""} for r in rows)
    log.write_text(buf.getvalue())


def _write_parts(src: Path, dst: Path, card: dict[str, Any], with_discriminator: bool) -> dict[str, Any]:
    """Copy the whitelisted parts of ``src`` into ``dst``; the manifest of what is in and what is out."""

    included = [GENERATOR_FILE, CARD_FILE]
    absent = dict(ABSENT)
    shutil.copyfile(src / GENERATOR_FILE, dst / GENERATOR_FILE)
    (dst / CARD_FILE).write_text(
        json.dumps(public_card(card, with_discriminator=with_discriminator), indent=2) + "\n"
    )
    if with_discriminator:
        shutil.copyfile(src / DISCRIMINATOR_FILE, dst / DISCRIMINATOR_FILE)
        why = "trained with DP" if _discriminator_is_private(card) else PUBLIC_PRIORS[card["name"]][1]
        included.append(f"{DISCRIMINATOR_FILE} ({why})")
    else:
        absent[DISCRIMINATOR_FILE] = (
            _why_kept_private(card)
            if not discriminator_may_leave(card)
            else "left out (add --with-discriminator: " + ("it was trained with DP)" if _discriminator_is_private(card)
                                                           else "a public prior's, trained on public data only)")
        )
    if (src / REPORT_DIR / REPORT_FILE).is_file():
        left_out = _public_report(src / REPORT_DIR, dst / REPORT_DIR)
        included.append(f"{REPORT_DIR}/ (aggregates only" + ("; computed without DP, not covered by its ε)"
                                                             if card.get("dp") else ")"))
        absent["real-derived report arrays"] += f" ({len(left_out)} arrays left out)"
    elif (src / REPORT_DIR / VOLUME_REPORT).is_file():  # scalars, counts and texts; not the evaluating machine
        (dst / REPORT_DIR).mkdir()
        doc = json.loads((src / REPORT_DIR / VOLUME_REPORT).read_text())
        doc.pop("numerics", None)  # as a VU report's meta.numerics: not in PUBLIC_META
        (dst / REPORT_DIR / VOLUME_REPORT).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        included.append(f"{REPORT_DIR}/{VOLUME_REPORT} (aggregates only)")
    elif not (src / REPORT_DIR / CLINICAL_REPORT_FILE).is_file():
        absent[REPORT_DIR] = "this generator has no evaluation report"
    included += _clinical_parts(src, dst)
    training = sorted((src / "training").glob("montage_step*.png")) + sorted((src / "training").glob("log.csv"))
    if training:
        (dst / "training").mkdir()
        for f in training:
            shutil.copyfile(f, dst / "training" / f.name)
        if card.get("dp"):
            _blank_timing(dst / "training" / "log.csv")
        included.append("training/ (loss log and montages of synthetic VUs)")
    if (src / "audit.json").is_file():
        shutil.copyfile(src / "audit.json", dst / "audit.json")
        included.append("audit.json (empirical privacy audit of the recipe)")
    return {
        "source": card["name"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "included": included,
        "absent": absent,
    }


def _clinical_parts(src: Path, dst: Path) -> list[str]:
    """Copy a joint generator's released synthetic table and its clinical evaluation (aggregates only); what was
    copied, for the manifest."""
    out = []
    if (src / SYNTHETIC_TABLE_FILE).is_file():
        shutil.copyfile(src / SYNTHETIC_TABLE_FILE, dst / SYNTHETIC_TABLE_FILE)
        out.append(f"{SYNTHETIC_TABLE_FILE} (the released synthetic table: synthetic rows only)")
    if (src / REPORT_DIR / CLINICAL_REPORT_FILE).is_file():
        (dst / REPORT_DIR).mkdir(exist_ok=True)
        doc = json.loads((src / REPORT_DIR / CLINICAL_REPORT_FILE).read_text())
        doc.pop("cpu_seconds", None)  # no timings leave, as for a VU report's meta
        (dst / REPORT_DIR / CLINICAL_REPORT_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        out.append(f"{REPORT_DIR}/{CLINICAL_REPORT_FILE} (the clinical evaluation: aggregates only)")
    return out


def release_models(models_root: str | Path, out: str | Path) -> list[Path]:
    """Write the shareable copy of every generator folder under ``models_root`` into ``out/NAME`` (the
    wheel's build hook); the discriminator only for a public prior. Returns the folders written."""
    from synthvu_core.models.ledger import only_cards_under
    from synthvu_core.names import CARD_FILE

    written = []
    with only_cards_under(models_root):  # the wheel's cards compose over the shipped cards, not the builder's runs
        for src in sorted(p for p in Path(models_root).iterdir() if (p / CARD_FILE).is_file()):
            card = json.loads((src / CARD_FILE).read_text())
            written.append(share(src, Path(out) / src.name, with_discriminator=public_prior(card), check=False))
    return written
