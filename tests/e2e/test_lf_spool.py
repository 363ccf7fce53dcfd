"""End-to-end tests of lf-spool (stat, ls, requeue, fsck, purge) and of
lf-cat reading chunk files.

Spools and chunk files are made by tests/e2e/lfchunk.py, an encoder of
lib/chunk.h's layout independent of lf's own (Python's zlib and msgpack).
"""
import fcntl
import json
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import (  # noqa: E402
    _env, check_no_sanitizer, decode_packed, ev, events, packb,
    packed_events, run, run_ok, tool,
)
import lfchunk  # noqa: E402
from lfchunk import (  # noqa: E402
    corrupt_chunk, encode_chunk, list_chunks, make_spool, read_reason,
    write_chunk,
)

SPOOL = "lf-spool"
CAT = "lf-cat"
T0 = 1700000000                      # 2023-11-14T22:13:20Z
T0_ISO = "2023-11-14T22:13:20Z"


def evs(n, tag_no=0, start=T0):
    return [((start + i, i), {"n": i, "t": tag_no}) for i in range(n)]


def size(spool, folder, name):
    return os.path.getsize(os.path.join(spool, folder, name))


def write_reason(spool, name, text):
    with open(os.path.join(spool, "dead", name + ".reason"), "w") as f:
        f.write(text)


def stdout_lines(out):
    return out.decode().splitlines()


def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1000000))


@pytest.fixture
def spool(tmp_path):
    return make_spool(tmp_path / "spool")


# ---------------------------------------------------------------------------
# A spool with every kind of chunk.
# ---------------------------------------------------------------------------

def populate(spool, now_us):
    """3 ready (1, 2, 3 events), 1 staged (2 committed events and a torn
    tail), 2 dead (4 and 5 events).  Returns a dict of names."""
    ready = [write_chunk(spool, "app.r", evs(i + 1, i),
                         created_us=now_us - 200_000_000 + i,
                         seal_us=now_us - 100_000_000 + i)
             for i in range(3)]
    staged = write_chunk(spool, "app.s", evs(2), state="S", dirname="tmp",
                         created_us=T0 * 1000000)
    with open(os.path.join(spool, "tmp", staged), "ab") as f:
        f.write(b"\x92\xd7\x00torn")        # an uncommitted, cut commit
    dead = [write_chunk(spool, "app.d", evs(4 + i), dirname="dead",
                        created_us=T0 * 1000000 + i,
                        seal_us=T0 * 1000000 + i) for i in range(2)]
    write_reason(spool, dead[0], "refused: 400 Bad Request\nbody: nope\n")
    write_reason(spool, dead[1], "retry limit reached after 18 retries\n")
    return {"ready": ready, "staged": [staged], "dead": dead}


def test_stat_numbers_and_json(spool):
    now_us = int(time.time() * 1e6)
    names = populate(spool, now_us)
    with open(os.path.join(spool, "state", "retry"), "w") as f:
        f.write("start=1700000000.250000 steps=3 next=4000000000.500000 "
                "reached=0 timedout=0\n")
    rb = sum(size(spool, "new", n) for n in names["ready"])
    sb = size(spool, "tmp", names["staged"][0])
    db = sum(size(spool, "dead", n) for n in names["dead"])

    out = stdout_lines(run_ok(SPOOL, ["stat", spool]))
    assert out[0] == "spool   " + spool
    assert out[1].split() == ["chunks", "events", "bytes"]
    assert out[2].split() == ["ready", "3", "6", str(rb)]
    assert out[3].split() == ["staged", "1", "2", str(sb)]
    assert out[4].split() == ["dead", "2", "9", str(db)]
    # the columns are aligned
    assert len({len(line) for line in out[1:5]}) == 1, out
    m = re.match(r"^oldest  1m(\d\d)s \(sealed (\S+)\)$", out[5])
    assert m and 40 <= int(m.group(1)) <= 59, out[5]
    assert m.group(2) == iso(now_us - 100_000_000)
    assert re.match(r"^retry   3 steps since 2023-11-14T22:13:20Z, next "
                    r"2096-10-02T07:06:40Z \(in \d+d\d\dh\d\dm\d\ds\)$",
                    out[6]), out[6]
    assert len(out) == 7

    j = json.loads(run_ok(SPOOL, ["stat", "--json", spool]))
    assert list(j) == ["spool", "ready", "staged", "dead", "oldest_ready",
                       "retry"]
    assert j["spool"] == spool
    assert j["ready"] == {"chunks": 3, "events": 6, "bytes": rb,
                          "unreadable": 0}
    assert j["staged"] == {"chunks": 1, "events": 2, "bytes": sb,
                           "unreadable": 0}
    assert j["dead"] == {"chunks": 2, "events": 9, "bytes": db,
                         "unreadable": 0}
    o = j["oldest_ready"]
    assert o["name"] == names["ready"][0]
    assert o["sealed"] == pytest.approx((now_us - 100_000_000) / 1e6, abs=1e-6)
    assert 100 <= o["age"] < 160
    r = j["retry"]
    assert r["active"] is True and r["steps"] == 3
    assert r["start"] == 1700000000.25 and r["next"] == 4000000000.5
    assert r["reached_timeout"] is False and r["timed_out"] is False
    assert 0 < r["next_in"] <= 4000000000.5 - time.time() + 1


