"""Privacy claims that hold: the dataset's ledger composes every run, a DP run starts only from a verified public
prior, nothing private is released by shape, and statistical tests on the mechanism's output catch a broken one."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from test_training import VUS, public_dataset, small, tiny_dataset

from synthvu_core.data.dataset import VUDataset
from synthvu_core.errors import SelectionError
from synthvu_core.models.dp import DPConfig
from synthvu_core.models.ledger import LEDGER_FILE, composed_text
from synthvu_core.models.registry import load_card
from synthvu_core.models.training import Trainer, train

torch.set_num_threads(1)


# ---- the ledger -----------------------------------------------------------------------------------
def test_a_run_without_dp_makes_the_composed_bound_infinite(tmp_path):
    tiny_dataset().save(tmp_path / "ds")
    ds = VUDataset.load(tmp_path / "ds")
    first = load_card(train(ds, tmp_path / "dp", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False))
    eps1 = first["dp"]["epsilon"]
    assert first["privacy_ledger"]["runs"] == 1 and first["privacy_ledger"]["composed_epsilon"] == pytest.approx(eps1)
    second = load_card(train(ds, tmp_path / "dp2", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False))
    assert second["privacy_ledger"]["composed_epsilon"] > second["dp"]["epsilon"] * 1.2  # two runs compose
    third = load_card(train(ds, tmp_path / "nodp", small(steps=1), progress=False))
    assert third["dp"] is None and third["privacy_ledger"]["composed_epsilon"] is None  # infinite: stored as null
    assert third["privacy_ledger"]["runs"] == 3 and "composed ε = ∞" in composed_text(third)
    kept = json.loads((tmp_path / "ds" / LEDGER_FILE).read_text())
    assert kept["keyed_by"] == "patient" and kept["datasets"] == [ds.fingerprint]
    assert all(e["patients"] == ds.patients("train") and e["dataset"] == ds.fingerprint for e in kept["entries"])
    assert third["privacy_ledger"]["entries"][0]["patients"] == len(ds.patients("train"))  # a count, never the ids
    assert [e["dp"] for e in kept["entries"]] == [True, True, False] and kept["entries"][2]["epsilon"] is None
    assert kept["entries"][0]["noise_multiplier"] == 1.0 and kept["entries"][0]["steps"] == 2


def test_a_rebuilt_cohort_with_a_new_fingerprint_composes_over_the_same_patients(tmp_path):
    tiny_dataset().save(tmp_path / "ds")
    first = load_card(train(VUDataset.load(tmp_path / "ds"), tmp_path / "a",
                            small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False))
    tiny_dataset(seed=7).save(tmp_path / "ds")  # rebuilt: the same patients, other pixels
    rebuilt = VUDataset.load(tmp_path / "ds")
    assert rebuilt.fingerprint != first["dataset"]["fingerprint"]
    second = load_card(train(rebuilt, tmp_path / "b", small(steps=2, dp=DPConfig(noise_multiplier=1.0)),
                             progress=False))
    assert second["privacy_ledger"]["runs"] == 2
    assert second["privacy_ledger"]["composed_epsilon"] > second["dp"]["epsilon"] * 1.2
    kept = json.loads((tmp_path / "ds" / LEDGER_FILE).read_text())
    assert kept["datasets"] == [first["dataset"]["fingerprint"], rebuilt.fingerprint]


def test_a_build_of_the_same_patients_into_another_folder_composes_through_the_user_ledger(tmp_path):
    import shutil

    from synthvu_core.models import ledger

    tiny_dataset().save(tmp_path / "here")
    tiny_dataset(seed=7).save(tmp_path / "elsewhere")  # the same patients built into a second folder
    dp = small(steps=2, dp=DPConfig(noise_multiplier=1.0))
    first = load_card(train(VUDataset.load(tmp_path / "here"), tmp_path / "a", dp, progress=False))
    shutil.copytree(tmp_path / "here", tmp_path / "copy")  # its ledger copied along: run "a" twice on disk
    second = load_card(train(VUDataset.load(tmp_path / "elsewhere"), tmp_path / "b", dp, progress=False))
    assert len(ledger.read_entries(tmp_path / "elsewhere" / LEDGER_FILE)) == 1  # the folder saw only its own run
    assert second["privacy_ledger"]["runs"] == 2 and [e["run"] for e in second["privacy_ledger"]["entries"]] == [
        first["name"], second["name"]]
    assert second["privacy_ledger"]["composed_epsilon"] > second["dp"]["epsilon"] * 1.2
    third = load_card(train(VUDataset.load(tmp_path / "copy"), tmp_path / "c", dp, progress=False))
    assert third["privacy_ledger"]["runs"] == 3  # "a" once, though both the copy and the user's ledger hold it
    user = ledger.read_entries(ledger.user_ledger_path())
    assert [e["run"] for e in user] == ["a", "b", "c"] and len({e["id"] for e in user}) == 3


def test_the_user_ledger_is_checked_before_any_write_keeps_a_shared_files_mode_and_follows_a_link(tmp_path,
                                                                                                  monkeypatch):
    import os

    from synthvu_core.errors import DataError
    from synthvu_core.models import ledger

    run = {"run": "x", "dp": True, "epsilon": 1.0, "noise_multiplier": 1.0, "sample_rate": 0.5, "steps": 2}
    folder = tmp_path / "ds" / LEDGER_FILE
    folder.parent.mkdir()
    ledger.append(folder, "f1", ["p1"], run)
    assert ledger.user_ledger_path().stat().st_mode & 0o777 == 0o600  # new: its owner's alone (it names patients)
    shared = tmp_path / "group" / LEDGER_FILE
    shared.parent.mkdir()
    shared.write_text('{"entries": []}')
    shared.chmod(0o664)
    (tmp_path / "link.json").symlink_to(shared)
    monkeypatch.setenv(ledger.USER_LEDGER_ENV, str(tmp_path / "link.json"))
    ledger.append(folder, "f1", ["p1"], run)
    assert (tmp_path / "link.json").is_symlink() and len(ledger.read_entries(shared)) == 1
    assert shared.stat().st_mode & 0o777 == 0o664
    shared.write_text("{not json")
    named = r"group/privacy_ledger.json \(the user's privacy ledger, \$SYNTHVU_LEDGER\): unreadable"
    with pytest.raises(DataError, match=named):
        ledger.append(folder, "f1", ["p1"], run)
    assert len(ledger.read_entries(folder)) == 2  # the folder's ledger was not written either
    tiny_dataset().save(tmp_path / "ds2")
    with pytest.raises(DataError, match="unreadable privacy ledger"):  # refused before training, not after
        train(VUDataset.load(tmp_path / "ds2"), tmp_path / "never", small(steps=1), progress=False)
    assert not (tmp_path / "never").exists()
    monkeypatch.setenv(ledger.USER_LEDGER_ENV, os.path.join("relative", LEDGER_FILE))
    with pytest.raises(DataError, match="must be an absolute path"):
        ledger.user_ledger_path()


def test_data_show_says_what_was_spent_on_the_patients_in_every_folder(tmp_path, capsys):
    from synthvu_core.cli import main

    tiny_dataset().save(tmp_path / "here")
    tiny_dataset(seed=7).save(tmp_path / "elsewhere")
    assert main(["data", "show", str(tmp_path / "elsewhere")]) == 0
    assert "privacy ledger: no run recorded on these patients yet" in capsys.readouterr().out
    train(VUDataset.load(tmp_path / "here"), tmp_path / "a", small(steps=2, dp=DPConfig(noise_multiplier=1.0)),
          progress=False)
    assert main(["data", "show", str(tmp_path / "elsewhere")]) == 0
    assert "privacy ledger: 1 run recorded on these patients" in capsys.readouterr().out
    train(VUDataset.load(tmp_path / "elsewhere"), tmp_path / "b", small(steps=1), progress=False)
    assert main(["data", "show", str(tmp_path / "here")]) == 0
    assert "2 runs recorded on these patients (this folder's ledger and the user's); composed ε = ∞" in (
        capsys.readouterr().out)


def test_a_patient_is_known_by_its_images_whatever_its_id_in_a_build(tmp_path):
    from synthetic_volumes import write_spine

    from synthvu_core.data.build import build_dataset
    from synthvu_core.models import ledger
    from synthvu_core.names import IMAGE_DIGESTS

    for i in range(4):  # five patients, five spines (each leaning by another number of mm per body)
        write_spine(tmp_path / "site-a", f"sub-{i:02d}", tilt=float(i))
    write_spine(tmp_path / "site-b", "sub-09", tilt=4.0)
    build_dataset(tmp_path / "site-a", tmp_path / "alone", workers=1, progress=False)  # ids sub-00 ...
    build_dataset([tmp_path / "site-a", tmp_path / "site-b"], tmp_path / "both", workers=1, progress=False)
    alone, both = VUDataset.load(tmp_path / "alone"), VUDataset.load(tmp_path / "both")  # both: site-a_sub-00 ...
    assert not set(alone.patients()) & set(both.patients())
    assert len({d for v in both.card[IMAGE_DIGESTS].values() for d in v}) == 5  # one digest per source image
    assert ledger.spent_on(both) == (0.0, 0)
    card = load_card(train(alone, tmp_path / "g", small(steps=1), progress=False))
    assert ledger.spent_on(both)[1] == 1  # the same people under other ids: the run on them counts
    kept = ledger.read_entries(tmp_path / "alone" / LEDGER_FILE)[0]
    assert kept["images"] and set(kept["images"]) <= {d for v in alone.card[IMAGE_DIGESTS].values() for d in v}
    shipped = json.dumps(card)
    assert IMAGE_DIGESTS not in shipped and '"images"' not in shipped  # never in what a generator carries out
    assert not any(d in shipped for v in alone.card[IMAGE_DIGESTS].values() for d in v)


def test_a_user_ledger_that_is_the_folder_ledger_records_each_run_once(tmp_path, monkeypatch):
    from synthvu_core.models import ledger

    path = tmp_path / LEDGER_FILE
    monkeypatch.setenv(ledger.USER_LEDGER_ENV, str(path))
    run = {"run": "x", "dp": True, "epsilon": 1.0, "noise_multiplier": 1.0, "sample_rate": 0.5, "steps": 2}
    assert len(ledger.append(path, "f1", ["p1"], run)) == 1 and len(ledger.read_entries(path)) == 1


def test_the_ledger_composes_runs_that_share_patients_and_only_those(tmp_path):
    from synthvu_core.models import ledger

    path = tmp_path / LEDGER_FILE
    run = {"run": "x", "dp": True, "epsilon": 1.0, "noise_multiplier": 1.0, "sample_rate": 0.5, "steps": 2}
    phantom = public_dataset(prefix="sub-", recipe_seed=2)
    keys = ledger.run_patients(phantom)
    assert keys and all(k.startswith("phantom-seed2/sub-") for k in keys)
    other_seed = ledger.run_patients(public_dataset(prefix="sub-", recipe_seed=3))  # same ids, other patients
    assert ledger.append(path, "f1", keys, {**run, "run": "a"})[-1]["run"] == "a"
    assert [e["run"] for e in ledger.append(path, "f2", other_seed, {**run, "run": "b"})] == ["b"]
    assert [e["run"] for e in ledger.append(path, "f3", keys[:1], {**run, "run": "c"})] == ["a", "c"]
    assert len(ledger.read_entries(path)) == 3


def test_an_older_fingerprint_keyed_ledger_stays_readable_and_composes_with_every_later_run(tmp_path):
    from synthvu_core.models import ledger

    path = tmp_path / LEDGER_FILE
    old = {"run": "old", "created": "2026-01-01T00:00:00+00:00", "dp": False, "epsilon": None}
    path.write_text(json.dumps({"fingerprint": "0123456789abcdef", "composition": "over this dataset",
                                "entries": [old]}))
    entries = ledger.append(path, "fedcba9876543210", ["p1"], {"run": "new", "dp": True, "epsilon": 1.0,
                                                               "noise_multiplier": 1.0, "sample_rate": 0.5,
                                                               "steps": 2})
    assert [e["run"] for e in entries] == ["old", "new"] and math.isinf(ledger.composed_epsilon(entries, 1e-5))
    kept = json.loads(path.read_text())
    assert kept["datasets"] == ["0123456789abcdef", "fedcba9876543210"] and "patients" not in kept["entries"][0]


# ---- public priors -------------------------------------------------------------------------------
def test_dp_init_from_needs_a_public_prior_of_other_patients(tmp_path):
    ds = tiny_dataset()
    dp, tl = DPConfig(noise_multiplier=1.0), ["T", "L"]
    own = train(ds, tmp_path / "own", small(steps=1), progress=False)  # not public: the private patients themselves
    with pytest.raises(SelectionError, match="declares none"):
        Trainer(ds, tmp_path / "x", small(steps=1, init_from=str(own), dp=dp, classes=tl))
    same_ids = train(public_dataset(prefix="q", seed=1), tmp_path / "ids", small(steps=1), progress=False)
    with pytest.raises(SelectionError, match="patients of the private dataset"):  # other scans, same patients
        Trainer(public_dataset(prefix="q", seed=2), tmp_path / "x", small(steps=1, init_from=str(same_ids), dp=dp,
                                                                         classes=tl))
    with pytest.raises(SelectionError, match="same content"):  # the private scans under other ids
        Trainer(tiny_dataset(prefix="r", seed=1), tmp_path / "x",
                small(steps=1, init_from=str(same_ids), dp=dp, classes=tl))
    (same_ids / "public_patients.json").unlink()
    with pytest.raises(SelectionError, match="public_patients.json"):
        Trainer(ds, tmp_path / "x", small(steps=1, init_from=str(same_ids), dp=dp, classes=tl))
    Trainer(ds, tmp_path / "ok", small(steps=1, init_from=str(own), classes=tl))  # without DP nothing is claimed


def test_a_private_prior_fine_tuned_on_the_phantom_stays_private(tmp_path):
    """A generator trained on the private patients, then fine-tuned on public data, still carries them: its card
    declares no public data, so it cannot seed a DP run on them; fine-tuned from a public prior, it may."""
    ds = tiny_dataset()
    dp, tl = DPConfig(noise_multiplier=1.0), ["T", "L"]
    own = train(ds, tmp_path / "own", small(steps=1), progress=False)
    laundered = train(public_dataset(), tmp_path / "laundered", small(steps=1, init_from=str(own)), progress=False)
    assert "public_data" not in load_card(laundered) and not (laundered / "public_patients.json").exists()
    with pytest.raises(SelectionError, match="declares none"):
        Trainer(ds, tmp_path / "x", small(steps=1, init_from=str(laundered), dp=dp, classes=tl))
    public = train(public_dataset(prefix="q", seed=3), tmp_path / "pub", small(steps=1), progress=False)
    again = train(public_dataset(), tmp_path / "again", small(steps=1, init_from=str(public)), progress=False)
    assert "public_data" in load_card(again)
    Trainer(ds, tmp_path / "ok", small(steps=1, init_from=str(again), dp=dp, classes=tl))
    # the fine-tune lists its prior's patients too: a DP run on those is refused from either
    listed = json.loads((again / "public_patients.json").read_text())["patients"]
    assert set(json.loads((public / "public_patients.json").read_text())["patients"]) <= set(listed)
    with pytest.raises(SelectionError, match="patients of the private dataset"):
        Trainer(public_dataset(prefix="q", seed=4), tmp_path / "x", small(steps=1, init_from=str(again), dp=dp,
                                                                          classes=tl))


def test_a_dp_run_refuses_a_dataset_harmonised_across_patients(tmp_path):
    """Harmonisation between sources maps every VU through percentiles pooled over all patients: no DP bound covers
    that, so a DP run asks for a build without it; one source (nothing pooled) or --harmonise none are accepted."""
    ds = tiny_dataset()
    ds.card["harmonisation"] = {"method": "nyul"}
    with pytest.raises(SelectionError, match="harmonised between sources.*--harmonise none"):
        Trainer(ds, tmp_path / "x", small(steps=1, dp=DPConfig(noise_multiplier=1.0)))
    Trainer(ds, tmp_path / "y", small(steps=1))  # without DP nothing is claimed
    ds.card["harmonisation"] = {"method": "none"}
    Trainer(ds, tmp_path / "z", small(steps=1, dp=DPConfig(noise_multiplier=1.0)))


def test_runs_on_a_dataset_without_a_folder_claim_no_composed_bound(tmp_path):
    """In memory nothing is recorded, so each run's block holds it alone: no composed bound is read from it."""
    from synthvu_core.models.ledger import composed_of

    ds = tiny_dataset()
    cards = [load_card(train(ds, tmp_path / f"in-memory-{i}", small(steps=1, dp=DPConfig(noise_multiplier=1.0)),
                             progress=False)) for i in range(2)]
    assert all(c["privacy_ledger"]["runs"] == 1 for c in cards)  # recorded nowhere: nothing to compose with
    assert composed_of(cards[1]) is None and composed_text(cards[1]) is None


