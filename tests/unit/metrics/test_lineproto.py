"""Line protocol: escaping, types and timestamps round-trip; bad lines name the fault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfcore.metrics.formats import decode_points, encode_points
from tfcore.metrics.lineproto import Point, decode, decode_lines, encode
from tfcore.model.errors import ValidationError

text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), min_size=1, max_size=12)
names = text.filter(lambda s: not s.startswith("#"))
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=12),
)
points = st.builds(
    Point,
    measurement=names,
    tags=st.dictionaries(text, text, max_size=4),
    fields=st.dictionaries(text, values, min_size=1, max_size=4),
    time_ns=st.one_of(st.none(), st.integers(min_value=-(2**62), max_value=2**62)),
)


@given(points)
def test_every_point_round_trips(point: Point) -> None:
    assert decode(encode(point)) == point


@given(points, st.sampled_from(["ns", "us", "ms", "s"]))
def test_precision_truncates_to_the_unit(point: Point, precision: str) -> None:
    back = decode(encode(point, precision), precision)  # type: ignore[arg-type]
    unit = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}[precision]
    assert back.time_ns == (None if point.time_ns is None else point.time_ns // unit * unit)


@given(st.lists(points, max_size=5), st.sampled_from(["influx", "json"]))
def test_both_formats_round_trip_batches(batch: list[Point], fmt: str) -> None:
    assert decode_points(encode_points(batch, fmt), fmt) == batch  # type: ignore[arg-type]


def test_a_measurement_of_unicode_whitespace_is_not_taken_for_a_comment() -> None:
    point = Point("\x85", {}, {"#": 0.0}, None)
    assert decode_points(encode_points([point], "influx"), "influx") == [point]


@given(st.text(max_size=40))
def test_decoder_never_crashes_on_garbage(line: str) -> None:
    try:
        decode(line)
    except ValidationError as exc:
        problem = exc.problems[0]
    else:
        return
    assert problem.field.startswith("line")


def test_escaping_and_types_match_the_influx_spec() -> None:
    point = Point("my measure,x", {"tag key": "a=b,c"}, {"f 1": 1.5, "n": 3, "ok": True, "s": 'say "hi" \\o/'}, 10)
    line = encode(point)
    assert line == 'my\\ measure\\,x,tag\\ key=a\\=b\\,c f\\ 1=1.5,n=3i,ok=t,s="say \\"hi\\" \\\\o/" 10'
    assert decode("cpu,host=a value=1u,b=FALSE,c=-2.5e3") == Point(
        "cpu", {"host": "a"}, {"value": 1, "b": False, "c": -2500.0}
    )


def test_empty_tag_values_are_omitted() -> None:
    assert encode(Point("m", {"a": "", "b": "x"}, {"v": 1.0})) == "m,b=x v=1.0"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("m", "found end of line"),
        ("m v=", "bad value"),
        ("m v=1x", "bad value"),
        ("m v=99999999999999999999i", "bad integer"),
        ('m v="open', "unterminated string"),
        ("m v=1 12ab", "bad timestamp"),
        ("m,t v=1", "'=' after the tag key"),
        ("m v=nan", "bad value"),
    ],
)
def test_bad_lines_name_line_column_and_expected_form(line: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        decode_lines(f"# comment\n\n{line}\n", where="stdin")
    problem = err.value.problems[0]
    assert problem.field.startswith("stdin:3 col ")
    assert message in f"{problem.message} (expected {problem.expected})"
    assert problem.expected


def test_encoder_rejects_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(ValidationError) as err:
        encode(Point("m\n", {"t": "a\nb"}, {"v": float("inf"), "w": 2**64}))
    fields = {p.field for p in err.value.problems}
    assert fields == {"measurement", "tags.t", "fields.v", "fields.w"}
    with pytest.raises(ValidationError, match="at least one field"):
        encode(Point("m", {}, {}))


def test_json_format_reports_bad_lines() -> None:
    with pytest.raises(ValidationError) as err:
        decode_points('{"measurement": "m", "fields": {"v": 1}}\n{"fields": {}}\n', "json", where="in")
    assert err.value.problems[0].field == "in:2"