def test_stat_empty_and_retry_none(spool):
    out = stdout_lines(run_ok(SPOOL, ["stat", spool]))
    assert [line.split() for line in out[2:]] == [
        ["ready", "0", "0", "0"], ["staged", "0", "0", "0"],
        ["dead", "0", "0", "0"]]
    j = json.loads(run_ok(SPOOL, ["stat", "--json", spool]))
    assert j["oldest_ready"] is None and j["retry"] is None

    with open(os.path.join(spool, "state", "retry"), "w") as f:
        f.write("none\n")
    out = stdout_lines(run_ok(SPOOL, ["stat", spool]))
    assert out[-1] == "retry   none"
    assert json.loads(run_ok(SPOOL, ["stat", "--json", spool]))["retry"] == \
        {"active": False}

    with open(os.path.join(spool, "state", "retry"), "w") as f:
        f.write("garbage\n")
    rc, out, err = run(SPOOL, ["stat", "--json", spool])
    assert rc == 0 and b"state/retry" in err
    assert "error" in json.loads(out)["retry"]


def test_stat_oldest_uses_created_without_seal_time(spool):
    # a requeued chunk that lf-buffer's recovery buried under its tmp name
    data, cid = encode_chunk("app.x", evs(1), created_us=T0 * 1000000)
    with open(os.path.join(spool, "new", cid.hex() + ".chunk"), "wb") as f:
        f.write(data)
    j = json.loads(run_ok(SPOOL, ["stat", "--json", spool]))
    assert j["oldest_ready"]["sealed"] == T0


def test_stat_counts_unreadable(spool):
    good = write_chunk(spool, "app.a", evs(2))
    bad = write_chunk(spool, "app.a", evs(3), corrupt="bad-header-crc")
    rc, out, err = run(SPOOL, ["stat", "--json", spool])
    assert rc == 0
    assert ("new/%s" % bad).encode() in err
    j = json.loads(out)
    assert j["ready"] == {
        "chunks": 2, "events": 2, "unreadable": 1,
        "bytes": size(spool, "new", good) + size(spool, "new", bad)}


# ---------------------------------------------------------------------------
# ls
# ---------------------------------------------------------------------------

def test_ls_order_and_fields(spool):
    now_us = int(time.time() * 1e6)
    # written out of FIFO order: the name's seal time decides
    late = write_chunk(spool, "app.late", evs(1), seal_us=now_us + 5,
                       created_us=T0 * 1000000)
    early = write_chunk(spool, "app.early", evs(2), seal_us=now_us,
                        created_us=(T0 + 60) * 1000000)
    # staged: in the order they were created, not by name
    s2 = write_chunk(spool, "app.s2", evs(1), state="S", dirname="tmp",
                     seal_us=1, created_us=(T0 + 2) * 1000000)
    s1 = write_chunk(spool, "app.s1", evs(3), state="S", dirname="tmp",
                     seal_us=2, created_us=(T0 + 1) * 1000000)
    d = write_chunk(spool, "app.dead", evs(4), dirname="dead",
                    created_us=T0 * 1000000)
    write_reason(spool, d, "refused: 400 Bad Request\nsecond line\n")
    d2 = write_chunk(spool, "app.dead", evs(1), dirname="dead")

    lines = stdout_lines(run_ok(SPOOL, ["ls", spool]))
    rows = [line.split(None, 6) for line in lines]
    assert [(r[0], r[1]) for r in rows] == [
        ("ready", early), ("ready", late), ("staged", s1), ("staged", s2),
        ("dead", d), ("dead", d2)]
    assert rows[0][2:] == ["app.early", "2", str(size(spool, "new", early)),
                           "2023-11-14T22:14:20Z"]
    assert rows[1][2:] == ["app.late", "1", str(size(spool, "new", late)),
                           T0_ISO]
    assert rows[2][2:] == ["app.s1", "3", str(size(spool, "tmp", s1)),
                           "2023-11-14T22:13:21Z"]
    assert rows[4][2:] == ["app.dead", "4", str(size(spool, "dead", d)),
                           T0_ISO, "refused: 400 Bad Request"]
    assert rows[5][6] == "-"
    # aligned: every field starts in the same column
    for line in lines:
        assert line.index(" app.") == lines[0].index(" app.")
    assert not any(line.endswith(" ") for line in lines)

    out = stdout_lines(run_ok(SPOOL, ["ls", "--dead", spool]))
    assert [line.split()[1] for line in out] == [d, d2]
    out = stdout_lines(run_ok(SPOOL, ["ls", spool, "--ready", "--staged"]))
    assert [line.split()[1] for line in out] == [early, late, s1, s2]
    assert run_ok(SPOOL, ["ls", make_spool(spool + "2")]) == b""


