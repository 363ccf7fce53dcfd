"""End-to-end tests of lf-cat, run as a real process.

Input is made by Python's msgpack (an encoder independent of lf's own) or
written byte by byte where Python would not produce the form (ext8
EventTime, str32 entries, invalid UTF-8).  Output is read back with
json.loads / msgpack and compared with exact expected values.
"""
import base64
import gzip
import json
import re
import struct
import time

import msgpack
import pytest

from conftest import (
    OMap, T, by_tag, canon, decode_packed, entries, et, et_ext8, ev, events,
    gzip_members, loads, packb, packed_events, pipeline, popen, raw_str,
    log_msgs, run, run_ok, str32, ts,
)

CAT = "lf-cat"


# ---------------------------------------------------------------------------
# A stream with every forward mode, made by an independent encoder.
# ---------------------------------------------------------------------------

# research/forward-protocol.md section 9, vector 1 (Message, int time)
V1 = bytes.fromhex("93a5746167 2e61 ce55ece6f8 81a76d657373616765a3626172"
                   .replace(" ", ""))
# vector 6 entries (two EventTime entries)
V6_ENTRIES = bytes.fromhex(
    "92d70055ece6f800000000 81a16101 92d70055ece6f800000001 81a16202"
    .replace(" ", ""))
# vector 11 (v1.5 metadata time in Forward mode)
V11 = bytes.fromhex(
    "93a57461672e61 91 92 92 d70055ece6f800000000 80 81a16101"
    "81ad666c75656e745f7369676e616c00".replace(" ", ""))


def mixed_stream():
    """(stream bytes, its messages, expected events): every mode and time
    form."""
    msgs = []
    exp = []

    def add(b, *evs):
        msgs.append(b)
        exp.extend(evs)

    # Message, int time: the independent encoder gives the spec's bytes
    assert packb(["tag.a", T, {"message": "bar"}]) == V1
    add(V1, ev("tag.a", T, 0, {"message": "bar"}))
    # Message, EventTime as fixext8 (Python's form)
    m = packb(["tag.a", et(T, 123456789), {"k": "v"}])
    assert bytes.fromhex("d70055ece6f8075bcd15") in m
    add(m, ev("tag.a", T, 123456789, {"k": "v"}))
    # Message, EventTime as ext8, by hand
    add(b"\x93" + packb("tag.b") + et_ext8(T, 123456789) + packb({"ext8": True}),
        ev("tag.b", T, 123456789, {"ext8": True}))
    # Message with an option map (chunk), vector 3
    add(packb(["tag.a", et(T, 500000000), {"k": "v"},
               {"chunk": "p8n9gmxTQVC8/nh2wlKKeQ=="}]),
        ev("tag.a", T, 500000000, {"k": "v"}))
    # a heartbeat
    add(b"\xc0")
    # Forward, int and EventTime mixed (vector 5)
    m = packb(["tag.a", [[T, {"a": 1}], [et(T + 1, 0), {"b": 2}]], {"size": 2}])
    assert m == bytes.fromhex(
        "93a57461672e61929 2ce55ece6f881a16101 92d70055ece6f90000000081a16202"
        "81a473697a6502".replace(" ", ""))
    add(m, ev("tag.a", T, 0, {"a": 1}), ev("tag.a", T + 1, 0, {"b": 2}))
    # Forward without option, an ext8 time and an entry with an extra element
    add(b"\x92" + packb("tag.fw") + b"\x92"
        + b"\x92" + et_ext8(T, 7) + packb({"x": [1, 2]})
        + b"\x93" + packb(T + 3) + packb({"y": None}) + packb("extra"),
        ev("tag.fw", T, 7, {"x": [1, 2]}), ev("tag.fw", T + 3, 0, {"y": None}))
    # PackedForward, entries as bin (Python packs bytes as bin)
    add(packb(["tag.p", entries((et(T, 1), {"p": 1}), (T + 2, {"p": 2})),
               {"size": 2}]),
        ev("tag.p", T, 1, {"p": 1}), ev("tag.p", T + 2, 0, {"p": 2}))
    # PackedForward as fluentd writes it: str32 entries, "text", chunk + LF
    add(b"\x93" + packb("tag.s") + str32(V6_ENTRIES)
        + packb({"size": 2, "compressed": "text",
                 "chunk": "AAECAwQFBgcICQoLDA0ODw==\n"}),
        ev("tag.s", T, 0, {"a": 1}), ev("tag.s", T, 1, {"b": 2}))
    # PackedForward, bin32 header for a small payload, no option
    pe = entries((et(T, 2), {"bin32": 1}))
    add(b"\x92" + packb("tag.p") + b"\xc6" + struct.pack(">I", len(pe)) + pe,
        ev("tag.p", T, 2, {"bin32": 1}))
    # CompressedPackedForward, two gzip members, bin
    g = gzip_members(entries((et(T, 3), {"z": 1})),
                     entries((et(T, 4), {"z": 2}), (T + 9, {"z": 3})))
    add(packb(["tag.z", g, {"compressed": "gzip", "size": 3}]),
        ev("tag.z", T, 3, {"z": 1}), ev("tag.z", T, 4, {"z": 2}),
        ev("tag.z", T + 9, 0, {"z": 3}))
    # CompressedPackedForward, two members, str32 (fluentd style)
    g = gzip_members(entries((et(T, 5), {"zs": 1})),
                     entries((et(T, 6), {"zs": 2})))
    add(b"\x93" + packb("tag.z") + str32(g)
        + packb({"size": 2, "compressed": "gzip",
                 "chunk": "AAECAwQFBgcICQoLDA0ODw==\n"}),
        ev("tag.z", T, 5, {"zs": 1}), ev("tag.z", T, 6, {"zs": 2}))
    add(b"\xc0\xc0")
    # v1.5 [[time, meta], record] in Forward (vector 11) ...
    assert packb(["tag.a", [[[et(T, 0), {}], {"a": 1}]], {"fluent_signal": 0}]) == V11
    add(V11, ev("tag.a", T, 0, {"a": 1}))
    add(packb(["tag.m", [[[T + 5, {"otel": {"x": 1}}], {"b": 2}]]]),
        ev("tag.m", T + 5, 0, {"b": 2}))
    # ... and in PackedForward
    add(packb(["tag.m", entries(([et(T, 6), {"k": "v"}], {"c": 3})), {"size": 1}]),
        ev("tag.m", T, 6, {"c": 3}))
    # float times: Message, Forward, and a float32 by hand
    add(packb(["tag.f", 1441588984.25, {"f": 1}]),
        ev("tag.f", T, 250000000, {"f": 1}))
    add(packb(["tag.f", [[1441588984.5, {"f": 2}]]]),
        ev("tag.f", T, 500000000, {"f": 2}))
    add(b"\x93" + packb("tag.f") + b"\xca" + struct.pack(">f", 1.5) + packb({"f": 3}),
        ev("tag.f", 1, 500000000, {"f": 3}))
    # Forward with no entries
    add(packb(["tag.e", [], {"size": 0}]))
    # odd but legal encodings: map16 record, uint64 time, bin tag
    add(b"\x93" + packb("tag.a") + packb(T) + b"\xde\x00\x01" + packb("m16") + packb(1),
        ev("tag.a", T, 0, {"m16": 1}))
    add(b"\x93" + packb("tag.a") + b"\xcf" + struct.pack(">Q", T) + packb({"u64": 1}),
        ev("tag.a", T, 0, {"u64": 1}))
    add(b"\x93" + packb(b"tag.bin") + packb(T) + packb({"a": 1}),
        ev("tag.bin", T, 0, {"a": 1}))
    return b"".join(msgs), msgs, exp


