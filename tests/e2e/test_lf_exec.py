"""End-to-end tests of lf-exec: a spool delivered to small shell and
Python commands, one run per chunk.

The contract under test is qmail's: exit 0 is a delivery (the chunk is
deleted), 100 and sysexits 64, 65, 77, 78 a refusal (dead/, with the
command's stderr tail as the reason), and anything else (another code, a
signal, the timeout) a retry, so that no failure loses a chunk.  Commands
write what they receive into files named after LF_CHUNK_ID, so the test
can count every event delivered, and every duplicate.
"""
import json
import os
import random
import signal
import struct
import subprocess
import time

import msgpack
import pytest

import conftest
import lfchunk
from conftest import _env, check_no_sanitizer, run, tool

WAIT = 30
T0 = 1700000000
FAST = ["--retry-wait", "0.05", "--retry-max-interval", "0.2",
        "--retry-randomize=false"]

wait_for = conftest.waiter(WAIT)


_running = []


@pytest.fixture(autouse=True)
def _reap():
    """An lf-exec a failed test left running is killed, not left behind."""
    yield
    while _running:
        p = _running.pop()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=WAIT)


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return str(d)


def evs(n, base=0, **extra):
    res = []
    for i in range(n):
        rec = {"seq": base + i, "msg": "event %d" % (base + i)}
        rec.update(extra)
        res.append(((T0 + base + i, 1000 * i), rec))
    return res


def sh(script):
    """A shell command: lf-exec runs /bin/sh -c script (its $0 lf-exec)."""
    return ["--shell", "--", script]


def argv(spool, cmd, extra):
    """Options (extra, and cmd's up to its "--"), SPOOL, then "--" and the
    command."""
    i = cmd.index("--")
    return FAST + list(extra) + cmd[:i] + [spool] + cmd[i:]


def run_once(spool, cmd, *extra, rc=0):
    r, _, err = run("lf-exec", argv(spool, cmd, ("--once",) + extra))
    assert r == rc, err.decode()
    return err.decode()


def start(spool, cmd, *extra):
    """lf-exec running (--notify-fd says when it watches its signals)."""
    r, w = os.pipe()
    p = subprocess.Popen([tool("lf-exec"), "--notify-fd", str(w)] +
                         argv(spool, cmd, extra), pass_fds=[w],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=_env())
    os.close(w)
    _running.append(p)
    try:
        assert os.read(r, 1) == b"\n"
    finally:
        os.close(r)
    return p


def stop(p, rc=0):
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=WAIT)
    check_no_sanitizer(err)
    assert p.returncode == rc, err.decode()
    return err.decode()


def state(spool):
    with open(os.path.join(spool, "state", "exec")) as f:
        return json.load(f)


def ext_hook(code, data):
    assert code == 0 and len(data) == 8
    return struct.unpack(">II", data)


def stream_messages(data):
    """lf-stream(5) messages as [tag, [(time, record)], options]."""
    u = msgpack.Unpacker(raw=False, strict_map_key=False)
    u.feed(data)
    res = []
    for m in u:
        assert isinstance(m, list) and len(m) == 3, m
        tag, ents, opt = m
        assert isinstance(ents, bytes)
        e = msgpack.Unpacker(ext_hook=ext_hook, raw=False)
        e.feed(ents)
        res.append([tag, [tuple(x) for x in e], opt])
    return res


def outputs(out):
    """{file name: bytes} of what the commands wrote (dotfiles are
    unfinished)."""
    res = {}
    for n in os.listdir(out):
        if not n.startswith("."):
            with open(os.path.join(out, n), "rb") as f:
                res[n] = f.read()
    return res


SAVE = 'cat > "%s/.t.$$" && mv "%s/.t.$$" "%s/$LF_CHUNK_ID.$$"'


def save(out):
    """A command that keeps its whole input, atomically, per run."""
    return SAVE % (out, out, out)


def delivered(out):
    """seq -> times delivered, over every msgpack output."""
    seen = {}
    for data in outputs(out).values():
        for _, ents, _ in stream_messages(data):
            for _, rec in ents:
                seen[rec["seq"]] = seen.get(rec["seq"], 0) + 1
    return seen


# ---- delivery ----

