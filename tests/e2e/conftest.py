"""Helpers for the end-to-end tests: run the real binaries, build forward
protocol messages with Python's msgpack (an encoder independent of lf's),
and read lf's outputs back.

The binaries are taken from $LF_BIN (default: <repo>/build/bin), so the
same tests run against the sanitizer tree:  LF_BIN=build/san/bin.
"""
import gzip
import json
import os
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LF_BIN") or REPO / "build" / "bin").resolve()
TIMEOUT = 30  # generous: the binaries may run under ASan

# Fixed values of research/forward-protocol.md section 9.
T = 1441588984  # 0x55ECE6F8 = 2015-09-07T01:23:04Z


def tool(name):
    path = BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (LF_BIN=%s)" % (path, BIN))
    return str(path)


def _env(extra=None):
    env = dict(os.environ)
    # Sanitizer findings must fail the run, never scroll past.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


def run(name, args=(), input_bytes=b"", timeout=TIMEOUT, env=None, cwd=None):
    """Run tool `name` with args, feeding input_bytes on stdin.
    Returns (rc, stdout, stderr) as (int, bytes, bytes)."""
    p = subprocess.run(
        [tool(name)] + [str(a) for a in args],
        input=input_bytes,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=_env(env),
        cwd=cwd,
    )
    check_no_sanitizer(p.stderr)
    return p.returncode, p.stdout, p.stderr


def run_ok(name, args=(), input_bytes=b"", **kw):
    """run() that must succeed silently: exit 0 and nothing on stderr (so
    ASan leak reports and stray warnings fail the test)."""
    rc, out, err = run(name, args, input_bytes, **kw)
    assert (rc, err) == (0, b""), "rc=%d stderr=%r" % (rc, err)
    return out


def popen(name, args=(), env=None):
    return subprocess.Popen(
        [tool(name)] + [str(a) for a in args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(env),
    )


def fault_env(spec, log=None):
    """Environment that runs a tool under tests/tools/faultinj.so with the
    rules spec (LF_FAULT, see faultinj.c); log names the file that gets a
    line per failure made.  For run(..., env=) and popen(..., env=)."""
    so = BIN.parent / "tests" / "tools" / "faultinj.so"
    if not os.access(so, os.R_OK):
        pytest.fail("%s is not built (make units)" % so)
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env = {"LD_PRELOAD": str(so), "LF_FAULT": spec,
           # the preload comes before the ASan runtime; it only forwards
           "ASAN_OPTIONS": asan + ":verify_asan_link_order=0"}
    if log is not None:
        env["LF_FAULT_LOG"] = str(log)
    return env


def fault_log(path):
    """The failures faultinj made: [(call, path, errno name)]."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        # a path may hold spaces ("#123 (deleted)" is an unlinked file):
        # the call and the errno are the ends of the line
        call, rest = line.split(" ", 1)
        path, err = rest.rsplit(" ", 1)
        out.append((call, path, err))
    return out


def wait_for(pred, timeout=TIMEOUT, what="condition", step=0.01):
    """pred()'s first true value, polled every step seconds; fails the
    test after timeout.  A test module takes waiter(ITS_WAIT)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %ss waiting for %s" %
                                 (timeout, what))
        time.sleep(step)


def waiter(default):
    """wait_for with the timeout defaulting to default."""
    def wait(pred, timeout=default, what="condition", step=0.01):
        return wait_for(pred, timeout, what, step)
    return wait


SANITIZER_MARKS = (b"Sanitizer", b"runtime error:", b"LeakSanitizer")


def check_no_sanitizer(err):
    for m in SANITIZER_MARKS:
        assert m not in err, err.decode(errors="replace")


def stderr_lines(err):
    return err.decode("utf-8", errors="strict").splitlines()


LOG_RE = re.compile(r"^lf-cat: (fatal|error|warn): (.+)$")


def log_msgs(err):
    """The messages of lf-cat's log lines ("lf-cat: LEVEL: MESSAGE"), the
    level left out: whether a bad message is an error or a warning is the
    tool's choice, what it says is the contract."""
    res = []
    for line in stderr_lines(err):
        m = LOG_RE.match(line)
        assert m, "not a log line: %r" % line
        res.append(m.group(2))
    return res


# ---- building input ----

def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def et(sec, nsec=0):
    """EventTime as Python msgpack packs it: fixext8 (d7 00 ...)."""
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def et_ext8(sec, nsec=0):
    """EventTime in the legal but non-canonical ext8 form, by hand."""
    return b"\xc7\x08\x00" + struct.pack(">II", sec, nsec)


def str32(b):
    """A str32 header (fluentd's PackedForward form) in front of raw bytes."""
    return b"\xdb" + struct.pack(">I", len(b)) + b


def raw_str(b):
    """A msgpack str of arbitrary bytes (Python only packs valid UTF-8)."""
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b


def gzip_members(*parts):
    """Several gzip members back to back, as fluentd's buffer writes them."""
    return b"".join(gzip.compress(p) for p in parts)


def entries(*evs):
    """PackedForward entries: concatenated [time, record] arrays."""
    return b"".join(packb([t, r]) for t, r in evs)


def ts(sec, nsec=0):
    """The text form lf prints a time in."""
    return "%d.%09d" % (sec, nsec)


# ---- reading output ----

class OMap(list):
    """A JSON object or msgpack map as its ordered list of pairs."""


