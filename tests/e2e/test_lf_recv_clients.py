"""Real Fluentd loggers into lf-recv (issue 9, "Proof"): the npm packages
fluent-logger and @fluent-org/logger (run by the machine's Node.js, from
tests/node, installed by scripts/deps) and Debian's python3-fluent-logger.

Each logger sends events with tags, times (with nanoseconds where it can
send an EventTime), UTF-8 and binary values, in each of its event modes,
with acks where it has them; the claim is that every event arrives intact
and that the logger reports success:

- stdout: lf-recv writes the events to stdout as an lf-stream(5); an
  acked event is already in the pipe when the logger hears of it.
- to:     lf-recv --to lf-buffer; an acked event is already sealed in
  the spool (lf-buffer --flush-mode immediate seals before it acks), and
  survives kill -9 of both.
- buffer: the same logger straight into lf-buffer's Unix socket: the
  control that tells a driver's fault from lf-recv's.

What each logger puts on the wire (read from their sources; the
driver scripts in tests/node say it in more detail):

  logger              modes                       quirks
  fluent-logger (npm) Message (default),          "size" = entries' BYTES, not
                      PackedForward, Compressed   events; "chunk" sent even
                                                  without acks; int seconds
                                                  unless given an EventTime;
                                                  one chunk in flight
  @fluent-org/logger  PackedForward (default),    Message mode always has an
                      Forward, Message,           option map ({} without ack);
                      CompressedPackedForward     several chunks in flight;
                                                  Date -> int seconds
  fluent-logger (py)  Message only, [tag, time,   no acks at all; nanoseconds
                      record] without option      only from a float (so within
                                                  float precision); bytes as
                                                  str with use_bin_type=False
                                                  (msgpack < 1.0's default)
"""
import base64
import errno
import gzip
import json
import os
import struct
import subprocess
import threading
import time

import msgpack
import pytest

import conftest
import lfchunk
from conftest import REPO, _env, canon, ev, events, packed_events, run, tool
from test_lf_buffer import Lfb, spool_events, tsec, work  # noqa: F401
from test_lf_send import free_port
from test_tls import pki, secret_file  # noqa: F401

WAIT = 30                   # seconds: generous, ASan on a loaded 2-core box
wait_for = conftest.waiter(WAIT)
NODE_DIR = REPO / "tests" / "node"
T0 = 1441588984             # research/forward-protocol.md section 9's T


