"""lf-recv end to end (issue 9): the forward protocol's server, proven
with the interop vectors of research/forward-protocol.md section 9, sent
byte for byte by Python (an encoder independent of lf's), and every
option, in both of lf-recv's modes:

- stdout: lf-recv | lf-cat -o json, the events compared with what was sent;
- --to unix:PATH: into a real lf-buffer, whose spool is read back with
  lfchunk.py; a client's ack comes only once lf-buffer acked.

Counters are read from --state-file (rewritten every second).  Everything
waits with a deadline (wait_for), nothing sleeps to hope.
"""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import msgpack
import pytest

import conftest
from conftest import (T, _env, canon, check_no_sanitizer, et, et_ext8, ev,
                      events, gzip_members, packb, str32, tool)
from fwdclient import Client, Closed, Timeout, fluentd_token
from test_lf_buffer import Lfb, mkspool, spool_events

WAIT = 20
wait_for = conftest.waiter(WAIT)
LOGPFX = "lf-recv: "

MiB = 1 << 20
# ASan keeps freed memory (256 MiB by default) before it goes back: the
# memory tests make that small, so that what they measure is lf-recv's
SMALL_QUARANTINE = {"ASAN_OPTIONS": os.environ.get(
    "ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1") + ":quarantine_size_mb=8"}
TOKEN3 = "p8n9gmxTQVC8/nh2wlKKeQ=="
TOKEN4 = "AAECAwQFBgcICQoLDA0ODw==\n"


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------

def free_port(host="127.0.0.1", family=socket.AF_INET):
    """A port free for TCP and UDP both (lf-recv binds the two)."""
    for _ in range(50):
        t = socket.socket(family, socket.SOCK_STREAM)
        u = socket.socket(family, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise AssertionError("no free port")


class TcpClient(Client):
    """fwdclient.Client over TCP."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, src=None):
        self.path = "%s:%d" % (host, port)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            if src:
                self.sock.bind((src, 0))
            self.sock.connect((host, port))
        except Exception:
            self.sock.close()
            raise
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.eof = False

    def read_exact(self, n, timeout=10.0):
        """n raw bytes of reply (the bytes, not their decoding)."""
        deadline = time.monotonic() + timeout
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.sock], [], [], max(0.0, left))
            if not r:
                raise Timeout("%d of %d bytes" % (len(data), n))
            b = self.sock.recv(n - len(data))
            if not b:
                raise Closed("closed after %r" % data)
            data += b
        return data

    def nothing_for(self, secs):
        """True if no byte (and no EOF) comes within secs."""
        r, _, _ = select.select([self.sock], [], [], secs)
        return not r


class Recv:
    """One lf-recv on a TCP port (and optionally more --listen), with
    --notify-fd for readiness and --state-file for its counters.  Without
    --to its stdout goes into lf-cat -o json, whose output is collected."""

    def __init__(self, work, args=(), to=None, listen=None, env=None,
                 cat=True, preexec=None, stdout=None):
        self.work = str(work)
        self.port = None
        if listen is None:
            self.port = free_port()
            listen = ["127.0.0.1:%d" % self.port]
        self.listen = listen
        self.state = os.path.join(self.work, "state.json")
        self.log = os.path.join(self.work, "recv.%d.log" % time.monotonic_ns())
        self.args = [str(a) for a in args]
        self.to = to
        self.env = env
        self.preexec = preexec
        self.cat = None
        self.out = b""
        self.cat_err = b""
        self.use_cat = cat and to is None and stdout is None
        self.stdout = stdout
        self.p = None

    def cmd(self, notify):
        c = [tool("lf-recv")]
        for l in self.listen:
            c += ["--listen", l]
        if self.to:
            c += ["--to", "unix:" + self.to]
        return c + ["--notify-fd", str(notify), "--state-file", self.state,
                    "--log-file", self.log] + self.args

    def start(self, ready=True):
        r, w = os.pipe()
        self.p = subprocess.Popen(
            self.cmd(w), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.use_cat else
            self.stdout or subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=_env(self.env), pass_fds=(w,),
            preexec_fn=self.preexec)
        os.close(w)
        if self.use_cat:
            self.cat = subprocess.Popen(
                [tool("lf-cat"), "-o", "json"], stdin=self.p.stdout,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
            self.p.stdout.close()
            self.cat_thread = threading.Thread(target=self._read_cat)
            self.cat_thread.start()
        self.err = b""
        self.err_thread = threading.Thread(target=self._read_err)
        self.err_thread.start()
        with os.fdopen(r, "rb") as f:
            got = f.read(1) if ready else None
        if ready and got != b"\n":
            rc = self.p.wait(WAIT)
            raise AssertionError("lf-recv not ready (rc %r): %s" %
                                 (rc, self.text()))
        return self

    def _read_cat(self):
        self.out = self.cat.stdout.read()
        self.cat_err = self.cat.stderr.read()

    def _read_err(self):
        self.err = self.p.stderr.read()

    def text(self):
        try:
            with open(self.log, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        return (data + self.err).decode(errors="replace")

    def lines(self, level=None):
        res = []
        for line in self.text().splitlines():
            assert line.startswith(LOGPFX), "not a log line: %r" % line
            lvl, _, msg = line[len(LOGPFX):].partition(": ")
            if level is None or lvl == level:
                res.append(msg)
        return res

    def stats(self):
        try:
            with open(self.state) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def stat(self, key, i=None):
        s = self.stats()
        if i is not None:
            s = (s.get("listeners") or [{}])[i]
        return s.get(key, 0)

    def wait_stat(self, key, n, i=None, what=None):
        return wait_for(lambda: self.stat(key, i) >= n,
                        what=what or "%s >= %d" % (key, n))

    def client(self, host="127.0.0.1", port=None):
        return TcpClient(port or self.port, host)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        """Signal and wait; the exit code.  No sanitizer report allowed."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        self.err_thread.join(WAIT)
        if self.cat:
            self.cat.wait(WAIT)
            self.cat_thread.join(WAIT)
            check_no_sanitizer(self.cat_err)
            assert self.cat.returncode == 0, self.cat_err
        check_no_sanitizer(self.text().encode())
        return rc

    def events(self):
        """What lf-cat printed (after stop)."""
        return events(self.out)

    def cleanup(self):
        for p in (self.p, self.cat):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for t in ("err_thread", "cat_thread"):
            if hasattr(self, t):
                getattr(self, t).join(5)


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="lfr")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def recvs():
    started = []
    yield started
    for r in started:
        r.cleanup()
        if r.p is not None:
            import sys
            sys.stderr.write("---- lf-recv log:\n%s" % r.text())


