"""The daemon as wired by `tensor-fusion scheduler`: snapshot mode, config reload, extender security."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from daemons.cli import main
from daemons.scheduler.daemon import DEFAULT_CONFIG, Options, build
from tests.daemons.scheduler.cluster import SPEC_POD_YAML, binding_args, extender_args, fleet, gpu_pod
from tfcore.model.errors import ValidationError
from tfcore.web.app import start

CONFIG = DEFAULT_CONFIG  # the config the daemon uses when given none


def _snapshot(tmp_path: Path, objects: list[dict[str, Any]], *, as_list: bool) -> Path:
    path = tmp_path / "cluster.yaml"
    if as_list:
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects}))
    else:
        path.write_text(yaml.safe_dump_all(objects))
    return path


@pytest.mark.parametrize("as_list", [True, False])
async def test_cluster_state_snapshot_mode(tmp_path: Path, as_list: bool) -> None:
    running = gpu_pod("running", uid="r-1", **{"tensor-fusion.ai/gpu-ids": "node-1-gpu-1"})
    running["spec"]["nodeName"] = "node-1"
    state = _snapshot(
        tmp_path,
        [*fleet(), running, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}],
        as_list=as_list,
    )
    daemon = await build(Options(cluster_state=state, port=0, extender_port=0))
    served = await start(daemon.listeners())
    try:
        (_, admin_port), (_, ext_port) = served.addresses()[:2]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{admin_port}/api/allocation") as reply:
                allocations = (await reply.json())["allocations"]
            assert list(allocations) == ["r-1"]
            assert allocations["r-1"]["gpus"][0]["gpu"] == "node-1-gpu-1"
            headers = {"Content-Type": "application/yaml"}
            url = f"http://127.0.0.1:{admin_port}/api/simulate-schedule"
            async with http.post(url, data=SPEC_POD_YAML, headers=headers) as reply:
                assert (await reply.json())["node"] == "node-1"  # compact-first: the node already in use
            async with http.get(f"http://127.0.0.1:{ext_port}/healthz") as reply:
                assert reply.status == 200
    finally:
        await served.close()
        await daemon.close()


async def test_bad_snapshot_names_the_document(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: Node\nmetadata: {}\n---\n- 1\n")
    with pytest.raises(ValidationError) as caught:
        await build(Options(cluster_state=path))
    fields = [p.field for p in caught.value.problems]
    assert fields == [f"{path}[0].metadata.name", f"{path}[1]"]


async def test_config_reload_applies_good_and_keeps_old_on_bad(tmp_path: Path) -> None:
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(CONFIG)
    state = _snapshot(tmp_path, fleet(), as_list=True)
    daemon = await build(Options(cluster_state=state, config=config, config_poll=0.01))
    assert daemon.reloader is not None
    fit = daemon.service.framework.plugins["GPUResourcesFit"]
    assert fit.args.max_worker_per_node == 256  # type: ignore[attr-defined]
    config.write_text(CONFIG.replace("maxWorkerPerNode: 256", "maxWorkerPerNode: 1"))
    assert await daemon.reloader.check()
    fit = daemon.service.framework.plugins["GPUResourcesFit"]
    assert fit.args.max_worker_per_node == 1  # type: ignore[attr-defined]
    config.write_text(CONFIG.replace("maxWorkerPerNode: 256", "maxWorkerPerNode: -3"))
    assert not await daemon.reloader.check()
    assert "maxWorkerPerNode" in (daemon.reloader.last_error or "")
    assert daemon.service.framework.plugins["GPUResourcesFit"] is fit  # the old config stays in force
    # and it is what decides: one worker per node
    pod = gpu_pod("a", uid="a")
    daemon.mirror.service.pending["a"] = pod
    daemon.service.allocator.allocate(
        __import__("tfcore.sched", fromlist=["pod_request"]).pod_request(pod), ["node-0-gpu-0"]
    )
    result = daemon.service.filter(
        __import__("tfcore.sched.extender.wire", fromlist=["ExtenderArgs"]).ExtenderArgs(
            pod=gpu_pod("b", uid="b"), node_names=["node-0", "node-1"]
        )
    )
    assert result.node_names == ["node-1"]
    assert "workers" in result.failed_nodes["node-0"]


def test_extender_refuses_a_public_address_without_client_tls() -> None:
    with pytest.raises(ValidationError, match="not a loopback address"):
        Options(extender_host="0.0.0.0").check()
    with pytest.raises(ValidationError, match="all three"):
        Options(extender_host="0.0.0.0", tls_cert="c.pem").check()
    Options(extender_host="::1").check()


def test_cli_refuses_public_extender_and_prints_kube_scheduler_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scheduler", "--extender-host", "0.0.0.0", "--cluster-state", "x.yaml"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert main(["scheduler", "--print-kube-scheduler-config"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    (extender,) = document["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:8090"
    assert extender["nodeCacheCapable"] is True
    assert extender["bindVerb"] == "bind"
    assert "pluginConfig" not in document["profiles"][0]  # our plugins' args are ours, not kube-scheduler's


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(tmp: Path) -> dict[str, Path]:
    files = {
        n: tmp / f"{n}.pem"
        for n in ("ca", "ca-key", "server", "server-key", "client", "client-key", "other", "other-key")
    }
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))  # fmt: skip
    ext = tmp / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn, signer in (
        ("server", "extender", "ca"),
        ("client", "kube-scheduler", "ca"),
        ("other", "intruder", None),
    ):
        csr = tmp / f"{name}.csr"
        key = str(files[f"{name}-key"])
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", key, "-out", str(csr))
        if signer:
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
                     "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(files[name]))  # fmt: skip
        else:
            _openssl("x509", "-req", "-in", str(csr), "-signkey", key, "-days", "1", "-out", str(files[name]))
    return files


async def test_extender_with_client_certificate_tls(tmp_path: Path) -> None:
    pki = await asyncio.to_thread(_pki, tmp_path)
    pod = gpu_pod("tls", uid="tls-1")
    state = _snapshot(tmp_path, [*fleet(), pod], as_list=True)
    options = Options(
        cluster_state=state, port=0, extender_host="127.0.0.1", extender_port=0,
        tls_cert=str(pki["server"]), tls_key=str(pki["server-key"]), client_ca=str(pki["ca"]),
    )  # fmt: skip
    daemon = await build(options)
    served = await start([daemon.listeners()[1]])
    try:
        ((_, port),) = served.addresses()
        url = f"https://127.0.0.1:{port}"

        def client_context(cert: str | None) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=str(pki["ca"]))
            if cert:
                context.load_cert_chain(str(pki[cert]), str(pki[f"{cert}-key"]))
            return context

        for cert in (None, "other"):  # no certificate, or one our CA did not sign: no bind
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.ClientError):
                    async with http.post(
                        f"{url}/bind", json=binding_args(pod, "node-0"), ssl=client_context(cert)
                    ) as r:
                        await r.read()
        assert daemon.service.allocation()["allocations"] == {}
        async with aiohttp.ClientSession() as http:
            ctx = client_context("client")
            async with http.post(f"{url}/filter", json=extender_args(pod, ["node-0"]), ssl=ctx) as reply:
                assert (await reply.json())["NodeNames"] == ["node-0"]
            async with http.post(f"{url}/bind", json=binding_args(pod, "node-0"), ssl=ctx) as reply:
                assert await reply.json() == {}
        assert list(daemon.service.allocation()["allocations"]) == ["tls-1"]
    finally:
        await served.close()
        await daemon.close()
