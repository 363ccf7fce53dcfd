"""The high-availability topology on several hosts, under failure.

Every host is a network namespace of its own (tests/e2e/ha.py), joined to
the others by a private switch, so each role has its own address and
talks to the others over it; only those addresses and loopback are used:

  fwdN  (10.77.0.x)  lf-tail (an LTSV log the test writes and rotates) and
                     lf-recv :24224 (an application with a Fluentd logger)
                     --> lf-buffer --> lf-send, acked, to agg1, standby agg2
  aggN               lf-recv :24224 (--source-hostname-key, --match
                     data.production.**) --> lf-buffer, spools that copy
                     --> lf-tdlog (to td), lf-file (LTSV backup, hourly),
                         lf-send (to stor)
  stor               lf-recv --> lf-buffer --> lf-mysql (MariaDB, which
                     the test starts; it listens on a Unix socket only)
  td                 scripts/td-emulator, Treasure Data's import API

Each scenario writes events with unique ids, breaks something, repairs
it, and then checks that every id written is at the destination, counting
the duplicates (at-least-once allows them) and failing on any loss.  The
table of the results is printed at the end of the session (by conftest.py,
from every xdist worker) and written to BUILD/ha-table.txt (BUILD is
$LF_BIN/..).  Random instants are seeded; ports are fixed only inside a
test's own namespaces.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import conftest
from conftest import REPO, SANITIZER_MARKS, tool

if os.geteuid() != 0:
    pytest.skip("the multi-host tests need root (ip netns, mount)",
                allow_module_level=True)
if not shutil.which("ip"):
    pytest.skip("the multi-host tests need ip(8) (iproute2)",
                allow_module_level=True)

import ha  # noqa: E402
from mariadb import MariaDB, available as mariadb_available  # noqa: E402

WAIT = 90
KEY = "1/0123456789abcdefha"
PY = "/usr/bin/python3"
HA = str(REPO / "tests" / "e2e" / "ha.py")
EMULATOR = str(REPO / "scripts" / "td-emulator")
TDPORT = 8080            # in the td host's own namespace: no one else's
TAIL_TAG = "data.production.access"
APP_TAG = "data.production.app"
FAST = ["--retry-wait", "0.1", "--retry-max-interval", "0.5",
        "--retry-randomize=false", "--retry-forever"]
SEND = ["--require-ack-response", "--heartbeat-type", "udp",
        "--heartbeat-interval", "0.2", "--phi-threshold", "1",
        "--hard-timeout", "3", "--recover-wait", "1",
        "--ack-response-timeout", "5", "--connect-timeout", "2",
        "--send-timeout", "3", "--shutdown-timeout", "2"]
BUF = ["--flush-interval", "0.3", "--queued-chunks-limit-size", "64",
       "--chunk-limit-records", "200"]
FWD_TOOLS = ("lf-buffer", "lf-tail", "lf-recv", "lf-send")
ID_RE = re.compile(r"(?:^|\t)id:(\S+)")


def wait_for(pred, timeout=WAIT, what="condition"):
    return conftest.wait_for(pred, timeout, what, step=0.1)


# The results table: each test leaves its rows in its report's
# user_properties ("ha_row"), which pytest-xdist carries to the main
# process, where conftest.py prints ha.table() of them at the end and
# writes it to BUILD/ha-table.txt.

# ---- the roles ----

class Topo:
    """One test's hosts and what runs on them."""

    def __init__(self, tmp, name):
        self.name = name
        self.t0 = time.monotonic()
        self.net = ha.Net(tmp)
        self.td = None
        self.db = None
        self.stor = None
        self.aggs = []
        self.fwds = []
        self.apps = []
        self.others = []
        self.logs = []
        self.written = set()
        self.recovered = {}
        self.pollers = []

    # td: the Treasure Data emulator
    def start_td(self):
        h = self.td = self.net.host("td")
        portf = h.path("port")
        h.start("td-emulator", [PY, EMULATOR, "-q", "--host", "0.0.0.0",
                                "--port", TDPORT, "--port-file", portf,
                                "--key", KEY, "--any-table"], notify=False)
        wait_for(lambda: os.path.exists(portf), what="the emulator")
        self.td_url = "http://%s:%d" % (h.ip, TDPORT)

    def td_get(self, path):
        out = self.td.run("curl", "-fsS", "--max-time", "20",
                          self.td_url + path)
        return out

    def td_post(self, path, obj):
        self.td.run("curl", "-fsS", "--max-time", "20", "-X", "POST",
                    "--data-binary", json.dumps(obj), self.td_url + path)

    def td_rows(self):
        rows = []
        for t in ("access", "app"):
            for line in self.td_get("/_emu/rows?db=production&table=" +
                                    t).splitlines():
                rows.append(json.loads(line))
        return rows

    # stor: lf-recv -> lf-buffer -> lf-mysql into MariaDB
    def start_stor(self, db):
        self.db = db
        self.dbname = "logs_" + self.name.replace("-", "_")
        h = self.stor = self.net.host("stor")
        db.sql("CREATE DATABASE " + self.dbname)
        for t in ("access", "app"):
            db.sql("CREATE TABLE data_%s (n INT AUTO_INCREMENT PRIMARY KEY,"
                   " id VARCHAR(64), hostname VARCHAR(64), src VARCHAR(8))"
                   " ENGINE=InnoDB" % t, self.dbname)
        self.stor_procs(h)

    def stor_procs(self, h):
        h.start("lf-buffer", [tool("lf-buffer"), "--listen",
                              "unix:" + h.path("in.sock")] + BUF +
                [h.path("spool")])
        self.start_stor_recv()
        self.start_mysql()

    def start_stor_recv(self):
        h = self.stor
        h.start("lf-recv", [tool("lf-recv"), "--listen", "0.0.0.0:24224",
                            "--to", "unix:" + h.path("in.sock"),
                            "--state-file", h.path("recv.state")])

    def start_mysql(self):
        h = self.stor
        h.start("lf-mysql", [tool("lf-mysql"), "--socket", self.db.sock,
                             "--username", "root", "--database", self.dbname,
                             "--table", "data_${tag[2]}", "--column-names",
                             "id,hostname,src", "--dedup-table", "lf_chunks",
                             "--connect-timeout", "2", "--read-timeout",
                             "5"] + FAST + [h.path("spool")])

    def mysql_ids(self):
        return [r[0] for r in self.db.rows(
            "SELECT id FROM data_access UNION ALL SELECT id FROM data_app",
            self.dbname)]

    # aggN: lf-recv -> lf-buffer -> td, backup, stor
    def agg(self, name, backup=False):
        h = self.net.host(name)
        h.backup = backup
        self.aggs.append(h)
        return h

    def agg_spools(self, h):
        sp = [("td", h.path("spools", "td"))]
        if h.backup:
            sp.append(("file", h.path("spools", "file")))
        if self.stor:
            sp.append(("fwd", h.path("spools", "fwd")))
        return sp

    def agg_procs(self, h):
        os.makedirs(h.path("spools"), exist_ok=True)
        sp = self.agg_spools(h)
        h.start("lf-buffer", [tool("lf-buffer"), "--listen",
                              "unix:" + h.path("in.sock"), "--timekey", "1h",
                              "--flush-mode", "interval"] + BUF +
                ["data.production.**=" + p for _, p in sp])
        h.start("lf-recv", [tool("lf-recv"), "--listen", "0.0.0.0:24224",
                            "--to", "unix:" + h.path("in.sock"),
                            "--source-hostname-key", "hostname",
                            "--match", "data.production.**",
                            "--state-file", h.path("recv.state")])
        sp = dict(sp)
        h.start("lf-tdlog", [tool("lf-tdlog"), "--endpoint", self.td_url,
                             "--connect-timeout", "2", "--read-timeout", "5",
                             "--flush-thread-count", "2"] + FAST +
                [sp["td"]], env={"TD_API_KEY": KEY})
        if "file" in sp:
            h.start("lf-file", [tool("lf-file"), "--path",
                                h.path("backup", "${tag}", "%Y%m%d%H"),
                                "--timekey", "1h", "--append", "--format",
                                "ltsv"] + FAST + [sp["file"]])
        if "fwd" in sp:
            h.start("lf-send", [tool("lf-send"), "--server",
                                "%s:24224,name=stor" % self.stor.ip,
                                "--compress", "gzip"] + SEND + FAST +
                    [sp["fwd"]])

    def backup_ids(self):
        ids = []
        for h in self.aggs:
            for root, _, files in os.walk(h.path("backup")):
                for f in files:
                    with open(os.path.join(root, f)) as fh:
                        for line in fh:
                            m = ID_RE.search(line)
                            if m:
                                ids.append(m.group(1))
        return ids

    def recv_events(self, h):
        """Events lf-recv of h passed on since it started (its state)."""
        try:
            with open(h.path("recv.state")) as f:
                return json.load(f)["events"]
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    # fwdN: lf-tail and lf-recv -> lf-buffer -> lf-send
    def fwd(self, name):
        h = self.net.host(name)
        os.makedirs(h.path("log"))
        self.fwds.append(h)
        return h

    def fwd_procs(self, h, only=None):
        def want(n):
            return only is None or n in only
        if want("lf-buffer"):
            h.start("lf-buffer", [tool("lf-buffer"), "--listen",
                                  "unix:" + h.path("in.sock")] + BUF +
                    [h.path("spool")])
        if want("lf-tail"):
            h.start("lf-tail", [tool("lf-tail"), "-t", TAIL_TAG, "-f", "ltsv",
                                "--time-key", "time", "--time-format",
                                "%Y-%m-%dT%H:%M:%S%z", "--types",
                                "code:integer", "--pos-file",
                                h.path("tail.pos"), "--read-from-head",
                                "--follow-inodes", "--rotate-wait", "1",
                                "--to", "unix:" + h.path("in.sock"),
                                h.path("log", "app.log*")])
        if want("lf-recv"):
            h.start("lf-recv", [tool("lf-recv"), "--listen", "0.0.0.0:24224",
                                "--to", "unix:" + h.path("in.sock"),
                                "--match", "data.production.**"])
        if want("lf-send"):
            servers = ["--server", "%s:24224,name=%s" % (self.aggs[0].ip,
                                                          self.aggs[0].role)]
            for a in self.aggs[1:]:
                servers += ["--standby", "%s:24224" % a.ip]
            h.start("lf-send", [tool("lf-send")] + servers + SEND + FAST +
                    [h.path("spool")])

    def spool_bytes(self, h, sub="spool"):
        n = 0
        for d in ("new", "tmp"):
            p = h.path(sub, d)
            for f in os.listdir(p):
                try:
                    n += os.path.getsize(os.path.join(p, f))
                except FileNotFoundError:
                    pass
        return n

    # the applications
    def app(self, h, mode, n, rate, tag=APP_TAG, count=True):
        prefix = "%s-%s-%s-" % (self.name, h.role, mode[0] +
                                tag.split(".")[1][0])
        prog = h.path("%sprogress" % prefix)
        p = h.start("app-" + mode, [PY, HA, mode, prefix, n, tag, 24224,
                                    rate, prog], notify=False,
                    stdout=subprocess.PIPE)
        p.prefix, p.progress = prefix, prog
        if count:
            self.apps.append(p)
        if count:
            self.written |= {"%s%06d" % (prefix, i) for i in range(n)}
        return p

    def log(self, h, n, rate, rotate=0):
        prefix = "%s-%s-t-" % (self.name, h.role)
        w = ha.LogWriter(h.path("log", "app.log"), prefix, n, rate,
                         rotate).start()
        self.logs.append(w)
        self.written |= {"%s%06d" % (prefix, i) for i in range(n)}
        return w

    def wait_written(self, timeout=WAIT):
        for w in self.logs:
            w.join(timeout)
        for p in self.apps + self.others:
            out, _ = p.p.communicate(timeout=timeout)
            assert p.p.returncode == 0, p.logtext()
            assert out.decode().startswith("sent "), out

    def written_now(self):
        """The ids written (and acked to the applications) so far."""
        ids = set()
        for w in self.logs:
            ids |= {"%s%06d" % (w.prefix, i) for i in range(w.written)}
        for p in self.apps:
            try:
                with open(p.progress) as f:
                    n = int(f.read())
            except (FileNotFoundError, ValueError):
                n = 0
            ids |= {"%s%06d" % (p.prefix, i) for i in range(n)}
        return ids

    def repaired(self, **dests):
        """The fault is repaired now: measure, for each destination, how
        long until every event written so far is there."""
        snap = self.written_now()
        t_fix = time.monotonic()
        for dest, get in dests.items():
            def poll(dest=dest, get=get):
                end = t_fix + WAIT
                while time.monotonic() < end:
                    try:
                        if snap <= set(get()):
                            self.recovered[dest] = time.monotonic() - t_fix
                            return
                    except Exception:   # a destination still down
                        pass
                    time.sleep(0.2)
            th = threading.Thread(target=poll, daemon=True)
            th.start()
            self.pollers.append(th)

    def all_ids(self):
        return [r["id"] for r in self.td_rows()]

    # the end: everything at the destination
    def check(self, dest, get, timeout=WAIT):
        """Wait until every id written is in get(); record the row."""
        want = self.written
        end = time.monotonic() + timeout
        err = None
        while True:
            try:
                ids = get()
            except (RuntimeError, ValueError, KeyError,
                    subprocess.TimeoutExpired) as e:
                ids, err = [], e    # not up yet: poll again
            have = set(ids)
            if want <= have or time.monotonic() > end:
                break
            time.sleep(0.3)
        done = time.monotonic()
        for th in self.pollers:
            th.join(max(1, end - time.monotonic()))
        lost = want - have
        extra = have - want
        row = {"scenario": self.name, "dest": dest, "written": len(want),
               "delivered": len(have & want),
               "duplicates": len(ids) - len(have), "lost": len(lost),
               "recover": self.recovered.get(dest),
               "elapsed": done - self.t0}
        self.node.user_properties.append(("ha_row", json.dumps(row)))
        assert not extra, "unexpected ids at %s: %s" % (dest,
                                                        sorted(extra)[:5])
        assert not lost, "%d of %d events lost at %s, e.g. %s (%s)" % (
            len(lost), len(want), dest, sorted(lost)[:5], err)
        return row

    def stop_all(self):
        """TERM every process still running, at once, as a host shutting
        down: each must exit 0 (sanitizer leak reports come out here)."""
        live = [p for p in self.net.procs() if p.alive()]
        for p in live:
            p.signal(signal.SIGTERM)
        bad = []
        for p in live:
            try:
                rc = p.p.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                rc = "still running"
            if rc != 0:
                bad.append("%s on %s: exit %s after TERM" % (
                    p.name, p.host.role, rc))
        return bad

    def close(self, failed):
        bad = [] if failed else self.stop_all()
        for p in self.net.procs():
            text = p.logtext()
            if any(m.decode() in text for m in SANITIZER_MARKS) or (
                    "Traceback" in text and p.name != "app-acked"):
                bad.append("%s on %s:\n%s" % (p.name, p.host.role,
                                              text[-4000:]))
        if failed or bad:
            for p in self.net.procs():
                sys.stderr.write("==== %s on %s (%s) rc=%s\n%s\n" % (
                    p.name, p.host.role, p.log, p.p.poll(),
                    p.logtext()[-2500:]))
        self.net.close()
        assert not bad, "\n".join(bad)