def recv(recvs, work, args=(), **kw):
    r = Recv(work, args, **kw)
    recvs.append(r)
    return r.start()


def stop_ok(r):
    rc = r.stop()
    assert rc == 0, r.text()
    return r.events()


# ---- the vectors, byte for byte ----

TAG = packb("tag.a")


def v1():
    return bytes.fromhex("93a5746167 2e61ce55ece6f881a76d657373616765a3626172"
                         .replace(" ", ""))


def msg_chunk(token, rec=None, t=None):
    """Message mode with a chunk option."""
    return (b"\x94" + TAG + (t or packb(et(T, 500000000))) +
            packb(rec or {"k": "v"}) + packb({"chunk": token}))


def ack_bytes(token):
    return b"\x81\xa3ack" + packb(token)


V5 = bytes.fromhex("93a57461672e619292ce55ece6f881a1610192d70055ece6f9000000"
                   "0081a1620281a473697a6502")
ENTRIES6 = bytes.fromhex("92d70055ece6f80000000081a1610192d70055ece6f800000001"
                         "81a16202")


def v6(token=TOKEN4):
    return (b"\x93" + TAG + str32(ENTRIES6) +
            b"\x83\xa4size\x02\xaacompressed\xa4text\xa5chunk" + packb(token))


V7 = b"\x92" + TAG + b"\xc4\x1e" + ENTRIES6
V11 = bytes.fromhex("93a57461672e61919292d70055ece6f8000000008081a16101"
                    "81ad666c75656e745f7369676e616c00")

EV6 = [ev("tag.a", T, 0, {"a": 1}), ev("tag.a", T, 1, {"b": 2})]


def send_and_sync(c, data, token=None):
    """Send data, then a message with a chunk: its ack is the first reply
    (what data made lf-recv answer would come before it)."""
    token = token or fluentd_token()
    c.send_raw(data)
    c.send_raw(msg_chunk(token, {"sync": 1}))
    assert c.read_reply(WAIT) == {"ack": token}
    return token


SYNC = ev("tag.a", T, 500000000, {"sync": 1})


# ---------------------------------------------------------------------------
# 1. The interop vectors (section 9)
# ---------------------------------------------------------------------------

def test_vector_1_message_no_reply(work, recvs):
    assert v1() == b"\x93" + TAG + b"\xce\x55\xec\xe6\xf8" + packb(
        {"message": "bar"})
    r = recv(recvs, work)
    with r.client() as c:
        send_and_sync(c, v1())
    assert stop_ok(r) == [ev("tag.a", T, 0, {"message": "bar"}), SYNC]


def test_vector_2_event_time_fixext8_and_ext8(work, recvs):
    r = recv(recvs, work)
    fix = bytes.fromhex("d70055ece6f8075bcd15")
    assert fix == packb(et(T, 123456789))
    assert et_ext8(T, 123456789) == bytes.fromhex("c7080055ece6f8075bcd15")
    with r.client() as c:
        c.send_raw(b"\x93" + TAG + fix + packb({"f": 1}))
        send_and_sync(c, b"\x93" + TAG + et_ext8(T, 123456789) + packb({"f": 2}))
    assert stop_ok(r) == [ev("tag.a", T, 123456789, {"f": 1}),
                          ev("tag.a", T, 123456789, {"f": 2}), SYNC]


def test_vectors_3_4_ack_echoed_byte_for_byte(work, recvs):
    r = recv(recvs, work)
    want3 = bytes.fromhex("81a361636bb8") + TOKEN3.encode()
    want4 = bytes.fromhex("81 a3 61 63 6b b9 41 41 45 43 41 77 51 46 42 67 63 49 "
                          "43 51 6f 4c 44 41 30 4f 44 77 3d 3d 0a")
    assert msg_chunk(TOKEN3)[:30] == bytes.fromhex(
        "94a57461672e61d70055ece6f81dcd650081a16ba17681a56368756e6bb8")
    with r.client() as c:
        c.send_raw(msg_chunk(TOKEN3))
        assert c.read_exact(len(want3)) == want3
        c.send_raw(msg_chunk(TOKEN4))
        assert c.read_exact(len(want4)) == want4
        assert c.nothing_for(0.2)
    assert stop_ok(r) == [ev("tag.a", T, 500000000, {"k": "v"})] * 2


def test_vector_5_forward_mixed_times(work, recvs):
    r = recv(recvs, work)
    assert V5 == b"\x93" + TAG + packb([[T, {"a": 1}], [et(T + 1), {"b": 2}]]) \
        + packb({"size": 2})
    with r.client() as c:
        send_and_sync(c, V5)
    assert stop_ok(r) == [ev("tag.a", T, 0, {"a": 1}),
                          ev("tag.a", T + 1, 0, {"b": 2}), SYNC]


def test_time_zero_is_now(work, recvs):
    """in_forward reads a time of 0 (int or EventTime, in every mode) as
    now; a time of 1 stays 1."""
    r = recv(recvs, work)
    before = int(time.time())
    with r.client() as c:
        send_and_sync(c, b"\x93" + TAG + packb(0) + packb({"m": 1}))
        send_and_sync(c, b"\x92" + TAG + packb([[et(0), {"f": 1}],
                                                [1, {"one": 1}]]))
    after = int(time.time()) + 1
    evs = [e for e in stop_ok(r) if e != SYNC]
    assert [e[2] for e in evs] == [canon({"m": 1}), canon({"f": 1}),
                                   canon({"one": 1})]
    for e in evs[:2]:
        assert before <= int(float(e[1])) <= after, e
    assert evs[2][1] == conftest.ts(1, 0)


def test_vectors_6_7_packed_forward_str32_and_bin8(work, recvs):
    r = recv(recvs, work)
    with r.client() as c:
        c.send_raw(v6())
        want = b"\x81\xa3ack\xb9" + TOKEN4.encode()
        assert c.read_exact(len(want)) == want
        send_and_sync(c, V7)
    assert stop_ok(r) == EV6 + EV6 + [SYNC]


