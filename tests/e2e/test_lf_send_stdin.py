"""End-to-end tests of lf-send's stdin mode (lf-send ... -): an
lf-stream(5) on stdin, batched in memory, delivered acked; what cannot be
delivered is dumped to --dump-dir as lf-stream(5) files that a replay
(lf-send ... < FILE) delivers.  The servers are tests/e2e/fwdserver.py."""
import os
import signal
import subprocess
import time

import msgpack

import conftest
from conftest import _env, check_no_sanitizer, tool
from fwdserver import FwdServer

WAIT = 60


wait_for = conftest.waiter(WAIT)


def et(sec):
    return msgpack.ExtType(0, sec.to_bytes(4, "big") + b"\0\0\0\0")


def stream(n, tags=("a", "b", "c"), pad=40):
    """n events over tags, in all four modes of lf-stream(5); the events
    as a set of (tag, i)."""
    out, want = [], set()
    i = 0
    mode = 0
    while i < n:
        tag = tags[i % len(tags)]
        k = min(50, n - i)
        evs = [(et(1700000000 + j), {"i": j, "p": "x" * pad})
               for j in range(i, i + k)]
        m = mode % 4
        if m == 0:          # Message, one event at a time
            for t, r in evs:
                out.append(msgpack.packb([tag, t, r]))
        elif m == 1:        # Forward
            out.append(msgpack.packb([tag, [[t, r] for t, r in evs]]))
        elif m == 2:        # PackedForward
            out.append(msgpack.packb(
                [tag, b"".join(msgpack.packb([t, r]) for t, r in evs),
                 {"size": k}]))
        else:               # CompressedPackedForward
            import gzip
            out.append(msgpack.packb(
                [tag, gzip.compress(b"".join(msgpack.packb([t, r])
                                             for t, r in evs)),
                 {"size": k, "compressed": "gzip"}]))
        for j in range(i, i + k):
            want.add((tag, j))
        i += k
        mode += 1
    return b"".join(out), want


def received(srv, acked_only=True):
    got = []
    with srv.lock:
        msgs = list(srv.msgs)
        acked = set(srv.acked)
    for m in msgs:
        if acked_only and m.chunk not in acked:
            continue
        for t, r in m.events():
            got.append((m.tag, r["i"]))
    return got


def send(args, data, timeout=WAIT):
    p = subprocess.run([tool("lf-send")] + [str(a) for a in args] + ["-"],
                       input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=_env())
    check_no_sanitizer(p.stderr)
    return p.returncode, p.stderr.decode()


ACK = ["--require-ack-response", "--heartbeat-type", "none"]


def dumps(d):
    return sorted(f for f in os.listdir(d))


def test_delivered_with_acks():
    srv = FwdServer(("ack",))
    try:
        data, want = stream(3000)
        rc, err = send(ACK + ["--server", srv.addr], data)
        assert rc == 0, err
        got = received(srv)
        assert set(got) == want and len(got) == len(want)
        assert srv.errors == []
        # batched: far fewer messages than input messages
        assert len(srv.msgs) < 100
    finally:
        srv.close()


def test_down_dump_then_replay(tmp_path):
    """A server that takes connections but never acks: after
    --retry-timeout everything is dumped (exit 75), the dump is a valid
    stream, and a replay of it delivers every event."""
    d = tmp_path / "dump"
    d.mkdir()
    srv = FwdServer(("never",))
    try:
        data, want = stream(2000)
        t0 = time.monotonic()
        rc, err = send(["--require-ack-response", "--server", srv.addr,
                        "--ack-response-timeout", "0.5s",
                        "--heartbeat-interval", "0.2s",
                        "--recover-wait", "1000s", "--retry-wait", "0.2s",
                        "--retry-timeout", "2s", "--dump-dir", d], data)
        assert rc == 75, err
        assert time.monotonic() - t0 < 30
        assert "dumped to" in err
    finally:
        srv.close()
    files = dumps(d)
    assert len(files) >= 1
    for f in files:     # named by time, whole (no temporary left)
        assert f.startswith("dump-2") and f.endswith(".lf"), f
    # lf-cat reads it: every event is there
    n = 0
    for f in files:
        p = subprocess.run([tool("lf-cat"), "-o", "json", d / f],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=_env())
        check_no_sanitizer(p.stderr)
        assert p.returncode == 0 and p.stderr == b"", p.stderr
        n += len(p.stdout.splitlines())
    assert n == len(want)
    # replay
    srv2 = FwdServer(("ack",))
    try:
        for f in files:
            rc, err = send(ACK + ["--server", srv2.addr],
                           (d / f).read_bytes())
            assert rc == 0, err
        got = received(srv2)
        assert set(got) == want and len(got) == len(want)
    finally:
        srv2.close()


