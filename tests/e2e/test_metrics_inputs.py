"""--metrics-file of the inputs (issue 13, "Metrics and health"): lf-buffer,
lf-recv and lf-tail run for real, their Prometheus text read back with a
strict parser of the exposition format 0.0.4 written here (independent of
lib/metrics), and the numbers compared with what was sent, written and
acked.  The names are those of lf(7), METRICS.

Figures: --metrics-interval 0.1s where a test watches the file while the
tool runs (a rewrite within a poll of WAIT); 0.02s where the warnings of
an unwritable path are counted (about 50 attempts a second, so that the
limit of lib/log, 10 a second, is what shows).
"""
import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import msgpack
import pytest

import conftest
from conftest import T, _env, et, packb, run, tool, unpack_all
from fwdclient import Client, fluentd_token
from test_lf_buffer import Lfb
from test_lf_recv import Recv, free_port

WAIT = 20
wait_for = conftest.waiter(WAIT)
FAST = "0.1s"


# ---------------------------------------------------------------------------
# A strict reader of the text format
# ---------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$"
                     % NAME)
VALUE_RE = re.compile(r"^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
                      r"|Inf|NaN)$")


def parse_labels(s, line):
    """name="value",... with only \\\\, \\" and \\n escaped; [(k, v)]."""
    res = []
    i = 0
    while i < len(s):
        m = re.match(LABEL + "=\"", s[i:])
        assert m, "bad label at %r in %r" % (s[i:], line)
        k = m.group(0)[:-2]
        i += m.end()
        v = []
        while True:
            assert i < len(s), "unterminated label value: %r" % line
            c = s[i]
            if c == "\\":
                assert i + 1 < len(s), line
                e = s[i + 1]
                assert e in "\\\"n", "bad escape \\%s in %r" % (e, line)
                v.append({"\\": "\\", '"': '"', "n": "\n"}[e])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                assert c != "\n", line
                v.append(c)
                i += 1
        res.append((k, "".join(v)))
        if i < len(s):
            assert s[i] == ",", "want , after a label in %r" % line
            i += 1
            assert i < len(s), "trailing , in %r" % line
    keys = [k for k, _ in res]
    assert len(keys) == len(set(keys)), "label given twice: %r" % line
    return res


def parse_prom(text, tool_name, name):
    """{family: {"type", "help", "samples": {labels: value}}}, where
    labels are the pairs after name and tool, sorted.  Fails on anything the
    format (or lf's conventions) does not allow."""
    assert text.endswith("\n"), text[-80:]
    fams = {}
    done = set()        # families whose group has ended
    cur = None
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        m = HELP_RE.match(line)
        if m:
            fam = m.group(1)
            assert fam not in fams, "family twice: %s" % fam
            if cur is not None:
                done.add(cur)
            cur = fam
            help_text = m.group(2)
            assert re.fullmatch(r"(?:[^\\]|\\\\|\\n)*", help_text), line
            fams[fam] = {"help": help_text, "type": None, "samples": {}}
            continue
        m = TYPE_RE.match(line)
        if m:
            assert m.group(1) == cur, "TYPE of another family: %r" % line
            assert fams[cur]["type"] is None, "TYPE twice: %r" % line
            assert not fams[cur]["samples"], "TYPE after samples: %r" % line
            fams[cur]["type"] = m.group(2)
            continue
        assert not line.startswith("#"), "stray comment: %r" % line
        m = SAMPLE_RE.match(line)
        assert m, "not a sample: %r" % line
        fam = m.group(1)
        assert fam not in done, "family %s in two groups" % fam
        assert fam == cur, "sample %r outside its family (HELP/TYPE first)" \
            % line
        assert fams[cur]["type"] in ("counter", "gauge"), line
        labels = parse_labels(m.group(2) or "", line)
        assert labels[:2] == [("name", name), ("tool", tool_name)], line
        v = m.group(3)
        assert VALUE_RE.match(v), "bad value: %r" % line
        val = float(v)
        key = tuple(sorted(labels[2:]))     # a series is a label set
        assert key not in fams[cur]["samples"], "series twice: %r" % line
        if fams[cur]["type"] == "counter":
            assert fam.endswith("_total") and val >= 0, line
        fams[cur]["samples"][key] = val
    for fam, f in fams.items():
        assert f["type"] is not None, "no TYPE: %s" % fam
        assert f["samples"], "no sample: %s" % fam
    return fams


