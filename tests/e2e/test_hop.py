"""End-to-end tests of the sending half of the acked hop (lib/hop) through
its first user, lf-cat --to (issue 7).

The promise under test: lf-cat exits 0 only once every event it read is
acknowledged; a batch that is not acknowledged (the peer died, closed mid
message, acked late, acked the wrong id or never acked) is sent again on a
new connection with its original chunk id, in order, so a receiver with a
dedup window (lf-buffer) stores every event exactly once; when the retry
limit is hit lf-cat exits 75 with the count of events not acknowledged.

The receivers are the real lf-buffer, killed -9 and restarted, and a fake
forward server in Python (its own msgpack decoder) that misbehaves on
purpose.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import msgpack
import pytest

from conftest import (T, _env, check_no_sanitizer, fault_env, packb, run,
                      tool)
from test_lf_buffer import Lfb, id_counts, spool_events, wait_for

WAIT = 30       # generous: the binaries may run under ASan on a loaded box

# Short retry waits so that a test takes seconds, not Fluentd's minutes.
FAST = ["--retry-wait", "0.05", "--retry-max-interval", "0.2"]


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="lfh")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if hasattr(p, "cleanup"):
            p.cleanup()
        elif p.poll() is None:
            p.kill()
            p.wait()


def msgs(first, n, per, pad=40):
    """n PackedForward messages (Python's encoder) of per events each;
    every record says which (m, e) it is."""
    out = []
    for m in range(first, first + n):
        ents = b"".join(packb([msgpack.ExtType(0, (T + e).to_bytes(4, "big") +
                                               e.to_bytes(4, "big")),
                               {"m": m, "e": e, "p": "x" * pad}])
                        for e in range(per))
        out.append(packb(["t.%d" % (m % 3), ents, {"size": per}]))
    return out


def cat_to(sock, args=(), files=(), stdin=subprocess.PIPE):
    return subprocess.Popen(
        [tool("lf-cat"), "--to", "unix:" + sock] + [str(a) for a in args] +
        [str(f) for f in files],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env())


def finish(p, timeout=WAIT):
    if p.stdin is not None and p.stdin.closed:
        p.stdin = None      # closed by the test: end of input
    out, err = p.communicate(timeout=timeout)
    check_no_sanitizer(err)
    return p.returncode, out, err.decode(errors="replace")


def warn_lines(err):
    lines = err.splitlines()
    for line in lines:
        assert line.startswith("lf-cat: "), "not a log line: %r" % line
    return lines


# ---------------------------------------------------------------------------
# A fake forward server
# ---------------------------------------------------------------------------

class Fake:
    """A forward server on a Unix socket, one connection at a time.
    policy(conn, i, msg) says what to do with message i of connection
    conn (both from 0): "ack", ("late", secs), ("wrong",), "never", or
    "close".  before(conn) may return a byte count after which the server
    closes the connection mid-message instead.  Every message received is
    kept: self.got = [(conn, tag, chunk, size, entries)]."""

    def __init__(self, path, policy, cut=None):
        self.path = path
        self.policy = policy
        self.cut = cut
        self.got = []
        self.acks = []      # (time, chunk)
        self.conns = 0
        self.lock = threading.Lock()
        self.stop = False
        if path is None:    # TCP on the loopback, any port
            self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.ls.bind(("127.0.0.1", 0))
            self.port = self.ls.getsockname()[1]
        else:
            self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.ls.bind(path)
        self.ls.listen(8)
        self.ls.settimeout(0.05)
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = self.conns
            self.conns += 1
            try:
                self.handle(conn, s)
            except OSError:
                pass    # the peer went (a write to it failed): serve on
            finally:
                s.close()

    def handle(self, conn, s):
        s.settimeout(0.05)
        u = msgpack.Unpacker(raw=False)
        i = 0
        seen = 0
        cut = self.cut(conn) if self.cut else None
        pending = []   # (due time, token)
        while not self.stop:
            now = time.monotonic()
            for due, tok in list(pending):
                if due <= now:
                    pending.remove((due, tok))
                    self.send_ack(s, tok)
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            if cut is not None and seen + len(data) >= cut:
                return          # closed mid-message
            seen += len(data)
            u.feed(data)
            for m in u:
                tag, ents, opt = m
                tok = opt.get("chunk")
                with self.lock:
                    self.got.append((conn, tag, tok, opt.get("size"), ents))
                act = self.policy(conn, i, m)
                i += 1
                if act == "ack":
                    self.send_ack(s, tok)
                elif act == "close":
                    return
                elif act == "wrong":
                    self.send_ack(s, "AAAAAAAAAAAAAAAAAAAAAA==")
                elif isinstance(act, tuple) and act[0] == "late":
                    pending.append((time.monotonic() + act[1], tok))

    def send_ack(self, s, tok):
        s.sendall(packb({"ack": tok}))
        with self.lock:
            self.acks.append((time.monotonic(), tok))

    def close(self):
        self.stop = True
        self.ls.close()
        self.t.join(5)

    def events(self, conn=None):
        """(m, e) of every event received (on connection conn)."""
        res = []
        for c, _tag, _tok, _size, ents in self.got:
            if conn is None or c == conn:
                for _t, r in unpack(ents):
                    res.append((r["m"], r["e"]))
        return res

    def tokens(self, conn):
        return [tok for c, _t, tok, _s, _e in self.got if c == conn]


def unpack(ents):
    u = msgpack.Unpacker(raw=False, ext_hook=lambda c, d: (c, d))
    u.feed(ents)
    return list(u)


@pytest.fixture
def fake(work):
    made = []

    def make(policy, cut=None):
        f = Fake(os.path.join(work, "f"), policy, cut)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def all_events(n, per):
    return sorted((m, e) for m in range(n) for e in range(per))


def write_input(work, data, name="in.mp"):
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# ---------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------

def test_wire_format_packed_forward_with_chunk(work, fake):
    f = fake(lambda c, i, m: "ack")
    src = write_input(work, b"".join(msgs(0, 3, 5)))
    rc, out, err = finish(cat_to(f.path, files=[src], stdin=subprocess.DEVNULL))
    assert (rc, out, err) == (0, b"", "")
    toks = f.tokens(0)
    assert len(toks) == 3                       # one batch per tag
    for conn, tag, tok, size, ents in f.got:
        assert isinstance(ents, bytes)          # bin entries
        assert size == len(unpack(ents)) == 5
        assert isinstance(tok, str) and len(tok) == 24
        assert len(base64.b64decode(tok, validate=True)) == 16
    assert len(set(toks)) == 3
    assert sorted(f.events()) == all_events(3, 5)
    assert [a[1] for a in f.acks] == toks


# ---------------------------------------------------------------------------
# Misbehaving peers
# ---------------------------------------------------------------------------

def resent_same(f, conns):
    """Every connection after the first got the unacked batches of the one
    before again, same ids, same order."""
    first = f.tokens(0)
    for c in range(1, conns):
        assert f.tokens(c)[:len(first)] == first, (c, f.got)


def test_late_acks_are_waited_for_not_resent(work, fake):
    f = fake(lambda c, i, m: ("late", 0.4))
    src = write_input(work, b"".join(msgs(0, 6, 10)))
    t0 = time.monotonic()
    rc, out, err = finish(cat_to(f.path, ["--batch-size", "1"], [src],
                                 stdin=subprocess.DEVNULL))
    assert (rc, err) == (0, "")
    assert time.monotonic() - t0 >= 0.4
    assert f.conns == 1
    toks = f.tokens(0)
    assert len(toks) == len(set(toks)) == 6
    assert sorted(f.events()) == all_events(6, 10)


def test_wrong_id_ignored_then_timeout_resends_same_ids(work, fake):
    # connection 0 acks a wrong id for each message; later ones ack
    f = fake(lambda c, i, m: "wrong" if c == 0 else "ack")
    src = write_input(work, b"".join(msgs(0, 4, 10)))
    rc, out, err = finish(cat_to(f.path, FAST + ["--batch-size", "1",
                                                 "--ack-response-timeout", "2"],
                                 [src], stdin=subprocess.DEVNULL))
    assert rc == 0, err
    lines = warn_lines(err)
    assert any("ack for an unknown chunk id \"AAAAAAAAAAAAAAAAAAAAAA==\", "
               "ignored" in l for l in lines), lines
    assert any("no ack for chunk" in l and "in 2s" in l for l in lines), lines
    assert f.conns == 2
    resent_same(f, 2)
    assert len(f.tokens(1)) == 4
    assert sorted(f.events(1)) == all_events(4, 10)


def test_never_acks_then_resent_on_new_connection(work, fake):
    f = fake(lambda c, i, m: "never" if c < 2 else "ack")
    src = write_input(work, b"".join(msgs(0, 5, 4)))
    rc, out, err = finish(cat_to(f.path, FAST + ["--batch-size", "1",
                                                 "--ack-response-timeout", "1"],
                                 [src], stdin=subprocess.DEVNULL))
    assert rc == 0, err
    assert f.conns == 3
    resent_same(f, 3)
    assert len(f.tokens(2)) == 5
    assert sorted(f.events(2)) == all_events(5, 4)


def test_never_acks_retry_timeout_exits_75_with_count(work, fake):
    f = fake(lambda c, i, m: "never")
    src = write_input(work, b"".join(msgs(0, 5, 7)))
    t0 = time.monotonic()
    rc, out, err = finish(cat_to(f.path, FAST + ["--ack-response-timeout", "0.3",
                                                 "--retry-timeout", "2"],
                                 [src], stdin=subprocess.DEVNULL))
    took = time.monotonic() - t0
    assert rc == 75, err
    lines = warn_lines(err)
    assert lines[-1] == "lf-cat: fatal: 35 events not acknowledged", lines
    assert any("retry limit reached" in l for l in lines), lines
    assert 2 <= took < WAIT
    assert f.conns >= 2
    resent_same(f, f.conns)


def test_retry_max_times_gives_up_when_nobody_listens(work):
    sock = os.path.join(work, "nobody")
    src = write_input(work, b"".join(msgs(0, 2, 3)))
    rc, out, err = finish(cat_to(sock, FAST + ["--retry-max-times", "3"],
                                 [src], stdin=subprocess.DEVNULL))
    assert rc == 75, err
    lines = warn_lines(err)
    assert lines[-1] == "lf-cat: fatal: 6 events not acknowledged", lines
    # the first try and three retries
    assert sum("connect: No such file or directory" in l for l in lines) == 4


def test_closed_mid_message_resends_whole_messages(work, fake):
    # the first two connections are cut in the middle of the first message
    f = fake(lambda c, i, m: "ack", cut=lambda c: 700 if c < 2 else None)
    src = write_input(work, b"".join(msgs(0, 3, 30)))
    rc, out, err = finish(cat_to(f.path, FAST + ["--batch-size", "1"], [src],
                                 stdin=subprocess.DEVNULL))
    assert rc == 0, err
    assert f.conns == 3
    assert [c for c, *_ in f.got] == [2, 2, 2]
    assert sorted(f.events()) == all_events(3, 30)
    # a close with bytes unread may reach lf-cat as a reset
    assert sum("to send again" in l for l in warn_lines(err)) == 2, err


def test_bad_input_exits_65_after_good_events_acked(work, fake):
    f = fake(lambda c, i, m: ("late", 0.5))
    good = msgs(0, 2, 3)
    bad = packb(["t", "not entries", {"size": 1}])    # str, not msgpack
    src = write_input(work, good[0] + bad + good[1])
    rc, out, err = finish(cat_to(f.path, files=[src], stdin=subprocess.DEVNULL))
    t_exit = time.monotonic()
    assert rc == 65, err
    assert sorted(f.events()) == all_events(2, 3)
    assert len(f.acks) == 2 and all(t <= t_exit for t, _ in f.acks)
    # not msgpack at all: the stream is lost, what came before is acked
    f2_path = os.path.join(work, "g")
    src2 = write_input(work, good[0] + b"\xc1garbage", "bad2.mp")
    f2 = Fake(f2_path, lambda c, i, m: ("late", 0.5))
    try:
        rc, out, err = finish(cat_to(f2_path, files=[src2],
                                     stdin=subprocess.DEVNULL))
        t_exit = time.monotonic()
        assert rc == 65, err
        assert sorted(f2.events()) == [(0, e) for e in range(3)]
        assert len(f2.acks) == 1 and f2.acks[0][0] <= t_exit
    finally:
        f2.close()


def test_json_input_to(work, fake):
    f = fake(lambda c, i, m: "ack")
    lines = "".join('{"m":%d,"e":%d,"time":%d}\n' % (m, e, T + e)
                    for m in range(3) for e in range(4))
    p = cat_to(f.path, ["-i", "json", "-t", "app"])
    out, err = p.communicate(lines.encode(), timeout=WAIT)
    assert (p.returncode, out, err) == (0, b"", b"")
    assert {tag for _c, tag, *_ in f.got} == {"app"}
    assert sorted(f.events()) == all_events(3, 4)


def test_read_error_on_the_socket_resends(work, fake):
    """A failed read of the acks (an injected ECONNRESET) loses the
    connection like a reset: the unacked batches go again, same ids."""
    f = fake(lambda c, i, m: ("late", 0.2) if c == 0 else "ack")
    src = write_input(work, b"".join(msgs(0, 3, 4)))
    p = subprocess.Popen([tool("lf-cat"), "--to", "unix:" + f.path,
                          "--batch-size", "1"] + FAST + [src],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         env=_env(fault_env("read@socket:1:ECONNRESET")))
    rc, out, err = finish(p)
    assert rc == 0, err
    lines = warn_lines(err)
    assert any("read: Connection reset by peer; 3 batches (12 events) to "
               "send again" in l for l in lines), lines
    assert f.conns == 2
    resent_same(f, 2)
    assert sorted(f.events(1)) == all_events(3, 4)


def test_live_input_sent_before_more_comes(work, fake, procs):
    """From a pipe, what was read goes out (and is acked) before lf-cat
    waits for more input, as lf-tail | lf-cat --to needs."""
    f = fake(lambda c, i, m: "ack")
    p = cat_to(f.path)
    procs.append(p)
    p.stdin.write(msgs(0, 1, 3)[0])
    p.stdin.flush()
    wait_for(lambda: len(f.acks) == 1, WAIT, "the first message acked")
    p.stdin.write(b"".join(msgs(1, 2, 3)))
    p.stdin.flush()
    wait_for(lambda: len(f.acks) >= 2, WAIT, "the next messages acked")
    p.stdin.close()
    rc, out, err = finish(p)
    assert (rc, out, err) == (0, b"", "")
    assert sorted(f.events()) == all_events(3, 3)


def test_live_output_not_one_read_late(procs):
    """lf-cat without --to: a live input's events are written before
    lf-cat waits for the next read (they used to wait for it)."""
    import select
    p = subprocess.Popen([tool("lf-cat")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env())
    procs.append(p)
    p.stdin.write(msgs(0, 1, 2)[0])
    p.stdin.flush()
    r, _, _ = select.select([p.stdout], [], [], WAIT)
    assert r, "no output before more input"
    first = os.read(p.stdout.fileno(), 65536)
    assert first.startswith(b'{"tag":"t.0"'), first
    p.stdin.close()
    rc, out, err = finish(p)
    assert rc == 0 and err == ""
    assert (first + out).count(b"\n") == 2


@pytest.mark.parametrize("host", ["tcp:127.0.0.1", "localhost"])
def test_tcp_transport(work, host):
    f = Fake(None, lambda c, i, m: "ack" if c > 0 else "close")
    try:
        src = write_input(work, b"".join(msgs(0, 4, 6)))
        p = subprocess.Popen([tool("lf-cat"), "--to", "%s:%d" % (host, f.port)]
                             + FAST + [src], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env())
        rc, out, err = finish(p)
        assert rc == 0, err
        # the first connection was closed at the first message: re-sent
        assert f.conns == 2
        # (closed with bytes unread, so the peer may see a reset)
        assert err.count("to send again") == 1, err
        assert ("tcp:%s:%d" % (host.replace("tcp:", ""), f.port)) in err
        assert sorted(f.events(1)) == all_events(4, 6)
    finally:
        f.close()


def test_usage_errors():
    for args, msg in (
            (["--to", "nowhere"],
             '--to: "nowhere": expected unix:PATH or HOST:PORT'),
            (["--to", "/x", "-o", "json"], "--to sends the events: no -o"),
            (["--to", "/x", "--retry-wait", "0"],
             "retry_wait must be greater than 0"),
            (["--to", "/x", "--window", "0"],
             "the window and the message size must be at least 1")):
        rc, out, err = run("lf-cat", args)
        assert (rc, out, err.decode()) == (64, b"", "lf-cat: fatal: %s\n" % msg)


# ---------------------------------------------------------------------------
# Into lf-buffer, which is killed -9 and restarted mid-stream
# ---------------------------------------------------------------------------

def rchar(pid):
    """Bytes the process has read so far, sockets included."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar")


