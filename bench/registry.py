"""Registries keyed by the Hydra group option: `configs/method/fastv.yaml` is method "fastv".

A typo gets the known names and the closest match, in one line, before Hydra or any model or
simulator is loaded.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from bench.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GROUPS = ("model", "method", "suite", "executor")


def known(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def check(group: str, name: str) -> str:
    names = known(group)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown {group} {name!r}; known: {', '.join(names)}{hint}")
    return name


def check_argv(argv: list[str]) -> None:
    """Validate `group=a,b` overrides on the command line (multirun lists too)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if sep and key in GROUPS and value:
            for name in value.split(","):
                check(key, name.strip())
