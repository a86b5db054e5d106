"""Prefect flows, one module per study type plus re-validation.

Importing this package configures Prefect's embedded defaults first
(:func:`agval.prefect_env.configure`), so a flow imported from Python behaves like
one started by the ``agval`` command.
"""

from agval import prefect_env as _prefect_env

_prefect_env.configure()