def committed(spool):
    """Events in the spool, staged or ready (lf-spool stat)."""
    rc, out, err = run("lf-spool", ["stat", "--json", spool])
    assert rc == 0, err
    st = json.loads(out)
    return st["ready"]["events"] + st["staged"]["events"]


def test_into_lf_buffer_killed_and_restarted(work, procs):
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool])
    procs.append(b)
    portions, per_portion, per = 8, 40, 25
    # small batches, a small window: batches in flight when lf-buffer dies
    p = cat_to(b.sock, FAST + ["--batch-size", "2k", "--window", "4"])
    procs.append(p)
    kills = 0
    for k in range(portions):
        # before each kill, lf-buffer holds its commits (and so its acks)
        # for 10s, and is killed once it has read some of the portion:
        # those batches are in flight, unacked, and must be sent again
        b.args = ["--commit-wait", "10"] if k % 2 == 1 else []
        b.start()
        base = rchar(b.p.pid)
        p.stdin.write(b"".join(msgs(k * per_portion, per_portion, per)))
        p.stdin.flush()
        if k % 2 == 1:
            wait_for(lambda: rchar(b.p.pid) >= base + 4000, WAIT,
                     "lf-buffer to read from lf-cat")
            b.kill9()
            kills += 1
            if k == 3:
                # lf-cat retries while nobody listens (not a deadline:
                # the test passes however long this is)
                time.sleep(0.3)
        else:
            # everything so far committed (so acked: nothing in flight
            # when the next lf-buffer starts), then a clean stop
            total = (k + 1) * per_portion * per
            wait_for(lambda: committed(spool) >= total, WAIT,
                     "%d events committed" % total)
            b.stop()
    p.stdin.close()
    b.args = []
    b.start()
    rc, out, err = finish(p)
    assert rc == 0, err
    assert kills == 4
    lines = warn_lines(err)
    for line in lines:
        assert line.startswith("lf-cat: warn: unix:"), line
    assert sum("to send again" in l for l in lines) >= kills, lines
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    want = {(m, e): 1 for m in range(portions * per_portion)
            for e in range(per)}
    assert cnt == want
    # lf-cat, as other tools read a spool, agrees
    names = sorted(os.listdir(os.path.join(spool, "new")))
    rc, out, err = run("lf-cat", [os.path.join(spool, "new", n) for n in names])
    assert rc == 0 and err == b""
    assert out.count(b"\n") == portions * per_portion * per