def test_a_card_read_later_composes_the_runs_recorded_since(tmp_path):
    """The dashboard, the report and the README read the composed bound at the time they are read: a DP run on
    the same patients after a card was written raises its composed epsilon, a run without DP makes it infinite."""
    from synthvu_core.evaluation.report import composed_meta
    from synthvu_core.models.ledger import composed_of

    tiny_dataset().save(tmp_path / "ds")
    ds = VUDataset.load(tmp_path / "ds")
    first = load_card(train(ds, tmp_path / "a", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False))
    own = first["privacy_ledger"]["composed_epsilon"]
    assert composed_of(first) == (pytest.approx(own), 1)
    second = load_card(train(ds, tmp_path / "b", small(steps=2, dp=DPConfig(noise_multiplier=1.0)), progress=False))
    eps, runs = composed_of(first)
    assert runs == 2 and eps == pytest.approx(second["privacy_ledger"]["composed_epsilon"]) and eps > own * 1.2
    assert "1 of them after this card was written" in composed_text(first)
    assert composed_meta(first)["dp_composed_epsilon"] == pytest.approx(eps)
    from synthvu_core.models.ledger import bound_changed

    assert "is now ε = " in bound_changed(first, {"dp_composed_bound": "finite", "dp_composed_epsilon": own})
    assert bound_changed(first, composed_meta(first)) is None
    train(ds, tmp_path / "c", small(steps=1), progress=False)
    assert composed_of(first) == (math.inf, 3) and composed_meta(first)["dp_composed_bound"] == "infinite"
    from synthvu_core.share import share

    shared = load_card(share(tmp_path / "a", tmp_path / "shared"))  # the recipient reads the bound known now
    assert shared["privacy_ledger"]["composed_epsilon"] is None and shared["privacy_ledger"]["runs"] == 3
    assert shared["privacy_ledger"]["later_runs"] == 2 and composed_of(shared) == (math.inf, 3)
    assert all("patients" not in e or isinstance(e["patients"], int) for e in shared["privacy_ledger"]["entries"])
    other = tmp_path / "other"  # another machine: neither ledger holds the card's run, so the card's record stands
    other.mkdir()
    (tmp_path / "ds" / LEDGER_FILE).rename(other / LEDGER_FILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHVU_LEDGER", str(other / "user.json"))
        assert composed_of(first) == (pytest.approx(own), 1)


def test_a_card_composes_with_the_runs_its_siblings_record_on_the_same_patients(tmp_path, monkeypatch, capsys):
    """On a machine whose ledgers never saw the runs (a fresh clone of shipped generators), a card written before a
    later run on its patients still composes with it: the later run's card records it. The composition is Opacus's
    RDP over both runs, computed where no card stores it; a run on another split of the same VUs (which shares
    patients) voids it; a folder listed with ``models list --dir`` counts as ``$SYNTHVU_MODELS`` does."""
    import shutil

    from opacus.accountants import RDPAccountant

    from synthvu_core.cli import main
    from synthvu_core.data.dataset import SplitConfig
    from synthvu_core.models.ledger import composed_of

    tiny_dataset().save(tmp_path / "ds")
    ds = VUDataset.load(tmp_path / "ds")
    models, other_split = tmp_path / "models", tmp_path / "other"
    for name, sigma in (("a", 1.0), ("b", 1.3)):
        train(ds, models / name, small(steps=2, dp=DPConfig(noise_multiplier=sigma)), progress=False)
    tiny_dataset().with_split(SplitConfig(0.5, 0.25, 0.25, seed=1)).save(tmp_path / "ds1")
    train(VUDataset.load(tmp_path / "ds1"), other_split / "c", small(steps=1), progress=False)  # no DP
    first = load_card(models / "a")
    second = json.loads((models / "b" / "card.json").read_text())  # as if trained where a was never recorded
    second["privacy_ledger"]["entries"] = second["privacy_ledger"]["entries"][-1:]
    second["privacy_ledger"]["runs"] = 1
    (models / "b" / "card.json").write_text(json.dumps(second))
    shutil.rmtree(tmp_path / "ds")  # another machine: no dataset folder, a fresh user ledger
    shutil.rmtree(tmp_path / "ds1")
    monkeypatch.setenv("SYNTHVU_LEDGER", str(tmp_path / "fresh.json"))
    own = first["privacy_ledger"]["composed_epsilon"]
    assert composed_of(first) == (pytest.approx(own), 1)  # not listed: its own record
    acc = RDPAccountant()
    acc.history = [(float(c["dp"]["noise_multiplier"]), float(c["dp"]["sample_rate"]), int(c["dp"]["steps"]))
                   for c in (first, second)]
    want = acc.get_epsilon(delta=first["privacy_ledger"]["delta"])
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    assert composed_of(first) == (pytest.approx(want), 2) and want > own * 1.05  # no card stores this composition
    assert composed_of(second) == (pytest.approx(want), 2)
    monkeypatch.delenv("SYNTHVU_MODELS")
    assert main(["models", "list", "--dir", str(models)]) == 0
    listed = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed["a"][5:7] == [f"{first['dp']['epsilon']:.2f}", f"{want:.2f}"]  # the run's ε, then the composed one
    monkeypatch.setenv("SYNTHVU_MODELS", os.pathsep.join(map(str, (models, other_split))))
    assert composed_of(first) == (math.inf, 3)  # another split of the same VUs: it shares patients


def test_rdp_composition_is_opacuss_without_importing_torch():
    """The composed ε is Opacus's RDPAccountant's (its orders and analysis), read without importing torch."""
    import subprocess
    import sys

    from opacus.accountants import RDPAccountant

    from synthvu_core.models.ledger import RDP_ORDERS, composed_epsilon

    assert tuple(RDPAccountant.DEFAULT_ALPHAS) == RDP_ORDERS
    rng = np.random.default_rng(0)
    for _ in range(4):
        history = [(float(rng.uniform(0.6, 12)), float(rng.uniform(0.01, 0.5)), int(rng.integers(1, 400)))
                   for _ in range(int(rng.integers(1, 4)))]
        acc = RDPAccountant()
        acc.history = history
        entries = [{"dp": True, "noise_multiplier": s, "sample_rate": q, "steps": n} for s, q, n in history]
        assert composed_epsilon(entries, 1e-5) == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-12)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from synthvu_core.models.ledger import composed_epsilon\n"
            "e = composed_epsilon([{'dp': True, 'noise_multiplier': 1.0, 'sample_rate': 0.1, 'steps': 10}], 1e-5)\n"
            "assert 'opacus' not in sys.modules and e > 0, e\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_run_recorded_nowhere_composes_with_the_listed_runs_on_its_patients(tmp_path, monkeypatch):
    """A DP card of an in-memory dataset claims no composed bound alone; a listed run without DP on the same VUs
    makes it infinite, so its discriminator may not leave."""
    from synthvu_core.models.ledger import composed_of
    from synthvu_core.share import discriminator_may_leave

    ds = tiny_dataset()
    card = load_card(train(ds, tmp_path / "models" / "mem", small(steps=2, dp=DPConfig(noise_multiplier=1.0)),
                           progress=False))
    assert composed_of(card) is None and discriminator_may_leave(card)
    ds.save(tmp_path / "ds")
    train(VUDataset.load(tmp_path / "ds"), tmp_path / "models" / "plain", small(steps=1), progress=False)
    monkeypatch.setenv("SYNTHVU_MODELS", str(tmp_path / "models"))
    assert composed_of(card) == (math.inf, 2) and not discriminator_may_leave(card)


