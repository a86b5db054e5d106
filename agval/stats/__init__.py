"""Statistics used by every study flow (plain numpy/scipy/polars, no Prefect).

Modules:

* :mod:`agval.stats.correlation` - Spearman/Pearson with t-approximation p-values, the
  linear fit (slope, intercept, R^2), magnitude correlation; pairwise-complete NaN drop.
* :mod:`agval.stats.resampling` - cluster bootstrap CIs, paired bootstrap of a difference
  between two predictors, cluster and within-group permutation tests (seeded, vectorised).
* :mod:`agval.stats.concordance` - sign concordance with exact binomial tests and a
  Wilson interval.
* :mod:`agval.stats.qtl` - the QTL statistics bundle and the per-track table.
* :mod:`agval.stats.twas` - TWAS/fine-mapping concordance Q1-Q4.
* :mod:`agval.stats.mpra` - MPRA benchmark statistics (AUROC with a median split, strata,
  pseudo-replication check, cluster-aware inference).

Every function taking randomness requires an explicit ``seed``.
"""

from agval.stats.concordance import binomial_p, sign_concordance, wilson_interval
from agval.stats.correlation import (
    correlation_p_value,
    correlation_summary,
    linear_fit,
    magnitude_spearman,
    pearson,
    spearman,
)
from agval.stats.resampling import (
    STATISTICS,
    bootstrap_ci,
    cluster_permutation_test,
    paired_bootstrap_difference,
    permutation_p,
    within_group_permutation_indices,
    within_group_permutation_test,
    within_group_permute,
)

__all__ = [
    "STATISTICS",
    "binomial_p",
    "bootstrap_ci",
    "cluster_permutation_test",
    "correlation_p_value",
    "correlation_summary",
    "linear_fit",
    "magnitude_spearman",
    "paired_bootstrap_difference",
    "pearson",
    "permutation_p",
    "sign_concordance",
    "spearman",
    "wilson_interval",
    "within_group_permutation_indices",
    "within_group_permutation_test",
    "within_group_permute",
]