class Prom:
    """A metrics file read back (strictly)."""

    def __init__(self, path, tool_name):
        self.path = path
        self.tool = tool_name
        self.name = os.path.basename(path)[:-len(".prom")]

    def read(self):
        with open(self.path) as f:
            return parse_prom(f.read(), self.tool, self.name)

    def get(self, fam, **labels):
        return value(self.read(), fam, **labels)

    def wait(self, fam, want, **labels):
        """Poll until fam{labels} == want; the parsed file."""
        last = ["no file"]

        def ok():
            try:
                m = self.read()
            except FileNotFoundError:
                return None
            last[0] = value(m, fam, **labels)
            return m if last[0] == want else None
        try:
            return wait_for(ok, what="%s%r == %r" % (fam, labels, want))
        except AssertionError as e:
            if "timed out" not in str(e):
                raise
            raise AssertionError("%s%r: %r, want %r" % (fam, labels, last[0],
                                                        want))

    def no_tmp(self):
        d = os.path.dirname(self.path)
        assert [f for f in os.listdir(d) if ".tmp" in f] == []


def value(m, fam, **labels):
    """The value of fam{labels}; None if there is no such series."""
    f = m.get(fam)
    if f is None:
        return None
    return f["samples"].get(tuple(sorted(labels.items())))


def common(m, tool_name):
    """What every tool writes."""
    assert value(m, "lf_build_info", version=value_label(m, "lf_build_info",
                                                         "version")) == 1
    assert abs(value(m, "lf_start_time_seconds") - time.time()) < 600
    for fam in ("lf_input_events_total", "fluentbit_input_records_total"):
        assert m[fam]["type"] == "counter"
    assert value(m, "fluentbit_input_records_total") == \
        value(m, "lf_input_events_total")
    assert value(m, "fluentbit_input_bytes_total") == \
        value(m, "lf_input_bytes_total")


def value_label(m, fam, label):
    (k,) = m[fam]["samples"].keys()
    return dict(k)[label]


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="lfm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ents(ms):
    return b"".join(packb([et(T, m), {"m": m}]) for m in ms)


# ---------------------------------------------------------------------------
# lf-buffer
# ---------------------------------------------------------------------------

@pytest.fixture
def bufs():
    started = []
    yield started
    for b in started:
        b.cleanup()


def chunk_files(spool, d):
    return [f for f in glob.glob(os.path.join(spool, d, "*.chunk"))]