def test_a_ledger_path_that_is_a_folder_is_refused_before_the_run(tmp_path, monkeypatch):
    from synthvu_core.errors import DataError
    from synthvu_core.models.ledger import check_readable

    tiny_dataset().save(tmp_path / "ds")
    (tmp_path / "ledger").mkdir()
    monkeypatch.setenv("SYNTHVU_LEDGER", str(tmp_path / "ledger"))
    with pytest.raises(DataError, match="is a folder, not a privacy ledger file"):
        check_readable(VUDataset.load(tmp_path / "ds"))


def test_verdict_b_quotes_the_composed_bound_not_the_runs_own():
    from synthvu_core.evaluation.verdicts import private_discriminator_epsilon, released_discriminator_verdict

    meta = {"dp_epsilon": 1.0, "dp_private_module": "discriminator"}
    assert private_discriminator_epsilon(meta) == 1.0  # a report before the composed record: the run's own
    assert private_discriminator_epsilon({**meta, "dp_composed_bound": "finite", "dp_composed_epsilon": 2.5}) == 2.5
    voided = private_discriminator_epsilon({**meta, "dp_composed_bound": "infinite", "dp_composed_epsilon": None})
    assert voided == math.inf
    assert private_discriminator_epsilon({**meta, "dp_private_module": "generator"}) is None
    text = released_discriminator_verdict({}, None, voided)["text"]
    assert "Keep the discriminator private" in text and "composed ε = ∞" in text and "covered" not in text
    assert "(ε = 2.50)" in released_discriminator_verdict({}, None, 2.5)["text"]
    alone = released_discriminator_verdict({}, None, 2.5, composed=False)["text"]  # no composition recorded
    assert "other runs on these patients are not composed" in alone and "composed over every run" not in alone


