"""End-to-end tests of lf-mysql: spools (written by lfchunk, independent
of lf) delivered into a real MariaDB (Debian's mariadbd in a temporary
directory, tests/e2e/mariadb.py), checked with the mariadb client.

One server serves the whole module (its start is the cost); each test
has a database of its own.  The claims: the seed's storage host (rows
per category table, one per id, the JSON column holding the record,
re-sends updating), every option's SQL, errors classed (a permanent one
is a dead letter with the server's text, a lost server is retried with
nothing lost), statements split under max_allowed_packet, exactly once
with --dedup-table across kill -9 at many instants, tables created from
--auto-create-table.
"""
import itertools
import json
import os
import random
import signal
import subprocess
import time

import pytest

import conftest
import lfchunk
from conftest import _env, check_no_sanitizer, run, tool
from mariadb import MariaDB, available

pytestmark = pytest.mark.skipif(not available(), reason="no mariadbd")

WAIT = 60
T0 = 1700000000
wait_for = conftest.waiter(WAIT)
FAST = ["--retry-wait", "0.05", "--retry-max-interval", "0.3",
        "--retry-randomize=false"]
_n = itertools.count()


@pytest.fixture(scope="module")
def server():
    s = MariaDB(tcp=True)
    s.start()
    yield s
    s.close()


@pytest.fixture
def db(server):
    """A fresh database for the test; server.name is it."""
    name = "t%d" % next(_n)
    server.sql("CREATE DATABASE %s" % name)
    server.name = name
    yield server
    if server.p is None:
        server.start()
    server.sql("DROP DATABASE IF EXISTS %s" % name)


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


def base(db, table="data_${category}", cols="id,category,data",
         keys=None, *extra):
    a = ["--socket", db.sock, "--username", "root", "--database", db.name,
         "--table", table, "--column-names", cols] + FAST
    if keys:
        a += ["--key-names", keys]
    return a + list(extra)


SEED = ["--json-key-names", "data", "--key-names", "id,category,data",
        "--on-duplicate-key-update", "--on-duplicate-update-keys", "data"]


def seed_tables(db, *cats):
    for c in cats:
        db.sql("CREATE TABLE data_%s (id INT PRIMARY KEY, category "
               "VARCHAR(32), data JSON) ENGINE=InnoDB" % c, db.name)


def run_once(args, spool, rc=0):
    r, _, err = run("lf-mysql", ["--once"] + args + [spool], timeout=WAIT)
    check_no_sanitizer(err)
    assert r == rc, err.decode()
    return err.decode()


def start(args, spool, env=None):
    r, w = os.pipe()
    p = subprocess.Popen([tool("lf-mysql"), "--notify-fd", str(w)] + args +
                         [spool], pass_fds=[w], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=_env(env))
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


def state(spool):
    with open(os.path.join(spool, "state", "mysql")) as f:
        return json.load(f)


def write(spool, cat, recs, t=T0):
    return lfchunk.write_chunk(spool, "app.events",
                               [(t + i, r) for i, r in enumerate(recs)],
                               variables={"category": cat})


def dead(spool):
    d = os.path.join(spool, "dead")
    out = {}
    for n in os.listdir(d):
        if n.endswith(".reason"):
            out[n[:-7]] = open(os.path.join(d, n)).read()
    return out


# ---- the seed's storage host ----