@pytest.fixture
def topo(request, tmp_path):
    made = []

    def make(name):
        t = Topo(tmp_path, name)
        t.node = request.node
        made.append(t)
        return t
    failed_before = request.session.testsfailed
    yield make
    failed = request.session.testsfailed > failed_before
    for t in made:
        t.close(failed)


@pytest.fixture(scope="module")
def mariadb():
    if not mariadb_available():
        pytest.skip("MariaDB (mariadbd) is not installed")
    made = []

    def get():
        if not made:
            s = MariaDB()
            s.start()
            made.append(s)
        return made[0]
    yield get
    for s in made:
        s.close()


def standard(t, backup=False, standby=True):
    """td, agg1 (and standby agg2), started; forwarders are the test's."""
    t.start_td()
    a1 = t.agg("agg1", backup)
    t.agg_procs(a1)
    if standby:
        a2 = t.agg("agg2", backup)
        t.agg_procs(a2)


def restart(t, h):
    """kill -9 a host's processes, as a crash of the machine's services,
    and start them again on the same spools."""
    h.kill()
    t.agg_procs(h)


# ---- the scenarios ----

def test_steady_state(topo, mariadb):
    """Two forwarders (an LTSV log and two applications each: one with
    python3-fluent-logger, one acked), an active and a standby
    aggregator, a storage host: every event in the emulator, in the LTSV
    backup and in MariaDB, with the forwarder's host name; the staging
    events of the same applications are dropped at the forwarders."""
    t = topo("steady")
    t.start_td()
    t.start_stor(mariadb())
    for a in ("agg1", "agg2"):
        t.agg_procs(t.agg(a, backup=True))
    for name in ("fwd1", "fwd2"):
        h = t.fwd(name)
        t.fwd_procs(h)
    for h in t.fwds:
        t.log(h, 800, 300, rotate=300)
        t.app(h, "fluent", 500, 250)
        t.app(h, "acked", 500, 250)
        t.app(h, "acked", 50, 100, tag="data.staging.app", count=False)
    t.wait_written()
    t.repaired(td=t.all_ids, backup=t.backup_ids, mysql=t.mysql_ids)
    t.check("td", t.all_ids)
    t.check("backup", t.backup_ids)
    t.check("mysql", t.mysql_ids)
    rows = t.td_rows()
    names = {r["id"].split("-")[1]: r["hostname"] for r in rows}
    assert names == {"fwd1": "fwd1", "fwd2": "fwd2"}, names
    stats = json.loads(t.td_get("/_emu/stats"))
    assert set(stats["tables"]) == {"production.access", "production.app"}
    # the active took the traffic (the standby only what a heartbeat
    # missed on a loaded machine may have sent it)
    assert t.recv_events(t.aggs[0]) > t.recv_events(t.aggs[1])


