"""Prefect tasks of the MPRA benchmark: thin wrappers over :mod:`agval.mpra`.

Each task does one step of ``flows/mpra.py`` and publishes what a reader of the Prefect UI
needs (a table artifact for the activity filters, the distinct-input accounting and the
prediction summary). No task caches: inputs are files hashed in the run manifest.
"""

from __future__ import annotations

from typing import Any, Sequence

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from agval import progress
from agval.drops import DropLog, Dropped
from agval.mpra import pipeline
from agval.mpra.pipeline import Analysis, Predicted, Predictions
from agval.mpra.sequences import BuiltSequences
from agval.mpra.study import MPRAStudy
from tasks.alleles import artifact_key


def _kv(d: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in d.items() if not isinstance(v, (dict, list))]


@task(name="mpra-activity", cache_policy=NO_CACHE)
def load_activity(counts: Sequence[str], *, count_format: str, pools: Sequence[str] | None, build: str,
                  pseudocount: float, min_dna: float, min_tags: int, aggregate: str, key: str):
    """Counts -> per-construct log2(RNA/DNA) with filters (:func:`agval.mpra.load_measurements`)."""
    from agval.mpra import load_measurements

    m = load_measurements(counts, count_format=count_format, pools=pools, build=build, pseudocount=pseudocount,
                          min_dna=min_dna, min_tags=min_tags, aggregate=aggregate)
    rows = _kv(m.summary) + [{"name": f"dropped by {k}", "value": str(v)}
                             for k, v in m.summary["filters"]["dropped"].items()]
    create_table_artifact(key=f"{artifact_key(key)}-activity", table=rows,
                          description="MPRA activity: rows loaded, filters and what they dropped")
    return m


@task(name="mpra-build-inputs", cache_policy=NO_CACHE)
def build_inputs(constructs: pl.DataFrame, study: MPRAStudy, *, source: str, key: str) -> Dropped[BuiltSequences]:
    """Element inserts -> distinct model inputs of a supported length (refuses N)."""
    from agval.genome import ReferenceGenome
    from agval.io.mpra import load_element_sequences
    from agval.mpra import build_sequences, prepare_inserts

    drops = DropLog()
    seqs = None
    if study.sequences:
        seqs, d = load_element_sequences(study.sequences)
        drops.extend(d)
    genome = ReferenceGenome(study.reference_fasta) if study.reference_fasta else None
    try:
        rows = prepare_inserts(constructs, source=source, sequences=seqs, genome=genome, backbone=study.backbone,
                               element_orientation=study.element_orientation, coordinate_base=study.coordinate_base,
                               drops=drops)
        built = build_sequences(rows, length=study.sequence_length, backbone=study.backbone,
                                backbone_seed=study.backbone_seed, genome=genome,
                                coordinate_base=study.coordinate_base, n_policy=study.n_policy, drops=drops,
                                center_window=study.center_window)
    finally:
        if genome is not None:
            genome.close()
    create_table_artifact(key=f"{artifact_key(key)}-inputs", table=_kv(built.summary),
                          description="MPRA model inputs: rows, distinct inputs, backbone")
    return Dropped(built, drops)


@task(name="mpra-precomputed", cache_policy=NO_CACHE)
def attach_precomputed(study: MPRAStudy, measured: pl.DataFrame | None) -> Predictions:
    """The precomputed path (:func:`agval.mpra.pipeline.precomputed`)."""
    return pipeline.precomputed(study, measured)


@task(name="mpra-aggregate", cache_policy=NO_CACHE)
def aggregate_predictions(rows: pl.DataFrame, run, tracks: pl.DataFrame, *, study: MPRAStudy, organism: str,
                          terms: list[str], outputs: list[str], label: str) -> Predicted:
    """Per-track and pooled aggregates attached to the constructs
    (:func:`agval.mpra.pipeline.predicted_frame`)."""
    return pipeline.predicted_frame(rows, run, tracks, study=study, organism=organism, terms=terms,
                                    outputs=outputs, label=label)


