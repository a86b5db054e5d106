"""The precomputed path: re-check a published analysis from its files.

Instead of looking alleles up and scoring, the flow reads a **predictions table** keyed by
the study table's ``row_id`` (``caQTL:1``, ``hQTL:12:H3K27ac``, ``<dataset>:<row>``: the
loaders' 1-based data rows) with one or more numeric score columns, and the **measured
table** (the study table itself, loaded by its format's loader). Parquet, CSV or TSV.

``study.prediction_columns`` maps an analysis name to a column, e.g.
``{original = "quantile_score", corrected = "raw_score"}`` (names starting with
``original`` use the seed's beta, the others beta oriented by the declared convention);
without it the first numeric column (other than :data:`RESERVED`) is the ``corrected``
analysis. Predictions are taken to be for the study row's ALT allele as written in the
table; the declared ``effect_allele`` convention orients beta
(:func:`agval.qtl.harmonize.orient_in_place`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from agval.errors import ConfigError, InputError, MissingColumnError
from agval.frames import assert_unique
from agval.qtl.study import QTLStudy

__all__ = ["load_predictions", "resolve_prediction_columns", "RESERVED"]

#: numeric columns never taken as a score column by default
RESERVED = frozenset({"row_id", "beta", "se", "p", "pos", "hg19_pos", "source_row", "driver", "true_effect",
                      "beta_alt", "beta_seed", "af", "maf", "n", "start", "end"})


def load_predictions(path: str | Path) -> pl.DataFrame:
    """Read the predictions table; ``row_id`` required and unique."""
    p = Path(path)
    if not p.is_file():
        raise InputError("predictions table not found", file=p)
    suf = "".join(p.suffixes).lower()
    if suf.endswith((".parquet", ".pq")):
        df = pl.read_parquet(p)
    elif suf.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        df = pl.read_csv(p, separator="\t", infer_schema_length=10000)
    elif suf.endswith((".csv", ".csv.gz")):
        df = pl.read_csv(p, infer_schema_length=10000)
    else:
        raise InputError("a predictions table must be .parquet, .csv or .tsv", file=p)
    if "row_id" not in df.columns:
        raise MissingColumnError("row_id", file=p, available=df.columns)
    df = df.with_columns(pl.col("row_id").cast(pl.Utf8))
    assert_unique(df, "row_id", what=f"predictions {p}")
    return df


def resolve_prediction_columns(study: QTLStudy, predictions: pl.DataFrame) -> dict[str, str]:
    """``analysis name -> column`` (see the module docstring); columns must be numeric."""
    if study.prediction_columns:
        for name, col in study.prediction_columns.items():
            if col not in predictions.columns:
                raise MissingColumnError(col, file=study.predictions, available=predictions.columns)
            if not predictions.schema[col].is_numeric():
                raise InputError(f"prediction column for {name!r} is not numeric ({predictions.schema[col]})",
                                 file=study.predictions, column=col)
        return dict(study.prediction_columns)
    numeric = [c for c, t in predictions.schema.items() if t.is_numeric() and c not in RESERVED]
    if not numeric:
        raise ConfigError(f"{study.predictions}: no numeric score column (besides {sorted(RESERVED)}); "
                          "name one with prediction_columns = {corrected = \"<column>\"}")
    return {"corrected": numeric[0]}