def test_share_keeps_a_discriminator_whose_composed_bound_is_infinite():
    from synthvu_core.share import discriminator_may_leave

    card = {"dp": {"epsilon": 1.0, "private_module": "discriminator"},
            "privacy_ledger": {"kept": "with the dataset", "composed_epsilon": 3.0, "runs": 2, "entries": []}}
    assert discriminator_may_leave(card)
    card["privacy_ledger"]["composed_epsilon"] = None  # a run without DP on the same patients
    assert not discriminator_may_leave(card)


# ---- nothing private by shape -----------------------------------------------------------------------
def with_extra_vu(ds: VUDataset, level: str = "L5/L6") -> VUDataset:
    """``ds`` with one more VU (an L5/L6) for one of its train patients."""
    units = ds.units.copy()
    patient = ds.patients("train")[0]
    row = units[units["patient_id"] == patient].iloc[[-1]].assign(level=level)
    units = pd.concat([units, row], ignore_index=True)
    images = np.concatenate([ds.images, ds.images[-1:]])
    return VUDataset(images, units, dict(ds.card))


def test_dp_classes_and_prior_do_not_depend_on_the_private_data():
    ds = tiny_dataset()
    extra = with_extra_vu(ds)
    cfg = small(steps=1, scheme="level", dp=DPConfig(noise_multiplier=1.0))
    a, b = Trainer(ds, "unused", cfg), Trainer(extra, "unused", cfg)
    assert a.classes == b.classes and len(a.classes) == 28 and "L5/L6" in a.classes
    assert a.class_prior == b.class_prior == [1 / 28] * 28
    assert [p.shape for p in a.G.parameters()] == [p.shape for p in b.G.parameters()]
    # without DP the vocabulary is the data's: the extra VU changes classes and shapes (nothing is claimed there)
    plain = Trainer(extra, "unused", small(steps=1, scheme="level"))
    assert len(plain.classes) == len(VUS) + 1
    given = Trainer(extra, "unused",
                    small(steps=1, scheme="level", classes=list(VUS), dp=DPConfig(noise_multiplier=1.0)))
    assert given.classes == list(VUS) and given.n_train == a.n_train  # the VU of another class is left out


