"""Every montage labels its rows with their level or position: the shared label column, training
montages (written labelled; older unlabelled ones labelled when read), the exported PNG, the Generate
page's grids and the HTML report's training montages."""

from __future__ import annotations

import numpy as np
import pytest
from montage_checks import assert_rows_labelled

from synthvu_core.data.dataset import label_rows
from synthvu_core.models.sampling import montage_image
from synthvu_core.models.trainlog import MONTAGE_COLS, montage_picture


def test_each_row_carries_its_own_label() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (40, 90), dtype=np.uint8) for _ in range(2))
    one = label_rows([("C", a), ("L4/L5", b)])
    other = label_rows([("T", a), ("L4/L5", b)])
    assert one.shape == other.shape and one.shape[0] == 80
    np.testing.assert_array_equal(one[:, -90:], np.concatenate([a, b]))  # the rows themselves, untouched
    label_w = one.shape[1] - 90
    assert label_w >= 20 and (one[:40, :label_w] > 128).any() and (one[40:, :label_w] > 128).any()
    assert not np.array_equal(one[:40], other[:40]), "a row's label is drawn from its own text"
    np.testing.assert_array_equal(one[40:], other[40:])


def test_label_type_is_readable_on_small_tiles() -> None:
    """Labels are at least 14 px tall even beside 16-px rows (ink height measured)."""
    pic = label_rows([("L4/L5", np.zeros((16, 50), np.uint8))])
    ink_rows = np.flatnonzero((pic[:, : pic.shape[1] - 50] > 128).any(axis=1))
    assert len(ink_rows) and ink_rows[-1] - ink_rows[0] + 1 >= 10  # glyph height of a 14-px font


def test_an_unlabelled_training_montage_gets_its_class_labels_when_read(tmp_path) -> None:
    from PIL import Image

    classes, h, w = ["C", "T", "L"], 16, 12
    grid = np.random.default_rng(1).uniform(-1, 1, (3, MONTAGE_COLS, h, w))
    old = tmp_path / "montage_step0000010.png"
    montage_image(grid).save(old)  # as training wrote it before rows were labelled
    assert_rows_labelled(montage_picture(old, classes, (h, w)), classes, h, w)
    new = tmp_path / "montage_step0000020.png"
    montage_image(grid, classes).save(new)
    np.testing.assert_array_equal(montage_picture(new, classes, (h, w)), np.asarray(Image.open(new)))


def test_generate_grids_label_every_row() -> None:
    from dashboard.images import SEPARATOR, rows_by_position, rows_per_vu

    classes = ["T12/L1", "L1/L2", "L4/L5"]
    rng = np.random.default_rng(2)
    images = rng.integers(1, 255, (11, 3, 8, 8), dtype=np.uint8)
    labels = np.array([2, 0, 2, 2, 2, 2, 0, 2, 2, 2, 2])  # no L1/L2; nine L4/L5 make two rows of 8
    grid = rows_by_position(images, labels, classes, slice_index=1, ncols=8, zoom=1)
    row_h = 8 + 2 * 2  # tile and its margin above and below
    assert grid.shape[0] == 3 * row_h, "one row for T12/L1, two for L4/L5"
    label_w = grid.shape[1] - (8 * (8 + 2) + 2)
    heads = [grid[r * row_h : (r + 1) * row_h, :label_w] for r in range(3)]
    assert all((hd != SEPARATOR).any() for hd in heads), "every row has a label"
    assert not np.array_equal(heads[0], heads[1]) and np.array_equal(heads[1], heads[2])
    first_tile = grid[2 : 2 + 8, label_w + 2 : label_w + 10]
    np.testing.assert_array_equal(first_tile, images[1, 1])  # the first T12/L1 VU opens the first row
    per_vu = rows_per_vu(images[:2], labels[:2], classes, zoom=1)
    assert per_vu.shape[0] == 2 * row_h
    assert not np.array_equal(per_vu[:row_h, :20], per_vu[row_h:, :20]), "L4/L5 and T12/L1 rows told apart"


def test_the_html_report_shows_training_montages_labelled(tmp_path) -> None:
    import base64
    import io
    import re
    from types import SimpleNamespace

    from PIL import Image

    from dashboard.presentation import training_html

    classes, (h, w) = ["C", "T", "L"], (16, 12)
    (tmp_path / "training").mkdir()
    montage_image(np.random.default_rng(3).uniform(-1, 1, (3, MONTAGE_COLS, h, w))).save(
        tmp_path / "training" / "montage_step0000005.png"
    )
    sel = SimpleNamespace(path=tmp_path, card={"classes": classes, "shape": [3, h, w]})
    html = "".join(training_html(sel, lambda fig: ""))
    (data,) = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert_rows_labelled(np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))), classes, h, w)


@pytest.mark.parametrize("n", [1, 3])
def test_montage_image_refuses_a_wrong_label_count(n: int) -> None:
    with pytest.raises(ValueError, match="row labels"):
        montage_image(np.zeros((2, 4, 8, 8)), ["C"] * n)
