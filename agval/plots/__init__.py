"""Figures for the three studies (plotnine, PNG, Agg backend, deterministic).

Each plot function takes polars DataFrames (columns documented in its docstring) and an
output path, writes one PNG (``dpi`` 150 by default, ``width``/``height`` in inches) and
returns its :class:`pathlib.Path`. Empty inputs raise
:class:`~agval.plots._common.EmptyPlotInputError` (a :class:`agval.errors.GuardError`);
missing columns raise :class:`agval.errors.MissingColumnError`.

* :mod:`agval.plots.qtl`  - QTL study (STUDIES.md §1.5; top variants by |value|, P15).
* :mod:`agval.plots.twas` - TWAS / fine-mapping concordance (§2.8).
* :mod:`agval.plots.mpra` - MPRA benchmark (§3.5), with numpy ROC helpers.
"""

from agval.plots._common import DEFAULT_DPI, EmptyPlotInputError, save, theme_agval

__all__ = ["DEFAULT_DPI", "EmptyPlotInputError", "save", "theme_agval"]
