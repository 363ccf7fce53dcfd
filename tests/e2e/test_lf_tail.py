"""End-to-end tests of lf-tail: Fluentd's in_tail as a tool (issue 10;
research/fluentd-semantics.md D, H).

Under test: every line written to a followed file comes out once, in
order per file, through every kind of rotation (rename and create,
copytruncate, deletion, rotation while lf-tail was down, logrotate's
compress), a partial last line is held until its newline, a pos file
written by Fluentd is adopted as it is and lf-tail's own is in Fluentd's
format, and with --to and --pos-file a kill -9 of lf-tail or of
lf-buffer at any instant loses and doubles nothing in the spool.

Figures, with why:
- WAIT (20 s) bounds every poll: the binaries may run under ASan on a
  loaded 2-core machine, and the normal case takes milliseconds.
- --rotate-wait 1 where a test waits for an old file to be closed: the
  close is what is checked, not the wait.
- The torture runs TORTURE_S (12 s) of writing with kills every 0.3 to
  1.5 s (seeded): enough for tens of kills and rotations, and the whole
  test stays well under 60 s under ASan.
"""
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

import conftest
from conftest import _env, check_no_sanitizer, decode_packed, tool
from test_lf_buffer import Lfb, spool_events

WAIT = 20
TORTURE_S = 12
wait_for = conftest.waiter(WAIT)
POS_RE = re.compile(rb"^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+)")


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="lft")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Tail:
    """One lf-tail, started again and again; stdout appended to a file
    (a stream of PackedForward messages), stderr to a file per run."""

    def __init__(self, work, args, out=True):
        self.work = work
        self.args = [str(a) for a in args]
        self.outpath = os.path.join(work, "tail.out")
        self.out = out
        self.p = None
        self.runs = 0
        self.errs = []

    def start(self):
        self.runs += 1
        self.errpath = os.path.join(self.work, "tail.err.%d" % self.runs)
        r, w = os.pipe()
        with open(self.outpath, "ab") as o, open(self.errpath, "wb") as e:
            self.p = subprocess.Popen(
                [tool("lf-tail"), "--notify-fd", str(w)] + self.args,
                stdin=subprocess.DEVNULL,
                stdout=o if self.out else subprocess.DEVNULL, stderr=e,
                env=_env(), pass_fds=(w,))
        os.close(w)
        try:
            assert os.read(r, 1) == b"\n", self.err()
        finally:
            os.close(r)
        return self

    def err(self):
        with open(self.errpath, "rb") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(WAIT)
        err = self.err()
        check_no_sanitizer(err)
        self.errs.append(err)
        return rc

    def events(self):
        with open(self.outpath, "rb") as f:
            return stream_events(f.read())

    def messages(self):
        return [r["message"] for _t, _ts, r in self.events()]

    def cleanup(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def stream_events(data):
    """[(tag, (sec, nsec), record dict)] of a stream (a partial message
    at the end is not there yet)."""
    res = []
    for tag, _opt, ents in decode_packed(data):
        for tm, rec in ents:
            assert tm.code == 0 and len(tm.data) == 8, tm
            res.append((tag, struct.unpack(">II", tm.data), dict(rec)))
    return res


@pytest.fixture
def tails():
    started = []
    yield started
    for t in started:
        t.cleanup()


def tail(tails, work, args, **kw):
    t = Tail(work, args, **kw)
    tails.append(t)
    return t


def append(path, text):
    with open(path, "ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def lines(prefix, a, b):
    return "".join("%s %d\n" % (prefix, i) for i in range(a, b))


def expect(prefix, a, b):
    return ["%s %d" % (prefix, i) for i in range(a, b)]


def wait_msgs(t, want, what="lines"):
    wait_for(lambda: t.messages() == want or len(t.messages()) > len(want),
             what=what)
    assert t.messages() == want


def read_pos(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    res = {}
    for line in data.split(b"\n")[:-1]:
        # lf-tail writes exactly Fluentd's "%s\t%016x\t%016x\n"
        assert re.fullmatch(rb"[^\t]+\t[0-9a-f]{16}\t[0-9a-f]{16}", line), line
        m = POS_RE.match(line)
        res[m.group(1).decode()] = (int(m.group(2), 16), int(m.group(3), 16))
    return res


# ---------------------------------------------------------------------------

def test_partial_last_line_held_until_newline(work, tails):
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, "one\ntwo\nthr")
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file", pos,
                           log]).start()
    wait_msgs(t, ["one", "two"])
    wait_for(lambda: read_pos(pos).get(log, (0,))[0] == 8, what="pos 8")
    time.sleep(0.3)     # no event may come for the partial line
    assert t.messages() == ["one", "two"]
    append(log, "ee\nfour\n")
    wait_msgs(t, ["one", "two", "three", "four"])
    assert t.stop() == 0
    assert read_pos(pos)[log] == (os.path.getsize(log), os.stat(log).st_ino)