STREAM, MSGS, EXPECTED = mixed_stream()


def test_mixed_stream_stdin():
    out = run_ok(CAT, ["-o", "json"], STREAM)
    assert events(out) == EXPECTED
    # json is the default output
    assert run_ok(CAT, [], STREAM) == out


def test_time_text_form():
    out = run_ok(CAT, [], STREAM)
    lines = out.split(b"\n")
    assert lines[0] == (b'{"tag":"tag.a","time":1441588984.000000000,'
                        b'"record":{"message":"bar"}}')
    assert lines[1] == (b'{"tag":"tag.a","time":1441588984.123456789,'
                        b'"record":{"k":"v"}}')
    assert lines[2] == (b'{"tag":"tag.b","time":1441588984.123456789,'
                        b'"record":{"ext8":true}}')
    assert re.findall(rb'"time":([0-9.]+),', out) == \
        [e[1].encode() for e in EXPECTED]


def test_mixed_stream_file_and_dash(tmp_path):
    f = tmp_path / "stream.bin"
    f.write_bytes(STREAM)
    assert events(run_ok(CAT, [f], b"")) == EXPECTED
    assert events(run_ok(CAT, ["-"], STREAM)) == EXPECTED
    assert events(run_ok(CAT, [f, "-", f], STREAM)) == EXPECTED * 3


def test_split_over_files(tmp_path):
    """Each file is its own stream; messages may sit in any of them."""
    half = len(MSGS) // 2
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"".join(MSGS[:half]))
    b.write_bytes(b"".join(MSGS[half:]))
    assert events(run_ok(CAT, [a, b], b"")) == EXPECTED


def test_each_message_alone():
    """Every message of the mixed stream decodes the same on its own."""
    got = []
    for m in MSGS:
        got.extend(events(run_ok(CAT, [], m)))
    assert got == EXPECTED


def test_heartbeats_only():
    assert run_ok(CAT, [], b"\xc0" * 10) == b""
    assert run_ok(CAT, [], b"") == b""


def test_heartbeats_between_messages():
    m1 = packb(["hb", T, {"n": 1}])
    m2 = packb(["hb", [[T, {"n": 2}]]])
    out = run_ok(CAT, [], b"\xc0" + m1 + b"\xc0\xc0" + m2 + b"\xc0")
    assert events(out) == [ev("hb", T, 0, {"n": 1}), ev("hb", T, 0, {"n": 2})]


# ---------------------------------------------------------------------------
# -o msgpack
# ---------------------------------------------------------------------------

EVENTTIME_STREAM = b"".join([
    packb(["o.a", et(T, 1), {"a": 1}]),
    packb(["o.b", [[et(T, 2), {"b": 1}], [et(T, 3), {"b": 2}]]]),
    packb(["o.a", entries((et(T, 4), {"a": 2})), {"size": 1}]),
    packb(["o.c", gzip_members(entries((et(T, 5), {"c": 1}))),
           {"compressed": "gzip"}]),
])
EVENTTIME_EXPECTED = [
    ev("o.a", T, 1, {"a": 1}), ev("o.b", T, 2, {"b": 1}),
    ev("o.b", T, 3, {"b": 2}), ev("o.a", T, 4, {"a": 2}),
    ev("o.c", T, 5, {"c": 1}),
]


def cat_file(tmp_path, args, data):
    """lf-cat ARGS FILE, FILE holding data: a regular file is read to its
    end before anything is written, so batching is not cut by reads."""
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    return run_ok(CAT, list(args) + [f])


def test_msgpack_output_shape(tmp_path):
    out = cat_file(tmp_path, ["-o", "msgpack"], EVENTTIME_STREAM)
    msgs = decode_packed(out)
    # one PackedForward message per tag, [tag, bin, {"size": N}]
    assert sorted(m[0] for m in msgs) == ["o.a", "o.b", "o.c"]
    for tag, opt, _ in msgs:
        assert list(opt.items()) == [("size", {"o.a": 2, "o.b": 2, "o.c": 1}[tag])]
    assert by_tag(packed_events(out)) == by_tag(EVENTTIME_EXPECTED)
    # the raw bytes: fixarray 3, the tag as str, a bin header
    assert out[0] == 0x93 and out[1:5] in (b"\xa3o.a", b"\xa3o.b", b"\xa3o.c")
    assert out[5] in (0xc4, 0xc5, 0xc6)


def test_msgpack_output_of_mixed_stream_events(tmp_path):
    """Every event survives re-batching (times compared as values)."""
    out = cat_file(tmp_path, ["-o", "msgpack"], STREAM)
    msgs = decode_packed(out)
    tags = [m[0] for m in msgs]
    assert len(tags) == len(set(tags))
    assert by_tag(packed_events(out, strict=False)) == by_tag(EXPECTED)


def test_msgpack_output_time_forms(tmp_path):
    """Every time form comes out as [EventTime fixext8, record]: writers
    send EventTime (DESIGN.md, lf-stream(5)); entries already in that
    form pass through byte for byte."""
    rec = {"r": 1}
    data = b"".join([
        b"\x93" + packb("e8") + et_ext8(T, 5) + packb(rec),
        packb(["fl", 1441588984.5, rec]),
        packb(["v15", [[[et(T, 6), {"m": 1}], rec]]]),
        packb(["pe8", b"\x92" + et_ext8(T, 7) + packb(rec)]),
        packb(["int", T, rec]),
        packb(["fint", [[T, rec]]]),
        packb(["pint", entries((T, rec))]),
        packb(["fix", entries((et(T, 8), rec))]),
    ])
    out = cat_file(tmp_path, ["-o", "msgpack"], data)
    canonical = lambda s, n: b"\x92\xd7\x00" + struct.pack(">II", s, n) + packb(rec)
    got = {tag: payload for tag, payload, _ in unpack_raw(out)}
    assert got == {
        "e8": canonical(T, 5), "fl": canonical(T, 500000000),
        "v15": canonical(T, 6), "pe8": canonical(T, 7),
        "int": canonical(T, 0),
        "fint": canonical(T, 0), "pint": canonical(T, 0), "fix": canonical(T, 8),
    }


