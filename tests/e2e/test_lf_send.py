"""End-to-end tests of lf-send: a spool delivered to forward servers.

The servers are tests/e2e/fwdserver.py (Python's msgpack, independent of
lf): it checks every message as Fluentd's in_forward reads it (str tag,
bin entries, "size", "chunk" = base64 of the 16-byte chunk id,
"compressed": "gzip") and can misbehave in scripted ways.  Chunks are
written by lfchunk.py.  For every misbehaviour the claim is the same:
every chunk ends up received and acked, with its own id; duplicates are
allowed (and counted), loss is not.
"""
import base64
import os
import random
import signal
import socket
import subprocess
import time

import pytest

import lfchunk
import conftest
from conftest import _env, check_no_sanitizer, fault_env, fault_log, tool
from fwdserver import FwdServer, gzip_members

WAIT = 30           # seconds: generous, the binary may run under ASan


wait_for = conftest.waiter(WAIT)


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


def fill(spool, nchunks, nevents, tag="app.log", pad=100, seed=0):
    """nchunks chunks of nevents events each: {chunk id: [event, ...]}."""
    rnd = random.Random(seed)
    chunks = {}
    for c in range(nchunks):
        evs = [(1441588984 + i, {"c": c, "i": i,
                                 "msg": "%x" % rnd.getrandbits(32) * (pad // 8)})
               for i in range(nevents)]
        cid = bytes(rnd.getrandbits(8) for _ in range(16))
        lfchunk.write_chunk(spool, tag, evs, id=cid)
        chunks[cid] = evs
    return chunks


def left(spool):
    return lfchunk.list_chunks(spool)


class Send:
    def __init__(self, spool, tmp_path, args, env=None, ready=True):
        self.log = tmp_path / ("send%d.log" % time.monotonic_ns())
        r, w = os.pipe()
        self.p = subprocess.Popen(
            [tool("lf-send")] + [str(a) for a in args] +
            ["--log-file", str(self.log), "--notify-fd", str(w), spool],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=_env(env), pass_fds=(w,))
        os.close(w)
        with os.fdopen(r, "rb") as f:
            # the signals are watched once it says it is ready
            self.ready = f.readline() == b"\n" if ready else None

    def text(self):
        try:
            return self.log.read_text()
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        out, err = self.p.communicate(timeout=timeout)
        check_no_sanitizer(err)
        check_no_sanitizer(self.text().encode())
        return self.p.returncode


def expected(chunks, tag="app.log"):
    return {cid: [[lfchunk._time(t), r] for t, r in evs]
            for cid, evs in chunks.items()}


def check_delivered(srv, chunks, tag="app.log"):
    """Every chunk received whole with its id; returns duplicates."""
    want = expected(chunks)
    got = {}
    for m in srv.msgs:
        cid = base64.b64decode(m.chunk)
        assert cid in want, "unknown chunk id %r" % m.chunk
        assert m.tag == tag
        assert m.events() == want[cid]
        assert m.size == len(want[cid])
        got[cid] = got.get(cid, 0) + 1
    assert set(got) == set(want), "missing chunks"
    assert srv.errors == []
    return sum(got.values()) - len(got)


def deliver_all(spool, tmp_path, srv, chunks, args, timeout=WAIT):
    s = Send(spool, tmp_path, ["--server", srv.addr] + list(args))
    try:
        wait_for(lambda: not left(spool) and
                 set(base64.b64decode(a) for a in srv.acked) >= set(chunks),
                 timeout, "every chunk acked and deleted")
    finally:
        rc = s.stop()
    assert rc == 0, s.text()
    return s


ACK = ["--require-ack-response", "--retry-wait", "0.1s",
       "--retry-randomize=false", "--heartbeat-interval", "0.05s",
       "--recover-wait", "0.2s"]
# for tests that assert a server is never marked down: no detector that a
# loaded machine (ASan, two workers) can trip
CALM = ["--hard-timeout", "30s", "--phi-failure-detector=false"]


def test_ack_bytes_as_in_forward_expects(spool, tmp_path):
    chunks = fill(spool, 6, 50)
    srv = FwdServer(["ack"])
    try:
        # one connection: no failure detector that a loaded machine can
        # trip, and no transport heartbeats (each is a connection, and a
        # slow run lasts past the first round)
        deliver_all(spool, tmp_path, srv, chunks,
                    ACK + CALM + ["--heartbeat-type", "none"])
    finally:
        srv.close()
    assert check_delivered(srv, chunks) == 0
    assert all(m.compressed is None for m in srv.msgs)
    assert srv.nconn == 1


def test_gzip_in_pieces(spool, tmp_path):
    # a body of ~600 KB: more than one 256 KiB block, so several members
    chunks = fill(spool, 2, 4000, pad=120)
    srv = FwdServer(["ack"])
    try:
        deliver_all(spool, tmp_path, srv, chunks, ACK + ["--compress", "gzip"])
    finally:
        srv.close()
    assert check_delivered(srv, chunks) == 0
    assert all(m.compressed == "gzip" for m in srv.msgs)
    # one member per 256 KiB of body, in_forward inflates them all
    for m in srv.msgs:
        assert gzip_members(m.raw) == (len(m.entries) + (256 << 10) - 1) \
            // (256 << 10) >= 2
    # nothing left behind in tmp/ (the gzipped copies are unnamed)
    assert os.listdir(os.path.join(spool, "tmp")) == []


@pytest.mark.parametrize("script,extra", [
    (["never", "ack"], ["--ack-response-timeout", "1s"]),
    (["wrong", "ack"], ["--ack-response-timeout", "1s"]),
    (["late:2.5", "ack"], ["--ack-response-timeout", "1s"]),
    (["late:0.3"], []),
    (["closemid", "closemid", "ack"], []),
    (["close", "close", "close", "ack"], []),
])
def test_misbehaving_server_loses_nothing(spool, tmp_path, script, extra):
    chunks = fill(spool, 5, 20)
    srv = FwdServer(script)
    try:
        s = deliver_all(spool, tmp_path, srv, chunks,
                        ACK + ["--flush-thread-count", "3"] + extra)
    finally:
        srv.close()
    dups = check_delivered(srv, chunks)
    if script[0] in ("never", "wrong") or script[0] == "late:2.5":
        assert dups >= 1
        assert "to send again" in s.text()
    if script == ["late:0.3"]:
        assert dups == 0
    assert srv.nconn >= min(len(script), 2) if script != ["late:0.3"] else 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_refused_then_listening(spool, tmp_path):
    chunks = fill(spool, 3, 10)
    port = free_port()
    s = Send(spool, tmp_path, ["--server", "127.0.0.1:%d" % port] + ACK)
    srv = None
    try:
        wait_for(lambda: "Connection refused" in s.text(), what="a refusal")
        assert left(spool)          # nothing is lost while refused
        srv = FwdServer(["ack"], port=port)
        wait_for(lambda: not left(spool), what="delivery")
    finally:
        rc = s.stop()
        if srv:
            srv.close()
    assert rc == 0
    assert check_delivered(srv, chunks) == 0


def test_without_acks_written_is_delivered(spool, tmp_path):
    chunks = fill(spool, 4, 10)
    srv = FwdServer(["ack"], need_chunk=False)
    s = Send(spool, tmp_path, ["--server", srv.addr])
    try:
        wait_for(lambda: not left(spool), what="delivery without acks")
        wait_for(lambda: len(srv.msgs) == 4, what="the server to read all")
    finally:
        rc = s.stop()
        srv.close()
    assert rc == 0
    assert len(srv.msgs) == 4 and srv.errors == []
    assert all(m.chunk is None for m in srv.msgs)   # no ack asked for
    assert srv.acked == []
    assert "unknown chunk" not in s.text()
    want = expected(chunks)
    got = [m.events() for m in srv.msgs]
    assert all(evs in got for evs in want.values())


def test_once(spool, tmp_path):
    chunks = fill(spool, 3, 10)
    srv = FwdServer(["ack"])
    try:
        p = subprocess.run([tool("lf-send"), "--once", "--server", srv.addr,
                            "--require-ack-response", spool],
                           capture_output=True, timeout=WAIT, env=_env())
    finally:
        srv.close()
    check_no_sanitizer(p.stderr)
    assert p.returncode == 0, p.stderr
    assert left(spool) == []
    assert check_delivered(srv, chunks) == 0


def test_once_server_down_is_75(spool, tmp_path):
    fill(spool, 2, 10)
    p = subprocess.run([tool("lf-send"), "--once", "--server",
                        "127.0.0.1:%d" % free_port(), "--require-ack-response",
                        spool], capture_output=True, timeout=WAIT, env=_env())
    check_no_sanitizer(p.stderr)
    assert p.returncode == 75, p.stderr
    assert len(left(spool)) == 2


def test_term_returns_unacked_chunks(spool, tmp_path):
    fill(spool, 3, 10)
    srv = FwdServer(["never"])
    s = Send(spool, tmp_path, ["--server", srv.addr, "--shutdown-timeout",
                               "0.5s", "--flush-thread-count", "2"] + ACK)
    try:
        wait_for(lambda: len(srv.msgs) >= 2, what="two chunks in flight")
        rc = s.stop()
    finally:
        srv.close()
    assert rc == 0
    assert len(left(spool)) == 3      # unacked: still there, released


def test_usr1_retries_now(spool, tmp_path):
    chunks = fill(spool, 1, 10)
    port = free_port()
    s = Send(spool, tmp_path, ["--server", "127.0.0.1:%d" % port,
                               "--require-ack-response", "--retry-wait",
                               "1h", "--heartbeat-type", "none"])
    srv = None
    try:
        wait_for(lambda: "Connection refused" in s.text(), what="a refusal")
        srv = FwdServer(["ack"], port=port)
        time.sleep(0.2)
        assert left(spool)            # the backoff is an hour
        s.p.send_signal(signal.SIGUSR1)
        wait_for(lambda: not left(spool), what="delivery after USR1")
    finally:
        rc = s.stop()
        if srv:
            srv.close()
    assert rc == 0
    check_delivered(srv, chunks)


def test_kill9_during_acked_delivery_loses_nothing(spool, tmp_path):
    # acks 50 ms late, 4 in flight: ~1.5 s of delivery, cut by a kill -9
    # at a seeded instant 0-250 ms after each start (before, during and
    # after writes, acks and deletions)
    rnd = random.Random(8)
    chunks = fill(spool, 120, 50, seed=8)
    srv = FwdServer(["late:0.05"])
    kills = 0
    try:
        for _ in range(25):
            if not left(spool):
                break
            s = Send(spool, tmp_path, ["--server", srv.addr,
                                       "--flush-thread-count", "4"] + ACK)
            time.sleep(rnd.uniform(0.0, 0.25))
            s.stop(signal.SIGKILL)
            kills += 1
        s = Send(spool, tmp_path, ["--server", srv.addr] + ACK)
        wait_for(lambda: not left(spool), what="the rest delivered")
        assert s.stop() == 0
    finally:
        srv.close()
    dups = check_delivered(srv, chunks)
    print("kill -9 x%d: %d chunks, %d duplicates" % (kills, len(chunks), dups))
    assert kills >= 5


def test_into_lf_buffer_over_unix_socket(spool, tmp_path):
    chunks = fill(spool, 5, 30)
    sock = str(tmp_path / "buf.sock")
    out = lfchunk.make_spool(tmp_path / "out")
    buf = subprocess.Popen([tool("lf-buffer"), "--listen", "unix:" + sock,
                            "--flush-mode", "immediate", out],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=_env())
    try:
        wait_for(lambda: os.path.exists(sock), what="lf-buffer's socket")
        s = Send(spool, tmp_path, ["--server", "unix:" + sock,
                                   "--compress", "gzip"] + ACK)
        wait_for(lambda: not left(spool), what="delivery into lf-buffer")
        assert s.stop() == 0
    finally:
        buf.send_signal(signal.SIGTERM)
        _, err = buf.communicate(timeout=WAIT)
        check_no_sanitizer(err)
    got = []
    for name in lfchunk.list_chunks(out):
        got += lfchunk.read_chunk(os.path.join(out, "new", name))["events"]
    want = [e for evs in expected(chunks).values() for e in evs]
    key = lambda e: (e[1]["c"], e[1]["i"])
    assert sorted(got, key=key) == sorted(want, key=key)


@pytest.mark.parametrize("args", [
    [],
    ["--server", "127.0.0.1:1,weight=0"],
    ["--server", "127.0.0.1:1,standby,color=red"],
    ["--server", "127.0.0.1:1", "--heartbeat-interval", "0"],
    ["--server", "127.0.0.1:1", "--heartbeat-type", "icmp"],
    ["--server", "unix:/x", "--heartbeat-type", "udp"],
    ["--server", "127.0.0.1:1", "--phi-threshold", "0"],
    ["--server", "127.0.0.1:1,weight=x"],
    ["--server", "nope"],
    ["--server", "127.0.0.1:1", "--compress", "zstd"],
])
def test_usage_errors(spool, args):
    p = subprocess.run([tool("lf-send")] + args + [spool],
                       capture_output=True, timeout=WAIT, env=_env())
    check_no_sanitizer(p.stderr)
    assert p.returncode == 64, p.stderr


def test_help_and_version():
    p = subprocess.run([tool("lf-send"), "--help"], capture_output=True,
                       env=_env())
    assert p.returncode == 0 and b"--require-ack-response" in p.stdout
    p = subprocess.run([tool("lf-send"), "--version"], capture_output=True,
                       env=_env())
    assert p.returncode == 0 and p.stdout.startswith(b"lf-send ")


def all_events(*servers):
    evs = []
    for srv in servers:
        for m in srv.msgs:
            evs += [tuple(sorted(e[1].items())) for e in m.events()]
    return evs


def test_failover_to_standby_and_back(spool, tmp_path):
    a, b = FwdServer(["ack"]), FwdServer(["ack"])
    a2 = None
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=active",
                               "--standby", b.addr] + ACK)
    chunks = {}
    try:
        chunks.update(fill(spool, 4, 10, seed=1))
        wait_for(lambda: not left(spool), what="delivery to the active")
        assert len(a.msgs) == 4 and b.msgs == []
        a.close()
        chunks.update(fill(spool, 4, 10, seed=2))
        wait_for(lambda: not left(spool), what="delivery to the standby")
        assert len(b.msgs) >= 4
        assert "active: down: connect: Connection refused" in s.text()
        a2 = FwdServer(["ack"], port=a.port)
        wait_for(lambda: "active: up" in s.text(), what="the active back up")
        nb = len(b.msgs)
        chunks.update(fill(spool, 4, 10, seed=3))
        wait_for(lambda: not left(spool), what="delivery back to the active")
        assert len(a2.msgs) == 4 and len(b.msgs) == nb
    finally:
        rc = s.stop()
        for srv in (a, b, a2):
            if srv:
                srv.close()
    assert rc == 0
    # every event of every chunk at one receiver or another, none lost
    want = sorted(tuple(sorted(e[1].items()))
                  for evs in expected(chunks).values() for e in evs)
    got = all_events(a, b, a2)
    assert sorted(set(got)) == sorted(set(want))
    assert len(got) - len(want) == 0     # nothing was in flight at a kill


def test_weights(spool, tmp_path):
    a, b = FwdServer(["ack"]), FwdServer(["ack"])
    fill(spool, 8, 5)
    s = Send(spool, tmp_path, ["--server", a.addr + ",weight=1",
                               "--server", b.addr + ",weight=3"] + ACK)
    try:
        wait_for(lambda: not left(spool), what="delivery")
    finally:
        rc = s.stop()
        a.close()
        b.close()
    assert rc == 0
    assert (len(a.msgs), len(b.msgs)) == (2, 6)


def test_chunk_of_a_failing_server_goes_to_a_live_one(spool, tmp_path):
    # no retry wait would end inside the test: only a re-route delivers
    a, b = FwdServer(["never"]), FwdServer(["ack"])
    chunks = fill(spool, 6, 10)
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=mute",
                               "--server", b.addr, "--require-ack-response",
                               "--retry-wait", "1h", "--recover-wait", "1h",
                               "--ack-response-timeout", "1s",
                               "--flush-thread-count", "2"])
    try:
        wait_for(lambda: not left(spool), what="delivery through b")
    finally:
        rc = s.stop()
        a.close()
        b.close()
    assert rc == 0
    assert "mute: down: no ack for chunk" in s.text()
    assert a.msgs and not a.acked
    assert {base64.b64decode(c) for c in b.acked} == set(chunks)


