"""The log codec's access-log mode (nncodec/log/formats/accesslog.py, log payload mode 2): exact round trips
on Combined/Common Log Format lines and on everything that only looks like them, the calendar
arithmetic, the client recency ranks, damaged streams, and the mode winning where it should."""

from __future__ import annotations

import random

import pytest
from conftest import SHARED_DATA, access_lines, damaged_payload_trials, log_lines
from hypothesis import given, settings
from hypothesis import strategies as st

import nncodec
from nncodec.codecs.log import ACCESS, LogCodec
from nncodec.log.formats import accesslog

LINE = b'10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326'
COMBINED = LINE + b' "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'


def round_trip_streams(data: bytes) -> list[bytes] | None:
    streams = accesslog.split(data)
    if streams is not None:
        assert accesslog.join(streams) == data
        result = accesslog.encode(data)
        assert result is not None and accesslog.decode(result[0], len(data)) == data
    return streams


def test_calendar_arithmetic_matches_the_proleptic_gregorian_calendar():
    import datetime

    for days in [-700_000, -1, 0, 1, 59, 60, 11_016, 16_572, 2_932_896, *range(-3000, 3000, 7)]:
        date = datetime.date(1970, 1, 1) + datetime.timedelta(days=days)
        assert accesslog.civil_from_days(days) == (date.year, date.month, date.day)
        assert accesslog.days_from_civil(date.year, date.month, date.day) == days


def test_common_and_combined_lines_parse_and_come_back():
    for line in (LINE, COMBINED):
        data = b"\n".join([line] * 5)
        streams = round_trip_streams(data)
        assert streams is not None and streams[accesslog.STREAM_NAMES.index("verbatim")] == b""


@pytest.mark.parametrize(
    "odd",
    [
        b'1.2.3.4 - - [31/Feb/2020:10:00:00 +0000] "GET / HTTP/1.1" 200 5',  # no such day
        b'1.2.3.4 - - [01/Foo/2020:10:00:00 +0000] "GET / HTTP/1.1" 200 5',  # no such month
        b'1.2.3.4 - - [01/Jan/2020:24:00:00 +0000] "GET / HTTP/1.1" 200 5',  # hour 24
        b'1.2.3.4 - - [01/Jan/2020:10:00:00 +0000] "GET /\ta HTTP/1.1" 200 5',  # tab in a field
        b'1.2.3.4 - - [01/Jan/2020:10:00:00 +0000] "GET /a\\"b HTTP/1.1" 200 5',  # escaped quote
        b'1.2.3.4  - - [01/Jan/2020:10:00:00 +0000] "GET / HTTP/1.1" 200 5',  # two spaces
        b"plain text that is no access log line at all",
        b"",
        b"\r",
        b"\xff\xfe invalid utf-8 \x80",
    ],
)
def test_lines_that_do_not_rebuild_exactly_stay_verbatim(odd):
    data = b"\n".join([COMBINED, odd, COMBINED, COMBINED])
    streams = round_trip_streams(data)
    assert streams is not None
    assert streams[0][1] == accesslog.VERBATIM


@pytest.mark.parametrize(
    "client",
    [
        b"^3",
        b"!x",
        b".5",
        b"010.1.2.3",
        b"256.1.1.1",
        b"1.2.3",
        b"2001:db8::1",
        b"host.example.org",
        b"0.0.0.0",
    ],
)
def test_client_names_that_look_like_tokens_or_are_not_plain_ipv4(client):
    lines = [COMBINED.replace(b"10.0.0.1", name) for name in (client, b"9.9.9.9", client, b"1.1.1.1", client)]
    round_trip_streams(b"\n".join(lines))


def test_endings_zones_agents_and_time_running_backwards():
    lines = [
        COMBINED + b"\r",
        COMBINED.replace(b"-0700", b"+0530"),
        COMBINED.replace(b"13:55:36", b"13:54:59") + b"\r",  # earlier than the line before
        COMBINED.replace(b"Mozilla/4.08 [en] (Win98; I ;Nav)", b""),  # an empty agent after another
        COMBINED.replace(b"Mozilla/4.08 [en] (Win98; I ;Nav)", b"!bang"),
        COMBINED.replace(b"Mozilla/4.08 [en] (Win98; I ;Nav)", b""),
        LINE,  # no referrer and agent
        COMBINED.replace(b"10/Oct/2000", b"01/Jan/1969"),  # before 1970
        COMBINED.replace(b"10/Oct/2000", b"29/Feb/2024"),
    ]
    for ending in (b"", b"\n", b"\r\n"):
        round_trip_streams(b"\n".join(lines) + ending)


