"""The privacy ledger of a cohort: every training run made on its patients, and the epsilon they compose to.

A DP bound is about the patients, not about one run or one build of their data: every run on them spends their
privacy, DP or not. ``privacy_ledger.json`` is kept in the dataset folder (beside its ``card.json``, so it travels
with the dataset; a rebuild into the same folder keeps it, see :meth:`VUDataset.save`) and is keyed by **patient
identity**: each entry names the patients it trained on (:func:`run_patients`: the split's patient ids, qualified
by the phantom seed for phantom cohorts, so one phantom patient is the same patient in every build of its seed;
and, for a build of NIfTI files, :func:`run_images`: the content digests of their source images, so a patient whose
id changed between builds is still known). A run composes over every entry that shares a patient with it, by id
or by image, whichever build (dataset fingerprint) the entry was trained on. Every finished training run appends
one entry (under a file lock, written atomically):

* a DP-SGD run: its noise multiplier ``sigma``, sample rate ``q``, steps, accountant, own epsilon, delta;
* a run without DP: epsilon = infinity (stored as ``null`` with ``dp: false``).

Each entry is also appended to **this user's ledger on this machine** (:func:`user_ledger_path`:
``$SYNTHVU_LEDGER``, or ``~/.local/share/synthvu/privacy_ledger.json``), so a build of the same patients into
another folder (or a deleted and rebuilt one) composes with every run recorded here before: a run composes over the
entries of its folder's ledger and of the user's ledger that share a patient with it, each run counted once (every
entry carries an ``id``). Point ``$SYNTHVU_LEDGER`` at one file on a shared disk to compose the runs of a group.

A ledger written before entries named their patients (keyed by one dataset fingerprint) stays readable: its
entries are taken to cover every patient of the folder it is kept in (the safe reading: they compose with every
later run there).

The composed epsilon is Opacus's RDP accountant over the history of every DP entry (heterogeneous
``(sigma, q, steps)`` compose by adding their Renyi divergences; valid for runs accounted with PRV too, whose
mechanism is the same subsampled Gaussian), at the delta of the run asking; one entry without DP makes it
infinite: a model trained without DP on these patients protects none of them. The card of every run
records the entries it composed over (their patients as a count only) and the composed epsilon
(:func:`card_block`), so a shipped generator shows it without the dataset at hand.

Where the dataset has no folder (an in-memory dataset), nothing is kept: the card's block says so (:data:`NOT_KEPT`),
holds this run alone, and no composed bound is read from it (:func:`composed_of`). A card read later is recomposed with
the runs recorded on its patients since it was written, where the ledgers on this machine hold them
(:func:`later_runs`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.errors import DataError
from synthvu_core.names import IMAGE_DIGESTS, LEDGER_FILE
from synthvu_core.records import epsilon_text, epsilon_value

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset

LOCK_SUFFIX = ".lock"
#: The ``kept`` of a card's ledger block where the dataset had no folder: the run was recorded nowhere, so the
#: block's epsilon is this run's alone and composes nothing (:func:`composed_of` gives None for it).
NOT_KEPT = "not kept: the dataset has no folder"
COMPOSITION = (
    "RDP (Opacus) over every run on these patients (any run sharing a patient with this one, on any build of their "
    "data, recorded in the dataset folder's ledger or in this user's ledger); one run without DP makes it infinite"
)
#: the environment variable naming this user's ledger file (every run on any folder; may be a shared file)
USER_LEDGER_ENV = "SYNTHVU_LEDGER"
#: ``keyed_by`` of a ledger whose entries name their patients; a ledger without it is keyed by one fingerprint.
KEYED_BY = "patient"


def ledger_path(dataset: VUDataset) -> Path | None:
    """``privacy_ledger.json`` in the dataset's folder; None for a dataset without a folder."""
    root = getattr(dataset, "root", None)
    return None if root is None else Path(root) / LEDGER_FILE


