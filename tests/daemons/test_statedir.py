"""The standalone state directory against another local user who got there first.

Without $XDG_RUNTIME_DIR the default is the predictable /tmp/tensor-fusion-UID: whoever
creates it first decides what is in it. Each way that used to work is tried here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from daemons import statedir
from daemons.hypervisor.cli import _write_node_file
from tests.e2e.compute_node import CLI
from tfcore.hypervisor.paths import default_state_dir
from tfcore.native import library_paths

OTHER_UID = 65534  # nobody
IS_ROOT = os.geteuid() == 0


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "LD_"))}
    env.update(TF_STATE_DIR=str(state_dir), TF_SIM_STATE=str(state_dir.parent / "sim.state"))
    return env


def _hypervisor(state_dir: Path) -> subprocess.CompletedProcess[str]:
    """The node refuses before it serves; on a refused directory it must not start at all."""
    return subprocess.run(
        [*CLI, "hypervisor", "--simulate", "--port", "0"],
        env=_env(state_dir),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


def test_a_new_state_directory_is_made_private(tmp_path: Path) -> None:
    made = statedir.prepare(tmp_path / "tensor-fusion")
    assert made.stat().st_mode & 0o777 == 0o700


def test_the_per_user_default_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with pytest.raises(statedir.UnsafeStateDir, match="has mode 0755"):
        statedir.check_dir(state, private=True)
    monkeypatch.delenv("TF_STATE_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert statedir.is_default(default_state_dir(os.environ))
    monkeypatch.setenv("TF_STATE_DIR", str(tmp_path))
    assert not statedir.is_default(default_state_dir(os.environ))


def test_hypervisor_refuses_a_state_directory_others_can_write(tmp_path: Path) -> None:
    planted = tmp_path / "state"
    planted.mkdir()
    planted.chmod(0o777)
    (planted / "token").write_text("attackers-token\n")
    result = _hypervisor(planted)
    assert result.returncode == 2, result.stderr
    assert f"state directory {planted} has mode 0777" in result.stderr


@pytest.mark.parametrize("how", ["readable_by_others", "owned_by_another_user", "a_symlink"])
def test_hypervisor_refuses_a_planted_token(tmp_path: Path, how: str) -> None:
    state = _private_dir(tmp_path / "state")
    token = state / "token"
    if how == "a_symlink":
        (tmp_path / "elsewhere").write_text("attackers-token\n")
        token.symlink_to(tmp_path / "elsewhere")
    else:
        token.write_text("attackers-token\n")
        token.chmod(0o644 if how == "readable_by_others" else 0o600)
        if how == "owned_by_another_user":
            if not IS_ROOT:
                pytest.skip("making a file of another user's needs root")
            os.chown(token, OTHER_UID, OTHER_UID)
    result = _hypervisor(state)
    assert result.returncode == 2, result.stderr
    assert str(token) in result.stderr


def test_a_state_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("making a directory of another user's needs root")
    planted = _private_dir(tmp_path / "state")
    os.chown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(statedir.UnsafeStateDir, match="belongs to uid 65534"):
        statedir.prepare(planted)


def test_a_symlinked_state_directory_is_refused(tmp_path: Path) -> None:
    _private_dir(tmp_path / "real")
    (tmp_path / "state").symlink_to(tmp_path / "real")
    with pytest.raises(statedir.UnsafeStateDir, match="not a directory"):
        statedir.prepare(tmp_path / "state")


def test_the_node_file_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    state = _private_dir(tmp_path / "state")
    victim = tmp_path / "victims-file"
    victim.write_text("precious\n")
    for name in ("node.json.tmp", f".node.json.{os.getpid()}.tmp", "node.json"):
        (state / name).symlink_to(victim)
    _write_node_file(state, "127.0.0.1", 1234, simulated=True)
    assert victim.read_text() == "precious\n"
    node = state / "node.json"
    assert not node.is_symlink()
    assert json.loads(node.read_text())["url"] == "http://127.0.0.1:1234"


class _FakeNode(BaseHTTPRequestHandler):
    """Answers `run`'s two calls as a node would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"name": "w", "region": "/nonexistent/region"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _run(state: Path) -> subprocess.CompletedProcess[str]:
    show = "import os; print('PRELOAD=' + os.environ['LD_PRELOAD'])"
    return subprocess.run(
        [*CLI, "run", "--tflops", "1", "--vram", "1Gi", "--", sys.executable, "-c", show],
        env=_env(state),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _swapped_node_file(state: Path, url: str, evil: Path) -> Path:
    node = state / "node.json"
    node.write_text(
        json.dumps({"url": url, "pid": 1, "shim": str(evil), "library_path": str(evil.parent), "simulated": False})
    )
    statedir.create_new(state / "token", "t\n")
    return node


def test_run_preloads_its_own_shim_not_the_one_node_json_names(tmp_path: Path, fake_node: str) -> None:
    state = _private_dir(tmp_path / "state")
    evil = tmp_path / "evil" / "libevil.so"
    _swapped_node_file(state, fake_node, evil)
    result = _run(state)
    assert result.returncode == 0, result.stderr
    assert f"PRELOAD={library_paths()['shim']}" in result.stdout
    assert str(evil) not in result.stdout + result.stderr


def test_run_refuses_a_node_file_others_can_write(tmp_path: Path, fake_node: str) -> None:
    state = _private_dir(tmp_path / "state")
    _swapped_node_file(state, fake_node, tmp_path / "libevil.so").chmod(0o666)
    result = _run(state)
    assert result.returncode == 1
    assert "PRELOAD=" not in result.stdout
