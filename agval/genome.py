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


#: REF-mismatch guard: more than this share of checked variants whose REF is not the
#: FASTA's base (after allowing a REF/ALT swap) means the coordinates and the FASTA are on
#: different builds. A right build mismatches ~0-2 % (dbSNP/FASTA patch differences);
#: a wrong one ~70 % of SNVs (a random base matches ~30 % of the time).
REF_MISMATCH_MAX_SHARE = 0.2
#: ... judged only over at least this many checked variants (a handful proves nothing).
REF_MISMATCH_MIN_CHECKED = 20


def check_ref_mismatch_share(n_checked: int, n_mismatch: int, *, what: str, fasta: str | Path | None = None,
                             declared: str = "hg38", max_share: float = REF_MISMATCH_MAX_SHARE,
                             min_checked: int = REF_MISMATCH_MIN_CHECKED) -> None:
    """Stop with :class:`~agval.errors.BuildMismatchError` when ``n_mismatch / n_checked``
    exceeds ``max_share`` over at least ``min_checked`` checked variants: the positions are
    most likely on hg19/GRCh37 (or the FASTA is), not ``declared``. Below the threshold the
    mismatching rows stay counted ``ref_mismatch`` drops."""
    from agval.errors import BuildMismatchError

    if n_checked < max(min_checked, 1):
        return
    share = n_mismatch / n_checked
    if share > max_share:
        other = "hg19 (GRCh37)" if declared.lower() in ("hg38", "grch38") else "hg38 (GRCh38)"
        raise BuildMismatchError(
            f"{what}: REF does not match the reference at {n_mismatch} of {n_checked} checked variants "
            f"({share:.0%} > {max_share:.0%}); the coordinates look like {other}, not the declared {declared}"
            + (f" of {fasta}" if fasta else ""),
            hint=f"declare the table's real build (e.g. build = \"hg19\") or lift it over to {declared}; "
                 "agval does not lift over implicitly")
