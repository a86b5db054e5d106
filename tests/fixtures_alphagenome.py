"""Stand-in AlphaGenome fixtures (owned by the stand-in component). SIMULATED service.

* ``alphagenome_standin`` (session): the stand-in served in-process on an ephemeral
  127.0.0.1 port over the session's small world (``world_dir``). Backgrounds are kept
  small so quantiles are cheap (coarser than the CLI's defaults; still in [-1, 1]).
  ``.address``, ``.servicer.calls``, ``.servicer.reset()``, ``.stop()``.
* ``standin_fresh`` (function): the same server with its call log and fail-first
  attempt counters cleared before the test.
* ``sdk_channel`` (session): a real gRPC channel with ``dna_client.create()``'s options.
* ``sdk_client`` (session): the unmodified ``DnaClient`` on that channel.
* ``make_sdk_client`` (session): factory ``(model_version=None, metadata=())`` -> ``DnaClient``
  (fault headers go in ``metadata``; ``DnaClient`` attaches them to every call).
* ``atlas_client`` (session): the SDK's ``AtlasClient`` on the same address.
* ``instant_backoff`` (function): the SDK's ``retry_rpc`` backoff sleeps return at once;
  yields the list of requested sleep durations. Only the SDK module's ``time`` is
  patched; the stand-in's latency uses ``Event.wait`` and is unaffected.
"""

from __future__ import annotations

import pytest

#: the channel options ``alphagenome.models.dna_client.create()`` uses
CREATE_CHANNEL_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1))
#: quantile background sizes for the test server (the CLI default is 128 / 32)
TEST_BACKGROUND = {"background_size": 48, "heavy_background_size": 12}


def standin_test_config(**overrides):
    """A :class:`StandinConfig` with the test suite's small backgrounds (plus overrides)."""
    from standins.alphagenome import StandinConfig

    return StandinConfig(**{**TEST_BACKGROUND, **overrides})


def sdk_channel_for(address: str):
    import grpc

    return grpc.insecure_channel(address, options=list(CREATE_CHANNEL_OPTIONS))


@pytest.fixture(scope="session")
def alphagenome_standin(world_dir):
    from standins.alphagenome import serve

    handle = serve(world_dir, port=0, config=standin_test_config())
    try:
        yield handle
    finally:
        handle.stop(grace=0.2)


@pytest.fixture
def standin_fresh(alphagenome_standin):
    alphagenome_standin.servicer.reset()
    return alphagenome_standin


@pytest.fixture(scope="session")
def sdk_channel(alphagenome_standin):
    ch = sdk_channel_for(alphagenome_standin.address)
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def make_sdk_client(sdk_channel):
    from alphagenome.models import dna_client

    def make(model_version=None, metadata=()):
        return dna_client.DnaClient(channel=sdk_channel, model_version=model_version,
                                    metadata=[("x-goog-api-key", "test-key"), *metadata])

    return make


@pytest.fixture(scope="session")
def sdk_client(make_sdk_client):
    return make_sdk_client()


@pytest.fixture(scope="session")
def atlas_client(sdk_channel):
    from alphagenome.atlas.atlas import AtlasClient
    from alphagenome.protos import atlas_service_pb2_grpc

    return AtlasClient(atlas_service_pb2_grpc.AtlasServiceStub(sdk_channel), metadata=[("x-goog-api-key", "test-key")])


class _InstantTime:
    """Stands in for the ``time`` module inside the SDK's ``dna_client``: ``sleep`` returns at once."""

    def __init__(self, real, sleeps: list):
        self._real = real
        self._sleeps = sleeps

    def sleep(self, seconds: float) -> None:
        self._sleeps.append(seconds)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def instant_backoff(monkeypatch):
    import time

    from alphagenome.models.v1 import dna_client as v1

    sleeps: list[float] = []
    monkeypatch.setattr(v1, "time", _InstantTime(time, sleeps))
    return sleeps
