"""QTL validation as plain functions (no Prefect): study table -> harmonized rows ->
scores -> selected tracks -> statistics -> figures -> report (STUDIES.md §1).

Modules, in pipeline order:

* :mod:`agval.qtl.study` - :class:`QTLStudy`, the study description (flow parameter and
  ``[study]`` section of a study file);
* :mod:`agval.qtl.load` - :func:`load_study_table` (GSE86886, GSE116193, GTEx v8, generic)
  with the bootstrap cluster of every row;
* :mod:`agval.qtl.harmonize` - rsID lookup route, coordinates route, precomputed
  orientation; ``beta_alt`` (corrected) and ``beta_seed`` (original); guards;
* :mod:`agval.qtl.modality` - :class:`Analysis` and :func:`plan_analyses`: scorers and
  track selections per kind and mode, as data;
* :mod:`agval.qtl.analysis` - track selection, pooling, statistics, comparison, headline;
* :mod:`agval.qtl.precomputed` - the predictions table of the precomputed path;
* :mod:`agval.qtl.plots` - the figures;
* :mod:`agval.qtl.pipeline` - :func:`analyse`, :func:`build_metrics`, :func:`run_plain`.

The two modes:

* ``original`` - the seed's choices: mean **quantile** score over every track of the
  modality's scorers for the seed's biosample (caQTL: 8 CL:0000624 tracks incl.
  repressive marks; hQTL: all 10 CL:0000236 histone marks), hQTL beta negated;
* ``corrected`` - **raw** scores of the matched tracks (caQTL ATAC, DNASE per track and
  pooled; hQTL the row's own mark on GM12878, CL:0000236 as sensitivity; eQTL the
  tissue's RNA_SEQ for the row's gene), beta oriented by the convention declared a priori,
  direction claims on orientation-verified rows only.
"""

from agval.qtl.modality import Analysis, plan_analyses, scorers_for
from agval.qtl.study import QTLStudy

__all__ = ["QTLStudy", "Analysis", "plan_analyses", "scorers_for"]