def test_vector_8_compressed_several_gzip_members(work, recvs):
    e1 = packb([et(T), {"a": 1}])
    e2 = packb([et(T, 1), {"b": 2}])
    z = gzip_members(e1, e2)
    opt = {"compressed": "gzip", "size": 2}
    r = recv(recvs, work, ["--state-file", os.path.join(work, "s2")])
    with r.client() as c:
        c.send_raw(packb(["tag.a", z, opt]))                       # bin
        c.send_raw(b"\x93" + TAG + str32(z) + packb(opt))         # str32
        tok = fluentd_token()
        c.send_raw(b"\x93" + TAG + str32(z) + packb(dict(opt, chunk=tok)))
        assert c.read_ack(WAIT) == tok
        # zstd is not supported: that message is refused, not taken as
        # text; the connection goes on or is closed, and nothing is stored
        c.send_raw(packb(["tag.a", z, {"compressed": "zstd", "size": 2,
                                       "chunk": "z"}]))
        try:
            got = c.read_reply(2)
            assert got != {"ack": "z"}, got
        except (Closed, Timeout):
            pass
    assert stop_ok(r) == EV6 * 3


def test_vector_9_streaming_one_write_and_byte_by_byte(work, recvs):
    r = recv(recvs, work)
    with r.client() as c:
        c.send_raw(v1() + V5 + v6("one"))
        assert c.read_ack(WAIT) == "one"
    with r.client() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in v6("two"):
            c.send_raw(bytes([b]))
        assert c.read_ack(WAIT) == "two"
    got = stop_ok(r)
    first = [ev("tag.a", T, 0, {"message": "bar"}), ev("tag.a", T, 0, {"a": 1}),
             ev("tag.a", T + 1, 0, {"b": 2})] + EV6
    assert got == first + EV6


def test_vector_10_udp_heartbeat_from_the_targeted_address(work, recvs):
    r = recv(recvs, work)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(WAIT)
    try:
        for _ in range(3):
            u.sendto(b"\x00", ("127.0.0.1", r.port))
            data, frm = u.recvfrom(64)
            assert (data, frm) == (b"\x00", ("127.0.0.1", r.port))
    finally:
        u.close()
    r.wait_stat("heartbeats", 3, 0)
    assert stop_ok(r) == []


def test_vector_10_udp_heartbeat_wildcard_replies_from_target(work, recvs):
    """On a wildcard listener the reply comes from the address the client
    sent to (127.0.0.2 here, not the 127.0.0.1 the system would pick),
    over IPv4 and over IPv6."""
    port = free_port("0.0.0.0")
    r = recv(recvs, work, listen=["0.0.0.0:%d" % port])
    for fam, host in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1"),
                      (socket.AF_INET6, "::1")):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.settimeout(WAIT)
        try:
            u.sendto(b"\x00", (host, port))
            data, frm = u.recvfrom(64)
            assert data == b"\x00" and frm[:2] == (host, port), (host, frm)
        finally:
            u.close()
    assert stop_ok(r) == []


def test_vector_10_tcp_connect_close_and_nil(work, recvs):
    r = recv(recvs, work)
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", r.port))
        s.close()
    with r.client() as c:
        c.send_raw(b"\xc0")
        assert c.nothing_for(0.3)
        send_and_sync(c, b"\xc0\xc0")
    r.wait_stat("connections", 21, 0)
    assert r.stop() == 0
    assert r.lines("warn") == [] and r.lines("error") == [], r.text()
    assert r.stats()["bad_messages"] == 0
    assert r.events() == [SYNC]


def test_vector_11_v15_metadata(work, recvs):
    r = recv(recvs, work)
    assert V11 == b"\x93" + TAG + packb([[[et(T), {}], {"a": 1}]]) + packb(
        {"fluent_signal": 0})
    packed = packb(["tag.a", packb([[et(T), {"m": 1}], {"a": 1}]),
                    {"fluent_signal": 0, "chunk": "m"}])
    with r.client() as c:
        c.send_raw(V11)
        c.send_raw(packed)
        assert c.read_ack(WAIT) == "m"
    assert stop_ok(r) == [ev("tag.a", T, 0, {"a": 1})] * 2


def test_vector_12_invalid_events_dropped_and_acked(work, recvs):
    """A nil time and a record that is no map are dropped, the rest is
    kept and the message acked.  (A float time is taken: section 7.6,
    some loggers send one.)"""
    r = recv(recvs, work)
    bad = packb(["tag.a", [[None, {"x": 1}], [T, "notamap"], [1.5, {"f": 1}],
                           [T, {"ok": 1}]], {"chunk": "inv"}])
    with r.client() as c:
        c.send_raw(bad)
        assert c.read_ack(WAIT) == "inv"
        # not an array: no reply, and the connection goes on
        c.send_raw(packb({"a": 1}))
        assert c.nothing_for(0.3)
        send_and_sync(c, b"")
    assert stop_ok(r) == [ev("tag.a", 1, 500000000, {"f": 1}),
                          ev("tag.a", T, 0, {"ok": 1}), SYNC]
    assert any("2 invalid events dropped" in m for m in r.lines()), r.text()


def test_vector_12_invalid_message_in_message_mode_acked(work, recvs):
    """A Message-mode event whose record is no map is dropped, acked."""
    r = recv(recvs, work)
    with r.client() as c:
        c.send_raw(packb(["tag.a", T, "nomap", {"chunk": "x"}]))
        assert c.read_ack(WAIT) == "x"
    assert stop_ok(r) == []


def test_vector_15_json_mode(work, recvs):
    r = recv(recvs, work)
    with r.client() as c:
        c.send_raw(b'["tag.a",1441588984,{"a":1},{"chunk":"abc"}]')
        want = b'{"ack":"abc"}'
        assert c.read_exact(len(want)) == want
        # more values, split anywhere, a scalar let go, forward mode
        c.send_raw(b' 42 ["tag.b",[[1441588985,{"b":[1,2]}]],{"chu')
        c.send_raw(b'nk":"d\\n"}]\n')
        want = b'{"ack":"d\\n"}'
        assert c.read_exact(len(want)) == want
    assert stop_ok(r) == [ev("tag.a", T, 0, {"a": 1}),
                          ev("tag.b", T + 1, 0, {"b": [1, 2]})]