def test_partial_flush_interval(work, tails):
    log = os.path.join(work, "a.log")
    append(log, "one\ntw")
    t = tail(tails, work, ["-t", "t", "--read-from-head",
                           "--partial-flush-interval", "0.3", log]).start()
    wait_msgs(t, ["one", "tw"])
    assert t.stop() == 0


def test_tag_star_is_the_path(work, tails):
    d = os.path.join(work, "x..y")
    os.mkdir(d)
    log = os.path.join(d, "a.log")
    append(log, "l\n")
    t = tail(tails, work, ["-t", "p.*.s", "--read-from-head", log]).start()
    wait_for(lambda: t.events(), what="an event")
    want = "p." + re.sub(r"\.+", ".", log.replace("/", ".")).lstrip(".") + ".s"
    assert t.events()[0][0] == want
    t.stop()


def test_new_file_at_start_from_its_end_later_from_head(work, tails):
    log = os.path.join(work, "a.log")
    later = os.path.join(work, "b.log")
    append(log, "old\n")
    t = tail(tails, work, ["-t", "t", os.path.join(work, "*.log")]).start()
    append(log, "new\n")
    wait_msgs(t, ["new"])
    append(later, "b1\nb2\n")     # found after startup: from its head
    wait_msgs(t, ["new", "b1", "b2"])
    t.stop()


def test_rename_and_create(work, tails):
    log = os.path.join(work, "a.log")
    append(log, lines("a", 0, 100))
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--rotate-wait",
                           "1", "-v", log]).start()
    wait_msgs(t, expect("a", 0, 100))
    with open(log, "ab") as old:
        os.rename(log, log + ".1")
        # the writer still has the old file open: those lines are read too
        old.write(lines("a", 100, 150).encode())
        old.flush()
        append(log, lines("b", 0, 50))
        old.write(lines("a", 150, 160).encode())
    want = expect("a", 0, 160) + expect("b", 0, 50)
    wait_for(lambda: len(t.messages()) >= len(want), what="all lines")
    got = t.messages()
    assert sorted(got) == sorted(want)
    assert [m for m in got if m[0] == "a"] == expect("a", 0, 160)
    assert [m for m in got if m[0] == "b"] == expect("b", 0, 50)
    wait_for(lambda: b"rotated and read to its end, closed" in t.err(),
             what="old file closed")
    assert t.stop() == 0


def test_rotated_file_read_to_its_end_even_past_rotate_wait(work, tails):
    """Fluentd closes the old file rotate_wait after the rotation even if
    unread (fluentd#1428); lf-tail reads it to its end first."""
    log = os.path.join(work, "a.log")
    big = lines("a", 0, 40000)          # ~300 KB at 64 KiB/s: ~5 s
    append(log, big)
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--rotate-wait",
                           "0.2", "--read-bytes-limit-per-second", "65536",
                           log]).start()
    os.rename(log, log + ".1")
    append(log, "b 0\n")
    wait_for(lambda: len(t.messages()) >= 40001, timeout=60, what="all")
    got = t.messages()
    assert [m for m in got if m[0] == "a"] == expect("a", 0, 40000)
    assert "b 0" in got and len(got) == 40001
    t.stop()


def test_copytruncate(work, tails):
    log = os.path.join(work, "a.log")
    append(log, lines("a", 0, 50))
    t = tail(tails, work, ["-t", "t", "--read-from-head", log]).start()
    wait_msgs(t, expect("a", 0, 50))
    shutil.copy(log, log + ".1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, lines("b", 0, 3))       # shorter than what was read
    wait_msgs(t, expect("a", 0, 50) + expect("b", 0, 3))
    assert t.stop() == 0


def test_deleted_while_open_read_to_its_end(work, tails):
    log = os.path.join(work, "a.log")
    append(log, lines("a", 0, 20000))     # ~150 KB at 64 KiB/s
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--rotate-wait",
                           "0.2", "--read-bytes-limit-per-second", "65536",
                           log]).start()
    os.unlink(log)
    wait_for(lambda: len(t.messages()) >= 20000, timeout=60, what="all")
    assert t.messages() == expect("a", 0, 20000)
    t.stop()


