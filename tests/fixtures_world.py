"""World fixtures (owned by the synthetic-world component). SIMULATED data.

* ``world_dir`` (session): the small world, seed 7, built once into a temporary folder.
* ``world`` (session): that world loaded (:class:`standins.world.World`).
"""

from __future__ import annotations

import pytest

WORLD_SEED = 7


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory):
    from standins.world import build_world

    return build_world(tmp_path_factory.mktemp("world") / "small-seed7", seed=WORLD_SEED, size="small")


@pytest.fixture(scope="session")
def world(world_dir):
    from standins.world import World

    w = World.load(world_dir)
    yield w
    w.close()
