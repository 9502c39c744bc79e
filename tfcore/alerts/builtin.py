"""The built-in rules: tfcore/alerts/builtin_rules.yaml, shipped in the package.

The chart carries a copy (charts/tensor-fusion/alert-rules.yaml, written by `make generate`);
a test fails when the two differ, so there is one source of truth.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from tfcore.alerts.rules import WATCHDOG, CompiledRule, compile_rules
from tfcore.model.errors import ValidationError

ENV_PATH = "TF_BUILTIN_ALERT_RULES"  # read by the controller (tfcore.config.env.BUILTIN_ALERT_RULES)
PACKAGED_PATH = Path(__file__).resolve().parent / "builtin_rules.yaml"


_chosen: list[Path] = []  # set once at start by the daemon that reads the environment


def use_rules_file(path: str | Path | None) -> None:
    """Replace the packaged rules with `path` (the controller passes $TF_BUILTIN_ALERT_RULES); None: packaged."""
    _chosen[:] = [Path(path)] if path else []


def builtin_rules_path() -> Path:
    """The file chosen with use_rules_file, else the rules shipped with the package."""
    return _chosen[0] if _chosen else PACKAGED_PATH


@cache
def _load(path: Path) -> tuple[CompiledRule, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError.single(
            str(path), f"built-in alert rules not readable: {exc.strerror}", f"the file, or set {ENV_PATH}"
        ) from None
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "alertRules" not in data:
        raise ValidationError.single(str(path), "no alertRules list", "a YAML mapping with alertRules: [...]")
    return tuple(compile_rules(data["alertRules"], where=f"{path.name}:alertRules"))


def builtin_rules() -> list[CompiledRule]:
    return list(_load(builtin_rules_path()))


def with_watchdog(rules: list[CompiledRule]) -> list[CompiledRule]:
    """The WatchDog always runs: a user's list gets the built-in one unless it defines its own."""
    if any(rule.name == WATCHDOG for rule in rules):
        return rules
    return [*(r for r in builtin_rules() if r.name == WATCHDOG), *rules]
