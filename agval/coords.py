"""Genomic coordinates: one convention, enforced by types.

Convention (the AlphaGenome SDK's own for variants):

* ``chrom`` carries the ``chr`` prefix (``chr1``, ``chrX``);
* ``pos`` is **1-based**: the first base of REF is ``genome[chrom][pos - 1]`` in a
  0-based Python string;
* alleles are upper-case ``ACGT`` strings; REF is never empty (VCF style anchoring
  for indels), ALT is never empty;
* the build is GRCh38 (hg38) for human unless stated; coordinates from another build
  are refused, never silently used (:class:`~agval.errors.BuildMismatchError`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from agval.errors import BuildMismatchError, InputError

_BASES = re.compile(r"^[ACGT]+$")
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


class Build(str, enum.Enum):
    """Genome assemblies agval knows by name."""

    GRCh38 = "hg38"
    GRCh37 = "hg19"
    GRCm39 = "mm39"
    GRCm38 = "mm10"
    NCBIm37 = "mm9"

    @classmethod
    def parse(cls, value: "str | Build") -> "Build":
        if isinstance(value, Build):
            return value
        v = str(value).strip().lower()
        aliases = {"grch38": "hg38", "b38": "hg38", "grch37": "hg19", "b37": "hg19",
                   "grcm38": "mm10", "grcm39": "mm39", "ncbim37": "mm9"}
        v = aliases.get(v, v)
        for b in cls:
            if b.value == v:
                return b
        raise InputError(f"unknown genome build {value!r}")


def require_build(found: Build | str, expected: Build | str = Build.GRCh38, *, what: str = "coordinates") -> None:
    """Raise :class:`BuildMismatchError` unless ``found`` is ``expected``."""
    f, e = Build.parse(found), Build.parse(expected)
    if f is not e:
        raise BuildMismatchError(
            f"{what} are on {f.value} but {e.value} is required; liftover is not done "
            f"implicitly (a {f.value} position scored on {e.value} is a different base)")


def normalize_chrom(chrom: str | int) -> str:
    """``1``, ``'1'``, ``'chr1'``, ``'CHR1'`` -> ``'chr1'``; ``MT``/``M`` -> ``chrM``."""
    c = str(chrom).strip()
    if c.lower().startswith("chr"):
        c = c[3:]
    if c.upper() in {"M", "MT"}:
        return "chrM"
    if c.upper() in {"X", "Y"}:
        return "chr" + c.upper()
    return "chr" + c


def revcomp(seq: str) -> str:
    """Reverse complement (keeps case, N stays N)."""
    return seq.translate(_COMPLEMENT)[::-1]


def complement(seq: str) -> str:
    """Complement without reversing (strand flip of an allele)."""
    return seq.translate(_COMPLEMENT)


def is_palindromic(ref: str, alt: str) -> bool:
    """A/T or C/G SNV: the strand cannot be told from the alleles alone."""
    return len(ref) == 1 and len(alt) == 1 and complement(ref) == alt


@dataclass(frozen=True, slots=True, order=True)
class Variant:
    """A variant on hg38, 1-based, VCF-style alleles. Immutable and hashable."""

    chrom: str
    pos: int
    ref: str
    alt: str

    def __post_init__(self):
        if not self.chrom.startswith("chr"):
            raise InputError(f"chromosome {self.chrom!r} must carry the 'chr' prefix (use normalize_chrom)")
        if not isinstance(self.pos, int) or self.pos < 1:
            raise InputError(f"position {self.pos!r} must be a 1-based integer >= 1")
        for name, allele in (("ref", self.ref), ("alt", self.alt)):
            if not _BASES.match(allele or ""):
                raise InputError(f"{name} allele {allele!r} must be a non-empty ACGT string")
        if self.ref == self.alt:
            raise InputError(f"ref and alt are identical ({self.ref}) at {self.chrom}:{self.pos}")

    @property
    def key(self) -> str:
        """Canonical string key, ``chr1:12345:A>G`` (1-based)."""
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"

    @property
    def is_snv(self) -> bool:
        return len(self.ref) == 1 and len(self.alt) == 1

    @property
    def start0(self) -> int:
        """0-based start of REF (for slicing a Python string)."""
        return self.pos - 1

    @property
    def end0(self) -> int:
        """0-based exclusive end of REF."""
        return self.pos - 1 + len(self.ref)

    @classmethod
    def parse(cls, key: str) -> "Variant":
        """Parse ``chr1:12345:A>G`` (also accepts ``chr1:12345_A_G`` / ``chr1_12345_A_G_b38``)."""
        m = re.match(r"^(chr\w+)[:_](\d+)[:_]([ACGT]+)[>_]([ACGT]+)(?:_b38)?$", key.strip())
        if not m:
            raise InputError(f"cannot parse variant {key!r}; expected chr1:12345:A>G")
        return cls(m.group(1), int(m.group(2)), m.group(3), m.group(4))

    def to_sdk(self, name: str = ""):
        """The AlphaGenome SDK's ``genome.Variant`` (same 1-based convention)."""
        from alphagenome.data import genome

        return genome.Variant(chromosome=self.chrom, position=self.pos,
                              reference_bases=self.ref, alternate_bases=self.alt, name=name)

    def interval(self, width: int):
        """An SDK ``genome.Interval`` of ``width`` bp centred on the variant's REF."""
        return self.to_sdk().reference_interval.resize(width)
