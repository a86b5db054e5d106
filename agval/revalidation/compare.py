"""Comparison of two runs of the same study (two model fingerprints, or two backends).

Two kinds of numbers:

1. **Paired bootstrap differences** on the same variants: for each :class:`PairedSpec`
   of the study kind, the per-row table ``tables/<table>.parquet`` of both run folders is
   joined on the spec's key columns (one-to-one: a key must identify a row in each run),
   and :func:`agval.stats.resampling.paired_bootstrap_difference` (rows sorted by the key,
   so a seed gives the same interval whatever order the tables were written in) gives
   ``stat(pred_a, measured) - stat(pred_b, measured)`` with a percentile CI, resampling
   rows (or the spec's cluster column) **jointly** for both predictors. The measurement
   is taken from run A; a measurement that differs between the runs on the same key is
   an error (the two runs did not see the same data).
2. **Metric deltas**: every numeric metric in both runs' ``metrics.json``, ``a - b`` (the
   same direction as (1); no interval: use (1) for inference).

Which table and columns a study kind uses: :data:`PAIRED_SPECS` (filled from what the
study flows write), or the study module's own ``PAIRED_METRICS`` attribute (a list of
:class:`PairedSpec` or dicts with the same fields), which takes precedence.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from agval.errors import ConfigError, GuardError, InputError
from agval.frames import checked_join
from agval.revalidation.history import flatten_metrics


def _sign_concordance(x, y, w):
    """Weighted share of rows where ``sign(x) == sign(y)``, over rows where both are non-zero."""
    from agval.stats.resampling import _finish, _prep

    (x2, y2, w2), scalar = _prep(x, y, w)
    if w2 is None:
        w2 = np.ones((1, x2.shape[1]))
    sx, sy = np.sign(x2), np.sign(y2)
    valid = (sx != 0) & (sy != 0)
    ww = np.where(valid, w2, 0.0)
    agree = np.where(sx == sy, ww, 0.0).sum(axis=1)
    tot = ww.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _finish(np.where(tot > 0, agree / tot, np.nan), scalar)


def _statistic(name: str):
    from agval.stats.resampling import Statistic

    if name == "sign_concordance":
        return Statistic("sign_concordance", _sign_concordance, 0.5)
    return name


@dataclass(frozen=True)
class PairedSpec:
    """One paired comparison: ``statistic(prediction, measured)`` on ``tables/<table>.parquet``.

    * ``key``: columns identifying a row in both runs (``row_id`` plus e.g. ``analysis``);
    * ``prediction``: the column holding the model's prediction; ``"@a.b"`` reads the column
      name from the run's ``metrics.json`` at ``a.b`` (e.g. the MPRA primary aggregate);
    * ``measured``: the measurement column, or several columns whose **product** is the
      measurement (TWAS: ``z_alt * twas_z``, the mediated direction);
    * ``statistic``: a name of :data:`agval.stats.resampling.STATISTICS` or
      ``sign_concordance`` (share of rows with ``sign(prediction) == sign(measured)``);
    * ``transform``: ``"abs"`` compares magnitudes (``|prediction|`` vs ``|measured|``);
    * ``filter``: ``{column: value}`` equalities selecting the rows (e.g. one mode);
    * ``group_by``: one comparison per distinct value combination (e.g. per analysis or
      assay), named ``<metric>[<value>]``;
    * ``clusters``: resampling unit column (peak, locus, gene, distinct model input;
      ``"@a.b"`` reads it from ``metrics.json``), or None for rows.
    """

    metric: str
    table: str
    key: tuple[str, ...]
    prediction: str
    measured: str | tuple[str, ...]
    statistic: str = "spearman"
    clusters: str | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    transform: str | None = None

    @classmethod
    def coerce(cls, obj: "PairedSpec | Mapping[str, Any]") -> "PairedSpec":
        if isinstance(obj, PairedSpec):
            return obj
        d = dict(obj)
        if isinstance(d.get("measured"), list):
            d["measured"] = tuple(d["measured"])
        for k in ("key", "group_by"):
            if k in d and isinstance(d[k], str):
                d[k] = (d[k],)
            elif k in d:
                d[k] = tuple(d[k])
        return cls(**d)


#: study kind -> paired comparisons (see the module docstring), from the tables the study
#: flows write; a study module's ``PAIRED_METRICS`` overrides it.
#:
#: * ``qtl`` (flows/qtl.py): ``tables/analysis_rows.parquet``, one row per analysis x input
#:   row; ``x`` = the score used by the analysis, ``y`` = beta oriented to the scored ALT,
#:   resampled by ``cluster_id`` (peak / locus); per ``analysis``: Spearman, Pearson and the
#:   magnitude Spearman ``|x|`` vs ``|y|``.
#: * ``twas`` (flows/twas.py): ``tables/triplets.parquet``, one row per (variant, gene,
#:   tissue, assay); Q1 sign concordance of ``score`` with ``z_alt * twas_z`` per ``assay``
#:   pooled over tissues, resampled by ``gene_id``.
#: * ``mpra`` (flows/mpra.py): ``tables/constructs.parquet``, one row per construct;
#:   the primary aggregate (``metrics.primary_aggregate``) vs ``log2_ratio``: Pearson,
#:   Spearman and the median-split AUROC, resampled by ``metrics.inputs.cluster_column``
#:   (locus or distinct model input).
PAIRED_SPECS: dict[str, list[PairedSpec]] = {
    "qtl": [
        PairedSpec("qtl.spearman", "analysis_rows", ("analysis", "row_id"), "x", "y", "spearman",
                   clusters="cluster_id", group_by=("analysis",)),
        PairedSpec("qtl.pearson", "analysis_rows", ("analysis", "row_id"), "x", "y", "pearson",
                   clusters="cluster_id", group_by=("analysis",)),
        PairedSpec("qtl.magnitude_spearman", "analysis_rows", ("analysis", "row_id"), "x", "y", "spearman",
                   clusters="cluster_id", group_by=("analysis",), transform="abs"),
    ],
    "twas": [
        PairedSpec("twas.q1_sign_concordance", "triplets", ("variant_key", "gene_id", "tissue", "assay"), "score",
                   ("z_alt", "twas_z"), "sign_concordance", clusters="gene_id", group_by=("assay",)),
    ],
    "mpra": [
        PairedSpec("mpra.primary.pearson", "constructs", ("row_id",), "@primary_aggregate", "log2_ratio", "pearson",
                   clusters="@inputs.cluster_column"),
        PairedSpec("mpra.primary.spearman", "constructs", ("row_id",), "@primary_aggregate", "log2_ratio",
                   "spearman", clusters="@inputs.cluster_column"),
        PairedSpec("mpra.primary.auroc_median_split", "constructs", ("row_id",), "@primary_aggregate", "log2_ratio",
                   "auroc_median_split", clusters="@inputs.cluster_column"),
    ],
}


def register_specs(kind: str, specs: Iterable[PairedSpec | Mapping[str, Any]]) -> None:
    PAIRED_SPECS[kind] = [PairedSpec.coerce(s) for s in specs]


def specs_for(kind: str, module: Any = None) -> list[PairedSpec]:
    own = getattr(module, "PAIRED_METRICS", None) if module is not None else None
    if own:
        return [PairedSpec.coerce(s) for s in own]
    return list(PAIRED_SPECS.get(kind, []))


COMPARISON_COLUMNS: dict[str, pl.DataType] = {
    "study": pl.String, "metric": pl.String, "statistic": pl.String, "table": pl.String,
    "estimate_a": pl.Float64, "estimate_b": pl.Float64, "difference": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "confidence": pl.Float64, "p_two_sided": pl.Float64,
    "n": pl.Int64, "n_a": pl.Int64, "n_b": pl.Int64, "n_clusters": pl.Int64, "unit": pl.String,
    "n_boot": pl.Int64, "seed": pl.Int64, "note": pl.String,
}


def _load_table(folder: Path, name: str) -> pl.DataFrame:
    p = folder / "tables" / f"{name}.parquet"
    if not p.exists():
        raise InputError(f"run folder has no table {name!r}", file=p)
    return pl.read_parquet(p)


def _metric_ref(folder: Path, ref: str | None) -> str | None:
    """``"@a.b"`` -> the value at ``a.b`` of the run's metrics.json; anything else as is."""
    if not ref or not ref.startswith("@"):
        return ref
    p = folder / "metrics.json"
    node: Any = json.loads(p.read_text()) if p.exists() else {}
    for part in ref[1:].split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, str):
        raise InputError(f"metrics.json has no column name at {ref[1:]!r}", file=p)
    return node