def user_ledger_path() -> Path:
    """This user's ledger on this machine, resolved: ``$SYNTHVU_LEDGER`` (an absolute path, else
    :class:`DataError`) or ``~/.local/share/synthvu/privacy_ledger.json``."""
    named = os.environ.get(USER_LEDGER_ENV)
    path = Path(named).expanduser() if named else Path.home() / ".local" / "share" / "synthvu" / LEDGER_FILE
    if not path.is_absolute():
        raise DataError(f"${USER_LEDGER_ENV}={named}: the user's privacy ledger must be an absolute path (a relative "
                        "one would name another file in every working folder)")
    return path.resolve()


def _files(path: Path) -> list[Path]:
    """The ledger files a run recorded at the folder ledger ``path`` reads and writes, resolved: the folder's, then
    the user's (one file where they are the same)."""
    folder, user = path.resolve(), user_ledger_path()
    return [folder] if user == folder else [folder, user]


def check_readable(dataset: VUDataset) -> None:
    """Refuse (:class:`DataError`) before a run where a ledger it will be recorded in is unreadable."""
    path = ledger_path(dataset)
    for f in _files(path) if path is not None else []:
        _read(f)


def run_patients(dataset: VUDataset, part: str | None = "train") -> list[str]:
    """The patient identities a run on ``dataset``'s ``part`` trains on (sorted; phantom ids seed-qualified)."""
    from synthvu_core.models.priors import patient_keys

    return sorted(patient_keys(dataset, part))


def run_images(dataset: VUDataset, part: str | None = "train") -> list[str]:
    """The content digests of the source images of ``dataset``'s ``part`` patients (all parts where None); [] where
    its card records none (an in-memory phantom, or a build made before digests)."""
    digests = dataset.card.get(IMAGE_DIGESTS) or {}
    return sorted({d for p in dataset.patients(part) for d in digests.get(p, [])})


def run_entry(card: Mapping[str, Any]) -> dict[str, Any]:
    """The ledger entry of a finished run, from its card (``dp`` block or none)."""
    dp = card.get("dp") or {}
    entry: dict[str, Any] = {
        "run": card.get("name"),
        "created": card.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
        "dp": bool(dp),
        "epsilon": dp.get("epsilon") if dp else None,
    }
    if dp:
        entry.update(
            mechanism="dp-sgd (poisson-subsampled gaussian)",
            noise_multiplier=dp["noise_multiplier"],
            sample_rate=dp["sample_rate"],
            steps=dp["steps"],
            accountant=dp["accountant"],
            delta=dp["delta"],
            n_patients=dp["n_patients"],
        )
    return entry


def _read(path: Path) -> dict[str, Any]:
    """The ledger file's content, checked ({"entries": []} where there is none); :class:`DataError` if unreadable
    (the user's ledger is named with its environment variable)."""
    if path.is_dir():
        raise DataError(f"{_name(path)}: is a folder, not a privacy ledger file; name a file (or none)")
    if not path.is_file():
        return {"entries": []}
    try:
        data = json.loads(path.read_text())
        data["entries"] = [dict(e) for e in data["entries"]]
        if not all(isinstance(e.get(k, []), list) for e in data["entries"] for k in ("patients", "images")):
            raise TypeError("an entry's patients and images must be lists")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{_name(path)}: unreadable privacy ledger ({e}); restore it from a backup: it must not be "
                        "edited by hand, and deleting it forgets the runs it records") from None
    return data


