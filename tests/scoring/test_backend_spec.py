"""Configuration -> backend once (issue 14): one frozen, picklable spec, one factory, used by
the flows, the model watch and ``agval model fingerprint``."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from agval.config import BackendConfig
from agval.errors import ConfigError
from agval.scoring.spec import BackendSpec


def test_the_spec_is_frozen_picklable_and_hashable():
    s = BackendSpec.from_config(BackendConfig(kind="standin", address="127.0.0.1:1", standin_world="/w"),
                                canary=["chr1:10:A>G"])
    assert pickle.loads(pickle.dumps(s)) == s and hash(s) == hash(pickle.loads(pickle.dumps(s)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.address = "elsewhere"  # type: ignore[misc]
    assert s.canary == ("chr1:10:A>G",)


def test_flows_and_watch_build_the_same_spec_from_the_same_fields():
    """They used to diverge: only the watch passed the canary, only the flows deadline_s."""
    from agval.revalidation.watch import backend_spec as watch_spec
    from flows._common import backend_spec as flow_spec

    cfg = BackendConfig(kind="standin", address="127.0.0.1:5", standin_world="/world", model_version="FOLD_1",
                        deadline_s=30.0)
    from_flow = flow_spec(cfg)
    from_watch = dataclasses.replace(watch_spec("standin", address="127.0.0.1:5", model_version="FOLD_1",
                                                standin_world="/world"), deadline_s=30.0, max_attempts=5)
    assert from_flow == from_watch.engine_spec() == {
        "kind": "alphagenome", "address": "127.0.0.1:5", "model_version": "FOLD_1", "deadline_s": 30.0,
        "world_dir": "/world", "max_attempts": 5}
    with_canary = watch_spec("standin", address="127.0.0.1:5", model_version="FOLD_1", canary=["chr1:2:A>C"])
    assert with_canary.engine_spec()["canary"] == ["chr1:2:A>C"]


def test_atlas_falls_back_to_the_same_alphagenome_spec_and_run_keys_stay_outside():
    cfg = BackendConfig(kind="atlas", address="atlas:1", max_new_calls=10, dry_run=True, max_attempts=2)
    spec = BackendSpec.from_config(cfg).engine_spec()
    assert spec["fallback"] == {"kind": "alphagenome", "address": "atlas:1", "model_version": "ALL_FOLDS",
                                "deadline_s": 120.0, "max_attempts": 2}
    assert spec["max_new_calls"] == 10 and spec["dry_run"] is True and spec["max_attempts"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "standin"}, "needs an address"),
    ({"kind": "precomputed"}, "needs 'precomputed'"),
])
def test_incomplete_specs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BackendSpec(**kwargs).engine_spec()
    with pytest.raises(ConfigError, match="unknown backend kind"):
        BackendSpec(kind="enformer")


def test_one_factory_builds_shared_or_fresh_backends(tmp_path):
    import polars as pl

    table = tmp_path / "scores.parquet"
    pl.DataFrame({"variant_id": ["chr1:10:A>G"], "output_type": ["DNASE"], "raw_score": [0.5]}).write_parquet(table)
    spec = BackendSpec(kind="precomputed", precomputed=str(table), table_model="enformer")
    shared, again, fresh = spec.build(), spec.build(), spec.build(fresh=True)
    assert shared is again and fresh is not shared and fresh.model == "enformer"
