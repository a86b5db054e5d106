"""Start the stand-in AlphaGenome service in-process (SIMULATED).

``serve(world_dir, port=0, config=StandinConfig(...)) -> StandinHandle`` binds a sync
``grpc.server`` (thread pool, message limits -1) on ``127.0.0.1:port`` (0 = ephemeral)
serving ``DnaModelService`` and (unless ``config.atlas`` is False) ``AtlasService``.
Startup loads the world (parquet + FASTA index) and builds the catalogue protos; model
weights and quantile backgrounds are computed lazily on first use.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from alphagenome.protos import atlas_service_pb2_grpc
from alphagenome.protos.v1 import dna_model_service_pb2_grpc

from agval.errors import ConfigError, InputError
from standins.alphagenome.servicer import DnaModelService, Runtime, StandinConfig, StandinCore

HOST = "127.0.0.1"


@dataclasses.dataclass
class StandinHandle:
    """A running stand-in. ``servicer.calls`` is the call log; ``stop()`` is idempotent."""

    server: grpc.Server
    port: int
    servicer: DnaModelService
    atlas: object | None
    core: StandinCore
    config: StandinConfig
    world_dir: Path
    _stopped: bool = dataclasses.field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def calls(self):
        return self.servicer.calls

    def stop(self, grace: float | None = 0.5) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.servicer.runtime.stop_event.set()  # wake latency/hang waits
        self.server.stop(grace).wait(max(1.0, (grace or 0) + 1.0))

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)

    def __enter__(self) -> "StandinHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def load_world(world_dir: str | Path):
    """``World.load`` with a clear error for a folder that is not a world."""
    from standins.world import World

    p = Path(world_dir)
    if not p.is_dir():
        raise InputError(f"world folder {str(p)!r} does not exist (build one with `agval world build --out DIR`)")
    if not (p / "world.json").is_file():
        raise InputError(f"{str(p)!r} is not an agval world folder (no world.json); "
                         "build one with `agval world build --out DIR`")
    return World.load(p)


def serve(world_dir: str | Path, port: int = 0, config: StandinConfig | None = None, *,
          world=None) -> StandinHandle:
    """Start the stand-in on ``127.0.0.1:port`` and return its handle (already serving).

    ``world``: an already loaded ``World`` (skips loading ``world_dir`` again).
    Raises :class:`agval.errors.InputError` for a folder that is not a world and
    :class:`agval.errors.ConfigError` when the port cannot be bound.
    """
    config = config or StandinConfig()
    world = world if world is not None else load_world(world_dir)
    core = StandinCore(world, config)
    if config.prewarm:
        core.prewarm()
    runtime = Runtime(config, stop_event=core.stop_event)
    dna = DnaModelService(core, runtime)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max(64, config.max_workers), thread_name_prefix="agval-standin"),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                 ("grpc.so_reuseport", 0)],
    )
    dna_model_service_pb2_grpc.add_DnaModelServiceServicer_to_server(dna, server)
    atlas = None
    if config.atlas:
        from standins.alphagenome.atlas import AtlasService

        atlas = AtlasService(core, runtime)
        atlas_service_pb2_grpc.add_AtlasServiceServicer_to_server(atlas, server)
    try:
        bound = server.add_insecure_port(f"{HOST}:{int(port)}")
    except RuntimeError as e:
        bound = 0
        why = str(e)
    else:
        why = ""
    if not bound:
        server.stop(None)
        raise ConfigError(f"cannot listen on {HOST}:{port}: the port is in use or not allowed"
                          + (f" ({why})" if why else ""))
    server.start()
    return StandinHandle(server, bound, dna, atlas, core, config, Path(world_dir))
