"""ApiClient construction and raw JSON requests."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from tfcore.k8s.errors import ApiError, KubeError

KubeClient = client.ApiClient


async def connect(kubeconfig: str | None = None, *, context: str | None = None) -> KubeClient:
    """An ApiClient: in-cluster when running in a pod and no kubeconfig is given, else the kubeconfig."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise KubeError(f"no usable Kubernetes configuration: {exc}") from None
    return client.ApiClient(configuration)


async def request_json(
    api: KubeClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float | None = 30.0,
) -> Any:
    """One call; the decoded JSON body, or ApiError with the server's Status."""
    response = await raw_request(api, method, path, query=query, body=body, content_type=content_type, timeout=timeout)
    async with response:
        data = await response.read()
        return _decoded(response.status, data)


async def raw_request(
    api: KubeClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float | None = 30.0,
) -> aiohttp.ClientResponse:
    """The open response (for watches); the caller reads and closes it."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    try:
        response: aiohttp.ClientResponse = await api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise KubeError(f"{method} {path}: {exc or type(exc).__name__}") from None
    return response


def _decoded(status: int, data: bytes) -> Any:
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if not 200 <= status <= 299:
        raise ApiError.of(status, body)
    return body
