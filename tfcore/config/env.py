"""Every TF_* environment variable in one registry: name, parser, default, who reads it, doc.

Daemons read the process environment once at start through `EnvVar.read(environ)`; nothing
below the daemons touches os.environ. One boolean grammar serves every switch (the chart
renders them quoted, users write them by hand): true/false, 1/0, yes/no, on/off, t/f, any case,
surrounding blanks ignored, empty = false. The controller's Go-style command-line flags keep
Go's strconv.ParseBool (daemons/controller/cli.py): they are flags, not environment.

docs/configuration.md holds the table `markdown_table()` renders; a test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from tfcore.model.codec import decode_json
from tfcore.model.errors import ValidationError
from tfcore.model.hypervisor import HypervisorScheduling

T_co = TypeVar("T_co", covariant=True)

_TRUE: Final = frozenset({"true", "1", "yes", "on", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "off", "f", ""})
BOOL_FORM: Final = '"true" or "false" (also 1/0, yes/no, on/off)'


def parse_bool(name: str, text: str) -> bool:
    """The one boolean grammar of this project's environment; ValidationError names `name`."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValidationError.single(name, repr(text), BOOL_FORM)


def parse_text(name: str, text: str) -> str:
    return text


def parse_port(name: str, text: str) -> int:
    port = text.strip()
    if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValidationError.single(name, f"bad port {port!r}", "a port number, 1-65535")
    return int(port)


BREACH_ACTIONS: Final = ("warn", "evict")


def parse_breach_action(name: str, text: str) -> str:
    action = text.strip().lower()
    if action not in BREACH_ACTIONS:
        raise ValidationError.single(name, repr(text), " or ".join(BREACH_ACTIONS))
    return action


def parse_hypervisor_scheduling(name: str, text: str) -> HypervisorScheduling:
    """SchedulingConfigTemplate.spec.hypervisor as JSON; ValidationError names the key under `name`."""
    return decode_json(text, HypervisorScheduling, where=name)


@dataclass(frozen=True, slots=True)
class EnvVar(Generic[T_co]):
    name: str
    parse: Callable[[str, str], T_co]
    default: T_co
    readers: str  # which processes read it
    doc: str
    blank_is_unset: bool = False  # an empty value means the default (the chart renders empty strings)

    def read(self, environ: Mapping[str, str]) -> T_co:
        """Its value in `environ`; the default when unset; ValidationError naming it when malformed."""
        text = environ.get(self.name)
        if text is None or (self.blank_is_unset and not text.strip()):
            return self.default
        return self.parse(self.name, text)


def _flag(name: str, readers: str, doc: str) -> EnvVar[bool]:
    return EnvVar(name, parse_bool, False, readers, doc)


def _text(name: str, default: str, readers: str, doc: str) -> EnvVar[str]:
    return EnvVar(name, parse_text, default, readers, doc, blank_is_unset=True)


