"""The synthetic world (format ``agval-world`` v1): SIMULATED genome, genes, variants,
track catalogue and ground-truth regulatory model. Not product code.

``World.load(dir)`` gives typed access; ``build_world(out, seed, size)`` generates one.
Coordinates: ``genome.fetch(chrom, start0, end0)`` is 0-based half-open (``N`` outside
the chromosome); the ``genes``, ``exons``, ``elements`` and ``variants`` frames are
1-based inclusive (``variants.pos`` is the 1-based VCF position).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from agval.errors import InputError
from agval.genome import ReferenceGenome
from agval.schema import read_table
from standins.seqmodel import ModelParams
from standins.world.build import (ELEMENTS_FORMAT, EXONS_FORMAT, FORMAT, GENES_FORMAT, SIZES, TRACKS_FORMAT,
                                  VARIANTS_FORMAT, VERSION, build_world, is_world_dir, summary)

__all__ = ["World", "build_world", "is_world_dir", "summary", "SIZES", "FORMAT", "VERSION"]


@dataclass
class World:
    """A loaded world. Frames are polars; ``truth`` is the ground-truth ``ModelParams``."""

    root: Path
    meta: dict
    genome: ReferenceGenome
    genes: pl.DataFrame
    exons: pl.DataFrame
    variants: pl.DataFrame
    tracks: pl.DataFrame
    truth: ModelParams
    elements: pl.DataFrame | None = None
    _absent: list[str] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "World":
        root = Path(path)
        if not root.is_dir():
            raise InputError("world folder not found", file=root)
        meta_path = root / "world.json"
        if not meta_path.is_file():
            raise InputError("not an agval world: world.json is missing (build one with "
                             "`agval world build --out DIR`)", file=root)
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise InputError(f"world.json is not valid JSON ({e})", file=meta_path) from None
        if meta.get("format") != FORMAT:
            raise InputError(f"world.json has format {meta.get('format')!r}, expected {FORMAT!r}", file=meta_path)
        if int(meta.get("version", 0)) > VERSION:
            raise InputError(f"world version {meta.get('version')} is newer than this agval understands "
                             f"(v{VERSION})", file=meta_path)
        for name in ("genome.fa", "genes.parquet", "exons.parquet", "variants.parquet", "tracks.parquet",
                     "truth.json"):
            if not (root / name).is_file():
                raise InputError(f"world file {name} is missing", file=root)
        elements = read_table(root / "elements.parquet", ELEMENTS_FORMAT) if (root / "elements.parquet").is_file() else None
        return cls(
            root=root, meta=meta, genome=ReferenceGenome(root / "genome.fa"),
            genes=read_table(root / "genes.parquet", GENES_FORMAT),
            exons=read_table(root / "exons.parquet", EXONS_FORMAT),
            variants=read_table(root / "variants.parquet", VARIANTS_FORMAT),
            tracks=read_table(root / "tracks.parquet", TRACKS_FORMAT),
            truth=ModelParams.from_json((root / "truth.json").read_text()),
            elements=elements,
        )

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def chromosomes(self) -> dict[str, int]:
        return dict(self.meta["chromosomes"])

    @property
    def absent_rsids(self) -> list[str]:
        """rsIDs that look real but are in no catalogue."""
        if self._absent is None:
            p = self.root / "absent_rsids.txt"
            self._absent = [x for x in p.read_text().split() if x] if p.is_file() else []
        return self._absent

    @property
    def vcf_path(self) -> Path:
        return self.root / "dbsnp.vcf.gz"

    def track_rows(self, organism: str = "HOMO_SAPIENS", **equals) -> pl.DataFrame:
        """Tracks of an organism filtered by column equality, e.g.
        ``world.track_rows(ontology_curie="CL:0000624", output_type="ATAC")``."""
        from standins.catalogue import normalize_organism

        df = self.tracks.filter(pl.col("organism") == normalize_organism(organism))
        for col, val in equals.items():
            df = df.filter(pl.col(col).is_in(list(val)) if isinstance(val, (list, tuple, set)) else pl.col(col) == val)
        return df

    def close(self) -> None:
        self.genome.close()
