"""The slide deck: ``report slides MODEL… --out deck.html`` writes a reveal.js deck whose every number is
its report's, that opens in Chromium without one network request."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthvu_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["acgan-dp-e10", "acgan-phantom"]
CHROMIUM = Path("/usr/bin/chromium")
NUMBER = re.compile(r"<span class='num' data-model='([^']+)' data-key='([^']+)'>([^<]+)</span>")


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all((ROOT / "models" / m / "report" / "report.json").exists() for m in MODELS):
        pytest.skip("shipped reports absent")
    out = tmp_path_factory.mktemp("deck") / "deck.html"
    assert main(["report", "slides", *(str(ROOT / "models" / m) for m in MODELS), "--out", str(out)]) == 0
    return out


def test_every_number_in_the_deck_is_its_reports(deck: Path) -> None:
    found = NUMBER.findall(deck.read_text(encoding="utf-8"))
    assert len(found) >= 4 * len(MODELS), found
    scalars = {m: json.loads((ROOT / "models" / m / "report" / "report.json").read_text())["scalars"] for m in MODELS}
    for model, key, text in found:
        assert float(text) == pytest.approx(scalars[model][key], abs=5e-4), (model, key, text)
    shown = {(m, k) for m, k, _ in found}
    for m in MODELS:
        for key in ("utility.tstr.balanced_accuracy", "utility.trtr.balanced_accuracy", "utility.tstr_over_trtr"):
            assert (m, key) in shown, f"{m}: {key} missing from the deck"
        worst = [k for mm, k in shown if mm == m and k.startswith("privacy.") and k.endswith(".auc")]
        assert worst and scalars[m][worst[0]] == pytest.approx(scalars[m]["privacy.worst.auc"]), worst


def test_deck_has_one_message_per_slide(deck: Path) -> None:
    text = deck.read_text(encoding="utf-8")
    titles = re.findall(r"<section><h[12]>([^<]+)</h[12]>", text)
    assert titles[1:] == ["What was trained", "Is it useful?", "Does it leak?", "The trade-off"], titles
    external = re.search(r"<script[^>]*\ssrc=|<link[\s>]|<img[^>]*\ssrc=[\"']?https?:", text)
    assert external is None, external.group(0)  # plotly.js and reveal.js inline, no file fetched


def test_slides_refuse_a_wrong_output_and_a_generator_without_report(tmp_path: Path, capsys) -> None:
    assert main(["report", "slides", str(ROOT / "models" / MODELS[0]), "--out", str(tmp_path / "deck.pdf")]) == 2
    assert "deck.pdf: unknown slide deck format" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "card.json").write_text((ROOT / "models" / MODELS[0] / "card.json").read_text())
    (bare / "generator.safetensors").write_bytes((ROOT / "models" / MODELS[0] / "generator.safetensors").read_bytes())
    assert main(["report", "slides", str(bare), "--out", str(tmp_path / "deck.html")]) == 2
    assert "no report yet" in capsys.readouterr().err and not (tmp_path / "deck.html").exists()


def test_slides_onto_a_folder_are_refused_and_the_folder_kept(tmp_path: Path, capsys) -> None:
    """``--out talk.html`` naming someone's folder: one line, and the folder and its files are left as they were."""
    folder = tmp_path / "talk.html"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    assert main(["report", "slides", str(ROOT / "models" / MODELS[0]), "--out", str(folder)]) == 2
    assert "talk.html: is a folder, not a slide deck file" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "my notes"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_deck_opens_offline_in_chromium(deck: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    outside: list[str] = []

    def route(r) -> None:  # noqa: ANN001 - playwright Route
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.route("**/*", route)
        page.goto(deck.as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30000)
        assert page.evaluate("Reveal.getTotalSlides()") == 5
        assert page.locator(".js-plotly-plot").count() == 2
        for i in range(5):  # nothing runs off a 1280-px slide
            page.evaluate(f"Reveal.slide({i})")
            page.wait_for_timeout(200)
            width = page.evaluate("document.querySelector('.slides section.present').scrollWidth")
            assert width <= 1280, f"slide {i} is {width} px wide"
        page.screenshot(path=str(tmp_path / "slide4.png"))
        browser.close()
    assert outside == [], f"the deck asked the network for {outside}"


def test_runs_of_one_recipe_get_a_slide_of_their_spread() -> None:
    from dashboard.compare import Compared
    from dashboard.slides import deck_html
    from dashboard.summary import ReportView

    def entry(name: str, seed: int, ratio: float, **training: object) -> Compared:
        meta = {"dataset_fingerprint": "d", "n_synthetic": 5000, "seed": 0, "generator_sha256": name}
        view = ReportView(scalars={"utility.tstr_over_trtr": ratio, "utility.chance": 0.25}, meta=meta)
        card = {"classes": ["C", "T", "L"], "dp": None, "training": {"steps": 600, "seed": seed, **training}}
        return Compared(name, Path(name), card, view)

    runs = [entry(f"d{s}", s, r) for s, r in enumerate([0.6, 0.8, 0.7])]
    runs += [entry(f"o{s}", s, r, ordinal=True) for s, r in enumerate([0.9, 0.95, 0.92])]
    text = re.sub(r"<[^>]+>", " ", deck_html(runs))
    assert "Runs of one recipe" in text and "0.700, sd 0.100, 0.600–0.800" in text
    assert "+0.223 [-0.007, +0.454]" in text and "no difference shown with these runs" in text
    assert "Runs of one recipe" not in deck_html(runs[:1] + runs[3:4])  # two recipes, one run each: no slide


def test_the_useful_slide_gives_each_generator_its_own_chance() -> None:
    from dashboard.compare import Compared
    from dashboard.slides import deck_html
    from dashboard.summary import ReportView

    def entry(name: str, chance: float) -> Compared:
        scalars = {"utility.tstr.balanced_accuracy": 0.5, "utility.chance": chance}
        return Compared(name, Path(name), {"classes": list("ABCDEF"), "dp": None}, ReportView(scalars=scalars))

    import html

    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", deck_html([entry("a", 1 / 3), entry("b", 0.25)]))))
    assert "guessing scores each holdout's own chance" in text and "0.333" in text and "0.250" in text
    assert "0.167" not in text, "chance read from the card's six classes, not the holdout"
    same = re.sub(r"<[^>]+>", " ", deck_html([entry("a", 0.25), entry("b", 0.25)]))
    assert "guessing scores 0.25." in same
