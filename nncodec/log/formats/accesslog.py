"""Web server access logs (Common and Combined Log Format) as field streams, exactly reversible.

A line like::

    83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a.png HTTP/1.1" 200 2030 "http://x/" "Mozilla/5.0"

is cut into its fields, and each field goes where it is cheapest to code (FORMAT.md §7.3, log
mode 2):

* **kinds**: one byte per line: whether it was parsed, ends in CR, has referrer and user agent;
* **verbatim**: the lines that do not parse, or do not come back exactly from their fields;
* **clients**: the client address: empty when it is the previous line's, ``^k`` when k other
  addresses were seen since its last line (its move-to-front rank), ``.`` for a new IPv4 address
  written as four plain decimal numbers (its four bytes go to **addresses**: such numbers are near
  random, and bytes cost less than digits), else the text (``!`` escapes text that starts with
  ``^``, ``!`` or ``.``);
* **users**: identity and user fields (almost always ``- -``);
* **times**: ``m:s``, the minute minus the previous parsed line's minute and the second within
  the minute (servers log requests in the order they end, so seconds jump about inside a minute
  while minutes advance slowly), and the zone after a space when it changed (integer calendar
  arithmetic: no time library, no locale);
* **requests**: request line, status, size, referrer and user agent, tab-separated, with the lines
  regrouped by client (clients in order of first appearance, each client's lines in file order):
  a visitor's page is followed by the page's images and scripts, in the same order as for the
  visitor before, so PPMd of high order predicts a client's next request from other clients'
  sessions. The user agent is left empty when it is the same as the client's previous line's.

The decoder reads clients first, which gives it the regrouping, then puts every line back in its
place. Lines holding a tab or a newline in a field, bad dates and anything else that does not
come back byte for byte stay verbatim, so any input round-trips.
"""

from __future__ import annotations

import re

from nncodec.entropy.backends import decode_stream, encode_stream

LINE = re.compile(
    rb"(\S+) (\S+) (\S+) \[([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2}) "
    rb'([+-][0-9]{4})\] "([^"\t]*)" ([0-9]{3}) ([0-9]+|-)(?: "([^"\t]*)" "([^"\t]*)")?'
)
MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
PARSED, CR, AGENT, VERBATIM = 1, 2, 4, 8  # bits of a line's kind byte
STREAM_NAMES = ("kinds", "verbatim", "clients", "addresses", "users", "times", "requests")
CODERS = {
    "kinds": ("ppmd", "xz-quick", "zstd"),
    "verbatim": ("ppmd", "xz-quick", "zstd"),
    "clients": ("ppmd", "xz-quick"),
    "addresses": ("ppmd-3", "ppmd-5", "xz-quick"),
    "users": ("ppmd", "xz-quick"),
    "times": ("ppmd", "xz-quick"),
    "requests": ("ppmd-32", "ppmd-48"),
}
MIN_PARSED_SHARE = 0.5  # below this share of parsed lines the mode is not used
PROBE_LINES = 200  # ... nor when the first lines fall below it


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def format_time(seconds: int) -> bytes:
    days, rest = divmod(seconds, 86400)
    year, month, day = civil_from_days(days)
    hour, rest = divmod(rest, 3600)
    return b"%02d/%s/%04d:%02d:%02d:%02d" % (day, MONTHS[month - 1], year, hour, *divmod(rest, 60))


def _line(fields: tuple[bytes, ...], stamp: bytes, zone: bytes) -> bytes:
    """A parsed line rebuilt: (client, ident, user, request, status, size, referrer, agent)."""
    client, ident, user, request, status, size, referrer, agent = fields
    line = b'%s %s %s [%s %s] "%s" %s %s' % (client, ident, user, stamp, zone, request, status, size)
    if referrer is not None:
        line += b' "%s" "%s"' % (referrer, agent)
    return line


def _parse(line: bytes) -> tuple[tuple[bytes, ...], int, bytes] | None:
    """(fields, seconds, zone) of a line that rebuilds exactly, else None."""
    match = LINE.fullmatch(line)
    if match is None:
        return None
    client, ident, user, day, month, year, hour, minute, second, zone = match.groups()[:10]
    request, status, size, referrer, agent = match.groups()[10:]
    if month not in MONTHS:
        return None
    seconds = days_from_civil(int(year), MONTHS.index(month) + 1, int(day)) * 86400
    seconds += int(hour) * 3600 + int(minute) * 60 + int(second)
    fields = (client, ident, user, request, status, size, referrer, agent)
    if _line(fields, format_time(seconds), zone) != line:  # 31/Feb, hour 24, ...
        return None
    return fields, seconds, zone