def test_lf_buffer_counts_acked_stored_and_spools(work, bufs):
    """Two spools by pattern: acked events and their bytes in, a copy
    sent again acked and counted as a duplicate, a tag no pattern takes
    dropped, a malformed message an error; staged chunks while running,
    and at TERM the sealed chunks as the output, equal to the files in
    new/, the spool gauges equal to the folders."""
    sa, sb = os.path.join(work, "sa"), os.path.join(work, "sb")
    prom = Prom(os.path.join(work, "agg-buf.prom"), "lf-buffer")
    b = Lfb(work, ["a.**=" + sa, "b.**=" + sb],
            ["--metrics-file", prom.path, "--metrics-interval", FAST])
    bufs.append(b)
    b.start()
    sent = {"a": [], "b": []}
    nbytes = 0
    with b.client() as c:
        for i in range(6):
            tag = "a.x" if i % 3 else "b.y"
            e = ents([i, i + 100])
            tok = fluentd_token()
            c.send(tag, e, tok)
            assert c.read_ack(WAIT) == tok
            sent[tag[0]] += [i, i + 100]
            nbytes += len(e)
            if i == 1:
                dup = (tag, e, tok)
        c.send(dup[0], dup[1], dup[2])           # sent again: a copy
        assert c.read_ack(WAIT) == dup[2]
        tok = fluentd_token()
        c.send("c.z", ents([7, 8, 9]), tok)      # no spool takes c.*
        assert c.read_ack(WAIT) == tok
    with Client(b.sock) as c2:
        c2.send_raw(b"\x93\xa1t\xc1")            # 0xc1: never msgpack
        c2.wait_closed(WAIT)
    m = prom.wait("lf_input_events_total", 14)   # 12 + the copy's 2
    assert value(m, "lf_input_bytes_total") == nbytes + len(dup[1])
    assert value(m, "lf_input_dropped_events_total") == 3
    assert value(m, "lf_buffer_duplicate_messages_total") == 1
    assert value(m, "lf_buffer_duplicate_events_total") == 2
    m = prom.wait("lf_input_errors_total", 1)
    common(m, "lf-buffer")
    assert value(m, "lf_buffer_blocked") == 0
    assert value(m, "lf_buffer_commits_total") >= 1
    for s in (sa, sb):       # flush_interval 60s: staged, not sealed
        assert value(m, "lf_spool_staged_chunks", spool=s) == 1
        assert value(m, "lf_spool_staged_bytes", spool=s) == sum(
            os.path.getsize(f) for f in chunk_files(s, "tmp"))
        assert value(m, "lf_spool_queue_chunks", spool=s) == 0
        assert value(m, "lf_spool_oldest_chunk_age_seconds", spool=s) == 0
        assert value(m, "lf_buffer_fsyncs_total", spool=s) >= 1
    assert value(m, "lf_output_chunks_total") == 0
    assert b.stop() == 0

    m = prom.read()                              # the last write, at exit
    prom.no_tmp()
    assert value(m, "lf_input_events_total") == 14
    new = chunk_files(sa, "new") + chunk_files(sb, "new")
    assert value(m, "lf_output_chunks_total") == len(new) == 2
    assert value(m, "lf_output_events_total") == 12
    assert value(m, "lf_output_bytes_total") == nbytes
    assert value(m, "fluentbit_output_proc_records_total") == 12
    for s in (sa, sb):
        files = chunk_files(s, "new")
        assert value(m, "lf_spool_queue_chunks", spool=s) == len(files) == 1
        assert value(m, "lf_spool_queue_bytes", spool=s) == sum(
            os.path.getsize(f) for f in files)
        assert value(m, "lf_spool_staged_chunks", spool=s) == 0
        assert value(m, "lf_spool_dead_chunks", spool=s) == 0
        assert 0 < value(m, "lf_spool_oldest_chunk_age_seconds",
                         spool=s) < 60
    assert value(m, "fluentd_output_status_buffer_queue_length",
                 plugin_id="agg-buf", type="buffer") == 1
    assert value(m, "lf_last_event_time_seconds") > time.time() - 120


def test_lf_buffer_blocked_while_full(work, bufs):
    """overflow_action block: lf_buffer_blocked is 1 while the spool is
    over total_limit_size, 0 again once a consumer took chunks away."""
    sp = os.path.join(work, "sp")
    prom = Prom(os.path.join(work, "b.prom"), "lf-buffer")
    b = Lfb(work, [sp], ["--metrics-file", prom.path, "--metrics-interval",
                         FAST, "--total-limit-size", "4k",
                         "--overflow-action", "block",
                         "--flush-mode", "immediate"])
    bufs.append(b)
    b.start()
    pad = "x" * 1500
    with b.client() as c:
        toks = []
        for i in range(4):
            tok = fluentd_token()
            c.send("t", packb([et(T, i), {"pad": pad}]), tok)
            toks.append(tok)
        acked = c.read_acks(2, WAIT)             # the rest waits for room
        assert acked == toks[:2]
        prom.wait("lf_buffer_blocked", 1)
        for f in chunk_files(sp, "new"):         # a consumer's deletes
            os.unlink(f)
        assert c.read_acks(2, WAIT) == toks[2:]
    # the events count once their commit is done, which may be a write
    # of the file after the one that first shows the room made
    m = prom.wait("lf_input_events_total", 4)
    assert value(m, "lf_buffer_blocked") == 0
    assert b.stop() == 0


# ---------------------------------------------------------------------------
# lf-recv
# ---------------------------------------------------------------------------

@pytest.fixture
def recvs():
    started = []
    yield started
    for r in started:
        r.cleanup()


def fwd(tag, e, tok):
    return packb([tag, e, {"size": len(unpack_all(e)), "chunk": tok}])


