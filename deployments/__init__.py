"""Deployments of agval's flows: the config file (``agval.toml``, :mod:`.config`), serving
everything with ``prefect.serve`` (:mod:`.serve`, ``agval serve``), the equivalent
``prefect.yaml`` for a ``process`` work pool, and a local Prefect server (:mod:`.server`)."""