def test_msgpack_output_reads_back():
    out = run_ok(CAT, ["-o", "msgpack"], STREAM)
    back = events(run_ok(CAT, [], out))
    assert by_tag(back) == by_tag(EXPECTED)
    # and re-batching what is already batched changes nothing
    assert run_ok(CAT, ["-o", "msgpack"], out) == out


def test_msgpack_output_through_pipe():
    """From a pipe the batches may be cut at reads; no event is lost."""
    out = run_ok(CAT, ["-o", "msgpack"], EVENTTIME_STREAM)
    assert by_tag(packed_events(out)) == by_tag(EVENTTIME_EXPECTED)


def test_msgpack_output_gzip(tmp_path):
    out = cat_file(tmp_path, ["-o", "msgpack", "--compress", "gzip"], EVENTTIME_STREAM)
    msgs = unpack_raw(out)
    assert len(msgs) == 3
    for tag, payload, opt in msgs:
        assert isinstance(payload, bytes)
        assert list(opt.items()) == [("size", {"o.a": 2, "o.b": 2, "o.c": 1}[tag]),
                                     ("compressed", "gzip")]
        assert payload[:2] == b"\x1f\x8b"
        gzip.decompress(payload)  # a valid gzip stream
    assert by_tag(packed_events(out)) == by_tag(EVENTTIME_EXPECTED)
    assert by_tag(events(run_ok(CAT, [], out))) == by_tag(EVENTTIME_EXPECTED)


def unpack_raw(data):
    u = msgpack.Unpacker(raw=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))
    u.feed(data)
    return list(u)


B64_CHUNK = re.compile(r"^[A-Za-z0-9+/]{22}==$")


@pytest.mark.parametrize("gz", [False, True])
def test_msgpack_output_chunk(gz, tmp_path):
    args = ["-o", "msgpack", "--chunk"] + (["--compress", "gzip"] if gz else [])
    out = cat_file(tmp_path, args, EVENTTIME_STREAM)
    msgs = unpack_raw(out)
    assert len(msgs) == 3
    chunks = []
    for tag, _payload, opt in msgs:
        keys = ["size", "compressed", "chunk"] if gz else ["size", "chunk"]
        assert list(opt) == keys
        c = opt["chunk"]
        assert isinstance(c, str) and len(c) == 24 and B64_CHUNK.match(c), c
        assert len(base64.b64decode(c)) == 16
        chunks.append(c)
    assert len(set(chunks)) == 3  # a fresh id per message
    assert by_tag(packed_events(out)) == by_tag(EVENTTIME_EXPECTED)


def test_compress_text_is_plain():
    a = run_ok(CAT, ["-o", "msgpack", "--compress", "text"], EVENTTIME_STREAM)
    for tag, payload, opt in unpack_raw(a):
        assert list(opt) == ["size"]
    assert by_tag(packed_events(a)) == by_tag(EVENTTIME_EXPECTED)


# ---------------------------------------------------------------------------
# JSON input
# ---------------------------------------------------------------------------

# Hand-written JSON lines and the exact record text lf-cat must print.
JSONL = [
    (r'{"time":1441588984,"msg":"hello","n":1}',
     T, 0, r'{"msg":"hello","n":1}'),
    (r'{"msg":"ключ","emoji":"😀","esc":"\u00e9\u0000\n\t\"\\/\ud83d\ude00",'
     r'"nested":{"a":[1,[2,{"b":null}],{}],"e":[]},"time":"1441588984.5"}',
     T, 500000000,
     '{"msg":"ключ","emoji":"😀","esc":"é\\u0000\\n\\t\\"\\\\/😀",'
     '"nested":{"a":[1,[2,{"b":null}],{}],"e":[]}}'),
    (r'{"big":18446744073709551615,"neg":-9223372036854775808,"neg2":-1,'
     r'"huge":18446744073709551616,"f":1.5,"g":-0.25,"h":1e300,"i":1.0,'
     r'"j":0.1,"k":-0.0,"t":true,"f2":false,"z":null,"time":1441588984.123456789}',
     T, 123456789,
     '{"big":18446744073709551615,"neg":-9223372036854775808,"neg2":-1,'
     '"huge":1.8446744073709552e+19,"f":1.5,"g":-0.25,"h":1e+300,"i":1.0,'
     '"j":0.1,"k":-0.0,"t":true,"f2":false,"z":null}'),
    (r'{"dup":1,"dup":2,"time":1441588985}', T + 1, 0, r'{"dup":1,"dup":2}'),
    ('  {"time" : 1441588986 ,  "spaces" : [ 1 , 2 ] }  \r', T + 2, 0,
     r'{"spaces":[1,2]}'),
    (r'{"nested_time":{"time":5},"time":1441588987.000000001}', T + 3, 1,
     r'{"nested_time":{"time":5}}'),
]
JSONL_TEXT = ("\n".join(j for j, *_ in JSONL) + "\n\n").encode()


def expected_record(src):
    """The record lf makes of a JSON line: the "time" key taken out, and an
    integer too big for 64 bits made a float (Python keeps it an int)."""
    return OMap((k, float(v) if isinstance(v, int) and not isinstance(v, bool)
                 and not -2**63 <= v < 2**64 else v)
                for k, v in loads(src) if k != "time")


def test_json_records_to_json():
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "app.test"], JSONL_TEXT)
    lines = out.split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(JSONL) + 1
    for line, (_, sec, nsec, rec) in zip(lines, JSONL):
        assert line == ('{"tag":"app.test","time":%s,"record":%s}'
                        % (ts(sec, nsec), rec)).encode()
    # and the values, as an independent JSON parser reads them
    got = events(out)
    for (tag, t, r), (src, sec, nsec, _) in zip(got, JSONL):
        want = expected_record(src)
        assert (tag, t) == ("app.test", ts(sec, nsec))
        assert r == canon(want)


def test_json_records_to_msgpack(tmp_path):
    out = cat_file(tmp_path, ["-i", "json", "-t", "app.test", "-o", "msgpack"],
                   JSONL_TEXT)
    msgs = decode_packed(out)
    assert len(msgs) == 1 and msgs[0][0] == "app.test"
    assert list(msgs[0][1].items()) == [("size", len(JSONL))]
    got = packed_events(out)
    assert len(got) == len(JSONL)
    for (tag, t, r), (src, sec, nsec, _) in zip(got, JSONL):
        want = expected_record(src)
        assert (tag, t, r) == ("app.test", ts(sec, nsec), canon(want))
    # ints stay ints of the right sign, floats floats, big ones as floats
    rec = dict(msgs[0][2][2][1])
    assert rec["big"] == 18446744073709551615
    assert rec["neg"] == -9223372036854775808
    assert type(rec["huge"]) is float and rec["huge"] == 18446744073709551616.0
    assert type(rec["i"]) is float and rec["t"] is True and rec["z"] is None