def test_rotation_while_down(work, tails):
    """The pos file's inode differs: the new file is read from its head;
    without --follow-inodes the old file's unread tail is not found
    (Fluentd's rule)."""
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 10))
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file", pos,
                           log]).start()
    wait_msgs(t, expect("a", 0, 10))
    assert t.stop() == 0
    append(log, lines("a", 10, 12))
    os.rename(log, log + ".1")
    append(log, lines("b", 0, 5))
    t.start()
    wait_msgs(t, expect("a", 0, 10) + expect("b", 0, 5))
    t.stop()


def test_rotation_while_down_follow_inodes(work, tails):
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 10))
    args = ["-t", "t", "--read-from-head", "--pos-file", pos,
            "--follow-inodes", log + "*"]
    t = tail(tails, work, args).start()
    wait_msgs(t, expect("a", 0, 10))
    assert t.stop() == 0
    append(log, lines("a", 10, 12))
    os.rename(log, log + ".1")
    append(log, lines("b", 0, 5))
    t.start()
    want = expect("a", 0, 12) + expect("b", 0, 5)
    wait_for(lambda: len(t.messages()) >= len(want), what="all")
    assert sorted(t.messages()) == sorted(want)
    assert t.stop() == 0
    ents = read_pos(pos)
    assert ents[log + ".1"] == (os.path.getsize(log + ".1"),
                                os.stat(log + ".1").st_ino)


def test_renamed_into_the_glob_not_read_again(work, tails):
    """Fluentd without follow_inodes reads app.log.1 again from its head
    when a glob matches it; lf-tail knows the inode."""
    log = os.path.join(work, "a.log")
    append(log, lines("a", 0, 10))
    t = tail(tails, work, ["-t", "t", "--read-from-head", log + "*"]).start()
    wait_msgs(t, expect("a", 0, 10))
    os.rename(log, log + ".1")
    append(log, lines("b", 0, 3))
    wait_msgs(t, expect("a", 0, 10) + expect("b", 0, 3))
    time.sleep(0.5)
    assert len(t.messages()) == 13
    t.stop()


def test_logrotate_compress_not_read_as_new(work, tails):
    log = os.path.join(work, "a.log")
    append(log, lines("a", 0, 10))
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--rotate-wait",
                           "0.2", log + "*"]).start()
    wait_msgs(t, expect("a", 0, 10))
    # delaycompress: a.log -> a.log.1 now, a.log.1 -> a.log.2.gz later
    os.rename(log, log + ".1")
    append(log, lines("b", 0, 2))
    wait_msgs(t, expect("a", 0, 10) + expect("b", 0, 2))
    subprocess.run(["gzip", "-c", log + ".1"], check=True,
                   stdout=open(log + ".2.gz", "wb"))
    os.unlink(log + ".1")
    append(log, lines("b", 2, 4))
    wait_msgs(t, expect("a", 0, 10) + expect("b", 0, 4))
    time.sleep(0.5)
    assert len(t.messages()) == 14
    t.stop()


def test_globs_and_exclude(work, tails):
    for n in ("a.log", "b.log", "c.txt", "d.log"):
        append(os.path.join(work, n), n + "\n")
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--path-key", "p",
                           "--exclude-path", os.path.join(work, "b.*"),
                           os.path.join(work, "*.log"),
                           os.path.join(work, "c.txt")]).start()
    wait_for(lambda: len(t.messages()) >= 3, what="3 files")
    time.sleep(0.3)
    got = sorted((r["message"], r["p"]) for _t, _ts, r in t.events())
    assert got == [(n, os.path.join(work, n)) for n in
                   ("a.log", "c.txt", "d.log")]
    t.stop()


def test_symlink_followed_and_retargeted(work, tails):
    d1 = os.path.join(work, "real")
    os.mkdir(d1)
    a, b = os.path.join(d1, "a"), os.path.join(d1, "b")
    link = os.path.join(work, "cur.log")
    append(a, "a 0\n")
    os.symlink(a, link)
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--rotate-wait",
                           "0.2", link]).start()
    wait_msgs(t, ["a 0"])
    append(a, "a 1\n")          # a write in the target's folder is seen
    wait_msgs(t, ["a 0", "a 1"])
    append(b, "b 0\n")
    os.symlink(b, link + ".new")
    os.rename(link + ".new", link)
    wait_msgs(t, ["a 0", "a 1", "b 0"])
    t.stop()


