"""The SDK boundary (issue 14): every private reach-in into the AlphaGenome SDK lives in
agval/sdk.py, and is checked here against the installed SDK version."""

from __future__ import annotations

import importlib.metadata
import pathlib

import pytest

from agval import sdk

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRIVATE = ("_read_tensor_chunks", "__wrapped__")


def test_the_installed_sdk_is_the_version_the_adapter_was_written_for():
    """An SDK upgrade fails here first: re-check each reach-in below, then bump SDK_VERSION."""
    assert importlib.metadata.version("alphagenome") == sdk.SDK_VERSION


def test_the_private_parts_still_exist_and_behave():
    from alphagenome.models import dna_client
    from alphagenome.protos.v1 import dna_model_service_pb2 as pb

    for name in ("score_variant", "predict_sequence"):
        method = getattr(dna_client.DnaClient, name)
        assert hasattr(method, "__wrapped__") and sdk.unretried(method) is method.__wrapped__
    assert sdk.unretried(len) is len
    # two chunks are read, the third message stays in the stream
    msgs = [pb.ScoreVariantResponse(tensor_chunk={"data": b"ab"}), pb.ScoreVariantResponse(tensor_chunk={"data": b"c"}),
            pb.ScoreVariantResponse(tensor_chunk={"data": b"z"})]
    it = iter(msgs)
    assert [c.data for c in sdk.read_tensor_chunks(it, 2)] == [b"ab", b"c"]
    assert next(it).tensor_chunk.data == b"z"
    with pytest.raises(ValueError, match="end of stream"):
        list(sdk.read_tensor_chunks(iter([]), 1))


@pytest.mark.parametrize("address, local", [
    ("127.0.0.1:50051", True), ("localhost:1", True), ("[::1]:9", True), ("dns:///127.0.0.1:5", True),
    ("dns:///gdmscience.googleapis.com:443", False), ("10.0.0.2:50051", False), ("example.org:1", False)])
def test_loopback_rule(address, local):
    assert sdk.is_loopback(address) is local


def test_no_other_module_reaches_into_the_sdk():
    offenders = [p.relative_to(ROOT).as_posix() for pkg in ("agval", "flows", "tasks", "standins", "deployments")
                 for p in (ROOT / pkg).rglob("*.py")
                 if p.name != "sdk.py" and any(name in p.read_text() for name in PRIVATE)]
    assert offenders == []
