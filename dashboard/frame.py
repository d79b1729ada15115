"""The shared page frame: public mode, password gate, sidebar generator picker, page runner.

``app.py`` calls :func:`gate` and :func:`sidebar` on every run, then the selected page runs and
calls :func:`run_page`, which hands its ``render`` function a :class:`Selection` and turns every
``SynthVUError`` into an ``st.error`` (never a traceback).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard import loaders
from dashboard.summary import ReportView, dataset_mismatch, public_view
from synthvu_core.evaluation.integrity import UNSIGNED

if TYPE_CHECKING:
    import numpy as np

    from dashboard.compare import Compared
    from synthvu_core.models.registry import GeneratorInfo

PUBLIC_ENV = "SYNTHVU_PUBLIC"
SELECTED = "selected_generator"  # session key: path of the selected generator folder
EXTRA_DIRS = "extra_model_dirs"  # session key: folders the user added
URL_APPLIED = "url_applied"  # session key: URL parameters already applied in this session
REAL_CAPTION = "REAL patient VU"  # every real image's caption starts with this (tests look for it)
SYNTHETIC_CAPTION = "synthetic"
_LOG = logging.getLogger("synthvu.dashboard")


#: Keys the app reads from the secrets and the type each must have.
SECRET_TYPES: dict[str, type] = {"password": str, "public": bool}
#: Seconds to wait after the n-th wrong password of a client (all its sessions): short, growing, capped.
WRONG_PASSWORD_DELAY_S = (0.5, 1.0, 2.0, 4.0)


def secrets_problem() -> str | None:
    """Why the secrets cannot be trusted, or None where they can (no secrets file is fine).

    A secrets file that exists but cannot be read or parsed turns both the password and public mode
    off in Streamlit (it logs a line and carries on); here it closes the app instead. A configured
    ``password`` that is not a non-empty string or ``public`` that is not true/false closes it too.
    """
    import tomllib

    from streamlit import config

    for entry in config.get_option("secrets.files") or []:
        path = Path(entry)
        if path.suffix == ".toml" and (path.exists() or path.is_symlink()):
            try:
                tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                _LOG.error("secrets file %s cannot be parsed: %s", path, e)
                return f"the secrets file ({path.name}) cannot be parsed: {type(e).__name__}"
    if any(Path(entry).exists() for entry in config.get_option("secrets.files") or []):
        try:  # a secrets folder (one subfolder per secret) or a file Streamlit cannot load
            st.secrets.to_dict()
        except Exception as e:  # noqa: BLE001 - whatever Streamlit raises, the secrets are not trusted
            _LOG.error("the secrets cannot be loaded: %s", e)
            return f"the secrets cannot be loaded: {type(e).__name__}"
    for key, kind in SECRET_TYPES.items():
        value = _secret(key)
        if value is not None and (not isinstance(value, kind) or (kind is str and not value)):
            _LOG.error("secret %r has type %s, expected %s", key, type(value).__name__, kind.__name__)
            return f"the secret '{key}' must be {'a non-empty string' if kind is str else 'true or false'}"
    return None


def _secret(key: str, default: Any = None) -> Any:
    """A secret's value; ``default`` where there is no secrets file or no such key."""
    try:
        return st.secrets.get(key, default)
    except FileNotFoundError:  # StreamlitSecretNotFoundError: no secrets (a broken file is caught by secrets_problem)
        return default


def public_mode() -> bool:
    """True with ``SYNTHVU_PUBLIC=1`` or ``public = true`` in the secrets: no real VU leaves the server."""
    env = os.environ.get(PUBLIC_ENV, "").strip().lower()
    return env in ("1", "true", "yes", "on") or _secret("public", False) is True


def password_matches(typed: str, password: str) -> bool:
    """Constant-time comparison of the UTF-8 bytes (any Unicode password works)."""
    return hmac.compare_digest(str(typed).encode("utf-8"), str(password).encode("utf-8"))