def test_json_record_without_time_gets_now():
    before = int(time.time())
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "now"], b'{"a":1}\n{"b":{"time":1}}\n')
    after = int(time.time()) + 1
    got = events(out)
    assert [(g[0], g[2]) for g in got] == [
        ("now", canon({"a": 1})), ("now", canon({"b": {"time": 1}}))]
    for g in got:
        assert before <= int(g[1].split(".")[0]) <= after


def test_json_default_time_key_is_time_only_with_tag():
    # --time-key renames it; "time" then stays in the record
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "x", "--time-key", "ts"],
                 b'{"time":"keep","ts":1441588984}\n')
    assert events(out) == [ev("x", T, 0, {"time": "keep"})]


def test_json_from_file_and_dash(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_bytes(b'{"a":1,"time":1441588984}\n')
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "t.f", f, "-", f],
                 b'{"b":2,"time":1441588985}\n')
    assert events(out) == [ev("t.f", T, 0, {"a": 1}), ev("t.f", T + 1, 0, {"b": 2}),
                           ev("t.f", T, 0, {"a": 1})]


# Records that print the same after a text round trip (json.h: not
# invalid UTF-8, not an EventTime inside a record); bin and other ext come
# back as the str of their base64, which prints the same.
RICH = b"".join([
    STREAM,
    packb(["rich", et(T, 42), {
        "s": "ünïcödé 日本 😀", "ctl": "\x00\x01\x1f\x7f\"\\/\n\r\t\b\f",
        "i": [0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536,
              2**32, 2**63 - 1, 2**64 - 1, -2**31, -2**63],
        "f": [0.1, 1.0, -0.0, 1e300, 2.5e-300, 123456789.123, 1e16, 3.0e-5],
        "b": [True, False, None], "bin": b"\x00\xff\xfe", "e": {}, "a": [],
        "deep": {"x": [{"y": [[{"z": "w"}]]}]},
        1: "int key", "ext": msgpack.ExtType(5, b"abc"),
    }]),
    packb(["other", [[T + 7, {"": ""}], [et(T, 999999999), {"k": 1.5}]]]),
])


def test_envelope_round_trip_json():
    a = run_ok(CAT, ["-o", "json"], RICH)
    assert len(a.split(b"\n")) == len(EXPECTED) + 3 + 1
    b = run_ok(CAT, ["-i", "json", "-o", "json"], a)
    assert b == a
    assert run_ok(CAT, ["-i", "json", "-o", "json"], b) == a


def tag_groups(text):
    """JSON lines grouped by tag, in order within each tag."""
    d = {}
    for line in text.split(b"\n")[:-1]:
        d.setdefault(json.loads(line)["tag"], []).append(line)
    return d


def test_envelope_round_trip_pipeline_one_tag_run():
    """lf-cat -o json | lf-cat -i json | lf-cat -o json is byte-identical
    when each tag's events come together (re-batching groups by tag)."""
    data = (packb(["one", [[et(T, i), {"i": i, "s": "é\u2028"}] for i in range(5)]])
            + packb(["two", entries((et(T, 9), {"bin": b"\x00\xff"}),
                                    (T + 1, {"f": [0.1, -0.0, 1e300]}))]))
    a = run_ok(CAT, ["-o", "json"], data)
    rcs, out, errs = pipeline([(CAT, ["-o", "json"]), (CAT, ["-i", "json"]),
                               (CAT, ["-o", "json"])], data)
    assert rcs == [0, 0, 0] and errs == [b"", b"", b""]
    assert out == a


def test_envelope_round_trip_pipeline_rich():
    # lf-cat -o json | lf-cat -i json | lf-cat -o json, tags interleaved
    a = run_ok(CAT, ["-o", "json"], RICH)
    rcs, out, errs = pipeline([(CAT, ["-o", "json"]), (CAT, ["-i", "json"]),
                               (CAT, ["-o", "json"])], RICH)
    assert rcs == [0, 0, 0] and errs == [b"", b"", b""]
    assert tag_groups(out) == tag_groups(a)
    assert sorted(out.split(b"\n")) == sorted(a.split(b"\n"))


def test_envelope_round_trip_msgpack():
    a = run_ok(CAT, ["-o", "json"], RICH)
    m = run_ok(CAT, ["-i", "json", "-o", "msgpack"], a)
    out = run_ok(CAT, ["-o", "json"], m)
    assert tag_groups(out) == tag_groups(a)
    assert by_tag(packed_events(m, strict=True)) == by_tag(events(a))


def test_records_pipeline():
    """lf-cat -i json -t app.test < records.jsonl | lf-cat"""
    rcs, out, errs = pipeline([(CAT, ["-i", "json", "-t", "app.test"]), (CAT, [])],
                              JSONL_TEXT)
    assert rcs == [0, 0] and errs == [b"", b""]
    lines = out.split(b"\n")
    assert len(lines) == len(JSONL) + 1 and lines[-1] == b""
    for line, (_, sec, nsec, rec) in zip(lines, JSONL):
        assert line == ('{"tag":"app.test","time":%s,"record":%s}'
                        % (ts(sec, nsec), rec)).encode()


def test_json_text_without_i_json():
    rc, out, err = run(CAT, [], b'{"tag":"a","time":1,"record":{}}\n')
    assert rc == 65 and out == b""
    assert len(log_msgs(err)) == 1


def test_envelope_time_forms():
    text = (b'{"record":{"a":1},"time":"1441588984.5","tag":"x"}\n'
            b'{"tag":"x","time":1441588984,"record":{}}\n'
            b'{"tag":"x","time":1.441588984123456789e9,"record":{}}\n')
    assert events(run_ok(CAT, ["-i", "json", "-o", "json"], text)) == [
        ev("x", T, 500000000, {"a": 1}), ev("x", T, 0, {}),
        ev("x", T, 123456789, {})]


# ---------------------------------------------------------------------------
# --time-key / --time-format / --keep-time-key
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,value", [
    ("%Y-%m-%dT%H:%M:%S%z", "2015-09-07T10:23:04+0900"),
    ("%Y-%m-%dT%H:%M:%S%z", "2015-09-07T01:23:04Z"),
    ("%Y-%m-%dT%H:%M:%S%z", "2015-09-06T21:23:04-04:00"),
    ("%d/%b/%Y:%H:%M:%S %z", "07/Sep/2015:01:23:04 +0000"),
    ("%d/%b/%Y:%H:%M:%S %z", "06/Sep/2015:18:23:04 -0700"),
])
def test_time_format(fmt, value):
    line = json.dumps({"host": "h", "ts": value, "n": 1}).encode() + b"\n"
    args = ["-i", "json", "-o", "json", "-t", "web", "--time-key", "ts", "--time-format", fmt]
    out = run_ok(CAT, args, line)
    assert out == (b'{"tag":"web","time":1441588984.000000000,'
                   b'"record":{"host":"h","n":1}}\n')
    out = run_ok(CAT, args + ["--keep-time-key"], line)
    assert events(out) == [ev("web", T, 0, {"host": "h", "ts": value, "n": 1})]