# ---- the mechanism, tested on its output ----------------------------------------------------------
def zero_gradient_update(trainer: Trainer) -> torch.Tensor:
    """The privatised update of one step whose real-VU gradients are all zero (only noise remains), flattened."""
    opt = trainer.private
    idx, pos = opt.sample_patients()
    x = trainer.images[idx].float() / 127.5 - 1.0

    def zero_loss(adv, cls, y):
        return (adv * 0).sum() + (cls * 0).sum()

    got = opt.private_gradient(zero_loss, x, trainer.labels[idx], pos)
    return torch.cat([g.flatten() for g in got.values()])


def test_with_zero_gradients_the_update_spreads_as_sigma_c_over_the_expected_batch():
    sigma, clip = 0.8, 0.5
    tr = Trainer(tiny_dataset(), "unused", small(steps=1, dp=DPConfig(noise_multiplier=sigma, clip_norm=clip,
                                                                      patients_per_step=2)))
    assert tr.sample_rate == 1.0  # every patient sampled: the test cannot draw an empty batch
    update = zero_gradient_update(tr)
    n = update.numel()
    assert n > 3000
    want = sigma * clip / tr.expected_vus
    assert float(update.std()) == pytest.approx(want, rel=5 * math.sqrt(0.5 / n) + 0.01)
    assert abs(float(update.mean())) < 5 * want / math.sqrt(n)


