"""lf-send's --keepalive and --keepalive-timeout (out_forward's
keepalive, keepalive_timeout), against tests/e2e/fwdserver.py, which
records when lf-send closes a connection."""
import base64
import subprocess
import time

import pytest

import lfchunk
from fwdserver import FwdServer
from test_lf_send import Send, fill, left, wait_for

ARGS = ["--require-ack-response", "--retry-wait", "0.1s",
        "--retry-randomize=false", "--heartbeat-type", "none"]


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


def delivered(spool, srv, chunks):
    return not left(spool) and \
        set(base64.b64decode(a) for a in srv.acked) >= set(chunks)


def run(spool, tmp_path, args):
    """Two rounds of chunks: yields the server and the time the first
    round was acked and deleted, then again once the second round is,
    and stops lf-send when resumed a third time."""
    srv = FwdServer(["ack"])
    first = fill(spool, 3, 5)
    s = Send(spool, tmp_path, ARGS + ["--server", srv.addr] + args)
    try:
        wait_for(lambda: delivered(spool, srv, first), what="first round")
        t = time.monotonic()
        yield srv, t
        more = fill(spool, 2, 5, seed=1)
        wait_for(lambda: delivered(spool, srv, more), what="second round")
        yield srv, time.monotonic()
    finally:
        rc = s.stop()
        srv.close()
    assert rc == 0, s.text()
    assert srv.errors == []


def test_no_keepalive_closes_when_idle(spool, tmp_path):
    """--keepalive false: the connection is closed as soon as nothing is
    in flight; the next chunk opens a new one."""
    g = run(spool, tmp_path, ["--keepalive", "false"])
    srv, t = next(g)
    wait_for(lambda: len(srv.eofs) == 1, timeout=10, what="a close")
    assert srv.nconn == 1
    assert srv.eofs[0] - t < 2.0
    next(g)
    # a new connection for the second round (one per chunk if they came
    # apart), each closed once idle
    wait_for(lambda: srv.nconn >= 2 and len(srv.eofs) == srv.nconn,
             timeout=10, what="every connection closed")
    next(g, None)


def test_keepalive_timeout(spool, tmp_path):
    """--keepalive-timeout 0.5s: the idle connection goes after about
    half a second, not before."""
    g = run(spool, tmp_path, ["--keepalive", "true",
                              "--keepalive-timeout", "0.5s"])
    srv, t = next(g)
    wait_for(lambda: len(srv.eofs) == 1, timeout=10, what="a close")
    # not at once (that takes milliseconds); t is a little after the ack
    assert srv.eofs[0] - t >= 0.25
    next(g)
    assert srv.nconn >= 2
    next(g, None)


def test_keepalive_default_keeps_the_connection(spool, tmp_path):
    """The default keeps it open while idle: one connection for both
    rounds, with 1.5 s of idleness between them."""
    g = run(spool, tmp_path, [])
    srv, t = next(g)
    # TCP keepalive probes are on (lf-send's end: destination port)
    ss = subprocess.run(["ss", "-tnoH", "state", "established",
                         "( dport = :%d )" % srv.port],
                        stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "timer:(keepalive," in ss, ss
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        assert srv.eofs == []
        time.sleep(0.05)
    next(g)
    assert srv.nconn == 1 and srv.eofs == []
    next(g, None)
