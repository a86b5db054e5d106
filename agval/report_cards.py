"""Headline cards of a report: one per study question, built from the run's metrics.

:func:`cards_for` returns :class:`agval.report.Card` objects for ``kind`` in
``qtl`` / ``twas`` / ``mpra`` from ``metrics.json``-shaped dicts (keys documented in
``docs/metrics-<kind>.md``); a missing statistic gives a card that says so rather than
an error. ``figures`` (paths or :class:`agval.report.Figure`) supply each card's key
figure by file-name fragment. P values are printed with
:func:`agval.stats.pvalues.format_p`; a verdict uses alpha = 0.05 on the P the card shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agval.report import Card, Figure, _as_figure
from agval.runs import finite_or_none as _num

ALPHA = 0.05




def _pick_figure(figures: Sequence[Figure], *fragments: str) -> Figure | None:
    for frag in fragments:
        for f in figures:
            if frag in f.path.name:
                return f
    return None


def _verdict(p: float | None, what: str, *, estimate: float | None = None, null: float = 0.0,
             positive: str = "", negative: str = "") -> str:
    if p is None or estimate is None:
        return f"Not estimable in this run ({what})."
    if p < ALPHA:
        side = positive if estimate > null else negative
        return f"Yes: {what} {side}(P < {ALPHA:g}).".replace("  ", " ")
    return f"No evidence: {what} is not distinguishable from its null (P \u2265 {ALPHA:g})."


def _qtl(m: Mapping[str, Any], figs: Sequence[Figure]) -> list[Card]:
    h = m.get("headline") or {}
    stat = str(h.get("headline_statistic") or "spearman_rho")
    est, lo, hi = _num(h.get("estimate")), _num(h.get("estimate_ci_low")), _num(h.get("estimate_ci_high"))
    p = _num(h.get("estimate_perm_p"))
    cell = h.get("primary_cell") or m.get("primary_cell")
    label = {"magnitude_spearman_rho": "\u03c1(|score|, |beta|)", "spearman_rho": "Spearman \u03c1",
             "pearson_r": "Pearson r"}.get(stat, stat)
    analysis = h.get("analysis") or "corrected"
    cards = [Card(
        question="Do AlphaGenome scores track the measured QTL effect sizes?",
        statistic=label, estimate=est, ci=(lo, hi), p=p, p_label="cluster permutation P",
        n=f"{h.get('n')} rows, {h.get('n_clusters')} independent units" if h.get("n") is not None else None,
        verdict=_verdict(p, f"the {analysis} score\u2013effect association in {cell or 'the primary cell'}", estimate=est,
                         positive="is positive ", negative="is negative "),
        published_keys=(f"original.{'spearman_rho' if 'spearman' in stat else stat}", "original.spearman_rho"),
        figure=_pick_figure(figs, "magnitude", "correlation"))]
    if h.get("abs_rho_difference") is not None:
        d = _num(h.get("abs_rho_difference"))
        dlo, dhi = _num(h.get("abs_rho_difference_ci_low")), _num(h.get("abs_rho_difference_ci_high"))
        excl = dlo is not None and dhi is not None and (dlo > 0 or dhi < 0)
        cards.append(Card(
            question="Did correcting the seed's choices change the answer?",
            statistic="|\u03c1 corrected| \u2212 |\u03c1 original|", estimate=d, ci=(dlo, dhi), p=None,
            verdict=("Yes: the paired bootstrap interval excludes 0." if excl else
                     "No clear change: the paired bootstrap interval includes 0.") if d is not None else
            "Not estimable in this run.",
            published_keys=("original.spearman_rho",), figure=_pick_figure(figs, "modes", "forest")))
    return cards


def _mpra(m: Mapping[str, Any], figs: Sequence[Figure]) -> list[Card]:
    prim = m.get("primary_aggregate")
    a = (m.get("aggregates") or {}).get(prim) or {}
    cards = []
    for stat, label, lo_k, hi_k, p_k, null, fig in (
            ("pearson_r", "Pearson r", "pearson_ci_low", "pearson_ci_high", "pearson_perm_p", 0.0,
             ("scatter", "correlation")),
            ("auroc", "AUROC (median split)", "auroc_ci_low", "auroc_ci_high", "auroc_perm_p", 0.5, ("roc",))):
        est = _num(a.get(stat))
        p = _num(a.get(p_k))
        q = ("Do predictions track measured reporter activity?" if stat == "pearson_r" else
             "Do predictions separate active from inactive elements?")
        cards.append(Card(
            question=q, statistic=f"{label}, {prim}", estimate=est, ci=(_num(a.get(lo_k)), _num(a.get(hi_k))), p=p,
            p_label=f"{a.get('cluster_unit', 'cluster')} permutation P",
            n=(f"{a.get('n')} constructs, {a.get('n_distinct_inputs')} distinct inputs, "
               f"{a.get('n_clusters')} clusters") if a.get("n") is not None else None,
            verdict=_verdict(p, f"{label} of {prim}", estimate=est, null=null,
                             positive="is above chance " if stat == "auroc" else "is positive ",
                             negative="is below chance " if stat == "auroc" else "is negative "),
            published_keys=(f"{prim}.{stat}",), figure=_pick_figure(figs, *fig)))
    return cards


def _twas(m: Mapping[str, Any], figs: Sequence[Figure]) -> list[Card]:
    pc = m.get("primary_cell") or {}
    assay = pc.get("assay")
    hl = (m.get("headline") or {}).get(assay) or {}
    pkey = {"RNA": "RNA_SEQ"}.get(str(assay), str(assay))
    cards = []
    q1 = pc.get("q1_eqtl_rna") or pc.get("q1_twas") or {}
    acc = _num(q1.get("accuracy"))
    p1 = _num(q1.get("perm_p"))
    cards.append(Card(
        question=f"Q1: does the score's sign agree with the variant's direction ({pc.get('cell', 'primary cell')})?",
        statistic="sign-agreement accuracy", estimate=acc, ci=(_num(q1.get("ci_low")), _num(q1.get("ci_high"))),
        p=p1, p_label="cluster permutation P", n=f"{q1.get('n')} variant-gene pairs" if q1.get("n") is not None else None,
        verdict=_verdict(p1, "sign agreement", estimate=acc, null=_num(q1.get("perm_null_mean")) or 0.5,
                         positive="is above its permutation null ", negative="is below its permutation null "),
        published_keys=(f"q1.{pkey}.{pc.get('tissue')}.accuracy",),
        figure=_pick_figure(figs, "tissue_accuracy", "concordance")))
    fold = _num(hl.get("q2_dedup_fold"))
    ci2 = hl.get("q2_dedup_fold_ci") or (None, None)
    p2 = _num(hl.get("q2_corrected_mwu_perm_p"))
    cards.append(Card(
        question=f"Q2: are credible-set variants scored higher ({assay})?", statistic="fold |score| credible set / other",
        estimate=fold, ci=(_num(ci2[0]), _num(ci2[1])), p=p2, p_label="cluster permutation P",
        verdict=_verdict(p2, "credible-set enrichment", estimate=fold, null=1.0, positive="is above 1 ",
                         negative="is below 1 "),
        published_keys=(f"q2.{pkey}.fold",), figure=_pick_figure(figs, "cs_enrichment", "pip_vs_score")))
    rho3 = _num(hl.get("q3_spearman_rho"))
    ci3 = hl.get("q3_spearman_rho_ci") or (None, None)
    p3 = _num(hl.get("q3_rho_perm_p"))
    cards.append(Card(
        question=f"Q3: does tissue specificity agree with TWAS ({assay})?", statistic="Spearman \u03c1 (S_AG, S_TWAS)",
        estimate=rho3, ci=(_num(ci3[0]), _num(ci3[1])), p=p3, p_label="permutation P (P32)",
        n=f"{hl.get('q3_n_genes')} genes" if hl.get("q3_n_genes") is not None else None,
        verdict=_verdict(p3, "the specificity correlation", estimate=rho3, null=_num(hl.get("q3_rho_null_mean")) or 0.0,
                         positive="exceeds its permutation null ", negative="is below its permutation null "),
        published_keys=(f"q3.{pkey}.spearman_rho",), figure=_pick_figure(figs, "gene_rho", "specificity")))
    rho4 = _num(hl.get("q4_best_rho"))
    ci4 = hl.get("q4_best_rho_ci") or (None, None)
    p4 = _num(hl.get("q4_best_corrected_perm_p"))
    cards.append(Card(
        question=f"Q4: do gene-level scores follow TWAS z in the best tissue ({hl.get('q4_best_tissue', '?')})?",
        statistic="Spearman \u03c1 (AG_G, TWAS.Z)", estimate=rho4, ci=(_num(ci4[0]), _num(ci4[1])), p=p4,
        p_label="locus permutation P (P21, P31)",
        verdict=_verdict(p4, "the gene-level correlation", estimate=rho4, positive="is positive ",
                         negative="is negative "),
        published_keys=(f"q4.{pkey}.{hl.get('q4_best_tissue')}.spearman_rho",),
        figure=_pick_figure(figs, "twas_z_heatmap", "ag_heatmap")))
    return cards


def _causality(m: Mapping[str, Any], figs: Sequence[Figure]) -> list[Card]:
    """The QTL causality benchmark (``[study] benchmark = "causality"``): auPRC of |score|
    for causal vs control variants against its within-locus permutation null, and the
    direction correlation over the positives (keys in docs/metrics-qtl.md)."""
    h = m.get("headline") or {}
    est, p, rnd = _num(h.get("auprc")), _num(h.get("auprc_perm_p")), _num(h.get("random_auprc"))
    cards = [Card(
        question="Do the scores rank causal variants above their controls?",
        statistic="auPRC (|score|)", estimate=est, ci=(_num(h.get("auprc_ci_low")), _num(h.get("auprc_ci_high"))),
        p=p, p_label="within-locus permutation P",
        n=f"{h.get('n_positive')} causal, {h.get('n_control')} controls, {h.get('n_loci')} loci"
        if h.get("n_positive") is not None else None,
        verdict=_verdict(p, f"the auPRC (random ranking {rnd:.3f})" if rnd is not None else "the auPRC",
                         estimate=est, null=rnd or 0.0, positive="is above a random ranking ",
                         negative="is below a random ranking "),
        figure=_pick_figure(figs, "pr", "auprc"))]
    r, se = _num(h.get("direction_r")), _num(h.get("direction_se"))
    if r is not None:
        split = (((m.get("causality") or {}).get("splits") or {}).get(str(h.get("split") or "all")) or {})
        row = (split.get("models") or {}).get(str(h.get("model"))) or {}
        ci, how = (_num(row.get("direction_ci_low")), _num(row.get("direction_ci_high"))), "locus-bootstrap interval"
        if None in ci and se is not None:
            ci, how = (r - 1.96 * se, r + 1.96 * se), "interval (\u00b1 1.96 locus-bootstrap SE)"
        excl = None not in ci and (ci[0] > 0 or ci[1] < 0)
        cards.append(Card(
            question="Do signed scores predict the direction of the causal variants' effects?",
            statistic="Pearson r (score, effect)", estimate=r, ci=ci, p=None,
            verdict=f"Yes: the {how} excludes 0." if excl else f"No clear direction: the {how} includes 0.",
            figure=_pick_figure(figs, "direction")))
    return cards


def cards_for(kind: str, metrics: Mapping[str, Any], figures: Sequence[Any] = ()) -> list[Card]:
    """Headline cards for a ``qtl``/``twas``/``mpra`` run (empty list for other kinds); a
    QTL causality benchmark (``headline.benchmark == "causality"``) gets its own cards."""
    figs = [_as_figure(f) for f in figures or ()]
    if kind == "qtl" and ((metrics or {}).get("headline") or {}).get("benchmark") == "causality":
        return _causality(metrics, figs)
    build = {"qtl": _qtl, "twas": _twas, "mpra": _mpra}.get(kind)
    return build(metrics or {}, figs) if build else []


__all__ = ["cards_for", "ALPHA"]


def pipeline_counts(kind: str, metrics: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(step, rows)`` in pipeline order for the report's drop funnel (empty when the
    run's metrics do not hold the counts)."""
    m = metrics or {}
    out: list[tuple[str, int]] = []
    if kind == "qtl":
        for k, v in (m.get("counts") or {}).items():
            if isinstance(v, int) and not isinstance(v, bool) and k not in ("dropped_rows", "drop_events"):
                out.append((k.replace("_", " "), v))
    elif kind == "mpra":
        a = m.get("activity") or {}
        if isinstance(a.get("n_loaded"), int):
            out.append(("rows read", a["n_loaded"] + int(a.get("n_load_dropped") or 0)))
            out.append(("rows loaded", a["n_loaded"]))
        f = a.get("filters") or {}
        for name, n in (f.get("dropped") or {}).items():
            if out and isinstance(n, int):
                out.append((f"after {name} filter", out[-1][1] - n))
        if isinstance(a.get("n_constructs"), int):
            out.append(("constructs", a["n_constructs"]))
        prim = (m.get("aggregates") or {}).get(m.get("primary_aggregate")) or {}
        if isinstance(prim.get("n"), int):
            out.append((f"analysed ({m.get('primary_aggregate')})", prim["n"]))
    return out