def test_delivered_as_stream(spool, out):
    """Each chunk is one run of the command, with the chunk as one
    PackedForward message on stdin (tag, entries as bin, size); exit 0
    deletes it; the counters say so."""
    names = [lfchunk.write_chunk(spool, "app.a", evs(5)),
             lfchunk.write_chunk(spool, "app.b", evs(3, base=5))]
    assert run_once(spool, sh(save(out))) == ""
    assert lfchunk.list_chunks(spool) == []
    got = outputs(out)
    assert len(got) == 2
    by_id = {n.split(".")[0]: v for n, v in got.items()}
    for name, tag, base, n in ((names[0], "app.a", 0, 5),
                               (names[1], "app.b", 5, 3)):
        msgs = stream_messages(by_id[name.split(".")[1]])
        assert len(msgs) == 1
        assert msgs[0][0] == tag and msgs[0][2] == {"size": n}
        assert [r["seq"] for _, r in msgs[0][1]] == list(range(base, base + n))
        assert msgs[0][1][1][0] == (T0 + base + 1, 1000)
    s = state(spool)
    assert (s["chunks"], s["events"], s["commands_run"]) == (2, 8, 2)
    assert s["exit_codes"] == {"0": 2} and s["dead_letters"] == 0
    assert s["bytes"] == sum(len(v) for v in got.values())


def test_replayable_by_lf_cat(spool, out):
    """The default output is an lf-stream: lf-cat reads it back."""
    lfchunk.write_chunk(spool, "app.a", evs(4))
    run_once(spool, sh(save(out)))
    (data,) = outputs(out).values()
    got = conftest.run_ok("lf-cat", [], data).decode().splitlines()
    assert [json.loads(x)["record"]["seq"] for x in got] == [0, 1, 2, 3]
    assert json.loads(got[0])["tag"] == "app.a"


def test_environment(spool, out, tmp_path):
    """LF_TAG, LF_CHUNK_ID, LF_EVENTS, LF_TIMEKEY and LF_KEY_<NAME> (the
    name upper-cased, made a shell name; str raw, nil empty, others JSON);
    an LF_KEY_ of lf-exec's own environment is not passed on; the rest of
    the environment is."""
    name = lfchunk.write_chunk(
        spool, "app.env", evs(2), timekey=1700000000,
        variables={"category": "a b", "user.id": 42, "none": None,
                   "list": [1, "x"]})
    envf = tmp_path / "env.json"
    script = tmp_path / "env.py"
    script.write_text("import json, os, sys\nsys.stdin.buffer.read()\n"
                      "json.dump({k: v for k, v in os.environ.items() if "
                      "k.startswith('LF_') and k != 'LF_BIN' or k == 'KEEP'}, "
                      "open(sys.argv[1], 'w'))\n")
    r, _, err = run("lf-exec", FAST + ["--once", spool, "--",
                                       "python3", str(script), str(envf)],
                    env={"LF_KEY_STALE": "x", "LF_TAG": "old", "KEEP": "1"})
    assert r == 0, err.decode()
    env = json.loads(envf.read_text())
    assert env == {"LF_TAG": "app.env", "LF_CHUNK_ID": name.split(".")[1],
                   "LF_EVENTS": "2", "LF_TIMEKEY": "1700000000",
                   "LF_KEY_CATEGORY": "a b", "LF_KEY_USER_ID": "42",
                   "LF_KEY_NONE": "", "LF_KEY_LIST": '[1,"x"]',
                   "KEEP": "1"}


def test_no_shell_by_default(spool, out):
    """Without --shell the command and its arguments go to execvp as they
    are: a shell's metacharacters are plain bytes."""
    lfchunk.write_chunk(spool, "app.a", evs(1))
    run_once(spool, ["--", "sh", "-c", 'cat > "$0/x"', out])
    assert list(outputs(out)) == ["x"]
    r, _, err = run("lf-exec", ["--once", spool, "--",
                                "no-such-command-lf-exec"])
    assert r == 78
    assert "no-such-command-lf-exec: not found in PATH" in err.decode()
    r, _, err = run("lf-exec", ["--once", spool])
    assert r == 64 and b"usage" in err
    r, _, err = run("lf-exec", [spool, "--once", "true"])
    assert r == 64 and b"--once: options go before SPOOL" in err


