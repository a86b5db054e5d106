"""Stand-in AlphaGenome service (SIMULATED; not product code).

A gRPC ``DnaModelService`` + ``AtlasService`` on the SDK's own generated servicer classes,
answering from the synthetic world's DNA with its own (perturbed) copy of the world's
regulatory model. Every track's ``data_source`` is ``standins.SIMULATED_DATA_SOURCE``.

* :func:`serve` ``(world_dir, port=0, config=StandinConfig(...)) -> StandinHandle``
  (``.address``, ``.port``, ``.servicer`` with ``.calls``, ``.stop()``);
* CLI: ``agval standin alphagenome --world DIR --port P`` (:mod:`.cli`);
* fault injection: :mod:`.faults` (headers ``x-fake-*``) and :class:`StandinConfig`.
"""

from __future__ import annotations

from standins.alphagenome.faults import (HEADER_FAIL_CODE, HEADER_FAIL_FIRST, HEADER_FAIL_MIDSTREAM, HEADER_HANG,
                                         HEADER_LATENCY)
from standins.alphagenome.server import StandinHandle, serve
from standins.alphagenome.servicer import CallRecord, DnaModelService, StandinConfig

__all__ = ["serve", "StandinConfig", "StandinHandle", "CallRecord", "DnaModelService",
           "HEADER_LATENCY", "HEADER_FAIL_FIRST", "HEADER_FAIL_CODE", "HEADER_FAIL_MIDSTREAM", "HEADER_HANG"]