def test_kill_active(topo):
    """kill -9 of the active aggregator's processes mid-stream: the
    standby takes the traffic; restarted, the active takes it back."""
    t = topo("kill-active")
    standard(t)
    a1, a2 = t.aggs
    f = t.fwd("fwd1")
    t.fwd_procs(f)
    t.log(f, 1500, 150)
    t.app(f, "acked", 1500, 150)
    wait_for(lambda: t.recv_events(a1) > 200, what="traffic on agg1")
    a1.kill()
    before = t.recv_events(a2)
    wait_for(lambda: t.recv_events(a2) > before + 100,
             what="the standby to take the traffic")
    time.sleep(1)
    t.repaired(td=t.all_ids)
    t.agg_procs(a1)
    wait_for(lambda: t.recv_events(a1) > 100,
             what="the active to take the traffic back")
    t.wait_written()
    t.check("td", t.all_ids)


def test_link_cut(topo):
    """The active aggregator's cable pulled (its switch port down) while
    its processes run: the heartbeats stop, the forwarders fail over to
    the standby; with the cable back, the active gets traffic again."""
    t = topo("link-cut")
    standard(t)
    a1, a2 = t.aggs
    for name in ("fwd1", "fwd2"):
        t.fwd_procs(t.fwd(name))
    for h in t.fwds:
        t.log(h, 1200, 120)
        t.app(h, "acked", 1200, 120)
    wait_for(lambda: t.recv_events(a1) > 200, what="traffic on agg1")
    t.net.link("agg1", up=False)
    before = t.recv_events(a2)
    wait_for(lambda: t.recv_events(a2) > before + 100,
             what="failover to the standby")
    for p in a1.procs:
        assert p.alive(), "%s died: %s" % (p.name, p.logtext())
    time.sleep(1)
    back = t.recv_events(a1)
    t.repaired(td=t.all_ids)
    t.net.link("agg1", up=True)
    wait_for(lambda: t.recv_events(a1) > back + 100,
             what="traffic back on agg1")
    t.wait_written()
    t.check("td", t.all_ids)
    for h in t.fwds:    # the heartbeats told, not a failed connection
        log = "".join(p.logtext() for p in h.procs if p.name == "lf-send")
        assert re.search(r"agg1: down: (phi|no heartbeat)", log), log
        assert "agg1: up: " in log, log


