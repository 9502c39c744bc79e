"""Shared test settings."""

from hypothesis import HealthCheck, settings

# The Kubernetes API emulator (`kube` fixture) for tests that talk to a cluster.
pytest_plugins = ["tests.kubeapi.fixtures"]

# Two shared cores in CI: wall-clock deadlines would make property tests flaky, not stricter.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")
