"""End-to-end tests of lib/consume, the consumer side of a spool shared by
lf-send and lf-tdlog, through tests/tools/fakedest: a consumer whose
destination fails in scripted ways (see fakedest.c).

Chunks are written by tests/e2e/lfchunk.py (Python's zlib and msgpack, an
encoder independent of lf's).  fakedest writes every acknowledged chunk to
--log OUT (fsync'd before the ack) and every chunk it is handed to
--attempts FILE with a wall-clock time, which is what these tests read.
"""
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import lfchunk
import conftest
from conftest import REPO, _env, check_no_sanitizer

BIN = os.environ.get("LF_BIN", str(REPO / "build" / "bin"))
FAKEDEST = os.path.normpath(BIN + "/../tests/tools/fakedest")
WAIT = 20           # seconds: generous, the binary may run under ASan


def fakedest_path():
    if not os.access(FAKEDEST, os.X_OK):
        pytest.fail("%s is not built (make units)" % FAKEDEST)
    return FAKEDEST


wait_for = conftest.waiter(WAIT)


class Fake:
    """One fakedest process over a spool, with its own script, OUT and
    attempts files under dir."""

    def __init__(self, spool, dir, name="fd", script=(), args=()):
        self.spool = spool
        self.dir = Path(dir)
        self.out = self.dir / (name + ".out")
        self.att = self.dir / (name + ".att")
        self.errf = self.dir / (name + ".err")
        self.script = self.dir / (name + ".script")
        self.script.write_text("".join(l + "\n" for l in script))
        self.args = [str(a) for a in args]
        self.p = None
        self.err = b""

    def cmd(self):
        return [fakedest_path(), "--script", str(self.script), "--log",
                str(self.out), "--attempts", str(self.att)] + self.args + \
            [self.spool]

    def start(self):
        self.ef = open(self.errf, "wb")
        self.p = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.ef,
                                  env=_env())
        return self

    def run(self, timeout=WAIT):
        """Run to the end (for --once); returns the exit code."""
        p = subprocess.run(self.cmd(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=_env(), timeout=timeout)
        self.err = p.stderr
        check_no_sanitizer(self.err)
        return p.returncode

    def send(self, sig):
        self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        """Signal, wait, and return the exit code; stderr is checked."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.ef.close()
        self.err = self.errf.read_bytes()
        if sig != signal.SIGKILL:
            check_no_sanitizer(self.err)
        return rc

    def delivered(self):
        """[(id hex, tag, count)] from OUT, in order."""
        if not self.out.exists():
            return []
        res = []
        for line in self.out.read_text().splitlines():
            i, tag, n = line.split(" ")
            res.append((i, tag, int(n)))
        return res

    def attempts(self):
        """[(time, id hex, outcome)] from the attempts file, in order."""
        if not self.att.exists():
            return []
        res = []
        for line in self.att.read_text().splitlines():
            t, i, o = line.split(" ")
            res.append((float(t), i, o))
        return res


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


@pytest.fixture
def procs():
    """Fake processes to kill whatever happens to the test."""
    started = []
    yield started
    for f in started:
        if f.p is not None and f.p.poll() is None:
            f.p.kill()
            f.p.wait()


def fake(procs, spool, tmp_path, **kw):
    f = Fake(spool, tmp_path, **kw)
    procs.append(f)
    return f


def write_n(spool, n, tag="app.log", per=1):
    """n chunks in FIFO order; returns their ids (hex), oldest first."""
    ids = []
    for i in range(n):
        name = lfchunk.write_chunk(
            spool, "%s.%d" % (tag, i),
            [(1700000000 + i, {"i": i, "k": j}) for j in range(per)])
        ids.append(name.split(".")[1])
    return ids


def ids_of(delivered):
    return [d[0] for d in delivered]


def new_names(spool):
    return lfchunk.list_chunks(spool, "new")


def dead_names(spool):
    return lfchunk.list_chunks(spool, "dead")


def retry_line(spool):
    p = os.path.join(spool, "state", "retry")
    return open(p).read() if os.path.exists(p) else None


def retry_steps(spool):
    line = retry_line(spool)
    if not line or not line.startswith("start="):
        return None
    return int(line.split(" ")[1].split("=")[1])


NOJITTER = ["--retry-randomize=false"]


# ---------------------------------------------------------------------------
# Delivery, order, deletion
# ---------------------------------------------------------------------------

def test_fifo_order_and_ok_deletes(spool, tmp_path, procs):
    # Written newest first: the order is the seal time in the name, not
    # the order of the directory.
    ids = []
    for i in range(30):
        name = lfchunk.write_chunk(spool, "t.%d" % i,
                                   [(1700000000, {"i": i})] * (i % 3 + 1),
                                   seal_us=1700000000000000 + (30 - i) * 1000)
        ids.append((name.split(".")[1], "t.%d" % i, i % 3 + 1))
    ids.reverse()
    f = fake(procs, spool, tmp_path)
    f.args = ["--once"]
    assert f.run() == 0, f.err
    assert f.delivered() == ids
    assert new_names(spool) == [] and dead_names(spool) == []
    assert f.err == b""


def test_chunks_in_flight_at_once(spool, tmp_path, procs):
    write_n(spool, 4)
    f = fake(procs, spool, tmp_path, script=["delay-ms 400"] * 4,
             args=["--once", "--flush-thread-count", "4"])
    assert f.run() == 0, f.err
    t = [a[0] for a in f.attempts()]
    assert len(t) == 4 and len(f.delivered()) == 4
    # all four handed over before the first answer came back
    assert max(t) - min(t) < 0.3, t


def test_one_at_a_time_by_default(spool, tmp_path, procs):
    write_n(spool, 3)
    f = fake(procs, spool, tmp_path, script=["delay-ms 200"] * 3,
             args=["--once"])
    assert f.run() == 0, f.err
    t = [a[0] for a in f.attempts()]
    assert t[1] - t[0] >= 0.19 and t[2] - t[1] >= 0.19, t


# ---------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------

def test_retry_exponential_schedule_and_fifo(spool, tmp_path, procs):
    a, b = write_n(spool, 2)
    f = fake(procs, spool, tmp_path, script=["retry down"] * 4,
             args=["--retry-wait", "0.1"] + NOJITTER).start()
    wait_for(lambda: len(f.delivered()) == 2, what="two deliveries")
    assert f.stop() == 0, f.err
    att = f.attempts()
    assert [x[1] for x in att] == [a] * 5 + [b]          # FIFO kept
    assert [x[2] for x in att] == ["retry"] * 4 + ["ok", "ok"]
    gaps = [att[i + 1][0] - att[i][0] for i in range(4)]
    for gap, want in zip(gaps, [0.1, 0.2, 0.4, 0.8]):
        assert want * 0.95 <= gap <= want + 0.4, gaps
    assert ids_of(f.delivered()) == [a, b]
    assert b"retry_times=3" in f.err and b"down" in f.err
    assert retry_line(spool) == "none\n"       # success reset the state


def test_retry_periodic_schedule(spool, tmp_path, procs):
    write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["retry down"] * 3,
             args=["--retry-type", "periodic", "--retry-wait", "0.2"] +
             NOJITTER).start()
    wait_for(lambda: len(f.delivered()) == 1, what="delivery")
    assert f.stop() == 0
    t = [x[0] for x in f.attempts()]
    gaps = [t[i + 1] - t[i] for i in range(3)]
    for gap in gaps:
        assert 0.19 <= gap <= 0.6, gaps


def test_fail_goes_to_dead_with_reason(spool, tmp_path, procs):
    ids = write_n(spool, 3)
    f = fake(procs, spool, tmp_path, script=["ok", "fail 400 bad request"],
             args=["--once"])
    assert f.run() == 0, f.err
    assert ids_of(f.delivered()) == [ids[0], ids[2]]
    dead = dead_names(spool)
    assert [d.split(".")[1] for d in dead] == [ids[1]]
    assert lfchunk.read_reason(spool, dead[0]) == "400 bad request"
    # the dead letter is the chunk itself, intact
    c = lfchunk.read_chunk(os.path.join(spool, "dead", dead[0]))
    assert c["head_ok"] and c["body_ok"] and c["tag"] == "app.log.1"
    assert new_names(spool) == []


@pytest.mark.parametrize("max_times", [0, 2])
def test_retry_max_times_then_dead_letter(spool, tmp_path, procs, max_times):
    a, b = write_n(spool, 2)
    # a fails max_times + 1 times, then b max_times times
    f = fake(procs, spool, tmp_path,
             script=["retry conn refused"] * (2 * max_times + 1),
             args=["--retry-wait", "0.05", "--retry-max-times", max_times] +
             NOJITTER).start()
    wait_for(lambda: dead_names(spool) and f.delivered(), what="dead + ok")
    assert f.stop() == 0, f.err
    dead = dead_names(spool)
    assert [d.split(".")[1] for d in dead] == [a]
    assert lfchunk.read_reason(spool, dead[0]) == \
        "retry limit reached after %d retries: conn refused" % max_times
    att = f.attempts()
    assert [x[1] for x in att].count(a) == max_times + 1
    # only the failing chunk is given up, and the next starts afresh: b
    # survives as many failures and is delivered
    assert [x[1] for x in att].count(b) == max_times + 1
    assert ids_of(f.delivered()) == [b]
    assert new_names(spool) == []
    assert retry_line(spool) == "none\n"


def test_retry_forever_never_dead_letters(spool, tmp_path, procs):
    write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["retry down"] * 8,
             args=["--retry-forever", "--retry-max-times", "1",
                   "--retry-timeout", "0.2", "--retry-wait", "0.02",
                   "--retry-max-interval", "0.05"] + NOJITTER).start()
    wait_for(lambda: f.delivered(), what="delivery")
    assert f.stop() == 0
    assert len(f.attempts()) == 9
    assert dead_names(spool) == []


def test_retry_timeout_dead_letters(spool, tmp_path, procs):
    write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["retry down"] * 20,
             args=["--retry-timeout", "0.5", "--retry-wait", "0.1"] +
             NOJITTER).start()
    wait_for(lambda: dead_names(spool), what="dead letter")
    assert f.stop() == 0
    t = [x[0] for x in f.attempts()]
    # 0, 0.1, 0.3 (next would be 0.7: clamped to the timeout), then the
    # last try at the timeout, 0.5
    assert len(t) == 4, t
    assert 0.45 <= t[-1] - t[0] <= 1.2, t
    reason = lfchunk.read_reason(spool, dead_names(spool)[0])
    assert reason.startswith("retry limit reached after 3 retries: down")


def test_sigusr1_retries_now(spool, tmp_path, procs):
    (a,) = write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["retry down"],
             args=["--retry-wait", "60"]).start()
    wait_for(lambda: len(f.attempts()) == 1, what="first attempt")
    time.sleep(0.3)
    assert len(f.attempts()) == 1          # waiting for 60 s
    f.send(signal.SIGUSR1)
    wait_for(lambda: f.delivered(), timeout=3, what="retry after SIGUSR1")
    assert f.stop() == 0
    assert ids_of(f.delivered()) == [a]


def test_one_probe_while_retrying(spool, tmp_path, procs):
    # A failure with 4 threads: the next attempts are one chunk at a time
    # until one succeeds, then all threads again.
    ids = write_n(spool, 8)
    f = fake(procs, spool, tmp_path,
             script=["delay-ms 100 retry down"] * 4 + ["delay-ms 200"] +
             ["delay-ms 100"] * 7,
             args=["--flush-thread-count", "4", "--retry-wait", "0.1"] +
             NOJITTER).start()
    wait_for(lambda: len(f.delivered()) == 8, what="all delivered")
    assert f.stop() == 0
    att = f.attempts()
    # 4 claimed at once, all fail at 0.1 s; the retry at 0.2 s is one
    # chunk, the oldest, alone for 200 ms; then 4 at once again
    first = [x for x in att if x[0] - att[0][0] < 0.05]
    assert len(first) == 4
    probe = att[4]
    assert probe[1] == ids[0]
    assert probe[0] - att[0][0] >= 0.19, att
    assert att[5][0] - probe[0] >= 0.19, att
    assert att[8][0] - att[5][0] < 0.05, att
    assert sorted(ids_of(f.delivered())) == sorted(ids)


@pytest.mark.parametrize("outcome,args", [
    ("fail nope", []),
    ("retry down", ["--retry-max-times", "0"]),
])
def test_dead_letter_impossible_backs_off(spool, tmp_path, procs, outcome,
                                          args):
    # dead/ removed under a running consumer: the chunk cannot be moved
    # there, so it stays in new/ and is tried again after the retry wait,
    # not in a tight loop.
    (x,) = write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["ok"] + [outcome] * 3,
             args=["--retry-wait", "0.2", "--retry-type", "periodic"] +
             NOJITTER + args).start()
    wait_for(lambda: f.delivered(), what="the first chunk")
    os.rmdir(os.path.join(spool, "dead"))
    (y,) = write_n(spool, 1, tag="stuck")
    wait_for(lambda: len(f.delivered()) == 2, what="the stuck chunk")
    assert f.stop() == 0
    att = [a for a in f.attempts() if a[1] == y]
    assert len(att) == 4, att
    gaps = [att[i + 1][0] - att[i][0] for i in range(3)]
    assert all(g >= 0.19 for g in gaps), gaps
    assert f.err.count(b"cannot move it to dead/") == 3
    assert ids_of(f.delivered()) == [x, y]


# ---------------------------------------------------------------------------
# Corrupt chunks
# ---------------------------------------------------------------------------

def test_corrupt_chunks_are_buried_and_others_delivered(spool, tmp_path,
                                                        procs):
    good = []
    bad = {}
    ev = [(1700000000, {"msg": "x" * 40})]
    for how in lfchunk.CORRUPTIONS:
        good.append(lfchunk.write_chunk(spool, "good", ev).split(".")[1])
        name = lfchunk.write_chunk(spool, "bad", ev, corrupt=how)
        bad[name] = how
    name = lfchunk.write_chunk(spool, "bad", ev, state="S")
    bad[name] = "staged"
    name = lfchunk.write_chunk(spool, "bad", ev, count=2)
    bad[name] = "count"
    good.append(lfchunk.write_chunk(spool, "good", ev).split(".")[1])
    f = fake(procs, spool, tmp_path, args=["--once"])
    assert f.run() == 0, f.err
    assert ids_of(f.delivered()) == good
    assert new_names(spool) == []
    assert sorted(dead_names(spool)) == sorted(bad)
    want = {"flip-body": "checksum", "truncate": "bytes, header says",
            "bad-header-crc": "header checksum", "bad-magic": "magic",
            "short-header": "shorter than its header",
            "staged": "not sealed", "count": "header says 2"}
    for name, how in bad.items():
        reason = lfchunk.read_reason(spool, name)
        assert reason.startswith("corrupt chunk: "), reason
        assert want[how] in reason, (how, reason)
    assert f.err.count(b"moved to dead/") == len(bad)


# root reads a mode 000 file: run without the capabilities that let it
SETPRIV = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
           "--inh-caps", "-dac_override,-dac_read_search"]


def test_unreadable_entry_is_left_in_new(spool, tmp_path, procs):
    # A chunk that cannot be opened (mode 000) is not known to be corrupt:
    # it is neither delivered nor buried, and --once says "try again
    # later".  (Something that is not a file at all goes to dead/:
    # test_spool_files.py.)
    odd = lfchunk.write_chunk(spool, "odd", [(1700000000, {"m": 1})])
    os.chmod(os.path.join(spool, "new", odd), 0)
    ids = write_n(spool, 2)
    f = fake(procs, spool, tmp_path, args=["--once"])
    f.cmd = lambda: SETPRIV + Fake.cmd(f)
    assert f.run() == 75, f.err
    assert ids_of(f.delivered()) == ids
    assert new_names(spool) == [odd]
    assert dead_names(spool) == []
    assert b"left in new/" in f.err


# ---------------------------------------------------------------------------
# --once
# ---------------------------------------------------------------------------

def test_once_exit_codes(spool, tmp_path, procs):
    (a,) = write_n(spool, 1)
    f = fake(procs, spool, tmp_path, script=["retry down"],
             args=["--once", "--retry-wait", "30"])
    assert f.run() == 75
    assert len(f.attempts()) == 1 and f.delivered() == []
    assert len(new_names(spool)) == 1
    assert retry_steps(spool) == 0
    # the retry is not due: nothing is tried
    f.script.write_text("")
    assert f.run() == 75
    assert len(f.attempts()) == 1
    # make it due (the saved line of lib/retry.h) and run again
    now = time.time()
    with open(os.path.join(spool, "state", "retry"), "w") as s:
        s.write("start=%.6f steps=0 next=%.6f reached=0 timedout=0\n"
                % (now - 10, now - 1))
    assert f.run() == 0, f.err
    assert ids_of(f.delivered()) == [a]
    assert retry_line(spool) == "none\n"
    # and an empty spool is drained at once
    assert f.run() == 0


def test_once_with_nothing_ready(spool, tmp_path, procs):
    f = fake(procs, spool, tmp_path, args=["--once"])
    assert f.run() == 0
    assert f.err == b""


# ---------------------------------------------------------------------------
# Restarts, crashes, several consumers
# ---------------------------------------------------------------------------

def test_retry_state_survives_restart(spool, tmp_path, procs):
    (a,) = write_n(spool, 1)
    args = ["--retry-wait", "0.1", "--retry-max-times", "3"] + NOJITTER
    f = fake(procs, spool, tmp_path, name="one",
             script=["retry down"] * 3 + ["hang"], args=args).start()
    wait_for(lambda: len(f.attempts()) == 4, what="three retries and a hang")
    f.stop(signal.SIGKILL)
    assert retry_steps(spool) == 2
    assert new_names(spool) and dead_names(spool) == []
    # One more failure is the third retry, the limit: only if the
    # two steps before the restart were kept.
    g = fake(procs, spool, tmp_path, name="two", script=["retry again"],
             args=args).start()
    wait_for(lambda: dead_names(spool), what="dead letter after restart")
    assert g.stop() == 0
    assert lfchunk.read_reason(spool, dead_names(spool)[0]) == \
        "retry limit reached after 3 retries: again"
    assert len(g.attempts()) == 1


def test_sigterm_waits_for_in_flight(spool, tmp_path, procs):
    (a, b) = write_n(spool, 2)
    f = fake(procs, spool, tmp_path, script=["delay-ms 500"],
             args=["--flush-thread-count", "2"]).start()
    wait_for(lambda: len(f.delivered()) == 1, what="the quick one")
    f.send(signal.SIGTERM)
    wait_for(lambda: f.p.poll() is not None, timeout=5, what="exit")
    assert f.stop() == 0
    assert sorted(ids_of(f.delivered())) == sorted([a, b])
    assert new_names(spool) == []


def test_sigterm_gives_up_on_a_hang(spool, tmp_path, procs):
    (a, b) = write_n(spool, 2)
    f = fake(procs, spool, tmp_path, script=["hang", "delay-ms 100000"],
             args=["--flush-thread-count", "2",
                   "--shutdown-timeout", "0.3"]).start()
    wait_for(lambda: len(f.attempts()) == 2, what="two attempts")
    t0 = time.monotonic()
    assert f.stop() == 0, f.err
    assert time.monotonic() - t0 < 5
    # nothing acknowledged, nothing lost: both still ready
    assert f.delivered() == []
    assert [n.split(".")[1] for n in new_names(spool)] == [a, b]
    assert b"left in new/" in f.err


def test_kill9_mid_delivery_loses_nothing(spool, tmp_path, procs):
    ids = write_n(spool, 3)
    f = fake(procs, spool, tmp_path, name="one", script=["ok", "hang"]).start()
    wait_for(lambda: len(f.attempts()) == 2, what="the hang")
    f.stop(signal.SIGKILL)
    assert ids_of(f.delivered()) == [ids[0]]
    assert [n.split(".")[1] for n in new_names(spool)] == ids[1:]
    g = fake(procs, spool, tmp_path, name="two", args=["--once"])
    assert g.run() == 0, g.err
    assert ids_of(g.delivered()) == ids[1:]
    assert new_names(spool) == []


def test_two_consumers_deliver_each_chunk_once(spool, tmp_path, procs):
    n = 200
    ids = write_n(spool, n)
    rnd = random.Random(1234)
    fakes = []
    for name in ("one", "two"):
        script = []
        for _ in range(n):
            r = rnd.random()
            if r < 0.05:
                script.append("delay-ms %d retry flaky" % rnd.randint(0, 5))
            else:
                script.append("delay-ms %d" % rnd.randint(3, 15))
        fakes.append(fake(procs, spool, tmp_path, name=name, script=script,
                          args=["--flush-thread-count", "2",
                                "--retry-wait", "0.05",
                                "--rescan-interval", "0.2"]))
    for f in fakes:
        f.start()
    total = lambda: sum(len(f.delivered()) for f in fakes)
    wait_for(lambda: total() >= n and not new_names(spool), timeout=60,
             what="all delivered")
    time.sleep(0.3)     # a duplicate would show up now
    for f in fakes:
        assert f.stop() == 0, f.err
    got = [i for f in fakes for i in ids_of(f.delivered())]
    assert len(got) == n, "duplicates: %d" % (len(got) - len(set(got)))
    assert sorted(got) == sorted(ids)
    assert all(f.delivered() for f in fakes), "one consumer did it all"
    assert dead_names(spool) == []


# ---------------------------------------------------------------------------
# Waking up
# ---------------------------------------------------------------------------

def test_inotify_wakes_up_without_rescan(spool, tmp_path, procs):
    (a,) = write_n(spool, 1)
    f = fake(procs, spool, tmp_path,
             args=["--rescan-interval", "3600"]).start()
    wait_for(lambda: f.delivered(), what="the first chunk")
    time.sleep(0.3)                   # idle now, waiting on the loop
    (b,) = write_n(spool, 1, tag="late")
    t0 = time.monotonic()
    wait_for(lambda: len(f.delivered()) == 2, timeout=2,
             what="delivery of a chunk that arrived while idle")
    assert time.monotonic() - t0 < 2
    assert f.stop() == 0
    assert ids_of(f.delivered()) == [a, b]


def test_rescan_finds_a_chunk_released_without_event(spool, tmp_path,
                                                    procs):
    # A claim that dies with its process puts a chunk back without any
    # change to new/, so no inotify event: the rescan finds it.
    x, = write_n(spool, 1)
    hold = fake(procs, spool, tmp_path, name="hold", script=["hang"]).start()
    wait_for(lambda: hold.attempts(), what="the claim")
    y, = write_n(spool, 1, tag="later")
    f = fake(procs, spool, tmp_path, name="main",
             args=["--rescan-interval", "0.3"]).start()
    # it listed x (taken) and y: y delivered means x was passed over
    wait_for(lambda: f.delivered(), what="the free chunk")
    assert ids_of(f.delivered()) == [y]
    hold.stop(signal.SIGKILL)
    wait_for(lambda: len(f.delivered()) == 2, timeout=5, what="rescan")
    assert f.stop() == 0
    assert ids_of(f.delivered()) == [y, x]


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["--retry-wait", "abc"], b"--retry-wait: not a duration"),
    (["--retry-wait", "0"], b"--retry-wait must be greater than 0"),
    (["--retry-type", "linear"], b"--retry-type: must be"),
    (["--retry-exponential-backoff-base", "1"],
     b"--retry-exponential-backoff-base must be greater than 1"),
    (["--retry-max-times", "-1"], b"--retry-max-times: not a whole number"),
    (["--retry-randomize=maybe"], b"--retry-randomize: not a boolean"),
    (["--flush-thread-count", "0"], b"--flush-thread-count must be at least 1"),
    (["--retry-timeout", "1x"], b"--retry-timeout: not a duration"),
])
def test_bad_options_exit_64(spool, args, msg):
    p = subprocess.run([fakedest_path()] + args + [spool],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=_env(), timeout=WAIT)
    assert p.returncode == 64, p.stderr
    assert msg in p.stderr, p.stderr
    check_no_sanitizer(p.stderr)


def test_fluentd_notation_accepted(spool, tmp_path):
    write_n(spool, 1)
    f = Fake(spool, tmp_path, args=[
        "--once", "--retry-wait", "1.5s", "--retry-max-interval", "5m",
        "--retry-timeout", "72h", "--retry-max-times", "17",
        "--retry-exponential-backoff-base", "1.5", "--retry-randomize=false",
        "--retry-forever=no", "--retry-type", "exponential_backoff",
        "--flush-thread-count", "8"])
    assert f.run() == 0, f.err
    assert len(f.delivered()) == 1
