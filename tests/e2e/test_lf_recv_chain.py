"""lf-send -> lf-recv -> lf-buffer with acks, and kill -9 mid-stream
(issue 9, "Proof"; issue 8's lf-send -> lf-recv interop).

lf-send delivers a spool with --require-ack-response to lf-recv on TCP,
which hands the events on to lf-buffer --listen over the acked hop
(--to); lf-send deletes a chunk only once its ack came back, and lf-recv
may ack only what lf-buffer acked (fsync'd).  One of the two servers is
killed with SIGKILL again and again while chunks flow and started again
at once on the same address.  The claim: every chunk lf-send saw acked
(gone from its spool) has every event in the destination spool.  In the
end every chunk is gone from the source, so no event may be missing;
duplicates are allowed (a chunk sent again after a kill), counted and
printed with the chunks lf-send and the batches lf-recv sent again.

The kills are at random points of the stream (seeded), chosen by
progress rather than by the clock, so that they are mid-stream however
fast the machine is: the source spool holds ROUNDS + 1 slices of CHUNKS
chunks before lf-send starts, and the r-th kill comes once the chunks
left fall below a random point of the r-th slice, after a random pause
of up to 5 ms.  At least half the kills must find chunks still in the
source (mid-stream); nearly all do.

Bounds, and why:
- ROUNDS = 10 kills per victim; CHUNKS = 20 chunks of PER = 200 events
  (~130 bytes) a slice: 44,000 events a test, a few seconds under ASan.
- --flush-thread-count 4: four chunks in flight, so that a kill finds
  several unacked (each is counted when it is sent again).
- --ack-response-timeout 3s: a chunk that lf-recv took but can no longer
  ack (its lf-buffer died) is sent again after 3 s, not Fluentd's 190 s.
- WAIT (30 s) for any one step: far above what a step takes, so a
  timeout means a stall, not a slow machine.
"""
import random
import re
import time

import pytest

import lfchunk
from conftest import waiter
from test_lf_buffer import Lfb, spool_events, work  # noqa: F401
from test_lf_recv_clients import Recv, procs  # noqa: F401
from test_lf_send import ACK, Send, fill, left

WAIT = 30
wait_for = waiter(WAIT)
ROUNDS = 10
CHUNKS = 20
PER = 200
ARGS = ACK + ["--ack-response-timeout", "3s", "--retry-max-interval", "0.3s",
               "--flush-thread-count", "4"]


def again(log, what):
    """The sum of N in the log's lines "...; N what (M events) to send
    again" (lf-send's and lf-recv's hop's)."""
    return sum(int(n) for n in re.findall(
        r"; (\d+) %s \(\d+ events\) to send again" % what, log))


def chain(work, tmp_path, procs, victim, seed):
    """Run the chain with ROUNDS kills of victim ("recv" or "buffer");
    returns (events expected, events in the destination spool, kills
    mid-stream, (chunks lf-send sent again, batches lf-recv sent again to
    lf-buffer))."""
    rnd = random.Random(seed)
    src = lfchunk.make_spool(tmp_path / "src")
    dst = str(tmp_path / "dst")
    b = Lfb(work, [dst])
    procs.append(b)
    b.start()
    rv = Recv(work, to=b.sock)
    procs.append(rv)
    rv.start()
    want = {}
    for r in range(ROUNDS + 1):
        tag = "chain.r%d" % r
        for evs in fill(src, CHUNKS, PER, tag=tag, pad=80,
                        seed=seed * 100 + r).values():
            for t, rec in evs:
                want[(tag, rec["c"], rec["i"])] = (t, rec)
    total = CHUNKS * (ROUNDS + 1)
    s = Send(src, tmp_path, ["--server", rv.addr] + ARGS)
    assert s.ready, s.text()
    midstream = 0
    try:
        for r in range(ROUNDS):
            # the r-th kill somewhere in the (r+1)-th of ROUNDS+1 slices
            # of the stream
            mark = total - int((r + rnd.uniform(0.1, 0.9)) * CHUNKS)
            wait_for(lambda: len(left(src)) <= mark, step=0.002,
                     what="kill %d: %d chunks left" % (r, mark))
            time.sleep(rnd.uniform(0, 0.005))
            midstream += bool(left(src))
            if victim == "recv":
                rv.kill9()
                rv.start()
            else:
                b.kill9()
                b.start()
            assert s.p.poll() is None, s.text()
        wait_for(lambda: not left(src), what="every chunk acked and deleted")
    finally:
        rc = s.stop()
    assert rc == 0, s.text()
    resent = again(s.text(), "chunks")
    assert rv.stop() == 0, rv.err
    assert b.stop() == 0, b.err
    resent = (resent, again(rv.all_err(), "batches"))
    assert midstream >= ROUNDS // 2, "only %d kills mid-stream" % midstream
    return want, spool_events(dst), midstream, resent


@pytest.mark.parametrize("victim", ["recv", "buffer"])
def test_kill9_midstream_loses_no_acked_event(work, tmp_path, procs, victim,
                                              capsys):
    want, got, mid, resent = chain(work, tmp_path, procs, victim, seed=9)
    counts = {}
    for tag, (sec, nsec), rec in got:
        key = (tag, rec["c"], rec["i"])
        assert key in want, "an event never sent: %r" % (key,)
        t, r = want[key]
        assert (sec, nsec) == (t, 0) and rec == r, (key, sec, nsec, rec)
        counts[key] = counts.get(key, 0) + 1
    missing = sorted(set(want) - set(counts))
    dups = sum(counts.values()) - len(counts)
    with capsys.disabled():
        print("\nchain, kill -9 lf-%s x%d (%d mid-stream): %d events sent, "
              "sent again: %d chunks by lf-send, %d batches by lf-recv; "
              "%d events stored, %d duplicates, %d missing" % (
                  victim, ROUNDS, mid, len(want), resent[0], resent[1],
                  len(got), dups, len(missing)))
    assert not missing, "%d acked events missing, first %r" % (
        len(missing), missing[:5])