def test_command_stdout(spool, out):
    """The command's stdout goes to /dev/null, or with --command-stdout
    stderr to lf-exec's stderr; its stderr lines are logged (warn)."""
    lfchunk.write_chunk(spool, "app.a", evs(1))
    assert run_once(spool, sh("cat >/dev/null; echo to-stdout")) == ""
    lfchunk.write_chunk(spool, "app.a", evs(1))
    err = run_once(spool, sh("cat >/dev/null; echo to-stdout; "
                             "echo to-stderr >&2"),
                   "--command-stdout", "stderr")
    assert "to-stdout\n" in err
    assert [x for x in err.splitlines() if x.startswith("lf-exec: warn: ")
            and x.endswith("': to-stderr")]


def test_stderr_rate_limited(spool):
    """A command's stderr is logged a line a warning, at most ten a
    second, then a count of the others, so a chatty command cannot flood
    the log."""
    lfchunk.write_chunk(spool, "app.a", evs(1))
    err = run_once(spool, sh("cat >/dev/null; i=0; while [ $i -lt 500 ]; "
                             "do echo line $i >&2; i=$((i+1)); done"))
    lines = [x for x in err.splitlines() if ": line " in x]
    assert 10 <= len(lines) <= 30, err
    assert "similar warnings suppressed" in err
    assert state(spool)["chunks"] == 1


def test_stderr_kept_open_by_a_grandchild(spool, out):
    """A command that exits while what it started keeps writing to its
    stderr is done when it exits: the pipe is drained a bounded amount,
    then closed (the writer gets SIGPIPE, its signals being the
    defaults)."""
    lfchunk.write_chunk(spool, "app.a", evs(2))
    pidf = os.path.join(out, ".pid")
    # 20 lines of its own first: the log's limit is reached whether or
    # not the writer got to run before the command exited (a loaded
    # machine)
    err = run_once(spool, sh("i=0; while [ $i -lt 20 ]; do echo early $i "
                             ">&2; i=$((i+1)); done; "
                             "yes flood >&2 & echo $! > %s; %s"
                             % (pidf, save(out))))
    assert delivered(out) == {0: 1, 1: 1}
    assert "similar warnings suppressed" in err
    pid = int(open(pidf).read())
    wait_for(lambda: not alive(pid), what="the writer to die")


def test_exec_failure_retried(spool, out, tmp_path):
    """A command that cannot be run at a chunk's turn (126: not runnable,
    127: gone) is a temporary failure with the reason, and runs once it
    can again; one missing at the start is a configuration error."""
    script = tmp_path / "cmd"
    script.write_text("#!/bin/sh\n%s\n" % save(out))
    script.chmod(0o755)
    p = start(spool, ["--", str(script)])
    script.chmod(0o644)
    lfchunk.write_chunk(spool, "app.a", evs(2))
    wait_for(lambda: state(spool)["retries"] >= 1, what="a failed run")
    script.chmod(0o755)
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and outputs(out),
             what="the delivery")
    err = stop(p)
    assert "exited 126: cannot run %s: Permission denied" % script in err
    script.unlink()
    r, _, err = run("lf-exec", ["--once", spool, "--", str(script)])
    assert r == 78 and b"No such file or directory" in err


# ---- exit codes ----

@pytest.mark.parametrize("code", [100, 64, 65, 77, 78])
def test_refused_for_good(spool, code):
    """qmail's hard codes: the chunk goes to dead/ at once, the tail of
    the command's stderr (bounded, on one line) as the reason."""
    name = lfchunk.write_chunk(spool, "app.a", evs(3))
    noise = "x" * 10000
    script = ("cat >/dev/null; echo '%s' >&2; printf 'bad record\\n"
              "line 2\\n' >&2; exit %d" % (noise, code))
    run_once(spool, sh(script), "--stderr-tail", "1k")
    assert lfchunk.list_chunks(spool) == []
    assert lfchunk.list_chunks(spool, "dead") == [name]
    reason = lfchunk.read_reason(spool, name)
    assert "exited %d" % code in reason
    assert reason.endswith("bad record\\nline 2")
    assert "\n" not in reason and 1000 < len(reason) < 1300
    s = state(spool)
    assert s["dead_letters"] == 1 and s["retries"] == 0
    assert s["exit_codes"] == {str(code): 1}


