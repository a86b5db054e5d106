"""The bulk expansion of whole answers into long rows equals a plain per-cell reference.

``agval.scoring.answers.expand`` places every row by numpy index arithmetic over all the
answers of one (track block, scorer). The reference below walks each answer, track and
gene in the order ``tidy_scores`` uses, applying the same two rules (gene-strand mismatch
drops the cell; a missing quantile is null), so any slip in the index arithmetic, the
ordering across scorers or the quantile mask shows up as a difference.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from agval.genes import strip_gene_version
from agval.scoring.answers import TrackBlock, VariantAnswers, answer_row, answers_frame, expand
from agval.scoring.backend import SCORE_COLUMNS, TRACK_COLUMNS
from agval.scoring.tracks import TrackSelection

STRANDS = ["+", "-", ".", None]


def _block(n_tracks: int, seed: int) -> TrackBlock:
    rng = np.random.default_rng(seed)
    rows = {c: [None] * n_tracks for c in TRACK_COLUMNS}
    rows["track_name"] = [f"t{seed}_{j}" for j in range(n_tracks)]
    rows["track_strand"] = [STRANDS[int(x)] for x in rng.integers(0, 3, n_tracks)]
    rows["biosample_name"] = [f"cell{int(x)}" for x in rng.integers(0, 3, n_tracks)]
    frame = pl.DataFrame(rows, schema=TRACK_COLUMNS)
    return TrackBlock(f"blk{seed}-{n_tracks}", frame)


answer_spec = st.tuples(
    st.integers(0, 2),  # which scorer (each has its own block)
    st.integers(0, 4),  # genes (0: variant-centric answer)
    st.booleans(),  # quantiles sent
)


def _reference(records: list[dict], blocks: dict[str, TrackBlock], keep_track) -> list[dict]:
    out = []
    for r in records:
        if not r["n_obs"] or not r["n_tracks"]:
            continue
        frame = blocks[r["tracks_id"]].frame
        raw = np.frombuffer(r["raw"], dtype="<f4").reshape(r["n_obs"], r["n_tracks"])
        q = None if r["quantile"] is None else np.frombuffer(r["quantile"], dtype="<f4").reshape(raw.shape)
        for t in range(r["n_tracks"]):
            track = frame.row(t, named=True)
            if not keep_track(track):
                continue
            for g in range(r["n_obs"]):
                gene = {c: (r[c][g] if r[c] is not None else None)
                        for c in ("gene_id", "gene_name", "gene_type", "gene_strand", "junction_start", "junction_end")}
                if {gene["gene_strand"], track["track_strand"]} == {"+", "-"}:
                    continue
                gene["gene_id"] = strip_gene_version(gene["gene_id"]) if gene["gene_id"] else None
                out.append({"variant_key": r["variant_key"], "scorer": r["scorer"], "output_type": r["output_type"],
                            **gene, **track, "raw_score": float(raw[g, t]),
                            "quantile_score": None if q is None else float(q[g, t])})
    return out


def _same(a: pl.DataFrame, ref: list[dict]) -> None:
    assert a.columns == list(SCORE_COLUMNS)
    assert a.height == len(ref)
    for got, want in zip(a.iter_rows(named=True), ref):
        for c, v in want.items():
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(got[c]), c
            elif c in ("raw_score", "quantile_score") and v is not None:
                assert got[c] == np.float32(v), c
            else:
                assert got[c] == v, (c, got[c], v)


@settings(max_examples=60, deadline=None)
@given(answers=st.lists(st.lists(answer_spec, min_size=1, max_size=3), min_size=1, max_size=5),
       seed=st.integers(0, 10_000), select=st.booleans())
def test_bulk_expand_equals_the_per_cell_reference(answers, seed, select):
    rng = np.random.default_rng(seed)
    blocks = {i: _block(int(n), i) for i, n in enumerate(rng.integers(1, 6, 3))}
    records = []
    for v, per_variant in enumerate(answers):
        vk = f"chr1:{100 + v}:A>G"
        for scorer_ix, n_genes, with_q in per_variant:
            block = blocks[scorer_ix]
            n_obs = max(1, n_genes)
            shape = (2 if with_q else 1, n_obs, block.frame.height)
            values = rng.normal(size=shape).astype(np.float32)
            genes = None
            if n_genes:
                genes = {"gene_id": [f"ENSG{int(x):05d}.{int(x) % 3}" for x in rng.integers(0, 10**5, n_genes)],
                         "gene_name": [f"G{j}" for j in range(n_genes)],
                         "gene_type": ["protein_coding"] * n_genes,
                         "gene_strand": [STRANDS[int(x)] for x in rng.integers(0, 4, n_genes)],
                         "junction_start": [None] * n_genes, "junction_end": [None] * n_genes}
            records.append(answer_row(vk, f"S{scorer_ix}", "RNA_SEQ" if n_genes else "DNASE", block, values, genes))
    by_id = {b.id: b for b in blocks.values()}
    sel = TrackSelection(biosample_names=("cell1",)) if select else None
    ref = _reference(records, by_id, (lambda t: t["biosample_name"] == "cell1") if select else (lambda t: True))
    from_records = expand(records, by_id.__getitem__, sel)
    _same(from_records, ref)
    # the same answers read back from a frame (the cache's form) give the same table
    assert expand(answers_frame(records), by_id.__getitem__, sel).equals(from_records)
    assert VariantAnswers(records[0]["variant_key"], records, by_id).height == len(records)
