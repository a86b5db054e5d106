"""MPRA benchmark: reporter activity vs sequence predictions (STUDIES.md §3, corrected).

``agval run mpra STUDY_FILE`` or ``mpra_benchmark(study, backend)``. Methods, in order:

1. **Activity.** Load the counts (GSE84888 ``name, tags, counts.rna, counts.plasmid`` or
   a generic count table); activity = ``log2((RNA + pc) / (DNA + pc))`` per construct;
   minimum-DNA and minimum-barcode filters, each filter's drops reported (P26).
2. **Model inputs.** The element (the synthesised oligo from ``sequences``, the locus
   16-mer of the construct name, or the reference bases) centred in a supported length
   (16,384 bp by default) inside its reference flanks or the fixed neutral backbone,
   genomic + orientation; N-padding and unsupported lengths refused (P16, P18). Every
   distinct input is identified by its sequence hash.
3. **Predictions.** One ``predict_sequence`` call per distinct input with all requested
   outputs, through the scoring engine's cache, with the study's organism and ontology
   (mouse adipocyte tracks for GSE84888; P24). The number of distinct inputs is
   reported; a pseudo-replication warning fires when rows far outnumber them (P17). A
   cross-species run (K562) happens only as the named sensitivity run. Or, the
   **precomputed path**: a table of predictions (element or locus id -> aggregate
   columns) joined m:1 to the measured activity.
4. **Aggregates.** Per track and pooled per output type: the correctly centred window
   mean and the whole-sequence mean, per strand for stranded tracks (P25).
5. **Statistics.** Pearson, Spearman, AUROC of the median split (strictly greater =
   positive; threshold and class counts stated); cluster-aware bootstrap CIs and
   permutation tests resampling loci or distinct inputs; the naive row-bootstrap CIs
   beside them; within-cluster correlations; strata by strand, TF and chromosome with a
   minimum size; per track; wild type vs mutant deltas merged with an asserted
   cardinality (P19); robustness to stricter count filters.
6. **Figures and report.** Run record (manifest, tables, figures, ``metrics.json``,
   ``dropped.parquet``), ``report.html``, Prefect artifacts.

``metrics.json`` keys: ``docs/metrics-mpra.md``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import polars as pl
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agval.config import BackendConfig
from agval.errors import ConfigError, GuardError
from agval.frames import checked_join
from agval.mpra import PseudoReplicationWarning
from agval.mpra.aggregates import aggregate_run, assay_name, center_bounds, choose_bin_size
from agval.mpra.backbone import BACKBONE_SEED
from agval.mpra.sequences import check_length
from agval.stats.mpra import DEFAULT_WARN_RATIO, pseudo_replication_check
from flows._common import RESULT_STORAGE, backend_session, record_model, run_name, start_run
from flows.runners import task_runner_from_env

STRAND_SUFFIXES = ("_plus", "_minus", "_unstranded")
OUTPUT_TYPES = ("ATAC", "CAGE", "DNASE", "RNA_SEQ", "PROCAP", "CHIP_HISTONE", "CHIP_TF")


class MPRAStudy(BaseModel):
    """The ``[study]`` section of an MPRA study file (paths relative to the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mpra", description="study name (run folder and report title)")
    # -- measured activity
    counts: list[str] = Field(default_factory=list, description="count files (GSE84888 *_MPRA.txt or count tables)")
    count_format: Literal["gse84888", "table"] = "gse84888"
    pools: list[str] | None = Field(None, description="one pool name per count file (default: from the file name)")
    build: str = Field("mm9", description="genome build of the coordinates in the construct names")
    pseudocount: float = Field(1.0, ge=0)
    min_dna: float = Field(0, ge=0, description="drop constructs with fewer DNA (plasmid) counts")
    min_tags: int = Field(0, ge=0, description="drop constructs with fewer barcodes (tags)")
    aggregate: Literal["auto", "none", "mean", "median", "sum"] = Field(
        "auto", description="count tables: combine barcode rows per element (auto: sum when per-barcode)")
    # -- model inputs
    sequences: str | None = Field(None, description="element sequences (FASTA or table, keyed by element id)")
    element_source: Literal["auto", "sequences", "seq16", "reference"] = Field(
        "auto", description="what is inserted: the given sequences, the locus 16-mer of the GSE84888 name, or "
        "the reference bases at the coordinates (auto: sequences if given, else seq16)")
    reference_fasta: str | None = Field(None, description="reference FASTA for genomic flanks / reference elements")
    backbone: Literal["neutral", "reference"] = Field(
        "neutral", description="what surrounds the element: the fixed neutral backbone or its reference flanks")
    backbone_seed: int = Field(BACKBONE_SEED, description="seed of the neutral backbone (agval.mpra.backbone)")
    element_orientation: Literal["strand", "plus"] = Field(
        "strand", description="given sequences are written on the construct's strand (strand) or genomic + (plus)")
    coordinate_base: Literal[0, 1] = Field(0, description="0: name coordinates are 0-based half-open [start, end)")
    n_policy: Literal["refuse", "drop"] = Field("refuse", description="inputs containing N: refuse (error) or drop")
    sequence_length: int = Field(16_384, description="model input length: 16384, 131072, 524288 or 1048576")
    center_window: int = Field(200, ge=1, description="width of the centred aggregate window (bp)")
    # -- predictions
    organism: Literal["MUS_MUSCULUS", "HOMO_SAPIENS"] = "MUS_MUSCULUS"
    ontology_terms: list[str] = Field(default_factory=lambda: ["CL:0000136"],
                                      description="track ontology terms (mouse adipocyte CL:0000136; 3T3-L1 "
                                                  "EFO:0001084)")
    outputs: list[str] = Field(default_factory=lambda: ["DNASE", "CAGE", "RNA_SEQ"])
    all_tracks: bool = Field(False, description="explicit opt-in to an empty ontology_terms: average EVERY track "
                             "of the requested outputs (pitfall P14: 305 DNase tracks are not one cell type)")
    sensitivity_ontology_terms: list[str] = Field(
        default_factory=list, description="a named sensitivity run with other tracks (e.g. K562 EFO:0002067)")
    sensitivity_organism: Literal["MUS_MUSCULUS", "HOMO_SAPIENS"] = "HOMO_SAPIENS"
    concurrency: int = Field(4, ge=1, le=64)
    # -- precomputed path
    predictions: str | None = Field(None, description="table of predictions (element or locus id -> aggregates)")
    predictions_key: str | None = Field(None, description="key column of the predictions table (auto)")
    prediction_columns: list[str] | None = Field(
        None, description="aggregate columns (default: the columns named <assay>_<aggregate>, e.g. dnase_center, "
        "or pred_<name>; agval.mpra.predictions.is_prediction_column)")
    measured_column: str | None = Field(None, description="the predictions table carries the measured activity "
                                                          "in this column (then no counts are needed)")
    input_column: str | None = Field(None, description="column naming the distinct model input (default: the key)")
    predictions_simulated: bool = Field(False, description="the predictions table came from a stand-in")
    # -- statistics
    cluster_by: Literal["auto", "locus", "input"] = Field(
        "auto", description="resampling unit of CIs and permutations (auto: locus when known, else input)")
    n_boot: int = Field(2000, ge=0)
    n_perm: int = Field(1000, ge=0)
    seed: int = 0
    warn_ratio: float = Field(DEFAULT_WARN_RATIO, gt=1, description="rows / distinct inputs that triggers the "
                                                                    "pseudo-replication warning")
    strata: list[str] = Field(default_factory=lambda: ["strand", "tf", "chromosome"])
    strata_min_size: int = Field(10, ge=1)
    primary_aggregate: str | None = Field(None, description="aggregate for strata and headline (default: "
                                                            "<first output>_center)")
    robustness_min_dna: list[float] = Field(default_factory=lambda: [0, 10, 100])
    published: str | None = Field(
        None, description="published reference set shown beside the run (agval.published): a set id, 'none', "
        "or default (GSE84888 count files: grossman2017-mpra-v2)")
    figures: Literal["all", "summary", "none"] = Field(
        "all", description="all figures; summary: scatter of the primary aggregate, ROC, heatmap, TF bars, "
        "wild type vs mutant; none")

    @field_validator("published")
    @classmethod
    def _published_set(cls, v: str | None) -> str | None:
        from agval.published import checked_set_field

        return checked_set_field(v)

    @model_validator(mode="after")
    def _check(self):
        if not self.counts and not (self.predictions and self.measured_column):
            raise ValueError("give count files, or a predictions table with measured_column")
        if not self.ontology_terms and not self.all_tracks and not self.predictions:
            raise ValueError("ontology_terms is empty: that would average every track of every biosample "
                             "(pitfall P14); name the tracks' ontology terms, or set all_tracks = true to "
                             "average all of them on purpose")
        if self.ontology_terms and self.all_tracks:
            raise ValueError("all_tracks = true contradicts a non-empty ontology_terms; give one of them")
        bad = [o for o in self.outputs if o.upper() not in OUTPUT_TYPES]
        if bad or not self.outputs:
            raise ValueError(f"outputs must be among {list(OUTPUT_TYPES)}, got {self.outputs}")
        return self


STUDY_MODEL = MPRAStudy


def check_study(study: MPRAStudy) -> dict[str, Any]:
    """Everything that can be refused before any service is contacted: the input length
    (:class:`~agval.errors.UnsupportedSequenceError`), the centre window, the element source."""
    plan: dict[str, Any] = {"precomputed": bool(study.predictions)}
    for role, paths in (("counts", study.counts), ("sequences", [study.sequences]),
                        ("reference_fasta", [study.reference_fasta]), ("predictions", [study.predictions])):
        for p in paths:
            if p and not Path(p).is_file():
                raise ConfigError(f"{role} file not found: {p} (relative paths are taken from the working "
                                  f"folder {Path.cwd()}; in a study file, from the file's folder)")
    if study.predictions:
        return plan
    check_length(study.sequence_length)
    center_bounds(study.sequence_length, study.center_window)
    source = study.element_source
    if source == "auto":
        source = "sequences" if study.sequences else ("seq16" if study.count_format == "gse84888" else None)
        if source is None:
            raise ConfigError("a count table needs element sequences (sequences=...) or a predictions table")
    if source == "sequences" and not study.sequences:
        raise ConfigError("element_source='sequences' needs sequences (a FASTA or table)")
    if source in ("seq16", "reference") and study.count_format != "gse84888":
        raise ConfigError(f"element_source={source!r} needs GSE84888 construct names (coordinates, 16-mer)")
    if (source == "reference" or study.backbone == "reference") and not study.reference_fasta:
        raise ConfigError("genomic flanks / reference elements need reference_fasta")
    plan.update(source=source, bin_size=choose_bin_size(study.sequence_length, study.center_window),
                outputs=[o.upper() for o in dict.fromkeys(study.outputs)])
    return plan


def _select_tracks(backend, organism: str, outputs: list[str], terms: list[str]) -> pl.DataFrame:
    """The served tracks the request will return; an output without any is a ConfigError."""
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


def _cluster_column(study: MPRAStudy, frame: pl.DataFrame) -> str:
    if study.cluster_by == "input" or (study.cluster_by == "auto" and "locus_id" not in frame.columns):
        return "input_id"
    if "locus_id" not in frame.columns:
        raise ConfigError("cluster_by='locus' needs a locus (GSE84888 names or a locus_id column)")
    return "locus_id"


def _predict_block(built, rows: pl.DataFrame, *, backend, organism: str, terms: list[str], outputs: list[str],
                   study: MPRAStudy, bin_size: int, key: str, rec, label: str):
    """Predict, aggregate and attach to ``rows`` (m:1 on input_id). Returns
    (frame, per_track, aggregate columns, prediction summary)."""
    from tasks.mpra import predict_inputs

    tracks = _select_tracks(backend, organism, outputs, terms)
    run = predict_inputs(built.inputs, outputs, backend=backend, ontology_terms=terms, organism=organism,
                         bin_size=bin_size, concurrency=study.concurrency, key=f"{key}-{label}")
    per_track, wide = aggregate_run(run, length=study.sequence_length, center_window=study.center_window,
                                    outputs=outputs)
    aggs = [c for c in wide.columns if c != "input_id"]
    frame = checked_join(rows, wide, on="input_id", how="left", validate="m:1",
                         what=f"constructs x {label} predictions")
    failed = frame.filter(pl.all_horizontal([pl.col(c).is_null() for c in aggs]))
    if failed.height:
        reasons = {r["seq_id"]: f"{r['error_code']}: {r['message']}" for r in run.failures.iter_rows(named=True)}
        codes = {r["seq_id"]: r["error_code"] for r in run.failures.iter_rows(named=True)}
        tries = {r["seq_id"]: r["attempts"] for r in run.failures.iter_rows(named=True)}
        rec.drops.add_frame(failed.select("row_id", *(c for c in ("source_file", "source_row") if c in frame.columns),
                                          pl.col("input_id").replace_strict(reasons, default="no prediction")
                                          .alias("detail"),
                                          pl.col("input_id").replace_strict(codes, default=None, return_dtype=pl.Utf8)
                                          .alias("error_code"),
                                          pl.col("input_id").replace_strict(tries, default=None, return_dtype=pl.Int64)
                                          .alias("attempts")),
                            stage=f"predict:{label}", reason="prediction_failed")
        frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in aggs]))
    summary = {**run.summary_stats, "organism": organism, "ontology_terms": terms, "outputs": outputs,
               "bin_size": run.bin_size, "n_tracks": {ot: t.height for ot, t in run.tracks.items()},
               "tracks": tracks.select([c for c in ("output_type", "track_name", "track_strand", "ontology_curie",
                                                    "biosample_name") if c in tracks.columns]).to_dicts()
               if tracks.height else []}
    return frame, per_track, aggs, summary


