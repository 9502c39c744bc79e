"""A test CA for the webhook's TLS tests (openssl CLI)."""

from __future__ import annotations

import shutil

import pytest

from tests.daemons.webhook.tls import CertAuthority, make_ca


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    return make_ca(tmp_path_factory.mktemp("ca"))
