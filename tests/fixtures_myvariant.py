"""Stand-in myvariant fixtures (owned by the allele-lookup component).

* ``myvariant_world`` (session): a tiny world folder (``genome.fa``, ``variants.parquet``,
  ``dbsnp.vcf.gz``, ``absent_rsids.txt``) with ~12,000 rsIDs, built once
  (:func:`standins.myvariant.build_mini_world`; independent of the full synthetic world).
* ``myvariant_standin``: the in-process stand-in serving ``myvariant_world`` (one server
  per session); each test gets it with an empty request log and no faults configured.
"""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="session")
def myvariant_world(tmp_path_factory):
    from standins.myvariant import build_mini_world

    return build_mini_world(tmp_path_factory.mktemp("myvariant-world"), n_sites=12_000, seed=11)


@pytest.fixture(scope="session")
def _myvariant_server(myvariant_world):
    from standins.myvariant.server import serve

    handle = serve(myvariant_world)
    yield handle
    handle.stop()


def _reset(handle) -> None:
    from standins.myvariant.server import MyVariantConfig

    fresh = MyVariantConfig()
    for f in dataclasses.fields(fresh):
        setattr(handle.config, f.name, getattr(fresh, f.name))
    handle.clear()


@pytest.fixture
def myvariant_standin(_myvariant_server):
    _reset(_myvariant_server)
    yield _myvariant_server
    _reset(_myvariant_server)