def test_nothing_reachable_69(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    s = FwdServer(listen=False)
    s.listen()
    port = s.port
    s.close()      # a port nobody listens on
    data, want = stream(100)
    rc, err = send(["--require-ack-response", "--server",
                    "127.0.0.1:%d" % port, "--heartbeat-interval", "0.2s",
                    "--retry-wait", "0.2s", "--retry-timeout", "1s",
                    "--dump-dir", d], data)
    assert rc == 69, err
    assert len(dumps(d)) == 1
    # without --dump-dir: counted and reported, still 69
    rc, err = send(["--require-ack-response", "--server",
                    "127.0.0.1:%d" % port, "--heartbeat-interval", "0.2s",
                    "--retry-wait", "0.2s", "--retry-timeout", "1s"], data)
    assert rc == 69, err
    assert "100 events lost (no --dump-dir)" in err


def test_term_while_unacked_dumps(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    srv = FwdServer(("never",))
    try:
        data, want = stream(500)
        p = subprocess.Popen([tool("lf-send")] + ACK +
                             ["--server", srv.addr, "--shutdown-timeout",
                              "0.5s", "--dump-dir", str(d), "-"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env())
        p.stdin.write(data)
        p.stdin.flush()
        wait_for(lambda: len(received(srv, acked_only=False)) == len(want),
                 what="every event at the server, unacked")
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=WAIT)[1]
        check_no_sanitizer(err)
        assert p.returncode == 75, err
        files = dumps(d)
        assert len(files) == 1
        srv2 = FwdServer(("ack",))
        try:
            rc, e = send(ACK + ["--server", srv2.addr],
                         (d / files[0]).read_bytes())
            assert rc == 0, e
            got = received(srv2)
            assert set(got) == want and len(got) == len(want)
        finally:
            srv2.close()
    finally:
        srv.close()


def test_bad_input_65_after_good_acked():
    srv = FwdServer(("ack",))
    try:
        data, want = stream(300)
        rc, err = send(ACK + ["--server", srv.addr],
                       data + b"\xc1\xc1\xc1 garbage")
        assert rc == 65, err
        got = received(srv)
        assert set(got) == want and len(got) == len(want)
    finally:
        srv.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_buffer_limit_back_pressure(tmp_path):
    """A server that never acks and 200 MB of input: lf-send holds at
    most --buffer-limit (8m) of events, so stdin is not read past it and
    RSS stays bounded (about twice the limit: the pool's copy and the
    hop's, plus the reader and ASan's overhead)."""
    srv = FwdServer(("never",))
    try:
        chunk, _ = stream(20000, pad=100)
        p = subprocess.Popen([tool("lf-send")] + ACK +
                             ["--server", srv.addr, "--buffer-limit", "8m",
                              "--shutdown-timeout", "0.1s", "-"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env())
        os.set_blocking(p.stdin.fileno(), False)
        fed = 0
        total = 200 << 20
        stalled = None
        peak = 0
        end = time.monotonic() + WAIT
        while fed < total and time.monotonic() < end:
            try:
                off = fed % len(chunk)
                n = os.write(p.stdin.fileno(), chunk[off:])
                fed += n
                stalled = None
            except BlockingIOError:
                if stalled is None:
                    stalled = time.monotonic()
                elif time.monotonic() - stalled > 2:
                    break       # held: stdin is not being read
                time.sleep(0.01)
            peak = max(peak, rss_kb(p.pid))
        peak = max(peak, rss_kb(p.pid))
        # it read up to the limit (of entries: a quarter of the input is
        # gzipped, so fewer bytes of it), then stopped
        if not 4 << 20 <= fed < 12 << 20:
            p.kill()
            p.wait()
            raise AssertionError("fed %d bytes" % fed)
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=WAIT)[1]
        check_no_sanitizer(err)
        assert p.returncode == 75, err
        assert b"bad input" not in err
        assert peak < 120 * 1024, "RSS %d kB" % peak
        print("fed %d bytes, peak RSS %d kB" % (fed, peak))
    finally:
        srv.close()


def test_dump_sync_fails_nothing_half_left(tmp_path):
    """The dump file cannot be synced: it is removed (never left under
    its final name unsynced), the events are reported lost, and the exit
    status still says something was not delivered."""
    from conftest import fault_env, fault_log
    d = tmp_path / "dump"
    d.mkdir()
    log = tmp_path / "fault.log"
    s = FwdServer(listen=False)
    s.listen()
    port = s.port
    s.close()
    data, want = stream(100)
    p = subprocess.run(
        [tool("lf-send"), "--require-ack-response", "--server",
         "127.0.0.1:%d" % port, "--heartbeat-interval", "0.2s",
         "--retry-wait", "0.2s", "--retry-timeout", "1s", "--dump-dir",
         str(d), "-"], input=data, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=WAIT,
        env=_env(fault_env("fdatasync@.dump.:1+:EIO,fsync@.dump.:1+:EIO",
                           log)))
    check_no_sanitizer(p.stderr)
    err = p.stderr.decode()
    assert p.returncode == 69, err
    assert fault_log(log), "no fault was injected"
    assert "cannot dump" in err and "100 events lost" in err
    assert dumps(d) == []
