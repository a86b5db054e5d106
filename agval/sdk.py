"""The AlphaGenome SDK boundary: facts the SDK owns, read from it in one place (never copied
as literals), and every reach-in to its private parts (fenced here, pinned by a test to the
installed SDK version, :data:`SDK_VERSION`).

:data:`SUPPORTED_SEQUENCE_LENGTHS` is the sorted tuple of input lengths the model accepts
(``alphagenome.models.dna_client.SUPPORTED_SEQUENCE_LENGTHS``: 16,384, 131,072, 524,288
and 1,048,576 bp in SDK 0.x). Importing the SDK takes seconds, so the value is read on
first use: the object behaves as a tuple (``in``, iteration, ``len``, indexing, ``==``).

Private parts used (each a function below; nothing else in agval touches them):

* :func:`read_tensor_chunks` - ``alphagenome.models.v1.dna_client._read_tensor_chunks``,
  the chunk reader the SDK's own decoder uses (agval's fast decoder reuses it);
* :func:`unretried` - ``DnaClient.<method>.__wrapped__``: a client method without the SDK's
  retry decorator (agval's engine owns retries, so a call is never retried twice over).

And :func:`is_loopback`, the one rule for "this address is a local service" (plaintext
gRPC; the SDK would use TLS).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Callable

__all__ = ["SUPPORTED_SEQUENCE_LENGTHS", "supported_sequence_lengths", "SDK_VERSION", "read_tensor_chunks",
           "unretried", "is_loopback"]

#: The SDK version the private reach-ins below were written against (pyproject pins it; a test
#: fails when the installed SDK differs, so an upgrade re-checks them).
SDK_VERSION = "0.10.0"


@functools.cache
def supported_sequence_lengths() -> tuple[int, ...]:
    """The SDK's supported model input lengths (bp), ascending."""
    from alphagenome.models import dna_client

    return tuple(sorted(int(v) for v in dna_client.SUPPORTED_SEQUENCE_LENGTHS.values()))


class _SdkLengths(Sequence):
    """A tuple of :func:`supported_sequence_lengths`, read when first used."""

    def __getitem__(self, i):
        return supported_sequence_lengths()[i]

    def __len__(self) -> int:
        return len(supported_sequence_lengths())

    def __contains__(self, value) -> bool:
        return value in supported_sequence_lengths()

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(supported_sequence_lengths())


#: The model input lengths (bp) the SDK accepts, ascending (read lazily from the SDK).
SUPPORTED_SEQUENCE_LENGTHS: Sequence[int] = _SdkLengths()


def read_tensor_chunks(responses: Iterator[Any], chunk_count: int) -> Iterable[Any]:
    """The next ``chunk_count`` tensor chunks of a response stream (the SDK's private
    ``_read_tensor_chunks``).

    Args:
        responses: the gRPC response iterator, positioned after an output message.
        chunk_count: the output's ``chunk_count``.

    Returns:
        The chunks, to pass to ``alphagenome.tensor_utils.unpack_proto``.
    """
    from alphagenome.models.v1 import dna_client as v1

    return v1._read_tensor_chunks(responses, chunk_count)


def unretried(method: Callable) -> Callable:
    """A ``DnaClient`` method without the SDK's retry decorator (its ``__wrapped__``; the
    method itself when it is not decorated). Call it as ``unretried(DnaClient.m)(client, ...)``."""
    return getattr(method, "__wrapped__", method)


def is_loopback(address: str) -> bool:
    """True when ``address`` (``host:port``, ``[v6]:port`` or ``scheme:///host:port``) names this
    machine: ``localhost``, an empty host, or a loopback IP."""
    host = address.split("///")[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
