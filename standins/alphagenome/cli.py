"""``agval standin alphagenome``: run the stand-in AlphaGenome service as a process (SIMULATED)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Optional

import typer


def _write_port_file(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)  # atomic: a reader never sees a partial number


def command(
    world: Path = typer.Option(..., "--world", help="World folder made by `agval world build`."),
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (0 = pick a free one)."),
    port_file: Optional[Path] = typer.Option(None, "--port-file",
                                             help="Write the bound port number here once listening."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay added before every answer (ms)."),
    revision: int = typer.Option(0, "--revision", help="Model revision: a different N gives different weights."),
    quota_tokens_per_minute: Optional[float] = typer.Option(
        None, "--quota-tokens-per-minute",
        help="Token-bucket quota (1 token = 1 Mb of sequence x 1 output); over it -> RESOURCE_EXHAUSTED."),
    poison: list[str] = typer.Option([], "--poison", help="Variant key (chr1:123:A>G) always answered "
                                                         "INVALID_ARGUMENT (repeatable)."),
    bytes_per_chunk: int = typer.Option(1 << 20, "--bytes-per-chunk", help="Tensor chunk size (0 = unchunked)."),
    no_atlas: bool = typer.Option(False, "--no-atlas", help="Do not serve the AtlasService."),
    prewarm: bool = typer.Option(False, "--prewarm", help="Before listening, compute every gene's REF exon "
                                                         "sums and the DNASE/RNA_SEQ backgrounds (benchmarks)."),
    response_cache: int = typer.Option(0, "--response-cache", help="Keep this many whole ScoreVariant answers "
                                                                   "per request (client benchmarks; 0 = off)."),
) -> None:
    """Serve the stand-in AlphaGenome gRPC API (DnaModelService + AtlasService) on 127.0.0.1.

    SIMULATED: answers come from the synthetic world's DNA through the stand-in's own
    model; they are not AlphaGenome predictions. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from agval.errors import ConfigError
    from standins.alphagenome.server import load_world, serve
    from standins.alphagenome.servicer import StandinConfig

    if port < 0 or port > 65535:
        raise ConfigError(f"--port {port} is not a TCP port (0-65535)")
    try:
        config = StandinConfig(latency_ms=latency_ms, revision=revision,
                               quota_tokens_per_minute=quota_tokens_per_minute, poison=tuple(poison),
                               bytes_per_chunk=bytes_per_chunk, atlas=not no_atlas, prewarm=prewarm,
                               response_cache_size=response_cache)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    from agval.coords import Variant

    for key in poison:
        Variant.parse(key)  # InputError with a clear message for a malformed key
    w = load_world(world)
    stop = threading.Event()

    def _on_signal(signum, _frame):
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    handle = serve(world, port=port, config=config, world=w)
    try:
        if port_file is not None:
            _write_port_file(port_file, handle.port)
        typer.echo(f"stand-in AlphaGenome (SIMULATED) listening on {handle.address} "
                   f"(world {world}, revision {revision})", err=False)
        while not stop.wait(0.5):
            pass
        typer.echo("stand-in AlphaGenome: stopping")
    finally:
        handle.stop(grace=1.0)
        if port_file is not None:
            try:
                if port_file.read_text().strip() == str(handle.port):
                    port_file.unlink()
            except OSError:
                pass
        for s, h in old.items():
            signal.signal(s, h)