def test_unix_and_tcp_listeners_socket_removed_at_exit(work, recvs):
    """--listen unix:PATH next to TCP: both served, counted apart, and
    the socket file is gone after exit (as lf-buffer's)."""
    sp = os.path.join(work, "in.sock")
    port = free_port()
    r = recv(recvs, work, listen=["127.0.0.1:%d" % port, "unix:" + sp])
    with Client(sp) as c:
        c.send_raw(v6("u"))
        assert c.read_ack(WAIT) == "u"
    with TcpClient(port) as c:
        c.send_raw(v6("t"))
        assert c.read_ack(WAIT) == "t"
    assert stop_ok(r) == EV6 + EV6
    assert not os.path.exists(sp)
    st = r.stats()["listeners"]
    assert [(l["messages"], l["events"]) for l in st] == [(1, 2), (1, 2)]
    assert st[1]["listen"] == "unix:" + sp and st[1]["heartbeats"] == 0


def test_stdout_back_pressure(work, recvs):
    """stdout not read: lf-recv holds at most 16 MiB for it, then stops
    reading its clients (no acks, their sends block); once it is read,
    everything comes out, acked, in order."""
    rfd, wfd = os.pipe()        # read only later
    r = recv(recvs, work, stdout=wfd)
    os.close(wfd)
    pad = 60000
    sent = []
    with r.client() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        for i in range(2000):
            try:
                c.send_raw(one("s%d" % i, i, pad=pad), timeout=1.0)
            except Timeout:
                break
            sent.append("s%d" % i)
        n = len(sent)
        assert n < 2000, "stdout never pushed back"
        got = c.poll_acks(0.3)
        # acked: what went into the pipe (64 KiB) and lf-recv's 16 MiB
        assert len(got) * pad < 24 * MiB, len(got)
        print("stdout back pressure after %d x %d bytes, %d acked" %
              (n, pad, len(got)))
        data = bytearray()
        done = threading.Event()

        def drain():
            while True:
                b = os.read(rfd, 1 << 20)
                if not b:
                    break
                data.extend(b)
            done.set()
        t = threading.Thread(target=drain)
        t.start()
        got += c.read_acks(n - len(got), WAIT * 2)
        assert got == sent
    assert r.stop() == 0
    t.join(WAIT)
    os.close(rfd)
    ms = []
    for tag, ents, opt in conftest.unpack_all(bytes(data)):
        assert (tag, opt) == ("t.r", {"size": 1})
        ms += [rec["m"] for _t, rec in conftest.unpack_all(ents)]
    assert ms == list(range(n))


# ---------------------------------------------------------------------------
# 2. --to lf-buffer: acks end to end, back pressure, no loss
# ---------------------------------------------------------------------------

def one(token, m, tag="t.r", pad=0):
    rec = {"m": m}
    if pad:
        rec["pad"] = "x" * pad
    return packb([tag, packb([et(T, m), rec]), {"size": 1, "chunk": token}])


def spool_ms(spool):
    return sorted(r["m"] for _t, _s, r in spool_events(spool))


class Buf(Lfb):
    def __init__(self, work, args=()):
        d = os.path.join(work, "b")
        os.makedirs(d, exist_ok=True)
        super().__init__(d, [mkspool(d)], args)


@pytest.fixture
def bufs():
    started = []
    yield started
    for b in started:
        b.cleanup()


def test_to_lf_buffer_acked_after_its_commit(work, recvs, bufs):
    """A client's ack comes once lf-buffer committed: with --commit-wait
    1s, not before about a second; every acked event is in the spool."""
    b = Buf(work, ["--commit-wait", "1s"])
    bufs.append(b)
    b.start()
    r = recv(recvs, work, to=b.sock)
    with r.client() as c:
        toks = [fluentd_token() for _ in range(5)]
        t0 = time.monotonic()
        for i, t in enumerate(toks):
            c.send_raw(one(t, i))
        assert c.read_acks(5, WAIT) == toks
        assert time.monotonic() - t0 >= 0.9
    assert r.stop() == 0
    assert b.stop() == 0
    assert spool_ms(b.spools[0]) == list(range(5))
    st = r.stats()
    assert (st["messages"], st["events"], st["acks"]) == (5, 5, 5)


def test_to_lf_buffer_down_back_pressure_then_no_loss(work, recvs, bufs):
    """lf-buffer not there: no ack; a client that keeps sending is
    stopped by back pressure (its writes block) instead of lf-recv
    buffering without bound; lf-buffer started, every message arrives
    and is acked, none lost, none twice."""
    b = Buf(work)
    bufs.append(b)
    r = recv(recvs, work, to=b.sock, env=SMALL_QUARANTINE)
    rss0 = conftest_rss(r.p.pid)
    pad = 60000
    sent, acked = [], []
    with r.client() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        i = 0
        blocked = False
        while i < 2000:
            t = "tok%d" % i
            try:
                c.send_raw(one(t, i, pad=pad), timeout=1.0)
            except Timeout:
                blocked = True
                break
            sent.append(t)
            i += 1
        assert blocked, "lf-recv read 2000 x 60 KB with lf-buffer down"
        assert c.poll_acks(0.2) == []
        n = len(sent)
        rss = conftest_rss(r.p.pid)
        print("back pressure after %d messages of %d bytes; lf-recv RSS %.0f MB"
              % (n, pad, rss))
        # the hop holds at most its window (256), lf-recv one message
        # more, the kernel what its receive buffer takes (tcp_rmem's max)
        with open("/proc/sys/net/ipv4/tcp_rmem") as f:
            rmem = int(f.read().split()[2])
        assert n <= 256 + 1 + rmem // pad + 2, n
        # lf-recv's memory: the window's 15 MB and a held message
        assert rss - rss0 < 15 + 48, (rss0, rss)
        b.start()
        acked = c.read_acks(n, WAIT * 2)
    assert acked == sent
    assert r.stop() == 0
    assert b.stop() == 0
    # the message whose send blocked was cut short: not stored, the rest is
    assert spool_ms(b.spools[0]) == list(range(n))


