"""End-to-end tests of --metrics-file for the consumers (lf-send, lf-tdlog,
lf-file, lf-mysql, lf-exec) and of lf-spool stat --prometheus and check.

Each consumer runs against a real spool and a real sink (the fixtures of
its own tests: fwdserver.py, the td-emulator, files, MariaDB, commands),
and its .prom file is read with a strict parser written here (exposition
format 0.0.4: HELP then TYPE before the samples, each family once, no
series twice, every value a number, the labels name and tool first).
The numbers are compared with what the sink got.  A long
--metrics-interval leaves only the writes at the start and at the exit,
so the final counts in the file prove the write at exit (on TERM too).
"""
import math
import os
import re
import signal
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

# ---- a strict reader of the text exposition format ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"(%s)(?:\{(.*)\})? (\S+)$" % NAME)


def _unescape(s, help=False):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            n = s[i + 1]
            assert n in ("\\n" if help else "\\\"n"), "bad escape in %r" % s
            out.append("\n" if n == "n" else n)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _labels(text):
    labels, pos = [], 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, "bad labels: %r" % text
        labels.append((m.group(1), _unescape(m.group(2))))
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", "bad labels: %r" % text
            pos += 1
    names = [k for k, _ in labels]
    assert len(set(names)) == len(names), "a label twice: %r" % text
    return labels


