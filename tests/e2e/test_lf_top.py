"""End-to-end tests of lf-top: one plain frame (--once, or stdout not a
terminal) from metrics files written here by hand after
/work/notes/metrics.md, from real spools filled by lf-buffer, and from bad
files; the interactive mode in a pseudo-terminal.

Rates come from two versions of a file and their mtimes, so the tests set
the mtimes (os.utime) and the figures are exact."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import (  # noqa: E402
    T, _env, check_no_sanitizer, packb, run, run_ok, tool,
)

TOP = "lf-top"
COLS = ["NAME", "TOOL", "IN/s", "OUT/s", "QUEUE", "BYTES", "STAGED",
        "OLDEST", "RETRIES", "DEAD"]

HELP = {
    "lf_input_events_total": ("counter", "Events taken."),
    "lf_output_events_total": ("counter", "Events delivered."),
    "lf_output_retries_total": ("counter", "Retries scheduled."),
    "lf_output_dead_chunks_total": ("counter", "Chunks moved to dead/."),
    "lf_spool_queue_chunks": ("gauge", "Chunks ready to deliver."),
    "lf_spool_queue_bytes": ("gauge", "Their bytes."),
    "lf_spool_staged_chunks": ("gauge", "Chunks still filling."),
    "lf_spool_dead_chunks": ("gauge", "Chunks in dead/."),
    "lf_spool_oldest_chunk_age_seconds": ("gauge", "Oldest ready chunk."),
    "lf_server_up": ("gauge", "1 up, 0 down."),
    "lf_server_phi": ("gauge", "Phi accrual value."),
    "lf_server_in_flight_events": ("gauge", "In flight."),
    "lf_server_events_total": ("counter", "Events acked by it."),
    "lf_server_retries_total": ("counter", "Retries."),
}


def esc(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics(name, tool_name, vals=(), spools=(), servers=()):
    """A metrics file as metrics.md has lf's tools write it: vals is
    {family: value}; spools [(path, {family: value})]; servers
    [(addr, standby, {family: value})]."""
    series = {}
    base = 'name="%s",tool="%s"' % (esc(name), esc(tool_name))
    series["lf_build_info"] = [('{%s,version="0.1.0"}' % base, 1)]
    for fam, v in dict(vals).items():
        series.setdefault(fam, []).append(("{%s}" % base, v))
    for path, vs in spools:
        for fam, v in vs.items():
            series.setdefault(fam, []).append(
                ('{%s,spool="%s"}' % (base, esc(path)), v))
    for addr, standby, vs in servers:
        for fam, v in vs.items():
            series.setdefault(fam, []).append(
                ('{%s,server="%s",standby="%s"}' %
                 (base, esc(addr), "true" if standby else "false"), v))
    out = []
    for fam, ss in series.items():
        typ, hlp = HELP.get(fam, ("gauge", "1."))
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (fam, hlp, fam, typ))
        out += ["%s%s %s\n" % (fam, labels, v) for labels, v in ss]
    return "".join(out)


def write(path, text, at=None):
    """Atomically, as the tools do (tmp, rename); at: its mtime."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    if at is not None:
        os.utime(tmp, (at, at))
    os.rename(tmp, path)


def table(out):
    """The frame's table: {name: [cells]} with the status joined last,
    the notes ("error: ..."), and the rows in order."""
    lines = out.decode().splitlines()
    assert lines[0].split() == COLS + ["STATUS"], lines
    rows, order, notes = {}, [], []
    for line in lines[1:]:
        if line.startswith(("error: ", "note: ", "(no lf")):
            notes.append(line)
            continue
        assert not notes, "a row after the notes: %r" % out
        cells = line.split(None, len(COLS))
        if len(cells) == len(COLS):
            cells.append("")
        key = cells[0] if not line.startswith("  ") else "  " + cells[0]
        assert key not in rows, line
        rows[key] = cells[1:]
        order.append(key)
    return rows, notes, order


def top(args, rc=0, env=None, cwd=None):
    r, out, err = run(TOP, ["--once"] + [str(a) for a in args], env=env,
                      cwd=cwd)
    assert r == rc, (r, out, err)
    return out, err