def test_fluentd_pos_file_adopted(work, tails):
    log = os.path.join(work, "a.log")
    other = os.path.join(work, "gone.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 10))
    ino = os.stat(log).st_ino
    off = len(lines("a", 0, 4))
    with open(pos, "wb") as f:
        # as td-agent leaves it: an unwatched entry, an older entry of the
        # same path (the last one wins), upper-case hex, a torn line
        f.write(b"%s\t%016x\t%016x\n" % (log.encode(), 1, ino))
        f.write(b"%s\tffffffffffffffff\t%016x\n" % (other.encode(), 5))
        f.write(b"%s\t%016X\t%016X\n" % (log.encode(), off, ino))
        f.write(b"garbage line\n/x\t00")
    t = tail(tails, work, ["-t", "t", "--pos-file", pos, log]).start()
    wait_msgs(t, expect("a", 4, 10))
    assert t.stop() == 0
    assert read_pos(pos) == {log: (os.path.getsize(log), ino)}
    with open(pos, "rb") as f:
        assert f.read() == b"%s\t%016x\t%016x\n" % (
            log.encode(), os.path.getsize(log), ino)


def test_pos_file_truncated_while_down_reads_from_head(work, tails):
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 10))
    with open(pos, "wb") as f:
        f.write(b"%s\t%016x\t%016x\n" % (log.encode(), 10 ** 6,
                                         os.stat(log).st_ino))
    t = tail(tails, work, ["-t", "t", "--pos-file", pos, log]).start()
    wait_msgs(t, expect("a", 0, 10))
    t.stop()


def test_unmatched_lines_emitted_and_counted(work, tails):
    log = os.path.join(work, "a.log")
    st = os.path.join(work, "state")
    append(log, '{"k":1}\nnot json\n')
    t = tail(tails, work, ["-t", "t", "--read-from-head", "-f", "json",
                           "--state-file", st, log]).start()
    wait_for(lambda: len(t.events()) >= 2, what="2 events")
    recs = [r for _t, _ts, r in t.events()]
    assert recs[0] == {"k": 1} and recs[1] == {"unmatched_line": "not json"}
    assert t.stop() == 0
    assert b"pattern not matched" in t.errs[-1]
    import json
    with open(st) as f:
        s = json.load(f)
    assert s["parse_errors"] == 1 and s["files"][0]["parse_errors"] == 1
    assert s["files"][0]["lines"] == 2 and s["files"][0]["lag_bytes"] == 0


def test_max_line_size_skips_long_lines(work, tails):
    log = os.path.join(work, "a.log")
    append(log, "short\n" + "x" * 300000 + "\nafter\n")
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--max-line-size",
                           "100k", log]).start()
    wait_msgs(t, ["short", "after"])
    assert t.stop() == 0
    assert b"max-line-size" in t.errs[-1]


def test_term_saves_positions_and_exits_0(work, tails):
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 5))
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file", pos,
                           log]).start()
    wait_msgs(t, expect("a", 0, 5))
    assert t.stop() == 0
    assert read_pos(pos)[log][0] == os.path.getsize(log)
    append(log, lines("a", 5, 7))
    t.start()
    wait_msgs(t, expect("a", 0, 7))
    t.stop()


# ---------------------------------------------------------------------------
# --to lf-buffer: exactly once through kills
# ---------------------------------------------------------------------------

def spool_msgs(spool):
    return [(tag, r["message"]) for tag, _t, r in spool_events(spool)]


def test_to_lf_buffer(work, tails):
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"]).start()
    try:
        log = os.path.join(work, "a.log")
        pos = os.path.join(work, "pos")
        append(log, lines("a", 0, 3000))
        t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file",
                               pos, "--to", "unix:" + b.sock, log], out=False)
        t.start()
        wait_for(lambda: read_pos(pos).get(log, (0,))[0] ==
                 os.path.getsize(log), what="all acked")
        assert t.stop() == 0
        assert b.stop() == 0
        assert [m for _t, m in spool_msgs(spool)] == expect("a", 0, 3000)
    finally:
        b.cleanup()