@pytest.mark.parametrize("code", [1, 2, 75, 111, 126, 127])
def test_other_codes_retried(spool, out, tmp_path, code):
    """Every other code is temporary: the chunk stays, is run again after
    the backoff, and is delivered once the command succeeds."""
    lfchunk.write_chunk(spool, "app.a", evs(3))
    n = tmp_path / "n"
    script = ('c=$(cat %s 2>/dev/null || echo 0); echo $((c+1)) > %s; '
              'if [ $c -lt 2 ]; then echo "try $c" >&2; exit %d; fi; %s'
              % (n, n, code, save(out)))
    p = start(spool, sh(script))
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and outputs(out),
             what="the delivery")
    err = stop(p)
    assert n.read_text().strip() == "3"
    assert delivered(out) == {0: 1, 1: 1, 2: 1}
    assert "exited %d: try 1" % code in err
    s = state(spool)
    assert s["retries"] == 2 and s["chunks"] == 1
    assert s["exit_codes"] == {str(code): 2, "0": 1}


def test_signal_retried(spool, out, tmp_path):
    """A command killed by a signal is a temporary failure."""
    lfchunk.write_chunk(spool, "app.a", evs(2))
    n = tmp_path / "n"
    script = ('if [ ! -e %s ]; then : > %s; kill -SEGV $$; fi; %s'
              % (n, n, save(out)))
    p = start(spool, sh(script))
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and outputs(out),
             what="the delivery")
    err = stop(p)
    assert "killed by signal 11" in err
    s = state(spool)
    assert s["signals"] == {"11": 1} and s["chunks"] == 1


def test_once_with_failure_exits_75(spool):
    """--once leaves a chunk that failed for now in new/ and says so."""
    name = lfchunk.write_chunk(spool, "app.a", evs(1))
    run_once(spool, sh("exit 1"), rc=75)
    assert lfchunk.list_chunks(spool) == [name]


# ---- timeouts ----

def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_hang_killed_with_its_children(spool, out, tmp_path):
    """A command that hangs is sent SIGTERM at --command-timeout, its
    whole process group with it (a grandchild too), and the chunk is
    retried; the next run delivers it."""
    lfchunk.write_chunk(spool, "app.a", evs(2))
    pids = tmp_path / "pids"
    script = ('if [ ! -e %s ]; then sleep 1000 & echo $! > %s; '
              'sleep 1000; fi; %s' % (pids, pids, save(out)))
    t0 = time.monotonic()
    p = start(spool, sh(script), "--command-timeout", "0.5")
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and outputs(out),
             what="the delivery")
    err = stop(p)
    assert time.monotonic() - t0 >= 0.5
    grandchild = int(pids.read_text())
    wait_for(lambda: not alive(grandchild), what="the grandchild killed")
    assert "timed out after 0.5s (killed with SIGTERM)" in err
    s = state(spool)
    assert s["timeouts"] == 1 and s["chunks"] == 1


def test_term_ignored_then_killed(spool, out, tmp_path):
    """A command that ignores SIGTERM gets SIGKILL after --kill-grace."""
    lfchunk.write_chunk(spool, "app.a", evs(2))
    mark = tmp_path / "mark"
    script = ("if [ ! -e %s ]; then : > %s; trap '' TERM; "
              "while :; do sleep 0.05; done; fi; %s" % (mark, mark, save(out)))
    p = start(spool, sh(script), "--command-timeout", "0.3",
              "--kill-grace", "0.3")
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and outputs(out),
             what="the delivery")
    err = stop(p)
    assert "killed with SIGKILL" in err


def test_never_reads_stdin(spool, out):
    """A command that never reads a chunk larger than any pipe holds
    stalls only itself: another chunk in flight is delivered meanwhile,
    and the stuck one is killed at the timeout and retried."""
    big = [((T0, 0), {"seq": i, "pad": "p" * 1000}) for i in range(3000)]
    lfchunk.write_chunk(spool, "stuck", big)
    lfchunk.write_chunk(spool, "app.b", evs(2, base=5000))
    marker = os.path.join(out, ".stuck")
    script = ('if [ "$LF_TAG" = stuck ] && [ ! -e %s ]; then : > %s; '
              'exec sleep 1000; fi; %s' % (marker, marker, save(out)))
    p = start(spool, sh(script), "--flush-thread-count", "2",
              "--command-timeout", "3")
    t0 = time.monotonic()
    wait_for(lambda: len(outputs(out)) == 1, what="the other chunk")
    assert time.monotonic() - t0 < 2.5, "the stuck command held it back"
    wait_for(lambda: lfchunk.list_chunks(spool) == [] and
             len(outputs(out)) == 2, what="the stuck chunk, retried")
    stop(p)
    seen = delivered(out)
    assert len(seen) == 3002 and set(seen.values()) == {1}
    assert state(spool)["timeouts"] == 1