def test_seed_storage_host(db, spool):
    """Events with category and id from a forwarder spool (chunk key
    category) go to data_<category>, one row per id, the JSON column
    holding the record; a re-send updates instead of duplicating."""
    seed_tables(db, "web", "db")
    web = [{"id": i, "category": "web", "data": {"path": "/p%d" % i,
                                                  "n": i, "ok": True}}
           for i in range(50)]
    dbe = [{"id": i, "category": "db", "data": {"q": "select '%d'" % i,
                                                 "emoji": "\U0001F42F"}}
           for i in range(30)]
    write(spool, "web", web)
    write(spool, "db", dbe)
    run_once(base(db, "data_${category}", "id,category,data", None, *SEED),
             spool)
    assert lfchunk.list_chunks(spool) == []
    rows = db.rows("SELECT id, category, data FROM data_web ORDER BY id",
                   db.name)
    assert len(rows) == 50
    for (i, c, d), rec in zip(rows, web):
        assert (int(i), c, json.loads(d)) == (rec["id"], "web", rec["data"])
    rows = db.rows("SELECT id, JSON_VALUE(data, '$.emoji') FROM data_db",
                   db.name)
    assert len(rows) == 30 and {r[1] for r in rows} == {"\U0001F42F"}
    # re-sent with new data: updated, not duplicated
    write(spool, "web", [dict(r, data={"v": 2}) for r in web[:10]])
    run_once(base(db, "data_${category}", "id,category,data", None, *SEED),
             spool)
    assert db.rows("SELECT COUNT(*), SUM(JSON_VALUE(data, '$.v') = 2) "
                   "FROM data_web", db.name) == [("50", "10")]
    s = state(spool)
    assert (s["chunks"], s["rows"], s["dead_letters"]) == (1, 10, 0)


# ---- options ----

def test_options_sql(db, spool):
    """--key-names with ${time}, --unixtimestamp-key-names, a fixed
    --table, quoting (a quote, a backslash, NUL, a backtick column),
    numbers, NULL for a missing key, --transaction-isolation-level,
    --flush-thread-count 2; ${tag[N]} in --table."""
    db.sql("CREATE TABLE t1 (`we``ird` VARCHAR(64), n INT, f DOUBLE, "
           "at DATETIME, ts DATETIME, b BOOL, missing VARCHAR(8), "
           "obj TEXT)", db.name)
    db.sql("CREATE TABLE events_x (n INT)", db.name)
    recs = [{"s": "o'ne\\il\x00\"`", "n": 7, "f": 3.5, "ts": T0 + 60,
             "b": True, "obj": {"a": [1, None]}}]
    lfchunk.write_chunk(spool, "app.t1", [(T0, recs[0])])
    a = ["--socket", db.sock, "--username", "root", "--database", db.name,
         "--table", "${tag[1]}", "--column-names",
         "we`ird,n,f,at,ts,b,missing,obj", "--key-names",
         "s,n,f,${time},ts,b,missing,obj", "--unixtimestamp-key-names",
         "ts", "--utc", "--transaction-isolation-level", "read_committed",
         "--flush-thread-count", "2"] + FAST
    run_once(a, spool)
    assert db.rows("SELECT HEX(`we``ird`), n, f, at, ts, b, missing IS NULL,"
                   " obj FROM t1", db.name) == [(
                       "o'ne\\il\x00\"`".encode().hex().upper(), "7", "3.5",
                       "2023-11-14 22:13:20", "2023-11-14 22:14:20", "1",
                       "1", '{"a":[1,null]}')]
    lfchunk.write_chunk(spool, "app.events_x", [(T0, {"n": 1})])
    run_once(a[:6] + ["--table", "${tag[-1]}", "--column-names", "n"] +
             FAST, spool)
    assert db.rows("SELECT n FROM events_x", db.name) == [("1",)]


def test_usage_errors(db, spool):
    """A placeholder the spool's chunks are not keyed by, key and column
    counts apart, update keys without the flag, a bad name: exit 64
    before anything is sent."""
    write(spool, "a", [{"id": 1}])
    cases = [
        (base(db, "data_${nosuch}"), "not keyed by nosuch"),
        (base(db, "data_%Y%m%d"), "not keyed by time"),
        (base(db, "t", "a,b", "a"), "--key-names: 1 names for 2"),
        (base(db, "t", "a", None, "--on-duplicate-update-keys", "a"),
         "needs --on-duplicate-key-update"),
        (base(db, "t", "a", None, "--on-duplicate-key-update"),
         "needs --on-duplicate-update-keys"),
        (base(db, "t", "a", None, "--json-key-names", "b"),
         "'b' is not one of the key names"),
        (base(db, "a;b"), "--table: 1 to 64"),
        (base(db, "t", "a", None, "--transaction-isolation-level", "x"),
         "transaction-isolation-level"),
    ]
    for a, msg in cases:
        r, _, err = run("lf-mysql", ["--once"] + a + [spool])
        assert r == 64 and msg in err.decode(), (a, err)
    assert len(lfchunk.list_chunks(spool)) == 1