def conftest_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def test_to_lf_buffer_same_token_other_data_kept(work, recvs, bufs):
    """A chunk option is only an ack token to a client: one that uses the
    same token for different messages gets each stored, while the same
    message sent again (a re-send after a lost ack) is stored once, by
    lf-buffer's dedup window.  Before: the second message was acked and
    dropped as a copy."""
    b = Buf(work)
    bufs.append(b)
    b.start()
    r = recv(recvs, work, to=b.sock)
    with r.client() as c:
        for m in (1, 2, 1):
            c.send_raw(one("same", m))
            assert c.read_ack(WAIT) == "same"
    assert r.stop() == 0
    assert b.stop() == 0
    assert spool_ms(b.spools[0]) == [1, 2]


def test_to_lf_buffer_events_over_max_message_size_acked(work, recvs, bufs):
    """16 KB of gzip that comes to 2 MB of events, over --max-message-size
    1m, cannot go over the hop: acked and dropped, logged and counted (as
    over --chunk-size-limit), not refused without an ack (its client would
    send it again for ever).  The connection goes on."""
    import gzip as gz
    b = Buf(work)
    bufs.append(b)
    b.start()
    r = recv(recvs, work, ["--max-message-size", "1m"], to=b.sock)
    ents = b"".join(packb([et(T, i), {"m": i, "pad": "x" * 1000}])
                    for i in range(2000))
    z = gz.compress(ents)
    assert len(z) < 64 << 10 and len(ents) > 2 * MiB - 100000
    with r.client() as c:
        c.send_raw(packb(["t.z", z, {"compressed": "gzip", "chunk": "z"}]))
        assert c.read_ack(WAIT) == "z"
        c.send_raw(one("after", 7))
        assert c.read_ack(WAIT) == "after"
    assert r.stop() == 0
    assert b.stop() == 0
    assert spool_ms(b.spools[0]) == [7]
    assert r.stats()["oversize_events"] == 2000
    assert ("tag t.z: a message whose 2000 events come to %d bytes, more "
            "than --max-message-size 1048576: dropped and acked" % len(ents)
            ) in r.text()


def test_to_lf_buffer_restarted_reconnects(work, recvs, bufs):
    """lf-buffer stopped while lf-recv runs: messages wait unacked, and
    are delivered and acked when it is back."""
    b = Buf(work)
    bufs.append(b)
    b.start()
    r = recv(recvs, work, to=b.sock)
    with r.client() as c:
        c.send_raw(one("a", 0))
        assert c.read_ack(WAIT) == "a"
        assert b.stop() == 0
        c.send_raw(one("b", 1))
        c.send_raw(one("c", 2))
        assert c.poll_acks(0.5) == []
        b.start()
        assert c.read_acks(2, WAIT) == ["b", "c"]
    assert r.stop() == 0
    assert b.stop() == 0
    assert spool_ms(b.spools[0]) == [0, 1, 2]


def test_kill9_lf_send_recv_buffer_chain_loses_nothing(work, recvs, bufs,
                                                      tmp_path):
    """lf-send -> lf-recv -> lf-buffer, with acks end to end; lf-recv and
    lf-buffer killed -9 in turns at random instants mid-stream and
    started again: every chunk lf-send saw acked (it deletes those) is in
    lf-buffer's spool; duplicates are allowed, loss is not."""
    import random
    import lfchunk
    from test_lf_send import Send, fill, left
    spool = lfchunk.make_spool(tmp_path / "spool")
    chunks = fill(spool, 300, 40)
    b = Buf(work, ["--commit-wait", "0.02s"])
    bufs.append(b)
    b.start()
    r = recv(recvs, work, to=b.sock)
    s = Send(spool, tmp_path, [
        "--server", "127.0.0.1:%d" % r.port, "--require-ack-response",
        "--retry-wait", "0.05s", "--retry-max-interval", "0.3s",
        "--retry-randomize=false", "--heartbeat-type", "none",
        "--ack-response-timeout", "5s"])
    rnd = random.Random(9)
    kills = 0
    try:
        while left(spool) and kills < 12:
            # a random instant: sleeping here is the point, not a wait
            time.sleep(rnd.uniform(0.05, 0.3))
            if kills % 2 == 0:
                assert r.stop(signal.SIGKILL) == -signal.SIGKILL
                r.start()
            else:
                b.kill9()
                b.start()
            kills += 1
        wait_for(lambda: not left(spool), WAIT * 3, "every chunk acked")
    finally:
        assert s.stop() == 0, s.text()
    assert r.stop() == 0
    assert b.stop() == 0
    got = {}
    for _t, _s, rec in spool_events(b.spools[0]):
        k = (rec["c"], rec["i"])
        got[k] = got.get(k, 0) + 1
    want = {(r_["c"], r_["i"]) for evs in chunks.values() for _t, r_ in evs}
    dups = sum(got.values()) - len(got)
    print("chain kill -9 x%d: %d events, %d duplicates" % (kills, len(want),
                                                         dups))
    assert set(got) == want
    assert kills >= 4, "delivered before the kills: make the spool bigger"


# ---------------------------------------------------------------------------
# 3. Options
# ---------------------------------------------------------------------------

def test_add_tag_prefix(work, recvs):
    r = recv(recvs, work, ["--add-tag-prefix", "agg"])
    with r.client() as c:
        c.send_raw(v6("p"))
        assert c.read_ack(WAIT) == "p"
    assert stop_ok(r) == [("agg.tag.a",) + e[1:] for e in EV6]


def test_source_address_key_v4_and_v6(work, recvs):
    p = free_port()
    p6 = free_port("::1", socket.AF_INET6)
    r = recv(recvs, work, ["--source-address-key", "host"],
             listen=["127.0.0.1:%d" % p, "[::1]:%d" % p6])
    with TcpClient(p) as c:
        # a record that has the key already: ours comes last and wins
        c.send_raw(packb(["t", [[T, {"a": 1}], [T, {"host": "x", "b": 2}]],
                          {"chunk": "4"}]))
        assert c.read_ack(WAIT) == "4"
    with TcpClient(p6, "::1") as c:
        c.send_raw(packb(["t", T, {"a": 1}, {"chunk": "6"}]))
        assert c.read_ack(WAIT) == "6"
    got = stop_ok(r)
    assert got == [ev("t", T, 0, {"a": 1, "host": "127.0.0.1"}),
                   ("t", "%d.000000000" % T,
                    ("map", [(("str", "host"), ("str", "x")),
                             (("str", "b"), ("int", 2)),
                             (("str", "host"), ("str", "127.0.0.1"))])),
                   ev("t", T, 0, {"a": 1, "host": "::1"})]