def test_phi_detector_on_udp_heartbeats(spool, tmp_path):
    """The active stops answering heartbeats (its data port still works):
    phi passes the threshold, it is down, chunks go to the standby; it
    answers again: after recover_wait of beats it is up, chunks return."""
    a = FwdServer(["ack"], udp=True)
    b = FwdServer(["ack"], udp=True)
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=active",
                               "--standby", b.addr,
                               "--heartbeat-type", "udp",
                               "--heartbeat-interval", "0.05s",
                               "--phi-threshold", "1",
                               "--recover-wait", "0.25s"] + ACK[:4])
    try:
        wait_for(lambda: a.udp_beats > 5, what="heartbeats")
        fill(spool, 2, 5, seed=1)
        wait_for(lambda: not left(spool), what="delivery to the active")
        assert len(a.msgs) == 2 and not b.msgs
        t0 = time.monotonic()
        a.udp_mute = True
        wait_for(lambda: "active: down: phi" in s.text(), what="phi > 1")
        # phi = (t - 0.05 + 1) / ln 10 > 1 once t > 1.35 s of silence
        assert time.monotonic() - t0 > 1.3
        fill(spool, 2, 5, seed=2)
        wait_for(lambda: not left(spool), what="delivery to the standby")
        assert len(a.msgs) == 2 and len(b.msgs) == 2
        a.udp_mute = False
        wait_for(lambda: "active: up" in s.text(), what="the active back")
        fill(spool, 2, 5, seed=3)
        wait_for(lambda: not left(spool), what="delivery to the active")
        assert len(a.msgs) == 4 and len(b.msgs) == 2
    finally:
        rc = s.stop()
        a.close()
        b.close()
    assert rc == 0
    assert a.errors == [] and b.errors == []