def test_both_aggregators_down(topo):
    """Both aggregators down for a while: the forwarder's spool grows on
    disk; when the active comes back everything is delivered."""
    t = topo("both-aggs-down")
    standard(t)
    a1, a2 = t.aggs
    f = t.fwd("fwd1")
    t.fwd_procs(f)
    t.log(f, 1500, 150)
    t.app(f, "acked", 1500, 150)
    wait_for(lambda: t.recv_events(a1) > 200, what="traffic on agg1")
    a1.kill()
    a2.kill()
    s0 = t.spool_bytes(f)
    wait_for(lambda: t.spool_bytes(f) > s0 + 100000,
             what="the forwarder's spool to grow")
    grown = t.spool_bytes(f)
    t.repaired(td=t.all_ids)
    t.agg_procs(a1)
    wait_for(lambda: t.spool_bytes(f) < grown / 4,
             what="the forwarder's spool to drain")
    t.wait_written()
    wait_for(lambda: t.spool_bytes(f) == 0, what="the forwarder to drain")
    t.agg_procs(a2)     # what it held when it died goes out too
    t.check("td", t.all_ids)


def test_forwarder_crashes(topo):
    """The whole forwarder kill -9'd mid-stream and started again, lf-tail
    and lf-buffer kill -9'd at random (seeded) instants, the log rotated
    all along: nothing lost."""
    t = topo("forwarder-crashes")
    standard(t, standby=False)
    f = t.fwd("fwd1")
    t.fwd_procs(f)
    rng = random.Random(1305)
    t.log(f, 2400, 200, rotate=250)
    t.app(f, "acked", 1500, 125)
    plan = sorted([("tail", rng.uniform(0.5, 9)) for _ in range(3)] +
                  [("buffer", rng.uniform(0.5, 9)) for _ in range(3)] +
                  [("all", rng.uniform(3, 6))], key=lambda x: x[1])
    start = time.monotonic()
    for k, (what, at) in enumerate(plan):
        d = start + at - time.monotonic()
        if d > 0:
            time.sleep(d)
        names = {"tail": ["lf-tail"], "buffer": ["lf-buffer"],
                 "all": None}[what]
        f.kill(*(names or FWD_TOOLS))
        time.sleep(rng.uniform(0.1, 0.8))
        if k == len(plan) - 1:
            t.repaired(td=t.all_ids)
        if names is None:
            t.fwd_procs(f)
        else:
            t.fwd_procs(f, only=names)
    t.wait_written()
    assert t.logs[0].rotations >= 8
    t.check("td", t.all_ids)