def test_torture_kill9_both_sides_exactly_once(work, tails):
    """A writer appends to two files and rotates one by rename and create
    (the other by rename into the glob); lf-tail and lf-buffer are killed
    with -9 at seeded random instants and started again.  At the end the
    spool holds every line once, in order per file."""
    rnd = random.Random(int(os.environ.get("LF_TORTURE_SEED", "1010")))
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"])
    b.start()
    logs = [os.path.join(work, "a.log"), os.path.join(work, "b.log")]
    pos = os.path.join(work, "pos")
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file", pos,
                           "--follow-inodes", "--rotate-wait", "0.5",
                           "--read-lines-limit", "200", "--to",
                           "unix:" + b.sock, os.path.join(work, "*.log*")],
             out=False)
    try:
        t.start()
        n = [0, 0]
        gen = [0, 0]
        starts = [[0], [0]]     # the first line of each physical file
        fh = [open(p, "ab", buffering=0) for p in logs]
        end = time.monotonic() + TORTURE_S
        next_kill = time.monotonic() + rnd.uniform(0.3, 1.5)
        kills = rotations = 0
        while time.monotonic() < end:
            for i in range(2):
                k = rnd.randint(1, 60)
                fh[i].write("".join("f%d %d\n" % (i, n[i] + j)
                                    for j in range(k)).encode())
                n[i] += k
            if rnd.random() < 0.02:
                i = rnd.randint(0, 1)
                gen[i] += 1
                starts[i].append(n[i])
                os.rename(logs[i], "%s.%d" % (logs[i], gen[i]))
                fh[i].close()
                fh[i] = open(logs[i], "ab", buffering=0)
                rotations += 1
            if time.monotonic() >= next_kill:
                victim = t if rnd.random() < 0.5 else b
                if victim is t:
                    t.stop(signal.SIGKILL)
                    t.start()
                else:
                    b.kill9()
                    b.start()
                kills += 1
                next_kill = time.monotonic() + rnd.uniform(0.3, 1.5)
            time.sleep(rnd.uniform(0, 0.01))
        for f in fh:
            f.close()
        assert kills >= 5 and rotations >= 2, (kills, rotations)
        sizes = lambda: {p: os.path.getsize(p) for p in
                         [os.path.join(work, x) for x in os.listdir(work)]
                         if re.search(r"/[ab]\.log(\.\d+)?$", p)}
        wait_for(lambda: all(read_pos(pos).get(p, (-1,))[0] == s for p, s in
                             sizes().items()), timeout=60, what="all acked")
        assert t.stop() == 0
        assert b.stop() == 0
        got = [m for _t, m in spool_msgs(spool)]
        assert len(got) == sum(n)
        for i in range(2):
            mine = [int(m.split()[1]) for m in got if m.startswith("f%d " % i)]
            # every line once
            assert sorted(mine) == list(range(n[i])), \
                "file %d: %d lines of %d, %d distinct" % (
                    i, len(mine), n[i], len(set(mine)))
            # in order per physical file (generation)
            bounds = starts[i] + [n[i]]
            for g in range(len(bounds) - 1):
                seg = [x for x in mine if bounds[g] <= x < bounds[g + 1]]
                assert seg == list(range(bounds[g], bounds[g + 1])), \
                    "file %d generation %d out of order" % (i, g)
    finally:
        b.cleanup()