def test_stop_waits_then_kills(spool, out):
    """SIGTERM waits for the commands in flight; past --shutdown-timeout
    their group is killed and the chunk stays in new/ for the next run."""
    name = lfchunk.write_chunk(spool, "app.a", evs(1))
    mark = os.path.join(out, ".running")
    p = start(spool, sh(": > %s; exec sleep 1000" % mark),
              "--shutdown-timeout", "0.3")
    wait_for(lambda: os.path.exists(mark), what="the command")
    err = stop(p, rc=0)
    assert "no answer" in err
    assert lfchunk.list_chunks(spool) == [name]


# ---- --path-arg ----

def test_path_arg(spool, out, tmp_path):
    """--path-arg: the events in a file whose path is the last argument
    (stdin is /dev/null), the file removed after the run; a file left by
    a killed lf-exec (its pid gone) is removed at the start."""
    lfchunk.write_chunk(spool, "app.a", evs(3))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(spool, "tmp", ".lf-exec.%d.x" % dead.pid)
    open(stale, "w").close()
    mine = os.path.join(spool, "tmp", ".lf-exec.%d.y" % os.getpid())
    open(mine, "w").close()
    script = ('test -f "$1" && test ! -s /dev/stdin && '
              'cp "$1" "%s/$LF_CHUNK_ID"; echo "$1" > "%s/.path"'
              % (out, out))
    run_once(spool, ["--path-arg", "--shell", "--", script])
    got = outputs(out)
    assert len(got) == 1
    assert [r["seq"] for _, r in stream_messages(
        list(got.values())[0])[0][1]] == [0, 1, 2]
    path = open(os.path.join(out, ".path")).read().strip()
    assert os.path.dirname(path) == os.path.join(spool, "tmp")
    assert not os.path.exists(path) and not os.path.exists(stale)
    assert os.path.exists(mine)
    # without a shell: the path after the given arguments
    lfchunk.write_chunk(spool, "app.a", evs(1))
    run_once(spool, ["--path-arg", "--tmp-dir", str(tmp_path), "--", "sh",
                     "-c", 'cp "$1" "$0"', os.path.join(out, "copy")])
    assert len(stream_messages(outputs(out)["copy"])[0][1]) == 1


def test_input_cut_short_is_no_delivery(spool, out):
    """A chunk that cannot be read while it is fed to the command is never
    counted delivered, even if the command exits 0 on what it got: the
    chunk stays and is run again."""
    name = lfchunk.write_chunk(spool, "app.a", evs(3))
    # preads of the chunk: 1 and 2 check it (consume), 3 feeds the command
    r, _, err = run("lf-exec", FAST + ["--once", spool, "--", "sh", "-c",
                                       "cat > /dev/null"],
                    env=conftest.fault_env("pread@.chunk:3:EIO"))
    assert r == 75, err.decode()
    assert "cannot read %s for sh: Input/output error" % name in \
        err.decode()
    assert lfchunk.list_chunks(spool) == [name]
    s = state(spool)
    assert (s["chunks"], s["retries"], s["exit_codes"]) == (0, 1, {"0": 1})
    # the retry state is kept: --once exits 75 until the retry is due
    wait_for(lambda: run("lf-exec", argv(spool, sh(save(out)),
                                         ["--once"]))[0] == 0,
             what="the retry")
    assert delivered(out) == {0: 1, 1: 1, 2: 1}


def test_path_arg_file_not_written(spool, out):
    """--path-arg on a full disk: the chunk is retried, the command not
    run, no file left behind."""
    name = lfchunk.write_chunk(spool, "app.a", evs(3))
    r, _, err = run("lf-exec", FAST + ["--once", "--path-arg", spool, "--",
                                       "true"],
                    env=conftest.fault_env("write@.lf-exec.:1:ENOSPC"))
    assert r == 75, err.decode()
    assert "tmp: cannot write the events for true: No space left" in \
        err.decode()
    assert lfchunk.list_chunks(spool) == [name]
    assert os.listdir(os.path.join(spool, "tmp")) == []
    assert state(spool)["commands_run"] == 0


