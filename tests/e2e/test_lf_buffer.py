"""End-to-end tests of lf-buffer: the receiving end of the acknowledged hop
and the only writer of a spool (DESIGN.md, "The acknowledged hop", "The
spool"; research/fluentd-semantics.md A.1-A.6).

The promise under test: an event that lf-buffer acknowledged is never
lost, and (thanks to the dedup window) a message that a sender re-sends
with the same chunk token is never stored twice, whatever happens to
lf-buffer (kill -9, a full disk, a torn staged chunk).

Messages are sent with tests/e2e/fwdclient.py (Python's msgpack, an
encoder independent of lf's); chunks are read back with lfchunk.py, and
with lf-cat and lf-spool fsck where it helps to cross-check.
"""
import errno
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import pytest

import lfchunk
import conftest
from conftest import (T, _env, check_no_sanitizer, ev, events, et, fault_env,
                      packb, run, tool)
from fwdclient import (Client, Closed, Timeout, connect_retry, fluentd_token,
                       message, pack_entries)

WAIT = 20       # seconds: generous, the binary may run under ASan
LOGPFX = "lf-buffer: "


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------

wait_for = conftest.waiter(WAIT)


class Lfb:
    """One lf-buffer, listening on a Unix socket (unless sock is None), that
    can be started again and again on the same spools.  Its stderr goes to
    a file per run; `errs` keeps every run's stderr."""

    def __init__(self, workdir, spools, args=(), sock=True):
        self.workdir = str(workdir)
        self.spools = [str(s) for s in spools]
        self.args = [str(a) for a in args]
        self.sock = os.path.join(self.workdir, "s") if sock else None
        self.p = None
        self.runs = 0
        self.errs = []
        self.errf = None
        self.notify_r = None
        self.env = None                 # more environment (fault_env)

    def cmd(self, notify_fd=None):
        c = [tool("lf-buffer")]
        if self.sock:
            c += ["--listen", "unix:" + self.sock]
        if notify_fd is not None:
            c += ["--notify-fd", str(notify_fd)]
        return c + self.args + self.spools

    def start(self, wait_ready=True):
        assert self.p is None or self.p.poll() is not None
        self.runs += 1
        self.errpath = os.path.join(self.workdir, "err.%d" % self.runs)
        self.errf = open(self.errpath, "wb")
        r, w = os.pipe()
        self.p = subprocess.Popen(
            self.cmd(w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.errf, env=_env(self.env), pass_fds=(w,))
        os.close(w)
        self.notify_r = r
        if wait_ready:
            self.wait_ready()
        return self

    def _close_notify(self):
        if self.notify_r is not None:
            os.close(self.notify_r)
            self.notify_r = None

    def wait_ready(self, timeout=WAIT):
        """Wait for the newline on --notify-fd (readiness, s6 style)."""
        r = self.notify_r
        try:
            rl, _, _ = select.select([r], [], [], timeout)
            data = os.read(r, 16) if rl else None
        finally:
            self._close_notify()
        if data != b"\n":
            rc = self.p.poll()
            raise AssertionError("lf-buffer not ready (got %r, rc=%r): %s" %
                                 (data, rc, self.read_err()))

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def read_err(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _finish(self):
        """After the process is gone: keep its stderr, which must hold no
        sanitizer report (a kill -9'd process prints none, so one there is
        a finding from before the kill)."""
        self._close_notify()
        self.errf.close()
        with open(self.errpath, "rb") as f:
            err = f.read()
        self.errs.append(err)
        check_no_sanitizer(err)
        return err

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        """Signal, wait; returns the exit code.  stderr of a normal exit is
        checked for sanitizer reports."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        self.err = self._finish()
        return rc

    def kill9(self):
        """kill -9; it must have been running until then."""
        rc = self.stop(signal.SIGKILL)
        assert rc == -signal.SIGKILL, \
            "lf-buffer had exited (rc %r) before kill -9: %r" % (rc, self.err)
        return rc

    def exited(self, timeout=WAIT):
        """Wait for an exit of its own; returns the exit code."""
        rc = self.p.wait(timeout)
        self.err = self._finish()
        return rc

    def signal(self, sig):
        self.p.send_signal(sig)

    def cleanup(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
            self._close_notify()
            self.errf.close()

    def all_err(self):
        return b"".join(self.errs).decode(errors="replace")

    def client(self, timeout=10.0):
        return Client(self.sock, timeout)


@pytest.fixture
def work():
    """A short directory (Unix socket paths are limited to 108 bytes)."""
    d = tempfile.mkdtemp(prefix="lfb")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs():
    started = []
    yield started
    for b in started:
        b.cleanup()
        # pytest shows this only with the report of a failed test
        for n in range(1, b.runs + 1):
            try:
                with open(os.path.join(b.workdir, "err.%d" % n), "rb") as f:
                    err = f.read().decode(errors="replace")
            except OSError as e:
                err = "(%s)\n" % e
            sys.stderr.write("---- lf-buffer run %d of %d, stderr:\n%s" %
                             (n, b.runs, err))


def lfb(procs, work, spools, args=(), **kw):
    b = Lfb(work, spools, args, **kw)
    procs.append(b)
    return b


def mkspool(work, name="spool"):
    return os.path.join(work, name)


def log_lines(err, level=None):
    """lf-buffer's log lines (every stderr line must be one)."""
    res = []
    for line in err.splitlines():
        assert line.startswith(LOGPFX), "not a log line: %r" % line
        lvl, _, msg = line[len(LOGPFX):].partition(": ")
        assert lvl in ("fatal", "error", "warn", "info", "debug"), line
        if level is None or lvl == level:
            res.append(msg)
    return res


# ---- reading a spool ----

def chunk_names(spool, d="new"):
    p = os.path.join(spool, d)
    if not os.path.isdir(p):
        return []
    return lfchunk.list_chunks(spool, d)


def all_files(spool, d):
    return sorted(os.listdir(os.path.join(spool, d)))


def read_chunks(spool, d="new", state="R"):
    """Every chunk of SPOOL/d, decoded and checked: header and body CRCs,
    state, event count.  Returns [chunk dict] in FIFO order."""
    res = []
    for n in chunk_names(spool, d):
        c = lfchunk.read_chunk(os.path.join(spool, d, n))
        assert c["head_ok"], "%s/%s: header CRC" % (d, n)
        assert c["body_ok"], "%s/%s: body CRC/length" % (d, n)
        assert c["state"] == state, "%s/%s: state %s" % (d, n, c["state"])
        assert c["events"] is not None and len(c["events"]) == c["count"], \
            "%s/%s: count %d, events %r" % (d, n, c["count"], c["events"])
        assert c["size"] == c["hlen"] + c["bodylen"], "%s/%s: trailing bytes" % (d, n)
        if d == "new":
            assert n.split(".")[1] == c["id_hex"], n
        res.append(c)
    return res


def tsec(t):
    """An EventTime as (sec, nsec)."""
    assert isinstance(t, msgpack.ExtType) and t.code == 0, t
    assert len(t.data) == 8, t
    return struct.unpack(">II", t.data)


def spool_events(spool, d="new", state="R"):
    """[(tag, (sec, nsec), record)] of every chunk in FIFO order."""
    res = []
    for c in read_chunks(spool, d, state):
        for t, r in c["events"]:
            res.append((c["tag"], tsec(t), r))
    return res


def ident(rec):
    return (rec["m"], rec["e"])


def id_counts(evs):
    d = {}
    for _tag, _t, r in evs:
        k = ident(r)
        d[k] = d.get(k, 0) + 1
    return d


def fsck(spool):
    """lf-spool fsck -n, if lf-spool is built: every chunk must pass."""
    from conftest import BIN
    if not os.access(str(BIN / "lf-spool"), os.X_OK):
        return
    rc, out, err = run("lf-spool", ["fsck", "-n", spool])
    assert rc == 0, (rc, out, err)


# ---- building messages ----

def recs(m, n, pad=0, extra=None):
    """n records of message m, each identifying itself: {"m", "e", "p"}."""
    out = []
    for e in range(n):
        r = {"m": m, "e": e}
        if pad:
            r["p"] = ("%d.%d." % (m, e) * (pad // 4 + 1))[:pad]
        if extra:
            r.update(extra(m, e))
        out.append(r)
    return out


def msg_events(m, n, pad=0, sec=T, extra=None):
    return [(sec + e, r) for e, r in enumerate(recs(m, n, pad, extra))]


def expected(tag, evs):
    return [(tag, (t, 0), r) for t, r in evs]


def send_acked(c, tag, evs, token=None, timeout=WAIT):
    """Send one message and wait for its ack; returns the token."""
    if token is None:
        token = fluentd_token()
    c.send(tag, evs, token=token)
    got = c.read_ack(timeout)
    assert got == token and type(got) is type(token), (got, token)
    return token


# ---------------------------------------------------------------------------
# 1. Pipe mode
# ---------------------------------------------------------------------------

def test_pipe_mode_json_into_spool(work):
    spool = mkspool(work)
    lines = []
    exp = []
    for i in range(200):
        rec = {"i": i, "s": "caf\u00e9 %d" % i, "f": i / 4, "n": None,
               "b": i % 2 == 0, "a": [i, {"x": "y"}]}
        lines.append('{"time":"%d.%09d","i":%d,"s":"caf\u00e9 %d","f":%r,'
                     '"n":null,"b":%s,"a":[%d,{"x":"y"}]}'
                     % (T + i, i * 7, i, i, i / 4,
                        "true" if i % 2 == 0 else "false", i))
        exp.append(ev("t", T + i, i * 7, rec))
    data = ("\n".join(lines) + "\n").encode()
    cat = subprocess.Popen([tool("lf-cat"), "-i", "json", "-t", "t"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=_env())
    buf = subprocess.Popen([tool("lf-buffer"), spool], stdin=cat.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=_env())
    cat.stdout.close()
    _, cerr = cat.communicate(data, timeout=WAIT)
    bout, berr = buf.communicate(timeout=WAIT)
    check_no_sanitizer(cerr)
    check_no_sanitizer(berr)
    assert cat.returncode == 0, cerr
    assert (buf.returncode, bout, berr) == (0, b"", b"")
    names = chunk_names(spool)
    assert len(names) == 1
    assert all_files(spool, "tmp") == [] and all_files(spool, "dead") == []
    rc, out, err = run("lf-cat", [os.path.join(spool, "new", n) for n in names])
    assert (rc, err) == (0, b"")
    assert events(out) == exp
    c = read_chunks(spool)[0]
    assert c["tag"] == "t" and c["count"] == 200 and c["keys"] == {"tag": "t"}
    fsck(spool)


def test_pipe_mode_one_chunk_per_tag(work):
    spool = mkspool(work)
    tags = ["a.x", "b.y", "c.z"]
    data = b""
    exp = {t: [] for t in tags}
    for i in range(90):
        tag = tags[i % 3] if i % 7 else tags[(i // 7) % 3]
        evs = msg_events(i, 1 + i % 4)
        exp[tag] += expected(tag, evs)
        data += packb([tag, pack_entries(evs), {"size": len(evs)}])
    rc, out, err = run("lf-buffer", [spool], data)
    assert (rc, out, err) == (0, b"", b"")
    cs = read_chunks(spool)
    assert sorted(c["tag"] for c in cs) == sorted(tags)
    for c in cs:
        assert [(c["tag"], tsec(t), r) for t, r in c["events"]] == exp[c["tag"]]
    assert all_files(spool, "tmp") == []
    # lf-cat reads every chunk back, in its tag, as one stream
    rc, out, err = run("lf-cat", [os.path.join(spool, "new", c["name"])
                                  for c in cs])
    assert (rc, err) == (0, b"")
    assert len(events(out)) == sum(len(v) for v in exp.values())


# ---------------------------------------------------------------------------
# 2. Socket mode with acks
# ---------------------------------------------------------------------------

def test_socket_acks_in_order_same_token(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    c = b.client()
    # str tokens the way out_forward makes them (base64 + "\n"), bin tokens
    toks = []
    for i in range(40):
        toks.append(fluentd_token() if i % 3 else os.urandom(16))
    exp = []
    for i, tok in enumerate(toks):
        evs = msg_events(i, 1 + i % 5)
        exp += expected("app.log", evs)
        c.send("app.log", evs, token=tok)
    acks = c.read_acks(len(toks), WAIT)
    assert acks == toks
    assert [type(a) for a in acks] == [type(t) for t in toks]
    assert isinstance(toks[1], str) and toks[1].endswith("\n")
    # nothing more: one ack per message
    assert c.poll_acks(0.3) == []
    # a sender may shut its side down after its last message: the acks
    # owed are still written, then the connection is closed
    toks2 = [fluentd_token() for _ in range(5)]
    for i, tok in enumerate(toks2):
        evs = msg_events(100 + i, 2)
        exp += expected("app.log", evs)
        c.send("app.log", evs, token=tok)
    c.shutdown_write()
    assert c.read_acks(5, WAIT) == toks2
    closed, more = c.wait_closed(WAIT)
    assert closed and more == []
    c.close()
    assert b.stop() == 0
    assert b.err == b""
    assert not os.path.exists(b.sock), "socket not removed at exit"
    assert spool_events(spool) == exp
    assert all_files(spool, "tmp") == []


def test_ack_bytes_on_the_wire(work, procs):
    """The ack is {"ack": <the chunk option byte for byte>}: a str token
    comes back as the same str (str8 or fixstr alike), a bin as bin."""
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    c = b.client()
    tok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123==\n"
    c.send("t", msg_events(0, 1), token=tok)
    o = c.read_reply(WAIT)
    assert o == {"ack": tok}
    btok = b"\x00\xff" * 8
    c.send("t", msg_events(1, 1), token=btok)
    assert c.read_reply(WAIT) == {"ack": btok}
    # raw check: the reply bytes are exactly the msgpack of {"ack": token}
    import socket as _s
    s = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)
    s.connect(b.sock)
    s.settimeout(WAIT)
    s.sendall(packb(["t", pack_entries(msg_events(2, 1)),
                     {"size": 1, "chunk": "tok\n"}]))
    want = b"\x81\xa3ack\xa4tok\n"
    got = b""
    while len(got) < len(want):
        d = s.recv(100)
        assert d, got
        got += d
    assert got == want
    s.close()
    c.close()
    assert b.stop() == 0
    assert len(spool_events(spool)) == 3


def test_flush_at_shutdown_false_leaves_staged_then_recovered(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-at-shutdown", "false"]).start()
    c = b.client()
    exp = {"a": [], "b": []}
    for i in range(10):
        tag = "ab"[i % 2]
        evs = msg_events(i, 3)
        exp[tag] += expected(tag, evs)
        send_acked(c, tag, evs)
    c.close()
    assert b.stop() == 0
    assert b.err == b""
    assert chunk_names(spool) == []
    staged = read_chunks(spool, "tmp", state="S")
    assert sorted(s["tag"] for s in staged) == ["a", "b"]
    for s in staged:
        assert [(s["tag"], tsec(t), r) for t, r in s["events"]] == exp[s["tag"]]
    # a restart seals what was left staged (recovery), nothing lost
    b.args = []
    b.start()
    wait_for(lambda: len(chunk_names(spool)) == 2, what="recovery sealing")
    assert b.stop() == 0
    got = read_chunks(spool)
    assert sorted(c["id"] for c in got) == sorted(s["id"] for s in staged)
    for g in got:
        assert [(g["tag"], tsec(t), r) for t, r in g["events"]] == exp[g["tag"]]
    assert all_files(spool, "tmp") == [] and all_files(spool, "dead") == []


# ---------------------------------------------------------------------------
# 3. Dedup
# ---------------------------------------------------------------------------

def test_dedup_same_connection_and_pipelined(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    c = b.client()
    ta = send_acked(c, "t", msg_events(0, 4))
    # re-sent after its ack: acked again, not stored again
    assert send_acked(c, "t", msg_events(0, 4), token=ta) == ta
    # pipelined: the second copy arrives before the first is committed
    tb = fluentd_token()
    c.send("t", msg_events(1, 4), token=tb)
    c.send("t", msg_events(1, 4), token=tb)
    assert c.read_acks(2, WAIT) == [tb, tb]
    # a bin token too
    tc = os.urandom(16)
    send_acked(c, "t", msg_events(2, 2), token=tc)
    send_acked(c, "t", msg_events(2, 2), token=tc)
    # dedup is by token, not content: another token is another message
    send_acked(c, "t", msg_events(3, 1))
    send_acked(c, "t", msg_events(3, 1))
    # the same token from another connection is a duplicate as well
    c2 = b.client()
    send_acked(c2, "t", msg_events(0, 4), token=ta)
    c.close()
    c2.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    want = {(0, e): 1 for e in range(4)}
    want.update({(1, e): 1 for e in range(4)})
    want.update({(2, e): 1 for e in range(2)})
    want[(3, 0)] = 2
    assert cnt == want


@pytest.mark.parametrize("how", ["term", "kill"])
def test_dedup_across_restart(work, procs, how):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    c = b.client()
    toks = [send_acked(c, "t", msg_events(i, 3),
                       token=fluentd_token() if i % 2 else os.urandom(16))
            for i in range(20)]
    c.close()
    if how == "term":
        assert b.stop() == 0
    else:
        b.kill9()
    assert os.path.getsize(os.path.join(spool, "state", "window")) > 0
    b.start()
    c = b.client()
    # everything re-sent with the same tokens: acked, nothing stored twice
    for i, tok in enumerate(toks):
        c.send("t", msg_events(i, 3), token=tok)
    assert c.read_acks(len(toks), WAIT) == toks
    send_acked(c, "t", msg_events(99, 1))
    c.close()
    assert b.stop() == 0
    assert b.err == b""
    cnt = id_counts(spool_events(spool))
    want = {(i, e): 1 for i in range(20) for e in range(3)}
    want[(99, 0)] = 1
    assert cnt == want


# ---------------------------------------------------------------------------
# 4. Chunk keys, flush modes, limits
# ---------------------------------------------------------------------------

def test_chunk_key_record_value(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--chunk-key", "category"]).start()
    c = b.client()
    cats = ["a", "b", None, "a", 7]
    exp = {}
    allevs = []
    for i in range(30):
        cat = cats[i % len(cats)]
        r = {"m": i, "e": 0}
        if cat is not None:
            r["category"] = cat
        allevs.append((T + i, r))
        exp.setdefault(cat, []).append(("t", (T + i, 0), r))
    # one message mixing every category: split by record value
    send_acked(c, "t", allevs[:15])
    for e in allevs[15:]:
        send_acked(c, "t", [e])
    c.close()
    assert b.stop() == 0
    cs = read_chunks(spool)
    assert len(cs) == 4
    got = {}
    for ch in cs:
        assert ch["tag"] == "t"
        assert set(ch["keys"]) == {"tag", "variables"}, ch["keys"]
        v = ch["variables"]
        assert list(v) == ["category"], v
        assert v["category"] not in got
        got[v["category"]] = [("t", tsec(t), r) for t, r in ch["events"]]
    assert got == exp


def test_timekey_splits_by_hour_utc(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--timekey", "1h", "--timekey-use-utc"]).start()
    c = b.client()
    hour = T - T % 3600
    times = [hour, hour + 3599, hour + 3600, hour - 1, hour + 7200 + 5,
             hour + 10, hour + 3600 + 1800]
    evs = [(t, {"m": i, "e": 0}) for i, t in enumerate(times)]
    send_acked(c, "tk", evs)
    c.close()
    assert b.stop() == 0
    cs = read_chunks(spool)
    got = {}
    for ch in cs:
        assert ch["tag"] == "tk"
        assert isinstance(ch["timekey"], int)
        assert ch["timekey"] not in got
        got[ch["timekey"]] = [tsec(t)[0] for t, _ in ch["events"]]
    assert got == {
        hour - 3600: [hour - 1],
        hour: [hour, hour + 3599, hour + 10],
        hour + 3600: [hour + 3600, hour + 5400],
        hour + 7200: [hour + 7205],
    }


def test_flush_immediate_one_chunk_per_commit(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-mode", "immediate"]).start()
    c = b.client()
    for i in range(6):
        send_acked(c, "t", msg_events(i, 2))
        # the chunk is sealed by the commit, before the ack
        assert len(chunk_names(spool)) == i + 1
    c.close()
    assert b.stop() == 0
    cs = read_chunks(spool)
    assert [[r["m"] for _, r in ch["events"]] for ch in cs] == \
        [[i, i] for i in range(6)]


def test_flush_interval_seals_in_time(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-interval", "0.5s"]).start()
    c = b.client()
    t0 = time.monotonic()
    send_acked(c, "t", msg_events(0, 3))
    if time.monotonic() - t0 < 0.4:
        assert chunk_names(spool) == []
    wait_for(lambda: chunk_names(spool), timeout=1.5, step=0.02,
             what="interval sealing")
    assert time.monotonic() - t0 <= 1.6
    assert all_files(spool, "tmp") == []
    c.close()
    assert b.stop() == 0
    assert len(spool_events(spool)) == 3


def test_flush_lazy_waits_for_usr1(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-mode", "lazy",
                                   "--flush-interval", "0.2s"]).start()
    c = b.client()
    send_acked(c, "t", msg_events(0, 3))
    time.sleep(1.5)
    assert chunk_names(spool) == []
    assert len(chunk_names(spool, "tmp")) == 1
    b.signal(signal.SIGUSR1)
    wait_for(lambda: chunk_names(spool), timeout=5, what="USR1 sealing")
    assert all_files(spool, "tmp") == []
    send_acked(c, "t", msg_events(1, 1))
    c.close()
    assert b.stop() == 0
    assert len(read_chunks(spool)) == 2


@pytest.mark.parametrize("limit", [["--chunk-limit-size", "4k"],
                                   ["--chunk-limit-records", "10"]])
def test_chunk_limits_roll(work, procs, limit):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], limit).start()
    c = b.client()
    want = {}
    sizes = [1, 7, 3, 25, 10, 11, 2, 9, 40]
    for i, n in enumerate(sizes * 3):
        send_acked(c, "t", msg_events(i, n, pad=150))
        want.update({(i, e): 1 for e in range(n)})
    c.close()
    assert b.stop() == 0
    cs = read_chunks(spool)
    total = sum(ch["size"] for ch in cs)
    for ch in cs:
        if limit[0] == "--chunk-limit-size":
            assert ch["size"] <= 4096, ch["size"]
        else:
            assert 1 <= ch["count"] <= 10, ch["count"]
    if limit[0] == "--chunk-limit-size":
        assert len(cs) >= total // 4096
    else:
        assert len(cs) >= sum(sizes * 3) // 10
    assert id_counts(spool_events(spool)) == want
    # events of one tag keep their order across chunks
    order = [ident(r) for _, _, r in spool_events(spool)]
    assert order == sorted(order)


def test_event_over_chunk_limit_dropped_rest_stored(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--chunk-limit-size", "4k"]).start()
    c = b.client()
    evs = msg_events(0, 5)
    evs[2][1]["big"] = "x" * 5000
    send_acked(c, "t", evs)
    # a message of one oversize event: acked, nothing stored
    send_acked(c, "t", [(T, {"m": 1, "e": 0, "big": "y" * 9000})])
    send_acked(c, "t", msg_events(2, 2))
    c.close()
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert len([w for w in warns if "chunk_limit_size" in w]) == 2, warns
    assert sorted(id_counts(spool_events(spool))) == \
        [(0, 0), (0, 1), (0, 3), (0, 4), (2, 0), (2, 1)]


# ---------------------------------------------------------------------------
# 5. Several spools (out_copy)
# ---------------------------------------------------------------------------

def test_several_spools_get_every_event(work, procs):
    spools = [mkspool(work, "s%d" % i) for i in range(3)]
    b = lfb(procs, work, spools, ["--chunk-limit-records", "20"]).start()
    c = b.client()
    want = {}
    toks = []
    for i in range(30):
        tok = fluentd_token()
        toks.append(tok)
        c.send("t.%d" % (i % 2), msg_events(i, 1 + i % 6), token=tok)
        want.update({(i, e): 1 for e in range(1 + i % 6)})
    assert c.read_acks(30, WAIT) == toks
    # a re-send is a duplicate in every spool
    send_acked(c, "t.0", msg_events(0, 1), token=toks[0])
    c.close()
    assert b.stop() == 0
    for s in spools:
        assert id_counts(spool_events(s)) == want, s
        assert all_files(s, "tmp") == []
    # pipe mode too
    pspools = [mkspool(work, "p%d" % i) for i in range(2)]
    data = b"".join(packb(["p", pack_entries(msg_events(i, 3)), {"size": 3}])
                    for i in range(10))
    rc, out, err = run("lf-buffer", pspools, data)
    assert (rc, out, err) == (0, b"", b"")
    for s in pspools:
        assert id_counts(spool_events(s)) == \
            {(i, e): 1 for i in range(10) for e in range(3)}


# ---------------------------------------------------------------------------
# 6. Overflow (total_limit_size)
# ---------------------------------------------------------------------------

def spool_bytes(spool):
    n = 0
    for d in ("tmp", "new"):
        for f in os.listdir(os.path.join(spool, d)):
            try:
                n += os.path.getsize(os.path.join(spool, d, f))
            except FileNotFoundError:
                pass
    return n


def consume(spool, consumed, half=False):
    """A consumer: read every ready chunk (with half, the oldest half of
    them), record its events, delete it."""
    n = 0
    chs = read_chunks(spool)
    if half:
        chs = chs[:(len(chs) + 1) // 2]
    for ch in chs:
        for t, r in ch["events"]:
            consumed.append((ch["tag"], tsec(t), r))
        os.unlink(os.path.join(spool, "new", ch["name"]))
        n += 1
    return n


def overflow_run(procs, work, action, extra=()):
    spool = mkspool(work)
    b = lfb(procs, work, [spool],
            ["--total-limit-size", "8k", "--chunk-limit-size", "2k",
             "--flush-mode", "immediate", "--overflow-action", action] +
            list(extra)).start()
    return spool, b


def test_overflow_block_back_pressure(work, procs):
    spool, b = overflow_run(procs, work, "block")
    c = b.client()
    N = 30
    toks = [fluentd_token() for _ in range(N)]
    for i, tok in enumerate(toks):
        c.send("t", msg_events(i, 4, pad=150), token=tok)   # ~800 bytes
    acked = c.poll_acks(2.0)
    assert 0 < len(acked) < N
    acked += c.poll_acks(1.5)
    assert len(acked) < N, "not blocked"
    assert acked == toks[:len(acked)]
    assert b.alive()
    assert spool_bytes(spool) <= 8192 + 1024
    consumed = []
    deadline = time.monotonic() + WAIT
    while len(acked) < N:
        assert time.monotonic() < deadline, "flow did not resume"
        consume(spool, consumed)
        acked += c.poll_acks(0.3)
        assert spool_bytes(spool) <= 8192 + 1024
    assert acked == toks
    c.close()
    assert b.stop() == 0
    allev = consumed + spool_events(spool)
    assert id_counts(allev) == {(i, e): 1 for i in range(N) for e in range(4)}


def test_overflow_block_is_logged(work, procs):
    spool, b = overflow_run(procs, work, "block")
    c = b.client()
    for i in range(30):
        c.send("t", msg_events(i, 4, pad=150), token=fluentd_token())
    c.poll_acks(2.5)
    c.close()
    consume(spool, [])
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert any("total_limit_size" in w or "full" in w for w in warns), warns


def test_overflow_throw_exception_refuses_without_ack(work, procs):
    spool, b = overflow_run(procs, work, "throw_exception")
    c = b.client()
    acked = []
    refused = None
    for i in range(40):
        tok = fluentd_token()
        c.send("t", msg_events(i, 4, pad=150), token=tok)
        try:
            got = c.read_ack(WAIT)
        except Closed:
            refused = i
            break
        assert got == tok
        acked.append(i)
    assert refused is not None and refused > 0, "never refused"
    c.close()
    assert b.alive()
    # the refused message is not stored; a consumer makes room; a new
    # connection works again
    consumed = []
    consume(spool, consumed)
    c = b.client()
    send_acked(c, "t", msg_events(refused, 4, pad=150))
    c.close()
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert any("total_limit_size" in w for w in warns), warns
    allev = consumed + spool_events(spool)
    assert id_counts(allev) == {(i, e): 1 for i in acked + [refused]
                                for e in range(4)}


def test_overflow_drop_oldest_chunk(work, procs):
    spool, b = overflow_run(procs, work, "drop_oldest_chunk", ["-v"])
    c = b.client()
    N = 30
    for i in range(N):
        send_acked(c, "t", msg_events(i, 4, pad=150))
        assert spool_bytes(spool) <= 8192 + 1024
    c.close()
    assert b.stop() == 0
    err = b.err.decode()
    warns = log_lines(err, "warn")
    drops = [w for w in warns if "dropped the oldest chunk" in w]
    evs = spool_events(spool)
    kept = sorted({r["m"] for _, _, r in evs})
    assert kept, "everything dropped"
    # immediate mode: one message, one chunk; the oldest were dropped
    assert kept == list(range(N - len(kept), N))
    # each drop is a warning, rate-limited (10 a second, then a count);
    # the exit stats count them all
    assert 0 < len(drops) <= N - len(kept)
    assert ("dropped_chunks=%d " % (N - len(kept))) in err, err
    assert id_counts(evs) == {(i, e): 1 for i in kept for e in range(4)}


def test_overflow_drop_oldest_passes_over_chunk_in_delivery(work, procs):
    """A chunk a consumer has claimed (flock on the file) is not dropped:
    the next oldest is."""
    import fcntl
    spool, b = overflow_run(procs, work, "drop_oldest_chunk")
    c = b.client()
    send_acked(c, "t", msg_events(0, 4, pad=150))
    first = chunk_names(spool)
    assert len(first) == 1
    fd = os.open(os.path.join(spool, "new", first[0]), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for i in range(1, 20):
            send_acked(c, "t", msg_events(i, 4, pad=150))
        assert first[0] in chunk_names(spool)
    finally:
        os.close(fd)
    c.close()
    assert b.stop() == 0
    kept = sorted({r["m"] for _, _, r in spool_events(spool)})
    assert kept[0] == 0 and kept[1:] == list(range(20 - len(kept) + 1, 20))
    assert len(kept) < 20


# ---------------------------------------------------------------------------
# 7. Crash test: kill -9 at random instants, the sender re-sends
# ---------------------------------------------------------------------------

class Sender:
    """A sender as Fluentd's out_forward with require_ack_response: it keeps
    every message until its ack, and after a broken connection re-sends the
    unacked ones with the SAME chunk token.  Up to `window` in flight."""

    def __init__(self, path, msgs, window=32, ack_timeout=WAIT):
        self.path = path
        self.msgs = msgs                # [(tag, entries bytes, size, token)]
        self.window = window
        self.ack_timeout = ack_timeout
        self.acked = [False] * len(msgs)
        self.sends = [0] * len(msgs)
        self.nacked = 0
        self.next = 0
        self.inflight = []              # indices sent on this connection
        self.connects = 0
        self.resent = 0
        self.limit = len(msgs)          # may be lowered to pace the run

    def _send(self, c, i):
        tag, ents, size, tok = self.msgs[i]
        self.sends[i] += 1
        c.send(tag, ents, token=tok, size=size)

    def run(self, deadline, abort=None):
        pending = []                    # sent once, not acked: re-send
        while self.nacked < len(self.msgs):
            if abort is not None and abort.is_set():
                return
            if time.monotonic() > deadline:
                raise AssertionError("sender: out of time (%d/%d acked)" %
                                     (self.nacked, len(self.msgs)))
            try:
                c = connect_retry(self.path, WAIT)
            except OSError:
                time.sleep(0.01)
                continue
            self.connects += 1
            # in flight before it is sent: a send that fails half way is
            # re-sent on the next connection, as out_forward does
            self.inflight = list(pending)
            last = time.monotonic()
            try:
                for i in pending:
                    self._send(c, i)
                    self.resent += 1
                while self.nacked < len(self.msgs):
                    if time.monotonic() > deadline or (
                            abort is not None and abort.is_set()):
                        break
                    while (len(self.inflight) < self.window and
                           self.next < min(self.limit, len(self.msgs))):
                        self.inflight.append(self.next)
                        self.next += 1
                        self._send(c, self.inflight[-1])
                    if not self.inflight:
                        time.sleep(0.005)
                        last = time.monotonic()
                        continue
                    got = c.poll_acks(0.05)
                    if got:
                        last = time.monotonic()
                    elif time.monotonic() - last > self.ack_timeout:
                        raise AssertionError(
                            "no ack for %ss on a live connection" %
                            self.ack_timeout)
                    for tok in got:
                        i = self.inflight.pop(0)
                        # acks come in the order of the messages
                        assert tok == self.msgs[i][3], (i, tok)
                        if not self.acked[i]:
                            self.acked[i] = True
                            self.nacked += 1
            except (Closed, Timeout, OSError):
                pass
            finally:
                c.close()
            pending = [i for i in self.inflight if not self.acked[i]]
            self.inflight = []


def crash_run(work, procs, early_kill_p=0.0, N=2000, PER=50, KILLS=16):
    """Send N acked messages of PER events while lf-buffer is kill -9'd at
    random instants and restarted (with early_kill_p, killed again before
    it is ready, i.e. while it recovers).  Returns (spool, Lfb, Sender,
    kills)."""
    spool = mkspool(work)
    # small chunks so that sealing (rename into new/) happens all the time
    b = lfb(procs, work, [spool], ["--chunk-limit-size", "64k"])
    b.start()
    seed = int(os.environ.get("LF_SEED", "0")) or random.randrange(1 << 30)
    rnd = random.Random(seed)
    msgs = []
    for i in range(N):
        evs = [(T + i, {"m": i, "e": e, "p": "%x" % (i * PER + e)})
               for e in range(PER)]
        tok = fluentd_token() if i % 2 else os.urandom(16)
        msgs.append(("crash.%d" % (i % 3), pack_entries(evs), PER, tok))
    s, kills = kill_while_sending(b, msgs, rnd, seed, KILLS, early_kill_p)
    return spool, b, s, kills


def kill_while_sending(b, msgs, rnd, seed, KILLS, early_kill_p=0.0):
    """The messages sent (and re-sent) by a Sender until all are acked,
    while the running lf-buffer b is kill -9'd and restarted at random
    instants.  Returns (Sender, kills)."""
    N = len(msgs)
    s = Sender(b.sock, msgs)
    # pace the sender with the kills, so that they fall all along the run
    s.limit = N // KILLS
    kills = [0]
    done = threading.Event()
    errors = []

    def killer():
        try:
            while not done.is_set():
                if rnd.random() < 0.15:
                    time.sleep(rnd.uniform(0, 0.02))   # just after ready
                else:
                    time.sleep(rnd.uniform(0.05, 0.3))
                if done.is_set():
                    break
                b.kill9()
                kills[0] += 1
                s.limit = min(N, N * (kills[0] + 1) // KILLS)
                b.start(wait_ready=False)
                while rnd.random() < early_kill_p and not done.is_set():
                    time.sleep(rnd.uniform(0, 0.02))
                    b.kill9()
                    kills[0] += 1
                    b.start(wait_ready=False)
                b.wait_ready()
        except BaseException as e:     # pragma: no cover
            errors.append(e)
            done.set()

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    try:
        s.run(time.monotonic() + 120, abort=done)
    finally:
        done.set()
        th.join(WAIT)
    assert not errors, "%r\nlf-buffer said:\n%s" % (errors, b.all_err())
    assert b.alive()
    assert b.stop() == 0
    assert s.nacked == N, "seed %d" % seed
    s.seed = seed
    return s, kills[0]


def check_crash_run(spool, b, s, PER=50):
    N = len(s.msgs)
    for e in b.errs:
        for line in log_lines(e.decode(errors="replace")):
            assert not line.startswith(("error", "fatal")), line
    evs = spool_events(spool)       # checks every chunk's CRCs and count
    cnt = id_counts(evs)
    missing = [k for k in ((i, e) for i in range(N) for e in range(PER))
               if k not in cnt]
    dups = sorted(k for k, v in cnt.items() if v != 1)
    lost = sorted({m for m, _ in missing})
    assert not missing, ("seed %d: %d acked events lost, messages %r "
                         "(sent %r times)" % (s.seed, len(missing), lost[:10],
                                              [s.sends[m] for m in lost[:10]]))
    assert not dups, "seed %d: %d events stored twice, e.g. %r" % (
        s.seed, len(dups), dups[:5])
    assert len(cnt) == N * PER
    for tag, _t, r in evs:
        assert tag == "crash.%d" % (r["m"] % 3)
        assert r["p"] == "%x" % (r["m"] * PER + r["e"])
    assert all_files(spool, "tmp") == []
    assert all_files(spool, "dead") == []
    fsck(spool)


def test_crash_kill9_acked_events_exactly_once(work, procs):
    """The core promise.  2000 messages of 50 events, each acked; kill -9
    at random instants (at least 15 times), the sender re-sends with the
    same token until acked; at the end every event exactly once.

    Half of the kills come while lf-buffer is still starting (recovering
    staged chunks and rewriting its window): LF_CRASH_EARLY_KILL sets
    that share.  LF_SEED replays a run."""
    early = float(os.environ.get("LF_CRASH_EARLY_KILL", "0.5"))
    spool, b, s, kills = crash_run(work, procs, early_kill_p=early)
    assert kills >= 15, kills
    assert s.resent > 0 and s.connects > 15
    check_crash_run(spool, b, s)


# ---------------------------------------------------------------------------
# 7b. kill -9 after part of a message was sealed, before its commit
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["bigger-than-a-chunk", "chunk-key-roll"])
def test_kill_before_commit_of_split_message(work, procs, case):
    """A message split over chunks (bigger than a chunk, or with
    --chunk-key, one whose events roll the staged chunk over); lf-buffer
    dies before the commit that acks it; the sender re-sends it with the
    same token: its events must end up stored exactly once."""
    spool = mkspool(work)
    opts = ["--chunk-limit-records", "10"]
    if case == "chunk-key-roll":
        opts += ["--chunk-key", "k"]
    # --commit-wait holds the commit (and the ack) back: a crash window
    b = lfb(procs, work, [spool], opts + ["--commit-wait", "3s"]).start()
    c = b.client()
    want = {}
    if case == "chunk-key-roll":
        evs = msg_events(0, 8, extra=lambda m, e: {"k": "x"})
        send_acked(c, "t", evs)
        want.update({(0, e): 1 for e in range(8)})
        evs = msg_events(1, 5, extra=lambda m, e: {"k": "x"})
    else:
        evs = msg_events(1, 35)
    want.update({(1, e): 1 for e in range(len(evs))})
    tok = fluentd_token()
    c.send("t", evs, token=tok)
    time.sleep(0.5)             # taken, not yet committed nor acked
    assert c.poll_acks(0) == []
    b.kill9()
    c.close()
    b.args = opts
    b.start()
    c = b.client()
    assert send_acked(c, "t", evs, token=tok) == tok
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    assert cnt == want, \
        "stored twice: %r" % sorted(k for k, v in cnt.items() if v > 1)


def test_kill_before_commit_not_acked_not_kept_twice(work, procs):
    """The same crash window for a message that fits its chunk: nothing of
    it is acked or sealed before the commit, and the re-send is stored
    once (the control case of the test above)."""
    spool = mkspool(work)
    opts = ["--chunk-limit-records", "10", "--chunk-key", "k"]
    b = lfb(procs, work, [spool], opts + ["--commit-wait", "3s"]).start()
    c = b.client()
    first = msg_events(0, 3, extra=lambda m, e: {"k": "x"})
    send_acked(c, "t", first)
    evs = msg_events(1, 5, extra=lambda m, e: {"k": "xy"[e % 2]})
    tok = fluentd_token()
    c.send("t", evs, token=tok)
    time.sleep(0.5)
    assert c.poll_acks(0) == []
    b.kill9()
    c.close()
    b.args = opts
    b.start()
    c = b.client()
    send_acked(c, "t", evs, token=tok)
    send_acked(c, "t", first)           # a new token: stored again
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    want = {(0, e): 2 for e in range(3)}
    want.update({(1, e): 1 for e in range(5)})
    assert cnt == want


# ---------------------------------------------------------------------------
# 8. Disk full
# ---------------------------------------------------------------------------

@pytest.fixture
def smallfs(work):
    d = os.path.join(work, "mnt")
    os.mkdir(d)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", d],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        pytest.skip("cannot mount a 2 MiB tmpfs (needs root and "
                    "CAP_SYS_ADMIN): %s" % p.stdout.decode(errors="replace"))
    yield d
    subprocess.run(["umount", "-l", d])


def fill(fsdir, leave_pages=0):
    """Fill the filesystem with a file; leave_pages 4 KiB pages free."""
    path = os.path.join(fsdir, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    size = 0
    try:
        while True:
            try:
                size += os.write(fd, b"\0" * 65536)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        if leave_pages:
            size -= size % 4096
            os.ftruncate(fd, max(0, size - 4096 * leave_pages))
    finally:
        os.close(fd)
    st = os.statvfs(fsdir)
    assert st.f_bavail == leave_pages, (st.f_bavail, leave_pages)
    return path


def held_on_full_disk(b):
    """How many times lf-buffer said it holds input on a full disk (a
    commit or a new chunk failed with ENOSPC)."""
    return b.read_err().count("No space left on device")


def disk_full_run(procs, work, smallfs):
    """Send acked messages into a 2 MiB filesystem until it is full; each
    time lf-buffer says it holds input on the full disk, a consumer takes
    the oldest half of the ready chunks, and so on until every message is
    acked.

    The sender never blocks: lf-buffer's back pressure is to stop reading,
    and a blocking send would stop this loop, and with it the consumer
    that frees the disk (a Python socket with a timeout waits for POLLOUT,
    which a Unix socket gives only while less than a quarter of its send
    buffer is queued: 13 messages of 3.5 KB)."""
    spool = os.path.join(smallfs, "spool")
    b = lfb(procs, work, [spool],
            ["--overflow-action", "block", "--total-limit-size", "1g",
             "--chunk-limit-size", "64k"]).start()
    N, PER = 1200, 20           # ~4 KB a message, ~4.7 MB in all
    msgs = []
    for i in range(N):
        evs = msg_events(i, PER, pad=150)
        msgs.append(("full", pack_entries(evs), PER,
                     fluentd_token() if i % 2 else os.urandom(16)))
    c = b.client()
    c.sock.setblocking(False)
    out = b""                   # bytes sent to the socket as it takes them
    inflight = []
    acked = []
    nxt = 0
    consumed = []
    stalled = 0
    held = 0
    last = time.monotonic()
    while len(acked) < N:
        if time.monotonic() - last > WAIT:
            st = os.statvfs(smallfs)
            raise AssertionError(
                "no ack for %ss: %d acked, %d in flight, %d bytes unsent, "
                "%d bytes free, new/ %r, tmp/ %r\nlf-buffer said:\n%s" % (
                    WAIT, len(acked), len(inflight), len(out),
                    st.f_bavail * st.f_frsize, chunk_names(spool),
                    all_files(spool, "tmp"), b.read_err()))
        while len(inflight) < 16 and nxt < N:
            tag, ents, size, tok = msgs[nxt]
            out += message(tag, ents, tok, size)
            inflight.append(nxt)
            nxt += 1
        _, w, _ = select.select([], [c.sock] if out else [], [], 0)
        if w:
            out = out[c.sock.send(out):]
        for tok in c.poll_acks(0.05):
            i = inflight.pop(0)
            assert tok == msgs[i][3]
            acked.append(i)
            last = time.monotonic()
        n = held_on_full_disk(b)
        if n == held:
            continue
        held = n
        st = os.statvfs(smallfs)
        # With more room, the warning is of a retry that failed before the
        # last consumer run (a hold with room to spare fails the test: no
        # ack for WAIT seconds).
        if st.f_bavail * st.f_frsize < 256 * 1024:
            # lf-buffer holds input: the disk is full (back pressure)
            assert b.alive(), b.read_err()
            stalled += 1
            # free space: a consumer takes the oldest half of what is ready
            assert consume(spool, consumed, half=True) > 0, \
                "stalled with nothing ready to consume"
            last = time.monotonic()
    c.close()
    return spool, b, msgs, acked, consumed, stalled


def test_disk_full_blocks_then_resumes(work, smallfs, procs):
    spool, b, msgs, acked, consumed, stalled = disk_full_run(procs, work,
                                                              smallfs)
    assert stalled >= 2, "the disk filled %d times" % stalled
    assert acked == list(range(len(msgs)))
    want = {(i, e): 1 for i in range(len(msgs)) for e in range(20)}
    # the dedup window went through the episode whole: after a crash,
    # acked messages re-sent with their tokens are not stored again
    consume(spool, consumed)
    b.kill9()
    b.start()
    c = b.client()
    for i in acked[-300:]:
        tag, ents, size, tok = msgs[i]
        c.send(tag, ents, token=tok, size=size)
        assert c.read_ack(WAIT) == tok
    c.close()
    assert b.stop() == 0
    warns = [w for e in b.errs for w in log_lines(e.decode(), "warn")]
    assert any("No space left" in w for w in warns), warns
    allev = consumed + spool_events(spool)
    assert id_counts(allev) == want
    assert all_files(spool, "tmp") == [] and all_files(spool, "dead") == []


def test_disk_full_short_window_write_keeps_dedup(work, smallfs, procs):
    """The window log is 48-byte records; a commit whose record does not
    fit in the last free bytes of the filesystem must not tear the log."""
    spool = os.path.join(smallfs, "spool")
    b = lfb(procs, work, [spool]).start()
    wpath = os.path.join(spool, "state", "window")
    c = b.client()
    toks = []
    # commits until the window's last page has room for less than a record
    while 4096 - os.path.getsize(wpath) % 4096 >= 48:
        assert len(toks) < 200
        toks.append(send_acked(c, "t", msg_events(len(toks), 1)))
    filler = fill(smallfs)
    tx = fluentd_token()
    c.send("t", msg_events(len(toks), 1), token=tx)
    assert c.poll_acks(1.5) == [], "acked on a full disk"
    assert b.alive()
    os.unlink(filler)
    assert c.read_ack(WAIT) == tx
    toks.append(tx)
    for _ in range(3):
        toks.append(send_acked(c, "t", msg_events(len(toks), 1)))
    c.close()
    b.kill9()
    b.start()
    c = b.client()
    for i, tok in enumerate(toks):
        c.send("t", msg_events(i, 1), token=tok)
    assert c.read_acks(len(toks), WAIT) == toks
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    assert cnt == {(i, 0): 1 for i in range(len(toks))}, \
        "stored twice: %r" % sorted(k for k, v in cnt.items() if v > 1)


@pytest.mark.parametrize("case", [
    "chunk-key",
    "split",
])
def test_disk_full_mid_message_no_duplicates(work, smallfs, procs, case):
    """ENOSPC after part of a message is placed: back pressure, then, once
    there is room, the message stored exactly once."""
    spool = os.path.join(smallfs, "spool")
    if case == "chunk-key":
        b = lfb(procs, work, [spool], ["--chunk-key", "k"]).start()
        c = b.client()
        send_acked(c, "t", [(T, {"m": 0, "e": 0, "k": "a"})])
        filler = fill(smallfs)
        evs = [(T, {"m": 1, "e": e, "k": "ab"[e % 2]}) for e in range(4)]
    else:
        b = lfb(procs, work, [spool], ["--chunk-limit-records", "10"]).start()
        c = b.client()
        send_acked(c, "u", [(T, {"m": 0, "e": 0})])
        filler = fill(smallfs, leave_pages=1)
        evs = msg_events(1, 25)
    tok = fluentd_token()
    c.send("t", evs, token=tok)
    assert c.poll_acks(1.5) == [], "acked on a full disk"
    assert b.alive()
    os.unlink(filler)
    assert c.read_ack(WAIT) == tok
    c.close()
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert any("No space left" in w for w in warns), warns
    cnt = id_counts(spool_events(spool))
    want = {(0, 0): 1}
    want.update({(1, e): 1 for e in range(len(evs))})
    assert cnt == want, \
        "stored twice: %r" % sorted(k for k, v in cnt.items() if v > 1)


def test_recovery_interrupted_before_window_rewrite(work, procs):
    spool = mkspool(work)
    wpath = os.path.join(spool, "state", "window")
    opts = ["--flush-interval", "3s", "--commit-wait", "3s"]
    b = lfb(procs, work, [spool], opts).start()
    c = b.client()
    ta, tb, tx = fluentd_token(), fluentd_token(), fluentd_token()
    c.send("a", msg_events(0, 2), token=ta)
    c.send("b", msg_events(1, 2), token=tb)
    assert c.read_acks(2, WAIT) == [ta, tb]
    # X waits for its commit (3 s); meanwhile the interval seals chunk b,
    # which writes the window records of the commit under way, X's too
    c.send("a", msg_events(2, 2), token=tx)
    wait_for(lambda: os.path.getsize(wpath) >= 3 * 48, timeout=2.5,
             what="X's window record")
    assert len(chunk_names(spool)) == 1
    assert c.poll_acks(0) == []
    b.kill9()                   # X was never acked
    c.close()
    # the next start cuts chunk a back (X was never written) but cannot
    # void X's record in the window: an I/O error (fault injection)
    b.args = []
    b.env = fault_env("pwrite@state/window:1+:EIO")
    b.start(wait_ready=False)
    assert b.exited() == 73
    assert "state/window" in b.err.decode(), b.err
    # recovered chunks leave tmp/ only after the window is rewritten
    assert len(all_files(spool, "tmp")) == 1
    # the sender re-sends X with its token
    b.env = None
    b.start()
    c = b.client()
    send_acked(c, "a", msg_events(2, 2), token=tx)
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    assert cnt == {(m, e): 1 for m in range(3) for e in range(2)}, \
        "acked but lost: %r" % sorted(
            k for k in ((m, e) for m in range(3) for e in range(2))
            if k not in cnt)


# ---------------------------------------------------------------------------
# 9. Corruption of staged chunks
# ---------------------------------------------------------------------------

def test_corrupt_staged_chunks_recovered_or_buried(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool], ["--flush-at-shutdown", "false"]).start()
    c = b.client()
    exp = {}
    for i in range(12):
        tag = ["torn", "badhead", "extra"][i % 3]
        evs = msg_events(i, 3)
        exp.setdefault(tag, []).extend(expected(tag, evs))
        send_acked(c, tag, evs)
    c.close()
    assert b.stop() == 0
    staged = {s["tag"]: s for s in read_chunks(spool, "tmp", state="S")}
    assert sorted(staged) == ["badhead", "extra", "torn"]
    tpath = os.path.join(spool, "tmp", staged["torn"]["name"])
    hpath = os.path.join(spool, "tmp", staged["badhead"]["name"])
    xpath = os.path.join(spool, "tmp", staged["extra"]["name"])
    # torn tail: cut in the middle of the last entry
    last = packb([et(T + 2), {"m": 9, "e": 2}])
    os.truncate(tpath, os.path.getsize(tpath) - len(last) // 2)
    # a flipped byte in the header (the chunk keys)
    with open(hpath, "r+b") as f:
        data = bytearray(f.read())
        data[lfchunk.FIXED + 2] ^= 0x20
        f.seek(0)
        f.write(data)
    badbytes = bytes(data)
    # bytes past the committed body (a commit that never finished)
    with open(xpath, "ab") as f:
        f.write(packb([et(T), {"m": 99, "e": 0}])[:7])
    b.args = ["-v"]
    b.start()
    wait_for(lambda: len(chunk_names(spool)) == 2, what="recovery")
    assert b.stop() == 0
    assert all_files(spool, "tmp") == []
    got = {ch["tag"]: ch for ch in read_chunks(spool)}
    assert sorted(got) == ["extra", "torn"]
    torn = [(g["tag"], tsec(t), r) for g in [got["torn"]]
            for t, r in g["events"]]
    assert torn == exp["torn"][:-1]
    assert [("extra", tsec(t), r) for t, r in got["extra"]["events"]] == \
        exp["extra"]
    # the bad header went to dead/, byte for byte, with its reason
    dead = all_files(spool, "dead")
    name = staged["badhead"]["name"]
    assert sorted(dead) == sorted([name, name + ".reason"]), dead
    with open(os.path.join(spool, "dead", name), "rb") as f:
        assert f.read() == badbytes
    reason = lfchunk.read_reason(spool, name)
    assert "header" in reason, reason
    warns = log_lines(b.err.decode(), "warn")
    assert any(name in w and "dead" in w for w in warns), warns
    assert any(staged["torn"]["name"] in w for w in warns), warns
    fsck(spool)


# ---------------------------------------------------------------------------
# 10. Bad input
# ---------------------------------------------------------------------------

def test_malformed_message_closes_only_that_connection(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    good = b.client()
    bad = b.client()
    send_acked(good, "t", msg_events(0, 2))
    send_acked(bad, "t", msg_events(1, 2))
    bad.send_raw(b"\xc1\x00\x01")
    closed, got = bad.wait_closed(WAIT)
    assert closed and got == []
    send_acked(good, "t", msg_events(2, 2))
    # msgpack that is not a forward message: not acked, the connection
    # goes on (lf-buffer(1): "a malformed message ... the connection goes on")
    good.send_raw(packb([1, 2]) + packb(["t"]))
    send_acked(good, "t", msg_events(4, 1))
    good2 = b.client()
    send_acked(good2, "t", msg_events(3, 2))
    good.close()
    good2.close()
    bad.close()
    assert b.stop() == 0
    warns = log_lines(b.err.decode())
    assert len(warns) == 3 and all(w.startswith("connection ") for w in warns), warns
    assert len([w for w in warns if "closing" in w]) == 1, warns
    assert sorted(id_counts(spool_events(spool))) == \
        [(m, e) for m in range(4) for e in range(2)] + [(4, 0)]


def test_invalid_events_dropped_rest_acked(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    c = b.client()
    good = msg_events(0, 4)
    ents = (pack_entries(good[:2]) + packb([et(T), "not a map"]) +
            packb(["not a time", {"m": 0, "e": 99}]) + packb([et(T)]) +
            pack_entries(good[2:]))
    tok = fluentd_token()
    c.send("t", ents, token=tok, size=7)
    assert c.read_ack(WAIT) == tok
    send_acked(c, "t", msg_events(1, 1))
    c.close()
    assert b.stop() == 0
    warns = log_lines(b.err.decode(), "warn")
    assert any("invalid" in w for w in warns), warns
    assert spool_events(spool) == expected("t", good) + \
        expected("t", msg_events(1, 1))


def test_pipe_bad_input_exits_65_after_storing_good(work):
    spool = mkspool(work)
    data = (packb(["t", pack_entries(msg_events(0, 3)), {"size": 3}]) +
            packb([1, 2]) +                         # not a forward message
            packb(["t", pack_entries(msg_events(1, 2)), {"size": 2}]) +
            b"\xc1garbage")
    rc, out, err = run("lf-buffer", [spool], data)
    assert rc == 65, err
    assert out == b""
    msgs = log_lines(err.decode())
    assert 1 <= len(msgs) <= 3, msgs
    assert sorted(id_counts(spool_events(spool))) == \
        [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert all_files(spool, "tmp") == []


# ---------------------------------------------------------------------------
# 11. Locking, options
# ---------------------------------------------------------------------------

def test_second_lf_buffer_on_same_spool_exits_75(work, procs):
    spool = mkspool(work)
    b = lfb(procs, work, [spool]).start()
    other = os.path.join(work, "other")
    rc, out, err = run("lf-buffer", ["--listen", "unix:" + other, spool])
    assert rc == 75, err
    msgs = log_lines(err.decode())
    assert len(msgs) == 1 and "another lf-buffer" in msgs[0], msgs
    # pipe mode, and as the second of several spools, too
    rc, _, err = run("lf-buffer", [spool], b"")
    assert rc == 75, err
    rc, _, err = run("lf-buffer", [mkspool(work, "free"), spool], b"")
    assert rc == 75, err
    # the first one is unharmed
    c = b.client()
    send_acked(c, "t", msg_events(0, 1))
    c.close()
    assert b.stop() == 0
    assert len(spool_events(spool)) == 1


def test_help_version_usage(work):
    rc, out, err = run("lf-buffer", ["--help"])
    assert (rc, err) == (0, b"") and out.startswith(b"usage: lf-buffer")
    rc, out, err = run("lf-buffer", ["--version"])
    assert (rc, out, err) == (0, b"lf-buffer 0.1.0\n", b"")
    spool = mkspool(work)
    for args in (["--no-such-option", spool], [],
                 ["--chunk-limit-size", "10", spool],
                 ["--chunk-limit-size", "lots", spool],
                 ["--flush-mode", "sometimes", spool],
                 ["--overflow-action", "panic", spool],
                 ["--listen", "tcp:1.2.3.4:24224", spool],
                 ["--flush-at-shutdown", "maybe", spool]):
        rc, out, err = run("lf-buffer", args, b"")
        assert rc == 64, (args, rc, err)
        assert out == b"", args
        assert err, args
    assert not os.path.exists(spool)
