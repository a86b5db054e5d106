"""The stand-in command groups of the ``agval`` command line, as a plugin.

``agval world ...`` (build the SIMULATED synthetic world) and ``agval standin ...`` (run a
stand-in service) live here, beside what they drive, and reach the command line through the
entry-point group ``agval.commands`` declared in ``pyproject.toml``
(``standins = "standins.cli:register"``): the library (:mod:`agval`) never imports
:mod:`standins`. The stand-ins import the library, never the reverse.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``world`` and ``standin`` command groups to the ``agval`` app."""
    from standins.cli.standin import app as standin_app
    from standins.cli.world import app as world_app

    app.add_typer(world_app, name="world")
    app.add_typer(standin_app, name="standin")
