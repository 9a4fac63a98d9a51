"""Commands contributed by the domain packages: each may define `register(subparsers)` in its cli module."""

from __future__ import annotations

import importlib
import importlib.util

EXTENSIONS = ("grids.cli", "cases.cli", "cases.cli_audit")


def register(sub) -> None:
    """Let grids/ and cases/ add their subcommands."""
    for name in EXTENSIONS:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
