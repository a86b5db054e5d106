"""The ``agval`` command line. Each command group lives in its own module; heavy imports
(Prefect, the SDK, polars) happen inside commands so ``agval --help`` stays fast."""

from __future__ import annotations

import importlib
import sys

import typer

from agval import __version__

app = typer.Typer(
    rich_markup_mode=None,
    name="agval",
    help="Validate AlphaGenome (and other models') variant-effect predictions against experiments: "
         "QTL, TWAS/fine-mapping and MPRA studies as Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute, group name or None for top-level commands)
_COMMANDS: list[tuple[str, str, str | None]] = [
    ("agval.cli.world", "app", "world"),
    ("agval.cli.standin", "app", "standin"),
    ("agval.cli.model", "app", "model"),
    ("agval.cli.run", "app", "run"),
    ("agval.cli.demo", "register", None),
    ("agval.cli.ops", "register", None),
]


def _register() -> None:
    for mod_name, attr, group in _COMMANDS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:  # command group not built yet
                continue
            raise
        obj = getattr(mod, attr)
        if group is None:
            obj(app)
        else:
            app.add_typer(obj, name=group)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the agval version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main(argv: list[str] | None = None) -> None:
    from agval import prefect_env
    from agval.errors import AgvalError
    from agval.secrets import install_log_filter, redact

    prefect_env.configure()
    install_log_filter()
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except AgvalError as e:
        typer.secho(f"error: {redact(str(e))}", err=True, fg="red")
        sys.exit(2)


if __name__ == "__main__":
    main()