def test_time_format_fraction():
    line = b'{"t":"2015-09-07T01:23:04.123456789Z"}\n'
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "x", "--time-key", "t",
                       "--time-format", "%Y-%m-%dT%H:%M:%S.%N%z"], line)
    assert events(out) == [ev("x", T, 123456789, {})]


def test_time_format_without_zone_utc_and_local():
    line = b'{"t":"2015-09-07 01:23:04"}\n'
    args = ["-i", "json", "-o", "json", "-t", "x", "--time-key", "t",
            "--time-format", "%Y-%m-%d %H:%M:%S"]
    assert events(run_ok(CAT, args + ["--utc"], line, env={"TZ": "JST-9"})) == \
        [ev("x", T, 0, {})]
    # local time in a zone 9 hours east of UTC
    assert events(run_ok(CAT, args, line, env={"TZ": "JST-9"})) == \
        [ev("x", T - 9 * 3600, 0, {})]


def test_keep_time_key_numeric():
    out = run_ok(CAT, ["-i", "json", "-o", "json", "-t", "k", "--keep-time-key"],
                 b'{"a":1,"time":1441588984.25,"b":2}\n')
    assert out == (b'{"tag":"k","time":1441588984.250000000,'
                   b'"record":{"a":1,"time":1441588984.25,"b":2}}\n')


def test_bad_time_is_a_bad_line():
    text = (b'{"time":1441588984,"ok":1}\n'
            b'{"ts":"yesterday"}\n'
            b'{"time":1441588985,"ok":2}\n')
    rc, out, err = run(CAT, ["-i", "json", "-o", "json", "-t", "x"], text.replace(b'"ts"', b'"time"'))
    assert rc == 65
    assert events(out) == [ev("x", T, 0, {"ok": 1}), ev("x", T + 1, 0, {"ok": 2})]
    lines = log_msgs(err)
    assert len(lines) == 1 and "line 2" in lines[0] and "yesterday" in lines[0], lines
    rc, out, err = run(CAT, ["-i", "json", "-o", "json", "-t", "x", "--time-key", "ts",
                             "--time-format", "%Y-%m-%d"], text)
    assert rc == 65
    assert len(events(out)) == 2
    assert "line 2" in err.decode()


# ---------------------------------------------------------------------------
# Text formats
# ---------------------------------------------------------------------------

def test_ltsv():
    rec = {"host": "1.2.3.4", "n": 5, "msg": "a\tb\nc", "m": {"a": [1, None]},
           "z": None, "b": b"\x00\x01", "f": 1.0, "t": True, "u": "ü"}
    out = run_ok(CAT, ["-o", "ltsv"], packb(["x", T, rec]) + packb(["y", T, {"k": "v"}]))
    assert out == ("host:1.2.3.4\tn:5\tmsg:a b c\tm:{\"a\":[1,null]}\tz:null\t"
                   "b:AAE=\tf:1.0\tt:true\tu:ü\nk:v\n").encode()


def test_out_file_utc():
    out = run_ok(CAT, ["-o", "out_file", "--utc"], EVENTTIME_STREAM)
    assert out == (b'2015-09-07T01:23:04Z\to.a\t{"a":1}\n'
                   b'2015-09-07T01:23:04Z\to.b\t{"b":1}\n'
                   b'2015-09-07T01:23:04Z\to.b\t{"b":2}\n'
                   b'2015-09-07T01:23:04Z\to.a\t{"a":2}\n'
                   b'2015-09-07T01:23:04Z\to.c\t{"c":1}\n')


@pytest.mark.parametrize("tz,text", [
    ("JST-9", b"2015-09-07T10:23:04+09:00"),
    ("XST+2:30", b"2015-09-06T22:53:04-02:30"),
    ("UTC0", b"2015-09-07T01:23:04+00:00"),
])
def test_out_file_local(tz, text):
    out = run_ok(CAT, ["-o", "out_file"], packb(["t.l", et(T, 999), {"a": "b"}]),
                 env={"TZ": tz})
    assert out == text + b'\tt.l\t{"a":"b"}\n'


# ---------------------------------------------------------------------------
# Values JSON cannot hold as they are
# ---------------------------------------------------------------------------

def test_bin_and_invalid_utf8_print_safely():
    rec = (b"\x86"
           + packb("bin") + packb(b"\x00\xff\xfe\x80")
           + packb("bad") + raw_str(b"a\xffb\xc3(")
           + packb("overlong") + raw_str(b"\xc0\x80")
           + packb("surrogate") + raw_str(b"\xed\xa0\x80")
           + raw_str(b"k\xfe") + packb("bad key")
           + packb("ext") + packb(msgpack.ExtType(7, b"\x01\x02\x03")))
    msg = b"\x93" + raw_str(b"t\xffx") + packb(T) + rec
    out = run_ok(CAT, [], msg)
    assert out == (b'{"tag":"t\\u00ffx","time":1441588984.000000000,"record":{'
                   b'"bin":"AP/+gA==","bad":"a\\u00ffb\\u00c3(",'
                   b'"overlong":"\\u00c0\\u0080",'
                   b'"surrogate":"\\u00ed\\u00a0\\u0080",'
                   b'"k\\u00fe":"bad key","ext":"AQID"}}\n')
    out.decode("utf-8", errors="strict")
    d = json.loads(out)
    assert base64.b64decode(d["record"]["bin"]) == b"\x00\xff\xfe\x80"
    assert d["record"]["bad"] == "a\xffb\xc3("


def test_container_and_other_keys():
    rec = (b"\x85" + packb([1, 'a"b\\']) + packb(1) + packb([]) + packb(2)
           + packb(None) + packb(3) + packb(1.5) + packb(4)
           + packb({"m": "\\"}) + packb(5))
    out = run_ok(CAT, [], b"\x93" + packb("k") + packb(T) + rec)
    d = json.loads(out, object_pairs_hook=list)
    assert d[2][1] == [('[1,"a\\"b\\\\"]', 1), ("[]", 2), ("null", 3), ("1.5", 4),
                       ('{"m":"\\\\"}', 5)]
    # each key is the JSON text of the value
    assert json.loads(d[2][1][0][0]) == [1, 'a"b\\']
    assert json.loads(d[2][1][4][0]) == {"m": "\\"}


def test_odd_values_in_records():
    rec = {"et": et(T, 7), 1: 2, "f32": None, "nan": float("nan"),
           "inf": float("-inf")}
    msg = packb(["x", T, rec])
    # a float32 by hand in place of "f32"'s nil
    msg = msg.replace(packb("f32") + b"\xc0", packb("f32") + b"\xca" + struct.pack(">f", 0.1))
    out = run_ok(CAT, [], msg)
    assert out == (b'{"tag":"x","time":1441588984.000000000,"record":{'
                   b'"et":1441588984.000000007,"1":2,"f32":0.10000000149011612,'
                   b'"nan":null,"inf":null}}\n')