def test_two_runs_with_one_card_seed_draw_independent_noise():
    cfg = small(steps=1, seed=0, dp=DPConfig(noise_multiplier=1.0, patients_per_step=2))
    a = zero_gradient_update(Trainer(tiny_dataset(), "unused", cfg))
    b = zero_gradient_update(Trainer(tiny_dataset(), "unused", cfg))
    r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert abs(r) < 5 / math.sqrt(a.numel())  # independent: |r| within 5 standard errors of 0


def applied_gradient(ds: VUDataset, clip: float) -> tuple[dict, dict, float]:
    """D's gradient as applied in one private step (noise off), the generated side's, and the expected real VUs."""
    n = len(ds.patients("train"))
    tr = Trainer(ds, "unused", small(steps=1, dp=DPConfig(noise_multiplier=1.0, clip_norm=clip, patients_per_step=n)))
    tr.private.noise_multiplier = 0.0  # compare the clipped sums exactly
    seen = {}
    step = tr.private.step

    def spy(private_grad, public_grad=None):
        seen.update({k: v.detach().clone() for k, v in (public_grad or {}).items()})
        step(private_grad, public_grad)

    tr.private.step = spy
    tr.step()
    return {k: p.grad.detach().clone() for k, p in tr.private.trainable()}, seen, tr.expected_vus