# ---- formats ----

def test_format_json(spool, out):
    """--format json: lib/format's lines (the record as JSON), with keys
    injected as Fluentd's <inject>."""
    lfchunk.write_chunk(spool, "app.a", evs(3))
    run_once(spool, sh(save(out)), "--format", "json",
             "--include-tag-key")
    (data,) = outputs(out).values()
    lines = [json.loads(x) for x in data.decode().splitlines()]
    assert lines == [{"seq": i, "msg": "event %d" % i, "tag": "app.a"}
                     for i in range(3)]


def test_format_large_chunk_bounded(spool, out):
    """A formatted chunk larger than a read block goes through whole,
    in order."""
    n = 20000
    lfchunk.write_chunk(spool, "app.a", [((T0, 0), {"seq": i, "p": "x" * 40})
                                         for i in range(n)])
    run_once(spool, sh(save(out)), "--format", "csv", "--fields", "seq",
             "--force-quotes=false")
    (data,) = outputs(out).values()
    assert data.decode().splitlines() == [str(i) for i in range(n)]


# ---- several in flight ----

def test_several_in_flight(spool, out, tmp_path):
    """--flush-thread-count N runs up to N commands at once."""
    for i in range(8):
        lfchunk.write_chunk(spool, "app.a", evs(1, base=i))
    log = tmp_path / "log"
    script = ('echo "s $(date +%%s.%%N)" >> %s; sleep 0.4; '
              'echo "e $(date +%%s.%%N)" >> %s; %s' % (log, log, save(out)))
    run_once(spool, sh(script), "--flush-thread-count", "4")
    ev = sorted((float(t), k) for k, t in
                (x.split() for x in log.read_text().splitlines()))
    cur = most = 0
    for _, k in ev:
        cur += 1 if k == "s" else -1
        most = max(most, cur)
    assert 2 <= most <= 4
    assert delivered(out) == {i: 1 for i in range(8)}


# ---- crashes ----

def test_kill9_at_many_instants(spool, out):
    """lf-exec killed -9 at many seeded instants while commands run:
    after the last restart every event has been delivered at least once;
    duplicates (a command that finished before the chunk's deletion was
    recorded) are counted, and bounded by the kills."""
    rng = random.Random(12)
    n, per = 150, 10
    for i in range(n):
        lfchunk.write_chunk(spool, "app.k", evs(per, base=i * per))
    script = 'sleep 0.0$(( $(od -An -N1 -tu1 /dev/urandom) %% 5 )); %s' % \
        save(out)
    kills = 0
    while lfchunk.list_chunks(spool) and kills < 12:
        p = start(spool, sh(script), "--flush-thread-count", "3")
        time.sleep(rng.uniform(0.02, 0.25))
        p.kill()
        p.communicate(timeout=WAIT)
        kills += 1
    assert kills >= 6
    run_once(spool, sh(script), "--flush-thread-count", "3")
    assert lfchunk.list_chunks(spool) == []
    seen = delivered(out)
    assert set(seen) == set(range(n * per))
    dups = sum(v - 1 for v in seen.values()) // per
    print("kills %d, chunks delivered twice or more: %d" % (kills, dups))
    assert dups <= kills * 3


def test_command_dies_with_lf_exec(spool, out):
    """A command in flight gets SIGKILL when lf-exec is killed -9
    (PR_SET_PDEATHSIG): it does not go on with a chunk that the next
    lf-exec runs again."""
    name = lfchunk.write_chunk(spool, "app.a", evs(1))
    pidf = os.path.join(out, ".pid")
    p = start(spool, ["--", "sh", "-c", 'echo $$ > "$0"; exec sleep 1000',
                      pidf])
    wait_for(lambda: os.path.exists(pidf) and open(pidf).read().strip(),
             what="the command")
    pid = int(open(pidf).read())
    assert alive(pid)
    p.kill()
    p.communicate(timeout=WAIT)
    wait_for(lambda: not alive(pid), timeout=5, what="the command to die")
    assert lfchunk.list_chunks(spool) == [name]
