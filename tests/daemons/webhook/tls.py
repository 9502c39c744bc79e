"""A throw-away CA and serving certificates, made with the openssl CLI (no Python dependency)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertAuthority:
    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / "ca.crt"

    def issue(
        self, name: str, hosts: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)
    ) -> tuple[Path, Path]:
        """A server certificate for hosts/ips signed by this CA: (cert, key) files."""
        key, csr, cert = (self.directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        ext = self.directory / f"{name}.ext"
        names = [f"DNS:{h}" for h in hosts] + [f"IP:{i}" for i in ips]
        ext.write_text(f"subjectAltName={','.join(names)}\nextendedKeyUsage=serverAuth\n", encoding="utf-8")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={name}")  # fmt: skip
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.directory / "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext)  # fmt: skip
        return cert, key


def make_ca(directory: Path) -> CertAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", directory / "ca.key", "-out", directory / "ca.crt", "-days", "2", "-subj", "/CN=tf-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    return CertAuthority(directory)


def _openssl(*args: object) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)
