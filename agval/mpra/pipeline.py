"""The MPRA benchmark steps (STUDIES.md §3) as plain functions with typed, frozen results,
and the report's parts. No Prefect: ``tasks/mpra.py`` wraps each step in a named task and
``flows/mpra.py`` strings them together like a methods section.

Every step that can drop rows returns them (``drops``) instead of writing into the run's
log, so a step can run on another process.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from agval.drops import DropLog, failure_drops
from agval.errors import ConfigError, GuardError
from agval.frames import checked_join
from agval.mpra import PseudoReplicationWarning
from agval.mpra.aggregates import aggregate_run, assay_name
from agval.mpra.study import STRAND_SUFFIXES, MPRAStudy, cluster_column
from agval.stats.mpra import pseudo_replication_check

__all__ = ["Predicted", "Predictions", "Analysis", "MPRAReport", "select_tracks", "predicted_frame",
           "precomputed", "combine", "analyse", "build_report"]


def select_tracks(backend, organism: str, outputs: list[str], terms: list[str]) -> pl.DataFrame:
    """The served tracks the request will return (``output_metadata`` of ``backend`` filtered to
    ``outputs`` and ontology ``terms``; every track of the outputs when ``terms`` is empty).

    Raises:
        ConfigError: an output has no track for ``organism`` and ``terms``."""
    meta = backend.output_metadata(organism)
    if meta is None:
        return pl.DataFrame()
    sel = meta.filter(pl.col("output_type").is_in(outputs)
                      & (pl.col("ontology_curie").is_in(terms) if terms else pl.lit(True)))
    missing = [o for o in outputs if sel.filter(pl.col("output_type") == o).height == 0]
    if missing:
        raise ConfigError(f"no {', '.join(missing)} tracks for {organism} with ontology terms {terms}; "
                          "check the study's organism/ontology_terms against the served metadata")
    return sel


@dataclass(frozen=True)
class Predicted:
    """One prediction block (primary or sensitivity): the constructs with their aggregate
    columns (``frame``, rows without any prediction dropped), the per-track aggregates, the
    aggregate column names and the prediction summary (JSON-ready)."""

    frame: pl.DataFrame
    per_track: pl.DataFrame | None
    aggregates: list[str]
    summary: dict[str, Any]
    drops: DropLog = field(default_factory=DropLog)


def predicted_frame(rows: pl.DataFrame, run, tracks: pl.DataFrame, *, study: MPRAStudy, organism: str,
                    terms: list[str], outputs: list[str], label: str) -> Predicted:
    """Aggregate a :class:`~agval.scoring.SequenceRun` and attach it to ``rows`` (m:1 on
    ``input_id``); constructs whose input has no prediction are dropped (stage
    ``predict:<label>``, reason ``prediction_failed``, with the service's error code and
    attempts; :func:`agval.drops.failure_drops`)."""
    drops = DropLog()
    per_track, wide = aggregate_run(run, length=study.sequence_length, center_window=study.center_window,
                                    outputs=outputs)
    aggs = [c for c in wide.columns if c != "input_id"]
    frame = checked_join(rows, wide, on="input_id", how="left", validate="m:1",
                         what=f"constructs x {label} predictions")
    failed = frame.filter(pl.all_horizontal([pl.col(c).is_null() for c in aggs]))
    if failed.height:
        keep = ["row_id", *(c for c in ("source_file", "source_row") if c in frame.columns)]
        rows_failed = failed.select(*keep, pl.col("input_id").alias("seq_id"))
        known = failure_drops(rows_failed, run.failures, key="seq_id")
        unknown = rows_failed.join(known.select("row_id"), on="row_id", how="anti").select(
            *keep, pl.lit("no prediction").alias("detail"))
        for part in (known, unknown):
            drops.add_frame(part, stage=f"predict:{label}", reason="prediction_failed")
        frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in aggs]))
    summary = {**run.summary_stats, "organism": organism, "ontology_terms": terms, "outputs": outputs,
               "bin_size": run.bin_size, "n_tracks": {ot: t.height for ot, t in run.tracks.items()},
               "tracks": tracks.select([c for c in ("output_type", "track_name", "track_strand", "ontology_curie",
                                                    "biosample_name") if c in tracks.columns]).to_dicts()
               if tracks.height else []}
    return Predicted(frame, per_track, aggs, summary, drops)


@dataclass(frozen=True)
class Predictions:
    """Steps 2-4: the analysis table (``frame``: one row per construct with ``log2_ratio``,
    ``input_id`` and the aggregate columns), the aggregates, the per-track table, the metrics
    of these steps (``predictions``, ``model_inputs``, or ``activity`` of a predictions table
    that carries its own measurement), the optional sensitivity block and the tables to write."""

    frame: pl.DataFrame
    aggregates: list[str]
    per_track: pl.DataFrame | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    sensitivity: Predicted | None = None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    drops: DropLog = field(default_factory=DropLog)


def precomputed(study: MPRAStudy, measured: pl.DataFrame | None) -> Predictions:
    """The precomputed path: a predictions table joined m:1 to the measured activity, or, with
    ``measured_column`` and no counts, the table as its own measurement.

    Raises:
        InputError: the table or its key / aggregate columns are missing;
        GuardError: the m:1 join would duplicate rows."""
    from agval.mpra.measurements import activity_summary
    from agval.mpra.predictions import attach_predictions, load_predictions, measured_from_predictions

    drops = DropLog()
    preds, pkey, aggs = load_predictions(study.predictions, key=study.predictions_key,
                                         columns=study.prediction_columns, measured_column=study.measured_column)
    metrics: dict[str, Any] = {}
    if measured is None:
        frame = measured_from_predictions(preds, key=pkey, input_column=study.input_column)
        metrics["activity"] = {"source": "predictions table", "measured_column": study.measured_column,
                               **activity_summary(frame)}
    else:
        frame = attach_predictions(measured, preds.drop("log2_ratio", strict=False), key=pkey,
                                   aggregates=aggs, drops=drops, input_column=study.input_column)
    metrics["predictions"] = {"path": "precomputed", "key": pkey, "aggregates": aggs,
                              "n_prediction_rows": preds.height}
    return Predictions(frame, aggs, metrics=metrics, drops=drops)


def combine(built, primary: Predicted, sensitivity: Predicted | None, *, source: str) -> Predictions:
    """The model path's :class:`Predictions` from the built inputs
    (:class:`~agval.mpra.sequences.BuiltSequences`) and the primary / sensitivity blocks."""
    metrics = {"model_inputs": {**built.summary, "element_source": source},
               "predictions": {"path": "model", **primary.summary}}
    return Predictions(primary.frame, primary.aggregates, per_track=primary.per_track, metrics=metrics,
                       sensitivity=sensitivity, tables={"model_inputs": built.inputs.drop("sequence")})


def primary_aggregate(study: MPRAStudy, plan: dict[str, Any], aggs: list[str]) -> str:
    """The pre-specified aggregate of the headline and strata (default ``<first output>_center``;
    a pooled aggregate when the named one is absent or per strand)."""
    primary = study.primary_aggregate or (f"{assay_name(plan['outputs'][0])}_center" if "outputs" in plan
                                          else "dnase_center")
    if primary not in aggs or primary.endswith(STRAND_SUFFIXES):
        primary = next(a for a in aggs if not a.endswith(STRAND_SUFFIXES))
    return primary


@dataclass(frozen=True)
class Analysis:
    """Step 5: the statistics (``metrics`` keys ``inputs``, ``aggregates``,
    ``aggregates_by_strand``, ``primary_aggregate``, ``multiplicity``, ``strata``, ``tracks``,
    ``effects``, ``robustness``, ``sensitivity``), the strata and report tables, the effects
    in long form (figures), the tables to write and the warnings raised."""

    primary: str
    cluster_column: str
    pooled: list[str]
    stats: dict[str, dict[str, Any]]
    strata: dict[str, pl.DataFrame]
    metrics: dict[str, Any]
    report_tables: dict[str, pl.DataFrame]
    tables: dict[str, pl.DataFrame]
    effects_long: pl.DataFrame | None
    warnings: list[str]
    drops: DropLog = field(default_factory=DropLog)


def analyse(study: MPRAStudy, plan: dict[str, Any], pred: Predictions) -> Analysis:
    """Pearson, Spearman, AUROC with cluster-aware intervals and permutation P values per
    aggregate; per strand, per stratum, per track; wild type vs mutant effects; robustness
    to count filters; the sensitivity run (:mod:`agval.mpra.analysis`).

    Args:
        study: the study; ``plan``: :func:`agval.mpra.study.check_study`'s plan;
        pred: the analysis table and its aggregates (steps 2-4).

    Returns:
        :class:`Analysis`. A pseudo-replication warning (rows far outnumber distinct model
        inputs, P17) is issued as :class:`~agval.mpra.PseudoReplicationWarning` and listed in
        ``warnings``.

    Raises:
        GuardError: fewer than 3 constructs have both a measurement and a prediction.
        ConfigError: ``cluster_by = "locus"`` without loci.
    """
    from agval.mpra.analysis import (aggregate_statistics, effect_statistics, light_statistics, robustness,
                                     strata_tables, track_statistics)
    from agval.mpra.effects import effects_long, wt_mutant_effects

    frame, aggs, drops = pred.frame, pred.aggregates, DropLog()
    primary = primary_aggregate(study, plan, aggs)
    warn_texts: list[str] = []
    metrics: dict[str, Any] = {}
    if frame.height < 3:
        raise GuardError(f"only {frame.height} constructs have both a measurement and a prediction; "
                         "see dropped.parquet for where the others went")
    cluster_col = cluster_column(study, frame)
    pr = pseudo_replication_check(frame["input_id"].to_numpy(), warn_ratio=study.warn_ratio)
    metrics["inputs"] = {"n_rows": pr["n_rows"], "n_distinct_inputs": pr["n_distinct_inputs"],
                         "rows_per_input": pr["ratio"], "pseudo_replication_warning": pr["warning"],
                         "message": pr["message"], "cluster_column": cluster_col,
                         "n_clusters": int(frame[cluster_col].n_unique()),
                         "n_loci": int(frame["locus_id"].n_unique()) if "locus_id" in frame.columns else None}
    if pr["warning"]:
        warnings.warn(pr["message"], PseudoReplicationWarning, stacklevel=2)
        warn_texts.append(pr["message"])
    stat_kw = dict(measured="log2_ratio", input_col="input_id", cluster_col=cluster_col,
                   n_boot=study.n_boot, n_perm=study.n_perm, seed=study.seed, warn_ratio=study.warn_ratio)
    pooled = [a for a in aggs if not a.endswith(STRAND_SUFFIXES)]
    by_strand = [a for a in aggs if a.endswith(STRAND_SUFFIXES)]
    stats = aggregate_statistics(frame, pooled, **stat_kw)
    metrics["aggregates"] = stats
    if by_strand:
        metrics["aggregates_by_strand"] = light_statistics(
            frame, by_strand, input_col="input_id", cluster_col=cluster_col,
            n_boot=min(study.n_boot, 500), seed=study.seed)
    metrics["primary_aggregate"] = primary
    strata = strata_tables(frame, primary, study.strata, cluster_col=cluster_col,
                           min_size=study.strata_min_size, n_boot=min(study.n_boot, 500),
                           n_perm=min(study.n_perm, 1000), seed=study.seed)
    metrics["multiplicity"] = {
        "method": "benjamini-hochberg", "primary_aggregate": primary,
        "primary": "pre-specified (primary_aggregate); its P values are reported unadjusted",
        "families": ["the aggregate grid (aggregates.<a>.<stat>_perm_q)",
                     "every stratum of every strata table (strata.<by>[].q_bh)"]}
    metrics["strata"] = {k: v.to_dicts() for k, v in strata.items()}
    tables: dict[str, pl.DataFrame] = {}
    out_tables: dict[str, pl.DataFrame] = {}
    per_track = pred.per_track
    if per_track is not None and per_track.height:
        tstats = track_statistics(frame, per_track, cluster_col=cluster_col, n_boot=min(study.n_boot, 500),
                                  seed=study.seed)
        metrics["tracks"] = tstats.to_dicts()
        out_tables["track_aggregates"] = per_track
        out_tables["track_statistics"] = tstats
        tables["Per-track statistics"] = tstats
    eff_long = None
    if {"modification", "locus_id"} <= set(frame.columns):
        grouped = frame.with_columns(pl.format("{}|{}", pl.col("prefix").fill_null(""), "locus_id")
                                     .alias("wt_group")) if "prefix" in frame.columns else \
            frame.with_columns(pl.col("locus_id").alias("wt_group"))
        eff = wt_mutant_effects(grouped, ["log2_ratio", *aggs], group="wt_group", drops=drops)
        eff = eff.join(grouped.select("row_id", "locus_id"), on="row_id", how="left") \
            if "locus_id" not in eff.columns else eff
        if eff.height:
            metrics["effects"] = effect_statistics(eff, pooled, cluster_col="locus_id", n_boot=study.n_boot,
                                                   n_perm=study.n_perm, seed=study.seed)
            eff_long = effects_long(eff, pooled)
            same = int(eff["same_input"].sum()) if "same_input" in eff.columns else 0
            if same:
                warn_texts.append(f"{same} of {eff.height} mutant constructs are the same model input as their "
                                  "wild type: the model never saw those edits (their predicted effect is exactly 0)")
            out_tables["effects"] = eff.drop([c for c in ("tf",) if c in eff.columns])
    if "dna" in frame.columns and study.robustness_min_dna:
        rob = robustness(frame, primary, min_dna=study.robustness_min_dna)
        metrics["robustness"] = rob.to_dicts()
        tables["Robustness to count filters (primary aggregate)"] = rob
    sens = pred.sensitivity
    if sens is not None:
        sstats = aggregate_statistics(sens.frame, [a for a in sens.aggregates if not a.endswith(STRAND_SUFFIXES)],
                                      **stat_kw)
        metrics["sensitivity"] = {"label": "cross-species sensitivity run (not the primary result)",
                                  "organism": study.sensitivity_organism,
                                  "ontology_terms": study.sensitivity_ontology_terms,
                                  "predictions": {k: v for k, v in sens.summary.items() if k != "tracks"},
                                  "aggregates": sstats}
        out_tables["sensitivity_constructs"] = sens.frame.drop([c for c in ("tf",) if c in sens.frame.columns])
    return Analysis(primary=primary, cluster_column=cluster_col, pooled=pooled, stats=stats, strata=strata,
                    metrics=metrics, report_tables=tables, tables=out_tables, effects_long=eff_long,
                    warnings=warn_texts, drops=drops)


@dataclass(frozen=True)
class MPRAReport:
    """What the run writes: ``metrics`` (``metrics.json``), ``tables`` (``tables/*.parquet``, in
    order), and the report's ``report_tables``, ``sections``, ``summary_md``; ``headline``."""

    metrics: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    report_tables: dict[str, pl.DataFrame]
    sections: list[tuple[str, str]]
    summary_md: str
    headline: str


def build_report(study: MPRAStudy, plan: dict[str, Any], *, simulated: bool, provenance: dict[str, Any] | None,
                 activity: dict[str, Any] | None, pred: Predictions, res: Analysis) -> MPRAReport:
    """``metrics.json`` (keys: ``docs/metrics-mpra.md``), the tables and the report's parts.

    Args:
        study, plan: the study and its checked plan; ``simulated``: the run's label;
        provenance: a predictions table's provenance (precomputed path);
        activity: the measured activity's summary (None without counts);
        pred, res: steps 2-4 and 5.
    """
    from agval.mpra.analysis import headline

    metrics: dict[str, Any] = {"study": study.name, "simulated": simulated}
    if provenance is not None:
        metrics["predictions_provenance"] = provenance
    if activity is not None:
        metrics["activity"] = activity
    metrics.update(pred.metrics)
    metrics.update(res.metrics)
    primary, stats = res.primary, res.stats
    tables = dict(res.tables)
    tables["constructs"] = pred.frame
    report_tables = dict(res.report_tables)
    for k, v in res.strata.items():
        tables[f"strata_{k}"] = v
        report_tables[f"Strata by {k} ({primary}, min size {study.strata_min_size})"] = v
    head = headline(primary, stats[primary])
    metrics["headline"] = head
    summary_table = pl.DataFrame([{"aggregate": a, **{k: s.get(k) for k in (
        "n", "n_distinct_inputs", "n_clusters", "pearson_r", "pearson_ci_low", "pearson_ci_high",
        "pearson_ci_low_naive", "pearson_ci_high_naive", "pearson_perm_p", "pearson_perm_q", "spearman_rho",
        "spearman_p",
        "auroc", "threshold", "n_positive", "n_negative", "within_pearson_r")}} for a, s in stats.items()])
    report_tables = {"Statistics per aggregate": summary_table, **report_tables}
    pub = _published(study, stats, simulated)
    if pub is not None:
        from agval.published import published_table, published_title

        metrics["published"] = pub
        report_tables = {"Statistics per aggregate": summary_table, published_title(pub): published_table(pub),
                         **{k: v for k, v in report_tables.items() if k != "Statistics per aggregate"}}
    if metrics.get("aggregates_by_strand"):
        strand_table = pl.DataFrame([{"aggregate": a, **v} for a, v in metrics["aggregates_by_strand"].items()])
        report_tables["Per-strand aggregates (stranded tracks reported separately)"] = strand_table
        tables["statistics_by_strand"] = strand_table
    tables["statistics"] = summary_table
    sections = _sections(study, plan, metrics, primary, res.cluster_column)
    return MPRAReport(metrics=metrics, tables={**pred.tables, **tables}, report_tables=report_tables,
                      sections=sections, summary_md=f"**{head}**\n\n{metrics['inputs']['message']}", headline=head)


def _published(study: MPRAStudy, stats: dict[str, Any], simulated: bool) -> dict[str, Any] | None:
    """``metrics["published"]``: the study's published set (default: the seed's V2 numbers
    when the counts are GSE84888 files), compared aggregate by aggregate."""
    from agval.published import mpra_observed, published_block, resolve_set_id

    set_id = resolve_set_id(study.published, "mpra", seed_layout=bool(study.counts)
                            and study.count_format == "gse84888")
    return published_block(set_id, mpra_observed(stats), simulated=simulated)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _sections(study: MPRAStudy, plan: dict[str, Any], metrics: dict[str, Any], primary: str,
              cluster_col: str) -> list[tuple[str, str]]:
    from agval.stats.pvalues import format_p

    act = metrics.get("activity", {})
    inp = metrics["inputs"]
    st = metrics["aggregates"][primary]
    out = [("Measured activity",
            f"Activity = log2((RNA + {study.pseudocount:g}) / (DNA + {study.pseudocount:g})) per construct. "
            f"{act.get('n_constructs')} constructs after filters (min_dna {study.min_dna:g}, min_tags "
            f"{study.min_tags}); by pool {act.get('by_pool')}; {act.get('n_loci')} distinct loci; mean "
            f"{_fmt(act.get('log2_ratio_mean'))}, median {_fmt(act.get('log2_ratio_median'))}.")]
    if plan["precomputed"]:
        out.append(("Predictions", f"Precomputed predictions from {study.predictions} joined on "
                                   f"{metrics['predictions']['key']!r} (asserted m:1)."))
    else:
        mi = metrics["model_inputs"]
        out.append(("Model inputs",
                    f"Element source: {plan['source']}; each insert centred in {study.sequence_length} bp "
                    f"({'neutral backbone, seed ' + str(study.backbone_seed) if study.backbone == 'neutral' else 'reference flanks'}), "
                    f"genomic + orientation, never N-padded. {mi['n_rows']} rows, {mi['n_distinct_inputs']} distinct "
                    f"model inputs. Organism {study.organism}, ontology terms "
                    f"{', '.join(study.ontology_terms) or 'ALL tracks (all_tracks = true)'}; "
                    f"outputs {', '.join(plan['outputs'])}. Centre window {study.center_window} bp centred at "
                    f"{study.sequence_length // 2}."))
    out.append(("Statistics",
                f"AUROC labels: positive = log2 ratio strictly greater than the median ({_fmt(st['threshold'])}); "
                f"{st['n_positive']} positive, {st['n_negative']} negative. Confidence intervals: percentile "
                f"bootstrap resampling {cluster_col} clusters ({inp['n_clusters']} clusters, {study.n_boot} "
                f"replicates); permutation p-values move predictions across clusters ({study.n_perm} permutations). "
                f"Row-bootstrap ('naive') intervals are shown beside them for comparison. {inp['message']}. "
                f"Pre-specified primary aggregate: {primary} (P values unadjusted: cluster permutation P = "
                f"{format_p(st.get('pearson_perm_p'))}); Benjamini-Hochberg q values over the aggregate grid "
                "(pearson_perm_q) and over every stratum of every strata table (q_bh)."))
    if "sensitivity" in metrics:
        out.append(("Sensitivity run", f"Cross-species sensitivity run with {metrics['sensitivity']['organism']} "
                                       f"tracks {', '.join(study.sensitivity_ontology_terms)}; reported separately "
                                       "under metrics.sensitivity, not the primary result."))
    return out