def test_torture_copytruncate_and_rename_kill9_exactly_once(work, tails):
    """A writer appends at full speed to one file rotated at seeded
    random instants by rename and create or by copytruncate, while
    lf-tail and lf-buffer are killed with -9 and started again.

    copytruncate loses, for any tailer, what was not read when the file
    is truncated: the lines written after the copy and before the
    truncation, and any the tailer had not read yet.  The writer is one
    thread, so nothing is written between the copy and the truncation;
    before the copy it waits until the position (saved only after
    lf-buffer's ack) is the file's size, so every line written before is
    delivered; after the truncation it waits until the position went
    back, so lf-tail saw the truncation before the file grows past its
    old size (a truncation then unseen is missed by every tailer that
    compares sizes: Fluentd's D.4).  Outside that window nothing may be
    lost or doubled: at the end the spool holds every line once, in
    order within each file's content.  The copies are not followed
    (c.copy.N is not in the glob)."""
    rnd = random.Random(int(os.environ.get("LF_TORTURE_SEED", "2020")))
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"])
    b.start()
    log = os.path.join(work, "c.log")
    pos = os.path.join(work, "pos")
    t = tail(tails, work, ["-t", "t", "--read-from-head", "--pos-file", pos,
                           "--follow-inodes", "--rotate-wait", "0.5",
                           "--read-lines-limit", "200", "--to",
                           "unix:" + b.sock, os.path.join(work, "c.log*")],
             out=False)

    def logpos():
        return read_pos(pos).get(log, (-1,))[0]

    try:
        t.start()
        n = 0
        starts = [0]        # the first line of each file's content
        fh = open(log, "ab", buffering=0)
        end = time.monotonic() + TORTURE_S
        next_kill = time.monotonic() + rnd.uniform(0.3, 1.5)
        kills = renames = truncs = 0
        while time.monotonic() < end:
            k = rnd.randint(1, 60)
            fh.write("".join("c %d\n" % (n + j) for j in range(k)).encode())
            n += k
            r = rnd.random()
            if r < 0.01 and truncs < 6:
                size = os.path.getsize(log)
                wait_for(lambda: logpos() == size, what="delivered before "
                         "copytruncate")
                shutil.copyfile(log, os.path.join(work, "c.copy.%d" % truncs))
                os.truncate(log, 0)
                wait_for(lambda: 0 <= logpos() < size, what="the "
                         "truncation seen")
                truncs += 1
                starts.append(n)
            elif r < 0.02:
                renames += 1
                os.rename(log, "%s.%d" % (log, renames))
                fh.close()
                fh = open(log, "ab", buffering=0)
                starts.append(n)
            if time.monotonic() >= next_kill:
                victim = t if rnd.random() < 0.5 else b
                if victim is t:
                    t.stop(signal.SIGKILL)
                    t.start()
                else:
                    b.kill9()
                    b.start()
                kills += 1
                next_kill = time.monotonic() + rnd.uniform(0.3, 1.5)
            time.sleep(rnd.uniform(0, 0.01))
        fh.close()
        assert kills >= 5 and renames >= 2 and truncs >= 2, \
            (kills, renames, truncs)
        sizes = lambda: {p: os.path.getsize(p) for p in
                         [os.path.join(work, x) for x in os.listdir(work)]
                         if re.search(r"/c\.log(\.\d+)?$", p)}
        wait_for(lambda: all(read_pos(pos).get(p, (-1,))[0] == s for p, s in
                             sizes().items()), timeout=60, what="all acked")
        assert t.stop() == 0
        assert b.stop() == 0
        mine = [int(m.split()[1]) for _t, m in spool_msgs(spool)]
        assert sorted(mine) == list(range(n)), \
            "%d lines of %d, %d distinct" % (len(mine), n, len(set(mine)))
        bounds = starts + [n]
        for g in range(len(bounds) - 1):
            seg = [x for x in mine if bounds[g] <= x < bounds[g + 1]]
            assert seg == list(range(bounds[g], bounds[g + 1])), \
                "content %d out of order" % g
    finally:
        b.cleanup()


def test_copytruncate_same_ranges_not_taken_for_resends(work, tails):
    """After copytruncate the new lines sit at the byte ranges of old
    ones; their batches must not get the old batches' chunk ids, which
    lf-buffer's dedup window would take for resends and drop.  Checked
    with a truncation seen while running, and one while lf-tail was down
    (the file then shorter than its position), each followed by the same
    bytes at the same offsets, and across a restart (the epoch kept in
    the journal)."""
    spool = os.path.join(work, "spool")
    b = Lfb(work, [spool], ["--flush-mode", "immediate"]).start()
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    args = ["-t", "t", "--read-from-head", "--pos-file", pos, "--to",
            "unix:" + b.sock, log]

    def logpos():
        return read_pos(pos).get(log, (-1,))[0]

    try:
        t = tail(tails, work, args, out=False).start()
        append(log, "same\n")
        wait_for(lambda: logpos() == 5, what="the first line acked")
        append(log, "same\n")
        wait_for(lambda: logpos() == 10, what="the second line acked")
        # truncated while running: [0, 5) again
        os.truncate(log, 0)
        wait_for(lambda: logpos() == 0, what="the truncation seen")
        append(log, "same\n")
        wait_for(lambda: logpos() == 5, what="the third line acked")
        append(log, "same\n")
        wait_for(lambda: logpos() == 10, what="the fourth line acked")
        assert t.stop() == 0
        # truncated while down: shorter than the position
        os.truncate(log, 0)
        append(log, "same\n")
        t.start()
        wait_for(lambda: logpos() == 5, what="the fifth line acked")
        # a restart keeps the epoch: nothing is stored twice either
        assert t.stop() == 0
        t.start()
        append(log, "same\n")
        wait_for(lambda: logpos() == 10, what="the sixth line acked")
        assert t.stop() == 0
        assert b.stop() == 0
        assert [m for _t, m in spool_msgs(spool)] == ["same"] * 6
    finally:
        b.cleanup()