#: The session-state value that marks an authenticated session: a random token of this server process, never
#: something a browser can send (a forged widget message naming the key carries no such value).
_AUTH_KEY = "synthvu_authenticated"
_AUTH_TOKEN = secrets.token_hex(16)
#: Wrong passwords per client (its address, else its session): ``(count, monotonic time the next guess may be
#: checked)``. Guesses from one client are serialised across all its sessions and tabs; module state, so a
#: visitor's ``clear_cache`` message does not reset it.
_WRONG: dict[str, tuple[int, float]] = {}
_GATE_LOCK = threading.Lock()
_MAX_CLIENTS = 10_000
#: A client whose next guess may not be checked for longer than this is told to come back (nothing sleeps).
MAX_WAIT_S = 30.0


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def client_id() -> str:
    """Who is guessing: the client's address where Streamlit knows it, else the session."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - an older Streamlit or no request: count per session
        ip = None
    return f"ip:{ip}" if isinstance(ip, str) and ip else f"session:{_session_id()}"


def drop_foreign_widget_states() -> int:
    """Forget widget values whose id Streamlit never generated (a forged message such as ``authenticated``);
    returns how many were dropped. Such a value would otherwise break every read of the session state."""
    try:
        from streamlit.runtime.state import get_session_state
        from streamlit.runtime.state.common import GENERATED_ELEMENT_ID_PREFIX

        states = get_session_state()._state._new_widget_state.states  # type: ignore[attr-defined]
        foreign = [w for w in states if not str(w).startswith(GENERATED_ELEMENT_ID_PREFIX)]
        for wid in foreign:
            del states[wid]
    except Exception:  # noqa: BLE001 - Streamlit's internals moved: the gate below does not rely on this
        _LOG.debug("could not inspect widget states", exc_info=True)
        return 0
    if foreign:
        _LOG.warning("dropped %d widget state(s) with ids the app never created", len(foreign))
    return len(foreign)


def session_only_clear_cache() -> bool:
    """Make a browser's ``clear_cache`` message clear that browser's own session only.

    Streamlit's handler clears the server-wide ``st.cache_data`` and ``st.cache_resource`` (every visitor's loaded
    generators and reports) for whoever sends it, signed in or not. Returns False where Streamlit's session class
    has no such handler (nothing is changed).
    """
    try:
        from streamlit.runtime.app_session import AppSession
    except ImportError:
        return False
    handler = getattr(AppSession, "_handle_clear_cache_request", None)
    if handler is None:
        return False
    if getattr(handler, "session_only", False):
        return True

    def clear_own_session(self: Any) -> None:
        self._session_state.clear()  # this visitor's widgets and choices; the shared caches stay

    clear_own_session.session_only = True  # type: ignore[attr-defined]
    AppSession._handle_clear_cache_request = clear_own_session  # type: ignore[method-assign]
    return True


session_only_clear_cache()


def is_authenticated() -> bool:
    try:
        return st.session_state.get(_AUTH_KEY) == _AUTH_TOKEN
    except Exception:  # noqa: BLE001 - an unreadable session state is not an authenticated one
        return False


def _authenticate(client: str) -> None:
    st.session_state[_AUTH_KEY] = _AUTH_TOKEN
    with _GATE_LOCK:
        _WRONG.pop(client, None)


def _wait_before_checking(client: str) -> float | None:
    """Seconds this client's guess must wait (its earlier wrong guesses, all sessions); None: too long."""
    with _GATE_LOCK:
        _, next_at = _WRONG.get(client, (0, 0.0))
    wait = next_at - time.monotonic()
    return None if wait > MAX_WAIT_S else max(wait, 0.0)


def _count_wrong(client: str) -> float:
    """Record a wrong guess; seconds until this client's next guess may be checked (the growing delay, after
    any still running from its other sessions)."""
    with _GATE_LOCK:
        n, next_at = _WRONG.pop(client, (0, 0.0))
        now = time.monotonic()
        _WRONG[client] = (n + 1, max(next_at, now) + WRONG_PASSWORD_DELAY_S[min(n, len(WRONG_PASSWORD_DELAY_S) - 1)])
        while len(_WRONG) > _MAX_CLIENTS:  # the longest-quiet clients are forgotten first
            del _WRONG[next(iter(_WRONG))]
        return _WRONG[client][1] - now


