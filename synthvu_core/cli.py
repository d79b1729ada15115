"""Command line: ``python -m synthvu_core <command> ...``.

Each area registers its own subcommands (``synthvu_core/<area>/commands.py``); those modules import
only argparse at top level, so ``--help`` never imports torch. Errors a user can cause print one
line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from synthvu_core import __version__
from synthvu_core.errors import SynthVUError


def build_parser() -> argparse.ArgumentParser:
    from synthvu_core.clinical import commands as clinical_commands
    from synthvu_core.data import commands as data_commands
    from synthvu_core.evaluation import commands as evaluation_commands
    from synthvu_core.models import commands as model_commands

    parser = argparse.ArgumentParser(
        prog="synthvu" if Path(sys.argv[0]).name == "synthvu" else "python -m synthvu_core",
        description="synthvu: synthetic spine MRI vertebral units, with utility and privacy evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"synthvu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data_commands.register(sub)
    model_commands.register(sub)
    evaluation_commands.register(sub)
    clinical_commands.register(sub)

    serve = sub.add_parser("serve", help="start the dashboard (streamlit run app.py, with the app's settings)")
    serve.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    serve.add_argument(
        "--address",
        default=None,
        help="address to listen on (default: Streamlit's, all interfaces; 127.0.0.1 for this machine only)",
    )
    serve.add_argument(
        "--public",
        action="store_true",
        help="public mode: no real patient image leaves the server, no tracebacks in the browser",
    )
    serve.add_argument(
        "--secrets",
        default=None,
        metavar="FILE",
        help='a secrets.toml (e.g. with `password = "..."`) instead of .streamlit/secrets.toml',
    )
    serve.set_defaults(func=_serve)
    return parser


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and environment that ``serve`` starts.

    Args:
        args: parsed ``serve`` arguments (port, address, public, secrets).
    """
    import os

    from synthvu_core.locations import CONFIG_FILE, app_root, streamlit_flags

    root = app_root()
    if root is None:
        raise SynthVUError(
            "app.py: the dashboard is not installed beside synthvu_core (reinstall with `pip install .`)"
        )
    if args.secrets is not None and not Path(args.secrets).is_file():
        raise SynthVUError(f"{args.secrets}: secrets file not found")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), *streamlit_flags(root / CONFIG_FILE)]
    cmd += ["--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]
    if args.public:
        env["SYNTHVU_PUBLIC"] = "1"
        cmd += ["--client.showErrorDetails", "none"]
    if args.secrets is not None:
        cmd += ["--secrets.files", str(Path(args.secrets).resolve())]
    return cmd, env


def _serve(args: argparse.Namespace) -> int:
    import subprocess

    cmd, env = serve_command(args)
    return subprocess.call(cmd, env=env)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C: our worker processes stop now, temporary folders are removed."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return int(args.func(args) or 0)
    except SynthVUError as e:
        print(f"synthvu: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthvu: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # an output or input the system refused: one line naming the path, never a traceback
        import errno

        from synthvu_core.storage import os_reason

        where = e.filename or ("the output" if e.errno == errno.ENOSPC else "a file")
        why = "the disk is full (no space left on device)" if e.errno == errno.ENOSPC else os_reason(e)
        print(f"synthvu: error: {where}: {why}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