@task(name="mpra-predict", cache_policy=NO_CACHE)
def predict_inputs(inputs: pl.DataFrame, outputs: Sequence[str], *, backend, ontology_terms: Sequence[str],
                   organism: str, bin_size: int, concurrency: int, key: str):
    """One ``predict_sequence`` call per distinct input with all outputs, through the
    engine's sequence cache (:func:`agval.scoring.predict_sequences`)."""
    from agval.scoring import predict_sequences

    run = predict_sequences(inputs.select(pl.col("input_id").alias("seq_id"), "sequence"), list(outputs),
                            backend=backend, ontology_terms=list(ontology_terms) or None, organism=organism,
                            bin_size=bin_size, cache="default", concurrency=concurrency,
                            progress=progress.callback("scoring", unit="sequences"))
    stats = {**run.summary_stats, "organism": organism, "ontology_terms": ",".join(ontology_terms),
             "outputs": ",".join(outputs), "bin_size": bin_size}
    create_table_artifact(key=f"{artifact_key(key)}-predict", table=_kv(stats),
                          description="MPRA predictions: distinct inputs, calls, cache hits, failures")
    return run


@task(name="mpra-statistics", cache_policy=NO_CACHE)
def statistics(study: MPRAStudy, plan: dict[str, Any], pred: Predictions) -> Analysis:
    """Every statistic of the benchmark with cluster-aware CIs (:func:`agval.mpra.pipeline.analyse`)."""
    progress.emit("statistics")
    return pipeline.analyse(study, plan, pred)


@task(name="mpra-figures", cache_policy=NO_CACHE)
def figures(frame: pl.DataFrame, plots_dir: str, *, aggregates: Sequence[str], primary: str,
            stats: dict[str, dict[str, Any]], tf_table: pl.DataFrame | None, effects_long: pl.DataFrame | None,
            scatter: Sequence[str] | None = None, distributions: bool = True) -> list[tuple[str, str]]:
    """All MPRA figures (:mod:`agval.plots.mpra`); returns ``[(path, caption)]``. A figure
    that cannot be drawn (e.g. one class only) is skipped and named in its caption list."""
    from pathlib import Path

    from agval.errors import GuardError
    from agval.plots import mpra as P

    out: list[tuple[str, str]] = []
    d = Path(plots_dir)
    cols = ["log2_ratio", *aggregates] + (["input_id"] if "input_id" in frame.columns else [])
    df = frame.select(cols)

    def attempt(fn, path, caption, *args, **kw):
        try:
            out.append((str(fn(*args, path=d / path, **kw)), caption))
        except GuardError:
            pass

    for a in (aggregates if scatter is None else scatter):
        st = stats.get(a, {})
        attempt(P.mpra_scatter, f"scatter_{a}.png",
                f"MPRA log2(RNA/DNA) vs {a}. Cluster-aware 95% CI of r: [{st.get('pearson_ci_low', float('nan')):.3f}, "
                f"{st.get('pearson_ci_high', float('nan')):.3f}] ({st.get('n_clusters')} clusters).",
                df, aggregate=a, stats={"n": st.get("n"), "r": st.get("pearson_r"), "rho": st.get("spearman_rho")})
    attempt(P.mpra_roc, "roc.png", "ROC curves: positive = log2 ratio strictly greater than its median.",
            df, aggregates=list(aggregates))
    attempt(P.mpra_correlation_heatmap, "correlation_heatmap.png",
            "Pearson correlations of the MPRA activity and every aggregate.", df,
            columns=["log2_ratio", *aggregates])
    if distributions:
        attempt(P.mpra_prediction_distributions, "prediction_distributions.png",
                "Distribution of each prediction aggregate over constructs.", df, aggregates=list(aggregates))
    if tf_table is not None and tf_table.height:
        attempt(P.mpra_tf_bars, "per_tf_barplot.png",
                f"Per-TF Pearson r of {primary} with cluster-bootstrap CIs (TF tokens of the modification).",
                tf_table)
    if effects_long is not None and effects_long.height:
        if not distributions:
            effects_long = effects_long.filter(pl.col("aggregate") == primary)
        attempt(P.mpra_wt_vs_mutant, "wildtype_vs_mutant.png",
                "Wild-type vs mutant prediction per aggregate (mutants merged to their own wild type).",
                effects_long)
        if distributions:
            attempt(P.mpra_delta_distributions, "mutation_effect_distributions.png",
                    "Predicted mutation effects (mutant - wild type).", effects_long)
    return out