def test_destination_down(topo, mariadb):
    """Treasure Data answering 503 and MariaDB stopped for a while: the
    aggregators keep everything in their spools, and deliver it all once
    the destinations are back."""
    t = topo("destination-down")
    db = mariadb()
    t.start_td()
    t.start_stor(db)
    for a in ("agg1", "agg2"):
        t.agg_procs(t.agg(a))
    f = t.fwd("fwd1")
    t.fwd_procs(f)
    t.log(f, 1200, 150)
    t.app(f, "acked", 1200, 150)
    wait_for(lambda: t.recv_events(t.aggs[0]) > 200, what="traffic")
    t.td_post("/_emu/faults", {"status": 503, "count": -1})
    t.stor.kill("lf-mysql")
    db.stop()
    t.start_mysql()
    a1 = t.aggs[0]
    s0 = t.spool_bytes(a1, "spools/td")
    m0 = t.spool_bytes(t.stor)
    wait_for(lambda: t.spool_bytes(a1, "spools/td") > s0 + 50000,
             what="the aggregator's td spool to grow")
    wait_for(lambda: t.spool_bytes(t.stor) > m0 + 50000,
             what="the storage host's spool to grow")
    time.sleep(1)
    t.repaired(td=t.all_ids, mysql=t.mysql_ids)
    t.td_post("/_emu/faults/clear", {})
    db.start()
    t.wait_written()
    t.check("td", t.all_ids)
    t.check("mysql", t.mysql_ids)
    stats = json.loads(t.td_get("/_emu/stats"))
    assert stats["statuses"].get("503", 0) > 0, stats