def _value(v):
    if v in ("NaN", "+Inf", "-Inf"):
        return float(v.replace("+", ""))
    assert re.fullmatch(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", v), v
    return float(v)


def parse_prom(text, tool_name=None, name=None):
    """{family: {"type", "help", "samples": {frozenset(labels): value}}}"""
    assert text.endswith("\n")
    fams, cur = {}, None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            fam, _, help = line[7:].partition(" ")
            assert re.fullmatch(NAME, fam) and fam not in fams, line
            fams[fam] = {"help": _unescape(help, True), "type": None,
                         "samples": {}}
            cur = fam
        elif line.startswith("# TYPE "):
            fam, typ = line[7:].split(" ")
            assert fam == cur and fams[fam]["type"] is None, line
            assert typ in ("counter", "gauge"), line
            fams[fam]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample: %r" % line
            fam = m.group(1)
            assert fam == cur and fams[fam]["type"], \
                "a sample out of its family: %r" % line
            labels = _labels(m.group(2) or "")
            assert [k for k, _ in labels[:2]] == ["name", "tool"], line
            if tool_name:
                assert labels[1][1] == tool_name, line
            if name:
                assert labels[0][1] == name, line
            key = frozenset(labels)
            assert key not in fams[fam]["samples"], "twice: %r" % line
            v = _value(m.group(3))
            if fams[fam]["type"] == "counter":
                assert fam.endswith("_total") and v >= 0, line
            fams[fam]["samples"][key] = v
    return fams


def read_prom(path, **kw):
    with open(path) as f:
        return parse_prom(f.read(), **kw)


def val(fams, fam, **labels):
    """The value of the one sample of fam whose labels include labels."""
    hits = [v for k, v in fams[fam]["samples"].items()
            if all((a, b) in k for a, b in labels.items())]
    assert len(hits) == 1, (fam, labels, fams[fam]["samples"])
    return hits[0]


def out_io(fams):
    return {k: val(fams, "lf_output_%s_total" % k) for k in
            ("events", "bytes", "chunks", "errors", "retries",
             "dead_chunks", "dead_events")}


def check_common(fams, spool=None, typ=None):
    """The families of every consumer, consistent with one another."""
    io = out_io(fams)
    assert val(fams, "fluentbit_output_proc_records_total") == io["events"]
    assert val(fams, "fluentbit_output_proc_bytes_total") == io["bytes"]
    assert val(fams, "fluentbit_output_retries_failed_total") == \
        io["dead_chunks"]
    assert val(fams, "lf_start_time_seconds") <= time.time()
    assert [v for v in fams["lf_build_info"]["samples"].values()] == [1]
    assert "lf_input_events_total" not in fams
    if spool is None:
        assert not any(f.startswith(("lf_spool_", "fluentd_")) for f in fams)
        return io
    assert val(fams, "lf_spool_queue_chunks", spool=spool) == \
        len(lfchunk.list_chunks(spool))
    assert val(fams, "lf_spool_dead_chunks", spool=spool) == \
        len(lfchunk.list_chunks(spool, "dead"))
    assert val(fams, "fluentd_output_status_emit_records", type=typ) == \
        io["events"]
    return io


def body_len(events):
    return len(lfchunk.pack_events(events))


def evs(n, base=0):
    return [((T0 + base + i, 0), {"seq": base + i, "msg": "e%d" % (base + i)})
            for i in range(n)]


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "textfile"
    d.mkdir()
    return str(d)


def start(name, args, env=None):
    r, w = os.pipe()
    p = subprocess.Popen([tool(name), "--notify-fd", str(w)] + args,
                         pass_fds=[w], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=_env(env))
    os.close(w)
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


# ---- lf-file ----

def test_lf_file(spool, mdir, tmp_path):
    """--once: the counts of three chunks written and a corrupt one moved
    to dead/, written at exit (the interval is an hour)."""
    sizes = (5, 7, 9)
    for i, n in enumerate(sizes):
        lfchunk.write_chunk(spool, "app.x", evs(n, 100 * i),
                            seal_us=1000000 + i)
    lfchunk.write_chunk(spool, "app.x", evs(4), corrupt="flip-body",
                        seal_us=2000000)
    prom = os.path.join(mdir, "backup.prom")
    t0 = time.time()
    r, _, err = run("lf-file", ["--once", "--metrics-file", prom,
                                "--metrics-interval", "1h", "--path",
                                str(tmp_path / "out" / "f"), spool])
    assert r == 0, err.decode()
    fams = read_prom(prom, tool_name="lf-file", name="backup")
    io = check_common(fams, spool, "file")
    assert io == {"events": sum(sizes), "chunks": 3, "errors": 0,
                  "retries": 0, "dead_chunks": 1, "dead_events": 0,
                  "bytes": sum(body_len(evs(n, 100 * i))
                               for i, n in enumerate(sizes))}
    assert t0 <= val(fams, "lf_last_event_time_seconds") <= time.time()
    written = sum(os.path.getsize(os.path.join(d, f))
                  for d, _, fs in os.walk(tmp_path / "out") for f in fs)
    assert val(fams, "lf_file_written_bytes_total") == written > 0
    assert val(fams, "lf_spool_dead_chunks", spool=spool) == 1
    assert val(fams, "lf_spool_oldest_chunk_age_seconds", spool=spool) == 0
    assert os.listdir(mdir) == ["backup.prom"]      # no .tmp left
    assert os.stat(prom).st_mode & 0o777 == 0o644


def test_unwritable_metrics_folder(spool, tmp_path):
    """A metrics file that cannot be written: warnings, limited, and the
    chunks are delivered all the same."""
    lfchunk.write_chunk(spool, "app.x", evs(3))
    prom = str(tmp_path / "no" / "such" / "m.prom")
    t0 = time.time()    # the limiter's windows are wall-clock seconds
    p = start("lf-exec", FAST + ["--metrics-file", prom,
                                 "--metrics-interval", "0.01", spool,
                                 "--", "/bin/sh", "-c", "cat >/dev/null"])
    wait_for(lambda: not lfchunk.list_chunks(spool), what="delivery")
    time.sleep(1.5)
    err = stop(p)
    windows = int(time.time()) - int(t0) + 1
    # (the summary at exit names the format: "... suppressed ("%s:
    # cannot write the metrics: %s")", not a warning of its own)
    warns = [ln for ln in err.splitlines()
             if "cannot write the metrics" in ln and "suppressed" not in ln]
    # 100 attempts a second, at most 10 warnings in each second of the
    # wall clock the process lived in
    assert 1 <= len(warns) <= 10 * windows, err
    assert "similar warnings suppressed" in err
    assert not os.path.exists(os.path.dirname(prom))


# ---- lf-exec ----

def test_lf_exec_rewritten_at_term(spool, mdir):
    """A running lf-exec: the file is written at the start, and with the
    final counts at TERM; a refusal (exit 100) is a dead chunk, a retry
    (exit 75) a failed attempt and a scheduled retry."""
    good = [lfchunk.write_chunk(spool, "t", evs(n, 10 * n)) for n in (2, 3)]
    lfchunk.write_chunk(spool, "t", [((T0, 0), {"refuse": 1})] * 4)
    flag = os.path.join(mdir, "..", "failed-once")
    script = ('data=$(cat); case "$data" in *refuse*) exit 100;; esac; '
              '[ -e %s ] || { : > %s; exit 75; }; exit 0' % (flag, flag))
    prom = os.path.join(mdir, "exec.prom")
    p = start("lf-exec", FAST + ["--metrics-file", prom,
                                 "--metrics-interval", "1h", spool,
                                 "--", "/bin/sh", "-c", script])
    try:
        wait_for(lambda: not lfchunk.list_chunks(spool), what="delivery")
        wait_for(lambda: os.path.exists(prom), what="the first write")
        first = read_prom(prom, tool_name="lf-exec", name="exec")
    finally:
        stop(p)
    assert good
    assert out_io(first)["events"] == 0          # the write at the start
    fams = read_prom(prom, tool_name="lf-exec", name="exec")
    io = check_common(fams, spool, "exec")
    assert io["events"] == 5 and io["chunks"] == 2
    assert io["dead_chunks"] == 1 and io["dead_events"] == 4
    assert io["errors"] == 2 and io["retries"] == 1
    assert val(fams, "lf_exec_commands_total") == 4
    assert val(fams, "lf_exec_exits_total", code="0") == 2
    assert val(fams, "lf_exec_exits_total", code="100") == 1
    assert val(fams, "lf_exec_exits_total", code="75") == 1
    assert fams["lf_exec_signals_total"]["samples"] == {}
    assert val(fams, "lf_spool_dead_chunks", spool=spool) == 1
    assert val(fams, "fluentd_output_status_retry_count", type="exec") == 2
    assert val(fams, "lf_start_time_seconds") == \
        val(first, "lf_start_time_seconds")


# ---- lf-send ----

def test_lf_send_spool_servers(spool, mdir, tmp_path):
    from fwdserver import FwdServer
    from test_lf_send import Send, fill, free_port
    fill(spool, 3, 10)
    srv = FwdServer(["ack"])
    spare = "127.0.0.1:%d" % free_port()
    prom = os.path.join(mdir, "fwd.prom")
    s = Send(spool, tmp_path, [
        "--require-ack-response", "--heartbeat-interval", "0.05s",
        "--hard-timeout", "0.5s", "--server", srv.addr + ",name=main",
        "--server", spare + ",standby", "--metrics-file", prom,
        "--metrics-interval", "0.05"])
    try:
        def done():
            if not os.path.exists(prom):    # at the first loop turn
                return False
            f = read_prom(prom, tool_name="lf-send", name="fwd")
            return not lfchunk.list_chunks(spool) and \
                val(f, "lf_server_up", server=spare) == 0 and f
        live = wait_for(done, what="delivery and the spare down")
    finally:
        assert s.stop() == 0
        srv.close()
    assert val(live, "lf_server_events_total", server=srv.addr,
               standby="false") == 30
    fams = read_prom(prom, tool_name="lf-send", name="fwd")
    io = check_common(fams, spool, "forward")
    assert io["events"] == 30 and io["chunks"] == 3 and io["errors"] == 0
    assert val(fams, "lf_server_up", server=srv.addr, standby="false") == 1
    assert val(fams, "lf_server_up", server=spare, standby="true") == 0
    assert val(fams, "lf_server_events_total", server=spare) == 0
    assert val(fams, "lf_server_in_flight_events", server=srv.addr) == 0
    assert val(fams, "lf_server_phi", server=srv.addr) >= 0
    assert sum(srv.chunk_ids().values()) == 3


def test_lf_send_stdin(mdir):
    """stdin mode: the output families and the servers, no spool."""
    from fwdserver import FwdServer
    srv = FwdServer(["ack"])
    data = b"".join(msgpack.packb(["a.b", T0 + i, {"i": i}])
                    for i in range(100))
    prom = os.path.join(mdir, "in.prom")
    try:
        p = subprocess.run([tool("lf-send"), "--require-ack-response",
                            "--server", srv.addr, "--metrics-file", prom,
                            "--metrics-interval", "1h", "-"],
                           input=data, capture_output=True, timeout=WAIT,
                           env=_env())
    finally:
        srv.close()
    check_no_sanitizer(p.stderr)
    assert p.returncode == 0, p.stderr.decode()
    fams = read_prom(prom, tool_name="lf-send", name="in")
    io = check_common(fams)
    assert io["events"] == 100 and io["errors"] == 0 and io["chunks"] >= 1
    assert io["dead_events"] == 0 and io["bytes"] > 0
    assert val(fams, "lf_server_events_total", server=srv.addr) == 100
    assert sum(len(m.events()) for m in srv.msgs) == 100


# ---- lf-tdlog ----

def test_lf_tdlog(spool, mdir, tmp_path):
    from test_lf_tdlog import Emulator, deliver, seqs, state
    emu = Emulator(tmp_path)
    try:
        big = {"k%d" % i: i for i in range(600)}
        emu.table("mdb", "tbl")
        emu.faults({"table": "tbl", "status": 503, "count": 1})
        lfchunk.write_chunk(spool, "td.mdb.tbl", evs(3) + [((T0, 0), big)])
        lfchunk.write_chunk(spool, "td.mdb.tbl", evs(4, 3))
        prom = os.path.join(mdir, "td.prom")
        deliver(emu, spool, "--metrics-file", prom, "--metrics-interval",
                "1h")
        assert seqs(emu.rows("mdb", "tbl")) == list(range(7))
    finally:
        emu.close()
    fams = read_prom(prom, tool_name="lf-tdlog", name="td")
    io = check_common(fams, spool, "tdlog")
    st = state(spool)
    assert io["events"] == 7 and io["chunks"] == 2
    assert io["errors"] == 1 and io["retries"] == 1
    assert io["dead_chunks"] == 0
    assert io["bytes"] == st["bytes"]
    assert val(fams, "lf_tdlog_set_aside_events_total") == 1
    assert val(fams, "lf_tdlog_set_aside_chunks_total") == 1
    assert val(fams, "lf_tdlog_bytes_gzip_total") == st["bytes_gzip"] > 0
    assert val(fams, "lf_tdlog_errors_total", code="503") == 1
    # the set-aside chunk is in dead/, though not moved there by consume
    assert val(fams, "lf_spool_dead_chunks", spool=spool) == 1


# ---- lf-mysql ----

def test_lf_mysql(spool, mdir):
    from mariadb import MariaDB, available
    if not available():
        pytest.skip("no mariadbd")
    from test_lf_mysql import base, seed_tables, write
    db = MariaDB(tcp=False)
    db.start()
    try:
        db.name = "m"
        db.sql("CREATE DATABASE m")
        seed_tables(db, "ok")
        write(spool, "ok", [{"id": i, "category": "ok", "data": i}
                            for i in range(5)])
        write(spool, "nosuch", [{"id": 9, "category": "x", "data": 9}] * 2)
        write(spool, "ok", [{"id": 10 + i, "category": "ok", "data": i}
                            for i in range(3)])
        prom = os.path.join(mdir, "my.prom")
        r, _, err = run("lf-mysql", ["--once", "--metrics-file", prom,
                                     "--metrics-interval", "1h"] +
                        base(db, "data_${category}", "id,category,data",
                             None, "--json-key-names", "data") + [spool],
                        timeout=60)
        check_no_sanitizer(err)
        assert r == 0, err.decode()
        rows = db.rows("SELECT COUNT(*) FROM data_ok", "m")
    finally:
        db.close()
    assert rows == [("8",)]
    fams = read_prom(prom, tool_name="lf-mysql", name="my")
    io = check_common(fams, spool, "mysql_bulk")
    assert io["events"] == 8 and io["chunks"] == 2
    assert io["dead_chunks"] == 1 and io["dead_events"] == 2
    assert io["errors"] == 1
    assert val(fams, "lf_mysql_rows_total") == 8
    assert val(fams, "lf_mysql_statements_total") >= 2
    assert val(fams, "lf_mysql_errors_total", code="1146") == 1


# ---- lf-spool ----

def spool_at(tmp_path, name):
    return lfchunk.make_spool(tmp_path / name)


def test_stat_prometheus(tmp_path):
    a, b = spool_at(tmp_path, "fwd"), spool_at(tmp_path, "td")
    now = int(time.time() * 1e6)
    lfchunk.write_chunk(a, "t", evs(3), seal_us=now - 50 * 10**6)
    lfchunk.write_chunk(a, "t", evs(1))
    lfchunk.write_chunk(b, "t", evs(2), dirname="dead")
    r, out, err = run("lf-spool", ["stat", "--prometheus", a, b + "/"])
    assert r == 0, err.decode()
    fams = parse_prom(out.decode(), tool_name="lf-spool")
    assert sorted(fams) == sorted([
        "lf_spool_queue_chunks", "lf_spool_queue_bytes",
        "lf_spool_staged_chunks", "lf_spool_staged_bytes",
        "lf_spool_dead_chunks", "lf_spool_oldest_chunk_age_seconds"])
    assert val(fams, "lf_spool_queue_chunks", name="fwd", spool=a) == 2
    assert val(fams, "lf_spool_queue_bytes", name="fwd") == \
        sum(os.path.getsize(os.path.join(a, "new", n))
            for n in os.listdir(os.path.join(a, "new")))
    assert 49 < val(fams, "lf_spool_oldest_chunk_age_seconds",
                    name="fwd") < 50 + WAIT
    assert val(fams, "lf_spool_queue_chunks", name="td", spool=b + "/") == 0
    assert val(fams, "lf_spool_dead_chunks", name="td") == 1
    assert val(fams, "lf_spool_oldest_chunk_age_seconds", name="td") == 0
    # a spool that is not there: said, the others printed, exit 66
    r, out, err = run("lf-spool", ["stat", "--prometheus", a,
                                   str(tmp_path / "nosuch")])
    assert r == 66 and b"nosuch" in err
    assert len(parse_prom(out.decode())["lf_spool_queue_chunks"]
               ["samples"]) == 1
    for bad in (["stat", "--prometheus", "--json", a],
                ["ls", "--prometheus", a], ["stat", "--max-age", "1h", a]):
        assert run("lf-spool", bad)[0] == 64


def check(*args):
    r, out, err = run("lf-spool", ["check"] + [str(a) for a in args])
    assert err == b"", err
    lines = out.decode().splitlines()
    assert len(lines) == 1
    return r, lines[0]


def test_check(tmp_path):
    sp = spool_at(tmp_path, "td")
    r, line = check("--max-age", "1h", "--max-dead", "0", sp)
    assert r == 0 and line.startswith("OK: %s: 0 ready chunks" % sp), line
    assert "| ready_chunks=0 " in line
    now = int(time.time() * 1e6)
    lfchunk.write_chunk(sp, "t", evs(2), seal_us=now - (2 * 3600 + 13 * 60)
                        * 10**6)
    lfchunk.write_chunk(sp, "t", evs(2))
    r, line = check("--max-age", "1h", sp)
    assert r == 2, line
    assert line.startswith("CRITICAL: %s: oldest ready chunk is 2h13m" % sp)
    assert "old (limit 1h) | ready_chunks=2 " in line
    r, line = check("--max-age", "3h", "--warn-age", "30m", sp)
    assert r == 1 and line.startswith("WARNING: %s: oldest ready chunk "
                                      "is 2h13m" % sp), line
    assert "(limit 30m)" in line
    assert check("--max-age", "3h", sp)[0] == 0
    # dead chunks
    lfchunk.write_chunk(sp, "t", evs(1), dirname="dead")
    lfchunk.write_chunk(sp, "t", evs(1), dirname="dead")
    r, line = check("--max-dead", "0", "--max-age", "3h", sp)
    assert r == 2 and line.startswith("CRITICAL: %s: 2 dead chunks "
                                      "(limit 0) |" % sp), line
    assert check("--max-dead", "2", sp)[0] == 0
    r, line = check("--warn-dead", "1", "--max-dead", "5", sp)
    assert r == 1 and "2 dead chunks (limit 1)" in line
    # both: the critical reasons, together
    r, line = check("--max-dead", "0", "--max-age", "1h", "--warn-age",
                    "1m", sp)
    assert r == 2 and "2h13m" in line and "2 dead chunks (limit 0)" in line
    # idle: chunks ready and nothing in or out of new/ for a while
    assert check("--max-idle", "10m", sp)[0] == 0
    old = time.time() - 3600
    os.utime(os.path.join(sp, "new"), (old, old))
    r, line = check("--max-idle", "10m", sp)
    assert r == 2 and "no chunk delivered for 1h00m" in line and \
        "with 2 ready (limit 10m)" in line, line
    # UNKNOWN: no spool, or one that cannot be read
    r, line = check("--max-age", "1h", tmp_path / "nosuch")
    assert r == 3 and line.startswith("UNKNOWN: "), line
    os.rename(os.path.join(sp, "dead"), os.path.join(sp, "dead.x"))
    with open(os.path.join(sp, "dead"), "w"):
        pass
    r, line = check("--max-age", "1h", sp)
    assert r == 3 and line.startswith("UNKNOWN: "), line


def test_check_after_delivery(tmp_path):
    """The old chunk delivered: OK again."""
    sp = spool_at(tmp_path, "fl")
    lfchunk.write_chunk(sp, "t", evs(2), seal_us=1000000)
    assert check("--max-age", "1h", sp)[0] == 2
    r, _, err = run("lf-exec", ["--once", sp, "--", "/bin/sh", "-c",
                                "cat >/dev/null"])
    assert r == 0, err.decode()
    r, line = check("--max-age", "1h", "--max-idle", "1m", sp)
    assert r == 0 and "0 ready chunks, oldest 0.0s, 0 dead" in line