# ---- errors ----

def test_permanent_errors_dead_letter(db, spool):
    """A missing table, an unknown column, invalid JSON, a record value
    that is no name: each chunk goes to dead/ with the server's text;
    the chunks after them are delivered (no stall)."""
    seed_tables(db, "ok")
    db.sql("CREATE TABLE data_j (id INT, category TEXT, data JSON)",
           db.name)
    n1 = write(spool, "nosuch", [{"id": 1, "category": "x", "data": 1}])
    n2 = write(spool, "ok", [{"id": 2, "category": "ok", "data": 2}])
    n3 = lfchunk.write_chunk(spool, "app", [(T0, {"id": 3})],
                             variables={"category": "a b"})
    run_once(base(db, "data_${category}", "id,category,data", None,
                  "--json-key-names", "data"), spool)
    n4 = write(spool, "ok", [{"id": 9, "nosuchcol": 1}])
    run_once(base(db, "data_ok", "id,nosuchcol"), spool)
    write(spool, "j", [{"id": 4, "category": "j", "data": "[4]"}])
    n5 = write(spool, "j", [{"id": 5, "category": "j", "data": "{bad"}])
    run_once(base(db, "data_${category}"), spool)
    d = dead(spool)
    assert "(1146) Table '%s.data_nosuch' doesn't exist" % db.name in d[n1]
    assert "'data_a b'" in d[n3]
    assert db.rows("SELECT id FROM data_ok", db.name) == [("2",)]
    assert n2 not in d
    assert "(4025)" in d[n5] and "CONSTRAINT" in d[n5]
    assert "(1054) Unknown column 'nosuchcol'" in d[n4]
    assert len(d) == 4
    assert db.rows("SELECT id FROM data_j", db.name) == [("4",)]
    s = state(spool)
    assert s["dead_letters"] == 1 and s["errors_by"] == {"4025": 1}


def test_server_restart_mid_stream(db, spool):
    """MariaDB killed and started again while chunks flow: the
    connection errors are retried with the backoff, nothing is lost,
    nothing doubled (a chunk is one transaction, and ON DUPLICATE KEY
    UPDATE covers a COMMIT done but not answered)."""
    db.sql("CREATE TABLE data_r (id INT PRIMARY KEY, category TEXT, "
           "data JSON)", db.name)
    n = 0
    for c in range(20):
        write(spool, "r", [{"id": n + i, "category": "r", "data": i}
                           for i in range(200)])
        n += 200
    # ODKU (the seed's): a COMMIT whose answer the kill took is sent
    # again, and must update, not fail on the duplicate key
    p = start(base(db, "data_${category}", "id,category,data", None,
                   *SEED), spool)
    try:
        wait_for(lambda: len(lfchunk.list_chunks(spool)) < 20)
        db.kill()
        for c in range(10):
            write(spool, "r", [{"id": n + i, "category": "r", "data": i}
                               for i in range(200)])
            n += 200
        time.sleep(0.5)     # retries hit the dead server meanwhile
        db.start()
        wait_for(lambda: not lfchunk.list_chunks(spool))
    finally:
        stop(p)
    assert db.rows("SELECT COUNT(*), COUNT(DISTINCT id) FROM data_r",
                   db.name) == [(str(n), str(n))]
    s = state(spool)
    assert s["retries"] >= 1 and s["dead_letters"] == 0, dead(spool)
    assert s["connects"] >= 2 and not os.listdir(
        os.path.join(spool, "dead"))