# controller.nvidiaOperatorProgressiveMigration, rendered into the controller, webhook,
# scheduler and hypervisor pods (changing it rolls them, the spec's "restart").
PROGRESSIVE_MIGRATION: Final = _flag(
    "TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION",
    "controller, webhook, scheduler, hypervisor",
    "Coexist with the NVIDIA device plugin: taint nodes running TF workers (controller), route pods "
    "asking nvidia.com/gpu to the default scheduler (webhook, scheduler), never use GPUs the device "
    "plugin allocated (hypervisor). Command-line flags override it.",
)
PROGRESSIVE_MIGRATION_ENV: Final = PROGRESSIVE_MIGRATION.name
DYNAMIC_CONFIG: Final = _text(
    "TF_DYNAMIC_CONFIG", "", "controller", "Dynamic config file (metricsTTL, alert rules), reloaded live."
)
STATE_DIR: Final = _text(
    "TF_STATE_DIR",
    "",
    "hypervisor, controller, run/up",
    "Worker regions, node files and the controller's embedded metrics store "
    "(default /run/tensor-fusion for root, else a per-user runtime directory; the controller "
    "uses /var/lib/tensor-fusion).",
)
GREPTIME_HOST: Final = _text(
    "TF_GREPTIME_HOST", "", "controller", "GreptimeDB host; unset: the embedded DuckDB store is used."
)
GREPTIME_PORT: Final = EnvVar(
    "TF_GREPTIME_PORT", parse_port, 4000, "controller", "GreptimeDB HTTP port.", blank_is_unset=True
)
GREPTIME_USER: Final = _text("TF_GREPTIME_USER", "", "controller", "GreptimeDB user.")
GREPTIME_PASSWORD: Final = _text("TF_GREPTIME_PASSWORD", "", "controller", "GreptimeDB password (never logged).")
GREPTIME_DB: Final = _text("TF_GREPTIME_DB", "public", "controller", "GreptimeDB database.")
GREPTIME_IS_CLOUD: Final = _flag("TF_GREPTIME_IS_CLOUD", "controller", "Talk https to GreptimeDB (GreptimeCloud).")
LOG_LEVEL: Final = _text("TF_LOG_LEVEL", "info", "every daemon, the shim", "trace, debug, info, warn or error.")
LOG_FORMAT: Final = _text("TF_LOG_FORMAT", "text", "every daemon", "text, or json for one JSON object per line.")
BUILTIN_ALERT_RULES: Final = _text(
    "TF_BUILTIN_ALERT_RULES", "", "controller", "Replaces the packaged built-in alert rules file."
)
SIM_STATE: Final = _text(
    "TF_SIM_STATE", "", "simulated driver, hypervisor, run", "Shared state file of the simulated GPU (tests, demos)."
)
SHM_PATH: Final = _text(
    "TF_SHM_PATH", "", "the shim (set by the webhook and `run`)", "The worker's shared-memory region file."
)
ON_ISOLATION_BREACH: Final = EnvVar(
    "TF_ON_ISOLATION_BREACH",
    parse_breach_action,
    "warn",
    "hypervisor",
    "What the node does when a pod worker is found past its isolation: warn (log line, metric, "
    "Event) or evict (the same, and the pod is evicted). The --on-isolation-breach flag wins.",
    blank_is_unset=True,
)
HYPERVISOR_SCHEDULING_CONFIG: Final[EnvVar[HypervisorScheduling | None]] = EnvVar(
    "TF_HYPERVISOR_SCHEDULING_CONFIG",
    parse_hypervisor_scheduling,
    None,
    "hypervisor",
    "A SchedulingConfigTemplate's spec.hypervisor as JSON, as the reference operator passes it, e.g. "
    '`{"autoFreezeAndResume":{"autoFreeze":[{"qos":"low","freezeToMemTTL":"5m","freezeToDiskTTL":"2h"}]}}`. '
    "Its freeze TTLs apply to the QoS levels it names; the node's pool's template (watched live) "
    "wins over it, --freeze-ttl wins over both.",
    blank_is_unset=True,
)

VARIABLES: Final[tuple[EnvVar[object], ...]] = (
    PROGRESSIVE_MIGRATION,
    DYNAMIC_CONFIG,
    STATE_DIR,
    GREPTIME_HOST,
    GREPTIME_PORT,
    GREPTIME_USER,
    GREPTIME_PASSWORD,
    GREPTIME_DB,
    GREPTIME_IS_CLOUD,
    LOG_LEVEL,
    LOG_FORMAT,
    BUILTIN_ALERT_RULES,
    SIM_STATE,
    SHM_PATH,
    ON_ISOLATION_BREACH,
    HYPERVISOR_SCHEDULING_CONFIG,
)


def env_flag(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    """The switch `name` in `environ` (parse_bool's grammar); unset is `default`."""
    return default if name not in environ else parse_bool(name, environ[name])


def progressive_migration(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """--[no-]nvidia-progressive-migration when given, else the chart's environment switch.

    Every daemon resolves the switch here, so `=1` means the same to all four."""
    return PROGRESSIVE_MIGRATION.read(environ) if flag is None else flag


def markdown_table() -> str:
    """The documentation table of every variable (docs/configuration.md)."""
    rows = ["| Variable | Default | Read by | Meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        unset = var.default is None or var.default == ""
        default = "false" if var.default is False else ("unset" if unset else f"`{var.default}`")
        rows.append(f"| `{var.name}` | {default} | {var.readers} | {var.doc} |")
    return "\n".join(rows) + "\n"