def test_hard_timeout_without_phi(spool, tmp_path):
    a = FwdServer(["ack"], udp=True)
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=x",
                               "--heartbeat-type", "udp",
                               "--heartbeat-interval", "0.05s",
                               "--phi-failure-detector=false",
                               "--hard-timeout", "0.5s"])
    try:
        wait_for(lambda: a.udp_beats > 3, what="heartbeats")
        a.udp_mute = True
        wait_for(lambda: "x: down: no heartbeat for" in s.text(),
                 what="the hard timeout")
        assert "phi" not in s.text()
    finally:
        rc = s.stop()
        a.close()
    assert rc == 0


def test_transport_heartbeats_connect_and_send_nothing(spool, tmp_path):
    a = FwdServer(["ack"])
    s = Send(spool, tmp_path, ["--server", a.addr,
                               "--heartbeat-interval", "0.05s"])
    try:
        wait_for(lambda: a.nconn >= 5, what="heartbeat connections")
    finally:
        rc = s.stop()
        a.close()
    assert rc == 0
    assert a.msgs == [] and a.errors == []


@pytest.mark.parametrize("script", [["ack"], ["closemid", "ack"]])
def test_big_chunks_go_out_in_pieces(spool, tmp_path, script):
    # bodies of ~1.3 MB: five 256 KiB pieces each, written from the file;
    # closemid cuts the first connection inside the first body
    chunks = fill(spool, 3, 9000, pad=120)
    srv = FwdServer(script)
    try:
        deliver_all(spool, tmp_path, srv, chunks,
                    ACK + ["--flush-thread-count", "2"])
    finally:
        srv.close()
    assert check_delivered(srv, chunks) == 0