def test_recency_ranks_invert():
    rng = random.Random(5)
    names = [b"c%d" % rng.randrange(40) for _ in range(2000)]
    encoder, decoder = accesslog.RecentClients(len(names)), accesslog.RecentClients(len(names))
    for name in names:
        rank = encoder.rank(name)
        if rank is not None:
            assert decoder.client(rank) == name
        encoder.see(name)
        decoder.see(name)
    with pytest.raises(ValueError):
        decoder.client(10_000)


def test_not_an_access_log_is_left_to_the_other_modes():
    assert accesslog.split(log_lines(300, seed=2)) is None
    assert accesslog.split(b"") is None or accesslog.join(accesslog.split(b"")) == b""


def test_access_mode_wins_on_an_access_log_and_round_trips():
    data = access_lines(3000, seed=4)
    payload = LogCodec().encode_block(data)
    assert payload[1] == ACCESS
    assert LogCodec().decode_block(payload, len(data)) == data
    assert nncodec.decompress(nncodec.compress(data)) == data


def test_damaged_access_payloads_fail_cleanly():
    data = access_lines(400, seed=6)
    payload = LogCodec().encode_block(data)
    assert payload[1] == ACCESS
    decode = LogCodec().decode_block
    options = dict(trials=300, seed=1, skip=2, changes=(1, 3), replace=True)
    damaged_payload_trials(decode, payload, len(data), **options)


def test_damaged_streams_raise_value_error():
    data = access_lines(200, seed=8)
    streams = accesslog.split(data)
    assert streams is not None
    rng = random.Random(2)
    for index in range(len(streams)):
        for _ in range(40):
            changed = list(streams)
            piece = bytearray(changed[index])
            if piece and rng.random() < 0.7:
                piece[rng.randrange(len(piece))] = rng.choice(b"^.!:\n\t 0123456789")
            else:
                piece += rng.choice([b"\n", b"^9", b"\t"])
            changed[index] = bytes(piece)
            try:
                accesslog.join(changed)
            except ValueError:
                pass


FIELD = st.sampled_from(
    [b"-", b"x", b"^1", b"!", b".", b"1.2.3.4", b"010.0.0.1", b"a b", b"\t", b'"', b"\r", b""]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), FIELD, FIELD, st.integers(-100_000, 100_000), st.booleans()),
                max_size=30),
       st.sampled_from([b"", b"\n", b"\r\n"]))  # fmt: skip
def test_any_mix_of_lines_round_trips(rows, ending):
    lines = []
    for client, agent, referrer, shift, crlf in rows:
        line = COMBINED.replace(b"10.0.0.1", b"10.0.0.%d" % client)
        line = line.replace(b"Mozilla/4.08 [en] (Win98; I ;Nav)", agent)
        line = line.replace(b"http://www.example.com/start.html", referrer)
        line = line.replace(b"13:55:36", b"13:%02d:36" % (abs(shift) % 60)).replace(
            b"2326", b"%d" % abs(shift)
        )
        lines.append(line + (b"\r" if crlf else b""))
    data = b"\n".join(lines) + ending
    round_trip_streams(data)
    assert nncodec.decompress(nncodec.compress(data, codec="log")) == data


def test_real_access_log_gains_over_the_lines_as_they_are():
    path = SHARED_DATA / "logs" / "elastic_examples" / "apache_logs"
    if not path.is_file():
        pytest.skip("../shared/data/logs/elastic_examples/apache_logs is not present")
    data = path.read_bytes()[:400_000]
    data = data[: data.rfind(b"\n") + 1]
    payload = LogCodec().encode_block(data)
    assert payload[1] == ACCESS
    assert LogCodec().decode_block(payload, len(data)) == data