class Filler:
    """A runaway writer on the aggregator's disk: keeps it full, taking
    every byte that is freed, until stopped."""

    def __init__(self, path):
        self.path = path
        self.stop_ = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        with open(self.path, "ab", buffering=0) as f:
            blk = b"\0" * 4096
            while not self.stop_.is_set():
                try:
                    f.write(blk)
                except OSError:
                    self.stop_.wait(0.02)

    def stop(self):
        self.stop_.set()
        self.t.join(10)
        os.unlink(self.path)


def small_disk(t, size, td_down=False, db=None):
    """td (and stor with db), agg1 alone (no standby: the back pressure
    must reach the forwarder) with its spools on a tmpfs of size, fwd1
    writing.  With td_down, td answers 503 and stor's lf-recv is down."""
    t.start_td()
    if db:
        t.start_stor(db)
        if td_down:
            t.stor.kill("lf-recv")
    a1 = t.agg("agg1")
    t.net.mount_tmpfs(a1.path("spools"), size)
    t.agg_procs(a1)
    f = t.fwd("fwd1")
    t.fwd_procs(f)
    if td_down:
        t.td_post("/_emu/faults", {"status": 503, "count": -1})
    t.log(f, 1500, 150)
    t.app(f, "acked", 1500, 150)
    return a1, f


