"""An HTTP-level Kubernetes API emulator for tests (no kube-apiserver can be installed here).

See docs/testing.md for what it reproduces and what it does not.
"""

from tests.kubeapi.emulator import KubeEmulator, chart_crds

__all__ = ["KubeEmulator", "chart_crds"]