def gate() -> None:
    """Fail closed: stop the run where the secrets cannot be trusted; then, where a password is set
    (``password`` in the secrets), until it is given. Unauthenticated visitors never see a traceback."""
    try:
        drop_foreign_widget_states()
        problem = secrets_problem()
        password = None if problem else _secret("password")
    except Exception:  # noqa: BLE001 - fail closed, whatever went wrong
        _LOG.exception("reading the secrets failed")
        problem, password = "the secrets cannot be read", None
    if problem:
        st.title("synthvu")
        st.error(f"This dashboard is closed: {problem}, so its password and public mode cannot be trusted. "
                 "The owner must fix the secrets (details in the server log).")
        st.stop()
    if not password or is_authenticated():
        return
    st.title("synthvu")
    try:
        _password_form(password)
    except Exception:  # noqa: BLE001 - whatever a visitor sent: a message, never a traceback
        _LOG.exception("the password form failed")
        st.error("The password could not be checked; reload the page.")
    st.stop()


def _password_form(password: str) -> None:
    typed = st.text_input("Password", type="password", key="password_input")
    if not isinstance(typed, str) or not typed:
        return
    client = client_id()
    wait = _wait_before_checking(client)
    if wait is None:
        st.error("Too many wrong passwords from here; wait a minute and try again.")
        return
    if wait > 0:
        time.sleep(wait)
    if password_matches(typed, password):
        _authenticate(client)
        st.rerun()
    time.sleep(_count_wrong(client))
    st.error("Wrong password.")


def plain(text: Any) -> str:
    """``text`` for a Markdown element shown literally (card fields are data: a name or ``created``
    holding ``![x](http://...)`` must not make the browser fetch it): one line, every character that
    makes links, images, emphasis, code, HTML, tables, maths or icon shortcodes escaped. A bare address
    (``http://...``, ``www.``) is not turned into a link either (the browser's renderer links bare addresses in
    text): an invisible word joiner (U+2060) goes after its ``:`` or ``www``."""
    line = " ".join(str(text).split())
    line = re.sub(r"([\\`*_{}\[\]()#!|~<>$:])", r"\\\1", line)
    line = re.sub(r"\\:(?=//)", "\\:\u2060", line)  # scheme://: no link
    line = re.sub(r"(?i)\b(www)\.", "\\1\u2060.", line)  # www.: no link
    return "\\" + line if line[:1] in ("-", "+", "=") else line


def plain_but_code(text: Any) -> str:
    """``text`` as :func:`plain` shows it, except its `code` spans, kept as code (a code span shows its characters as
    written): for the core's messages, which name commands in backticks and data (level and source names) outside
    them. With an unpaired backtick nothing is code."""
    parts = " ".join(str(text).split()).split("`")
    if len(parts) % 2 == 0:
        return plain(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"`{part}`")
        elif part.strip():
            out.append(" " * part[:1].isspace() + plain(part) + " " * part[-1:].isspace())
        else:
            out.append(part)
    return "".join(out)


def show_verdict(level: str, text: str, **kw: Any) -> None:
    """One verdict in its colour: leak red, caution and design imbalance amber, ok green, inconclusive grey."""
    from dashboard.summary import level_word

    box = {"leak": st.error, "caution": st.warning, "imbalance": st.warning, "ok": st.success}.get(level)
    if box is not None:
        box(text, **kw)
    elif level in ("inconclusive", "unknown"):
        word = level_word(level).capitalize()
        rest = text[len(word) + 1:].lstrip() if text.lower().startswith(word.lower() + ":") else text  # no echo
        with st.container(border=True):
            st.markdown(f":gray-background[**{word}**] :gray[{plain(rest)}]")
    else:
        st.info(text, **kw)


def public_text(text: Any) -> str:
    """A message fit for public mode: an absolute path becomes relative to its models root (a published
    generator's own folder name), any other absolute path its last part only."""
    from synthvu_core.models.registry import model_roots

    roots = [r.absolute() for r, _ in model_roots()]

    def short(m: re.Match[str]) -> str:
        path = Path(m.group(0)).expanduser().absolute()
        for root in roots:
            if path.is_relative_to(root):
                return str(path.relative_to(root.parent))
        return path.name

    return re.sub(r"(?<![\w.])~?/[^\s:;,'\"()`]+", short, str(text))


