"""Level vocabulary: names, order, VU pairs, mappings, conditioning classes."""

from __future__ import annotations

import json

import pytest

from synthvu_core import levels
from synthvu_core.errors import DataError


def test_names_and_codes_round_trip():
    assert levels.name(23) == "L4" and levels.code("l4") == 23
    assert levels.name(28) == "T13" and levels.name(26) == "S1"
    assert all(levels.code(levels.name(c)) == c for c in levels.CODE_TO_NAME)
    with pytest.raises(DataError):
        levels.name(99)
    with pytest.raises(DataError):
        levels.code("X9")


def test_vu_pairs_bridge_optional_vertebrae_only_when_absent():
    assert levels.vu_pairs([19, 20]) == [(19, 20)]  # T12/L1 without T13
    assert levels.vu_pairs([24, 26]) == [(24, 26)]  # L5/S1 without L6
    assert levels.vu_pairs([19, 28, 20]) == [(19, 28), (28, 20)]  # a labelled T13 is not skipped
    assert levels.vu_pairs([20, 22, 23]) == [(22, 23)]  # a missing L2 breaks the chain
    assert levels.vu_pairs([23, 20, 21]) == [(20, 21)]  # order of input does not matter


def test_full_phantom_spine_gives_23_vus():
    codes = [*range(2, 25), 26]  # C2 ... L5, S1
    pairs = levels.vu_pairs(codes)
    assert len(pairs) == 23
    assert levels.vu_name(*pairs[0]) == "C2/C3" and levels.vu_name(*pairs[-1]) == "L5/S1"


def test_region_classes_and_sorting():
    vus = ["L4/L5", "C3/C4", "T12/L1", "L1/L2"]
    assert levels.classes("region", vus) == ["C", "T", "L"]
    assert levels.classes("level", vus) == ["C3/C4", "T12/L1", "L1/L2", "L4/L5"]
    assert levels.position_class("region", "T12/L1") == "T"
    with pytest.raises(ValueError):
        levels.classes("bogus", vus)


def test_parse_mapping_forms(tmp_path):
    assert levels.parse_mapping("1=L1, 2=21 3=T12") == {1: 20, 2: 21, 3: 19}
    f = tmp_path / "map.json"
    f.write_text(json.dumps({"5": "L5", "6": 26}))
    assert levels.parse_mapping(f) == {5: 24, 6: 26}
    assert levels.parse_mapping(None) is None
    with pytest.raises(DataError, match="not of the form"):
        levels.parse_mapping("1:L1")
    with pytest.raises(DataError, match="not a VerSe code"):
        levels.parse_mapping("1=99")


def test_a_mapping_file_of_the_wrong_shape_or_values_is_named(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match=r"list\.json: a label mapping is a JSON object .* not a list"):
        levels.parse_mapping(listed)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"1": "5.5"}))
    with pytest.raises(DataError, match=r"odd\.json: label mapping target '5\.5'"):
        levels.parse_mapping(odd)