# ---------------------------------------------------------------------------
# Metrics files
# ---------------------------------------------------------------------------

def fwd_file(**over):
    vals = {"lf_input_events_total": 1000, "lf_output_events_total": 900,
            "lf_output_retries_total": 12, "lf_output_dead_chunks_total": 1}
    vals.update(over)
    return metrics(
        "fwd", "lf-send", vals,
        spools=[("/var/spool/lf/fwd", {
            "lf_spool_queue_chunks": 3, "lf_spool_queue_bytes": 1572864,
            "lf_spool_staged_chunks": 1, "lf_spool_dead_chunks": 2,
            "lf_spool_oldest_chunk_age_seconds": 4})],
        servers=[("10.0.0.1:24224", False, {
            "lf_server_up": 1, "lf_server_phi": 0.125,
            "lf_server_in_flight_events": 30,
            "lf_server_events_total": 800, "lf_server_retries_total": 2}),
            ("10.0.0.2:24224", True, {
                "lf_server_up": 0, "lf_server_phi": 16.5,
                "lf_server_in_flight_events": 0,
                "lf_server_events_total": 100,
                "lf_server_retries_total": 7})])


def test_once_tools_servers_and_columns(tmp_path):
    write(tmp_path / "fwd.prom", fwd_file())
    # lf-buffer: two spools, summed; dead from its spools' gauges
    write(tmp_path / "agg-buf.prom", metrics(
        "agg-buf", "lf-buffer", {"lf_input_events_total": 5},
        spools=[(p, {"lf_spool_queue_chunks": n, "lf_spool_queue_bytes": b,
                     "lf_spool_staged_chunks": 1, "lf_spool_dead_chunks": 0,
                     "lf_spool_oldest_chunk_age_seconds": a})
                for p, n, b, a in [("/s/td", 2, 1000, 90), ("/s/file", 5, 24, 3)]]))
    # no spool: dead is the counter of chunks it set aside
    write(tmp_path / "td.prom", metrics(
        "td", "lf-tdlog", {"lf_output_events_total": 0,
                           "lf_output_dead_chunks_total": 4}))
    out, err = top([tmp_path])
    assert err == b""
    rows, notes, order = table(out)
    assert notes == []
    # files by name, each tool's servers under it
    assert order == ["agg-buf", "fwd", "  10.0.0.1:24224", "  10.0.0.2:24224",
                     "td"]
    f = rows["fwd"]
    assert f[:8] == ["lf-send", "-", "-", "3", "1.5MiB", "1", f[6], "12"]
    assert f[8:] == ["2", ""]
    # the age in the file, and the time since it was written
    assert re.match(r"^[45]\.\ds$", f[6]), f
    s1, s2 = rows["  10.0.0.1:24224"], rows["  10.0.0.2:24224"]
    assert s1[0] == "up" and s1[2] == "-" and s1[7] == "2"
    assert s1[9] == "phi 0.12, 30 in flight"
    assert s2[0] == "down" and s2[7] == "7"
    assert s2[9] == "standby, phi 16.50"
    b = rows["agg-buf"]
    assert b[:6] == ["lf-buffer", "-", "-", "7", "1.0KiB", "2"]
    assert re.match(r"^1m3\ds$", b[6]), b        # the oldest of the two
    assert b[7:] == ["-", "0", ""]
    assert rows["td"] == ["lf-tdlog", "-", "-", "-", "-", "-", "-", "-", "4",
                          ""]
    # the columns are aligned: each header word ends where its cells do
    lines = out.decode().splitlines()
    for col in COLS[2:]:
        end = lines[0].index(col) + len(col)
        for line in lines[1:]:
            assert line[end - 1] != " " and line[end:end + 1] in (" ", ""), \
                (col, line)


