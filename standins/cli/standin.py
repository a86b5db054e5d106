"""``agval standin ...`` (a command plugin, :mod:`standins.cli`): start a stand-in service
(SIMULATED; for offline use and tests)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(rich_markup_mode=None, help="Run a stand-in service on 127.0.0.1 (simulated answers computed from the "
                       "synthetic world's DNA; never real results).", no_args_is_help=True)

for _name, _mod in (("alphagenome", "standins.alphagenome.cli"), ("myvariant", "standins.myvariant.cli")):
    try:
        app.command(_name)(importlib.import_module(_mod).command)
    except ModuleNotFoundError as _e:  # component not built yet
        if not (_e.name or "").startswith("standins"):
            raise
