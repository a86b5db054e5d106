"""Reference genome access (FASTA + .fai) for reference-allele checks and sequence building.

Coordinates: :meth:`ReferenceGenome.fetch` takes **0-based half-open** ``[start0, end0)``
like a Python slice; :meth:`ReferenceGenome.ref_matches` takes a 1-based ``pos`` like
:class:`agval.coords.Variant`. Positions outside a chromosome read as ``N`` (what the
model sees past a chromosome end); an unknown chromosome is an error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agval.coords import normalize_chrom
from agval.errors import InputError


def check_fai(fasta: Path, fai: Path) -> None:
    """:class:`InputError` when a samtools ``.fai`` index does not fit its FASTA (a stale
    index from another file): every record's last base must lie inside the file and the
    byte before its first base must end the header line."""
    size = fasta.stat().st_size
    try:
        rows = [ln.split("\t") for ln in fai.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the FASTA index: {e}", file=fai) from None
    with open(fasta, "rb") as fh:
        for i, r in enumerate(rows, start=1):
            try:
                name, length, offset, bases, width = r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])
            except (IndexError, ValueError):
                raise InputError("malformed .fai line (name, length, offset, line bases, line width)",
                                 file=fai, line=i) from None
            if bases <= 0 or width < bases:
                raise InputError(f"malformed .fai line for {name!r}", file=fai, line=i)
            full, rest = divmod(length, bases)
            end = offset + full * width + rest
            ok = end <= size
            if ok and offset > 0:
                fh.seek(offset - 1)
                ok = fh.read(1) == b"\n"
            if not ok:
                raise InputError(f"the index does not match {fasta.name} (record {name!r}, length {length:,}); "
                                 "it is stale or belongs to another file", file=fai, line=i,
                                 hint=f"delete {fai.name}; agval rebuilds it on the next run")


@dataclass(frozen=True, slots=True)
class RefCheck:
    """The reference-allele decision for one variant (:meth:`ReferenceGenome.check_ref`).

    ``status``: ``"match"`` (REF is the genome's), ``"swap"`` (a substitution whose ALT is
    the genome's: swap REF/ALT and negate the effect), ``"mismatch"`` (neither: drop as
    ``ref_mismatch``) or ``"missing"`` (the chromosome is not in the FASTA: drop as
    ``chrom_not_in_reference``). ``genome_ref`` is the genome's bases over REF (``None``
    when missing).
    """

    status: Literal["match", "swap", "mismatch", "missing"]
    genome_ref: str | None = None


class ReferenceGenome:
    """Random access to an indexed FASTA (a missing ``.fai`` is built on first open)."""

    def __init__(self, path: str | Path):
        import pyfaidx

        self.path = Path(path)
        if not self.path.exists():
            raise InputError("reference FASTA not found", file=self.path)
        if self.path.is_dir():
            raise InputError("the reference FASTA is a folder, not a file", file=self.path)
        with open(self.path, "rb") as fh:
            head = fh.read(16)
        bgzf = head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"
        if head[:2] == b"\x1f\x8b" and not bgzf:
            raise InputError("the reference FASTA is gzip-compressed; agval needs it plain (or bgzip with a "
                             ".gzi index) for random access", file=self.path,
                             hint="gunzip it, or compress it with `bgzip` and index it with `samtools faidx`")
        if not bgzf and head[:1] != b">":
            raise InputError("not a FASTA file (it does not start with a '>' header line)", file=self.path, line=1)
        fai = Path(str(self.path) + ".fai")
        if fai.is_file() and not bgzf:  # bgzip offsets are virtual: pyfaidx checks those itself
            check_fai(self.path, fai)
        try:
            self._fa = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=True,
                                     rebuild=False, read_ahead=1 << 16)
        except (pyfaidx.FastaIndexingError, pyfaidx.IndexNotFoundError, ValueError) as e:
            raise InputError(f"cannot index the reference FASTA: {str(e)[:300]}", file=self.path) from None
        except OSError as e:
            raise InputError(f"cannot read the reference FASTA: {e.strerror}", file=self.path) from None
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

    def check_ref(self, chrom: str, pos: int, ref: str, alt: str) -> RefCheck:
        """The one REF check and swap rule (both harmonization routes use it).

        ``ref``/``alt`` are upper-case VCF-style alleles at 1-based ``pos``. REF equal to the
        genome is a ``match``; otherwise a **substitution** (``len(ref) == len(alt)``) whose
        ALT equals the genome is a ``swap``; anything else a ``mismatch`` (an indel is never
        swapped: its ALT shares the anchor base, so it would "match" trivially). An unknown
        chromosome is ``missing``; I/O errors of a broken FASTA propagate.
        """
        try:
            g_ref = self.fetch(chrom, pos - 1, pos - 1 + len(ref))
        except InputError:
            return RefCheck("missing")
        if g_ref == ref:
            return RefCheck("match", g_ref)
        if len(ref) == len(alt) and self.fetch(chrom, pos - 1, pos - 1 + len(alt)) == alt:
            return RefCheck("swap", g_ref)
        return RefCheck("mismatch", g_ref)

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