def test_max_allowed_packet_split(db, spool):
    """Statements are cut below the server's max_allowed_packet (read at
    connect): a chunk of ~600 kB with the packet at 64 kB goes in as
    many INSERTs in one transaction; a row over the packet alone is a
    dead letter, not an endless 2006."""
    db.sql("CREATE TABLE big (id INT PRIMARY KEY, s TEXT)", db.name)
    db.sql("SET GLOBAL max_allowed_packet = 65536")
    try:
        lfchunk.write_chunk(spool, "x", [(T0, {"id": i, "s": "x" * 1000})
                                         for i in range(600)])
        n2 = lfchunk.write_chunk(spool, "x", [(T0, {"id": 9999,
                                                    "s": "y" * 70000})])
        run_once(base(db, "big", "id,s"), spool)
    finally:
        db.sql("SET GLOBAL max_allowed_packet = 16777216")
    assert db.rows("SELECT COUNT(*) FROM big", db.name) == [("600",)]
    s = state(spool)
    assert s["statements"] >= 10 and s["chunks"] == 1
    assert "does not fit in a statement" in dead(spool)[n2]


def test_auto_create_table(db, spool, tmp_path):
    """--auto-create-table: the DDL with the chunk's placeholders runs
    on 1146, then the chunk goes in; a second chunk finds the table."""
    ddl = tmp_path / "ddl.sql"
    ddl.write_text("CREATE TABLE IF NOT EXISTS data_${category} (\n"
                   "  id INT PRIMARY KEY, category VARCHAR(32), data JSON\n"
                   ") ENGINE=InnoDB;\n")
    write(spool, "new1", [{"id": 1, "category": "new1", "data": [1]}])
    write(spool, "new1", [{"id": 2, "category": "new1", "data": [2]}])
    write(spool, "new2", [{"id": 3, "category": "new2", "data": [3]}])
    run_once(base(db, "data_${category}", "id,category,data", None,
                  "--json-key-names", "data", "--auto-create-table",
                  str(ddl)), spool)
    assert db.rows("SELECT id, data FROM data_new1 ORDER BY id",
                   db.name) == [("1", "[1]"), ("2", "[2]")]
    assert db.rows("SELECT id FROM data_new2", db.name) == [("3",)]
    assert state(spool)["tables_created"] == 2


# ---- exactly once ----

def test_dedup_kill9(db, spool):
    """--dedup-table without a unique key in the table: lf-mysql killed
    (-9) at many seeded instants during delivery, started again each
    time; at the end every event is in the table exactly once."""
    db.sql("CREATE TABLE d (seq INT, chunk INT)", db.name)
    rnd = random.Random(12)
    nchunks, per = 100, 1000
    for c in range(nchunks):
        lfchunk.write_chunk(spool, "x", [(T0, {"seq": c * per + i,
                                               "chunk": c})
                                         for i in range(per)])
    a = base(db, "d", "seq,chunk", None, "--dedup-table", "lf_chunks",
             "--flush-thread-count", "2")
    kills = progressed = 0
    deadline = time.monotonic() + 40
    left = nchunks
    while left and kills < 25 and time.monotonic() < deadline:
        p = subprocess.Popen([tool("lf-mysql")] + a + [spool],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=_env())
        # placed by progress, not by the clock (a loaded machine may take
        # longer than any fixed delay to start and connect): once a chunk
        # is committed, the next ones are in flight; kill among them
        until = time.monotonic() + 10
        while (len(lfchunk.list_chunks(spool)) >= left and
               p.poll() is None and time.monotonic() < until):
            time.sleep(0.005)
        time.sleep(rnd.uniform(0, 0.1))
        p.kill()
        p.wait()
        kills += 1
        n = len(lfchunk.list_chunks(spool))
        progressed += n < left
        left = n
    run_once(a, spool)
    # the kills fell while chunks were being delivered, not before
    assert kills >= 5 and progressed >= 3, (kills, progressed)
    assert db.rows("SELECT COUNT(*), COUNT(DISTINCT seq) FROM d",
                   db.name) == [(str(nchunks * per),) * 2]
    assert db.rows("SELECT COUNT(*) FROM lf_chunks", db.name) == [
        (str(nchunks),)]