IPV4 = re.compile(
    rb"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


class RecentClients:
    """Clients by recency: ``rank(c)`` is how many distinct clients were seen since c's last line,
    ``client(k)`` the inverse. Each client's last line number carries a mark in a Fenwick tree, so
    both are O(log n) however many clients there are."""

    def __init__(self, lines: int) -> None:
        self.size = lines
        self.tree = [0] * (lines + 1)
        self.last: dict[bytes, int] = {}
        self.at: dict[int, bytes] = {}
        self.now = 0

    def _add(self, i: int, delta: int) -> None:
        i += 1
        while i <= self.size:
            self.tree[i] += delta
            i += i & -i

    def _marks_before(self, i: int) -> int:
        total = 0
        while i > 0:
            total += self.tree[i]
            i -= i & -i
        return total

    def rank(self, client: bytes) -> int | None:
        last = self.last.get(client)
        if last is None:
            return None
        return self._marks_before(self.now) - self._marks_before(last + 1)

    def client(self, rank: int) -> bytes:
        """The client of rank ``rank``: the mark with ``rank`` marks after it. ValueError if none."""
        target = self._marks_before(self.now) - rank  # that mark is the target-th from the start
        if not 1 <= target <= self._marks_before(self.now):
            raise ValueError("access-log client reference out of range")
        pos, step = 0, 1 << self.size.bit_length()
        while step:  # Fenwick descent: the largest pos with fewer than target marks in [0, pos)
            nxt = pos + step
            if nxt <= self.size and self.tree[nxt] < target:
                pos = nxt
                target -= self.tree[nxt]
            step >>= 1
        return self.at[pos]

    def see(self, client: bytes) -> None:
        last = self.last.get(client)
        if last is not None:
            self._add(last, -1)
            del self.at[last]
        self._add(self.now, 1)
        self.last[client] = self.now
        self.at[self.now] = client
        self.now += 1


def _client_token(
    client: bytes, previous: bytes | None, recent: RecentClients, addresses: bytearray
) -> bytes:
    if client == previous:
        return b""
    rank = recent.rank(client)
    if rank is not None:
        return b"^%d" % (rank - 1)  # rank 0 is the previous line's client
    if IPV4.fullmatch(client):
        addresses += bytes(int(part) for part in client.split(b"."))
        return b"."
    return b"!" + client if client[:1] in (b"^", b"!", b".") else client


def _grouping(clients: list[bytes]) -> list[int]:
    """Line numbers (of parsed lines) regrouped by client, clients in order of first appearance."""
    first: dict[bytes, int] = {}
    for i, client in enumerate(clients):
        first.setdefault(client, i)
    return sorted(range(len(clients)), key=lambda i: (first[clients[i]], i))


def split(data: bytes) -> list[bytes] | None:
    """The block's streams (``STREAM_NAMES``), or None when too few lines parse."""
    lines = data.split(b"\n")
    kinds, verbatim, parsed = bytearray(), [], []
    for number, line in enumerate(lines):
        if number == PROBE_LINES and len(parsed) < MIN_PARSED_SHARE * number:
            return None  # not an access log: decided on its first lines, without parsing them all
        body, cr = (line[:-1], CR) if line.endswith(b"\r") else (line, 0)
        result = _parse(body)
        if result is None:
            kinds.append(VERBATIM)
            verbatim.append(line)
            continue
        fields = result[0]
        kinds.append(PARSED | cr | (AGENT if fields[6] is not None else 0))
        parsed.append(result)
    if len(parsed) < MIN_PARSED_SHARE * len(lines):
        return None
    clients, users, times = [], [], []
    addresses = bytearray()
    previous: bytes | None = None
    recent = RecentClients(len(parsed))
    last_minute, last_zone = 0, b"+0000"
    for fields, seconds, zone in parsed:
        client = fields[0]
        clients.append(_client_token(client, previous, recent, addresses))
        recent.see(client)
        previous = client
        users.append(fields[1] + b" " + fields[2])
        minute, second = divmod(seconds, 60)
        time = b"%d:%d" % (minute - last_minute, second)
        times.append(time if zone == last_zone else time + b" " + zone)
        last_minute, last_zone = minute, zone
    names = [fields[0] for fields, _, _ in parsed]
    requests = []
    last_agent: dict[bytes, bytes | None] = {}
    for i in _grouping(names):
        request, status, size, referrer, agent = parsed[i][0][3:]
        row = [request, status, size]
        if referrer is not None:
            same = last_agent.get(names[i], None) == agent
            row += [referrer, b"" if same else (b"!" + agent if agent[:1] in (b"", b"!") else agent)]
        last_agent[names[i]] = agent
        requests.append(b"\t".join(row))
    return [
        bytes(kinds),
        b"\n".join(verbatim),
        b"\n".join(clients),
        bytes(addresses),
        b"\n".join(users),
        b"\n".join(times),
        b"\n".join(requests),
    ]


def encode(data: bytes) -> tuple[list[bytes], float] | None:
    """(the block's coded streams, the share of its lines parsed), or None when the mode does not
    apply or does not give the block back (checked)."""
    streams = split(data)
    if streams is None or join(streams) != data:
        return None
    kinds = streams[0]
    share = (len(kinds) - kinds.count(VERBATIM)) / len(kinds)
    return [encode_stream(s, CODERS[name]) for s, name in zip(streams, STREAM_NAMES, strict=True)], share


def decode(coded: list[bytes], max_size: int) -> bytes:
    """Inverse of ``encode``. ValueError when the streams do not fit together."""
    if len(coded) != len(STREAM_NAMES):
        raise ValueError("wrong number of access-log streams")
    streams = [decode_stream(c, 4 * max_size + 64, name) for c, name in zip(coded, STREAM_NAMES, strict=True)]
    return join(streams)


def _pieces(stream: bytes, count: int, what: str) -> list[bytes]:
    pieces = stream.split(b"\n") if count else []
    if len(pieces) != count or (count == 0 and stream):
        raise ValueError(f"access-log {what} stream holds the wrong number of lines")
    return pieces


def join(streams: list[bytes]) -> bytes:
    """The block rebuilt from its (decoded) streams. ValueError when they do not fit together."""
    kinds_stream, verbatim_stream, client_stream, address_stream, user_stream, time_stream, request_stream = (
        streams
    )
    kinds = list(kinds_stream)
    if not kinds or any(k not in (VERBATIM, PARSED, PARSED | CR, PARSED | AGENT, PARSED | CR | AGENT)
                        for k in kinds):  # fmt: skip
        raise ValueError("access-log kinds stream is damaged")
    parsed_count = sum(k != VERBATIM for k in kinds)
    verbatim = _pieces(verbatim_stream, len(kinds) - parsed_count, "verbatim")
    client_tokens = _pieces(client_stream, parsed_count, "clients")
    users = _pieces(user_stream, parsed_count, "users")
    times = _pieces(time_stream, parsed_count, "times")
    rows = _pieces(request_stream, parsed_count, "requests")

    clients: list[bytes] = []
    previous: bytes | None = None
    recent = RecentClients(parsed_count)
    address_pos = 0
    for token in client_tokens:
        if token == b"":
            if previous is None:
                raise ValueError("access-log client refers to no earlier line")
            client = previous
        elif token[:1] == b"^":
            client = recent.client(int(token[1:]) + 1)
        elif token == b".":
            quad = address_stream[address_pos : address_pos + 4]
            if len(quad) != 4:
                raise ValueError("access-log addresses stream ends early")
            client = b"%d.%d.%d.%d" % tuple(quad)
            address_pos += 4
        else:
            client = token[1:] if token[:1] == b"!" else token
        recent.see(client)
        previous = client
        clients.append(client)
    if address_pos != len(address_stream):
        raise ValueError("access-log addresses stream is too long")

    agents_expected = [k & AGENT for k in kinds if k != VERBATIM]
    tails: list[tuple[bytes, ...]] = [()] * parsed_count
    last_agent: dict[bytes, bytes | None] = {}
    for row, i in zip(rows, _grouping(clients), strict=True):
        parts = row.split(b"\t")
        if len(parts) != (5 if agents_expected[i] else 3):
            raise ValueError("access-log request row has the wrong number of fields")
        referrer, agent = None, None
        if agents_expected[i]:
            referrer, token = parts[3], parts[4]
            if token == b"":
                agent = last_agent.get(clients[i])
                if agent is None:
                    raise ValueError("access-log user agent refers to no earlier line")
            else:
                agent = token[1:] if token[:1] == b"!" else token
        last_agent[clients[i]] = agent
        tails[i] = (parts[0], parts[1], parts[2], referrer, agent)

    out: list[bytes] = []
    minute, zone = 0, b"+0000"
    verbatim_lines, parsed_index = iter(verbatim), 0
    for kind in kinds:
        if kind == VERBATIM:
            out.append(next(verbatim_lines))
            continue
        i = parsed_index
        parsed_index += 1
        time, _, new_zone = times[i].partition(b" ")
        minute_delta, colon, second = time.partition(b":")
        if not colon:
            raise ValueError("access-log time is damaged")
        minute += int(minute_delta)
        seconds = minute * 60 + int(second)
        zone = new_zone or zone
        ident, _, user = users[i].partition(b" ")
        line = _line((clients[i], ident, user, *tails[i]), format_time(seconds), zone)
        out.append(line + b"\r" if kind & CR else line)
    return b"\n".join(out)
