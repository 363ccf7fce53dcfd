"""Durability of lf-buffer's commit path when the disk or a sync fails
(issue 6, findings 7 and 8, and "one commit primitive").

- A disk filled by one staged chunk must not wedge the spool: the
  committed part of the staged chunks is sealed, so a consumer can
  deliver it and free space, and input goes on once there is room.
- lf-buffer must start on a full disk: recovery and the window are
  changed in place and renamed, never copied.
- A failed fsync of new/ after a chunk was renamed into it is not a
  failed commit: the chunk is stored (its bytes were synced before the
  rename), never written again, and commits go on (fault injection).

Figures asserted, with why:
- "stalled": no ack for 1.2 s while the filesystem has under 256 KiB
  free is a full disk (a commit takes milliseconds, even under ASan).
- a sealed chunk must appear within WAIT (20 s) of the stall: the seal
  happens in the failed commit itself, so seconds is generous.
"""
import os
import time

import pytest

from fwdclient import fluentd_token, pack_entries
from test_lf_buffer import (WAIT, all_files, chunk_names, consume, fill,
                            fsck, id_counts, lfb, log_lines, msg_events,
                            procs, smallfs, spool_events, wait_for, work)

__all__ = ["procs", "smallfs", "work"]  # fixtures used by name

FULL = 256 * 1024       # bytes free below which the 2 MiB tmpfs is full


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def messages(n, per=20, pad=150, tag="full", first=0):
    """n messages of ~4 KB each, numbered from first: (tag, entries, size,
    token)."""
    out = []
    for i in range(first, first + n):
        evs = msg_events(i, per, pad=pad)
        out.append((tag, pack_entries(evs), per,
                    fluentd_token() if i % 2 else os.urandom(16)))
    return out


class Feeder:
    """Sends messages with up to `window` in flight, collects acks in
    order; progress() returns the time of the last ack."""

    def __init__(self, c, msgs, window=16):
        self.c, self.msgs, self.window = c, msgs, window
        self.inflight, self.acked, self.nxt = [], [], 0
        self.last = time.monotonic()

    def step(self, limit=None):
        limit = len(self.msgs) if limit is None else limit
        while len(self.inflight) < self.window and self.nxt < limit:
            tag, ents, size, tok = self.msgs[self.nxt]
            self.c.send(tag, ents, token=tok, size=size)
            self.inflight.append(self.nxt)
            self.nxt += 1
        for tok in self.c.poll_acks(0.1):
            i = self.inflight.pop(0)
            assert tok == self.msgs[i][3]
            self.acked.append(i)
            self.last = time.monotonic()

    def stalled(self, fsdir):
        return (time.monotonic() - self.last > 1.2 and
                free_bytes(fsdir) < FULL)


def check_all(acked, evs, per=20):
    """Every event of every acked message exactly once in evs."""
    cnt = id_counts(evs)
    want = {(i, e) for i in acked for e in range(per)}
    missing = sorted(k for k in want if k not in cnt)
    assert not missing, "acked but lost: %r" % missing[:10]
    dups = sorted(k for k, v in cnt.items() if v != 1)
    assert not dups, "stored twice: %r" % dups[:10]


# ---------------------------------------------------------------------------
# Finding 8: a disk filled by one staged chunk
# ---------------------------------------------------------------------------

