"""`tensor-fusion up` and `tensor-fusion run --tflops N --vram Q -- CMD`.

`up` is the hypervisor with its local allocator and API (it execs `tensor-fusion hypervisor`,
so signals and exit codes are the daemon's own).  `run` asks that node for a share over its
API, runs CMD under the shim with it and releases it when CMD exits.  The worker is tied to
`run`'s own process: if `run` is killed outright, CMD dies with it (parent-death signal) and
the node sees the owner gone and releases the share on its next tick.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from daemons import statedir
from daemons.hypervisor.options import add_node_arguments, node_argv
from tfcore.hypervisor.nodefile import NODE_FILE, NodeFile, decode_node_file
from tfcore.hypervisor.paths import default_state_dir
from tfcore.model.errors import Problem, ValidationError
from tfcore.model.quantity import parse_quantity
from tfcore.native import library_paths

PR_SET_PDEATHSIG = 1


def register(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run a standalone node: hypervisor + local allocator + API (simulated GPU when none is found)",
        description="Runs `tensor-fusion hypervisor` with the given options (see its --help).",
    )
    add_node_arguments(up)
    up.set_defaults(handler=_up)

    run = commands.add_parser("run", help="run a command with a share of this node's GPUs")
    run.add_argument("--tflops", required=True, help="guaranteed TFLOPS per GPU (a quantity: 100, 1500m)")
    run.add_argument("--tflops-limit", default="", help="TFLOPS cap per GPU (default: the request)")
    run.add_argument("--vram", required=True, help="VRAM limit per GPU (a quantity: 4Gi)")
    run.add_argument("--gpu-count", type=int, default=1, help="GPUs (default 1)")
    run.add_argument("--name", default="", help="worker name (default run-PID)")
    run.add_argument("--state-dir", type=Path, default=None, help="the node's state directory (as given to `up`)")
    run.add_argument("--token-file", type=Path, default=None, help="the node's token (default STATE_DIR/token)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command to run")
    run.set_defaults(handler=_run)

    for verb, text in (
        ("freeze", "move an idle worker's GPU memory out (host memory, or disk with --to disk)"),
        ("resume", "bring a frozen worker's memory back to the GPU now (its next CUDA call would)"),
    ):
        tier = commands.add_parser(verb, help=text)
        tier.add_argument("name", help="the worker (NAME, or NAMESPACE/POD for a pod worker)")
        if verb == "freeze":
            tier.add_argument("--to", choices=("host", "disk"), default="host", help="where to (default host)")
        tier.add_argument("--state-dir", type=Path, default=None, help="the node's state directory (as given to `up`)")
        tier.add_argument("--token-file", type=Path, default=None, help="the node's token (default STATE_DIR/token)")
        tier.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for the move (default 30; 0: do not)"
        )
        tier.set_defaults(handler=_tier, verb=verb)


def _up(args: argparse.Namespace) -> int:
    print("tensor-fusion up: standalone node (hypervisor + local allocator + API)", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "daemons.cli", "hypervisor", *node_argv(args)])


class NodeError(RuntimeError):
    pass


def _call(node: NodeFile, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(node.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}")
        problems = "".join(
            f"\n  {p['field']}: {p['message']}" + (f" (expected {p['expected']})" if p.get("expected") else "")
            for p in detail.get("problems", [])
        )
        raise NodeError(f"{detail.get('error', exc.reason)}{problems}") from exc
    except OSError as exc:
        raise NodeError(f"cannot reach the node at {node.url}: {exc}") from exc
    return json.loads(raw) if raw else None


def _check_amounts(args: argparse.Namespace) -> list[Problem]:
    """Every bad amount, named by its flag, before anything is asked of the node."""
    problems: list[Problem] = []
    for flag, text in (("--tflops", args.tflops), ("--tflops-limit", args.tflops_limit), ("--vram", args.vram)):
        if flag == "--tflops-limit" and not text:
            continue
        try:
            value = parse_quantity(text, field=flag).value
            if value <= 0 and flag == "--vram":
                problems.append(Problem(flag, f"{text!r} is not positive", "a quantity such as 4Gi"))
            elif value < 0:
                problems.append(Problem(flag, f"{text!r} is negative", "TFLOPS >= 0, such as 100 or 1500m"))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if not 1 <= args.gpu_count <= 128:
        problems.append(Problem("--gpu-count", f"{args.gpu_count}", "1 to 128"))
    return problems


def _read_node(state_dir: Path) -> NodeFile | None:
    try:
        return decode_node_file(statedir.read_own_file(state_dir / NODE_FILE).encode())
    except (OSError, ValidationError, statedir.UnsafeStateDir):
        return None


def _find_node(state_dir: Path, token_file: Path | None) -> tuple[NodeFile, str]:
    """The node file and token, only from a directory and files of this user's alone."""
    statedir.check_dir(state_dir, private=statedir.is_default(state_dir))
    node = _read_node(state_dir)
    if node is None:
        raise FileNotFoundError(f"no readable {NODE_FILE} of this user's in {state_dir}")
    if token_file is not None:
        return node, token_file.read_text().strip()
    return node, statedir.read_own_file(state_dir / "token", private=True).strip()


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: no command: tensor-fusion run --tflops N --vram Q -- CMD [ARGS]", file=sys.stderr)
        return 2
    problems = _check_amounts(args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    state_dir = args.state_dir or default_state_dir(os.environ)
    try:
        node, token = _find_node(state_dir, args.token_file)
    except statedir.UnsafeStateDir as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: no node running at {state_dir} ({exc}); start one with `tensor-fusion up`", file=sys.stderr)
        return 1
    name = args.name or f"run-{os.getpid()}"
    ask = {
        "name": name,
        "tflops_request": args.tflops,
        "tflops_limit": args.tflops_limit or 0,
        "vram": args.vram,
        "gpu_count": args.gpu_count,
        "owner_pid": os.getpid(),
        "tenant_uid": os.getuid(),  # the state file is ours alone (0600): no other user can use or damage it
    }
    try:
        worker = _call(node, token, "POST", "/api/v1/workers", ask)
    except NodeError as exc:
        print(f"error: the node refused the share: {exc}", file=sys.stderr)
        return 1
    # The libraries come from this installation, never from a file: the node file only says
    # whether the node simulates its GPUs.
    libs = library_paths()
    env = dict(os.environ, LD_PRELOAD=str(libs["shim"]), TF_SHM_PATH=worker["region"])
    if worker.get("tier_dir"):
        env["TF_TIER_DIR"] = worker["tier_dir"]  # where its memory goes when frozen to disk
    if node.simulated:
        simulated = str(libs["simcuda"].parent)
        env["LD_LIBRARY_PATH"] = ":".join(x for x in (simulated, env.get("LD_LIBRARY_PATH", "")) if x)
    if node.sim_state:
        env["TF_SIM_STATE"] = node.sim_state
    forwarded: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
        code = child.wait()
    except OSError as exc:
        print(f"error: cannot run {command[0]}: {exc}", file=sys.stderr)
        code = 127
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            # Read the node file again: a restarted node may listen elsewhere now.
            current = _read_node(state_dir) or node
            _call(current, token, "DELETE", f"/api/v1/workers/{name}")
        except NodeError as exc:
            print(
                f"warning: releasing the share: {exc} (the node releases it when it sees this process gone)",
                file=sys.stderr,
            )
    return 128 - code if code < 0 else code


def _tier(args: argparse.Namespace) -> int:
    """`tensor-fusion freeze NAME [--to disk]` / `resume NAME`: asks the node, then waits
    (bounded) until every process of the worker has handled it; prints the worker's tiers."""
    state_dir = args.state_dir or default_state_dir(os.environ)
    try:
        node = decode_node_file((state_dir / NODE_FILE).read_bytes())
        token = (args.token_file or state_dir / "token").read_text().strip()
    except (OSError, ValidationError) as exc:
        print(f"error: no node running at {state_dir} ({exc}); start one with `tensor-fusion up`", file=sys.stderr)
        return 1
    path = f"/api/v1/workers/{args.name}/{args.verb}"
    try:
        view = _call(node, token, "POST", path, {"to": args.to} if args.verb == "freeze" else {})
        deadline = time.monotonic() + max(0.0, args.wait)
        want = "device" if args.verb == "resume" else args.to
        while args.wait > 0 and (view["tier_pending"] or _place(view) != want) and time.monotonic() < deadline:
            time.sleep(0.05)
            view = _call(node, token, "GET", f"/api/v1/workers/{args.name}")
    except NodeError as exc:
        print(f"error: {args.verb} {args.name}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"name": view["name"], "frozen": view["frozen"], "tiers": view["tiers"]}))
    if args.wait > 0 and (view["tier_pending"] or _place(view) != want):
        print(f"error: {args.name} is not at {want} yet (a busy or failed move keeps it where it was)", file=sys.stderr)
        return 1
    return 0


def _place(view: dict[str, Any]) -> str:
    tiers = view["tiers"]
    return "disk" if tiers["disk"] else "host" if tiers["host"] else "device"
