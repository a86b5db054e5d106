"""agval: validate genomic AI variant-effect predictions against experiments.

The public surface is small on purpose:

* :mod:`agval.coords`  - the variant type and its coordinate convention (1-based, hg38).
* :mod:`agval.errors`  - named errors (every bad input names file, column and row).
* :mod:`agval.runs`    - the run record every flow writes (manifest, metrics, drops).

Everything else is implementation, reached through ``flows`` (Prefect flows),
``tasks`` (Prefect tasks) or the ``agval`` command line.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("agval")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
