"""The dashboard's server surface, with Streamlit's AppTest: forged widget messages, the per-client password
delay, a visitor's cache clearing, uploads, links as plain text, out-of-range link rows, broken generator
folders and non-finite weights."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from fixtures.dashboard_models import fabricate, point_dashboard_at, start_app  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetStates  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("overview", "generate", "embeddings", "utility", "privacy", "tradeoffs", "models_data")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fabricate(tmp_path_factory.mktemp("robust-world"))


@pytest.fixture
def env(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return point_dashboard_at(world, monkeypatch)


#: Run the app once (Overview), ``model`` selected through the sidebar picker.
start = start_app


def no_exception(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"


def forge(at: AppTest, widget_id: str, **value) -> AppTest:
    """Send one widget message the app never created (as a hand-written websocket message would)."""
    states: WidgetStates = at._tree.get_widget_states()
    w = states.widgets.add()
    w.id = widget_id
    for field, v in value.items():
        setattr(w, field, v)
    return at._run(states)


# ---- forged widget messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [{"bool_value": True}, {"int_value": 1}, {"string_value": "yes"}])
def test_a_forged_authenticated_widget_neither_crashes_nor_opens_nor_locks_the_gate(env, value) -> None:
    at = start(secrets={"password": "s3cret"})
    for widget_id in ("authenticated", "synthvu_authenticated", "password_input"):
        forge(at, widget_id, **value)
        no_exception(at, f"forged {widget_id}")
        assert not at.sidebar.selectbox, "a forged message does not open the gate"
        assert at.text_input(key="password_input") is not None, "the session can still sign in"
    at.text_input(key="password_input").set_value("s3cret").run()
    no_exception(at, "right password after forged messages")
    assert at.sidebar.selectbox(key="selected_generator") is not None


# ---- the wrong-password delay counts per client ----------------------------------------------------------------


def test_the_wrong_password_delay_counts_per_client_across_sessions(env, monkeypatch, fake_clock) -> None:
    from dashboard import frame

    monkeypatch.setattr(frame, "client_id", lambda: "ip:203.0.113.7")
    for _ in range(3):  # three fresh sessions (new tabs, new websockets) from one address
        at = start(secrets={"password": "s3cret"})
        at.text_input(key="password_input").set_value("guess").run()
        no_exception(at, "wrong password")
        assert any(e.value == "Wrong password." for e in at.error)
    assert fake_clock.slept == [0.5, 1.0, 2.0], "a new session does not reset the client's delay"
    fake_clock.now -= 40.0  # a burst of guesses from parallel sessions: their waits add up, past MAX_WAIT_S
    at = start(secrets={"password": "s3cret"})
    at.text_input(key="password_input").set_value("guess").run()
    assert any("Too many wrong passwords" in e.value for e in at.error) and fake_clock.slept == [0.5, 1.0, 2.0]
    monkeypatch.setattr(frame, "client_id", lambda: "ip:198.51.100.1")  # another client is not slowed
    at = start(secrets={"password": "s3cret"})
    at.text_input(key="password_input").set_value("guess").run()
    assert fake_clock.slept[-1] == 0.5


# ---- a visitor's clear_cache, uploads, error details ------------------------------------------------------------


def test_a_visitors_clear_cache_message_clears_only_that_session() -> None:
    import streamlit as st
    from streamlit.runtime.app_session import AppSession

    from dashboard import frame

    assert frame.session_only_clear_cache()
    calls: list[int] = []

    @st.cache_data
    def shared(x: int) -> int:
        calls.append(x)
        return x

    shared(1)

    class Session:
        cleared = False

        class _session_state:  # noqa: N801 - the attribute Streamlit's handler reads
            @staticmethod
            def clear() -> None:
                Session.cleared = True

    AppSession._handle_clear_cache_request(Session())
    shared(1)
    assert calls == [1], "the shared cache survived a visitor's clear_cache"
    assert Session.cleared, "the visitor's own session state was cleared"


def test_uploads_are_capped_and_errors_carry_no_traceback() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] <= 1, "the app has no uploader: 1 MB at most"
    assert config["client"]["showErrorDetails"] == "none", "no traceback (server paths) reaches a visitor"


# ---- links are plain text and bounded --------------------------------------------------------------------------


def test_a_model_link_is_plain_text_not_markdown(env) -> None:
    evil = "![x](http://203.0.113.9/pixel.png) [click](http://203.0.113.9/) **bold**"
    at = start(params={"model": evil})
    no_exception(at, "markdown in ?model=")
    shown = [e.value for e in at.sidebar.error]
    assert shown, "the unknown name is a message"
    for text in shown:
        assert "![x](" not in text and "[click](" not in text and "**bold**" not in text, text
        assert "\\!\\[x\\]\\(http" in text, "the characters are escaped: shown literally"
        assert "://" not in text.replace("\\", ""), "a bare address is not linked either"


@pytest.mark.parametrize("rows", ["s:99999999", "r:99999999,1", "s:²,3", "s:" + "9" * 40, "s:1,2|r:-4"])
def test_link_rows_outside_the_report_are_ignored(env, rows) -> None:
    at = start("fab-region", params={"picked": rows})
    at.switch_page("app_pages/embeddings.py").run()
    no_exception(at, f"picked={rows}")
    assert at.title


# ---- one broken generator folder breaks nothing else ---------------------------------------------------------


def test_a_broken_generator_folder_is_named_and_every_page_still_runs(env, tmp_path, monkeypatch) -> None:
    models = tmp_path / "models"
    shutil.copytree(env["models"] / "fab-region", models / "fab-region")
    (models / "deep").mkdir()
    (models / "deep" / "card.json").write_text('{"a":' * 50000 + "1" + "}" * 50000)
    shutil.copytree(env["models"] / "fab-noreport", models / "mistyped")
    card = json.loads((models / "mistyped" / "card.json").read_text())
    card["dp"] = {"epsilon": "one"}
    card["training"]["steps"] = "many"
    (models / "mistyped" / "card.json").write_text(json.dumps(card))
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    at = start("fab-region")
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        no_exception(at, page)
        warned = " ".join(w.value for w in at.sidebar.warning).replace("\\", "")  # shown as plain text
        assert "deep: broken" in warned and "nested too deeply" in warned, warned
        assert "mistyped: broken" in warned and "dp.epsilon" in warned, warned


# ---- non-finite weights are an error, never black VUs ------------------------------------------------------------


def test_nan_weights_are_an_error_on_the_generate_page(env, tmp_path, monkeypatch) -> None:
    from test_robustness import _poison

    models = tmp_path / "models"
    shutil.copytree(env["models"] / "fab-noreport", models / "fab-nan")
    card = json.loads((models / "fab-nan" / "card.json").read_text())
    (models / "fab-nan" / "card.json").write_text(json.dumps({**card, "name": "fab-nan"}))
    _poison(models / "fab-nan")
    monkeypatch.setenv("SYNTHVU_MODELS", str(models))
    at = start("fab-nan")
    at.switch_page("app_pages/generate.py").run()
    no_exception(at, "NaN weights")
    assert any("non-finite" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.image, "no black VU is drawn"