class Recv(Lfb):
    """One lf-recv on 127.0.0.1:port (a free one unless given), with
    --to unix:to when to is given, else writing to stdout, which a thread
    collects.  Can be started again on the same port.  Its stderr files
    are in workdir/recv; stop, kill9, cleanup and the rest are Lfb's."""

    def __init__(self, workdir, to=None, args=(), port=None):
        d = os.path.join(str(workdir), "recv")
        os.makedirs(d, exist_ok=True)
        super().__init__(d, [], args, sock=False)
        self.to = to
        self.port = port or free_port()
        self.out = bytearray()
        self.lock = threading.Lock()
        self.reader = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def cmd(self, notify_fd=None):
        c = [tool("lf-recv"), "--listen", self.addr]
        if notify_fd is not None:
            c += ["--notify-fd", str(notify_fd)]
        if self.to:
            c += ["--to", "unix:" + self.to]
        return c + self.args

    def start(self, wait_ready=True):
        assert self.p is None or self.p.poll() is not None
        self.runs += 1
        self.errpath = os.path.join(self.workdir, "err.%d" % self.runs)
        self.errf = open(self.errpath, "wb")
        r, w = os.pipe()
        self.p = subprocess.Popen(
            self.cmd(w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.errf, env=_env(self.env), pass_fds=(w,))
        os.close(w)
        self.notify_r = r
        self.reader = threading.Thread(target=self._read, args=(self.p,),
                                       daemon=True)
        self.reader.start()
        if wait_ready:
            self.wait_ready()
        return self

    def _read(self, p):
        while True:
            b = p.stdout.read1(1 << 16)
            if not b:
                return
            with self.lock:
                self.out += b

    def output(self):
        with self.lock:
            return bytes(self.out)

    def _finish(self):
        self.reader.join(WAIT)
        self.p.stdout.close()
        return super()._finish()


@pytest.fixture
def procs():
    """Processes (Recv, Lfb) to kill at the end, whatever happened; their
    stderr is shown with a failed test's report."""
    started = []
    yield started
    for p in started:
        p.cleanup()
        txt = p.all_err() + p.read_err()
        if txt:
            print("---- %s stderr:\n%s" % (type(p).__name__, txt))


# ---------------------------------------------------------------------------
# The events every logger sends
# ---------------------------------------------------------------------------

def record(i):
    """A record with a bit of everything the loggers agree on: str (with
    non-ASCII), bin (with bytes no UTF-8 allows), small ints, a float,
    bool, nil, an array and a map.  Integers stay within 32 bits:
    msgpack-lite packs larger ones as float64."""
    return {"i": i, "msg": "h\u00e9llo \u043a\u043b\u044e\u0447 \U0001f600 %d" % i,
            "bin": bytes([0, 0xff, 0xfe, 0x80, i & 0xff]),
            "neg": -7 - i, "f": 1.5, "yes": True, "nil": None,
            "arr": [1, "two", b"\xc3\x28"], "map": {"k": "v\u00e9"}}


def make_events(n, nanos=True):
    """[(tag, (sec, nsec) or sec, record)]: three tags; every fourth time
    an integer of seconds, the rest EventTimes with nanoseconds (if the
    logger can send them)."""
    res = []
    for i in range(n):
        tag = "cl.%s" % ("abc"[i % 3])
        if nanos and i % 4:
            t = (T0 + i, (123456789 * (i + 1)) % 1000000000)
        else:
            t = T0 + i
        res.append((tag, t, record(i)))
    return res


def map_bytes(v, f):
    """v with every bytes value b inside it replaced by f(base64 of b)."""
    if isinstance(v, bytes):
        return f(base64.b64encode(v).decode())
    if isinstance(v, dict):
        return {k: map_bytes(x, f) for k, x in v.items()}
    if isinstance(v, list):
        return [map_bytes(x, f) for x in v]
    return v


def jsonable(v):
    """For a driver's job: bin as {"$bin": base64} (see tests/node/common.js)."""
    return map_bytes(v, lambda b64: {"$bin": b64})


def as_json_value(v):
    """A value as lf-cat -o json prints it: bin as the str of its base64."""
    return map_bytes(v, lambda b64: b64)


def sec_nsec(t):
    return t if isinstance(t, tuple) else (t, 0)


def want_events(evs):
    """Expected, in packed_events() form (bin and str told apart)."""
    return sorted(ev(tag, *sec_nsec(t), r) for tag, t, r in evs)


def want_json(evs):
    """Expected, in events() form (lf-cat -o json of the same)."""
    return sorted(ev(tag, *sec_nsec(t), as_json_value(r)) for tag, t, r in evs)


# ---------------------------------------------------------------------------
# The loggers
# ---------------------------------------------------------------------------

def node_modules_ok():
    for pkg in ("fluent-logger", "@fluent-org/logger"):
        if not (NODE_DIR / "node_modules" / pkg / "package.json").exists():
            pytest.fail("%s is not installed in %s/node_modules: run "
                        "scripts/deps" % (pkg, NODE_DIR))


def start_node(script, target, mode, ack, evs, deadline=WAIT, **extra):
    """Start a driver of tests/node on the events (extra: more of the job,
    security and tls); finish_node() takes its result."""
    node_modules_ok()
    job = {"target": target, "mode": mode, "ack": ack, **extra,
           "deadline_ms": int(deadline * 1000),
           "events": [{"tag": tag, "time": list(t) if isinstance(t, tuple)
                       else t, "record": jsonable(r)} for tag, t, r in evs]}
    p = subprocess.Popen(["node", str(NODE_DIR / script)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(NODE_DIR))
    p.stdin.write(json.dumps(job).encode())
    p.stdin.close()
    p.stdin = None          # written: communicate() only reads
    p.deadline = deadline
    return p


def finish_node(p):
    """A driver's result dict, exit status and stderr."""
    out, err = p.communicate(timeout=p.deadline + 10)
    lines = out.decode().splitlines()
    assert lines, "no result from %s: rc %d, stderr %r" % (p.args,
                                                          p.returncode, err)
    return json.loads(lines[-1]), p.returncode, err.decode()


def run_node(*args, **kw):
    return finish_node(start_node(*args, **kw))


def py_events(n):
    """Events for the Python logger: its EventTime is made from a float
    (fluent.sender.EventTime), so the nanoseconds are what that float
    holds, computed here by the logger's own class."""
    from fluent.sender import EventTime
    res = []
    for tag, t, r in make_events(n):
        if isinstance(t, tuple):
            f = t[0] + t[1] / 1e9
            t = struct.unpack(">II", EventTime(f).data)
            assert abs(t[0] + t[1] / 1e9 - f) < 1e-6
            t = (t, f)
        res.append((tag, t, r))
    return res


def run_python(target, evs, msgpack_kwargs=None):
    """Send with fluent.sender.FluentSender (one per tag prefix, as an
    application would set it up); returns the senders, still open, so that
    the test can look at what came back on their sockets."""
    from fluent import sender
    host = "unix://" + target["path"] if "path" in target else target["host"]
    port = target.get("port", 0)
    senders = {}
    for tag, t, r in evs:
        prefix, _, label = tag.partition(".")
        s = senders.get(prefix)
        if s is None:
            s = senders[prefix] = sender.FluentSender(
                prefix, host=host, port=port, timeout=WAIT,
                nanosecond_precision=True, msgpack_kwargs=msgpack_kwargs)
        tt = t[1] if isinstance(t, tuple) else t    # the float, or int
        assert s.emit_with_time(label or None, tt, r), s.last_error
    return list(senders.values())


def py_plain(evs):
    """The Python events with their times as (sec, nsec) or int."""
    return [(tag, t[0] if isinstance(t, tuple) else t, r) for tag, t, r in evs]


CLIENTS = [
    # (id, driver, mode, ack)
    ("fluent-logger-message-ack", "fluent_logger.js", "Message", True),
    ("fluent-logger-message", "fluent_logger.js", "Message", False),
    ("fluent-logger-packed-ack", "fluent_logger.js", "PackedForward", True),
    ("fluent-logger-compressed-ack", "fluent_logger.js",
     "CompressedPackedForward", True),
    ("fluent-org-message-ack", "fluent_org_logger.js", "Message", True),
    ("fluent-org-forward-ack", "fluent_org_logger.js", "Forward", True),
    ("fluent-org-packed-ack", "fluent_org_logger.js", "PackedForward", True),
    ("fluent-org-packed", "fluent_org_logger.js", "PackedForward", False),
    ("fluent-org-compressed-ack", "fluent_org_logger.js",
     "CompressedPackedForward", True),
    ("python", None, "Message", False),
]

NEVENTS = 24


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

def start_target(kind, work, procs):
    """Start what the logger talks to: (target for the driver, Recv or
    None, Lfb or None, spool or None)."""
    rv = b = spool = None
    if kind in ("to", "buffer"):
        spool = os.path.join(work, "spool")
        b = Lfb(work, [spool], ["--flush-mode", "immediate"])
        procs.append(b)
        b.start()
    if kind == "buffer":
        return {"path": b.sock}, None, b, spool
    rv = Recv(work, to=b.sock if b else None)
    procs.append(rv)
    rv.start()
    return {"host": "127.0.0.1", "port": rv.port}, rv, b, spool


def received(kind, rv, spool):
    """The events that arrived so far, in packed_events() form."""
    if kind == "stdout":
        return sorted(packed_events(rv.output()))
    return sorted(ev(tag, t[0], t[1], r) for tag, t, r in spool_events(spool))


@pytest.mark.parametrize("kind", ["stdout", "to", "buffer"])
@pytest.mark.parametrize("cid,script,mode,ack", CLIENTS,
                         ids=[c[0] for c in CLIENTS])
def test_logger_events_arrive_intact(work, procs, kind, cid, script, mode,
                                     ack):
    """Each logger in each of its modes: the logger reports every event a
    success; the events arrive intact (tag, time to the nanosecond, every
    value with its type, str and bin told apart), at once when acked; in
    the --to case they survive kill -9 of lf-recv and lf-buffer."""
    target, rv, b, spool = start_target(kind, work, procs)
    if script is None:
        evs = py_events(NEVENTS)
        senders = run_python(target, evs)
        evs = py_plain(evs)
    else:
        evs = make_events(NEVENTS)
        res, rc, err = run_node(script, target, mode, ack, evs)
        assert rc == 0 and res == {"sent": NEVENTS, "ok": NEVENTS,
                                   "errors": []}, (res, rc, err)
    want = want_events(evs)
    if ack:
        # the logger heard every ack: every event is there already
        # (written to the pipe, or sealed in the spool) ...
        if kind == "stdout":
            wait_for(lambda: len(packed_events(rv.output())) >= NEVENTS,
                     what="the acked events read from the pipe")
        assert received(kind, rv, spool) == want
    else:
        wait_for(lambda: len(received(kind, rv, spool)) >= NEVENTS,
                 what="the events")
        assert received(kind, rv, spool) == want
    if script is None:
        # python's fluent-logger has no acks, and sends no chunk: nothing
        # may come back on its sockets (it would read and drop it)
        for s in senders:
            s.socket.setblocking(False)
            try:
                got = s.socket.recv(4096)
            except OSError as e:
                assert e.errno == errno.EAGAIN, e
                got = None
            assert got is None, "the server answered %r" % got
            s.close()
    if kind == "to":
        # acked means fsync'd: kill -9 both, lf-buffer recovers the spool
        rv.kill9()
        b.kill9()
        b.start()
        assert b.stop() == 0
        assert received(kind, rv, spool) == want
        assert rv.output() == b""
    elif kind == "stdout":
        assert rv.stop() == 0
        # every quirk above is Fluentd-legal: not even a warning
        assert rv.err == b"", rv.err
        out = rv.output()
        assert sorted(packed_events(out)) == want
        # the same stream read by lf-cat, to JSON
        rc, js, err = run("lf-cat", ["-o", "json"], out)
        assert (rc, err) == (0, b""), err
        assert sorted(events(js)) == want_json(evs)
    else:
        assert b.stop() == 0
        assert received(kind, rv, spool) == want


def test_fluent_org_pipelines_acks(work, procs):
    """@fluent-org/logger keeps several chunks in flight on one socket (one
    per tag per flush): 300 events over 30 tags in one flush, each chunk's
    ack must come back to its own promise, through lf-recv --to."""
    target, rv, b, spool = start_target("to", work, procs)
    evs = [("many.t%d" % (i % 30), (T0 + i, i), {"i": i, "s": "x" * 100})
           for i in range(300)]
    res, rc, err = run_node("fluent_org_logger.js", target, "PackedForward",
                            True, evs)
    assert rc == 0 and res["ok"] == 300, (res, err)
    assert received("to", rv, spool) == want_events(evs)
    assert rv.stop() == 0
    assert b.stop() == 0


def test_logger_without_server_reports_failure(work):
    """The drivers are not blind: with nothing listening, an acked logger
    reports errors and exits 1 (so the tests above can fail)."""
    port = free_port()
    evs = make_events(3)
    for script, mode in (("fluent_logger.js", "Message"),
                         ("fluent_org_logger.js", "PackedForward")):
        res, rc, err = run_node(script, {"host": "127.0.0.1", "port": port},
                                mode, True, evs, deadline=3)
        assert rc == 1 and res["ok"] == 0, (script, res, err)


def raw_form(v):
    """v as msgpack without a bin type carries it: every str as bytes."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, dict):
        return {raw_form(k): raw_form(x) for k, x in v.items()}
    if isinstance(v, list):
        return [raw_form(x) for x in v]
    return v


def unpack_raw(data):
    u = msgpack.Unpacker(raw=True, ext_hook=msgpack.ExtType,
                         strict_map_key=False)
    u.feed(data)
    return list(u)


def received_raw(kind, rv, spool):
    """The events that arrived, decoded without UTF-8 (str as bytes)."""
    res = []
    if kind == "stdout":
        for tag, ents, opt in unpack_raw(rv.output()):
            if opt.get(b"compressed") == b"gzip":
                ents = gzip.decompress(ents)
            res += [(tag, tsec(t), canon(r)) for t, r in unpack_raw(ents)]
    else:
        for n in lfchunk.list_chunks(spool):
            c = lfchunk.read_chunk(os.path.join(spool, "new", n))
            res += [(c["tag"].encode(), tsec(t), canon(r))
                    for t, r in unpack_raw(c["body"])]
    return sorted(res)


@pytest.mark.parametrize("kind", ["stdout", "to"])
def test_python_binary_in_str(work, procs, kind):
    """python's fluent-logger with msgpack_kwargs use_bin_type=False packs
    bytes as str, as msgpack before 1.0 (and so many old loggers) did: the
    binary values arrive as str holding bytes that are not UTF-8
    (research section 7.1).  They are passed on byte for byte."""
    target, rv, b, spool = start_target(kind, work, procs)
    evs = py_events(NEVENTS)
    for s in run_python(target, evs, {"use_bin_type": False}):
        s.close()
    evs = py_plain(evs)
    want = sorted((tag.encode(), sec_nsec(t), canon(raw_form(r)))
                  for tag, t, r in evs)
    wait_for(lambda: len(received_raw(kind, rv, spool)) >= NEVENTS,
             what="the events")
    assert received_raw(kind, rv, spool) == want
    assert rv.stop() == 0
    if b:
        assert b.stop() == 0
        assert received_raw(kind, rv, spool) == want


SECURE = [
    ("fluent-logger-message", "fluent_logger.js", "Message"),
    ("fluent-logger-packed", "fluent_logger.js", "PackedForward"),
    ("fluent-org-packed", "fluent_org_logger.js", "PackedForward"),
]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("cid,script,mode", SECURE, ids=[c[0] for c in SECURE])
def test_logger_handshake(work, procs, pki, tmp_path, tls, cid, script, mode):
    """The npm loggers' own handshake (<security> shared key), plain and
    over TLS (the logger checks lf-recv's certificate against the CA):
    with the right key the events arrive acked; with a wrong key the
    logger is refused, reports failure, and nothing of it is stored."""
    key = secret_file(tmp_path, "key", b"s3cret")
    args = ["--shared-key-file", key, "--self-hostname", "server.example"]
    extra = {"security": {"hostname": "client.example", "key": "s3cret"}}
    if tls:
        args += ["--transport", "tls",
                 "--tls-cert-path", os.path.join(pki, "server.crt"),
                 "--tls-private-key-path", os.path.join(pki, "server.key")]
        extra["tls"] = {"ca": os.path.join(pki, "ca.crt")}
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"])
    procs.append(b)
    b.start()
    rv = Recv(work, to=b.sock, args=args)
    procs.append(rv)
    rv.start()
    target = {"host": "127.0.0.1", "port": rv.port}
    evs = make_events(NEVENTS)
    res, rc, err = run_node(script, target, mode, True, evs, **extra)
    assert rc == 0 and res["ok"] == NEVENTS, (res, err)
    assert received("to", rv, spool) == want_events(evs)
    extra["security"]["key"] = "not the key"
    bad = [("wrong.key", t, r) for _tag, t, r in make_events(3)]
    res, rc, err = run_node(script, target, mode, True, bad, deadline=5,
                            **extra)
    assert rc == 1 and res["ok"] == 0, (res, err)
    # the logger's words for lf-recv's PONG false
    assert "shared_key mismatch" in " ".join(res["errors"]), res
    assert rv.stop() == 0
    assert b.stop() == 0
    assert received("to", rv, spool) == want_events(evs)


def test_acks_wait_for_lf_buffer(work, procs):
    """lf-recv --to an lf-buffer that is not there yet: the logger is not
    acked (its events are not stored anywhere), lf-recv keeps trying, and
    once lf-buffer is up the events go through and every one is acked."""
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"])
    procs.append(b)
    rv = Recv(work, to=b.sock)
    procs.append(rv)
    rv.start()
    evs = make_events(NEVENTS)
    p = start_node("fluent_org_logger.js",
                   {"host": "127.0.0.1", "port": rv.port}, "PackedForward",
                   True, evs)
    try:
        # lf-recv has the events and nowhere to put them (it says it
        # will send them again): no ack, the logger waits
        wait_for(lambda: "to send again" in rv.read_err(),
                 what="lf-recv holding a batch for lf-buffer")
        time.sleep(0.5)
        assert p.poll() is None, finish_node(p)
        b.start()
        res, rc, err = finish_node(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0 and res["ok"] == NEVENTS, (res, err)
    assert received("to", rv, spool) == want_events(evs)
    assert rv.stop() == 0
    assert b.stop() == 0