def test_multiline_held_record_not_passed_by_the_position(work, tails):
    """A multiline record held by the parser ends the batch before it:
    TERM saves a position before it, and the next run emits it whole,
    once."""
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, "S one\n  a\nS two\n  b\n")
    args = ["-t", "t", "--read-from-head", "--pos-file", pos, "-f",
            "multiline", "--format-firstline", "/^S/",
            "--format1", r"/^S (?<m>.*)/", log]
    t = tail(tails, work, args).start()
    wait_for(lambda: len(t.events()) >= 1, what="the first record")
    assert t.stop() == 0
    assert read_pos(pos)[log][0] == len("S one\n  a\n")
    t.start()
    append(log, "S three\n")
    wait_for(lambda: len(t.events()) >= 2, what="the second record")
    time.sleep(0.3)
    assert [r["m"] for _t, _ts, r in t.events()] == ["one\n  a", "two\n  b"]
    t.stop()


def test_multiline_flush_interval(work, tails):
    """--multiline-flush-interval (Fluentd's multiline_flush_interval):
    the last record, held with no first line after it, goes out once no
    line came for that long, never sooner, whole, and its position is
    saved past it; the next run does not emit it again."""
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    args = ["-t", "t", "--read-from-head", "--pos-file", pos, "-f",
            "multiline", "--format-firstline", "/^S/",
            "--format1", r"/^S (?<m>.*)/",
            "--multiline-flush-interval", "1", log]
    open(log, "wb").close()
    t = tail(tails, work, args).start()
    t0 = time.monotonic()
    append(log, "S one\n  a\nS two\n  b\n")
    wait_for(lambda: len(t.events()) >= 2, what="the held record flushed")
    # the lines were read after t0: the flush cannot come before 1 s
    assert time.monotonic() - t0 >= 1.0
    assert [r["m"] for _t, _ts, r in t.events()] == ["one\n  a", "two\n  b"]
    size = os.path.getsize(log)
    wait_for(lambda: read_pos(pos).get(log, (0,))[0] == size,
             what="the position past the flushed record")
    assert t.stop() == 0
    t.start()
    append(log, "S three\n")
    wait_for(lambda: len(t.events()) >= 3, what="the third record")
    assert [r["m"] for _t, _ts, r in t.events()] == ["one\n  a", "two\n  b",
                                                     "three"]
    assert t.stop() == 0


def _tail_once(args):
    """lf-tail to the end of its files (--exit-on-eof): the records."""
    rc, out, err = conftest.run("lf-tail", ["-t", "t", "--read-from-head",
                                            "--exit-on-eof"] + args)
    assert rc == 0, err
    return [r for _t, _ts, r in stream_events(out)]


def test_from_encoding_converts_and_replaces_as_fluentd(work):
    """--encoding/--from-encoding (in_tail's): each line is converted
    before it is parsed; a byte sequence invalid in the source, or a
    character the target cannot hold, becomes U+FFFD in a Unicode
    target and '?' in another (Ruby's encode with invalid: :replace,
    undef: :replace, which in_tail falls back to)."""
    latin = os.path.join(work, "latin1.log")
    append(latin, b"caf\xe9\tna\xefve\nk:\xc5ngstr\xf6m\n")
    assert _tail_once(["--encoding", "UTF-8", "--from-encoding",
                       "ISO-8859-1", latin]) == [
        {"message": "caf\u00e9\tna\u00efve"},
        {"message": "k:\u00c5ngstr\u00f6m"}]
    # converted before the parser: ltsv reads the converted text
    assert _tail_once(["--encoding", "UTF-8", "--from-encoding",
                       "ISO-8859-1", "-f", "ltsv", latin])[1] == {
        "k": "\u00c5ngstr\u00f6m"}
    sjis = os.path.join(work, "sjis.log")
    # "日本語 ログ", then an invalid lead byte before a space
    append(sjis, "日本語 ログ\n".encode("shift_jis") + b"a\x81 b\n")
    assert _tail_once(["--encoding", "UTF-8", "--from-encoding",
                       "Shift_JIS", sjis]) == [
        {"message": "日本語 ログ"}, {"message": "a\ufffd b"}]
    # a target without those characters: '?', one per character
    recs = _tail_once(["--encoding", "ISO-8859-1", "--from-encoding",
                       "Shift_JIS", sjis])
    assert [r["message"] for r in recs] == ["??? ??", "a? b"]
    # --encoding alone names the bytes and converts nothing (Fluentd
    # 1.19, #5010)
    raw = conftest.run("lf-tail", ["-t", "t", "--read-from-head",
                                   "--exit-on-eof", "--encoding", "UTF-8",
                                   sjis])
    assert raw[0] == 0
    assert "日本語".encode("shift_jis") in raw[1]