def _name(path: Path) -> str:
    """``path``, said to be the user's ledger where it is."""
    with contextlib.suppress(DataError):
        if path.resolve() == user_ledger_path():
            return f"{path} (the user's privacy ledger, ${USER_LEDGER_ENV})"
    return str(path)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of a ledger file ([] where there is none), older fingerprint-keyed ledgers included."""
    return _read(path)["entries"]


def _builds(data: Mapping[str, Any]) -> list[str]:
    """The dataset fingerprints a ledger has seen (an older ledger: its one fingerprint)."""
    if data.get("datasets"):
        return list(data["datasets"])
    return [data["fingerprint"]] if data.get("fingerprint") else []


def sharing_patients(
    entries: list[dict[str, Any]], patients: Sequence[str], images: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The entries that trained on at least one of ``patients`` (by id) or of their source ``images`` (by content);
    an entry that names none (an older ledger) covers every patient of its folder, so it always composes."""
    wanted, seen = set(patients), set(images)
    return [e for e in entries if "patients" not in e or wanted.intersection(e["patients"])
            or seen.intersection(e.get("images", []))]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path.with_name(path.name + LOCK_SUFFIX), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, data: Mapping[str, Any], new: dict[str, Any]) -> None:
    """Write ``data`` with ``new`` appended to ``path`` atomically; an existing file keeps its mode, a new one is
    its owner's alone (it names patients)."""
    from synthvu_core.storage import atomic_path, json_default

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    builds = _builds(data)
    builds += [] if new["dataset"] in builds else [new["dataset"]]
    out = {"keyed_by": KEYED_BY, "composition": COMPOSITION, "datasets": builds, "entries": data["entries"] + [new]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=2, default=json_default) + "\n")
        tmp.chmod(mode)


def _run_key(entry: Mapping[str, Any]) -> tuple:
    """What makes two ledger entries one run: its ``id``; an entry written before ids, its settings and time."""
    if entry.get("id"):
        return (entry["id"],)
    return entry.get("run"), entry.get("created"), entry.get("mechanism"), entry.get("epsilon")