def test_lf_recv_per_listener_and_drops(work, recvs):
    """Two listeners (TCP and Unix): the events answered on each, their
    bytes, connections open and accepted, heartbeats answered; --match
    refusals and --chunk-size-limit drops are dropped, a malformed
    message an error; the totals at exit after TERM."""
    port = free_port()
    usock = os.path.join(work, "r.sock")
    prom = Prom(os.path.join(work, "fwd.prom"), "lf-recv")
    r = Recv(work, ["--match", "ok.**", "--chunk-size-limit", "2k",
                    "--metrics-file", prom.path, "--metrics-interval", FAST],
             listen=["127.0.0.1:%d" % port, "unix:" + usock])
    recvs.append(r)
    r.start()
    tcp, unix = "tcp:127.0.0.1:%d" % port, "unix:" + usock
    want = {tcp: [0, 0], unix: [0, 0]}
    with socket.create_connection(("127.0.0.1", port)) as s, \
            Client(usock) as u:
        s.settimeout(WAIT)
        unp = msgpack.Unpacker(raw=False)
        for i in range(3):
            e = ents([i, i + 10, i + 20])
            tok = fluentd_token()
            s.sendall(fwd("ok.t", e, tok))
            unp.feed(s.recv(4096))
            assert next(unp) == {"ack": tok}
            want[tcp][0] += 3
            want[tcp][1] += len(e)
            e = ents([i])
            tok = fluentd_token()
            u.send("ok.u", e, tok)
            assert u.read_ack(WAIT) == tok
            want[unix][0] += 1
            want[unix][1] += len(e)
        m = prom.wait("lf_recv_connections", 1, listener=tcp)
        assert value(m, "lf_recv_connections", listener=unix) == 1
        tok = fluentd_token()
        u.send("other.t", ents([1, 2]), tok)     # no --match: dropped
        assert u.read_ack(WAIT) == tok
        tok = fluentd_token()
        big = packb([et(T, 0), {"pad": "y" * 3000}])
        u.send("ok.big", big, tok)               # over 2k: dropped
        assert u.read_ack(WAIT) == tok
    with Client(usock) as bad:
        bad.send_raw(b"\x93\xa1t\xc1")
        bad.wait_closed(WAIT)
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    h.settimeout(WAIT)
    h.sendto(b"\x00", ("127.0.0.1", port))
    h.recvfrom(16)
    h.close()
    m = prom.wait("lf_recv_heartbeats_total", 1, listener=tcp)
    m = prom.wait("lf_recv_connections", 0, listener=unix)
    assert value(m, "lf_recv_connections", listener=tcp) == 0
    assert value(m, "lf_recv_heartbeats_total", listener=unix) == 0
    assert r.stop() == 0

    m = prom.read()
    prom.no_tmp()
    common(m, "lf-recv")
    for lis, (n, nb) in want.items():
        assert value(m, "lf_recv_events_total", listener=lis) == n
        assert value(m, "lf_recv_bytes_total", listener=lis) == nb
    assert value(m, "lf_recv_connections_total", listener=tcp) == 1
    assert value(m, "lf_recv_connections_total", listener=unix) == 2
    assert value(m, "lf_input_events_total") == 12 == len(r.events())
    assert value(m, "lf_input_bytes_total") == sum(v[1] for v in
                                                   want.values())
    assert value(m, "lf_input_dropped_events_total") == 3
    assert value(m, "lf_input_errors_total") == 1
    assert value(m, "lf_recv_downstream_batches") == 0
    assert value(m, "lf_last_event_time_seconds") > time.time() - 120


