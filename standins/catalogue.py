"""The stand-in AlphaGenome service's hand-written track catalogue (SIMULATED).

Real ontology CURIEs, biosample names and track-name styles of the AlphaGenome catalogue
for the biosamples the three studies use; every track's ``data_source`` is
:data:`standins.SIMULATED_DATA_SOURCE`. Columns are those of ``tracks.parquet``
(docs/ARCHITECTURE.md): ``organism`` (``HOMO_SAPIENS`` / ``MUS_MUSCULUS``, the SDK's
``Organism`` names), ``output_type`` (SDK ``OutputType`` names), ``name``, ``strand``
(``+``, ``-`` or ``.``), ``ontology_curie``, ``biosample_name``, ``biosample_type``
(proto enum names: ``PRIMARY_CELL``, ``CELL_LINE``, ``TISSUE``, ...), ``assay_title``,
``histone_mark``, ``transcription_factor``, ``gtex_tissue``, ``data_source``,
``nonzero_mean``. Nulls where a field does not apply.

Availability follows the real catalogue (docs STUDIES.md §1.3, §2.3): e.g. no tissue-level
ATAC or DNase for Whole_Blood, no ATAC for Prostate or skin, heart-atrium ATAC only on the
atrium terms UBERON:0002078/0002079. One deliberate difference: the GTEx RNA_SEQ tracks
are stranded (``+`` and ``-``), as the project's brief asks, where the real ones are
unstranded.
"""

from __future__ import annotations

import hashlib

import polars as pl

from standins import SIMULATED_DATA_SOURCE

COLUMNS: dict[str, pl.DataType] = {
    "organism": pl.Utf8, "output_type": pl.Utf8, "name": pl.Utf8, "strand": pl.Utf8,
    "ontology_curie": pl.Utf8, "biosample_name": pl.Utf8, "biosample_type": pl.Utf8,
    "assay_title": pl.Utf8, "histone_mark": pl.Utf8, "transcription_factor": pl.Utf8,
    "gtex_tissue": pl.Utf8, "data_source": pl.Utf8, "nonzero_mean": pl.Float64,
}

HUMAN, MOUSE = "HOMO_SAPIENS", "MUS_MUSCULUS"
_ORGANISM_ALIASES = {"homo_sapiens": HUMAN, "human": HUMAN, "hs": HUMAN, "9606": HUMAN,
                     "organism_homo_sapiens": HUMAN, "hg38": HUMAN,
                     "mus_musculus": MOUSE, "mouse": MOUSE, "mm": MOUSE, "10090": MOUSE,
                     "organism_mus_musculus": MOUSE, "mm10": MOUSE}

#: GTEx tissue -> (UBERON CURIE, biosample name) as in AlphaGenome's gtex RNA_SEQ tracks
GTEX_TISSUES: dict[str, tuple[str, str]] = {
    "Heart_Atrial_Appendage": ("UBERON:0006631", "right atrium auricular region"),
    "Heart_Left_Ventricle": ("UBERON:0006566", "left ventricle myocardium"),
    "Whole_Blood": ("UBERON:0013756", "venous blood"),
    "Esophagus_Mucosa": ("UBERON:0006920", "esophagus squamous epithelium"),
    "Skin_Sun_Exposed_Lower_leg": ("UBERON:0004264", "lower leg skin"),
    "Prostate": ("UBERON:0002367", "prostate gland"),
    "Muscle_Skeletal": ("UBERON:0011907", "gastrocnemius medialis"),
    "Adipose_Subcutaneous": ("UBERON:0002190", "subcutaneous adipose tissue"),
    "Artery_Tibial": ("UBERON:0007610", "tibial artery"),
    "Lung": ("UBERON:0008952", "upper lobe of left lung"),
}

_BASE_MEAN = {"ATAC": 0.9, "DNASE": 0.7, "CHIP_HISTONE": 1.1, "CHIP_TF": 0.9, "RNA_SEQ": 0.12,
              "CAGE": 40.0, "PROCAP": 15.0}