def append(path: Path, fingerprint: str, patients: Sequence[str], entry: Mapping[str, Any],
           images: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Append ``entry`` (a run on ``patients``, whose source images have the digests ``images``, of the dataset
    ``fingerprint``) to the ledger at ``path`` and to this user's ledger (:func:`user_ledger_path`); returns the
    entries of either that it composes with (:func:`sharing_patients`, each run once), this one last."""
    new = {**dict(entry), "id": uuid.uuid4().hex, "dataset": fingerprint, "patients": sorted(patients)}
    new.update({"images": sorted(images)} if images else {})
    files = _files(path)
    with contextlib.ExitStack() as held:
        for f in sorted(files):  # one order for every process: no deadlock
            f.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(_locked(f))
        read = [_read(f) for f in files]  # both checked before either is written
        for f, data in zip(files, read, strict=True):
            _write(f, data, new)
    return sharing_patients(_once([e for data in read for e in data["entries"]]) + [new], patients, images)


def record(dataset: VUDataset, entry: Mapping[str, Any], part: str = "train") -> list[dict[str, Any]] | None:
    """Append ``entry``, a run on ``dataset``'s ``part`` patients, to its ledgers (:func:`append`); the entries it
    composes with, or None for a dataset without a folder (nothing kept)."""
    path = ledger_path(dataset)
    if path is None:
        return None
    return append(path, dataset.fingerprint, run_patients(dataset, part), entry, run_images(dataset, part))


def _once(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` with each identified run once, in order of first appearance; an entry without an ``id`` (written
    before ids, only ever in a folder's ledger) is kept as it is."""
    seen: set[str] = set()
    return [e for e in entries if not e.get("id") or not (e["id"] in seen or seen.add(e["id"]))]


def spent_on(dataset: VUDataset) -> tuple[float, int] | None:
    """``(composed epsilon, runs)`` over every recorded run that trained on any of ``dataset``'s patients (its
    folder's ledger and this user's), at the delta of a DP run on its train split; None where it has no folder."""
    from synthvu_core.models.dp import default_delta

    path = ledger_path(dataset)
    if path is None:
        return None
    entries = [e for f in _files(path) for e in read_entries(f)]
    runs = sharing_patients(_once(entries), run_patients(dataset, None), run_images(dataset, None))
    return composed_epsilon(runs, default_delta(max(1, len(dataset.patients("train"))))), len(runs)


def composed_epsilon(entries: list[Mapping[str, Any]], delta: float) -> float:
    """RDP composition of every entry at ``delta``, as Opacus's ``RDPAccountant`` composes a history (its analysis
    and its orders); ``inf`` where any entry has no DP."""
    if any(not e.get("dp") for e in entries):
        return math.inf
    if not entries:
        return 0.0
    history = tuple((float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"])) for e in entries)
    return _rdp_epsilon(history, float(delta))


#: the RDP orders Opacus's ``RDPAccountant`` searches (its ``DEFAULT_ALPHAS``; a test checks they agree)
RDP_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


@functools.lru_cache(maxsize=512)
def _rdp_epsilon(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """Opacus's RDP analysis of the subsampled Gaussian summed over ``history`` ``(sigma, q, steps)``, converted
    at ``delta``: the numbers its ``RDPAccountant.get_epsilon`` gives, remembered per history."""
    analysis = _rdp_analysis()
    rdp = sum(analysis.compute_rdp(q=q, noise_multiplier=s, steps=n, orders=list(RDP_ORDERS)) for s, q, n in history)
    eps, _ = analysis.get_privacy_spent(orders=list(RDP_ORDERS), rdp=rdp, delta=delta)
    return float(eps)


def _rdp_analysis() -> Any:
    """Opacus's RDP analysis module (numpy and scipy only), loaded from its file where Opacus is not imported yet:
    importing the package imports torch, seconds a page showing a composed bound need not spend."""
    import importlib.util
    import sys

    name = "opacus.accountants.analysis.rdp"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("opacus")
    path = Path(spec.origin).parent / "accountants" / "analysis" / "rdp.py" if spec and spec.origin else None
    if path is None or not path.is_file():
        import opacus.accountants.analysis.rdp as analysis  # a layout of another Opacus version

        return analysis
    own = importlib.util.spec_from_file_location("_synthvu_opacus_rdp_analysis", path)
    module = importlib.util.module_from_spec(own)
    own.loader.exec_module(module)
    return module


def _card_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger entry as a released card shows it: how many patients it trained on, never who (no list, no digest
    of one and no image digest: with the other patients known, a digest would confirm whether one patient was in)."""
    out = {k: v for k, v in entry.items() if k not in ("patients", "images")}
    if "patients" in entry:  # a list in the ledger; already a count in an entry read back from a card
        out["patients"] = len(entry["patients"]) if isinstance(entry["patients"], list) else entry["patients"]
    return out


def with_known(known: list[Mapping[str, Any]], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``known`` (a card's entries) followed by the ``entries`` it does not hold yet: a card recomposed from a ledger
    file that lost runs (a rebuilt cache, another machine) never forgets a run it recorded."""
    seen = {_run_key(e) for e in known}
    return [dict(e) for e in known] + [e for e in entries if _run_key(e) not in seen]


def card_block(entries: list[dict[str, Any]], delta: float, kept: Path | None) -> dict[str, Any]:
    """The card's ``privacy_ledger`` block: the entries composed over and the composed epsilon (None = inf)."""
    eps = composed_epsilon(entries, delta)
    return {
        "file": LEDGER_FILE if kept is not None else None,
        "kept": "with the dataset and in the user's ledger" if kept is not None else NOT_KEPT,
        "composition": COMPOSITION,
        "delta": delta,
        "runs": len(entries),
        "composed_epsilon": None if math.isinf(eps) else eps,
        "entries": [_card_entry(e) for e in entries],
    }


def composed_of(card: Mapping[str, Any]) -> tuple[float, int] | None:
    """``(composed epsilon, runs)`` over every run on the card's training patients (``inf`` for no bound): the
    card's own record, recomposed with the runs recorded on those patients after it was written
    (:func:`later_runs`, read from the ledgers on this machine). None for a card without a ledger, or one whose run
    was recorded nowhere (:data:`NOT_KEPT`: nothing was composed, so no composed bound can be claimed)."""
    block = recomposed_block(card)
    return None if block is None else _bound(block)


def bound_record(card: Mapping[str, Any]) -> dict[str, Any]:
    """What a report records of a DP card's composed bound now (:func:`composed_of`): ``dp_composed_bound``
    "finite", "infinite" or "none recorded" (also for a card without DP), ``dp_composed_epsilon`` (None unless
    finite) and ``dp_composed_runs``."""
    found = composed_of(card) if card.get("dp") else None
    if found is None:
        return {"dp_composed_bound": "none recorded", "dp_composed_epsilon": None}
    finite = math.isfinite(found[0])
    return {"dp_composed_bound": "finite" if finite else "infinite",
            "dp_composed_epsilon": found[0] if finite else None, "dp_composed_runs": found[1]}


def bound_changed(card: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    """A sentence where the bound composed over the card's patients now differs from the one a report (``meta``)
    was evaluated with, so its verdict (b) quotes an old bound; None where they agree or the card has no DP."""
    if not card.get("dp"):
        return None
    now = bound_record(card)
    then_eps = meta.get("dp_composed_epsilon")
    same = now["dp_composed_bound"] == meta.get("dp_composed_bound", "none recorded") and (
        then_eps is None or now["dp_composed_epsilon"] is None or abs(now["dp_composed_epsilon"] - then_eps) < 1e-9)
    if same:
        return None
    said = ("∞" if now["dp_composed_bound"] == "infinite" else
            "not recorded" if now["dp_composed_bound"] == "none recorded" else f"{now['dp_composed_epsilon']:.2f}")
    return (f"The bound composed over every run on these patients is now ε = {said}, not the one this report was "
            "evaluated with: `python -m synthvu_core report amend MODEL` re-reads verdict (b) with it.")


def _bound(block: Mapping[str, Any]) -> tuple[float, int]:
    """``(composed epsilon, runs)`` of a ledger block (``inf`` for no bound)."""
    eps = block.get("composed_epsilon")
    return (math.inf if eps is None else float(eps)), int(block.get("runs") or len(block.get("entries") or []))


def recomposed_block(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The card's ``privacy_ledger`` block with the runs recorded on its patients since it was written
    (:func:`later_runs`) and those other listed cards record on the same patients (:func:`sibling_runs`) added as a
    released card shows entries, its ``runs`` and composed epsilon updated and ``later_runs`` /
    ``runs_from_other_cards`` counting them (the block as it is where there are none); what ``share`` writes, so a
    recipient reads the bound the sender knows. None as in :func:`composed_of`."""
    block = card.get("privacy_ledger")
    if not isinstance(block, Mapping):
        return None
    later = later_runs(card) if block.get("kept") != NOT_KEPT else []
    known = {_run_key(e) for e in [*(block.get("entries") or []), *later]}
    siblings = [e for e in sibling_runs(card) if _run_key(e) not in known]
    if block.get("kept") == NOT_KEPT and not siblings:
        return None  # this run alone, recorded nowhere: nothing was composed
    if not later and not siblings:
        return dict(block)
    own = _own_run(block)
    entries = [*(block.get("entries") or []), *(_card_entry(e) for e in [*later, *siblings])]
    eps = block.get("composed_epsilon")
    if eps is not None:  # infinite stays infinite; a finite one is recomposed at the block's delta
        delta = block.get("delta")
        eps = _composition(entries, float(delta)) if delta is not None else math.inf
        eps = None if math.isinf(eps) else eps
    runs = int(block.get("runs") or len(block.get("entries") or [])) + len(later) + len(siblings)
    return {**block, "entries": entries, "runs": runs, "composed_epsilon": eps, "run_id": own,
            "later_runs": int(block.get("later_runs") or 0) + len(later),
            "runs_from_other_cards": int(block.get("runs_from_other_cards") or 0) + len(siblings)}


def _composition(entries: list[Mapping[str, Any]], delta: float) -> float:
    """:func:`composed_epsilon` of ``entries``, taken from a listed card whose block composed the very same runs at
    the same delta where there is one (no accountant to load), else computed."""
    runs = {_run_key(e) for e in entries}
    for other in _registry_cards():
        block = other.get("privacy_ledger")
        if not isinstance(block, Mapping) or block.get("delta") != delta or block.get("kept") == NOT_KEPT:
            continue
        if {_run_key(e) for e in block.get("entries") or []} == runs:
            eps = block.get("composed_epsilon")
            return math.inf if eps is None else float(eps)
    return composed_epsilon(entries, delta)


def _own_run(block: Mapping[str, Any]) -> str | None:
    """The ledger id of the card's own run: recorded as ``run_id`` once later runs were added to the block, else its
    last entry's."""
    entries = block.get("entries") or []
    return block.get("run_id") or (entries[-1].get("id") if entries else None)


def later_runs(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs recorded on this card's training patients that its ledger block does not hold: runs made after
    it was written, found in its dataset folder's ledger and this user's by the card's own run (the block's last
    entry, by its ``id``). [] where neither ledger holds that run (a card from another machine) or cannot be read."""
    block = card.get("privacy_ledger") or {}
    entries = block.get("entries") or []
    own = _own_run(block)
    if not own or _RELEASE_ROOT:
        return []
    folder = (card.get("dataset") or {}).get("path")
    try:
        files = [user_ledger_path()] + ([Path(folder) / LEDGER_FILE] if folder else [])
        found = _once([e for f in dict.fromkeys(files) if f.is_file() for e in read_entries(f)])
    except (DataError, OSError):
        return []
    mine = next((e for e in found if e.get("id") == own), None)
    if mine is None:
        return []
    known = {_run_key(e) for e in entries}
    shared = sharing_patients(found, mine.get("patients", []), mine.get("images", []))
    return [e for e in shared if _run_key(e) not in known]


def _patient_keys(card: Mapping[str, Any]) -> set[tuple[str, str]]:
    """What may name a card's training patients in another card: its dataset's fingerprint (any split of the same
    VUs shares patients with it, almost surely), and for a phantom cohort its seed (one phantom patient is the same
    patient in every build of its seed). Empty without either."""
    ds = card.get("dataset") or {}
    if not isinstance(ds, Mapping):
        return set()
    keys = {("fingerprint", str(ds["fingerprint"]))} if ds.get("fingerprint") else set()
    recipe = ds.get("recipe")
    if isinstance(recipe, Mapping) and recipe.get("seed") is not None:
        keys.add(("phantom seed", str(recipe["seed"])))
    return keys


_CARDS: dict[tuple, list[Mapping[str, Any]]] = {}  #: the listed cards, by their files' paths and times
#: Where set (:func:`only_cards_under`), the one folder whose cards are composed over, and no ledger file is read.
_RELEASE_ROOT: list[Path] = []
#: Folders of generators listed beside the registry's roots in this context (:func:`also_cards_under`: the
#: dashboard's added folders, ``models list --dir``).
_EXTRA_ROOTS: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("synthvu_extra_roots", default=())


@contextlib.contextmanager
def only_cards_under(root: str | Path) -> Iterator[None]:
    """Compose over the cards under ``root`` alone while the block lasts: no ledger file of this machine (the
    user's, a dataset folder's) and no ``$SYNTHVU_MODELS``. What a release built from ``root`` (the wheel's shipped
    generators) then says depends on ``root`` only, never on the builder's own runs."""
    _RELEASE_ROOT.append(Path(root))
    try:
        yield
    finally:
        _RELEASE_ROOT.pop()


@contextlib.contextmanager
def also_cards_under(dirs: Sequence[str | Path]) -> Iterator[None]:
    """Compose over the generators in ``dirs`` too while the block lasts (this thread's context only)."""
    token = _EXTRA_ROOTS.set(tuple(Path(d).expanduser() for d in dirs))
    try:
        yield
    finally:
        _EXTRA_ROOTS.reset(token)


def _card_files() -> list[Path]:
    """The ``card.json`` of every listed generator (each root's that can be read)."""
    from synthvu_core.models.registry import CARD_FILE, _candidate_folders, model_roots

    roots = [_RELEASE_ROOT[-1]] if _RELEASE_ROOT else [r for r, _ in model_roots(list(_EXTRA_ROOTS.get()))]
    files = []
    for root in roots:
        with contextlib.suppress(OSError):
            files += [f / CARD_FILE for f in _candidate_folders(root)]
    return files


def _registry_cards() -> list[Mapping[str, Any]]:
    """The cards of every listed generator (shipped, ``$SYNTHVU_MODELS``, :func:`also_cards_under`), read once a
    process while none of their files changes; a card that cannot be read (or vanished) is left out alone."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.models.registry import load_card

    stamped = []
    for f in _card_files():
        with contextlib.suppress(OSError):
            stamped.append((f, f.stat().st_mtime_ns))
    key = tuple((str(f), t) for f, t in stamped)
    if key not in _CARDS:
        cards = []
        for f, _ in stamped:
            with contextlib.suppress(SynthVUError, OSError):
                cards.append(load_card(f.parent))
        _CARDS.clear()
        _CARDS[key] = cards
    return _CARDS[key]


def _entries_of(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs a card records: its ledger block's entries, else its own run; a DP run its card does not let one
    account (an older card without the mechanism's settings) counts as a run without a bound."""
    block = card.get("privacy_ledger")
    entries = block.get("entries") if isinstance(block, Mapping) else None
    if entries:
        return [dict(e) for e in entries]
    try:
        return [_card_entry(run_entry(card))]
    except (KeyError, TypeError, AttributeError):
        return [{"run": card.get("name"), "created": card.get("created"), "dp": False, "epsilon": None,
                 "note": "its card does not record the mechanism's settings: no bound can be composed"}]


def sibling_runs(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs other listed generators' cards record on patients this card may share (same dataset fingerprint,
    whatever the split, or the same phantom seed: :func:`_patient_keys`), as released cards show entries. A shipped
    card written before later runs on its patients thus composes with them on a machine whose ledgers never saw
    them; a run counted where it shares no patient only makes the bound looser, never tighter."""
    mine = _patient_keys(card)
    if not mine:
        return []
    out: list[dict[str, Any]] = []
    for other in _registry_cards():
        if other is card or not (_patient_keys(other) & mine):
            continue
        out += _entries_of(other)
    return list({_run_key(e): e for e in reversed(out)}.values())[::-1]


def composed_short(card: Mapping[str, Any]) -> str:
    """A few words on the card's composed bound for a table cell or a legend: "composed 10.74 over 3 runs",
    "composed ∞ over 15 runs", or "not composed" where no run was recorded (:func:`composed_of` gives None)."""
    found = composed_of(card)
    if found is None:
        return "not composed"
    eps, runs = found
    return f"composed {epsilon_value(None if math.isinf(eps) else eps)} over {runs} run{'s' if runs != 1 else ''}"


def spent_text(found: tuple[float, int]) -> str:
    """One line on what :func:`spent_on` found."""
    eps, runs = found
    if not runs:
        return "privacy ledger: no run recorded on these patients yet"
    over = f"{runs} run{'s' if runs != 1 else ''} recorded on these patients (this folder's ledger and the user's)"
    if math.isinf(eps):
        return f"privacy ledger: {over}; composed ε = ∞: a run without differential privacy bounds nothing"
    return f"privacy ledger: {over}; composed {epsilon_text(eps)} (RDP)"


def composed_text(card: Mapping[str, Any]) -> str | None:
    """One plain sentence on the dataset's composed bound, or None for a card without a ledger."""
    block = recomposed_block(card)
    if block is None:
        return None
    eps, runs = _bound(block)
    later, cards = int(block.get("later_runs") or 0), int(block.get("runs_from_other_cards") or 0)
    since = f", {later} of them after this card was written" if later else ""
    since += f", {cards} of them recorded by other generators' cards on the same patients" if cards else ""
    over = f"over the {runs} run{'s' if runs != 1 else ''} recorded on its training data{since}"
    if math.isinf(eps):
        return (f"composed ε = ∞ {over}: a run without differential privacy was trained on these patients, "
                "so together they bound nothing")
    return f"composed {epsilon_text(eps)} {over} (RDP composition)"