def canon(o):
    """A comparable form that keeps key order, duplicate keys and the
    difference between int, float and bool (1 == 1.0 == True in Python)."""
    if isinstance(o, dict):
        return ("map", [(canon(k), canon(v)) for k, v in o.items()])
    if isinstance(o, OMap):
        return ("map", [(canon(k), canon(v)) for k, v in o])
    if isinstance(o, (list, tuple)):
        return ("arr", [canon(x) for x in o])
    return (type(o).__name__, o)


def loads(text):
    return json.loads(text, object_pairs_hook=OMap)


EVENT_RE = re.compile(
    rb'^\{"tag":"(?:[^"\\]|\\.)*","time":(\d+\.\d{9}),"record":\{.*\}\}$')


def events(out):
    """Parse lf-cat -o json output into [(tag, time text, canon(record))].
    Every line must be valid UTF-8 and valid JSON of the envelope form."""
    assert out == b"" or out.endswith(b"\n"), out[-100:]
    res = []
    for line in out.split(b"\n")[:-1]:
        m = EVENT_RE.match(line)
        assert m, line
        obj = loads(line.decode("utf-8", errors="strict"))
        assert [k for k, _ in obj] == ["tag", "time", "record"], line
        d = dict(obj)
        res.append((d["tag"], m.group(1).decode(), canon(d["record"])))
    return res


def ev(tag, sec, nsec, record):
    """An expected event, in the form events() returns."""
    return (tag, ts(sec, nsec), canon(record))


def ext_hook(code, data):
    return msgpack.ExtType(code, data)


def unpack_all(data, pairs=False):
    """Every msgpack object in data; with pairs, maps come back as OMap
    (ordered, duplicates kept) instead of dict."""
    kw = {"object_pairs_hook": OMap} if pairs else {}
    u = msgpack.Unpacker(ext_hook=ext_hook, raw=False, strict_map_key=False,
                         **kw)
    u.feed(data)
    return list(u)


def decode_packed(data):
    """lf-cat -o msgpack output -> [(tag, option dict, [(time, record)])].
    Checks each message is [tag, bin, option map] with a 'size' that
    matches the entries, and each entry is [EventTime, map]."""
    res = []
    for m in unpack_all(data):
        assert isinstance(m, list) and len(m) == 3, m
        tag, payload, opt = m
        assert isinstance(tag, str), m
        assert isinstance(payload, bytes), "entries must be bin: %r" % (m,)
        assert isinstance(opt, dict), m
        if opt.get("compressed") == "gzip":
            payload = gzip.decompress(payload)
        ents = unpack_all(payload, pairs=True)
        assert opt["size"] == len(ents), (opt, ents)
        res.append((tag, opt, ents))
    return res


def entry_time(t, strict=True):
    """An entry's time, which must be an EventTime (ext 0, 8 bytes); an
    integer of seconds too unless strict."""
    if not strict and isinstance(t, int) and not isinstance(t, bool):
        return ts(t)
    assert isinstance(t, msgpack.ExtType), "time is not an EventTime: %r" % (t,)
    assert t.code == 0 and len(t.data) == 8, t
    return ts(*struct.unpack(">II", t.data))


def packed_events(data, strict=True):
    """Events of lf-cat -o msgpack output, in the form events() returns."""
    res = []
    for tag, _opt, ents in decode_packed(data):
        for e in ents:
            assert isinstance(e, list) and len(e) == 2, e
            res.append((tag, entry_time(e[0], strict), canon(e[1])))
    return res


def pipeline(stages, input_bytes=b"", timeout=TIMEOUT):
    """Run [(tool, args), ...] as a real pipe, stdin of the first fed with
    input_bytes.  Returns (list of rc, stdout of the last, list of stderr)."""
    procs = []
    prev = None
    for i, (name, args) in enumerate(stages):
        p = subprocess.Popen(
            [tool(name)] + [str(a) for a in args],
            stdin=subprocess.PIPE if i == 0 else prev.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        if prev is not None:
            prev.stdout.close()  # the next stage owns it now
        procs.append(p)
        prev = p
    errs = [b""] * len(procs)

    def drain(i, p):
        errs[i] = p.stderr.read()

    threads = [threading.Thread(target=drain, args=(i, p))
               for i, p in enumerate(procs)]
    for t in threads:
        t.start()

    def feed():
        try:
            procs[0].stdin.write(input_bytes)
        except BrokenPipeError:
            pass
        finally:
            try:
                procs[0].stdin.close()
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    # A hung stage must fail the test, not hang it.
    killed = []

    def watchdog():
        killed.append(True)
        for p in procs:
            p.kill()

    timer = threading.Timer(timeout, watchdog)
    timer.start()
    try:
        out = procs[-1].stdout.read()
        rcs = [p.wait() for p in procs]
    finally:
        timer.cancel()
    assert not killed, "pipeline timed out after %ss" % timeout
    feeder.join(timeout)
    for t in threads:
        t.join(timeout)
    for e in errs:
        check_no_sanitizer(e)
    return rcs, out, errs


def by_tag(evs):
    d = {}
    for e in evs:
        d.setdefault(e[0], []).append(e)
    return d


# ---- the table of test_ha.py's scenarios ----
# Each scenario leaves its rows in its reports' user_properties, which
# pytest-xdist carries to this (the main) process; printed at the end and
# written to BUILD/ha-table.txt, so tests/run's log shows it.

_ha_rows = []


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _ha_rows.extend(json.loads(v) for k, v in report.user_properties
                        if k == "ha_row")


def pytest_terminal_summary(terminalreporter):
    if _ha_rows:
        from ha import table
        text = table(_ha_rows)
        (BIN.parent / "ha-table.txt").write_text(text)
        terminalreporter.write_sep("=", "HA scenarios")
        terminalreporter.write(text)