def test_a_planted_huge_real_vu_gradient_moves_the_update_by_at_most_the_clip_norm():
    clip = 1e-3
    ds = tiny_dataset(patients=8)
    units = ds.units.copy()
    planted = ds.patients("train")[0]
    rows = np.flatnonzero(units["patient_id"] == planted)
    images = ds.images.copy()
    images[rows] = np.where(np.indices(images.shape[1:]).sum(0) % 2, 255, 0).astype(np.uint8)  # a checkerboard
    with_p = VUDataset(images, units, dict(ds.card))
    without = units.copy()
    without.loc[rows, "split"] = "holdout"  # the same data with the planted patient removed from training
    without_p = VUDataset(images, without, dict(ds.card))
    got_with, pub_with, ev_with = applied_gradient(with_p, clip)
    got_without, pub_without, ev_without = applied_gradient(without_p, clip)
    for k in pub_with:  # the generated side never sees real VUs
        torch.testing.assert_close(pub_with[k], pub_without[k])
    private_with = torch.cat([((got_with[k] - pub_without[k]) * ev_with).flatten() for k in got_with])
    private_without = torch.cat([((got_without[k] - pub_without[k]) * ev_without).flatten() for k in got_with])
    moved = float((private_with - private_without).norm())
    assert 0.5 * clip < moved <= clip * (1 + 1e-3)