def test_disk_filled_by_one_staged_chunk_is_sealed_and_drained(
        work, smallfs, procs):
    """One tag, the default chunk limits (256 MiB, 60 s): one staged chunk
    fills the 2 MiB disk.  Today nothing is ever sealed and input waits
    for ever; now the failed commit seals what was committed, a consumer
    delivers it, and every message is acked in the end.  Then kill -9
    on a full disk, and a restart (which must not need free space)."""
    spool = os.path.join(smallfs, "spool")
    b = lfb(procs, work, [spool]).start()
    msgs = messages(900)            # ~3.6 MB: the disk fills twice or more
    c = b.client()
    f = Feeder(c, msgs)
    consumed = []
    stalls = 0
    deadline = time.monotonic() + 90
    while len(f.acked) < len(msgs):
        assert time.monotonic() < deadline, "no progress: %d acked" % len(
            f.acked)
        f.step()
        if f.stalled(smallfs):
            assert b.alive(), b.read_err()
            stalls += 1
            # the staged chunk is sealed by the failed commit, for us
            wait_for(lambda: chunk_names(spool), what="a chunk sealed "
                     "on a full disk (stall %d, %d acked)" % (stalls,
                                                             len(f.acked)))
            assert consume(spool, consumed) > 0
            f.last = time.monotonic()
    assert stalls >= 1, "the disk never filled"
    acked = list(f.acked)
    assert acked == list(range(len(msgs)))
    warns = log_lines(b.read_err(), "warn")
    assert any("disk full: sealed" in w for w in warns), warns

    # fill the disk with a staged chunk again, then kill -9
    more = messages(600, first=len(msgs))
    f2 = Feeder(c, more)
    deadline = time.monotonic() + 60
    while not f2.stalled(smallfs):
        assert time.monotonic() < deadline, "the disk did not fill"
        f2.step()
    c.close()
    b.kill9()
    filler = fill(smallfs)          # not a page left
    b.args = []
    b.start()                       # no exit 73: it starts on a full disk
    # acked messages sent again are acked again, not stored again, even
    # on a full disk: a duplicate needs no room
    c = b.client()
    for i in f2.acked[-20:]:
        tag, ents, size, tok = more[i]
        c.send(tag, ents, token=tok, size=size)
        assert c.read_ack(WAIT) == tok
    c.close()
    consume(spool, consumed)
    os.unlink(filler)
    assert b.stop() == 0
    evs = consumed + spool_events(spool)
    check_all(acked + [len(msgs) + i for i in f2.acked], evs)
    assert all_files(spool, "tmp") == [] and all_files(spool, "dead") == []
    fsck(spool)


def test_starts_on_a_full_disk(work, smallfs, procs):
    """kill -9 with a staged chunk, a full disk, a restart: today it exits
    73 (rewriting state/window needs free space); now recovery cuts,
    voids window records and seals in place, and it starts."""
    spool = os.path.join(smallfs, "spool")
    opts = ["--commit-wait", "3s"]
    b = lfb(procs, work, [spool], opts).start()
    c = b.client()
    toks = [fluentd_token() for _ in range(3)]
    for i, tok in enumerate(toks):
        c.send("a", msg_events(i, 2), token=tok)
    assert c.read_acks(3, WAIT) == toks
    # X is taken, its record written by the next tick's window sync, not
    # committed: it was never acked, and must be stored when sent again
    tx = fluentd_token()
    c.send("a", msg_events(3, 2), token=tx)
    wpath = os.path.join(spool, "state", "window")
    wait_for(lambda: os.path.getsize(wpath) >= 4 * 48, timeout=2.5,
             what="X's window record")
    assert c.poll_acks(0) == []
    b.kill9()
    c.close()
    filler = fill(smallfs)
    b.args = []
    b.start()
    assert b.alive()
    assert len(chunk_names(spool)) == 1 and all_files(spool, "tmp") == []
    c = b.client()
    for i, tok in enumerate(toks):       # acked: acked again, not stored
        c.send("a", msg_events(i, 2), token=tok)
    assert c.read_acks(3, WAIT) == toks
    c.close()
    os.unlink(filler)
    c = b.client()
    c.send("a", msg_events(3, 2), token=tx)
    assert c.read_ack(WAIT) == tx        # X: stored now
    c.close()
    assert b.stop() == 0
    cnt = id_counts(spool_events(spool))
    assert cnt == {(m, e): 1 for m in range(4) for e in range(2)}, cnt