@flow(name="mpra-benchmark", flow_run_name=run_name("mpra"),
      log_prints=True, persist_result=True, result_storage=RESULT_STORAGE,
      task_runner=task_runner_from_env())
def mpra_benchmark(study: MPRAStudy, backend: BackendConfig = BackendConfig()) -> dict[str, Any]:
    """Benchmark sequence predictions against MPRA activity (see the module docstring)."""
    from agval.mpra.analysis import (effect_statistics, headline, light_statistics, robustness, strata_tables,
                                     track_statistics)
    from agval.mpra.effects import effects_long, wt_mutant_effects
    from agval.scoring.precomputed import table_provenance
    from agval.mpra.predictions import attach_predictions, load_predictions, measured_from_predictions
    from agval.mpra.measurements import activity_summary
    from agval.report import Figure
    from tasks.mpra import build_inputs, figures, load_activity, statistics
    from tasks.report import publish_report

    log = get_run_logger()
    plan = check_study(study)                      # refusals before any call
    key = f"mpra-{study.name}"
    session = contextlib.nullcontext((None, None)) if plan["precomputed"] else backend_session(backend)
    with session as (model, _spec):
        # a predictions table's provenance comes from the table itself (data_source / simulated / metadata)
        provenance = table_provenance(study.predictions) if study.predictions and model is None else None
        simulated = (bool(study.predictions_simulated) or (provenance or {}).get("provenance") == "simulated"
                     if model is None else bool(model.simulated))
        inputs = {f"counts:{i}": p for i, p in enumerate(study.counts)}
        inputs.update(sequences=study.sequences, predictions=study.predictions)
        if study.backbone == "reference" or study.element_source == "reference":
            inputs["reference_fasta"] = study.reference_fasta
        rec = start_run(study.name, "mpra-benchmark",
                        {"study": study.model_dump(mode="json"), "backend": backend.model_dump(mode="json")},
                        simulated=simulated, seed=study.seed, inputs=inputs)
        with rec:
            if model is not None:
                record_model(rec, model)
            warn_texts: list[str] = []
            metrics: dict[str, Any] = {"study": study.name, "simulated": simulated}
            if provenance is not None:
                metrics["predictions_provenance"] = provenance
                rec.note("predictions_provenance", provenance)

            # 1. measured activity ------------------------------------------------------
            if study.counts:
                meas = load_activity(study.counts, count_format=study.count_format, pools=study.pools,
                                     build=study.build, pseudocount=study.pseudocount, min_dna=study.min_dna,
                                     min_tags=study.min_tags, aggregate=study.aggregate, key=key)
                rec.drops.extend(meas.drops)
                measured, metrics["activity"] = meas.table, meas.summary
                log.info("activity: %s constructs after filters %s", meas.table.height,
                         meas.summary["filters"]["dropped"])
            else:
                measured = None

            # 2-4. model inputs, predictions, aggregates ---------------------------------
            per_track = None
            sens: dict[str, Any] | None = None
            if plan["precomputed"]:
                preds, pkey, aggs = load_predictions(study.predictions, key=study.predictions_key,
                                                     columns=study.prediction_columns,
                                                     measured_column=study.measured_column)
                if measured is None:
                    frame = measured_from_predictions(preds, key=pkey, input_column=study.input_column)
                    metrics["activity"] = {"source": "predictions table", "measured_column": study.measured_column,
                                           **activity_summary(frame)}
                else:
                    frame = attach_predictions(measured, preds.drop("log2_ratio", strict=False), key=pkey,
                                               aggregates=aggs, drops=rec.drops, input_column=study.input_column)
                metrics["predictions"] = {"path": "precomputed", "key": pkey, "aggregates": aggs,
                                          "n_prediction_rows": preds.height}
            else:
                built = build_inputs(
                    measured, source=plan["source"], sequences_path=study.sequences,
                    reference_fasta=study.reference_fasta, backbone=study.backbone,
                    backbone_seed=study.backbone_seed, element_orientation=study.element_orientation,
                    coordinate_base=study.coordinate_base, length=study.sequence_length,
                    center_window=study.center_window, n_policy=study.n_policy, drops=rec.drops, key=key)
                rows = checked_join(measured, built.table, on="row_id", how="inner", validate="1:1",
                                    what="constructs x model inputs")
                metrics["model_inputs"] = {**built.summary, "element_source": plan["source"]}
                rec.note("model_inputs", metrics["model_inputs"])
                frame, per_track, aggs, psum = _predict_block(
                    built, rows, backend=model, organism=study.organism, terms=study.ontology_terms,
                    outputs=plan["outputs"], study=study, bin_size=plan["bin_size"], key=key, rec=rec,
                    label="primary")
                metrics["predictions"] = {"path": "model", **psum}
                rec.note("predictions", {k: v for k, v in psum.items() if k != "tracks"})
                rec.write_table("model_inputs", built.inputs.drop("sequence"))
                if study.sensitivity_ontology_terms:
                    sframe, sper, saggs, ssum = _predict_block(
                        built, rows, backend=model, organism=study.sensitivity_organism,
                        terms=study.sensitivity_ontology_terms, outputs=plan["outputs"], study=study,
                        bin_size=plan["bin_size"], key=key, rec=rec, label="sensitivity")
                    sens = {"frame": sframe, "aggregates": saggs, "summary": ssum, "per_track": sper}
            primary = study.primary_aggregate or (f"{assay_name(plan['outputs'][0])}_center" if "outputs" in plan
                                                  else "dnase_center")
            if primary not in aggs or primary.endswith(STRAND_SUFFIXES):
                primary = next(a for a in aggs if not a.endswith(STRAND_SUFFIXES))

            # 5. statistics ------------------------------------------------------------------
            if frame.height < 3:
                raise GuardError(f"only {frame.height} constructs have both a measurement and a prediction; "
                                 "see dropped.parquet for where the others went")
            cluster_col = _cluster_column(study, frame)
            pr = pseudo_replication_check(frame["input_id"].to_numpy(), warn_ratio=study.warn_ratio)
            metrics["inputs"] = {"n_rows": pr["n_rows"], "n_distinct_inputs": pr["n_distinct_inputs"],
                                 "rows_per_input": pr["ratio"], "pseudo_replication_warning": pr["warning"],
                                 "message": pr["message"], "cluster_column": cluster_col,
                                 "n_clusters": int(frame[cluster_col].n_unique()),
                                 "n_loci": int(frame["locus_id"].n_unique()) if "locus_id" in frame.columns else None}
            if pr["warning"]:
                log.warning(pr["message"])
                warnings.warn(pr["message"], PseudoReplicationWarning, stacklevel=1)
                warn_texts.append(pr["message"])
            stat_kw = dict(measured="log2_ratio", input_col="input_id", cluster_col=cluster_col,
                           n_boot=study.n_boot, n_perm=study.n_perm, seed=study.seed, warn_ratio=study.warn_ratio)
            pooled = [a for a in aggs if not a.endswith(STRAND_SUFFIXES)]
            by_strand = [a for a in aggs if a.endswith(STRAND_SUFFIXES)]
            stats = statistics(frame, pooled, **stat_kw)
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
            if per_track is not None and per_track.height:
                tstats = track_statistics(frame, per_track, cluster_col=cluster_col, n_boot=min(study.n_boot, 500),
                                          seed=study.seed)
                metrics["tracks"] = tstats.to_dicts()
                rec.write_table("track_aggregates", per_track)
                rec.write_table("track_statistics", tstats)
                tables["Per-track statistics"] = tstats
            eff_long = None
            if {"modification", "locus_id"} <= set(frame.columns):
                grouped = frame.with_columns(pl.format("{}|{}", pl.col("prefix").fill_null(""), "locus_id")
                                             .alias("wt_group")) if "prefix" in frame.columns else \
                    frame.with_columns(pl.col("locus_id").alias("wt_group"))
                eff = wt_mutant_effects(grouped, ["log2_ratio", *aggs], group="wt_group", drops=rec.drops)
                eff = eff.join(grouped.select("row_id", "locus_id"), on="row_id", how="left") \
                    if "locus_id" not in eff.columns else eff
                if eff.height:
                    metrics["effects"] = effect_statistics(eff, pooled, cluster_col="locus_id", n_boot=study.n_boot,
                                                           n_perm=study.n_perm, seed=study.seed)
                    eff_long = effects_long(eff, pooled)
                    same = int(eff["same_input"].sum()) if "same_input" in eff.columns else 0
                    if same:
                        msg = (f"{same} of {eff.height} mutant constructs are the same model input as their wild "
                               "type: the model never saw those edits (their predicted effect is exactly 0)")
                        log.warning(msg)
                        warn_texts.append(msg)
                    rec.write_table("effects", eff.drop([c for c in ("tf",) if c in eff.columns]))
            if "dna" in frame.columns and study.robustness_min_dna:
                rob = robustness(frame, primary, min_dna=study.robustness_min_dna)
                metrics["robustness"] = rob.to_dicts()
                tables["Robustness to count filters (primary aggregate)"] = rob
            if sens is not None:
                sstats = statistics(sens["frame"], [a for a in sens["aggregates"] if not a.endswith(STRAND_SUFFIXES)],
                                    **stat_kw)
                metrics["sensitivity"] = {"label": "cross-species sensitivity run (not the primary result)",
                                          "organism": study.sensitivity_organism,
                                          "ontology_terms": study.sensitivity_ontology_terms,
                                          "predictions": {k: v for k, v in sens["summary"].items() if k != "tracks"},
                                          "aggregates": sstats}
                rec.write_table("sensitivity_constructs", sens["frame"].drop(
                    [c for c in ("tf",) if c in sens["frame"].columns]))

            # 6. tables, figures, report ------------------------------------------------------
            rec.write_table("constructs", frame)
            for k, v in strata.items():
                rec.write_table(f"strata_{k}", v)
                tables[f"Strata by {k} ({primary}, min size {study.strata_min_size})"] = v
            figs = []
            if study.figures != "none":
                pool = pooled
                figs = figures(frame, str(rec.plots_dir), aggregates=pool, primary=primary, stats=stats,
                               tf_table=strata.get("tf"), effects_long=eff_long,
                               scatter=pool if study.figures == "all" else [primary],
                               distributions=study.figures == "all")
            head = headline(primary, stats[primary])
            metrics["headline"] = head
            summary_table = pl.DataFrame([{"aggregate": a, **{k: s.get(k) for k in (
                "n", "n_distinct_inputs", "n_clusters", "pearson_r", "pearson_ci_low", "pearson_ci_high",
                "pearson_ci_low_naive", "pearson_ci_high_naive", "pearson_perm_p", "pearson_perm_q", "spearman_rho",
                "spearman_p",
                "auroc", "threshold", "n_positive", "n_negative", "within_pearson_r")}} for a, s in stats.items()])
            tables = {"Statistics per aggregate": summary_table, **tables}
            pub = _published(study, stats, simulated)
            if pub is not None:
                from agval.published import published_table, published_title

                metrics["published"] = pub
                tables = {"Statistics per aggregate": summary_table, published_title(pub): published_table(pub),
                          **{k: v for k, v in tables.items() if k != "Statistics per aggregate"}}
            if metrics.get("aggregates_by_strand"):
                strand_table = pl.DataFrame([{"aggregate": a, **v} for a, v in metrics["aggregates_by_strand"].items()])
                tables["Per-strand aggregates (stranded tracks reported separately)"] = strand_table
                rec.write_table("statistics_by_strand", strand_table)
            rec.write_table("statistics", summary_table)
            sections = _sections(study, plan, metrics, primary, cluster_col)
            publish_report(rec, kind="mpra", title=f"MPRA benchmark: {study.name}", key=key, metrics=metrics,
                           figures=[Figure(path=Path(p), caption=c) for p, c in figs],
                           tables=tables, sections=sections, warnings=warn_texts,
                           summary_md=f"**{head}**\n\n{metrics['inputs']['message']}")
            log.info(head)
    return {"run_folder": str(rec.folder), "simulated": simulated, "metrics": metrics, "headline": head,
            "warnings": warn_texts}


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


FLOW = mpra_benchmark
