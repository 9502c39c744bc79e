"""Shared test settings."""

from hypothesis import HealthCheck, settings

# Two shared cores in CI: wall-clock deadlines would make property tests flaky, not stricter.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")