# ---------------------------------------------------------------------------
# Malformed input: exit 65, the offset on stderr, the good events printed
# ---------------------------------------------------------------------------

GOOD1 = packb(["good", T, {"n": 1}])
GOOD2 = packb(["good", [[et(T, 2), {"n": 2}]]])
GOOD3 = packb(["good", entries((et(T, 3), {"n": 3})), {"size": 1}])
G1 = ev("good", T, 0, {"n": 1})
G2 = ev("good", T, 2, {"n": 2})
G3 = ev("good", T, 3, {"n": 3})


def bad_run(args, data, nlines=1):
    rc, out, err = run(CAT, args, data)
    assert rc == 65, (rc, err)
    lines = log_msgs(err)
    assert len(lines) == nlines, lines
    return events(out), lines


def test_bad_byte_c1():
    off = len(GOOD1) + len(GOOD2)
    evs, lines = bad_run([], GOOD1 + GOOD2 + b"\xc1" + GOOD3)
    assert evs == [G1, G2]
    assert lines == ["stdin: offset %d: invalid msgpack byte 0xc1" % off]


def test_bad_byte_c1_inside_a_message(tmp_path):
    bad = packb(["bad", T, {"k": None}])
    bad = bad[:-1] + b"\xc1"  # the nil value becomes 0xc1
    off = len(GOOD1) + len(bad) - 1
    f = tmp_path / "in.bin"
    f.write_bytes(GOOD1 + bad + GOOD2)
    rc, out, err = run(CAT, [f])
    assert rc == 65
    assert events(out) == [G1]
    assert log_msgs(err) == ["%s: offset %d: invalid msgpack byte 0xc1" % (f, off)]


def test_truncated_final_message():
    off = len(GOOD1) + len(GOOD2)
    evs, lines = bad_run([], GOOD1 + GOOD2 + GOOD3[:-3])
    assert evs == [G1, G2]
    assert re.fullmatch(r"stdin: offset %d: .*" % off, lines[0]), lines
    assert "ends inside a message" in lines[0] and "%d bytes" % (len(GOOD3) - 3) in lines[0]


def test_non_array_messages_are_skipped():
    bad = [packb({"a": 1}), packb(5), packb("str"), packb(["tagonly"]),
           packb([1, T, {}])]
    data = GOOD1
    offs = []
    for b in bad:
        offs.append(len(data))
        data += b
    data += GOOD2 + GOOD3
    evs, lines = bad_run([], data, nlines=len(bad))
    assert evs == [G1, G2, G3]
    for off, line in zip(offs, lines):
        assert line.startswith("stdin: offset %d: " % off), (off, line)
    assert lines[0].endswith("message is not an array")
    assert lines[1].endswith("message is not an array")
    assert lines[2].endswith("message is not an array")
    assert lines[3].endswith("message has 1 elements")
    assert lines[4].endswith("tag is not a string")


@pytest.mark.parametrize("payload,what", [
    (b"\x1f\x8b\x08\x00garbagegarbage", "gzip"),
    (gzip.compress(entries((T, {"a": 1})))[:-10], "gzip"),  # cut short
    (gzip.compress(entries((T, {"a": 1}))) + b"trailing junk", "gzip"),
    (b"not gzip at all", "gzip"),
    (gzip.compress(b"\xc1\xc1"), "not valid msgpack"),
], ids=["garbage", "cut-short", "trailing-junk", "not-gzip", "not-msgpack"])
def test_bad_gzip_payload(payload, what):
    bad = packb(["z", payload, {"compressed": "gzip", "size": 1}])
    off = len(GOOD1)
    evs, lines = bad_run([], GOOD1 + bad + GOOD2)
    assert evs == [G1, G2]
    assert lines[0].startswith("stdin: offset %d: " % off), lines
    assert what in lines[0], lines


def test_every_bad_message_is_accounted_for():
    """Warnings are rate-limited, but none may vanish without a trace:
    what stderr says must add up to the 15 bad messages."""
    data = packb({"a": 1}) * 15 + GOOD1
    rc, out, err = run(CAT, [], data)
    assert rc == 65 and events(out) == [G1]
    msgs = log_msgs(err)
    shown = sum(1 for m in msgs if re.fullmatch(
        r"stdin: offset \d+: message is not an array", m))
    held = sum(int(n) for m in msgs for n in re.findall(r"(\d+) similar warnings? suppressed", m))
    summary = any(re.search(r"\b15 bad messages?\b", m) for m in msgs)
    assert shown + held == 15 or summary, msgs


def test_unsupported_compression():
    bad = packb(["z", b"\x28\xb5\x2f\xfd", {"compressed": "zstd"}])
    evs, lines = bad_run([], GOOD1 + bad + GOOD2)
    assert evs == [G1, G2]
    assert lines == ['stdin: offset %d: unsupported compression "zstd"'
                     % len(GOOD1)]


def sized_message(n):
    """A Message of exactly n bytes, and the length of its string."""
    for k in range(200):
        m = packb(["big", T, {"k": "x" * k}])
        if len(m) == n:
            return m, k
    raise AssertionError(n)


def test_max_message_size_boundary():
    m64, k = sized_message(64)
    out = run_ok(CAT, ["--max-message-size", "64"], GOOD1 + m64 + GOOD2)
    assert events(out) == [G1, ev("big", T, 0, {"k": "x" * k}), G2]


@pytest.mark.parametrize("big", [
    sized_message(65)[0],
    packb(["big", T, {"k": "x" * 200}]),
    packb(["big", [[T, {"k": "v" * 10}]] * 5]),
], ids=["65-bytes", "long-str", "many-entries"])
def test_over_max_message_size(big):
    off = len(GOOD1) + len(GOOD2)
    evs, lines = bad_run(["--max-message-size", "64"], GOOD1 + GOOD2 + big + GOOD3)
    assert evs == [G1, G2]
    # the offset of the message that is too large, not of some byte inside it
    assert lines == ["stdin: offset %d: message larger than the size limit"
                     % off]


def entry_of_size(n):
    for k in range(2000):
        e = entries((et(T, 0), {"k": "x" * k}))
        if len(e) == n:
            return e, k
    raise AssertionError(n)