def test_usage_errors_encoding_and_msgpack(work):
    log = os.path.join(work, "a.log")
    append(log, "x\n")
    for args, msg in (
            (["--from-encoding", "Shift_JIS"], b"must be given with"),
            (["--encoding", "UTF-16", "--from-encoding", "Shift_JIS"],
             b"not ASCII-compatible"),
            (["--encoding", "UTF-8", "--from-encoding", "NO-SUCH-ENC"],
             b"no conversion"),
            # lib/parse's msgpack takes a whole input, not lines
            (["--format", "msgpack"], b"--format msgpack: not a line format"),
            (["-f", "msgpack"], b"--format msgpack: not a line format")):
        rc, _out, err = conftest.run("lf-tail", ["-t", "t"] + args + [log])
        assert rc == 64 and msg in err, (args, err)


def test_hup_reopens_the_log_usr1_saves(work, tails):
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    lf = os.path.join(work, "lf.log")
    append(log, "x\n")
    t = tail(tails, work, ["-v", "-t", "t", "--read-from-head", "--pos-file",
                           pos, "--log-file", lf, log]).start()
    wait_msgs(t, ["x"])
    os.rename(lf, lf + ".1")
    t.p.send_signal(signal.SIGHUP)
    t.p.send_signal(signal.SIGUSR1)
    wait_for(lambda: read_pos(pos).get(log, (0,))[0] == 2, what="saved")
    append(log, "y\n")
    os.rename(log, log + ".1")
    wait_for(lambda: os.path.exists(lf) and b"rotated" in open(lf, "rb").read(),
             what="a log line in the reopened file")
    assert t.stop() == 0


def test_renamed_and_stopped_before_create_new_file_from_head(work, tails):
    """Rename, then lf-tail stops before the new file is created: the
    name's entry keeps the old inode, so the next run reads the new file
    from its head (not from its end, as a file without an entry)."""
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 3))
    t = tail(tails, work, ["-v", "-t", "t", "--read-from-head", "--pos-file",
                           pos, log]).start()
    wait_msgs(t, expect("a", 0, 3))
    old = os.stat(log).st_ino
    os.rename(log, log + ".1")
    wait_for(lambda: b"rotated" in t.err(), what="the rotation seen")
    assert t.stop() == 0
    assert read_pos(pos)[log][1] == old
    append(log, lines("b", 0, 2))
    t.args.remove("--read-from-head")
    t.start()
    wait_msgs(t, expect("a", 0, 3) + expect("b", 0, 2))
    t.stop()


def test_limit_recently_modified(work, tails):
    old, new = os.path.join(work, "old.log"), os.path.join(work, "new.log")
    append(old, "old\n")
    append(new, "new\n")
    t0 = time.time() - 3600
    os.utime(old, (t0, t0))
    t = tail(tails, work, ["-t", "t", "--read-from-head",
                           "--limit-recently-modified", "60s",
                           os.path.join(work, "*.log")]).start()
    wait_msgs(t, ["new"])
    time.sleep(0.3)
    assert t.messages() == ["new"]
    t.stop()


def test_skip_refresh_on_startup_keeps_positions(work, tails):
    """Nothing is looked for before the first refresh, and the position
    file's entries are kept meanwhile; then the file is resumed."""
    log = os.path.join(work, "a.log")
    pos = os.path.join(work, "pos")
    append(log, lines("a", 0, 4))
    with open(pos, "wb") as f:
        f.write(b"%s\t%016x\t%016x\n" % (log.encode(), len(lines("a", 0, 2)),
                                         os.stat(log).st_ino))
    t = tail(tails, work, ["-t", "t", "--pos-file", pos,
                           "--skip-refresh-on-startup", "--refresh-interval",
                           "1.5", log]).start()
    time.sleep(0.5)
    assert t.messages() == []
    assert read_pos(pos)[log][0] == len(lines("a", 0, 2))
    wait_msgs(t, expect("a", 2, 4))
    t.stop()


def test_open_on_every_update(work, tails):
    log = os.path.join(work, "a.log")
    append(log, "a\n")
    t = tail(tails, work, ["-t", "t", "--read-from-head",
                           "--open-on-every-update", log]).start()
    wait_msgs(t, ["a"])
    fds = lambda: [os.readlink("/proc/%d/fd/%s" % (t.p.pid, n))
                   for n in os.listdir("/proc/%d/fd" % t.p.pid)]
    wait_for(lambda: log not in fds(), what="the file closed between reads")
    append(log, "b\n")
    wait_msgs(t, ["a", "b"])
    t.stop()
