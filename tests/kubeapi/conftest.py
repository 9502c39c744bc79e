"""The emulator's own tests get its fixtures directly (the suite-wide plugin line lives in tests/conftest.py)."""

from tests.kubeapi.fixtures import kube

__all__ = ["kube"]
