"""Prediction aggregates per model input (STUDIES.md §3.3; pitfall P25).

For every distinct model input and every requested output type, two windows:

* ``center``: the mean per-base signal over the **correctly centred** window
  ``[L//2 - w//2, L//2 - w//2 + w)`` (default ``w = 200``: ``[8092, 8292)`` for 16 kb;
  the seed used ``[900:1100]`` of a 2,048-bp input, 124 bp off-centre);
* ``mean``: the mean per-base signal over the whole input.

Values are computed **per track** (long table), then pooled:

* ``<assay>_<window>`` (e.g. ``dnase_center``, ``rna_mean``): the mean over all tracks
  of that output type;
* for output types with stranded tracks (CAGE, RNA_SEQ, PROCAP): also
  ``<assay>_<window>_plus``, ``_minus`` and ``_unstranded`` (the mean over the tracks of
  that strand), so ``+`` and ``-`` signal are reported separately instead of mixed.

``<assay>`` is :data:`ASSAY_NAMES` (``DNASE`` -> ``dnase``, ``RNA_SEQ`` -> ``rna``,
``CAGE`` -> ``cage``...).

Binned arrays from :class:`agval.scoring.sequences.SequenceRun`: for 1-bp outputs binned to
``bin_size`` the bins hold **sums** of the per-base signal; for outputs already coarser
than ``bin_size`` (ChIP, 128 bp) they hold the model's per-bin values (levels). Window
means weight every bin by its overlap with the window (a partly covered bin counts in
proportion, i.e. as if its signal were uniform); :func:`choose_bin_size` picks the
largest bin (<= 32 bp) whose edges fall on both window edges, which makes the centred
mean of 1-bp outputs exact.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import polars as pl

from agval.errors import InputError

__all__ = ["ASSAY_NAMES", "assay_name", "center_bounds", "choose_bin_size", "window_mean",
           "aggregate_run", "aggregate_columns", "STRAND_SUFFIX"]

ASSAY_NAMES: dict[str, str] = {"DNASE": "dnase", "ATAC": "atac", "CAGE": "cage", "RNA_SEQ": "rna",
                               "PROCAP": "procap", "CHIP_HISTONE": "histone", "CHIP_TF": "chiptf"}
STRAND_SUFFIX = {"+": "plus", "-": "minus", ".": "unstranded"}
_NATIVE_COARSE = {"CHIP_HISTONE", "CHIP_TF"}  # 128-bp native resolution
WINDOWS = ("center", "mean")


def assay_name(output_type: str) -> str:
    return ASSAY_NAMES.get(output_type.upper(), output_type.lower())


def center_bounds(length: int, width: int) -> tuple[int, int]:
    """The centred window ``[length//2 - width//2, length//2 - width//2 + width)``."""
    if width <= 0 or width > length:
        raise InputError(f"center window must be in 1..{length} bp, got {width}")
    a = length // 2 - width // 2
    return a, a + width


def choose_bin_size(length: int, width: int, cap: int = 32) -> int:
    """The largest power of two <= ``cap`` dividing ``length`` and both window edges."""
    a, b = center_bounds(length, width)
    g = math.gcd(math.gcd(length, a), b)
    size = 1
    while size * 2 <= cap and g % (size * 2) == 0:
        size *= 2
    return size


def window_mean(arr: np.ndarray, bp_per_bin: int, lo: int, hi: int, *, sums: bool) -> np.ndarray:
    """Mean per-base signal over ``[lo, hi)`` of a binned ``[n_bins, n_tracks]`` array.

    ``sums``: the bins hold sums over ``bp_per_bin`` bases (else per-base levels)."""
    a = np.asarray(arr, dtype=np.float64)
    b0, b1 = lo // bp_per_bin, -(-hi // bp_per_bin)
    part = a[b0:b1]
    starts = np.arange(b0, b1) * bp_per_bin
    overlap = np.minimum(starts + bp_per_bin, hi) - np.maximum(starts, lo)
    per_bp = part / bp_per_bin if sums else part
    return (per_bp * overlap[:, None]).sum(axis=0) / (hi - lo)


def aggregate_run(run, *, length: int, center_window: int = 200,
                  outputs: Sequence[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Aggregates of a :class:`~agval.scoring.sequences.SequenceRun` whose ``seq_id`` is the
    ``input_id``.

    Returns ``(per_track, wide)``:

    * ``per_track``: ``input_id, output_type, track_index, track_name, track_strand,
      ontology_curie, window, value`` (one row per input x track x window);
    * ``wide``: one row per input, ``input_id`` + :func:`aggregate_columns` columns.

    Inputs whose prediction failed are absent (the caller counts them).
    """
    lo, hi = center_bounds(length, center_window)
    outs = [o.upper() for o in (outputs or list(run.tracks))]
    long_parts: list[pl.DataFrame] = []
    wide_rows: dict[str, dict[str, Any]] = {}
    for sid, sha in run.sequences.select("seq_id", "sequence_sha256").unique(maintain_order=True).iter_rows():
        row = wide_rows.setdefault(sid, {"input_id": sid})
        for ot in outs:
            arr = run.predictions.get((sha, ot))
            meta = run.tracks.get(ot)
            if arr is None or meta is None:
                continue
            n_bins = arr.shape[0]
            if n_bins == 0 or length % n_bins:
                raise InputError(f"{ot}: {n_bins} bins do not tile a {length}-bp input")
            bp = length // n_bins
            sums = bp > 1 and bp == run.bin_size and ot not in _NATIVE_COARSE
            center = window_mean(arr, bp, lo, hi, sums=sums)
            whole = window_mean(arr, bp, 0, length, sums=sums)
            strands = meta["track_strand"].cast(pl.String).fill_null(".").to_list()
            names = meta["track_name"].cast(pl.String).to_list()
            curies = meta["ontology_curie"].cast(pl.String).to_list()
            k = len(names)
            long_parts.append(pl.DataFrame({
                "input_id": [sid] * (2 * k), "output_type": [ot] * (2 * k),
                "track_index": list(range(k)) * 2, "track_name": names * 2, "track_strand": strands * 2,
                "ontology_curie": curies * 2, "window": ["center"] * k + ["mean"] * k,
                "value": np.concatenate([center, whole]).tolist()}))
            an = assay_name(ot)
            stranded = len(set(strands) - {"."}) > 0
            for w, vals in (("center", center), ("mean", whole)):
                row[f"{an}_{w}"] = float(np.mean(vals)) if k else math.nan
                if stranded:
                    for s, suffix in STRAND_SUFFIX.items():
                        idx = [i for i, x in enumerate(strands) if x == s]
                        if idx:
                            row[f"{an}_{w}_{suffix}"] = float(np.mean(vals[idx]))
    schema = {"input_id": pl.String, "output_type": pl.String, "track_index": pl.Int64, "track_name": pl.String,
              "track_strand": pl.String, "ontology_curie": pl.String, "window": pl.String, "value": pl.Float64}
    per_track = pl.concat(long_parts, how="vertical_relaxed").cast(schema) if long_parts else pl.DataFrame(
        schema=schema)
    cols = aggregate_columns(run, outs)
    wide = pl.DataFrame([{c: r.get(c) for c in ["input_id", *cols]} for r in wide_rows.values()
                         if any(r.get(c) is not None for c in cols)],
                        schema={"input_id": pl.String, **{c: pl.Float64 for c in cols}})
    return per_track, wide


def aggregate_columns(run, outputs: Sequence[str]) -> list[str]:
    """Wide aggregate column names in a stable order: pooled first (per output, center
    then mean), then the per-strand columns."""
    pooled, stranded = [], []
    for ot in [o.upper() for o in outputs]:
        meta = run.tracks.get(ot)
        an = assay_name(ot)
        for w in WINDOWS:
            pooled.append(f"{an}_{w}")
        if meta is None:
            continue
        strands = set(meta["track_strand"].cast(pl.String).fill_null(".").to_list())
        if strands - {"."}:
            for w in WINDOWS:
                for s, suffix in STRAND_SUFFIX.items():
                    if s in strands:
                        stranded.append(f"{an}_{w}_{suffix}")
    return pooled + stranded