def resolve(spec: PairedSpec, folder_a: Path, folder_b: Path) -> PairedSpec:
    """Replace ``@`` references by the column names the runs recorded (the same in both)."""
    out = {}
    for k in ("prediction", "clusters"):
        va, vb = _metric_ref(folder_a, getattr(spec, k)), _metric_ref(folder_b, getattr(spec, k))
        if va != vb:
            raise GuardError(f"{spec.metric}: the runs used different {k} columns ({va!r} vs {vb!r})")
        out[k] = va
    from dataclasses import replace

    return replace(spec, **out)


def _measured_cols(spec: PairedSpec) -> list[str]:
    return list(spec.measured) if isinstance(spec.measured, tuple) else [spec.measured]


def _select(df: pl.DataFrame, spec: PairedSpec, where: Path) -> pl.DataFrame:
    need = [*spec.key, spec.prediction, *_measured_cols(spec), *spec.group_by, *spec.filter,
            *([spec.clusters] if spec.clusters else [])]
    missing = [c for c in dict.fromkeys(need) if c not in df.columns]
    if missing:
        raise InputError(f"table {spec.table!r} lacks columns {missing} needed for {spec.metric!r}",
                         file=where / "tables" / f"{spec.table}.parquet")
    for col, val in spec.filter.items():
        df = df.filter(pl.col(col) == val)
    cols = _measured_cols(spec)
    measured = pl.col(cols[0]).cast(pl.Float64)
    for c in cols[1:]:
        measured = measured * pl.col(c).cast(pl.Float64)
    pred = pl.col(spec.prediction).cast(pl.Float64)
    if spec.transform == "abs":
        pred, measured = pred.abs(), measured.abs()
    elif spec.transform is not None:
        raise ValueError(f"unknown transform {spec.transform!r}")
    keep = list(dict.fromkeys([*spec.key, *spec.group_by, *([spec.clusters] if spec.clusters else [])]))
    return df.select(*keep, pred.alias("_prediction"), measured.alias("_measured"))