def test_lf_recv_final_write_after_the_drain(work, recvs, bufs):
    """TERM while lf-buffer still holds the commit (--commit-wait 3s):
    the acks come during the drain, and the file written at exit counts
    them (the interval, 30s, writes nothing in between)."""
    from test_lf_recv import Buf, one
    b = Buf(work, ["--commit-wait", "3s"])
    bufs.append(b)
    b.start()
    prom = Prom(os.path.join(work, "drain.prom"), "lf-recv")
    r = Recv(work, ["--metrics-file", prom.path, "--metrics-interval", "30s"],
             to=b.sock)
    recvs.append(r)
    r.start()
    prom.wait("lf_input_events_total", 0)
    with r.client() as c:
        toks = [fluentd_token() for _ in range(5)]
        for i, t in enumerate(toks):
            c.send_raw(one(t, i))
        r.wait_stat("messages", 5)
        r.p.send_signal(signal.SIGTERM)
        assert c.read_acks(5, WAIT) == toks
    assert r.stop() == 0
    m = prom.read()
    assert value(m, "lf_input_events_total") == 5
    assert value(m, "lf_recv_downstream_batches") == 0
    assert b.stop() == 0


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    c.request("POST", path, body=body,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_lf_recv_http_counters(work, recvs):
    """--http: requests answered, 4xx among them (an error of the input),
    and the events of the requests answered 200."""
    port = free_port()
    prom = Prom(os.path.join(work, "http.prom"), "lf-recv")
    r = Recv(work, ["--http", "127.0.0.1:%d" % port, "--metrics-file",
                    prom.path, "--metrics-interval", FAST], listen=[])
    recvs.append(r)
    r.start()
    assert post(port, "/app.a", b'[{"k":1},{"k":2}]') == 200
    assert post(port, "/app.a", b'{"k":3}') == 200
    assert post(port, "/app.a", b'[{"bad":]') == 400
    m = prom.wait("lf_recv_http_requests_total", 3)
    assert value(m, "lf_recv_http_client_errors_total") == 1
    assert value(m, "lf_recv_http_server_errors_total") == 0
    assert value(m, "lf_input_events_total") == 3
    assert value(m, "lf_input_errors_total") == 1
    assert r.stop() == 0
    assert len(r.events()) == 3


# ---------------------------------------------------------------------------
# lf-tail
# ---------------------------------------------------------------------------

class Tail:
    def __init__(self, work, args):
        self.out = open(os.path.join(work, "tail.out"), "wb")
        self.errpath = os.path.join(work, "tail.err")
        self.err = open(self.errpath, "wb")
        self.p = subprocess.Popen([tool("lf-tail")] + [str(a) for a in args],
                                  stdin=subprocess.DEVNULL, stdout=self.out,
                                  stderr=self.err, env=_env())

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(WAIT)
        self.out.close()
        self.err.close()
        conftest.check_no_sanitizer(self.read_err().encode())
        return rc

    def read_err(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def cleanup(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def tails():
    started = []
    yield started
    for t in started:
        t.cleanup()


def entry_bytes(path):
    """The bytes of the events lf-tail wrote (PackedForward entries)."""
    with open(path, "rb") as f:
        msgs = unpack_all(f.read())
    n = 0
    for _tag, e, opt in msgs:
        assert "compressed" not in opt
        n += len(e)
    return n, sum(len(unpack_all(e)) for _t, e, _o in msgs)


def test_lf_tail_files_lines_errors_rotation(work, tails):
    """--format json: lines read are events (an unparsable one too, and
    an error), a line over --max-line-size dropped; per name: position,
    size, lag and a rotation (rename and create); the events' bytes
    equal the entries written to stdout."""
    log = os.path.join(work, "app.log")
    prom = Prom(os.path.join(work, "tail.prom"), "lf-tail")
    with open(log, "w") as f:
        f.write('{"n":1}\n{"n":2}\nnot json\n')
    t = Tail(work, ["-t", "app", "-f", "json", "--read-from-head",
                    "--max-line-size", "100", "--rotate-wait", "1s",
                    "--refresh-interval", "0.2s",
                    "--metrics-file", prom.path, "--metrics-interval", FAST,
                    log])
    tails.append(t)
    m = prom.wait("lf_input_events_total", 3)
    assert value(m, "lf_input_errors_total") == 1
    size = os.path.getsize(log)
    m = prom.wait("lf_tail_file_position_bytes", size, path=log)
    assert value(m, "lf_tail_file_size_bytes", path=log) == size
    assert value(m, "lf_tail_file_lag_bytes", path=log) == 0
    assert value(m, "lf_tail_file_rotations_total", path=log) == 0
    with open(log, "a") as f:
        f.write('{"long":"%s"}\n{"n":3}\n' % ("z" * 200))
    m = prom.wait("lf_input_events_total", 4)
    assert value(m, "lf_input_dropped_events_total") == 1
    os.rename(log, log + ".1")
    with open(log, "w") as f:
        f.write('{"n":4}\n{"n":5}\n')
    m = prom.wait("lf_input_events_total", 6)
    m = prom.wait("lf_tail_file_rotations_total", 1, path=log)
    m = prom.wait("lf_tail_file_position_bytes", os.path.getsize(log),
                  path=log)
    assert value(m, "lf_tail_file_lag_bytes", path=log) == 0
    assert t.stop() == 0

    m = prom.read()
    prom.no_tmp()
    common(m, "lf-tail")
    nbytes, nevents = entry_bytes(t.out.name)
    assert value(m, "lf_input_events_total") == nevents == 6
    assert value(m, "lf_input_bytes_total") == nbytes
    assert value(m, "lf_tail_lines_total") == 7
    assert value(m, "lf_tail_file_size_bytes", path=log) == \
        os.path.getsize(log)
    assert value(m, "lf_tail_file_rotations_total", path=log) == 1
    assert value(m, "lf_last_event_time_seconds") > time.time() - 120


def test_lf_tail_position_is_the_acked_one(work, tails, bufs):
    """--to: with lf-buffer not there, the lines are read but the
    position stays and the lag is the file; once lf-buffer acks, the
    position is the size, the lag 0."""
    log = os.path.join(work, "a.log")
    with open(log, "w") as f:
        f.write("".join("line %d\n" % i for i in range(50)))
    size = os.path.getsize(log)
    b = Lfb(work, [os.path.join(work, "sp")])
    bufs.append(b)
    prom = Prom(os.path.join(work, "t.prom"), "lf-tail")
    t = Tail(work, ["-t", "a", "--read-from-head", "--to", "unix:" + b.sock,
                    "--pos-file", os.path.join(work, "pos"),
                    "--metrics-file", prom.path, "--metrics-interval", FAST,
                    log])
    tails.append(t)
    m = prom.wait("lf_input_events_total", 50)
    assert value(m, "lf_tail_file_position_bytes", path=log) == 0
    assert value(m, "lf_tail_file_lag_bytes", path=log) == size
    assert value(m, "lf_tail_in_flight_batches") == 1
    b.start()
    m = prom.wait("lf_tail_file_position_bytes", size, path=log)
    assert value(m, "lf_tail_file_lag_bytes", path=log) == 0
    assert t.stop() == 0
    assert b.stop() == 0
    m = prom.read()
    assert value(m, "lf_tail_in_flight_batches") == 0
    assert value(m, "lf_tail_file_position_bytes", path=log) == size


# ---------------------------------------------------------------------------
# All three: a path that cannot be written, the options
# ---------------------------------------------------------------------------

def test_unwritable_path_warns_limited_and_goes_on(work, tails):
    """A metrics file in a folder that is not there: a warning, limited
    (lib/log's 10 a second, the rest summed up), and lf-tail goes on and
    delivers every line."""
    log = os.path.join(work, "a.log")
    with open(log, "w") as f:
        f.write("".join("l%d\n" % i for i in range(5)))
    path = os.path.join(work, "nodir", "m.prom")
    t = Tail(work, ["-t", "a", "--read-from-head", "--metrics-file", path,
                    "--metrics-interval", "0.02s", log])
    tails.append(t)
    time.sleep(2.5)                  # about 125 attempts
    assert t.p.poll() is None
    assert t.stop() == 0
    err = t.read_err().splitlines()
    warns = [l for l in err if "cannot write the metrics" in l and
             "suppressed" not in l]
    assert warns and all("nodir/m.prom" in l and "No such file" in l
                         for l in warns), err
    assert len(warns) <= 40, len(warns)
    assert any("similar warnings suppressed" in l for l in err), err
    assert entry_bytes(t.out.name)[1] == 5
    assert not os.path.exists(os.path.dirname(path))


@pytest.mark.parametrize("name", ["lf-buffer", "lf-recv", "lf-tail"])
def test_options_in_help_and_bad_interval(work, name):
    rc, out, _ = run(name, ["--help"])
    assert rc == 0
    assert b"--metrics-file" in out and b"--metrics-interval" in out
    rc, _, err = run(name, ["--metrics-interval", "0", "x"])
    assert rc == 64 and b"--metrics-interval" in err, err
    rc, _, err = run(name, ["--metrics-interval", "soon", "x"])
    assert rc == 64 and b"metrics-interval" in err, err