def say(text: Any) -> str:
    """An error text for the browser, shown as plain text (a name or link in it never renders as Markdown):
    paths shortened in public mode (no server path reaches a visitor)."""
    return plain(public_text(text) if public_mode() else str(text))


# ---- selection ------------------------------------------------------------------------------------
@dataclass
class Selection:
    """What a page draws: the selected generator, its card and report (None where not computed)."""

    info: GeneratorInfo
    card: dict[str, Any]
    report: ReportView | None
    public: bool
    report_problem: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.info.path)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def classes(self) -> list[str]:
        return list(self.card.get("classes", []))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.card.get("shape", (9, 64, 64)))  # type: ignore[return-value]


def extra_dirs() -> tuple[str, ...]:
    """Folders this session added (none in public mode)."""
    return () if public_mode() else tuple(st.session_state.get(EXTRA_DIRS, []))


@contextlib.contextmanager
def listed_folders() -> Iterator[None]:
    """While the page draws, a composed DP bound counts the runs of the generators in the folders this session
    added too, as it counts the shipped ones and ``$SYNTHVU_MODELS``'."""
    from synthvu_core.models.ledger import also_cards_under

    with also_cards_under(extra_dirs()):
        yield


def all_generators() -> list[GeneratorInfo]:
    return loaders.generators(extra_dirs())


def _add_folder() -> None:
    """Form callback: validate the folder typed in the sidebar; on success select its (first) generator."""
    from synthvu_core.errors import SynthVUError

    text = str(st.session_state.get("folder_input", "")).strip()
    if not text or public_mode():  # public mode: only the configured model roots, no folder input at all
        return
    folder = Path(text).expanduser()
    try:
        found = loaders.generators((str(folder),))
        mine = [
            g
            for g in found
            if Path(g.path).resolve() == folder.resolve() or Path(g.path).resolve().parent == folder.resolve()
        ]
        if not mine:
            loaders.card_of(folder)  # raises the precise problem (no folder, no card, bad card)
            raise FileNotFoundError
    except SynthVUError as e:
        st.session_state["folder_error"] = str(e)
        return
    except OSError:
        st.session_state["folder_error"] = f"{folder}: no generator folder here (a generator folder holds card.json)"
        return
    dirs = list(st.session_state.get(EXTRA_DIRS, []))
    if str(folder) not in dirs:
        dirs.append(str(folder))
    st.session_state[EXTRA_DIRS] = dirs
    st.session_state[SELECTED] = str(mine[0].path)
    st.session_state.pop("folder_error", None)
    loaders._generators.clear()


def sidebar() -> Selection | None:
    """Draw the generator picker (and the report download); remember the choice across pages."""
    gens = all_generators()
    by_path = {str(g.path): g for g in gens}
    st.session_state.setdefault(SELECTED, None)
    wanted = st.query_params.get("model")
    applied = st.session_state.setdefault(URL_APPLIED, set())
    if wanted and "model" not in applied:
        match = [p for p, g in by_path.items() if wanted in (g.name, Path(p).name)]
        if match:
            st.session_state[SELECTED] = match[0]
        else:
            st.session_state["folder_error"] = f"{wanted}: no generator of this name (see Models & data)"
    applied.add("model")
    with st.sidebar:
        st.markdown("### Generator")
        if gens:
            options = list(by_path)
            labels = generator_labels(gens)
            if st.session_state[SELECTED] not in by_path:
                st.session_state[SELECTED] = options[0]
            st.selectbox(
                "Generator",
                options,
                key=SELECTED,
                label_visibility="collapsed",
                format_func=lambda p: labels[p],
            )
        else:
            st.session_state[SELECTED] = None
            st.info("No generator found. Train one (see Models & data) or add its folder below.")
        if not public_mode():  # public mode shows what the deployment publishes, never a visitor's path
            with st.expander("Add a generator folder"):
                with st.form("add_folder", clear_on_submit=False, border=False):
                    st.text_input("Folder", placeholder="path/to/model or a folder of models", key="folder_input")
                    st.form_submit_button("Add", on_click=_add_folder)
        for b in loaders.broken_generators(extra_dirs()):  # each bad folder in one line; the others work
            st.warning(say(f"{b.path.name}: broken: {b.why}"), icon=":material/report:")
        if st.session_state.get("folder_error"):
            st.error(say(st.session_state["folder_error"]))
        if public_mode():
            st.caption("Public mode: aggregate numbers and synthetic images only.")
    if not st.session_state[SELECTED]:
        return None
    chosen = by_path.get(st.session_state[SELECTED])
    if chosen is not None and st.query_params.get("model") != chosen.name:
        st.query_params["model"] = chosen.name  # the link names the generator shown
    return selection()


