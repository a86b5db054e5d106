"""The study's figures (STUDIES.md §2.8) from the triplet table and the Q1-Q4 results.

:func:`make_figures` draws every figure it has data for and returns ``(figures,
warnings)``: a figure whose input is empty (e.g. no named locus in the data, a single
tissue) is skipped with a warning instead of failing the run. No Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import polars as pl

from agval.plots import twas as tp
from agval.plots._common import EmptyPlotInputError
from agval.report import Figure

__all__ = ["make_figures", "DEFAULT_LOCI", "DEFAULT_SCATTER_TISSUES"]

#: The write-up's named loci for the PIP "Manhattan" (§2.8.2).
DEFAULT_LOCI: tuple[str, ...] = ("PITX2", "TBX5", "SCN5A", "SCN10A", "KCNN3")
DEFAULT_SCATTER_TISSUES: tuple[str, ...] = ("Prostate", "Whole_Blood")


def _pick_null_cell(q1: dict[str, Any], cell: tuple[str, str] | None) -> tuple[str, str] | None:
    t = q1["table"].filter(~pl.col("pooled") & (pl.col("n") > 0))
    if t.height == 0:
        return None
    if cell is not None and t.filter((pl.col("tissue") == cell[0]) & (pl.col("assay") == cell[1])).height:
        return cell
    best = t.sort(["perm_p", "n"], descending=[False, True], nulls_last=True).row(0, named=True)
    return best["tissue"], best["assay"]


def make_figures(out_dir: str | Path, *, triplets: pl.DataFrame, pairs: pl.DataFrame, q1: dict[str, Any],
                 q2: pl.DataFrame, q3: dict[str, pl.DataFrame], q4: dict[str, Any],
                 heart_tissues: Sequence[str], loci: Sequence[str] = DEFAULT_LOCI,
                 scatter_tissues: Sequence[str] = DEFAULT_SCATTER_TISSUES,
                 null_cell: tuple[str, str] | None = ("Heart_Atrial_Appendage", "DNASE"),
                 rna_assay: str = "RNA", loci_frame: pl.DataFrame | None = None) -> tuple[list[Figure], list[str]]:
    """Write the PNGs into ``out_dir``; ``(figures, warnings)``.

    ``triplets``: the long triplet table; ``pairs``: the significant FUSION rows
    (``gene_id, tissue, twas_z``, gene names from ``id``); the Q* results as returned by
    :mod:`agval.twas.analysis`. ``loci_frame``: every SuSiE variant of the named loci
    (``gene_name, pos, pip, cs``; hg38 positions) for the PIP figure; default: the retained
    triplet variants.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: list[Figure] = []
    warns: list[str] = []
    one = triplets.unique(["variant_key", "gene_id", "tissue"], keep="first").sort("tissue", "gene_id", "variant_key")
    scored = triplets.filter(pl.col("score").is_finite())
    hearts = list(heart_tissues)

    def draw(name: str, caption: str, fn: Callable[[Path], Path]) -> None:
        try:
            p = fn(out / f"{name}.png")
        except EmptyPlotInputError as e:
            warns.append(f"figure {name} skipped: {e}")
            return
        figs.append(Figure(p, caption))

    # 1. data overview
    draw("01_data_overview", "Data overview: genes per tissue, SNPs per gene-tissue pair, PIP and credible-set "
         "sizes of the retained SuSiE variants in TWAS-significant pairs.",
         lambda p: tp.twas_data_overview(one, p))
    # 2. PIP "Manhattan" at named loci (max PIP over tissues)
    loc = (one.group_by("gene_name", "variant_key").agg(pl.col("pos").first(), pl.col("pip").max(),
                                                        pl.col("cs").max()))
    if loci_frame is not None and loci_frame.height:
        loc = loci_frame
    present = [g for g in loci if g in set(loc["gene_name"].to_list())]
    if not present:
        present = (loc.group_by("gene_name").agg(pl.col("pip").max()).sort(["pip", "gene_name"],
                                                                           descending=[True, False])
                   ["gene_name"].head(5).to_list())
    draw("02_pip_manhattan", f"SuSiE PIP by position (hg38) at {', '.join(present) or 'no'} loci (maximum PIP "
         "over tissues; red = in a 95 % credible set).",
         lambda p: tp.twas_pip_manhattan(loc, p, genes=present))
    # 3. concordance heatmap + permutation null
    grid = q1["table"].filter(~pl.col("pooled"))
    draw("03_concordance_heatmap", "Sign concordance (Q1) per tissue x assay; stars = within-gene permutation "
         "P < 0.05 / 0.01 / 0.001 (the binomial P is anti-conservative, P22).",
         lambda p: tp.twas_concordance_heatmap(grid, p))
    cell = _pick_null_cell(q1, null_cell)
    if cell is not None:
        nul = q1["null"].filter((pl.col("tissue") == cell[0]) & (pl.col("assay") == cell[1]))
        row = grid.filter((pl.col("tissue") == cell[0]) & (pl.col("assay") == cell[1])).row(0, named=True)
        draw("03b_permutation_null", f"Within-gene permutation null of the sign accuracy, {cell[0]} {cell[1]}, "
             f"with the observed value.",
             lambda p: tp.twas_permutation_null(nul["accuracy"], row["accuracy"], p, p_value=row["perm_p"],
                                                title=f"Permutation null: {cell[0]} {cell[1]}"))
    # 4. PIP-weighted grid
    draw("04_concordance_weighted", "PIP-weighted sign accuracy (Q1) per tissue x assay.",
         lambda p: tp.twas_concordance_heatmap(grid, p, value="accuracy_weighted", p="perm_p_weighted",
                                               title="PIP-weighted sign concordance (Q1)"))
    # 5. credible-set enrichment
    draw("05_cs_enrichment", "Mean |score| in vs out of 95 % credible sets (Q2), fold and Mann-Whitney P.",
         lambda p: tp.twas_cs_enrichment(q2, p))
    draw("05b_score_distributions", "|score| distributions by credible-set membership and assay.",
         lambda p: tp.twas_score_distributions(scored, p))
    # 6. PIP vs |score|
    draw("06_pip_vs_score", "PIP vs |score| per assay with Spearman rho.",
         lambda p: tp.twas_pip_vs_score(scored, p))
    # 7. per-tissue accuracy (RNA) and heart vs other magnitudes
    rna = grid.filter((pl.col("assay") == rna_assay) & (pl.col("n") > 0))
    draw("07_tissue_accuracy", f"{rna_assay} sign accuracy per tissue (heart tissues highlighted).",
         lambda p: tp.twas_tissue_accuracy(rna, p, highlight=hearts, title=f"Sign accuracy per tissue ({rna_assay})"))
    draw("07b_heart_vs_other", "|score| in heart vs non-heart tissues.",
         lambda p: tp.twas_heart_vs_other(scored, p, heart=hearts))
    # 8. tissue specificity
    tz = pairs.select("gene_id", "tissue", "twas_z", "gene_name").unique(["gene_id", "tissue"])
    draw("08_twas_z_heatmap", "TWAS Z of the significant gene-tissue pairs (gene x tissue).",
         lambda p: tp.twas_z_heatmap(tz, p, gene="gene_name"))
    gs = q3["gene_scores"]
    names = tz.select("gene_id", "gene_name").unique("gene_id")
    gsn = gs.join(names, on="gene_id", how="left").with_columns(pl.col("gene_name").fill_null(pl.col("gene_id")))
    draw("08b_ag_heatmap", f"AlphaGenome gene score AG_G = sum PIP * score * z_ALT ({rna_assay}), gene x tissue.",
         lambda p: tp.ag_heatmap(gsn, p, gene="gene_name", assay=rna_assay))
    draw("08c_specificity_bars", "Spearman rho(S_AG, S_TWAS) across multi-tissue genes per assay (Q3).",
         lambda p: tp.twas_specificity_bars(q3["summary"], p))
    draw("08d_kendall_violins", "Within-gene Kendall tau of AG_G vs TWAS Z across tissues (Q3).",
         lambda p: tp.twas_kendall_violins(q3["kendall"], p))
    # 9. gene-level rho
    draw("09_gene_rho_heatmap", "Spearman rho(AG_G, TWAS.Z) per tissue x assay (Q4); stars = within-gene "
         "score-permutation P (two-sided; the honest null, P21).",
         lambda p: tp.twas_gene_rho_heatmap(q4["table"], p))
    tissues_present = set(gs["tissue"].unique().to_list())
    sc = [t for t in scatter_tissues if t in tissues_present]
    if not sc:
        sc = (q4["table"].filter(pl.col("assay") == rna_assay).sort("n_genes", descending=True)["tissue"]
              .head(2).to_list())
    draw("09b_gene_score_scatter", f"AG_G ({rna_assay}) vs TWAS Z in {', '.join(sc) or 'no tissue'}.",
         lambda p: tp.twas_gene_score_scatter(gs, p, tissues=sc, assay=rna_assay))
    return figs, warns
