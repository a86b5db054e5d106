"""Facts the AlphaGenome SDK owns, read from it in one place (never copied as literals).

:data:`SUPPORTED_SEQUENCE_LENGTHS` is the sorted tuple of input lengths the model accepts
(``alphagenome.models.dna_client.SUPPORTED_SEQUENCE_LENGTHS``: 16,384, 131,072, 524,288
and 1,048,576 bp in SDK 0.x). Importing the SDK takes seconds, so the value is read on
first use: the object behaves as a tuple (``in``, iteration, ``len``, indexing, ``==``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

__all__ = ["SUPPORTED_SEQUENCE_LENGTHS", "supported_sequence_lengths"]


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
