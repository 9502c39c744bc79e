"""The spec's controller.command must parse exactly as written, plus Go's other flag forms."""

from __future__ import annotations

import pytest

from daemons.cli import build_parser
from daemons.controller.cli import options_from
from daemons.controller.daemon import Options, parse_bind_address
from tfcore.model.errors import ValidationError

SPEC_COMMAND = [
    "-metrics-bind-address",
    ":9000",
    "-leader-elect",
    "-enable-auto-scale",
    "-enable-alert",
    "-alert-manager-addr",
    "alertmanager.monitoring.svc.cluster.local:9093",
]


def parse(*argv: str) -> Options:
    return options_from(build_parser().parse_args(["controller", *argv]))


def test_the_spec_command_line_parses_verbatim() -> None:
    options = parse(*SPEC_COMMAND)
    assert options.metrics_bind_address == ":9000"
    assert options.leader_elect
    assert options.enable_auto_scale
    assert options.enable_alert
    assert options.alert_manager_addr == "alertmanager.monitoring.svc.cluster.local:9093"
    assert parse_bind_address(options.metrics_bind_address) == ("0.0.0.0", 9000)


@pytest.mark.parametrize(
    "argv",
    [
        ["--metrics-bind-address", ":9000", "--leader-elect"],
        ["-metrics-bind-address=:9000", "-leader-elect=true"],
        ["--metrics-bind-address=:9000", "--leader-elect=1"],
        ["-metrics-bind-address", ":9000", "-leader-elect=T"],
    ],
)
def test_go_flag_forms(argv: list[str]) -> None:
    options = parse(*argv)
    assert options.metrics_bind_address == ":9000"
    assert options.leader_elect


def test_defaults_and_explicit_false() -> None:
    options = parse()
    assert options == Options()  # one replica, no election, metrics on :8080
    assert not parse("-leader-elect=false").leader_elect
    assert not parse("-enable-auto-scale=0").enable_auto_scale


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-metrics-bind"], "unrecognized arguments: -metrics-bind"),  # no prefix matching, as in Go
        (["-no-such-flag"], "unrecognized arguments: -no-such-flag"),
        (["-leader-elect=maybe"], "invalid boolean value 'maybe'"),
        (["-metrics-bind-address"], "expected one argument"),
    ],
)
def test_bad_flags_are_clear_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["controller", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["-metrics-bind-address", "9000"], "-metrics-bind-address"),
        (["-metrics-bind-address", ":99999"], "-metrics-bind-address"),
        (["-enable-alert"], "-alert-manager-addr"),
        (["-alert-manager-addr", "alertmanager"], "-alert-manager-addr"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse(*argv)
    assert error.value.problems[0].field == field


def test_bind_addresses() -> None:
    assert parse_bind_address("0") is None
    assert parse_bind_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind_address("[::1]:9000") == ("::1", 9000)