def test_max_decompressed_size():
    ok, k = entry_of_size(1024)
    over, _ = entry_of_size(1025)
    m_ok = packb(["z", gzip.compress(ok), {"compressed": "gzip"}])
    m_over = packb(["z", gzip.compress(over), {"compressed": "gzip"}])
    bomb = packb(["z", gzip_members(entries((T, {"a": "x" * 100000})),
                                    entries((T, {"a": 1}))),
                  {"compressed": "gzip"}])
    assert len(bomb) < 1024
    data = GOOD1 + m_ok + m_over + GOOD2 + bomb + GOOD3
    evs, lines = bad_run(["--max-decompressed-size", "1k"], data, nlines=2)
    assert evs == [G1, ev("z", T, 0, {"k": "x" * k}), G2, G3]
    o1 = len(GOOD1) + len(m_ok)
    o2 = o1 + len(m_over) + len(GOOD2)
    assert lines == [
        "stdin: offset %d: gzip: decompressed size exceeds the limit" % o
        for o in (o1, o2)]


def test_invalid_events_inside_forward():
    bad_entries = [
        [T, "notamap"], [-1, {}], [None, {}], 5, [T], ["1441588984", {}],
        [et(T, 1000000000), {}], [msgpack.ExtType(1, b"12345678"), {}],
        [msgpack.ExtType(0, b"1234"), {}], [[[T, {}], {}], {}],
        [float("nan"), {}], [4294967296.0, {}], [-1.0, {}], [2**32, {}],
    ]
    fwd = packb(["mix", [[T, {"ok": 1}]] + bad_entries + [[et(T, 5), {"ok": 2}]],
                 {"size": 2 + len(bad_entries)}])
    packed = packb(["mix", entries((T, {"ok": 3}), (T, "nomap"), (et(T, 6), {"ok": 4})),
                    {"size": 3}])
    msg_bad = [packb(["mix", T, "notamap"]), packb(["mix", -5, {}]),
               packb(["mix", None, {}]), packb(["mix", T, [1]])]
    data = GOOD1 + fwd + packed + b"".join(msg_bad) + GOOD2
    evs, lines = bad_run([], data, nlines=2 + len(msg_bad))
    assert evs == [G1, ev("mix", T, 0, {"ok": 1}), ev("mix", T, 5, {"ok": 2}),
                   ev("mix", T, 0, {"ok": 3}), ev("mix", T, 6, {"ok": 4}), G2]
    off = len(GOOD1)
    want = ["stdin: offset %d: %d invalid events dropped"
            % (off, len(bad_entries)),
            "stdin: offset %d: 1 invalid events dropped"
            % (off + len(fwd))]
    off += len(fwd) + len(packed)
    for m in msg_bad:
        want.append("stdin: offset %d: 1 invalid events dropped" % off)
        off += len(m)
    assert lines == want


def test_invalid_events_with_msgpack_output():
    fwd = packb(["mix", [[T, {"ok": 1}], [T, "x"], [et(T, 5), {"ok": 2}]]])
    rc, out, err = run(CAT, ["-o", "msgpack"], fwd + packb(["mix", T, "x"]))
    assert rc == 65
    assert log_msgs(err) == [
        "stdin: offset 0: 1 invalid events dropped",
        "stdin: offset %d: 1 invalid events dropped" % len(fwd)]
    assert packed_events(out, strict=False) == [
        ev("mix", T, 0, {"ok": 1}), ev("mix", T, 5, {"ok": 2})]


def test_too_deep():
    deep = {"a": 1}
    for _ in range(40):
        deep = [deep]
    bad = packb(["deep", T, {"d": deep}])
    off = len(GOOD1)
    evs, lines = bad_run([], GOOD1 + bad + GOOD2)
    assert evs == [G1]
    m = re.fullmatch(r"stdin: offset (\d+): message nested too deep",
                     lines[0])
    assert m and off <= int(m.group(1)) < off + len(bad), lines


def test_bad_json_lines():
    text = (b'{"tag":"j","time":1,"record":{"n":1}}\n'
            b'{bad\n'
            b'{"tag":"j","time":2,"record":{"n":2}}\n'
            b'\n'
            b'[1,2]\n'
            b'{"tag":"j","time":3,"record":{"n":3},"extra":1}\n'
            b'{"tag":"j","record":{"n":4}}\n'
            b'{"tag":"j","time":5,"record":{"n":5}}\n')
    evs, lines = bad_run(["-i", "json", "-o", "json"], text, nlines=4)
    assert evs == [ev("j", 1, 0, {"n": 1}), ev("j", 2, 0, {"n": 2}),
                   ev("j", 5, 0, {"n": 5})]
    for n, line in zip((2, 5, 6, 7), lines):
        assert line.startswith("stdin: line %d: " % n), lines
    assert "missing \"time\"" in lines[3]
    assert "unexpected key \"extra\"" in lines[2]
    assert "not a JSON object" in lines[1]


def test_bad_json_values():
    text = (b'{"a":"\xff"}\n'                # not UTF-8
            b'{"time":5000000000}\n'         # past 2106
            b'{"time":-1}\n'                 # before 1970
            b'{"time":null}\n'
            b'{"time":[1]}\n'
            b'{"time":1,"time":1441588984}\n'  # the last one counts
            + b'{"a":' * 32 + b'1' + b'}' * 32 + b'\n')  # 32 levels
    evs, lines = bad_run(["-i", "json", "-o", "json", "-t", "x"], text, nlines=6)
    assert evs == [ev("x", T, 0, {})]
    for n, line in zip((1, 2, 3, 4, 5, 7), lines):
        assert line.startswith("stdin: line %d: " % n), lines
    assert "UTF8" in lines[0] or "UTF-8" in lines[0]
    assert "5000000000" in lines[1] and "-1" in lines[2]
    assert "31" in lines[5]


def nested_json(levels):
    s = '{"v":1}'
    for _ in range(levels - 1):
        s = '{"a":' + s + '}'
    return s


def test_deepest_record_round_trips(tmp_path):
    """A record 31 levels deep (the most -i json takes) goes through -o
    msgpack and back to the same JSON."""
    line = nested_json(31).encode() + b"\n"
    m = cat_file(tmp_path, ["-i", "json", "-t", "d", "--time-key", "none",
                            "-o", "msgpack"], line)
    out = run_ok(CAT, [], m)
    assert out.endswith((',"record":%s}\n' % nested_json(31)).encode())
    assert events(out)[0][2] == canon(json.loads(nested_json(31)))