def test_ls_unreadable_and_odd_tags(spool):
    bad = write_chunk(spool, "app.a", evs(1), corrupt="flip-body")
    worse = write_chunk(spool, "app.a", evs(1), corrupt="bad-magic")
    odd = write_chunk(spool, "app has space\n", evs(1))
    rc, out, err = run(SPOOL, ["ls", spool])
    assert rc == 0
    rows = {r[1]: r for r in (line.split(None, 6)
                              for line in stdout_lines(out))}
    assert len(rows) == 3
    assert rows[bad][2:5] == ["app.a", "1", str(size(spool, "new", bad))]
    assert rows[worse][2:] == ["?", "?", str(size(spool, "new", worse)), "?",
                               "unreadable: not a chunk file (bad magic)"]
    assert rows[odd][2] == r"app\shas\sspace\n"
    assert err == b""      # said on its line already


# ---------------------------------------------------------------------------
# requeue
# ---------------------------------------------------------------------------

def test_requeue_one(spool):
    a = write_chunk(spool, "app.a", evs(1), dirname="dead")
    b = write_chunk(spool, "app.b", evs(2), dirname="dead")
    write_reason(spool, a, "why a\n")
    write_reason(spool, b, "why b\n")
    before = open(os.path.join(spool, "dead", a), "rb").read()
    out = run_ok(SPOOL, ["requeue", spool, os.path.join(spool, "dead", a)])
    assert out == ("requeued %s\n" % a).encode()
    assert list_chunks(spool, "new") == [a]
    assert open(os.path.join(spool, "new", a), "rb").read() == before
    assert sorted(os.listdir(os.path.join(spool, "dead"))) == \
        sorted([b, b + ".reason"])


def test_requeue_all_keeps_names(spool):
    now_us = int(time.time() * 1e6)
    old = write_chunk(spool, "app.a", evs(1), dirname="dead", seal_us=1000)
    write_reason(spool, old, "x\n")
    old2 = write_chunk(spool, "app.a", evs(1), dirname="dead", seal_us=2000)
    newer = write_chunk(spool, "app.a", evs(1), seal_us=now_us)
    out = stdout_lines(run_ok(SPOOL, ["requeue", spool]))
    assert out == ["requeued " + old, "requeued " + old2]
    assert os.listdir(os.path.join(spool, "dead")) == []
    # back in their old FIFO place: before the chunk sealed later
    assert list_chunks(spool, "new") == [old, old2, newer]


def test_requeue_refuses_corrupt_and_missing(spool):
    good = write_chunk(spool, "app.a", evs(1), dirname="dead")
    bad = write_chunk(spool, "app.a", evs(2), dirname="dead",
                      corrupt="flip-body")
    staged = write_chunk(spool, "app.a", evs(2), dirname="dead", state="S")
    write_reason(spool, bad, "x\n")
    rc, out, err = run(SPOOL, ["requeue", spool])
    assert rc == 65
    assert stdout_lines(out) == ["requeued " + good]
    assert b"checksum" in err and bad.encode() in err
    assert staged.encode() in err and b"never sealed" in err
    assert sorted(list_chunks(spool, "dead")) == sorted([bad, staged])
    assert read_reason(spool, bad) == "x"

    missing = lfchunk.ready_name(5, b"\x01" * 16)
    rc, out, err = run(SPOOL, ["requeue", spool, missing])
    assert rc == 66 and missing.encode() in err and out == b""

    rc, out, err = run(SPOOL, ["requeue", spool, "notachunk"])
    assert rc == 64