def test_chunk_file_read_error_is_not_the_servers(spool, tmp_path):
    # lf-send's preads of a chunk: the header (claim), the body (verify),
    # then the body again as it goes out: the third fails
    chunks = fill(spool, 1, 10)
    srv = FwdServer(["ack"])
    fl = tmp_path / "faults"
    s = Send(spool, tmp_path, ["--server", srv.addr + ",name=x"] + ACK,
             env=fault_env("pread@new/:3:EIO", log=fl))
    try:
        wait_for(lambda: not left(spool), what="delivery after the EIO")
    finally:
        rc = s.stop()
        srv.close()
    assert rc == 0
    assert [f[0] for f in fault_log(fl)] == ["pread"]
    assert "x: reading a batch's file: Input/output error" in s.text()
    assert "down" not in s.text()       # the server did nothing wrong
    assert check_delivered(srv, chunks) == 0


def test_state_file(spool, tmp_path):
    import json
    a, b = FwdServer(["ack"]), FwdServer(["ack"])
    chunks = fill(spool, 3, 7)
    sf = os.path.join(spool, "state", "send")
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=a,weight=5",
                               "--standby", b.addr, "--phi-threshold", "1"]
             + ACK)
    try:
        wait_for(lambda: not left(spool), what="delivery")
        b.close()               # the standby goes away: its heartbeats fail

        def seen():
            try:
                st = json.load(open(sf))
            except (OSError, ValueError):
                return None
            return st if st["chunks"] == 3 and not st["servers"][1]["up"] \
                else None
        st = wait_for(seen, what="the state file")
    finally:
        rc = s.stop()
        a.close()
    assert rc == 0
    assert st["events"] == 21 and st["retries"] == 0
    sa, sb = st["servers"]
    assert (sa["name"], sa["weight"], sa["standby"], sa["up"]) == \
        ("a", 5, False, True)
    assert (sa["chunks"], sa["events"], sa["in_flight_chunks"]) == (3, 21, 0)
    assert sa["bytes"] == sum(len(lfchunk.pack_events(e))
                              for e in chunks.values())
    assert sb["standby"] is True and sb["chunks"] == 0
    # why it went down: its heartbeats stopped
    assert sb["last_heartbeat_age"] > 1 and \
        sb["last_error"].startswith(("phi ", "no heartbeat"))
    # at exit it is written once more, whole
    assert json.load(open(sf))["pid"] == s.p.pid
    assert not [n for n in os.listdir(os.path.dirname(sf))
                if n.startswith(os.path.basename(sf) + ".tmp")]


