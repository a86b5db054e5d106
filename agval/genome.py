"""Reference genome access (FASTA + .fai) for reference-allele checks and sequence building.

Coordinates: :meth:`ReferenceGenome.fetch` takes **0-based half-open** ``[start0, end0)``
like a Python slice; :meth:`ReferenceGenome.ref_matches` takes a 1-based ``pos`` like
:class:`agval.coords.Variant`. Positions outside a chromosome read as ``N`` (what the
model sees past a chromosome end); an unknown chromosome is an error.
"""

from __future__ import annotations

import threading
from pathlib import Path

from agval.coords import normalize_chrom
from agval.errors import InputError


class ReferenceGenome:
    """Random access to an indexed FASTA (a missing ``.fai`` is built on first open)."""

    def __init__(self, path: str | Path):
        import pyfaidx

        self.path = Path(path)
        if not self.path.exists():
            raise InputError("reference FASTA not found", file=self.path)
        self._fa = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=True,
                                 rebuild=False, read_ahead=1 << 16)
        self._lock = threading.Lock()  # pyfaidx file handles are not thread-safe
        self.lengths: dict[str, int] = {name: len(rec) for name, rec in self._fa.records.items()}

    def _name(self, chrom: str) -> str:
        if chrom in self.lengths:
            return chrom
        alt = normalize_chrom(chrom)
        if alt in self.lengths:
            return alt
        bare = alt[3:]
        if bare in self.lengths:
            return bare
        raise InputError(f"chromosome {chrom!r} is not in the reference (has {sorted(self.lengths)[:8]}...)",
                         file=self.path)

    def fetch(self, chrom: str, start0: int, end0: int) -> str:
        """Upper-case sequence of ``[start0, end0)``; ``N`` beyond either chromosome end."""
        name = self._name(chrom)
        n = self.lengths[name]
        if end0 < start0:
            raise ValueError(f"end0 {end0} < start0 {start0}")
        lo, hi = max(0, start0), min(n, end0)
        with self._lock:
            core = self._fa[name][lo:hi] if hi > lo else ""
        left = max(0, min(end0, 0) - start0)       # positions before the chromosome start
        right = max(0, end0 - max(start0, n))      # positions past its end
        return "N" * left + core + "N" * right

    def ref_matches(self, chrom: str, pos: int, ref: str) -> bool:
        """True when ``ref`` equals the genome at 1-based ``pos``."""
        return self.fetch(chrom, pos - 1, pos - 1 + len(ref)) == ref.upper()

    def close(self) -> None:
        self._fa.close()