def test_lost_acks_resent_and_deduplicated(work, procs):
    """lf-buffer commits, then cannot write its first acks (an injected
    EPIPE on its socket write) and drops the connection: lf-cat sends the
    committed batches again with the same ids, and lf-buffer's dedup
    window acks them without storing them twice."""
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["-v"])
    procs.append(b)
    real = b.cmd

    b.p = None
    env = fault_env("write@socket:1:EPIPE")

    def start():
        b.runs += 1
        b.errpath = os.path.join(b.workdir, "err.%d" % b.runs)
        b.errf = open(b.errpath, "wb")
        r, w = os.pipe()
        b.p = subprocess.Popen(real(w), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=b.errf,
                               env=_env(env), pass_fds=(w,))
        os.close(w)
        b.notify_r = r
        b.wait_ready()
    start()
    src = write_input(work, b"".join(msgs(0, 12, 5)))
    rc, out, err = finish(cat_to(b.sock, FAST + ["--batch-size", "1"], [src],
                                 stdin=subprocess.DEVNULL))
    assert rc == 0, err
    assert any("connection closed by the peer" in l and "to send again" in l
               for l in warn_lines(err)), err
    assert b.stop() == 0
    stats = [l for l in b.err.decode().splitlines() if "stats:" in l]
    assert len(stats) == 1, b.err
    dups = int(stats[0].split("duplicates=")[1].split()[0])
    assert dups >= 1, stats
    assert id_counts(spool_events(spool)) == {(m, e): 1 for m in range(12)
                                              for e in range(5)}