def test_hup_reopens_the_log(spool, tmp_path):
    a = FwdServer(["ack"], udp=True)
    s = Send(spool, tmp_path, ["--server", a.addr + ",name=x",
                               "--heartbeat-type", "udp",
                               "--heartbeat-interval", "0.05s",
                               "--phi-failure-detector=false",
                               "--hard-timeout", "0.3s"])
    try:
        wait_for(lambda: a.udp_beats > 3, what="heartbeats")
        old = s.log.with_suffix(".1")
        os.rename(s.log, old)
        s.p.send_signal(signal.SIGHUP)
        wait_for(lambda: s.log.exists(), what="the log reopened")
        a.udp_mute = True
        wait_for(lambda: "x: down" in s.text(), what="a line in the new log")
        assert "x: down" not in old.read_text()
    finally:
        rc = s.stop()
        a.close()
    assert rc == 0


def test_gzip_in_memory_when_tmp_is_full(spool, tmp_path):
    """--compress gzip writes the gzipped chunk to spool/tmp; with that
    disk full (every write there ENOSPC), it is gzipped in memory: on a
    disk filled by the spool's own backlog, sending is what frees it."""
    chunks = fill(spool, 3, 200)
    flog = tmp_path / "faults"
    srv = FwdServer(["ack"])
    s = Send(spool, tmp_path, ["--server", srv.addr, "--compress", "gzip"] +
             ACK + CALM, env=fault_env("write@spool/tmp/:1+:ENOSPC", flog))
    try:
        wait_for(lambda: not left(spool) and
                 set(base64.b64decode(a) for a in srv.acked) >= set(chunks),
                 WAIT, "every chunk acked and deleted")
    finally:
        rc = s.stop()
        srv.close()
    assert rc == 0, s.text()
    assert check_delivered(srv, chunks) == 0
    assert all(m.compressed == "gzip" for m in srv.msgs)
    assert [f for f in fault_log(flog) if f[2] == "ENOSPC"], "no fault made"
