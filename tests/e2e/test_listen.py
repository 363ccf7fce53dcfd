"""lf-buffer on lib/ingest opened up (issue 7): several --listen sockets
in one process, and acks deferred until the group commit, released to
clients that may have gone meanwhile."""
import os
import socket
import struct
import time

from conftest import run
from fwdclient import Client, fluentd_token
from test_hostile import one_event_message
from test_lf_buffer import (WAIT, Lfb, mkspool, procs, spool_events,  # noqa: F401
                            wait_for, work)


class Multi(Lfb):
    """An Lfb with more --listen sockets than its own."""

    def __init__(self, workdir, spools, extra, args=()):
        super().__init__(workdir, spools, args)
        self.extra = extra

    def cmd(self, notify_fd=None):
        c = super().cmd(notify_fd)
        for p in self.extra:
            c[1:1] = ["--listen", "unix:" + p]
        return c


def test_two_listeners_each_acked(work, procs):
    """Clients on two sockets of one lf-buffer each get their own acks, in
    the order they sent, after the commit; both sockets go at exit."""
    other = os.path.join(work, "t")
    b = Multi(work, [mkspool(work)], [other], ["--commit-wait", "0.2s"])
    procs.append(b)
    b.start()
    ta = [fluentd_token() for _ in range(20)]
    tb = [fluentd_token() for _ in range(20)]
    with Client(b.sock, WAIT) as a, Client(other, WAIT) as c:
        for i in range(20):
            a.send_raw(one_event_message(ta[i], i))
            c.send_raw(one_event_message(tb[i], 100 + i))
        assert a.read_acks(20, WAIT) == ta
        assert c.read_acks(20, WAIT) == tb
    assert b.stop() == 0
    got = sorted(r["m"] for _t, _s, r in spool_events(b.spools[0]))
    assert got == list(range(20)) + list(range(100, 120))
    assert not os.path.exists(b.sock) and not os.path.exists(other)


def test_same_socket_twice_is_unavailable(work):
    """The second --listen of one path finds the first one live: 69."""
    s = os.path.join(work, "s")
    rc, _out, err = run("lf-buffer", ["--listen", "unix:" + s, "--listen",
                                      "unix:" + s, mkspool(work)], b"")
    assert rc == 69, (rc, err)
    assert b"in use" in err, err


def test_client_gone_before_its_commit(work, procs):
    """Within one --commit-wait, a client sends and resets, another sends
    after it: the first one's deferred ack finds no one (and harms no one
    else), the second is acked, both messages are stored once."""
    b = Lfb(work, [mkspool(work)], ["--commit-wait", "1s"])
    procs.append(b)
    b.start()
    t1, t2 = fluentd_token(), fluentd_token()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(b.sock)
    s.sendall(one_event_message(t1, 1))
    # a reset: unread bytes in its own receive queue do not matter on a
    # Unix socket, so it is a plain close; lf-buffer writes the ack later
    # into a closed socket (EPIPE) and closes it
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    with Client(b.sock, WAIT) as c:
        c.send_raw(one_event_message(t2, 2))
        t0 = time.monotonic()
        assert c.read_acks(1, WAIT * 2) == [t2]
        # the ack waited for the commit, not for the client before it
        assert time.monotonic() - t0 < WAIT
    assert b.stop() == 0
    assert sorted(r["m"] for _t, _s, r in spool_events(b.spools[0])) == [1, 2]
    assert b"fatal" not in b.errs[-1], b.errs[-1]