def back_pressure(t, a1, f):
    """The forwarder's spool grows while agg1 cannot write."""
    s0 = t.spool_bytes(f)
    wait_for(lambda: t.spool_bytes(f) > s0 + 100000,
             what="back pressure: the forwarder's spool to grow")
    for p in a1.procs:
        assert p.alive(), "%s died: %s" % (p.name, p.logtext())
    assert "No space left on device" in a1.proc("lf-buffer").logtext()


def test_disk_full(topo):
    """The aggregator's spools on a small filesystem that a runaway
    writer fills: lf-buffer cannot commit, so it acks nothing; the
    forwarder's spool grows (back pressure); once the space is freed,
    everything is delivered."""
    t = topo("disk-full")
    a1, f = small_disk(t, "4m")
    wait_for(lambda: t.recv_events(a1) > 200, what="traffic on agg1")
    filler = Filler(a1.path("spools", "filler"))
    back_pressure(t, a1, f)
    t.repaired(td=t.all_ids)
    filler.stop()
    t.wait_written()
    t.check("td", t.all_ids)


def test_disk_full_backlog(topo, mariadb):
    """The aggregator's disk filled by its own backlog while both
    destinations are down (Treasure Data answering 503, the storage host's
    lf-recv gone), with no filler to delete: the consumers must free the
    space themselves.  The storage host comes back first, while td is
    still down and the disk full: lf-send (--compress gzip) must deliver
    its spool; then td.  (lf-tdlog, and lf-send with gzip, once needed
    disk space to compress a chunk, and so waited for ever.)"""
    t = topo("disk-full-backlog")
    a1, f = small_disk(t, "256k", td_down=True, db=mariadb())
    wait_for(lambda: "No space left on device" in
             a1.proc("lf-buffer").logtext(), 30,
             "the disk to fill")
    back_pressure(t, a1, f)
    t.start_stor_recv()
    wait_for(lambda: len(t.mysql_ids()) >= 200, 30,
             "the storage host to get the aggregator's backlog")
    t.repaired(td=t.all_ids, mysql=t.mysql_ids)
    t.td_post("/_emu/faults/clear", {})
    t.wait_written()
    t.check("td", t.all_ids)
    t.check("mysql", t.mysql_ids)
