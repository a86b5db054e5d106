"""Provenance labels the library owns (the stand-ins import them, never the reverse).

:data:`SIMULATED_DATA_SOURCE` is the ``data_source`` every track of a stand-in's answer
carries; a score table containing it is simulated, whatever its caller says.
"""

from __future__ import annotations

__all__ = ["SIMULATED_DATA_SOURCE"]

#: The ``data_source`` label of everything the stand-in services produce.
SIMULATED_DATA_SOURCE = "agval-standin (SIMULATED)"