#: human biosamples: curie -> (biosample_name, biosample_type, assays)
#: assays: list of (output_type, variant) with variant = mark / TF / RNA kind / strand spec
_HUMAN: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("CL:0000624", "CD4-positive, alpha-beta T cell", "PRIMARY_CELL",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")]
     + [("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("RNA_SEQ", "polyA.")]
     + [("CHIP_TF", "CTCF")]),
    ("CL:0000236", "B cell", "PRIMARY_CELL",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2",
                                      "H3K4me3", "H3K79me2", "H3K9ac", "H3K9me3")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-")]
     + [("CHIP_TF", "CTCF")]),
    ("EFO:0002784", "GM12878", "CELL_LINE",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3",
                                      "H3K79me2", "H3K9ac")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-"),
        ("RNA_SEQ", "polyA.")]
     + [("CAGE", "+"), ("CAGE", "-")]
     + [("CHIP_TF", t) for t in ("CTCF", "EBF1", "SPI1", "POLR2A")]),
    ("EFO:0002067", "K562", "CELL_LINE",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2",
                                      "H3K4me3", "H3K79me2", "H3K9ac", "H4K20me1")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-"),
        ("RNA_SEQ", "polyA.")]
     + [("CAGE", "+"), ("CAGE", "-"), ("PROCAP", "+"), ("PROCAP", "-")]
     + [("CHIP_TF", t) for t in ("CTCF", "GATA1", "JUND", "NRF1", "POLR2A")]),
    # ---- heart
    ("UBERON:0006631", "right atrium auricular region", "TISSUE",
     [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K4me1", "H3K4me3")]),
    ("UBERON:0002078", "right cardiac atrium", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"),
      ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0002079", "left cardiac atrium", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]),
    ("UBERON:0000948", "heart", "TISSUE",
     [("DNASE", ""), ("CAGE", "+"), ("CAGE", "-")]),
    ("UBERON:0006566", "left ventricle myocardium", "TISSUE", []),
    ("UBERON:0002084", "heart left ventricle", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("RNA_SEQ", "polyA+"), ("RNA_SEQ", "polyA-")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K4me1")]),
    # ---- blood
    ("UBERON:0013756", "venous blood", "TISSUE", []),
    ("UBERON:0000178", "blood", "PRIMARY_CELL", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- esophagus
    ("UBERON:0006920", "esophagus squamous epithelium", "TISSUE",
     [("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("CL:0002252", "epithelial cell of esophagus", "PRIMARY_CELL", [("DNASE", "")]),
    ("UBERON:0002469", "esophagus mucosa", "TISSUE", [("ATAC", "")]),
    ("UBERON:0001043", "esophagus", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- skin
    ("UBERON:0004264", "lower leg skin", "TISSUE", [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]),
    ("UBERON:0000014", "zone of skin", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- prostate (no ATAC)
    ("UBERON:0002367", "prostate gland", "TISSUE",
     [("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me3")]),
    # ---- muscle
    ("UBERON:0011907", "gastrocnemius medialis", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0001134", "skeletal muscle tissue", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- the three unnamed-in-the-write-up GTEx tissues
    ("UBERON:0002190", "subcutaneous adipose tissue", "TISSUE", [("ATAC", "")]),
    ("UBERON:0007610", "tibial artery", "TISSUE", [("ATAC", ""), ("DNASE", ""), ("CHIP_HISTONE", "H3K27ac")]),
    ("UBERON:0008952", "upper lobe of left lung", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CHIP_HISTONE", "H3K27ac")]),
]

_MOUSE: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("CL:0000136", "adipocyte", "IN_VITRO_DIFFERENTIATED_CELLS",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("RNA_SEQ", "polyA."),
      ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_TF", "PPARG")]),
    ("EFO:0001084", "3T3-L1", "CELL_LINE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "polyA+"), ("RNA_SEQ", "polyA-"),
      ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0002107", "liver", "TISSUE",
     [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CAGE", "+"), ("CAGE", "-")]),
]


def normalize_organism(organism: str | int) -> str:
    """``human``/``HOMO_SAPIENS``/``9606``/``Organism.HOMO_SAPIENS`` -> ``HOMO_SAPIENS`` (same for mouse)."""
    s = str(getattr(organism, "name", organism)).strip().lower()
    if s.startswith("organism."):
        s = s.split(".", 1)[1]
    if s not in _ORGANISM_ALIASES:
        raise ValueError(f"unknown organism {organism!r}; expected HOMO_SAPIENS or MUS_MUSCULUS")
    return _ORGANISM_ALIASES[s]


def _nonzero_mean(output_type: str, name: str, strand: str) -> float:
    h = int.from_bytes(hashlib.blake2b(f"{output_type}|{name}".encode(), digest_size=4).digest(), "little")
    return round(_BASE_MEAN[output_type] * (0.5 + (h % 10_000) / 10_000), 6)


def _rows(organism: str, spec) -> list[dict]:
    rows = []
    cage = "hCAGE" if organism == HUMAN else "mCAGE"
    for curie, bname, btype, assays in spec:
        for ot, var in assays:
            r = dict(organism=organism, output_type=ot, strand=".", ontology_curie=curie,
                     biosample_name=bname, biosample_type=btype, histone_mark=None,
                     transcription_factor=None, gtex_tissue=None, data_source=SIMULATED_DATA_SOURCE)
            if ot == "ATAC":
                r.update(name=f"{curie} ATAC-seq", assay_title="ATAC-seq")
            elif ot == "DNASE":
                r.update(name=f"{curie} DNase-seq", assay_title="DNase-seq")
            elif ot == "CHIP_HISTONE":
                r.update(name=f"{curie} Histone ChIP-seq {var}", assay_title="Histone ChIP-seq", histone_mark=var)
            elif ot == "CHIP_TF":
                r.update(name=f"{curie} TF ChIP-seq {var}", assay_title="TF ChIP-seq", transcription_factor=var)
            elif ot == "RNA_SEQ":
                kind, strand = var[:-1], var[-1]
                title = "total RNA-seq" if kind == "total" else "polyA plus RNA-seq"
                r.update(name=f"{curie} {title}", assay_title=title, strand=strand)
            elif ot == "CAGE":
                r.update(name=f"{cage} {curie}", assay_title=cage, strand=var)
            elif ot == "PROCAP":
                r.update(name="ENCSR740IPL", assay_title="PRO-cap", strand=var)
            else:  # pragma: no cover - table typo guard
                raise ValueError(ot)
            r["nonzero_mean"] = _nonzero_mean(ot, r["name"], r["strand"])
            rows.append(r)
    return rows


def _gtex_rows() -> list[dict]:
    rows = []
    for tissue, (curie, bname) in GTEX_TISSUES.items():
        for strand in ("+", "-"):
            name = f"{curie} gtex {tissue} polyA plus RNA-seq"
            rows.append(dict(organism=HUMAN, output_type="RNA_SEQ", name=name, strand=strand,
                             ontology_curie=curie, biosample_name=bname, biosample_type="TISSUE",
                             assay_title="polyA plus RNA-seq", histone_mark=None, transcription_factor=None,
                             gtex_tissue=tissue, data_source=SIMULATED_DATA_SOURCE,
                             nonzero_mean=_nonzero_mean("RNA_SEQ", name, strand) * 0.4))
    return rows


_OT_ORDER = ["ATAC", "CAGE", "DNASE", "RNA_SEQ", "CHIP_HISTONE", "CHIP_TF", "PROCAP"]


def catalogue(organism: str = HUMAN) -> pl.DataFrame:
    """The track catalogue of one organism (``HOMO_SAPIENS`` or ``MUS_MUSCULUS``, aliases
    accepted), ordered by output type (the SDK's OutputType order) then as listed."""
    org = normalize_organism(organism)
    rows = _rows(HUMAN, _HUMAN) + _gtex_rows() if org == HUMAN else _rows(MOUSE, _MOUSE)
    df = pl.DataFrame(rows, schema=COLUMNS)
    order = {ot: i for i, ot in enumerate(_OT_ORDER)}
    df = df.with_row_index("_i").with_columns(pl.col("output_type").replace_strict(order).alias("_o"))
    return df.sort(["_o", "_i"]).drop(["_i", "_o"])


def full_catalogue() -> pl.DataFrame:
    """Human then mouse: the content of the world's ``tracks.parquet``."""
    return pl.concat([catalogue(HUMAN), catalogue(MOUSE)])