def test_chunk_size_limit_acked_dropped_logged_counted(work, recvs):
    """Over --chunk-size-limit: acked (so the sender moves on, unlike
    Fluentd's re-send for ever), dropped, logged, counted."""
    r = recv(recvs, work, ["--chunk-size-limit", "1k",
                           "--chunk-size-warn-limit", "500"])
    big = packb(["t.big", [[T, {"pad": "x" * 400}]] * 3, {"chunk": "big"}])
    warn = packb(["t.warn", [[T, {"pad": "x" * 600}]], {"chunk": "warn"}])
    small = packb(["t.small", [[T, {"a": 1}]], {"chunk": "small"}])
    assert len(big) > 1024 and 500 < len(warn) < 1024
    with r.client() as c:
        c.send_raw(big + warn + small)
        assert c.read_acks(3, WAIT) == ["big", "warn", "small"]
    r.wait_stat("oversize_events", 3)
    assert r.stat("oversize_events", 0) == 3
    assert [e[0] for e in stop_ok(r)] == ["t.warn", "t.small"]
    text = r.text()
    assert ("tag t.big: a message of %d bytes (3 events) is over "
            "--chunk-size-limit 1024: dropped and acked" % len(big)) in text
    assert ("tag t.warn: a message of %d bytes is over "
            "--chunk-size-warn-limit 500" % len(warn)) in text
    assert "t.small" not in text


def test_skip_invalid_event_false_refuses(work, recvs):
    r = recv(recvs, work, ["--skip-invalid-event", "false"])
    with r.client() as c:
        c.send_raw(packb(["t", [[T, {"ok": 1}], [T, "nomap"]], {"chunk": "x"}]))
        closed, got = c.wait_closed(WAIT)
        assert closed and got == []
    with r.client() as c:
        c.send_raw(packb(["t", [[T, {"ok": 2}]], {"chunk": "y"}]))
        assert c.read_ack(WAIT) == "y"
    assert stop_ok(r) == [ev("t", T, 0, {"ok": 2})]
    assert "refused (--skip-invalid-event false)" in r.text()


def test_deny_keepalive(work, recvs):
    """Closed after the first message, its ack written first; what came
    after it on that connection is not taken."""
    r = recv(recvs, work, ["--deny-keepalive", "true"])
    with r.client() as c:
        c.send_raw(one("first", 1) + one("second", 2))
        closed, got = c.wait_closed(WAIT)
        assert closed and got == [{"ack": "first"}]
    with r.client() as c:
        c.send_raw(packb(["t", T, {"m": 3}]))     # no chunk: closed at once
        assert c.wait_closed(WAIT) == (True, [])
    got = stop_ok(r)
    assert [dict(e[2][1])[("str", "m")] for e in got] == [("int", 1), ("int", 3)]


def keepalive_on(port):
    """ss -o: the server's socket of that port shows a keepalive timer."""
    out = subprocess.run(["ss", "-tno", "state", "established",
                          "( sport = :%d )" % port], capture_output=True,
                         text=True).stdout
    lines = [l for l in out.splitlines()[1:] if l.strip()]
    assert lines, out
    return all("keepalive" in l for l in lines)


@pytest.mark.parametrize("on", [True, False])
def test_send_keepalive_packet(work, recvs, on):
    r = recv(recvs, work, ["--send-keepalive-packet", str(on).lower()])
    with r.client() as c:
        send_and_sync(c, b"")
        assert keepalive_on(r.port) == on
    assert len(stop_ok(r)) == 1


@pytest.mark.parametrize("linger", [None, "0"])
def test_linger_timeout(work, recvs, linger):
    """--linger-timeout 0: a close is a reset (Fluentd's default);
    without it, a plain FIN.  Seen with --deny-keepalive, where lf-recv
    closes after its ack."""
    args = ["--deny-keepalive", "true"]
    if linger is not None:
        args += ["--linger-timeout", linger]
    r = recv(recvs, work, args)
    with r.client() as c:
        c.send_raw(one("l", 1))
        assert c.read_ack(WAIT) == "l"
        r_, _, _ = select.select([c.sock], [], [], WAIT)
        try:
            reset = c.sock.recv(10) != b"" and None
        except ConnectionResetError:
            reset = True
        else:
            reset = bool(reset)
        assert reset == (linger == "0")
    assert len(stop_ok(r)) == 1


def test_term_drains_in_flight_then_exits_0(work, recvs, bufs):
    """TERM: lf-recv stops accepting, and what lf-buffer is still to
    commit (--commit-wait 2s) is acked to its clients before it exits 0."""
    b = Buf(work, ["--commit-wait", "2s"])
    bufs.append(b)
    b.start()
    r = recv(recvs, work, to=b.sock)
    with r.client() as c:
        toks = ["d%d" % i for i in range(10)]
        for i, t in enumerate(toks):
            c.send_raw(one(t, i))
        r.wait_stat("messages", 10)
        assert c.poll_acks(0) == []
        t0 = time.monotonic()
        r.p.send_signal(signal.SIGTERM)
        wait_for(lambda: not socket_accepts(r.port), what="no more accepting")
        assert c.read_acks(10, WAIT) == toks
        assert r.p.wait(WAIT) == 0
        print("drained in %.2f s" % (time.monotonic() - t0))
    assert r.stop() == 0
    assert b.stop() == 0
    assert spool_ms(b.spools[0]) == list(range(10))


def socket_accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_drain_timeout(work, recvs, bufs):
    """lf-buffer stopped (SIGSTOP): TERM waits --drain-timeout, no more,
    and the client gets no ack for what was not acked downstream."""
    b = Buf(work)
    bufs.append(b)
    b.start()
    r = recv(recvs, work, ["--drain-timeout", "1s"], to=b.sock)
    with r.client() as c:
        c.send_raw(one("a", 0))
        assert c.read_ack(WAIT) == "a"
        b.signal(signal.SIGSTOP)
        try:
            c.send_raw(one("b", 1))
            r.wait_stat("messages", 2)
            t0 = time.monotonic()
            assert r.stop() == 0
            took = time.monotonic() - t0
        finally:
            b.signal(signal.SIGCONT)
        assert 0.9 <= took < 8, took
        assert c.wait_closed(WAIT) == (True, [])
    assert "1 messages not yet acknowledged" in r.text() or \
        "not yet acknowledged" in r.text(), r.text()
    assert b.stop() == 0


