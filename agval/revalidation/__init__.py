"""Re-validation when the model changes: plain functions (no Prefect).

* :mod:`.store`: the fingerprint store, the baseline fingerprint per (backend, model
  version) under ``agval.paths.state_dir()/revalidation``, plus a log of every check;
* :mod:`.detect`: change detection between two fingerprints, naming what differed
  (``sdk``, ``proto``, ``metadata``, ``canary``, ``model_version``, ``other``);
* :mod:`.history`: the history table (one row per run x metric) and its atomic append;
* :mod:`.compare`: per-metric differences between two run folders with paired bootstrap
  CIs on the same variants (which table and columns per study kind: :data:`.compare.PAIRED_SPECS`);
* :mod:`.plots`: each metric across model versions over time (plotnine);
* :mod:`.report`: the comparison report folder and the index page of every run.

The Prefect side is ``flows/revalidate.py`` (``watch_model``, ``revalidate``, ``compare``)
and ``deployments/``.
"""

from agval.revalidation.detect import ChangeReport, detect_change
from agval.revalidation.history import (HISTORY_FORMAT, append_rows, append_run, history_path, read_history,
                                        rows_from_run, sync_history)
from agval.revalidation.store import FingerprintStore

__all__ = ["FingerprintStore", "ChangeReport", "detect_change", "HISTORY_FORMAT", "append_rows", "append_run",
           "history_path", "read_history", "rows_from_run", "sync_history"]
