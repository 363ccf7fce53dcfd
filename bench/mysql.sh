# make bench: lf-mysql from a spool into a local MariaDB (Debian's
# mariadbd in a temporary directory on a Unix socket, as the tests run
# it: tests/e2e/mariadb.py, with a 256 MB buffer pool).
#
# 1,000,000 events of the seed's storage host (id, category of 4, a
# record of ~150 bytes) are put into a spool by lf-buffer keyed by
# category, chunks of at most 10000 records (not timed); then
# lf-mysql --once inserts them into data_<category> tables (id primary
# key, data JSON), with 1 and 2 connections, into empty tables and
# again (ON DUPLICATE KEY UPDATE over every row).  Reports rows/s from
# lf-mysql's start to its exit, lf-mysql's CPU seconds per million rows
# and peak RSS (getrusage), and mariadbd's CPU seconds over the same
# time (from /proc): on this machine the server is the bound.  It
# spends about 10 CPU seconds per million rows (perf: parsing the
# multi-row INSERT text, MYSQLparse and Lex_input_stream::unescape, page
# faults, the JSON CHECK, InnoDB), lf-mysql under 3 (of which consume's
# check of the chunk and the JSON floats are a third), and lf-mysql builds
# the next statement while the server runs one; so one connection is
# bound by one core of mariadbd plus the COMMIT's fsync, and a second
# connection lets the server use the second core.
set -eu
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || {
	echo "no mariadbd: skipped (scripts/deps installs mariadb-server)"
	exit 0
}
PYTHONPATH="$(dirname "$0")/../tests/e2e" /usr/bin/python3 - "$LF_BIN" <<'PYEOF'
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

from mariadb import MariaDB

lfbin = sys.argv[1]
total = 1000000
PER = 1000
CATS = ("web", "db", "app", "auth")


def record(i):
    return {"id": i, "category": CATS[i % 4],
            "data": {"host": "192.168.0.12", "path": "/items/%08u" % i,
                     "code": 200, "agent": "Mozilla/5.0 (X11; Linux)",
                     "took": 0.25}}


def make_spool(d):
    t = 1441588984
    src = os.path.join(d, "in.msgpack")
    with open(src, "wb") as f:
        for b in range(total // PER):
            ents = b"".join(msgpack.packb(
                [msgpack.ExtType(0, struct.pack(">II", t, i)),
                 record(b * PER + i)]) for i in range(PER))
            f.write(msgpack.packb(["seed.events", ents, {"size": PER}],
                                  use_bin_type=True))
    spool = os.path.join(d, "spool")
    with open(src, "rb") as f:
        subprocess.run([os.path.join(lfbin, "lf-buffer"),
                        "--chunk-key", "category",
                        "--chunk-limit-records", "10000",
                        "--chunk-limit-size", "32m", spool],
                       stdin=f, check=True)
    os.unlink(src)
    return spool


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(db, d, spool, args):
    work = os.path.join(d, "work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(spool, work)
    nchunks = len(os.listdir(os.path.join(work, "new")))
    c0 = cpu_of(db.p.pid)
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-mysql"), "--once",
                          "--socket", db.sock, "--username", "root",
                          "--database", "bench", "--table",
                          "data_${category}", "--column-names",
                          "id,category,data", "--json-key-names", "data",
                          "--on-duplicate-key-update",
                          "--on-duplicate-update-keys", "data"] +
                         args + [work])
    _, st, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    server = cpu_of(db.p.pid) - c0
    assert os.listdir(os.path.join(work, "new")) == []
    with open(os.path.join(work, "state", "mysql")) as f:
        s = json.load(f)
    assert s["rows"] == total, s
    return dt, ru, nchunks, s, server


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-mysql.")
    db = MariaDB()
    try:
        db.start("--innodb-buffer-pool-size=256M")
        db.sql("CREATE DATABASE bench")
        for c in CATS:
            db.sql("CREATE TABLE data_%s (id INT PRIMARY KEY, category "
                   "VARCHAR(32), data JSON) ENGINE=InnoDB" % c, "bench")
        spool = make_spool(d)
        print("%d events in a spool, 4 categories" % total)
        for name, args in (
                ("1 connection, new rows", []),
                ("1 connection, every row updated", []),
                ("2 connections, every row updated",
                 ["--flush-thread-count", "2"])):
            dt, ru, nchunks, s, server = run(db, d, spool, args)
            cpu = ru.ru_utime + ru.ru_stime
            print("lf-mysql (%s): %d chunks, %d statements, %.0f rows/s, "
                  "%.1f MB/s of SQL, cpu %.2f s per million rows, peak RSS "
                  "%.1f MB; mariadbd cpu %.2f s (%.0f%% of the time)" % (
                      name, nchunks, s["statements"], total / dt,
                      s["bytes"] / dt / 1e6, cpu / (total / 1e6),
                      ru.ru_maxrss / 1024, server, 100 * server / dt))
    finally:
        db.close()
        shutil.rmtree(d, ignore_errors=True)


main()
PYEOF