# ---- the audit's statistics -------------------------------------------------------------------------
def test_the_one_run_audit_bound_matches_its_closed_form_and_rises_with_correct_guesses():
    from synthvu_core.models.audit import epsilon_lower_bound, p_value

    # delta = 0, all r guesses right: P[Bin(r, q) >= r] = q^r = 0.05 gives q, and epsilon = log(q / (1 - q))
    q = 0.05 ** (1 / 100)
    assert epsilon_lower_bound(100, 100, 100, 0.0) == pytest.approx(math.log(q / (1 - q)), rel=1e-6)
    assert epsilon_lower_bound(200, 100, 50, 1e-5) == 0.0  # chance accuracy: no bound
    bounds = [epsilon_lower_bound(200, 100, v, 1e-5) for v in (60, 70, 80, 90, 100)]
    assert bounds == sorted(bounds) and bounds[-1] < math.log(q / (1 - q))  # delta costs a little
    assert p_value(200, 100, 80, bounds[2] * 1.01, 1e-5) >= 0.05 > p_value(200, 100, 80, bounds[2] * 0.99, 1e-5)


def test_an_audit_run_writes_its_bound_and_enters_the_base_ledger(tmp_path):
    from synthvu_core.models.audit import AuditConfig, run_audit

    tiny_dataset(patients=8).save(tmp_path / "base")
    base = VUDataset.load(tmp_path / "base")
    card = {"name": "tiny", "scheme": "region", "classes": ["T", "L"],
            "architecture": {"name": "default", "width": 4, "d_width": 4},
            "training": {"batch_size": 4, "lr": 1e-3, "seed": 0, "init_from": None},
            "dp": {"unit": "patient", "target_epsilon": 2.0, "clip_norm": 1.0, "sample_rate": 0.5,
                   "vus_per_patient": 1, "accountant": "rdp", "private_layers": "all", "steps": 2}}
    honest = run_audit(card, base, AuditConfig(canaries=8, seed=1))
    assert honest["claimed_epsilon"] == pytest.approx(2.0, rel=0.02) and honest["guesses"] == 2
    assert 0 <= honest["correct"] <= 2 and honest["epsilon_lower_bound"] >= 0
    assert honest["cohort"]["n_patients"] == 4 + honest["included"]  # the base's train patients and the canaries
    planted = run_audit(card, base, AuditConfig(canaries=8, seed=1), planted_noise_factor=128.0)
    assert planted["planted_noise_factor"] == 128.0
    entries = json.loads((tmp_path / "base" / LEDGER_FILE).read_text())["entries"]
    assert [e["dp"] for e in entries] == [True, False]  # a run with a planted bug is no DP run


def test_the_audit_replays_the_mechanism_the_card_records():
    """Augmentation, mirroring, mode seeking, frozen stages, the class head and unclipped generated gradients
    change what D learns from each patient: the replay must use the card's, not the defaults."""
    from synthvu_core.models.audit import recipe_config

    dp = {"unit": "patient", "target_epsilon": 2.0, "clip_norm": 1.0, "sample_rate": 0.5, "vus_per_patient": 1,
          "accountant": "rdp", "private_layers": "all", "steps": 2}
    card = {"name": "tiny", "scheme": "level", "classes": ["L1/L2", "L2/L3"], "sources": ["a", "b"],
            "architecture": {"name": "default", "width": 4, "d_width": 4, "aux_weight": 0.5, "projection": True,
                             "smooth": 1.0},
            "training": {"batch_size": 4, "lr": 1e-3, "seed": 0, "init_from": None, "augment": "translation,color",
                         "translate": 0.0625, "mirror": True, "mode_seeking": 0.2, "freeze_d": 1,
                         "instance_noise": 0.1},
            "dp": {**dp, "generated_gradients": "not clipped"}}
    c = recipe_config(card, None, 10)
    assert (c.augment, c.mirror, c.mode_seeking, c.freeze_d) == ("translation,color", True, 0.2, 1)
    assert c.translate == 0.0625
    assert (c.overrides.aux_weight, c.overrides.projection, c.dp.clip_generated) == (0.5, True, False)
    assert c.overrides.smooth == 1.0 and c.instance_noise == 0.1
    assert c.condition_source and c.source_names == ("a", "b")
    older = {**card, "training": {"batch_size": 4, "lr": 1e-3, "seed": 0, "init_from": None},
             "architecture": {"name": "default"}, "dp": dp}
    del older["sources"]
    o = recipe_config(older, None, 10)
    assert (o.augment, o.mirror, o.mode_seeking, o.freeze_d, o.condition_source) == ("none", False, 0.0, 0, False)
    assert o.dp.clip_generated and o.overrides.aux_weight is None and o.overrides.smooth == 0.0