def paired_rows(folder_a: str | Path, folder_b: str | Path, spec: PairedSpec) -> tuple[pl.DataFrame, int, int]:
    """The rows of ``spec`` present in both runs: ``key, group_by, clusters, pred_a, pred_b, measured``."""
    fa, fb = Path(folder_a), Path(folder_b)
    a = _select(_load_table(fa, spec.table), spec, fa)
    b = _select(_load_table(fb, spec.table), spec, fb)
    keys = list(spec.key)
    b_small = b.select(*keys, pl.col("_prediction").alias("pred_b"), pl.col("_measured").alias("_measured_b"))
    joined = checked_join(a.rename({"_prediction": "pred_a"}), b_small, keys, how="inner", validate="1:1",
                          what=f"pairing {spec.metric!r} rows of two runs")
    ma = joined["_measured"].cast(pl.Float64).to_numpy()
    mb = joined["_measured_b"].cast(pl.Float64).to_numpy()
    both = np.isfinite(ma) & np.isfinite(mb)
    if both.any() and not np.allclose(ma[both], mb[both], rtol=1e-9, atol=1e-12):
        raise GuardError(f"{spec.metric}: the two runs have different measurements for the same rows "
                         f"({spec.measured!r}); they did not validate against the same data")
    # a fixed row order (bootstrap replicates index rows): the same two runs give the same CI
    joined = joined.drop("_measured_b").rename({"_measured": "measured"}).sort(keys)
    return joined, a.height, b.height


