"""The Kubernetes API edge: the only package that imports kubernetes_asyncio.

`connect` builds an ApiClient from a kubeconfig or the in-cluster service account;
`request_json` is a raw JSON call (objects stay plain dicts, no generated models);
`Informer` lists and watches one resource, resuming from the last resourceVersion and
relisting after 410 Gone, with capped exponential backoff between failures; `Informers`
feeds several into one `Store` (objects by kind and key); `Obj`/`Meta` name an object's
fields; `ApiResource`/`resource_for` build API paths from tfcore.model.kinds.
"""

from tfcore.k8s.client import KubeClient, connect, request_json
from tfcore.k8s.errors import ApiError, Conflict, Gone, KubeError, NotFound
from tfcore.k8s.informer import Event, Informer, Resource
from tfcore.k8s.resources import ApiResource, resource_for
from tfcore.k8s.store import Change, Informers, Store
from tfcore.model.view import Meta, Obj, OwnerRef, key_of, split_key

__all__ = [
    "ApiError",
    "ApiResource",
    "Change",
    "Conflict",
    "Event",
    "Gone",
    "Informer",
    "Informers",
    "KubeClient",
    "KubeError",
    "Meta",
    "NotFound",
    "Obj",
    "OwnerRef",
    "Resource",
    "Store",
    "connect",
    "key_of",
    "request_json",
    "resource_for",
    "split_key",
]
