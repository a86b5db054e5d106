"""The ``agval`` command line. Each command group lives in its own module; heavy imports
(Prefect, the SDK, polars) happen inside commands so ``agval --help`` stays fast."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from typer.core import TyperGroup

from agval import __version__

class _Group(TyperGroup):
    """Commands in the order a user needs them (``run`` first), not alphabetically."""

    ORDER = ("run", "demo", "serve", "watch", "revalidate", "compare", "prefect-yaml", "world", "standin", "model")

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (self.ORDER.index(n) if n in self.ORDER else len(self.ORDER),
                                            names.index(n)))


app = typer.Typer(
    cls=_Group,
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
    _register_plugins()


#: the entry-point group through which other packages add command groups: ``name = "module:register"``,
#: ``register(app)`` adding its commands (the stand-ins' ``world`` and ``standin``: ``standins.cli``)
PLUGIN_GROUP = "agval.commands"


def plugin_entry_points() -> dict[str, str]:
    """``name -> "module:function"`` of every :data:`PLUGIN_GROUP` entry point: the installed
    distributions' metadata, plus, in a source checkout, the ``pyproject.toml`` beside the
    package (an editable install made before an entry was declared does not list it)."""
    from importlib.metadata import entry_points
    from pathlib import Path

    found = {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {})
        for name, value in declared.get(PLUGIN_GROUP, {}).items():
            found.setdefault(name, value)
    return found


def _register_plugins() -> None:
    import importlib

    for value in plugin_entry_points().values():
        mod_name, _, attr = value.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name and mod_name.startswith(e.name):  # the plugin's package is not installed
                continue
            raise
        getattr(mod, attr or "register")(app)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the agval version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


class _ConsoleGuard:
    """Keeps Prefect's error records (and every traceback) off the terminal and remembers
    them, bounded, for the error log in the run folder. Warnings still print, once: a
    Python warning whose text was already logged as a WARNING record is not shown again."""

    MAX_RECORDS = 500
    MAX_CHARS = 20_000

    def __init__(self):
        import collections
        import logging

        self.records: collections.deque[str] = collections.deque(maxlen=self.MAX_RECORDS)
        self._fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._handlers: list = []
        self.warned: collections.deque[str] = collections.deque(maxlen=200)

    def filter(self, record) -> bool:
        if record.levelno == 30:  # remembered: the same text as a Python warning is not printed again
            try:
                self.warned.append(str(record.getMessage()))
            except Exception:  # noqa: BLE001
                pass
        if record.exc_info or record.levelno >= 40:
            try:
                text = self._fmt.format(record)
            except Exception:  # noqa: BLE001 - a broken record must not break the command
                text = repr(record.msg)
            self.records.append(text[: self.MAX_CHARS])
            return False
        return True

    @staticmethod
    def _is_console(h) -> bool:
        import logging

        if type(h).__name__ == "PrefectConsoleHandler":
            return True
        return type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)

    def attach(self) -> None:
        import logging

        for h in logging.getLogger().handlers:
            if self._is_console(h) and h not in self._handlers:
                h.addFilter(self)
                self._handlers.append(h)

    def install(self) -> "_ConsoleGuard":
        """Attach now and after every later ``logging.config.dictConfig`` (Prefect sets up
        its console handler when it is first imported, inside a command)."""
        import logging.config

        self._handlers: list = []
        self.attach()
        self._orig = logging.config.dictConfig

        def dict_config(config, _orig=self._orig):
            _orig(config)
            self.attach()

        logging.config.dictConfig = dict_config
        import warnings

        self._showwarning = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None, _orig=self._showwarning):
            if str(message) in self.warned:  # a flow logged it already (warnings once)
                return
            _orig(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        return self

    def uninstall(self) -> None:
        import logging.config

        for h in self._handlers:
            h.removeFilter(self)
        self._handlers = []
        logging.config.dictConfig = self._orig
        import warnings

        warnings.showwarning = self._showwarning


def _error_log(exc: BaseException, guard: _ConsoleGuard | None) -> "Path | None":
    """Write the full traceback (and Prefect's error records) into the newest run folder this
    process started, else ``<state>/logs/``. Returns the file, None if nothing could be written."""
    import datetime as dt
    import traceback
    from pathlib import Path

    from agval.runs import ERROR_LOG, runs_started_here
    from agval.secrets import redact

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if guard is not None and guard.records:
        text += "\n--- log records kept off the terminal ---\n" + "\n".join(guard.records)
    text = redact(text)
    folders = runs_started_here()
    targets = [folders[-1] / ERROR_LOG] if folders else []
    try:
        from agval.paths import state_dir

        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        targets.append(state_dir() / "logs" / f"agval-error-{stamp}-{os.getpid()}.log")
    except Exception:  # noqa: BLE001
        pass
    for t in targets:
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
            with open(t, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
            return Path(t)
        except OSError:
            continue
    return None


def _os_error_lines(e: OSError) -> list[str]:
    """An OS error that escaped the library: which path and why, in one line."""
    from agval.errors import StorageError, bounded, user_lines

    if e.filename:
        return user_lines(StorageError.from_os_error(e.filename, e, "file or folder"))
    return [f"error: {bounded(e.strerror or str(e) or type(e).__name__, 500)}"]


def _click_exceptions() -> dict[str, tuple[type, ...]]:
    """click's exception classes, from typer's vendored copy and from click itself."""
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    return {k: tuple(getattr(m, k) for m in mods if hasattr(m, k)) for k in ("Exit", "Abort", "ClickException")}


_USES_SERVE = ("watch", "revalidate", "compare", "run")
"""Commands that use a running ``agval serve`` (its Prefect server, stand-in, results URL and
config, from ``<state>/serve.json``) for every variable not already set."""


def _adopt_serve() -> None:
    from agval.serving import adopt_serve_state, state_path

    adopted = adopt_serve_state()
    if adopted:
        typer.echo(f"using the running agval serve ({state_path()}): "
                   + " ".join(f"{k}={v}" for k, v in sorted(adopted.items())), err=True)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 2 an agval error, 130
    interrupted, 1 an internal error). Errors are printed as one ``error:`` line and maybe
    one ``hint:`` line on stderr; the full traceback goes to :data:`agval.runs.ERROR_LOG`
    in the run folder (or ``<state>/logs/``)."""
    import signal

    from agval.errors import AgvalError, RunInterrupted, user_lines

    guard = None

    def fail(lines: list[str], exc: BaseException, code: int, status: str = "failed") -> int:
        from agval import runs

        runs.fail_open_runs(lines[0][len("error: "):], status=status)
        log = _error_log(exc, guard)
        if code == 1 and log is not None:
            lines = lines[:1] + [f"hint: this is a bug in agval; the full traceback is in {log}"]
        for line in lines:
            typer.secho(line, err=True, fg="red" if line.startswith("error:") else None)
        return code

    def on_term(signum, frame):
        raise RunInterrupted(f"stopped by signal {signal.Signals(signum).name}")

    old_term = None
    try:
        from agval import prefect_env
        from agval.secrets import install_log_filter

        args = list(sys.argv[1:] if argv is None else argv)
        if args and args[0] in _USES_SERVE:  # before Prefect reads its settings
            _adopt_serve()
        prefect_env.configure()
        install_log_filter()
        if not args or args[0] != "serve":  # a long-lived server keeps Prefect's errors on its console
            guard = _ConsoleGuard().install()
        _register()
        from agval.runs import sweep_interrupted

        sweep_interrupted()
        try:
            old_term = signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread (tests calling in a thread)
            old_term = None
        cx = _click_exceptions()
        try:
            app(args=argv, standalone_mode=False, prog_name="agval")
        except cx["Exit"] as e:
            return e.exit_code
        except cx["Abort"] as e:  # Ctrl-C inside click
            raise KeyboardInterrupt from e
        except cx["ClickException"] as e:  # usage errors: click's own message, exit 2
            e.show()
            return e.exit_code
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return 0
    except RunInterrupted as e:
        return fail([f"error: {e}"], e, 130, status="interrupted")
    except KeyboardInterrupt as e:
        return fail(["error: interrupted (Ctrl-C)"], e, 130, status="interrupted")
    except AgvalError as e:
        return fail(user_lines(e), e, 2)
    except OSError as e:
        return fail(_os_error_lines(e), e, 2)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, traceback to the log
        from agval.errors import bounded
        from agval.secrets import redact

        return fail([f"error: internal error: {type(e).__name__}: {bounded(redact(str(e)), 500)}"], e, 1)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if guard is not None:
            guard.uninstall()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(argv))


if __name__ == "__main__":
    main()