# ---------------------------------------------------------------------------
# fsck
# ---------------------------------------------------------------------------

def fsck_spool(spool):
    good = [write_chunk(spool, "app.g", evs(i + 1)) for i in range(2)]
    bad = {how: write_chunk(spool, "app.b", evs(3), corrupt=how)
           for how in ("flip-body", "truncate", "bad-header-crc")}
    return good, bad


def test_fsck_moves_corrupt_ready_chunks(spool):
    good, bad = fsck_spool(spool)
    rc, out, err = run(SPOOL, ["fsck", spool])
    assert rc == 65, err
    assert err == b""
    lines = stdout_lines(out)
    for how, name in bad.items():
        assert any(line.startswith("new/%s: corrupt: " % name) and
                   line.endswith("; moved to dead/") for line in lines), how
    assert lines[-3:] == ["ready   5 checked, 3 corrupt, 0 in delivery",
                          "staged  0 checked, 0 corrupt",
                          "dead    0 checked, 0 corrupt"]
    assert list_chunks(spool, "new") == sorted(good)
    assert list_chunks(spool, "dead") == sorted(bad.values())
    reasons = {how: read_reason(spool, n) for how, n in bad.items()}
    for r in reasons.values():
        assert r.startswith("lf-spool fsck: ")
    assert "checksum" in reasons["flip-body"]
    assert "header" in reasons["bad-header-crc"]
    assert "bytes" in reasons["truncate"]

    # all good now; the dead ones are reported, do not fail the run
    rc, out, err = run(SPOOL, ["fsck", spool])
    assert rc == 0, out
    assert stdout_lines(out)[-3:] == [
        "ready   2 checked, 0 corrupt, 0 in delivery",
        "staged  0 checked, 0 corrupt",
        "dead    3 checked, 3 corrupt"]


def test_fsck_dry_run_moves_nothing(spool):
    good, bad = fsck_spool(spool)
    before = {n: open(os.path.join(spool, "new", n), "rb").read()
              for n in list_chunks(spool, "new")}
    rc, out, err = run(SPOOL, ["fsck", "-n", spool])
    assert rc == 65
    lines = stdout_lines(out)
    assert sum(line.endswith("; not moved (dry run)") for line in lines) == 3
    after = {n: open(os.path.join(spool, "new", n), "rb").read()
             for n in list_chunks(spool, "new")}
    assert after == before
    assert os.listdir(os.path.join(spool, "dead")) == []
    rc, out, err = run(SPOOL, ["fsck", "--dry-run", spool])
    assert rc == 65


def test_fsck_verbose_and_short_header(spool):
    good = write_chunk(spool, "app.g", evs(1))
    short = write_chunk(spool, "app.b", evs(1), corrupt="short-header")
    rc, out, err = run(SPOOL, ["fsck", "-v", spool])
    assert rc == 65
    lines = stdout_lines(out)
    assert "new/%s: ok" % good in lines
    assert "new/%s: corrupt: chunk file is shorter than its header; " \
        "moved to dead/" % short in lines