def generator_labels(gens: Sequence[GeneratorInfo]) -> dict[str, str]:
    """Picker text per generator folder: its name, with enough of its folder to tell two of one name apart."""
    from dashboard.compare import distinct_ids, generator_label

    ids = distinct_ids([(g.name, g.path) for g in gens])
    return {str(g.path): generator_label(i, g.source) for g, i in zip(gens, ids)}


# ---- the view in the URL ----------------------------------------------------------------------------
def url_radio(where: Any, label: str, names: Mapping[str, str], key: str, param: str) -> str:
    """A horizontal radio over ``names`` (value -> text shown) drawn in ``where`` (``st`` or a column), its value
    kept in the URL as ``?param=...`` (:func:`url_state`); returns the value picked."""
    options = list(names)
    url_state(key, param, options)
    return where.radio(label, options, horizontal=True, format_func=lambda v: names[v], key=key)


def url_state(key: str, param: str, options: Sequence[Any] | None = None, cast: type = str) -> None:
    """Keep widget ``key`` in the URL as ``?param=...``; call it just before the widget is drawn.

    On the session's first run with ``param`` in the URL the widget starts at that value (when it is
    one of ``options``, or converts with ``cast``); afterwards the widget's value is written back, so a
    copied link reproduces the view. A value the widget cannot take is ignored.

    Args:
        key: the widget's session-state key.
        param: the URL parameter (short and stable: ``attack``, ``space``, ``position``).
        options: the widget's options (values matched by their text); None for free values.
        cast: how to read a free value from the URL (``str``, ``int`` or ``bool``).
    """
    applied = st.session_state.setdefault(URL_APPLIED, set())
    text = st.query_params.get(param)
    if param not in applied:
        applied.add(param)
        value = None if text is None else _from_url(text, options, cast)
        if value is not None:
            st.session_state[key] = value
            return
    if key in st.session_state and st.session_state[key] is not None:
        shown = _to_url(st.session_state[key])
        if text != shown:
            st.query_params[param] = shown
    elif text is not None:
        del st.query_params[param]


def url_rows(
    param: str, picked: dict[str, list[int]], limit: int = 300, sizes: dict[str, int] | None = None
) -> dict[str, list[int]]:
    """Keep a chart selection (``{"synthetic": rows, "real": rows}``) in the URL as ``?param=s:1,2|r:3``.

    A chart's selection cannot be set from code, so a link's selection is shown (below the chart) while
    the chart itself has none; a new selection on the chart replaces it and is written back.

    Args:
        param: the URL parameter.
        picked: the rows selected on the chart now (empty lists where none).
        limit: most rows per kind kept in the URL (and read from it).
        sizes: rows there are per kind; a link's row outside them is ignored (None: no bound).
    """
    from_url = f"{param}_from_url"
    if any(picked.values()):
        st.session_state[from_url] = None
        st.query_params[param] = "|".join(
            f"{kind[0]}:{','.join(map(str, rows[:limit]))}" for kind, rows in picked.items() if rows
        )
        return picked
    applied = st.session_state.setdefault(URL_APPLIED, set())
    if param not in applied:
        applied.add(param)
        st.session_state[from_url] = _rows_from_url(str(st.query_params.get(param, "")), list(picked), sizes, limit)
    return st.session_state.get(from_url) or picked