def test_dedup_skips_resent_chunk(db, spool):
    """A chunk sent again (the same id: a crash after COMMIT, before the
    unlink) is skipped and counted."""
    db.sql("CREATE TABLE d (seq INT)", db.name)
    cid = os.urandom(16)
    lfchunk.write_chunk(spool, "x", [(T0, {"seq": 1})], id=cid)
    a = base(db, "d", "seq", None, "--dedup-table", "lf_chunks")
    run_once(a, spool)
    lfchunk.write_chunk(spool, "x", [(T0, {"seq": 1})], id=cid)
    run_once(a, spool)
    assert db.rows("SELECT COUNT(*) FROM d", db.name) == [("1",)]
    assert state(spool)["dedup_skipped"] == 1


def test_tcp_password_file(db, spool, tmp_path):
    """--host, --port over TCP, --username with --password-file (mode
    0600; the password in no argv); a wrong password is retried (1045:
    the server's to fix), not a dead letter."""
    db.sql("CREATE USER IF NOT EXISTS 'lf'@'127.0.0.1' IDENTIFIED BY "
           "'s3cr\\'et'; GRANT ALL ON *.* TO 'lf'@'127.0.0.1'")
    db.sql("CREATE TABLE t (n INT)", db.name)
    pw = tmp_path / "pw"
    pw.write_text("s3cr'et\n")
    os.chmod(pw, 0o600)
    lfchunk.write_chunk(spool, "x", [(T0, {"n": 5})])
    a = ["--host", "127.0.0.1", "--port", str(db.port), "--username", "lf",
         "--database", db.name, "--table", "t", "--column-names", "n"]
    bad = tmp_path / "bad"
    bad.write_text("nope")
    os.chmod(bad, 0o600)
    err = run_once(a + ["--password-file", str(bad), "--retry-wait", "10"],
                   spool, rc=75)
    assert "(1045) Access denied" in err and "nope" not in err
    assert lfchunk.list_chunks(spool) and not dead(spool)
    os.unlink(os.path.join(spool, "state", "retry"))   # no wait for it
    run_once(a + ["--password-file", str(pw)], spool)
    assert db.rows("SELECT n FROM t", db.name) == [("5",)]
    os.chmod(pw, 0o644)
    r, _, err = run("lf-mysql", ["--once"] + a + ["--password-file",
                                                  str(pw), spool])
    assert r == 78 and b"--password-file" in err