def test_help_version_usage(work):
    p = subprocess.run([tool("lf-recv"), "--help"], capture_output=True,
                       env=_env())
    assert p.returncode == 0 and b"--listen" in p.stdout and p.stderr == b""
    p = subprocess.run([tool("lf-recv"), "--version"], capture_output=True,
                       env=_env())
    assert p.returncode == 0 and p.stdout.startswith(b"lf-recv ")


@pytest.mark.parametrize("args", [
    ["extra"],
    ["--bogus"],
    ["--to", "127.0.0.1:1"],
    ["--deny-keepalive", "true", "--send-keepalive-packet", "true"],
    ["--tls-cert-path", "/x"],
    ["--transport", "tls"],
    ["--transport", "udp"],
    ["--user-auth", "true"],
    ["--allow-anonymous-source", "false"],
    ["--allow", "10.0.0.0/33"],
    ["--allow", "nope"],
    ["--max-client-memory", "1k"],
    ["--message-timeout", "0"],
    ["--chunk-size-limit", "x"],
    ["--skip-invalid-event", "maybe"],
])
def test_usage_errors(work, args):
    p = subprocess.run([tool("lf-recv"), "--listen", "127.0.0.1:%d" %
                        free_port()] + args, capture_output=True, env=_env(),
                       timeout=WAIT)
    check_no_sanitizer(p.stderr)
    assert p.returncode == 64, (p.returncode, p.stderr)


# ---------------------------------------------------------------------------
# 4. Hostile clients: the bounds of lib/ingest hold through lf-recv
# ---------------------------------------------------------------------------


def rss_mb(pid):
    return conftest_rss(pid)


def raise_nofile():
    import resource
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def good_after(r, tok="after", **kw):
    """A well-behaved client is still served."""
    with r.client(**kw) as c:
        c.send_raw(one(tok, 99))
        assert c.read_ack(WAIT) == tok


def test_truncated_message_dropped_connection_kept_apart(work, recvs):
    r = recv(recvs, work)
    whole = one("w", 1)
    with r.client() as c:
        c.send_raw(whole + one("cut", 2)[:-7])
        assert c.read_ack(WAIT) == "w"
        c.shutdown_write()
        assert c.wait_closed(WAIT) == (True, [])
    good_after(r)
    assert [e[2] for e in stop_ok(r)] == [canon({"m": 1}), canon({"m": 99})]
    assert r.stats()["bad_messages"] == 1


@pytest.mark.parametrize("what", ["declared", "sent"])
def test_oversized_message_closed_memory_bounded(work, recvs, what):
    """Over --max-message-size (1m): closed, nothing stored; a 4 GiB
    length in a header is refused before anything is allocated."""
    r = recv(recvs, work, ["--max-message-size", "1m"], env=SMALL_QUARANTINE)
    rss0 = rss_mb(r.p.pid)
    with r.client() as c:
        if what == "declared":
            c.send_raw(b"\x93" + TAG + b"\xdb\xff\xff\xff\xf0" + b"x" * 4096)
        else:
            try:
                c.send_raw(one("big", 1, pad=4 * MiB), timeout=WAIT)
            except Closed:
                pass
        closed, got = c.wait_closed(WAIT)
        assert closed and got == []
    assert rss_mb(r.p.pid) - rss0 < 16
    good_after(r)
    assert len(stop_ok(r)) == 1
    assert r.stats()["bad_messages"] == 1


def test_deep_nesting_refused(work, recvs):
    """A record nested 100,000 deep: refused without recursion into it
    (no stack overflow), the client closed, the others served."""
    r = recv(recvs, work)
    deep = b"\x91" * 100000 + b"\xc0"
    with r.client() as c:
        c.send_raw(b"\x94" + TAG + packb(T) + b"\x81\xa1k" + deep +
                   packb({"chunk": "deep"}))
        closed, got = c.wait_closed(WAIT)
        assert got == [] and closed
    good_after(r)
    assert len(stop_ok(r)) == 1


def test_gzip_bomb_refused_others_served(work, recvs):
    """1 GiB of zeros in 1 MB of gzip: inflated no further than the
    decompressed-size limit (256 MiB), refused and not acked (the
    connection goes on: its next message is acked); RSS bounded; a client
    alongside is acked meanwhile."""
    import gzip as gz
    bomb = gz.compress(b"\xc6\x3f\xff\xff\xfb" + bytes((1 << 30) - 5), 1)
    r = recv(recvs, work, env=SMALL_QUARANTINE)
    rss0 = rss_mb(r.p.pid)
    with r.client() as c:
        c.send_raw(packb(["t.gz", bomb, {"compressed": "gzip", "chunk": "b"}]))
        c.send_raw(one("next", 1))
        peak = 0
        t0 = time.monotonic()
        acked = 0
        while True:
            good_after(r, "along%d" % acked)
            acked += 1
            peak = max(peak, rss_mb(r.p.pid))
            try:
                got = c.read_reply(0.05)
                break
            except Timeout:
                pass
            assert time.monotonic() - t0 < WAIT * 3
        assert got == {"ack": "next"}
    print("gzip bomb: RSS %.0f -> peak %.0f MB, %d acks alongside in %.1f s" %
          (rss0, peak, acked, time.monotonic() - t0))
    assert peak - rss0 < 256 + 64, (rss0, peak)
    assert len(stop_ok(r)) == acked + 1
    assert "gzip: decompressed size exceeds the limit" in r.text()
