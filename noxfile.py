"""Nox sessions: the test suite on the oldest and on the newest versions that setup.cfg admits.

``nox`` runs both; ``nox -s oldest`` or ``nox -s newest`` one; arguments after ``--`` go to
pytest (``nox -- -m "not slow"`` for the quick tier). Each session is a fresh virtual
environment: ``oldest`` has Python 3.10 (``python_requires``) and every ``install_requires``
at its lower bound; ``newest`` has Python 3.12 and the newest release of everything.
"""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
nox.options.sessions = ["oldest", "newest"]


def lower_bounds() -> list[str]:
    """``name==X`` for every ``name>=X`` in setup.cfg's ``install_requires``."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    pins = []
    for line in config["options"]["install_requires"].splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;#\s]+)", line)
        if match:
            pins.append(f"{match[1]}=={match[2]}")
    return pins


def run_suite(session: nox.Session) -> None:
    """The versions in use, then pytest (the full suite unless arguments are given)."""
    session.run("python", "-c", "import sys, torch, torchvision, numpy, avalanche; "
                "print('python', sys.version.split()[0], '| torch', torch.__version__, "
                "'| torchvision', torchvision.__version__, '| numpy', numpy.__version__, "
                "'| avalanche-lib', avalanche.__version__)")
    session.run("pytest", "-q", *session.posargs, env={"WANDB_MODE": "offline", "MPLBACKEND": "Agg"})


@nox.session(python="3.10")
def oldest(session: nox.Session) -> None:
    """Every requirement at the lower bound of its range in setup.cfg."""
    constraints = Path(session.create_tmp()) / "lower-bounds.txt"
    constraints.write_text("\n".join(lower_bounds()) + "\n")
    session.install("-e", ".[test]", "-c", str(constraints))
    run_suite(session)


@nox.session(python="3.12")
def newest(session: nox.Session) -> None:
    """The newest release of every requirement the ranges admit."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    run_suite(session)