def test_rates_between_two_versions(tmp_path):
    now = time.time()
    p = tmp_path / "fwd.prom"
    q = tmp_path / "recv.prom"
    write(p, fwd_file(), at=now - 8)
    write(q, metrics("recv", "lf-recv", {"lf_input_events_total": 50000}),
          at=now - 8)
    proc = subprocess.Popen(
        [tool(TOP), "-v", "--once", "--interval", "1.5", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        line = proc.stderr.readline()
        assert b"frame 1: 2 sources" in line, line
        # 5 s later by their mtimes: +5000 in, +2500 out, a server +2500
        text = fwd_file(lf_input_events_total=6000,
                        lf_output_events_total=3400)
        text = text.replace("lf_server_events_total{name=\"fwd\",tool=\"lf-send\","
                            "server=\"10.0.0.1:24224\",standby=\"false\"} 800",
                            "lf_server_events_total{name=\"fwd\",tool=\"lf-send\","
                            "server=\"10.0.0.1:24224\",standby=\"false\"} 3300")
        write(p, text, at=now - 3)
        # a counter that went back: the tool started again, no rate
        write(q, metrics("recv", "lf-recv", {"lf_input_events_total": 10}),
              at=now - 3)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_no_sanitizer(err)
    assert proc.returncode == 0, err
    assert b"frame 2: 2 sources" in err
    rows, notes, _ = table(out)
    assert rows["fwd"][1:3] == ["1000", "500"], rows["fwd"]
    assert rows["  10.0.0.1:24224"][2] == "500"
    assert rows["  10.0.0.2:24224"][2] == "0.0"
    assert rows["recv"][1:3] == ["-", "-"]


def test_rate_takes_the_time_between_versions(tmp_path):
    """The tools write every few seconds, lf-top looks every second: the
    time a rate is over is the one between the two versions (4 s here),
    not between the frames."""
    now = time.time()
    p = tmp_path / "a.prom"
    write(p, metrics("a", "lf-tail", {"lf_input_events_total": 0}), at=now - 6)
    proc = subprocess.Popen(
        [tool(TOP), "-v", "--once", "--interval", "1.5", str(p)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert b"frame 1" in proc.stderr.readline()
        write(p, metrics("a", "lf-tail", {"lf_input_events_total": 123456}),
              at=now - 2)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rows, _, _ = table(out)
    assert rows["a"][1] == "31k"             # 123456 / 4 s


def test_human_units(tmp_path):
    write(tmp_path / "u.prom", metrics(
        "u", "lf-buffer", {"lf_output_retries_total": 1234567},
        spools=[("/s", {"lf_spool_queue_chunks": 123456,
                        "lf_spool_queue_bytes": 3 * 2 ** 30,
                        "lf_spool_staged_chunks": 10000,
                        "lf_spool_dead_chunks": 9999,
                        "lf_spool_oldest_chunk_age_seconds": 3725})]))
    write(tmp_path / "v.prom", metrics(
        "v", "lf-buffer", spools=[("/s", {
            "lf_spool_queue_chunks": 0, "lf_spool_queue_bytes": 1023,
            "lf_spool_oldest_chunk_age_seconds": 2 * 86400 + 3 * 3600 + 59})]))
    write(tmp_path / "w.prom", metrics(
        "w", "lf-buffer", spools=[("/s", {
            "lf_spool_queue_bytes": 15 * 2 ** 20 + 1,
            "lf_spool_oldest_chunk_age_seconds": 0})]))
    rows, _, _ = table(top([tmp_path])[0])
    assert rows["u"][3:9] == ["123k", "3.0GiB", "10k", "1h02m", "1.2M", "9999"]
    assert rows["v"][3:6] == ["0", "1023B", "-"]
    assert rows["v"][6] == "2d03h"
    assert rows["w"][4] == "15MiB" and rows["w"][6] == "0.0s"


def test_stale_files(tmp_path):
    now = time.time()
    counters = {"lf_input_events_total": 1, "lf_output_events_total": 1}
    write(tmp_path / "fresh.prom", metrics(
        "fresh", "lf-recv", counters,
        spools=[("/s", {"lf_spool_oldest_chunk_age_seconds": 4})]),
        at=now - 10)
    write(tmp_path / "old.prom", metrics("old", "lf-recv", counters),
          at=now - 75)
    rows, _, _ = table(top([tmp_path])[0])
    assert rows["fresh"][-1] == ""
    # the oldest chunk was 4 s old when the file was written, 10 s ago
    assert re.match(r"^1[45]\.\ds$", rows["fresh"][6]), rows
    assert re.match(r"^stale, written 1m1\ds ago$", rows["old"][-1]), rows
    # a stale file shows no rates, even when it had some
    proc = subprocess.Popen(
        [tool(TOP), "-v", "--once", "--interval", "1.5", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert b"frame 1" in proc.stderr.readline()
        c2 = {"lf_input_events_total": 101, "lf_output_events_total": 101}
        write(tmp_path / "old.prom", metrics("old", "lf-recv", c2), at=now - 65)
        write(tmp_path / "fresh.prom", metrics("fresh", "lf-recv", c2),
              at=now - 5)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows, _, _ = table(out)
    assert rows["fresh"][1:3] == ["20", "20"]
    assert rows["old"][1:3] == ["-", "-"]
    assert re.match(r"^stale, written 1m\d\ds ago$", rows["old"][-1]), rows


# ---------------------------------------------------------------------------
# Spools
# ---------------------------------------------------------------------------

def fill_spool(spool, n, per_chunk):
    msgs = b"".join(packb(["app.%d" % (i % 2), T + i, {"n": i, "pad": "x" * 50}])
                    for i in range(n))
    run_ok("lf-buffer", ["--chunk-limit-records", per_chunk, spool],
           input_bytes=msgs)


def snapshot(d):
    res = {}
    for root, dirs, files in os.walk(d):
        for f in files:
            st = os.stat(os.path.join(root, f))
            res[os.path.join(root, f)] = (st.st_size, st.st_mtime_ns)
        for x in dirs:
            res[os.path.join(root, x)] = "dir"
    return res


def test_real_spool(tmp_path):
    spool = str(tmp_path / "spools" / "td")
    os.makedirs(os.path.dirname(spool))
    fill_spool(spool, 50, 10)
    st = json.loads(run_ok("lf-spool", ["stat", "--json", spool]))
    assert st["ready"]["chunks"] >= 2
    # one set aside, a retry going on
    dead = sorted(os.listdir(os.path.join(spool, "new")))[-1]
    os.rename(os.path.join(spool, "new", dead), os.path.join(spool, "dead", dead))
    with open(os.path.join(spool, "state", "retry"), "w") as f:
        f.write("start=1700000000.250000 steps=3 next=4000000000.500000 "
                "reached=0 timedout=0\n")
    st = json.loads(run_ok("lf-spool", ["stat", "--json", spool]))
    before = snapshot(spool)

    # lf-buffer's lock held meanwhile: lf-top takes none and waits for none
    lockfd = os.open(os.path.join(spool, "lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        out, err = top([spool])
    finally:
        os.close(lockfd)
    assert err == b""
    rows, notes, _ = table(out)
    r = rows[spool]
    assert r[0] == "spool"
    assert r[1:3] == ["-", "-"]
    assert r[3] == str(st["ready"]["chunks"])
    b = st["ready"]["bytes"]
    assert r[4] == ("%.1fKiB" % (b / 1024) if b < 10 * 1024 else
                    "%.0fKiB" % (b / 1024))
    assert r[5] == "0"
    assert re.match(r"^\d+\.\ds$", r[6]), r
    assert r[7:] == ["3", "1", ""]
    assert snapshot(spool) == before       # read only

    # a folder: its metrics files and the spools in it, by name
    write(str(tmp_path / "spools" / "a.prom"), fwd_file())
    rows, _, order = table(top([tmp_path / "spools"])[0])
    assert order[0] == "fwd" and order[-1] == spool
    assert rows[spool][3] == str(st["ready"]["chunks"])


def test_spool_staged_chunks(tmp_path):
    spool = str(tmp_path / "sp")
    # a running lf-buffer keeps its chunk staged until the flush time
    p = subprocess.Popen([tool("lf-buffer"), "--flush-interval", "1h",
                          "--listen", "unix:" + str(tmp_path / "s"), "--stdin",
                          spool], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env())
    try:
        end = time.monotonic() + 20
        while not os.path.isdir(os.path.join(spool, "state")):
            assert time.monotonic() < end and p.poll() is None
            time.sleep(0.02)
        p.stdin.write(packb(["a", T, {"k": "v"}]))
        p.stdin.flush()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            rows, _, _ = table(top([spool])[0])
            if rows[spool][5] == "1":
                break
            time.sleep(0.05)
        assert rows[spool][3:6] == ["0", "0B", "1"], rows
        assert rows[spool][6] == "0.0s"
    finally:
        p.terminate()
        p.communicate(timeout=30)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_bad_files_each_an_error_line(tmp_path):
    write(tmp_path / "good.prom", fwd_file())
    write(tmp_path / "garbage.prom", "this is not { a metrics file\n")
    write(tmp_path / "huge.prom", "lf_x " + "9" * 70000 + "\n")
    write(tmp_path / "binary.prom", bytes(range(256)) * 4)
    write(tmp_path / "latin1.prom", b'lf_x{name="caf\xe9"} 1\n')
    write(tmp_path / "big.prom", b"# padding\n" * (420 * 1024))
    os.mkfifo(tmp_path / "fifo.prom")
    os.mkdir(tmp_path / "dir.prom")
    write(tmp_path / "ignored.txt", "not looked at")
    write(tmp_path / ".hidden.prom", "neither")
    out, err = top([tmp_path], rc=65)
    assert err == b""
    rows, notes, _ = table(out)
    assert list(rows) == ["fwd", "  10.0.0.1:24224", "  10.0.0.2:24224"]
    d = str(tmp_path) + "/"
    assert notes == [
        "error: %sbig.prom: more than 4194304 bytes: not a metrics file" % d,
        "error: %sbinary.prom: line 1: a NUL byte: not a text file" % d,
        "error: %sdir.prom: not a regular file" % d,
        "error: %sfifo.prom: not a regular file" % d,
        "error: %sgarbage.prom: line 1: not a sample value" % d,
        "error: %shuge.prom: line 1: longer than 65536 bytes" % d,
        "error: %slatin1.prom: line 1: a label value is not UTF-8" % d,
    ]


def test_missing_paths_and_other_metrics(tmp_path):
    other = "# TYPE node_load1 gauge\nnode_load1 0.5\n"
    write(tmp_path / "node.prom", other)
    # in a folder, another exporter's file is passed over
    out, _ = top([tmp_path])
    assert out.decode().splitlines()[1:] == [
        "(no lf metrics files or spools in %s)" % tmp_path]
    # named, it is noted; a missing path is an error (66)
    out, _ = top([tmp_path / "node.prom", tmp_path / "nope.prom"], rc=66)
    assert out.decode().splitlines()[1:] == [
        "(no lf metrics files or spools in %s/node.prom and the rest)" %
        tmp_path,
        "note: %s/node.prom: no lf metrics in it" % tmp_path,
        "error: %s/nope.prom: No such file or directory" % tmp_path]


def test_labels_cannot_drive_the_terminal(tmp_path):
    write(tmp_path / "x.prom", metrics("evil\x1b[2J\x07 name", "lf-\x1b]0;t\x07",
                                       {"lf_input_events_total": 1}))
    out, _ = top([tmp_path])
    assert b"\x1b" not in out and b"\x07" not in out
    rows, _, _ = table(out)
    assert list(rows) == ["evil\\033[2J\\a\\sname"]
    assert rows["evil\\033[2J\\a\\sname"][0] == "lf-\\033]0;t\\a"


def test_default_path(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write(d / "fwd.prom", fwd_file())
    rows, _, _ = table(top([], env={"LF_METRICS_DIR": str(d)})[0])
    assert "fwd" in rows
    p = subprocess.run([tool(TOP)], cwd=d, env={**_env(), "LF_METRICS_DIR": ""},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert "fwd" in table(p.stdout)[0]


def test_usage_help_version():
    out = run_ok(TOP, ["--help"])
    assert out.startswith(b"usage: lf-top ")
    assert re.match(rb"^lf-top \d+\.\d+\.\d+\n$", run_ok(TOP, ["--version"]))
    for bad in (["--nope"], ["--interval", "0"], ["--interval", "x"],
                ["--interval", "5000"], [""]):
        rc, out, err = run(TOP, bad)
        assert rc == 64 and out == b"", (bad, rc, err)
        assert b"lf-top: " in err


# ---------------------------------------------------------------------------
# Interactive, in a pseudo-terminal
# ---------------------------------------------------------------------------

ESC_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Pty:
    def __init__(self, args, rows=30, cols=120):
        self.master, self.slave = pty.openpty()
        self.resize(rows, cols)
        self.before = termios.tcgetattr(self.slave)
        self.p = subprocess.Popen(
            [tool(TOP)] + [str(a) for a in args], stdin=self.slave,
            stdout=self.slave, stderr=self.slave, env=_env(),
            start_new_session=True)
        self.out = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, pred, timeout=20):
        end = time.monotonic() + timeout
        while not pred(self.out):
            left = end - time.monotonic()
            assert left > 0, "no frame: %r" % self.out[-2000:]
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        return self.out

    def finish(self, timeout=20):
        rc = self.p.wait(timeout)
        try:
            while select.select([self.master], [], [], 0.2)[0]:
                data = os.read(self.master, 65536)
                if not data:
                    break
                self.out += data
        except OSError:
            pass
        return rc

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def ptys():
    made = []
    yield lambda *a, **kw: made.append(Pty(*a, **kw)) or made[-1]
    for t in made:
        t.close()


def frames(out):
    return out.count(b"\x1b[1;1H\x1b[2K")


def test_interactive_q_restores_the_terminal(tmp_path, ptys):
    write(tmp_path / "fwd.prom", fwd_file())
    t = ptys(["--interval", "0.2", tmp_path])
    t.read_until(lambda o: b"10.0.0.2:24224" in o)
    assert t.out.startswith(b"\x1b[?1049h\x1b[?25l")
    # raw while it runs: no echo, a key at a time
    now = termios.tcgetattr(t.slave)
    assert not now[3] & (termios.ICANON | termios.ECHO)
    t.read_until(lambda o: frames(o) >= 3)          # redrawn each interval
    assert b"lf-top  " in t.out and b"(q quits)" in t.out
    os.write(t.master, b"q")
    assert t.finish() == 0
    check_no_sanitizer(t.out)
    assert t.out.endswith(b"\x1b[?25h\x1b[?1049l")
    assert termios.tcgetattr(t.slave) == t.before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interactive_signal_restores_the_terminal(tmp_path, ptys, sig):
    write(tmp_path / "fwd.prom", fwd_file())
    t = ptys([tmp_path])
    t.read_until(lambda o: b"fwd" in o)
    assert termios.tcgetattr(t.slave) != t.before
    t.p.send_signal(sig)
    assert t.finish() == 0
    assert t.out.endswith(b"\x1b[?25h\x1b[?1049l")
    assert termios.tcgetattr(t.slave) == t.before


def test_interactive_fits_the_terminal(tmp_path, ptys):
    long = "n" * 100
    write(tmp_path / "fwd.prom", fwd_file())
    write(tmp_path / "a.prom", metrics(long, "lf-recv",
                                          {"lf_input_events_total": 1}))
    t = ptys(["--interval", "0.2", tmp_path], rows=30, cols=250)
    t.read_until(lambda o: long.encode() in o)
    # narrower and shorter: the next frame is cut to fit
    t.resize(6, 70)
    t.p.send_signal(signal.SIGWINCH)
    mark = len(t.out)
    t.read_until(lambda o: frames(o[mark:]) >= 2)
    last = t.out[t.out.rindex(b"\x1b[1;1H\x1b[2K"):]
    texts = [s for s in ESC_RE.split(last) if s]
    assert all(len(s) <= 69 for s in texts), texts
    assert any(s.startswith(b"..nnnn") for s in texts), texts
    assert texts[-1] == b"(more below: a taller terminal shows it)", texts
    assert len(re.findall(rb"\x1b\[(\d+);1H", last)) <= 7
    os.write(t.master, b"q")
    assert t.finish() == 0
    assert termios.tcgetattr(t.slave) == t.before
