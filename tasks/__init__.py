"""Prefect tasks: thin wrappers over agval's plain functions (retries, caching, artifacts).

The plain functions live in ``agval.*`` and import nothing from Prefect; tests call them
directly. Tasks add what orchestration needs and nothing else.
"""

from agval import prefect_env as _prefect_env

_prefect_env.configure()