def _clean(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def compare_runs(folder_a: str | Path, folder_b: str | Path, specs: Sequence[PairedSpec | Mapping[str, Any]], *,
                 n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                 study: str | None = None) -> pl.DataFrame:
    """Paired bootstrap differences ``a - b`` for every spec (and group); one row each."""
    from agval.stats.resampling import paired_bootstrap_difference

    rows = []
    for s in specs:
        spec = PairedSpec.coerce(s)
        try:
            spec = resolve(spec, Path(folder_a), Path(folder_b))
            joined, n_a, n_b = paired_rows(folder_a, folder_b, spec)
        except InputError as e:
            rows.append({"study": study, "metric": spec.metric, "statistic": spec.statistic, "table": spec.table,
                         "note": f"not compared: {e}"})
            continue
        groups = [((), joined)] if not spec.group_by else \
            sorted(joined.group_by(list(spec.group_by), maintain_order=True), key=lambda g: str(g[0]))
        for gkey, g in groups:
            name = spec.metric if not spec.group_by else \
                f"{spec.metric}[{','.join(str(x) for x in (gkey if isinstance(gkey, tuple) else (gkey,)))}]"
            res = paired_bootstrap_difference(
                g["pred_a"].cast(pl.Float64).to_numpy(), g["pred_b"].cast(pl.Float64).to_numpy(),
                g["measured"].cast(pl.Float64).to_numpy(), _statistic(spec.statistic),
                clusters=g[spec.clusters] if spec.clusters else None, n_boot=n_boot, confidence=confidence,
                seed=seed)
            rows.append({"study": study, "metric": name, "statistic": res["statistic"], "table": spec.table,
                         "estimate_a": _clean(res["estimate_1"]), "estimate_b": _clean(res["estimate_2"]),
                         "difference": _clean(res["difference"]), "ci_low": _clean(res["ci_low"]),
                         "ci_high": _clean(res["ci_high"]), "confidence": res["confidence"],
                         "p_two_sided": _clean(res["p_two_sided"]), "n": res["n"], "n_a": n_a, "n_b": n_b,
                         "n_clusters": res["n_clusters"], "unit": res["unit"], "n_boot": res["n_boot"],
                         "seed": res["seed"], "note": None})
    return pl.DataFrame(rows, schema=COMPARISON_COLUMNS) if rows else pl.DataFrame(schema=COMPARISON_COLUMNS)


DELTA_COLUMNS: dict[str, pl.DataType] = {"study": pl.String, "metric": pl.String, "value_a": pl.Float64,
                                         "value_b": pl.Float64, "a_minus_b": pl.Float64}


def metric_deltas(folder_a: str | Path, folder_b: str | Path, *, study: str | None = None) -> pl.DataFrame:
    """Every numeric metric of both runs: ``value_a``, ``value_b``, ``a_minus_b = a - b``
    (one direction for every table of a comparison: A - B, as the paired differences)."""
    def load(f):
        p = Path(f) / "metrics.json"
        return dict(flatten_metrics(json.loads(p.read_text()))) if p.exists() else {}

    ma, mb = load(folder_a), load(folder_b)
    names = sorted(set(ma) | set(mb))
    rows = []
    for n in names:
        va, vb = ma.get(n), mb.get(n)
        rows.append({"study": study, "metric": n, "value_a": va, "value_b": vb,
                     "a_minus_b": (va - vb) if va is not None and vb is not None else None})
    return pl.DataFrame(rows, schema=DELTA_COLUMNS)


# -- choosing the runs to compare -------------------------------------------------------

def resolve_selector(history: pl.DataFrame, sel: str) -> tuple[str, str]:
    """What a comparison side names: ``("folder", path)``, ``("fingerprint", digest)`` or
    ``("backend", label)``. A digest may be a unique prefix (>= 6 characters)."""
    p = Path(sel)
    if (p / "manifest.json").exists():
        return "folder", str(p.absolute())
    if history.height:
        digests = [d for d in history["model_fingerprint"].drop_nulls().unique().to_list() if d.startswith(sel)]
        if len(sel) >= 6 and len(digests) == 1:
            return "fingerprint", digests[0]
        if len(digests) > 1 and len(sel) >= 6:
            raise ConfigError(f"fingerprint prefix {sel!r} is ambiguous: {sorted(d[:16] for d in digests)}")
        backends = history["backend"].drop_nulls().unique().to_list()
        if sel in backends:
            return "backend", sel
        matches = [b for b in backends if b.split(":")[0] == sel or b.endswith(f":{sel}")]
        if len(matches) == 1:
            return "backend", matches[0]
    raise ConfigError(f"{sel!r} is neither a run folder, a recorded model fingerprint nor a backend in the history "
                      "(see `agval compare --list`)")


def latest_two_fingerprints(history: pl.DataFrame) -> tuple[str, str]:
    """The two most recent distinct fingerprints in the history (older, newer)."""
    if history.height == 0:
        raise ConfigError("the history is empty: run some studies first (agval revalidate)")
    # ties in time (second resolution) are broken by the order rows were appended
    last = (history.with_row_index("_order").filter(pl.col("model_fingerprint").is_not_null())
            .group_by("model_fingerprint").agg(pl.col("time").max(), pl.col("_order").max())
            .sort(["time", "_order"], nulls_last=False))
    if last.height < 2:
        raise ConfigError("the history holds a single model fingerprint; nothing to compare yet "
                          "(re-validate after the model changes, or name two backends)")
    d = last["model_fingerprint"].to_list()
    return d[-2], d[-1]


def pick_pairs(history: pl.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> list[dict[str, Any]]:
    """Pairs of run folders to compare: per study (and kind), the latest run on side A and
    the latest on side B. Sides are from :func:`resolve_selector`."""
    runs = (history.with_row_index("_order").drop("metric", "value")
            .unique(["run_id", "run_folder"], keep="first").sort(["time", "_order"], nulls_last=True).drop("_order"))

    def side(sel: tuple[str, str]) -> pl.DataFrame:
        kind, val = sel
        if kind == "folder":
            r = runs.filter(pl.col("run_folder") == val)
            if r.height == 0:  # a folder not (yet) in the history
                from agval.revalidation.history import rows_from_run

                r = rows_from_run(val).drop("metric", "value").unique(["run_id"])
            return r
        col = "model_fingerprint" if kind == "fingerprint" else "backend"
        return runs.filter(pl.col(col) == val)

    ra, rb = side(a), side(b)
    if a[0] == "folder" and b[0] == "folder":
        return [{"study": ra["study"][0] if ra.height else None,
                 "study_kind": ra["study_kind"][0] if ra.height else None,
                 "a": a[1], "b": b[1]}]
    out = []
    la = ra.group_by("study").agg(pl.col("run_folder").last(), pl.col("study_kind").drop_nulls().last())
    lb = rb.group_by("study").agg(pl.col("run_folder").last(), pl.col("study_kind").drop_nulls().last())
    both = la.join(lb, on="study", how="inner", suffix="_b").sort("study")
    for r in both.iter_rows(named=True):
        out.append({"study": r["study"], "study_kind": r["study_kind"] or r["study_kind_b"], "a": r["run_folder"],
                    "b": r["run_folder_b"]})
    return out


def spec_dicts(specs: Sequence[PairedSpec]) -> list[dict[str, Any]]:
    return [{**asdict(s), "filter": dict(s.filter),
             "measured": list(s.measured) if isinstance(s.measured, tuple) else s.measured} for s in specs]
