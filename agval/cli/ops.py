"""Operations: ``agval serve``, ``agval revalidate``, ``agval watch``, ``agval compare``,
``agval prefect-yaml``.

* ``agval serve``: validates ``deployments/agval.toml`` (or ``--config``), prepares the
  SIMULATED demo when the config enables it (world, demo study files, stand-in service),
  starts a local Prefect server on 127.0.0.1 (unless ``PREFECT_API_URL`` is set), prints
  the UI URL, and serves every deployment; it also serves the results roots read-only over
  HTTP (:mod:`agval.serving`) and writes ``<state>/serve.json`` for other terminals. Ctrl-C
  stops everything it started.
* ``agval watch``: run ``watch_model`` once (fingerprint, compare, emit on change).
* ``agval revalidate``: run every configured study now and append to the history.
* ``agval compare A B``: comparison report between two model fingerprints, two backends
  or two run folders (no arguments: the two most recent fingerprints).
* ``agval prefect-yaml``: write ``prefect.yaml`` (current folder) from the config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

CONFIG_HELP = "Deployments config (default: $AGVAL_DEPLOYMENTS_CONFIG or deployments/agval.toml)."


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def serve(
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    port: Optional[int] = typer.Option(None, "--port", help="Port of the local Prefect server (default: a free one)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Maximum concurrent flow runs."),
    demo: Optional[bool] = typer.Option(None, "--demo/--no-demo",
                                        help="Prepare the SIMULATED demo first (default: the config's [demo] enabled)."),
    revision: Optional[int] = typer.Option(None, "--revision",
                                           help="Demo stand-in model revision (a different N = different weights; "
                                                "restart with another N to see watch_model trigger revalidate)."),
) -> None:
    """Start a local Prefect server (unless PREFECT_API_URL is set) and serve every deployment.

    Validates the config before anything starts. Deployments: one per configured study (its cron and study-file parameters), watch-model (cron), revalidate (triggered by agval.model.changed) and compare. Prints the UI URL.

    Also serves the results folders read-only over HTTP on 127.0.0.1 (the UI port + 1; report artifacts link there) and writes <AGVAL_HOME>/serve.json, through which agval watch, revalidate, compare and run in another terminal find this server, the stand-in and the config.

    Ctrl-C stops the deployments, the stand-in and the server.
    """
    from agval.errors import ConfigError
    from deployments import config as dcfg
    from deployments.server import start_server, stop_group

    cfg_path = dcfg.config_path(config)
    use_demo = dcfg.demo_enabled(cfg_path) if demo is None else demo
    # 1. everything that can be checked before anything starts
    pre = dcfg.load_config(cfg_path, env=dict(dcfg.DEMO_VARIABLES) if use_demo else None)
    dcfg.validate(pre, check_api=True, check_files=not use_demo)
    env: dict[str, str] = {}
    started: list = []
    server = None
    proc = None
    results = None

    def _interrupt(*_):
        raise KeyboardInterrupt

    # SIGTERM stops everything like Ctrl-C does; SIGINT is handled even when the shell started
    # this process in the background with SIGINT ignored
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if use_demo:
            from deployments.serve import prepare_demo

            demo_env, svc = prepare_demo(pre, revision=revision, log=typer.echo)
            started.append(svc)
            env.update(demo_env)
            os.environ.update(demo_env)
        # 2. full validation (study files exist and parse) with the demo's variables
        cfg = dcfg.load_config(cfg_path)
        dcfg.validate(cfg, check_api=True)
        if not os.environ.get("PREFECT_API_URL"):
            typer.echo("starting a local Prefect server on 127.0.0.1 ...")
            server = start_server(port=port)
            env["PREFECT_API_URL"] = server.api_url
            ui = server.ui_url
        else:
            ui = os.environ["PREFECT_API_URL"].rstrip("/").removesuffix("/api")
        typer.secho(f"Prefect UI: {ui}", fg="green", bold=True)
        typer.echo(f"PREFECT_API_URL={env.get('PREFECT_API_URL') or os.environ['PREFECT_API_URL']}")
        # 3. the results roots over HTTP (read-only, 127.0.0.1, the UI port + 1): artifacts link there
        from urllib.parse import urlsplit

        from agval.serving import start_results_server, write_serve_state

        ui_port = urlsplit(ui).port
        results = start_results_server(ui_port + 1 if ui_port else None)
        env["AGVAL_RESULTS_URL"] = results.url
        env["AGVAL_DEPLOYMENTS_CONFIG"] = str(Path(cfg_path).absolute())
        typer.secho(f"results: {results.url}/ (read-only)", fg="green")
        child_env = {**os.environ, **env}
        state = write_serve_state(child_env, ui_url=ui)
        typer.echo(f"another terminal with the same AGVAL_HOME finds this serve through {state} "
                   "(agval watch, revalidate, compare, run)")
        child_env.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        cmd = [sys.executable, "-m", "deployments.serve", "--config", str(cfg_path)]
        if limit:
            cmd += ["--limit", str(limit)]
        proc = subprocess.Popen(cmd, env=child_env, start_new_session=True, stdin=subprocess.DEVNULL)
        typer.echo("serving; Ctrl-C stops everything")
        while proc.poll() is None:
            time.sleep(0.5)
        if proc.returncode:
            raise ConfigError(f"the serve process exited with code {proc.returncode}")
    except KeyboardInterrupt:
        typer.echo("\nstopping ...")
    finally:
        for s_, h in old.items():
            signal.signal(s_, h)
        if proc is not None:
            stop_group(proc, 20, sig=signal.SIGINT)
        for svc in started:
            svc.stop()
        if results is not None:
            from agval.serving import clear_serve_state

            clear_serve_state()
            results.stop()
        if server is not None:
            server.stop()
        typer.echo("stopped")


def watch(
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    backend: Optional[list[str]] = typer.Option(None, "--backend", help="Only this [[backends]] name (repeatable)."),
    emit: bool = typer.Option(True, "--emit/--no-emit", help="Emit agval.model.changed on a change."),
) -> None:
    """Run watch_model once: fingerprint the configured models, emit agval.model.changed on a change.

    Fingerprints each configured backend and model version, compares it with the last recorded one, emits agval.model.changed on a material change and records the new one.

    Without PREFECT_API_URL the event goes to a temporary Prefect server and triggers nothing.
    """
    from flows.revalidate import watch_model

    res = watch_model(config=str(config) if config else None, backends=list(backend) if backend else None, emit=emit)
    _echo_json([{k: c[k] for k in ("backend", "model_version", "new_digest", "old_digest", "first_seen", "material",
                                   "parts")} for c in res["checks"]])


def revalidate(
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    study: Optional[list[str]] = typer.Option(None, "--study", help="Only this study name or kind (repeatable)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Only studies bound to this [[backends]] name."),
) -> None:
    """Run every configured study against the current model now; append the metrics to the history.

    The same flow the agval.model.changed trigger runs.
    """
    from flows.revalidate import revalidate as flow

    res = flow(config=str(config) if config else None, studies=list(study) if study else None, backend=backend,
               reason="manual")
    _echo_json([{k: r.get(k) for k in ("name", "kind", "state", "run_folder", "history_rows")}
                for r in res["studies"]])


def compare(
    a: Optional[str] = typer.Argument(None, help="Side A: a model fingerprint digest (or a unique prefix), a backend "
                                                 "label from the history (alphagenome:standin, precomputed:enformer) "
                                                 "or a run folder."),
    b: Optional[str] = typer.Argument(None, help="Side B (same kinds). Without A and B: the two latest fingerprints."),
    study: Optional[list[str]] = typer.Option(None, "--study", help="Only this study name or kind (repeatable)."),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap replicates."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    list_: bool = typer.Option(False, "--list", help="List the fingerprints and backends in the history and exit."),
    leaderboard: bool = typer.Option(False, "--leaderboard", help="Only write the leaderboard (every study x model x "
                                     "version in the history, published rows among them) and print where it is."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP + " Only its [study_kinds] are used."),
) -> None:
    """Compare two model fingerprints, two backends or two run folders; write a report.

    Per-metric differences with paired bootstrap CIs on the same variants, each metric across model versions over time, and an index page linking every run's report.
    """
    if list_:
        import polars as pl

        from agval.errors import ConfigError
        from agval.revalidation.history import read_history, sync_history
        from flows.revalidate import _kind_of_flow
        from deployments.config import load_config, register_study_kinds

        try:
            register_study_kinds(load_config(config))
        except ConfigError as e:
            typer.echo(f"(deployments config not used: {e})", err=True)
        sync_history(kind_of_flow=_kind_of_flow())
        h = read_history()
        if h.height == 0:
            typer.echo("the history is empty")
            return
        t = (h.group_by("model_fingerprint", "backend", "model_version")
             .agg(pl.col("run_id").n_unique().alias("runs"), pl.col("time").min().alias("first"),
                  pl.col("time").max().alias("last")).sort("last"))
        for r in t.iter_rows(named=True):
            typer.echo(f"{(r['model_fingerprint'] or '-')[:16]}  {r['backend']:<24} {r['model_version'] or '-':<10} "
                       f"{r['runs']:>3} runs  {r['first']} .. {r['last']}")
        return
    if leaderboard:
        from agval.paths import results_root
        from agval.revalidation.history import read_history, sync_history
        from agval.revalidation.leaderboard import leaderboard_table, write_leaderboard
        from flows.revalidate import _kind_of_flow

        sync_history(kind_of_flow=_kind_of_flow())
        board = leaderboard_table(read_history())
        if study:
            board = board.filter(board["study"].is_in(list(study)) | board["study_kind"].is_in(list(study)))
        sim = bool(board.height and board["simulated"].fill_null(False).any())
        paths = write_leaderboard(board, results_root(sim) / "leaderboard")
        typer.echo(f"leaderboard: {paths['html']}\nmachine table: {paths['csv']} ({paths['parquet'].name} beside it)")
        return
    from flows.revalidate import compare as flow

    res = flow(a=a, b=b, studies=list(study) if study else None, n_boot=n_boot, seed=seed,
               config=str(config) if config else None)
    _echo_json({k: res[k] for k in ("report", "leaderboard", "index", "side_a", "side_b", "metrics")})


def prefect_yaml(
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    out: Path = typer.Option(Path("prefect.yaml"), "--out",
                             help="Where to write it (default: prefect.yaml in the current folder; the project's "
                                  "copy is deployments/prefect.yaml)."),
) -> None:
    """Write prefect.yaml (process work pool) from the config, for `prefect deploy --all`."""
    from deployments.config import load_config, validate
    from deployments.serve import render_prefect_yaml

    cfg = load_config(config, env={"AGVAL_STANDIN_ADDRESS": "127.0.0.1:1"})
    validate(cfg, check_api=False, check_files=False, check_modules=False)
    from agval.schema import atomic_write_bytes

    atomic_write_bytes(out, render_prefect_yaml(cfg).encode())
    typer.echo(f"wrote {out.absolute()}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("watch")(watch)
    app.command("revalidate")(revalidate)
    app.command("compare")(compare)
    app.command("prefect-yaml")(prefect_yaml)