def _rows_from_url(
    text: str, kinds: list[str], sizes: dict[str, int] | None = None, limit: int = 300
) -> dict[str, list[int]] | None:
    """The rows a link names, kind by kind: ASCII digits only, inside ``sizes``, at most ``limit`` per kind."""
    out: dict[str, list[int]] = {k: [] for k in kinds}
    for part in text[: 16 * limit * max(len(kinds), 1)].split("|"):
        head, _, rows = part.partition(":")
        kind = next((k for k in kinds if k[0] == head), None)
        if kind is None:
            continue
        bound = None if sizes is None else int(sizes.get(kind, 0))
        found = [int(r) for r in rows.split(",") if r.isascii() and r.isdigit() and len(r) < 12]
        out[kind] = [r for r in found if bound is None or r < bound][:limit]
    return out if any(out.values()) else None


def _to_url(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _from_url(text: str, options: Sequence[Any] | None, cast: type) -> Any:
    if isinstance(options, range):
        try:
            return int(text) if int(text) in options else None
        except ValueError:
            return None
    if options is not None:
        return next((o for o in options if _to_url(o) == text), None)
    try:
        if cast is bool:
            return {"1": True, "0": False, "true": True, "false": False}.get(text.lower())
        return cast(text)
    except (TypeError, ValueError):
        return None


def selection() -> Selection | None:
    """The selected generator with its card and report (reads the caches)."""
    from synthvu_core.errors import SynthVUError

    path = st.session_state.get(SELECTED)
    gens = {str(g.path): g for g in all_generators()}
    if not path or path not in gens:
        return None
    info = gens[path]
    problem = None
    try:
        view = loaders.report(info.path, (info.card.get("dataset") or {}).get("fingerprint"))
    except SynthVUError as e:
        view, problem = None, str(e)
    if view is not None:
        problem = dataset_mismatch(view, info.card)  # belt and braces: the core checks this too
        if problem:
            view = None
    if view is not None and public_mode():
        view = public_view(view)  # what share lets leave (and real UMAP coordinates drawn as a density only)
    return Selection(info=info, card=info.card, report=view, public=public_mode(), report_problem=problem)


def report_or_none(info: GeneratorInfo) -> ReportView | None:
    """A generator's report; None where it has none, it cannot be read or it was computed on another dataset."""
    from synthvu_core.errors import SynthVUError

    try:
        view = loaders.report(info.path, (info.card.get("dataset") or {}).get("fingerprint"))
    except SynthVUError:
        return None
    return None if view is None or dataset_mismatch(view, info.card) else view


def recipe_spread_text(sel: Selection) -> str | None:
    """The selected generator's recipe over its training seeds, where two or more runs of it are listed with a
    report (:func:`dashboard.compare.recipe_spread`); None otherwise."""
    from dashboard.compare import recipe_spread

    return recipe_spread(sel.path, sel.card, all_generators(), report_or_none)


# ---- page runner -----------------------------------------------------------------------------------
def run_page(
    title: str, render: Callable[[Selection], None], *, needs_report: bool = False, needs_generator: bool = True
) -> None:
    """Title, then ``render(selection)``; user errors become ``st.error``.

    ``needs_report``: where the generator has no report, offer "Compute report" instead of drawing.
    ``needs_generator=False``: the page draws even when no generator exists (``render(None)``).
    """
    from synthvu_core.errors import SynthVUError

    st.title(title)
    try:
        sel = selection()
        if sel is None:
            if needs_generator:
                st.info(
                    "No generator selected: none is installed yet. See **Models & data** to train one, "
                    "or add a generator folder in the sidebar."
                )
                return
        else:
            shared_note(sel)
            if sel.report is not None and sel.report.integrity.startswith(UNSIGNED):
                st.caption(f"Report: {sel.report.integrity} (its values and verdicts were checked; it carries no "
                           "content digest: re-run evaluate to sign it).")
            if needs_report and sel.report is None:
                report_missing(sel)
                return
        render(sel)  # type: ignore[arg-type]
    except SynthVUError as e:
        st.error(say(e))
    except Exception:
        if not public_mode():
            raise
        _LOG.exception("page %s failed", title)  # public mode: no traceback (server paths) in the browser
        st.error("This page could not be drawn; the details are in the server log.")
    finally:
        loaders.freeze_long_lived_objects()  # the next page runs' collections skip what the imports made
        loaders.release_freed_memory()  # the page's temporaries are gone: hand their pages back


def fragment(part: Callable[..., None]) -> Callable[..., None]:
    """``st.fragment`` for a part of a page: its widgets rerun that part only (not the page), and its errors
    are shown as :func:`run_page` shows a page's (a fragment's own rerun runs outside the page's handler)."""
    import functools

    from synthvu_core.errors import SynthVUError

    @functools.wraps(part)
    def drawn(*args: Any, **kwargs: Any) -> None:
        try:
            part(*args, **kwargs)
        except SynthVUError as e:
            st.error(say(e))
        except Exception:
            if not public_mode():
                raise
            _LOG.exception("part %s failed", part.__name__)
            st.error("This part could not be drawn; the details are in the server log.")

    return st.fragment(drawn)


def shared_note(sel: Selection) -> None:
    """Where the generator folder was written by ``share``, say so and name the parts it leaves out."""
    import json

    path = sel.path / "share.json"
    if not path.is_file():
        return
    try:
        absent = dict(json.loads(path.read_text()).get("absent", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        st.warning(f"{path}: unreadable share manifest")
        return
    st.info(
        "**Shared generator folder** (written by `share`): aggregate numbers and synthetic VUs only. Absent: "
        + "; ".join(f"**{k}**" for k in absent)
        + ".",
        icon=":material/share:",
    )


def report_missing(sel: Selection) -> None:
    """Say that the report is missing or unusable, and offer to compute it (outside public mode)."""
    if sel.report_problem:
        st.warning(say(sel.report_problem))
    else:
        st.info(f"**{plain(sel.name)}** has no evaluation report yet: utility, fidelity and privacy are not measured.")
    if sel.public:
        st.caption("Reports are computed by the owner of this deployment (`python -m synthvu_core evaluate MODEL`).")
        return
    folder = None
    if not loaders.is_phantom(sel.card):
        folder = st.text_input("VU dataset folder the generator was trained on", key="compute_dataset").strip() or None
    st.caption(
        f"Or on the command line: `python -m synthvu_core evaluate {sel.path}"
        + (f" --dataset {folder}" if folder else "")
        + "` (minutes on a CPU)."
    )
    if st.button(
        "Compute report",
        type="primary",
        key="compute_report",
        disabled=folder is None and not loaders.is_phantom(sel.card),
    ):
        compute_with_progress(sel, folder)
        st.rerun()


STAGE_TEXT = {
    "classifier": "training the real VU-position classifier",
    "embedding": "embedding the real VUs",
    "umap": "UMAP",
    "utility": "utility (TSTR, TRTS)",
    "fidelity": "fidelity (Fréchet, precision, recall)",
    "privacy": "membership attacks",
    "done": "done",
}


def compute_with_progress(sel: Selection, folder: str | None) -> None:
    """Run the evaluation with a stage-by-stage progress bar; a Cancel button stops it at the next stage."""
    import time

    st.button(
        "Cancel",
        key="compute_cancel",
        help="Stops at the next stage; nothing is written (the report is written at the end, atomically).",
    )
    with st.status("Computing the report…", expanded=True) as status:
        bar = st.progress(0.0, text="loading the dataset and sampling 5,000 synthetic VUs")
        t0 = time.perf_counter()

        def report(stage: str, done: int, total: int) -> None:
            text = (f"{STAGE_TEXT.get(stage, stage)} · stage {min(done + 1, total)} of {total} · "
                    f"{time.perf_counter() - t0:.0f} s")
            bar.progress(min(done / max(total, 1), 1.0), text=text)

        loaders.compute_report(sel.path, dataset=folder, progress=report)
        status.update(label=f"Report written ({time.perf_counter() - t0:.0f} s)", state="complete")


def load_dataset_with_status(sel: Selection, folder: str | None) -> None:
    """Load (for the phantom: rebuild where missing) the generator's dataset inside a status box that names the
    step and its time. The rebuild runs to its end once started (it writes atomically); it has no finer steps to
    show."""
    import time

    what = (
        "the phantom demo dataset (rebuilt if missing: rendering patients, then cutting VUs)"
        if folder is None
        else f"the VU dataset {folder}"
    )
    t0 = time.perf_counter()
    with st.status(f"Loading {what}…", expanded=False) as status:
        loaders.real_dataset(sel.card, folder)
        loaders.mark_dataset_loaded(sel.card, folder)
        status.update(label=f"Dataset ready ({time.perf_counter() - t0:.0f} s)", state="complete")


def report_file(sel: Selection) -> str:
    """The self-contained HTML report of the selection (imports plotly only when asked for)."""
    from dashboard.presentation import report_html

    return report_html(sel)


def table(rows: list[dict[str, Any]]) -> None:
    """Rows as a plain table whose cells wrap instead of being cut (numbers to three decimals, no index):
    every cell stays readable on a 1280-px screen, and a browser test can see each one."""
    import pandas as pd

    from dashboard.summary import fmt

    shown = [{k: fmt(v) if isinstance(v, float) or v is None else v for k, v in r.items()} for r in rows]
    st.table(pd.DataFrame(shown), hide_index=True)


def compared_of(sel: Selection) -> Compared:
    """The selected generator as one entry of a comparison or a slide deck."""
    from dashboard.compare import Compared

    return Compared(ident=sel.name, path=sel.path, card=sel.card, view=sel.report, source=sel.info.source)


SLIDES_LABEL = "Download slides (HTML)"


def slides_button(entries: Sequence[Compared], file_name: str, key: str) -> None:
    """A button downloading the slide deck of ``entries`` (:func:`dashboard.slides.deck_html`, built on click
    only); the generators without a report are left out, and with none left there is no button."""
    from dashboard.slides import deck_html

    ready = [e for e in entries if e.view is not None]
    if ready:
        st.download_button(
            SLIDES_LABEL,
            data=lambda: deck_html(ready),
            file_name=file_name,
            mime="text/html",
            icon=":material/slideshow:",
            key=key,
            help="A self-contained slide deck (reveal.js; opens offline): what was trained, is it useful, "
            "does it leak, the trade-off.",
        )


def show_image(image: np.ndarray | bytes, caption: str, *, real: bool = False, **kw: Any) -> None:
    """``st.image`` with a caption that says whether the image is real; refuses real ones in public mode."""
    if real and public_mode():
        return
    prefix = REAL_CAPTION if real else SYNTHETIC_CAPTION
    if isinstance(image, bytes):  # a PNG file: sent as is (Streamlit's "auto" decodes it and re-encodes JPEG)
        kw.setdefault("output_format", "PNG")
    st.image(image, caption=f"{prefix} · {caption}", **kw)


def key_of(sel: Selection, name: str) -> str:
    """A widget key unique to the selected generator (options differ between generators)."""
    import hashlib

    return f"{name}_{hashlib.sha1(str(sel.path).encode()).hexdigest()[:8]}"


def real_vus(sel: Selection, rows: np.ndarray, key: str) -> np.ndarray | None:
    """uint8 ``[len(rows), C, H, W]`` real VUs of dataset ``rows``, or None.

    Never in public mode. The dataset is loaded only after a button press (the phantom is rebuilt
    on demand and checked against the card's fingerprint); for a generator trained on your own
    NIfTI data, its VU dataset folder is asked for.
    """
    import numpy as np

    if sel.public or len(rows) == 0:
        return None
    folder = None
    if not loaders.is_phantom(sel.card):
        folder = (
            st.text_input(
                "VU dataset folder the generator was trained on (to show real VUs)", key=f"{key}_folder"
            ).strip()
            or None
        )
        if folder is None:
            return None
    if not loaders.dataset_ready(sel.card, folder):
        label = "Show the real VUs" + (
            " (rebuilds the phantom dataset if missing: a minute or two)" if folder is None else ""
        )
        if not st.button(label, key=f"{key}_load"):
            return None
        load_dataset_with_status(sel, folder)
    return loaders.real_vus(loaders.dataset_key(sel.card), folder, tuple(int(r) for r in np.asarray(rows)))