def test_bad_json_record_lines(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"a":1,"time":1441588984}\n"str"\n{"a":\n{"a":2,"time":1441588985}\n')
    rc, out, err = run(CAT, ["-i", "json", "-o", "json", "-t", "r", f])
    assert rc == 65
    assert events(out) == [ev("r", T, 0, {"a": 1}), ev("r", T + 1, 0, {"a": 2})]
    lines = log_msgs(err)
    assert len(lines) == 2
    assert lines[0].startswith("%s: line 2: " % f)
    assert lines[1].startswith("%s: line 3: " % f)


def test_many_tags_msgpack(tmp_path):
    """More tags than the writer keeps open: each tag's events stay in
    order and none is lost."""
    data = b"".join(packb(["t%03d" % i, et(T, j), {"i": i, "j": j}])
                    for j in range(3) for i in range(100))
    out = cat_file(tmp_path, ["-o", "msgpack"], data)
    got = by_tag(packed_events(out))
    assert sorted(got) == ["t%03d" % i for i in range(100)]
    for i in range(100):
        assert got["t%03d" % i] == [ev("t%03d" % i, T, j, {"i": i, "j": j})
                                    for j in range(3)]


def test_entries_rewritten_in_place_order():
    """Canonical, rewritten and invalid entries mixed in one payload."""
    ents = (packb([et(T, 1), {"n": 1}]) + packb([1441588984.5, {"n": 2}])
            + packb([T, {"n": 3}]) + packb([T, "bad"])
            + packb([[et(T, 4), {}], {"n": 4}]) + b"\x92" + et_ext8(T, 5)
            + packb({"n": 5}) + packb([et(T, 6), {"n": 6}, "extra"]))
    m = packb(["rw", ents, {"size": 7}])
    want = [ev("rw", T, 1, {"n": 1}), ev("rw", T, 500000000, {"n": 2}),
            ev("rw", T, 0, {"n": 3}), ev("rw", T, 4, {"n": 4}),
            ev("rw", T, 5, {"n": 5}), ev("rw", T, 6, {"n": 6})]
    rc, out, err = run(CAT, [], m)
    assert rc == 65 and events(out) == want
    assert log_msgs(err) == ["stdin: offset 0: 1 invalid events dropped"]
    rc, out, err = run(CAT, ["-o", "msgpack"], m)
    assert rc == 65 and packed_events(out, strict=False) == want


def test_unreadable_input_keeps_earlier_output(tmp_path):
    """A read error (here a directory) exits 74, but the events of the
    files before it are written, as with a missing file."""
    f = tmp_path / "good.bin"
    f.write_bytes(GOOD1 + GOOD2)
    rc, out, err = run(CAT, [f, tmp_path])
    assert rc == 74
    assert log_msgs(err) == ["%s: read: Is a directory" % tmp_path]
    assert events(out) == [G1, G2]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def test_missing_file():
    rc, out, err = run(CAT, ["/nonexistent/x.bin"])
    assert rc == 66 and out == b""
    assert log_msgs(err) == [
        "/nonexistent/x.bin: No such file or directory"]


def test_missing_file_after_a_good_one(tmp_path):
    """The events already read are not lost when a later file is missing."""
    f = tmp_path / "good.bin"
    f.write_bytes(GOOD1 + GOOD2)
    rc, out, err = run(CAT, [f, tmp_path / "missing.bin"])
    assert rc == 66
    assert log_msgs(err) == ["%s: No such file or directory" % (tmp_path / "missing.bin")]
    assert events(out) == [G1, G2]


def test_missing_file_between_good_ones(tmp_path):
    """Like cat(1): report it, go on with the other files, exit 66."""
    f = tmp_path / "good.bin"
    f.write_bytes(GOOD1)
    rc, out, err = run(CAT, [f, tmp_path / "missing.bin", f])
    assert rc == 66
    assert log_msgs(err) == ["%s: No such file or directory" % (tmp_path / "missing.bin")]
    assert events(out) == [G1, G1]


@pytest.mark.parametrize("args", [
    ["--bogus"], ["-x"], ["-o", "xml"], ["-i", "yaml"], ["-t", "x"],
    ["--compress", "zstd"], ["--max-message-size", "8mb"],
    ["--max-decompressed-size", "0"], ["-o"],
])
def test_usage_errors(args):
    rc, out, err = run(CAT, args, GOOD1)
    assert rc == 64, (rc, err)
    assert out == b""
    assert err.startswith(b"lf-cat: ") or b"usage: lf-cat" in err or \
        b"lf-cat:" in err, err


def test_unknown_option_prints_usage():
    rc, out, err = run(CAT, ["--bogus"])
    assert rc == 64 and out == b""
    assert b"usage: lf-cat" in err and b"--bogus" in err


@pytest.mark.parametrize("opt", ["--help", "-h"])
def test_help(opt):
    out = run_ok(CAT, [opt])
    assert out.startswith(b"usage: lf-cat ")
    for o in (b"-i msgpack|json", b"-o json|ltsv|out_file|msgpack", b"--time-key",
              b"--time-format", b"--keep-time-key", b"--utc", b"--compress",
              b"--chunk", b"--max-message-size", b"--max-decompressed-size"):
        assert o in out, o


def test_version():
    out = run_ok(CAT, ["--version"])
    assert re.fullmatch(rb"lf-cat \d+\.\d+\.\d+\n", out), out
    assert out == b"lf-cat 0.1.0\n"


# ---------------------------------------------------------------------------
# Volume: a 5 MB stream through a pipe
# ---------------------------------------------------------------------------

def big_stream(n):
    parts = []
    i = 0
    while i < n:
        if i % 300 < 100:  # Message mode
            parts.append(packb(["vol.m", et(T + i, i), {"n": i, "pad": "p" * 80}]))
            i += 1
        else:  # Forward batches of 100, then PackedForward batches
            k = min(100, n - i)
            batch = [[et(T + j, j), {"n": j, "pad": "p" * 80}] for j in range(i, i + k)]
            if i % 300 < 200:
                parts.append(packb(["vol.m", batch, {"size": k}]))
            else:
                parts.append(packb(["vol.m", b"".join(packb(e) for e in batch),
                                    {"size": k}]))
            i += k
    return b"".join(parts)


N_BIG = 50000
BIG = big_stream(N_BIG)


def test_big_stream_through_pipe_json():
    assert len(BIG) > 5 * 1000 * 1000
    p = popen(CAT, ["-o", "json"])
    out, err = p.communicate(BIG, timeout=120)
    assert (p.returncode, err) == (0, b"")
    lines = out.split(b"\n")
    assert len(lines) == N_BIG + 1 and lines[-1] == b""
    for i in (0, 1, 99, 100, 12345, N_BIG - 1):
        assert lines[i] == ('{"tag":"vol.m","time":%s,"record":{"n":%d,"pad":"%s"}}'
                            % (ts(T + i, i), i, "p" * 80)).encode()
    ns = [int(m) for m in re.findall(rb'"n":(\d+),', out)]
    assert ns == list(range(N_BIG))


def test_big_stream_through_pipe_msgpack():
    rcs, out, errs = pipeline([(CAT, ["-o", "msgpack"]), (CAT, ["-o", "msgpack"])],
                              BIG, timeout=120)
    assert rcs == [0, 0] and errs == [b"", b""]
    msgs = decode_packed(out)
    assert sum(len(e) for _, _, e in msgs) == N_BIG
    ns = [dict(e[1])["n"] for _, _, ents in msgs for e in ents]
    assert ns == list(range(N_BIG))
    assert all(entry_t == ts(T + n, n) for n, entry_t in
               zip(ns, (ts(*struct.unpack(">II", e[0].data))
                        for _, _, ents in msgs for e in ents)))