def test_fsck_skips_a_claimed_chunk(spool):
    good = write_chunk(spool, "app.g", evs(1))
    held = write_chunk(spool, "app.b", evs(2), corrupt="flip-body")
    fd = os.open(os.path.join(spool, "new", held), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, out, err = run(SPOOL, ["fsck", spool])
    finally:
        os.close(fd)
    assert rc == 0, out
    lines = stdout_lines(out)
    assert "new/%s: in delivery, skipped" % held in lines
    assert lines[-3] == "ready   1 checked, 0 corrupt, 1 in delivery"
    assert list_chunks(spool, "new") == sorted([good, held])
    # released: now it is found
    rc, out, err = run(SPOOL, ["fsck", spool])
    assert rc == 65 and list_chunks(spool, "dead") == [held]


def test_fsck_staged_without_writer(spool):
    ok = write_chunk(spool, "app.s", evs(2), state="S", dirname="tmp")
    with open(os.path.join(spool, "tmp", ok), "ab") as f:
        f.write(b"torn tail")
    bad = write_chunk(spool, "app.s", evs(2), state="S", dirname="tmp",
                      corrupt="flip-body")
    rc, out, err = run(SPOOL, ["fsck", "-v", spool])
    assert rc == 65
    lines = stdout_lines(out)
    assert "tmp/%s: ok, 9 bytes after the committed body" % ok in lines
    assert "tmp/%s: corrupt: chunk body checksum mismatch" % bad in lines
    assert lines[-2] == "staged  2 checked, 1 corrupt"
    # reported, never moved: lf-buffer recovers staged chunks
    assert list_chunks(spool, "tmp") == sorted([ok, bad])
    assert os.listdir(os.path.join(spool, "dead")) == []


def test_fsck_staged_with_writer_checks_headers_only(spool):
    body_bad = write_chunk(spool, "app.s", evs(2), state="S", dirname="tmp",
                           corrupt="flip-body")
    fd = os.open(os.path.join(spool, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # a running lf-buffer
        rc, out, err = run(SPOOL, ["fsck", spool])
        assert rc == 0, out
        assert stdout_lines(out)[-2] == \
            "staged  1 checked, 0 corrupt (headers only: lf-buffer is running)"
        head_bad = write_chunk(spool, "app.s", evs(2), state="S",
                               dirname="tmp", corrupt="bad-header-crc")
        rc, out, err = run(SPOOL, ["fsck", spool])
        assert rc == 65
        assert "tmp/%s: corrupt: chunk header checksum mismatch" % head_bad \
            in stdout_lines(out)
    finally:
        os.close(fd)
    assert list_chunks(spool, "tmp") == sorted([body_bad, head_bad])
    # and fsck let go of the writer's lock when done
    rc, out, err = run(SPOOL, ["fsck", spool])
    assert rc == 65
    fd = os.open(os.path.join(spool, "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_fsck_reports_dead(spool):
    d = write_chunk(spool, "app.d", evs(2), dirname="dead", corrupt="truncate")
    rc, out, err = run(SPOOL, ["fsck", spool])
    assert rc == 0
    assert "dead/%s: corrupt: chunk body is cut short: " % d in out.decode()
    assert list_chunks(spool, "dead") == [d]


# ---------------------------------------------------------------------------
# purge
# ---------------------------------------------------------------------------

def test_purge_dead(spool):
    ready = write_chunk(spool, "app.r", evs(1))
    staged = write_chunk(spool, "app.s", evs(1), state="S", dirname="tmp")
    a = write_chunk(spool, "app.d", evs(1), dirname="dead")
    b = write_chunk(spool, "app.d", evs(1), dirname="dead")
    write_reason(spool, a, "x\n")

    rc, out, err = run(SPOOL, ["purge", spool])
    assert rc == 64 and out == b""
    assert len(os.listdir(os.path.join(spool, "dead"))) == 3

    out = stdout_lines(run_ok(SPOOL, ["purge", "--dead", spool, b]))
    assert out == ["removed dead/" + b]
    out = stdout_lines(run_ok(SPOOL, ["purge", spool, "--dead"]))
    assert out == ["removed dead/" + a, "removed dead/%s.reason" % a]
    assert os.listdir(os.path.join(spool, "dead")) == []
    assert list_chunks(spool, "new") == [ready]
    assert list_chunks(spool, "tmp") == [staged]

    rc, out, err = run(SPOOL, ["purge", "--dead", spool, b])
    assert rc == 66


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [], ["stat"], ["frob", "x"], ["ls", "--json", "S"], ["stat", "-n", "S"],
    ["stat", "S", "extra"], ["fsck", "--dead", "S"], ["ls", "--bogus", "S"],
    ["requeue", "S", "dead/x.reason"],
])
def test_usage_errors(spool, args):
    rc, out, err = run(SPOOL, [spool if a == "S" else a for a in args])
    assert rc == 64 and out == b"" and err


def test_no_such_spool(tmp_path):
    rc, out, err = run(SPOOL, ["stat", tmp_path / "nope"])
    assert rc == 66 and b"no such spool" in err
    (tmp_path / "half").mkdir()
    rc, out, err = run(SPOOL, ["ls", tmp_path / "half"])
    assert rc == 66


def test_help_and_version():
    out = run_ok(SPOOL, ["--help"])
    for cmd in (b"stat", b"ls", b"requeue", b"fsck", b"purge"):
        assert cmd in out
    assert re.match(rb"^lf-spool \d+\.\d+\.\d+\n$", run_ok(SPOOL, ["--version"]))


# ---------------------------------------------------------------------------
# lf-cat reads chunk files
# ---------------------------------------------------------------------------

CEVS = [((T0, 5), {"msg": "a", "n": 1}), ((T0 + 1, 0), {"msg": "b"}),
        ((T0 + 2, 999999999), {"nested": {"k": [1, 2.5, None]}})]


def expect(tag, es):
    return [ev(tag, t[0], t[1], r) for t, r in es]


def test_cat_chunk_file_json(spool):
    name = write_chunk(spool, "app.chunk", CEVS)
    out = run_ok(CAT, [os.path.join(spool, "new", name)])
    assert events(out) == expect("app.chunk", CEVS)


def test_cat_chunk_msgpack_round_trip(spool):
    name = write_chunk(spool, "app.chunk", CEVS)
    path = os.path.join(spool, "new", name)
    out = run_ok(CAT, ["-o", "msgpack", path])
    msgs = decode_packed(out)
    assert len(msgs) == 1 and msgs[0][0] == "app.chunk"
    assert packed_events(out) == expect("app.chunk", CEVS)
    # the entries went through as they were in the chunk
    body = lfchunk.read_chunk(path)["body"]
    assert packb(["app.chunk", body, {"size": 3}]) == out
    # and the stream reads back to the same events
    assert events(run_ok(CAT, [], out)) == expect("app.chunk", CEVS)


def test_cat_chunk_on_stdin(spool, tmp_path):
    a = write_chunk(spool, "app.a", CEVS[:2])
    b = write_chunk(spool, "app.b", CEVS[2:])
    pa = os.path.join(spool, "new", a)
    pb = os.path.join(spool, "new", b)
    data_a = open(pa, "rb").read()
    data_b = open(pb, "rb").read()
    # through a pipe
    assert events(run_ok(CAT, [], data_a)) == expect("app.a", CEVS[:2])
    # sealed chunks back to back, as cat *.chunk gives them
    assert events(run_ok(CAT, ["-"], data_a + data_b)) == \
        expect("app.a", CEVS[:2]) + expect("app.b", CEVS[2:])
    # redirected from a file
    with open(pa, "rb") as f:
        p = subprocess.run([tool(CAT)], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=_env(), timeout=30)
    check_no_sanitizer(p.stderr)
    assert (p.returncode, p.stderr) == (0, b"")
    assert events(p.stdout) == expect("app.a", CEVS[:2])
    # junk after a sealed chunk
    rc, out, err = run(CAT, [], data_a + b"junk")
    assert rc == 65 and b"stdin" in err and b"not a chunk" in err
    assert events(out) == expect("app.a", CEVS[:2])


def test_cat_staged_chunk_leaves_out_uncommitted(spool):
    name = write_chunk(spool, "app.s", CEVS[:2], state="S", dirname="tmp")
    path = os.path.join(spool, "tmp", name)
    with open(path, "ab") as f:
        f.write(packb([lfchunk.event_time(T0), {"uncommitted": 1}])[:-1])
    assert events(run_ok(CAT, [path])) == expect("app.s", CEVS[:2])
    assert events(run_ok(CAT, [], open(path, "rb").read())) == \
        expect("app.s", CEVS[:2])


@pytest.mark.parametrize("how", lfchunk.CORRUPTIONS)
def test_cat_corrupt_chunk(spool, tmp_path, how):
    good = write_chunk(spool, "app.good", CEVS[:1])
    bad = write_chunk(spool, "app.bad", CEVS, corrupt=how)
    pbad = os.path.join(spool, "new", bad)
    stream = tmp_path / "s.lf"
    stream.write_bytes(packb(["app.stream", T0, {"x": 1}]))
    rc, out, err = run(CAT, [pbad, os.path.join(spool, "new", good), stream])
    assert rc == 65
    if how == "bad-magic":
        # not a chunk file by its first bytes: read as a (bad) stream
        assert pbad.encode() in err
    else:
        assert ("%s: bad chunk file: " % pbad).encode() in err
        reason = {"flip-body": b"checksum mismatch",
                  "truncate": b"cut short",
                  "bad-header-crc": b"header checksum mismatch",
                  "short-header": b"shorter than its header"}[how]
        assert reason in err
    # the other inputs still went through
    assert events(out) == expect("app.good", CEVS[:1]) + \
        [ev("app.stream", T0, 0, {"x": 1})]
    # same from stdin
    rc, out, err = run(CAT, [], open(pbad, "rb").read())
    assert rc == 65 and b"stdin" in err
    if how != "bad-magic":
        assert out == b""


def test_cat_chunk_count_mismatch(spool):
    name = write_chunk(spool, "app.c", CEVS, count=2)
    path = os.path.join(spool, "new", name)
    rc, out, err = run(CAT, [path])
    assert rc == 65 and b"header says 2" in err and out == b""
