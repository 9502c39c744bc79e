"""The Kubernetes API edge: the only package that imports kubernetes_asyncio.

`connect` builds an ApiClient from a kubeconfig or the in-cluster service account;
`request_json` is a raw JSON call (objects stay plain dicts, no generated models);
`Informer` lists and watches one resource, resuming from the last resourceVersion and
relisting after 410 Gone, with capped exponential backoff between failures.
"""

from tfcore.k8s.client import KubeClient, connect, request_json
from tfcore.k8s.errors import ApiError, Conflict, Gone, KubeError, NotFound
from tfcore.k8s.informer import Event, Informer, Resource

__all__ = [
    "ApiError",
    "Conflict",
    "Event",
    "Gone",
    "Informer",
    "KubeClient",
    "KubeError",
    "NotFound",
    "Resource",
    "connect",
    "request_json",
]
