"""Atomic writes: a file or folder appears complete under its final name, or not at all.

An interrupted run leaves at most a ``.tmp-*`` sibling, which readers never trust and the next
write removes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthvu_core.errors import DiskFullError


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    Works for files and folders: the caller writes whatever it wants at the yielded path.
    On error the temporary is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.rmdir()  # the caller creates a file or a folder of its choice here
    try:
        try:
            yield tmp
        except Exception as e:  # noqa: BLE001 - re-raised unless it is a full disk
            if not _out_of_space(e, final.parent):
                raise
            raise disk_full(final, written=_size(tmp)) from e
        if final.is_dir() and not tmp.is_dir():  # a file never replaces a folder (someone's work, perhaps)
            from synthvu_core.errors import OutputError

            raise OutputError(f"{final}: is a folder, not a file; nothing was written (choose another path)")
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _size(path: Path) -> int:
    """Bytes under ``path`` (a file or a folder; 0 where nothing is there)."""
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size if path.exists() else 0
    except OSError:
        return 0


def free_bytes(path: str | Path) -> int | None:
    """Bytes free for this user on the file system holding ``path`` (its nearest existing folder)."""
    try:
        return shutil.disk_usage(_existing_ancestor(Path(path) / "x")).free
    except OSError:
        return None


def _human(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _out_of_space(e: BaseException, folder: Path) -> bool:
    """Whether a write failed on a full disk: ``ENOSPC``, or a writer that lost the errno on the way (numpy raises
    a bare ``OSError``, safetensors its own error with the system's words) while ``folder``'s disk has no room."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    if "No space left on device" in str(e):
        return True
    if isinstance(e, OSError) and e.errno is None:
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def disk_full(path: str | Path, *, written: int = 0, needed: int | None = None) -> DiskFullError:
    """The error for a disk that filled while writing ``path``: names it, the bytes needed and the bytes free."""
    path = Path(path)
    free = free_bytes(path)
    if needed is not None:
        want = f"it needs about {needed:,} bytes ({_human(needed)})"
    else:
        want = f"it needs more than the {written:,} bytes written before the disk filled"
    have = "" if free is None else f"; {free:,} bytes ({_human(free)}) are free there"
    return DiskFullError(f"{path}: the disk is full (no space left on device): {want}{have}; nothing was written "
                         "(the partial file was removed)", path=path)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---- output checks (run before any work) -----------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str | Path, what: str = "output") -> Path:
    """Raise :class:`OutputError` unless ``path`` can be created (or replaced) atomically.

    Probes by creating and removing a temporary file in the nearest existing folder above ``path``,
    which is exactly what :func:`atomic_path` needs; nothing else is created.
    """
    from synthvu_core.errors import OutputError

    path = Path(path)
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot write the {what} here ({folder} is not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".synthvu-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the {what} here ({os_reason(e)})") from None
    return path


def check_suffix(path: str | Path, suffixes: tuple[str, ...], what: str = "output") -> Path:
    """Raise :class:`OutputError` unless the file name ends with one of ``suffixes`` (case-insensitive)."""
    from synthvu_core.errors import OutputError

    path = Path(path)
    if not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise OutputError(f"{path}: unknown {what} format; use {' or '.join(suffixes)}")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a {what} file; choose another path")
    return path


def check_replaceable(path: str | Path, is_ours: Callable[[Path], bool], what: str, *, force: bool = False) -> Path:
    """Refuse an existing ``path`` that is not one of our artefacts (``is_ours``) unless ``force``.

    An empty folder or one of ours may be replaced; anything else (a file, a folder of someone's
    work) is left untouched and :class:`OutputError` names it. Then checks that it can be written.
    """
    from synthvu_core.errors import OutputError

    path = Path(path)
    if path.is_symlink() and not force:
        raise OutputError(f"{path}: is a symbolic link, not a {what} folder; choose another path or add --force")
    if path.exists() and not force:
        if not path.is_dir():
            raise OutputError(
                f"{path}: is a file, not a {what} folder; choose another path or add --force to replace it"
            )
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as e:
            raise OutputError(f"{path}: cannot read the folder ({os_reason(e)})") from None
        if entries and not is_ours(path):
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputError(
                f"{path}: exists and is not a {what} folder (holds {shown}); nothing was changed. "
                "Choose another path, or add --force to replace it"
            )
    return check_writable(path, what)


#: What reading a numpy file (``.npy``, ``.npz``) may raise on a damaged or foreign file: its archive cut short
#: (``zipfile.BadZipFile``, ``EOFError``), pickled data refused (``ValueError``), the disk (``OSError``).
ARRAY_READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def array_read_problem(e: Exception) -> str:
    """One of :data:`ARRAY_READ_ERRORS` as the problem with the file, in words (the caller names the file): never
    numpy's advice to load pickled data, which synthvu never does."""
    if isinstance(e, zipfile.BadZipFile | EOFError):
        return "not a complete numpy archive (cut short or damaged)"
    if isinstance(e, ValueError) and "pickle" in str(e):
        return "not numeric arrays (numpy reads object data here, which synthvu never loads: damaged or foreign)"
    if isinstance(e, OSError):
        return os_reason(e)
    return str(e)


def os_reason(e: OSError) -> str:
    """An ``OSError`` as a short reason without the path (the caller names it)."""
    return e.strerror or type(e).__name__


# ---- names read from cards and reports ---------------------------------------------------------

#: A name a card or report may give to something that becomes a folder (a phantom recipe's cache folder,
#: a control's sub-folder): letters, digits, ``.``, ``_``, ``-``; no separator, no ``..``, no leading dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_name(value: object, where: str | Path, key: str, error: type[Exception] | None = None) -> str:
    """``value`` where it is a plain folder name (:data:`SAFE_NAME`); else ``error`` naming ``where`` and ``key``.

    Nothing read from a card or a report is used as a path before it passes here: ``/abs/dir`` or
    ``../../x`` would otherwise select a folder outside the one meant.
    """
    if isinstance(value, str) and SAFE_NAME.fullmatch(value) and ".." not in value:
        return value
    from synthvu_core.errors import SynthVUError

    shown = repr(value) if not isinstance(value, str) else repr(value[:80])
    raise (error or SynthVUError)(
        f"{where}: {key} {shown} is not a plain name (letters, digits, '.', '_', '-'; no path); refused"
    )


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved, where it lies strictly inside ``root``; :class:`OutputError` otherwise."""
    from synthvu_core.errors import OutputError

    base, real = Path(root).resolve(), Path(path).resolve()
    if real == base or not real.is_relative_to(base):
        raise OutputError(f"{path}: lies outside {root}; refused (nothing is replaced outside it)")
    return real


# ---- one writer per output folder ----------------------------------------------------------------


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold the write lock of ``folder`` (``train`` and ``evaluate`` outputs) for the duration of the block.

    The lock is ``fcntl.flock`` on ``.<name>.lock`` beside the folder: the kernel releases it when the holder exits
    or is killed, so a lock file left by a crashed run is stale and simply taken over. A second writer gets
    :class:`OutputError` naming the folder and the holder (its pid and command) instead of both saying "wrote".
    """
    import fcntl

    from synthvu_core.errors import OutputError

    folder = Path(folder)
    lock = folder.parent / f".{folder.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputError(f"{folder}: another synthvu run is writing this folder ({holder}); nothing was changed: "
                              "wait for it to finish or choose another output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, {what}, since {_now()}\n".encode())
        yield lock
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)  # releases the lock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not said which"


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
