"""``agval standin myvariant``: run the stand-in myvariant.info (SIMULATED) until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from agval.errors import ConfigError


def _write_port_file(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)  # readers never see a half-written port


def command(
    world: Path = typer.Option(..., "--world", help="World folder (from `agval world build`) whose "
                                                     "variants.parquet is served."),
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0 = any free port)."),
    port_file: Optional[Path] = typer.Option(None, "--port-file", help="Write the bound port here once listening."),
    fail_first_n: int = typer.Option(0, "--fail-first-n", help="Answer the first N data requests with --fail-status."),
    fail_every_k: int = typer.Option(0, "--fail-every-k", help="Also fail every k-th data request (0 = never)."),
    fail_status: int = typer.Option(503, "--fail-status", help="HTTP status of injected failures (429, 503, ...)."),
    retry_after: float = typer.Option(1.0, "--retry-after", help="Retry-After seconds sent with injected failures."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Latency added to every data request."),
    data_version: Optional[str] = typer.Option(None, "--data-version",
                                               help="dbSNP version reported by /v1/metadata "
                                                    "(default: derived from the world's catalogue)."),
) -> None:
    """Serve the world's variant catalogue as myvariant.info does (POST /v1/query, /v1/variant,
    GET /v1/variant/<id>, /v1/metadata). SIMULATED answers; stops cleanly on SIGTERM/SIGINT."""
    from standins.myvariant.server import MyVariantConfig, serve

    if fail_status < 400:
        raise ConfigError(f"--fail-status must be an HTTP error status (>= 400), not {fail_status}")
    cfg = MyVariantConfig(fail_first_n=fail_first_n, fail_every_k=fail_every_k, fail_status=fail_status,
                          retry_after=retry_after, latency_ms=latency_ms, data_version=data_version)
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    handle = serve(world, port=port, config=cfg)  # clear ConfigError: unknown world, port in use
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if port_file is not None:
            _write_port_file(port_file, handle.port)
        typer.echo(f"myvariant stand-in (SIMULATED) serving {world} on {handle.base_url}", err=True)
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        if port_file is not None:
            port_file.unlink(missing_ok=True)
        for s, h in old.items():
            signal.signal(s, h)
    typer.echo(f"myvariant stand-in stopped after {len(handle.requests)} requests", err=True)