def test_lock_wait_timeout_retried(db, spool):
    """A row locked by another session: the insert waits, times out
    (1205, innodb_lock_wait_timeout 1s here), is retried with the
    backoff and goes in once the lock is gone."""
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT)", db.name)
    db.sql("INSERT INTO t VALUES (1, 0)", db.name)
    db.sql("SET GLOBAL innodb_lock_wait_timeout = 1")
    holder = subprocess.Popen(
        ["mariadb", "--no-defaults", "-n", "--socket=" + db.sock, "-uroot",
         db.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        holder.stdin.write(b"BEGIN; SELECT id FROM t WHERE id = 1 FOR "
                           b"UPDATE;\n")
        holder.stdin.flush()
        holder.stdout.readline()
        holder.stdout.readline()
        lfchunk.write_chunk(spool, "x", [(T0, {"id": 1, "v": 7})])
        p = start(base(db, "t", "id,v", None, "--on-duplicate-key-update",
                       "--on-duplicate-update-keys", "v"), spool)
        try:
            wait_for(lambda: os.path.exists(os.path.join(
                spool, "state", "mysql")) and
                state(spool)["errors_by"].get("1205", 0) >= 1)
            holder.stdin.write(b"COMMIT;\n")
            holder.stdin.close()
            wait_for(lambda: not lfchunk.list_chunks(spool))
        finally:
            err = stop(p)
        assert "(1205) Lock wait timeout" in err
    finally:
        holder.kill()
        holder.wait()
        db.sql("SET GLOBAL innodb_lock_wait_timeout = 50")
    assert db.rows("SELECT v FROM t", db.name) == [("7",)]
    assert not dead(spool)


def test_sigterm_mid_transaction(db, spool):
    """SIGTERM while a transaction waits on a lock: after
    --shutdown-timeout the connection is dropped (the server rolls back),
    lf-mysql exits 0 and the chunk is still ready; nothing is in the
    table."""
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)", db.name)
    db.sql("INSERT INTO t VALUES (1)", db.name)
    holder = subprocess.Popen(
        ["mariadb", "--no-defaults", "-n", "--socket=" + db.sock, "-uroot",
         db.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        holder.stdin.write(b"BEGIN; SELECT id FROM t WHERE id = 1 FOR "
                           b"UPDATE;\n")
        holder.stdin.flush()
        holder.stdout.readline()
        holder.stdout.readline()
        lfchunk.write_chunk(spool, "x", [(T0, {"id": 2}), (T0, {"id": 1})])
        p = start(base(db, "t", "id", None, "--shutdown-timeout", "0.5"),
                  spool)
        wait_for(lambda: db.rows(
            "SELECT COUNT(*) FROM information_schema.innodb_trx") ==
            [("2",)])
        stop(p)
    finally:
        holder.kill()
        holder.wait()
    assert len(lfchunk.list_chunks(spool)) == 1
    assert db.rows("SELECT id FROM t", db.name) == [("1",)]


def test_statement_size_state_log(db, spool, tmp_path):
    """--max-statement-size cuts statements (one transaction still),
    --state-file and --log-file go where they are told, -vv logs a line
    per chunk, the timeouts are taken."""
    db.sql("CREATE TABLE t (id INT, s TEXT)", db.name)
    lfchunk.write_chunk(spool, "x", [(T0, {"id": i, "s": "z" * 200})
                                     for i in range(100)])
    st, log = tmp_path / "st.json", tmp_path / "lf.log"
    err = run_once(base(db, "t", "id,s", None, "--max-statement-size", "8k",
                        "--state-file", str(st), "--log-file", str(log),
                        "-vv", "--connect-timeout", "5s",
                        "--read-timeout", "30s"), spool)
    assert err == ""
    s = json.loads(st.read_text())
    assert s["rows"] == 100 and s["statements"] >= 3
    assert "100 rows into %s.t" % db.name in log.read_text()
    assert db.rows("SELECT COUNT(*) FROM t", db.name) == [("100",)]


def test_database_placeholder(db, spool):
    """--database from a chunk key too: each chunk's rows go to its
    database (names qualified in the SQL, none chosen at connect)."""
    other = db.name + "_b"
    db.sql("CREATE DATABASE %s; CREATE TABLE %s.t (n INT); "
           "CREATE TABLE %s.t (n INT)" % (other, db.name, other))
    try:
        lfchunk.write_chunk(spool, "x", [(T0, {"n": 1})],
                            variables={"where": db.name})
        lfchunk.write_chunk(spool, "x", [(T0, {"n": 2})],
                            variables={"where": other})
        a = ["--socket", db.sock, "--username", "root", "--database",
             "${where}", "--table", "t", "--column-names", "n"] + FAST
        run_once(a, spool)
        assert db.rows("SELECT n FROM t", db.name) == [("1",)]
        assert db.rows("SELECT n FROM t", other) == [("2",)]
    finally:
        db.sql("DROP DATABASE %s" % other)
