"""Boolean switches the chart passes as environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tfcore.model.errors import ValidationError

# controller.nvidiaOperatorProgressiveMigration, rendered into the controller, webhook,
# scheduler and hypervisor pods (changing it rolls them, the spec's "restart").
PROGRESSIVE_MIGRATION_ENV: Final = "TF_NVIDIA_OPERATOR_PROGRESSIVE_MIGRATION"

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off", ""})


def env_flag(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    """The switch `name` in `environ`: true/false (also 1/0, yes/no, on/off); unset is `default`."""
    if name not in environ:
        return default
    text = environ[name].strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError.single(name, repr(environ[name]), '"true" or "false"')


def progressive_migration(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """--[no-]nvidia-progressive-migration when given, else the chart's environment switch."""
    return env_flag(environ, PROGRESSIVE_MIGRATION_ENV) if flag is None else flag