def test_acks_never_read(work, recvs):
    """A client that never reads its acks (200-byte chunk ids): lf-recv
    stops reading it once 256 KiB of acks are owed, serves the others,
    and closes it after --message-timeout."""
    r = recv(recvs, work, ["--message-timeout", "2s"])
    s = socket.create_connection(("127.0.0.1", r.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(0.5)
    msg = b"".join(one("k%0199d" % i, i) for i in range(100))
    sent = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10:
            try:
                s.sendall(msg)
                sent += len(msg)
            except socket.timeout:
                break
        blocked = time.monotonic() - t0
        assert sent < 16 * MiB, sent
        good_after(r)
        wait_for(lambda: "acks unread for 2 s" in r.text(),
                 what="the client closed")
        s.settimeout(WAIT)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while True:
                s.sendall(msg)
    finally:
        s.close()
    print("acks never read: blocked after %.1f MB in %.1f s" % (sent / MiB, blocked))
    assert r.stop() == 0
    assert "bytes of acks unread for 2 s: closing" in r.text()


def test_slowloris_mid_message(work, recvs):
    """Half a message, then a byte every 0.3 s stops... it is closed
    --message-timeout (1 s) after its last byte; the whole message it
    sent first is kept and acked."""
    r = recv(recvs, work, ["--message-timeout", "1s"])
    with r.client() as c:
        c.send_raw(one("whole", 1) + one("half", 2)[:20])
        assert c.read_ack(WAIT) == "whole"
        t0 = time.monotonic()
        assert c.wait_closed(WAIT) == (True, [])
        took = time.monotonic() - t0
    assert 0.9 <= took < 6, took
    good_after(r)
    assert len(stop_ok(r)) == 2
    assert "nothing sent for 1 s inside a message" in r.text()


def test_2000_concurrent_connections(work, recvs):
    """2000 clients connected at once, each sends a message and gets its
    ack; RSS stays small (under 64 MB more than idle, ASan included)."""
    raise_nofile()
    r = recv(recvs, work, env=SMALL_QUARANTINE, preexec=raise_nofile)
    rss0 = rss_mb(r.p.pid)
    socks = []
    try:
        for i in range(2000):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=WAIT)
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(one("c%d" % i, i))
        for i, s in enumerate(socks):
            u = msgpack.Unpacker(raw=False)
            while True:
                o = next(u, None)
                if o is not None:
                    break
                d = s.recv(4096)
                assert d, "connection %d closed" % i
                u.feed(d)
            assert o == {"ack": "c%d" % i}
        r.wait_stat("connections", 2000, what="the state file")
        rss = rss_mb(r.p.pid)
    finally:
        for s in socks:
            s.close()
    print("2000 connections: RSS %.0f -> %.0f MB" % (rss0, rss))
    assert rss - rss0 < 64
    got = stop_ok(r)
    assert sorted(dict(e[2][1])[("str", "m")][1] for e in got) == list(range(2000))


def test_udp_heartbeat_flood(work, recvs):
    """50,000 datagrams as fast as they go: answered at most HB_RATE
    (10,000) a second, the rest dropped and counted; RSS flat."""
    from select import select as sel
    r = recv(recvs, work, env=SMALL_QUARANTINE)
    rss0 = rss_mb(r.p.pid)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MiB)
    u.setblocking(False)
    replies = 0
    t0 = time.monotonic()
    for i in range(50000):
        try:
            u.sendto(b"\x00", ("127.0.0.1", r.port))
        except BlockingIOError:
            sel([], [u], [], 1)
        while True:
            try:
                u.recvfrom(16)
                replies += 1
            except BlockingIOError:
                break
    took = time.monotonic() - t0
    end = time.monotonic() + 1
    while time.monotonic() < end:
        if sel([u], [], [], 0.2)[0]:
            try:
                u.recvfrom(16)
                replies += 1
            except BlockingIOError:
                pass
    u.close()
    rss = rss_mb(r.p.pid)
    wait_for(lambda: r.stat("heartbeats", 0) == replies,
             what="the state file")
    st = r.stats()["listeners"][0]
    print("UDP flood: 50000 sent in %.2f s, %d answered, %d dropped, RSS "
          "%.0f -> %.0f MB" % (took, replies, st["heartbeats_dropped"],
                              rss0, rss))
    assert replies <= 10000 * (took + 1.5) + 64
    assert replies >= 1000
    assert rss - rss0 < 8
    good_after(r)
    assert len(stop_ok(r)) == 1


def test_json_unterminated_string_bounded(work, recvs):
    """JSON mode: a string that never ends is bounded as a message is
    (--max-message-size 1m): the connection is closed long before the
    64 MiB sent, and lf-recv's memory does not grow with it."""
    r = recv(recvs, work, ["--max-message-size", "1m"], env=SMALL_QUARANTINE)
    rss0 = rss_mb(r.p.pid)
    sent = 0
    with r.client() as c:
        c.send_raw(b'["t",1441588984,{"a":"')
        try:
            while sent < 64 * MiB:
                c.send_raw(b"x" * MiB, timeout=WAIT)
                sent += MiB
        except Closed:
            pass
        peak = rss_mb(r.p.pid)
        closed, got = c.wait_closed(WAIT)
        assert closed and got == []
    print("JSON unterminated string: %d MiB taken, RSS %.0f -> %.0f MB" %
          (sent / MiB, rss0, peak))
    assert sent < 16 * MiB
    assert peak - rss0 < 16
    good_after(r)
    assert len(stop_ok(r)) == 1


def test_json_slowloris_closed_idle_json_kept(work, recvs):
    """JSON mode has the same clock as msgpack: a value begun and not
    finished for --message-timeout (1 s) is closed; a JSON connection
    idle between values (a newline after each) is kept."""
    r = recv(recvs, work, ["--message-timeout", "1s"])
    with r.client() as idle, r.client() as slow:
        idle.send_raw(b'["t",1441588984,{"a":1},{"chunk":"i1"}]\n')
        slow.send_raw(b'["t",1441588984,{"a":2},{"chunk":"s1"}]\n["t",14415')
        assert idle.read_exact(12) == b'{"ack":"i1"}'
        assert slow.read_exact(12) == b'{"ack":"s1"}'
        t0 = time.monotonic()
        closed, got = slow.wait_closed(WAIT)
        took = time.monotonic() - t0
        assert closed and took < 6, took
        assert idle.nothing_for(1.5)
        idle.send_raw(b'["t",1441588984,{"a":3},{"chunk":"i2"}]')
        assert idle.read_exact(12) == b'{"ack":"i2"}'
    assert r.stop() == 0
    assert sorted(dict(e[2][1])[("str", "a")][1] for e in r.events()) == [1, 2, 3]
    assert "nothing sent for 1 s inside a message" in r.text()
