"""Fixtures of the fault matrix (helpers live in ``_faults.py``)."""

from __future__ import annotations

import pytest

from _faults import FakeEndpoint, start_endpoint, stop_endpoint


@pytest.fixture
def fake_endpoint():
    """``fake_endpoint(behaviour)`` starts a scriptable endpoint; all are stopped afterwards."""
    started: list[FakeEndpoint] = []

    def start(behaviour):
        endpoint = start_endpoint(behaviour)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        stop_endpoint(endpoint)
