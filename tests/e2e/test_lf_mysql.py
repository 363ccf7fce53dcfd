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
    s = MariaDB()
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
