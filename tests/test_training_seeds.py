"""Several runs of one recipe read by ``report seeds``: grouped by recipe, their spread over training seeds, and two
recipes compared by their means with a Welch interval (never by one run each)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from synthvu_core.cli import main
from synthvu_core.errors import SelectionError
from synthvu_core.evaluation.report import Report, definition, save_report
from synthvu_core.evaluation.training_seeds import compare, group_runs, recipe_of, setting_changes
from synthvu_core.names import ONE_GENERATOR

RUN_NUMBERS = itertools.count()  # each fabricated run gets weights of its own
SHIPPED_CARD = json.loads((Path(__file__).parents[1] / "models" / "acgan-dp-e3" / "card.json").read_text())


def _card(seed: int, **training: object) -> dict:
    card = copy.deepcopy(SHIPPED_CARD)
    card["training"].update(seed=seed, command=f"train --seed {seed} --out run{seed}", seconds=100.0 + seed)
    card["training"].update(training)
    return card


def _report(ratio: float, *, recall: tuple[float, ...] = (0.5, 0.4, 0.3), n_synthetic: int = 5000,
            dataset: str = "d1", weights: bytes | None = None) -> Report:
    weights = weights if weights is not None else f"weights {next(RUN_NUMBERS)}".encode()
    trtr = 0.6
    scalars = {"utility.trtr.balanced_accuracy": trtr, "utility.tstr.balanced_accuracy": ratio * trtr,
               "utility.tstr.balanced_accuracy_ci_low": ratio * trtr - 0.1,
               "utility.tstr.balanced_accuracy_ci_high": ratio * trtr + 0.1,
               "utility.tstr_over_trtr": ratio, "utility.tstr_over_trtr_ci_low": ratio - 0.2,
               "utility.tstr_over_trtr_ci_high": ratio + 0.2, "utility.chance": 1 / 3}
    meta = {"dataset_fingerprint": dataset, "n_synthetic": n_synthetic, "seed": 0, "report_version": 4,
            "generator_sha256": hashlib.sha256(weights).hexdigest(), "config": {"utility_seeds": [0, 1, 2]},
            "utility": {"interval": "bootstrap over holdout patients and classifier seeds"}}
    arrays = {"utility/tstr/recall": np.array(recall), "utility/trtr/recall": np.array([0.6, 0.6, 0.6])}
    return Report(scalars, {k: definition(k) for k in scalars}, meta, _arrays=arrays)


def _entries(ratios: list[float], **training: object) -> list[tuple[str, dict, Report]]:
    return [(f"run{s}", _card(s, **training), _report(r)) for s, r in enumerate(ratios)]


def test_runs_differing_only_in_seed_timing_and_command_form_one_recipe() -> None:
    groups = group_runs(_entries([0.6, 0.7, 0.8]))
    assert len(groups) == 1 and [r.seed for r in groups[0].runs] == [0, 1, 2]
    assert "seed" not in groups[0].recipe["training"] and "command" not in groups[0].recipe["training"]


def test_a_changed_training_setting_is_another_recipe_and_is_named() -> None:
    groups = group_runs(_entries([0.6, 0.7]) + _entries([0.8, 0.9], freeze_class_modulation=True))
    assert [len(g.runs) for g in groups] == [2, 2]
    changes = setting_changes(groups[0].recipe, groups[1].recipe)
    assert changes == ["training.freeze_class_modulation: — → True"]


def test_spread_is_the_mean_sd_and_range_over_runs() -> None:
    ratios = [0.72, 0.51, 0.69, 0.73]
    s = group_runs(_entries(ratios))[0].spread("ratio")
    assert s.n == 4 and s.mean == pytest.approx(np.mean(ratios)) and s.sd == pytest.approx(np.std(ratios, ddof=1))
    assert (s.low, s.high) == (0.51, 0.73)
    t = group_runs(_entries(ratios))[0].spread("tstr")
    assert t.mean == pytest.approx(0.6 * np.mean(ratios))


def test_runs_sharing_a_seed_are_said_to_differ_by_machine() -> None:
    from synthvu_core.evaluation.training_seeds import spread_line

    runs = [("a", _card(0), _report(0.6)), ("b", _card(0), _report(0.7)), ("c", _card(1), _report(0.8))]
    same_seed = group_runs(runs)
    assert "Runs share training seed 0: they differ by the machine" in spread_line(same_seed[0])
    assert "share training seed" not in spread_line(group_runs(_entries([0.6, 0.7]))[0])


def test_one_run_has_no_spread() -> None:
    groups = group_runs([("a", _card(0), _report(0.7)), ("b", _card(0, mirror=False), _report(0.8))])
    assert groups[0].spread("ratio").sd is None and compare(groups, 1).low is None
    assert compare(groups, 1).reading.startswith("too few runs for an interval")


def test_the_difference_interval_is_welchs() -> None:
    a, b = [0.72, 0.51, 0.69, 0.73], [0.65, 0.59, 0.60]
    groups = group_runs(_entries(a) + _entries(b, freeze_class_modulation=True))
    d = compare(groups, 1)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert d.difference == pytest.approx(np.mean(b) - np.mean(a))
    assert (d.low, d.high) == pytest.approx((d.difference - half, d.difference + half))
    assert d.df == pytest.approx(df) and d.reading == "no difference shown with these runs"


def test_a_clear_difference_is_read_as_higher() -> None:
    groups = group_runs(_entries([0.50, 0.52, 0.51]) + _entries([0.80, 0.82, 0.81], freeze_class_modulation=True))
    d = compare(groups, 1)
    assert d.low > 0 and d.reading == "recipe 2 reads higher on this holdout"
    flipped = group_runs(_entries([0.80, 0.82, 0.81], freeze_class_modulation=True) + _entries([0.50, 0.52, 0.51]))
    assert compare(flipped, 1).reading == "recipe 2 reads lower on this holdout"


def test_two_runs_a_recipe_give_no_interval() -> None:
    groups = group_runs(_entries([0.50, 0.52, 0.51]) + _entries([0.80, 0.82], freeze_class_modulation=True))
    d = compare(groups, 1)
    assert d.low is None and d.difference == pytest.approx(0.30) and d.reading.startswith("too few runs")


def test_several_intervals_say_they_are_not_corrected_for_their_number() -> None:
    from synthvu_core.evaluation.training_seeds import group_lines

    two = _entries([0.5, 0.52, 0.51]) + _entries([0.8, 0.82, 0.81], ordinal=True)
    assert not any("not corrected" in line for line in group_lines(group_runs(two)))
    three = two + _entries([0.6, 0.62, 0.61], mirror=False)
    assert "These 2 intervals are each at 95 %, not corrected for their number." in group_lines(group_runs(three))


def test_other_datasets_or_evaluations_are_not_compared() -> None:
    base = _entries([0.6, 0.7])
    other_data = [(n, c, _report(r, dataset="d2")) for n, c, r in
                  ((f"x{s}", _card(s), 0.9) for s in range(2))]
    other_eval = [(n, c, _report(r, n_synthetic=2000)) for n, c, r in
                  ((f"y{s}", _card(s), 0.9) for s in range(2))]
    groups = group_runs(base + other_data + other_eval)
    assert len(groups) == 3
    assert compare(groups, 1) is None and compare(groups, 2) is None


def test_every_level_above_chance_reads_the_tstr_recall() -> None:
    runs = group_runs([("a", _card(0), _report(0.7, recall=(0.5, np.nan, 0.4))),
                       ("b", _card(1), _report(0.7, recall=(0.5, 0.2, 0.4)))])[0].runs
    assert [r.every_level_above_chance for r in runs] == [True, False]


def test_run_results_and_machine_details_are_not_part_of_a_recipe() -> None:
    a = _card(0, ada={"target": 0.6, "p_final": 0.1, "p_mean": 0.05}, speed={"on": ["bf16"], "skipped": "no compiler"},
              hardware="a laptop", held_out_latent_mse=0.2)
    b = _card(1, ada={"target": 0.6, "p_final": 0.3, "p_mean": 0.15}, speed={"on": ["bf16"], "skipped": None},
              hardware="a server", held_out_latent_mse=0.4)
    assert recipe_of(a) == recipe_of(b)
    assert recipe_of(a) != recipe_of(_card(1, ada={"target": 0.8}, speed={"on": ["bf16"]}))


def test_the_evaluation_reads_only_what_utility_depends_on() -> None:
    one, other = _report(0.6), _report(0.7, weights=b"v")
    other.meta["config"] = {**other.meta["config"], "privacy": {"n_boot": 10}}
    assert len(group_runs([("a", _card(0), one), ("b", _card(1), other)])) == 1
    other.meta["config"] = {**other.meta["config"], "utility_seeds": [0, 1]}
    assert len(group_runs([("a", _card(0), one), ("b", _card(1), other)])) == 2


def test_one_generator_given_twice_is_refused() -> None:
    with pytest.raises(SelectionError, match="a and b are one generator"):
        group_runs([("a", _card(0), _report(0.6, weights=b"w")), ("b", _card(1), _report(0.6, weights=b"w"))])


def test_fewer_than_two_generators_are_refused() -> None:
    with pytest.raises(SelectionError, match="two generators or more"):
        group_runs(_entries([0.7]))


def test_a_dp_target_is_part_of_the_recipe() -> None:
    other = _card(0)
    other["dp"] = {**other["dp"], "target_epsilon": 10.0}
    assert recipe_of(_card(0)) != recipe_of(other) and recipe_of(_card(0)) == recipe_of(_card(5))


def _folder(root: Path, name: str, card: dict, ratio: float) -> Path:
    folder, weights = root / name, name.encode()
    save_report(_report(ratio, weights=weights), folder / "report")
    (folder / "generator.safetensors").write_bytes(weights)
    (folder / "card.json").write_text(json.dumps({**card, "name": "same-name"}))
    return folder


def test_report_seeds_prints_each_recipe_its_spread_and_the_difference(tmp_path: Path, capsys) -> None:
    folders = [_folder(tmp_path, f"a{s}", _card(s), r) for s, r in enumerate([0.50, 0.52, 0.51])]
    folders += [_folder(tmp_path, f"b{s}", _card(s, freeze_class_modulation=True), r)
                for s, r in enumerate([0.80, 0.82, 0.81])]
    assert main(["report", "seeds", *map(str, folders)]) == 0
    out = capsys.readouterr().out
    assert "Recipe 1 (dataset d1, 3 runs), the reference" in out
    assert "against recipe 1: training.freeze_class_modulation: — → True" in out
    assert "(Welch, df " in out and "On this holdout only" in out
    assert "TSTR/TRTR mean 0.510, sd 0.010, range 0.500–0.520" in out
    # recipe 1: TSTR 0.30 [0.20, 0.40] reaches chance 1/3, and one level's recall (0.3) is below it; recipe 2: 0.48
    assert "TSTR's interval above chance in 0 of 3 runs, every level's TSTR recall above chance in 0 of 3." in out
    assert "TSTR's interval above chance in 3 of 3 runs" in out
    assert "Recipe 2 − recipe 1: mean TSTR/TRTR +0.300" in out and "Recipe 2 reads higher on this holdout." in out
    assert str(folders[0]) in out  # runs sharing a name are told apart by their folders
    assert ONE_GENERATOR in out
    assert main(["report", "seeds", "--json", *map(str, folders)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [len(g["runs"]) for g in data["groups"]] == [3, 3]
    assert data["differences_against_recipe_1"][0]["recipe"] == 2
    assert data["differences_against_recipe_1"][0]["difference"] > 0.29


def test_report_seeds_names_a_generator_without_a_report(tmp_path: Path, capsys) -> None:
    done = _folder(tmp_path, "done", _card(0), 0.6)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "card.json").write_text(json.dumps(_card(1)))
    assert main(["report", "seeds", str(done), str(bare)]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and "no saved report" in err
