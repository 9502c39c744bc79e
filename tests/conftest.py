"""Shared test settings."""

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# The Kubernetes API emulator (`kube` fixture) for tests that talk to a cluster.
pytest_plugins = ["tests.kubeapi.fixtures"]

# Two shared cores in CI: wall-clock deadlines would make property tests flaky, not stricter.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI must be reproducible: the same examples every run, so a red build means a change broke
# something. Developers' runs stay random and keep finding new cases.
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_per_module() -> Iterator[None]:
    """Collect cyclic garbage at the end of every test module, so that an object a module leaks
    (an unclosed file in a reference cycle, say) fails that module under `-W error`, every run,
    instead of whichever later test happens to trigger a full collection."""
    yield
    gc.collect()
