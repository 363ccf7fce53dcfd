"""End-to-end tests of contrib/: the runit and s6 service directories run
under the real supervisors (s6-svscan, runsvdir) with env files pointing
at temporary paths and free ports, readiness, kill -9 and restarts with
nothing acknowledged lost, a clean stop; the cron script replaying dead
letters; the logrotate example while lf-tail follows; the systemd units;
the shell syntax of every script.

The supervisors come from Debian's s6 and runit packages (scripts/deps
test); runit-init is never installed, so nothing here takes over init.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import msgpack
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import BIN, REPO, waiter  # noqa: E402
from fwdserver import FwdServer  # noqa: E402
import lfchunk  # noqa: E402

CONTRIB = REPO / "contrib"
wait = waiter(30)
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def need(*progs):
    for p in progs:
        if shutil.which(p) is None:
            pytest.skip("%s is not installed (scripts/deps test)" % p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:     # a zombie is dead for us
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def procs_under(path):
    """Pids of the processes whose command line or cwd names path."""
    path = str(path)
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink("/proc/%s/cwd" % d)
        except OSError:
            continue
        if (path in cmd or cwd.startswith(path)) and alive(int(d)):
            found.append((int(d), cmd))
    return found


def install_role(sup, role, dest, env):
    """Copy contrib/SUP/ROLE's service directories into dest and write
    env[service][VAR] into each service's env/ (a value "" is written as
    an empty line: set and empty).  Every service gets PATH (LF_BIN first)
    and its log's LOG_DIR."""
    src = CONTRIB / sup / role
    names = sorted(os.listdir(src))
    for name in names:
        shutil.copytree(src / name, dest / name, symlinks=True)
        e = dest / name / "env"
        e.mkdir(exist_ok=True)
        vals = {"PATH": "%s:%s" % (BIN, SYS_PATH),
                "LOG_DIR": str(dest.parent / "log" / name), "WAIT": "20"}
        vals.update(env.get("*", {}))
        vals.update(env.get(name, {}))
        for k, v in vals.items():
            (e / k).write_text(v + "\n")
    return names


def check_logs(logdir):
    """The services' logs (svlogd's or s6-log's current files): no
    sanitizer report, no fatal error.  Returns their text."""
    text = ""
    for root, _, files in os.walk(logdir):
        for fn in files:
            if fn == "current":
                with open(os.path.join(root, fn), errors="replace") as f:
                    text += f.read()
    # at the first start a service may look for lf-buffer's supervisor
    # before s6-svscan made it; its run exits and is run again (README)
    rest = "\n".join(line for line in text.splitlines()
                     if "s6-svwait: fatal: unable to s6_svstatus_read"
                     not in line)
    for mark in ("Sanitizer", "runtime error:", ": fatal:"):
        assert mark not in rest, text
    return text


def event_seqs(msgs):
    """The 'seq' of every event a FwdServer got, as a list."""
    out = []
    for m in msgs:
        for _, rec in m.events():
            out.append(rec)
    return out


class Sender:
    """A forward client that sends each message with a chunk id until it
    is acked, reconnecting as needed: at least once."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.unpacker = None

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sock = s
        self.unpacker = msgpack.Unpacker(raw=False)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send(self, tag, records, deadline=30):
        entries = b"".join(msgpack.packb([int(time.time()), r])
                           for r in records)
        chunk = base64.b64encode(os.urandom(16)).decode()
        msg = msgpack.packb([tag, entries, {"chunk": chunk,
                                            "size": len(records)}],
                            use_bin_type=True)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(msg)
                while True:
                    data = self.sock.recv(4096)
                    if not data:
                        raise OSError("closed")
                    self.unpacker.feed(data)
                    for a in self.unpacker:
                        if isinstance(a, dict) and a.get("ack") == chunk:
                            return
            except OSError:
                self.close()
                time.sleep(0.1)
        raise AssertionError("no ack for %s in %ss" % (tag, deadline))


# ---- s6: the forwarder role ----

def s6_pid(svc):
    out = subprocess.run(["s6-svstat", "-o", "up,ready,pid", str(svc)],
                         capture_output=True, text=True, timeout=10)
    f = out.stdout.split()
    if out.returncode != 0 or len(f) != 3:
        return None
    up, ready, pid = f
    return int(pid) if up == "true" and ready == "true" else None


def s6_restarted(svc, old):
    """Wait for svc to be up and ready again under a new pid."""
    return wait(lambda: (s6_pid(svc) or old) != old and s6_pid(svc),
                what="%s restarted and ready" % svc.name)


def test_s6_forwarder(tmp_path):
    """The forwarder role under s6-svscan: lf-tail and lf-recv into
    lf-buffer, lf-send to an aggregator (a fake forward server with acks).
    Readiness through --notify-fd (s6-svwait -U); kill -9 of each service
    is restarted by s6-supervise; every line and every acked event reaches
    the aggregator; a tag outside data.production does not; s6-svscanctl
    -t stops it all."""
    need("s6-svscan", "s6-svwait", "s6-svstat", "s6-svscanctl", "s6-envdir",
         "s6-log")
    agg = FwdServer()
    scan = tmp_path / "scan"
    scan.mkdir()
    app = tmp_path / "app"
    app.mkdir()
    log = app / "web.log"
    with open(log, "w") as f:
        for i in range(100):
            f.write("seq:t%d\tmsg:before start\n" % i)
    port = free_port()
    names = install_role("s6", "forwarder", scan, {
        "*": {"SOCKET": str(tmp_path / "run" / "buffer.sock"),
              "SPOOL": str(tmp_path / "spool" / "forward")},
        "lf-buffer": {"BUFFER_OPTS": "--flush-interval 0.2"},
        "lf-tail": {"FILES": str(app / "*.log"),
                    "POS_FILE": str(tmp_path / "lib" / "app.pos"),
                    "TAG": "data.production.web",
                    "TAIL_OPTS": "--read-from-head --refresh-interval 1"},
        "lf-recv": {"LISTEN": "127.0.0.1:%d" % port},
        "lf-send": {"SERVER": agg.addr, "STANDBY": "",
                    "SEND_OPTS": "--retry-wait 0.2 --retry-max-interval 1"},
    })
    assert names == ["lf-buffer", "lf-recv", "lf-send", "lf-tail"]
    svscan = subprocess.Popen(["s6-svscan", str(scan)],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              start_new_session=True)
    sender = Sender(port)
    try:
        for n in names:     # supervised (s6-svwait needs the status)
            wait(lambda: subprocess.run(["s6-svok", str(scan / n)])
                 .returncode == 0 and (scan / n / "supervise" /
                                       "status").exists(),
                 what="s6-supervise on %s" % n)
        # readiness: each tool's --notify-fd, through notification-fd
        subprocess.run(["s6-svwait", "-U", "-t", "20000"] +
                       [str(scan / n) for n in names], check=True,
                       timeout=30)
        pids = {n: s6_pid(scan / n) for n in names}
        assert all(pids.values()), pids
        expect = {"t%d" % i for i in range(100)}

        def traffic(k):
            sender.send("data.production.app",
                        [{"seq": "r%d.%d" % (k, i)} for i in range(20)])
            expect.update("r%d.%d" % (k, i) for i in range(20))
            with open(log, "a") as f:
                for i in range(20):
                    f.write("seq:t%d.%d\tmsg:round\n" % (k, i))
            expect.update("t%d.%d" % (k, i) for i in range(20))

        traffic(0)
        sender.send("data.staging.app", [{"seq": "staging"}])
        seen = []
        for k, victim in enumerate(["lf-buffer", "lf-send", "lf-tail",
                                    "lf-recv"], 1):
            old = pids[victim]
            os.kill(old, signal.SIGKILL)
            traffic(k)      # while it is down or coming back
            pids[victim] = s6_restarted(scan / victim, old)
            seen.append(old)
            traffic(k + 10)

        def arrived():
            got = {r.get("seq") for r in event_seqs(agg.msgs)}
            return expect <= got
        wait(arrived, 60, "every line and acked event at the aggregator")
        recs = event_seqs(agg.msgs)
        assert "staging" not in {r.get("seq") for r in recs}
        assert not agg.errors
        # the log services caught the tools' output
        assert (tmp_path / "log" / "lf-buffer" / "current").exists()
    finally:
        sender.close()
        subprocess.run(["s6-svscanctl", "-t", str(scan)], timeout=10)
        try:
            svscan.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(svscan.pid, signal.SIGKILL)
            raise
        agg.close()
    assert svscan.returncode == 0
    wait(lambda: not procs_under(tmp_path), 10, "no process left")
    for p in list(pids.values()) + seen:
        assert not alive(p)
    check_logs(tmp_path / "log")


def test_s6_forwarder_standby(tmp_path):
    """The forwarder's lf-send as the run script starts it, with STANDBY
    set: while the active aggregator is down the events go to the
    standby, and every acked event arrives at one of them."""
    need("s6-svscan", "s6-svwait", "s6-svscanctl")
    active, standby = FwdServer(), FwdServer()
    scan = tmp_path / "scan"
    scan.mkdir()
    port = free_port()
    names = install_role("s6", "forwarder", scan, {
        "*": {"SOCKET": str(tmp_path / "run" / "buffer.sock"),
              "SPOOL": str(tmp_path / "spool" / "forward")},
        "lf-buffer": {"BUFFER_OPTS": "--flush-interval 0.2"},
        "lf-tail": {"FILES": str(tmp_path / "none" / "*.log"),
                    "POS_FILE": str(tmp_path / "app.pos")},
        "lf-recv": {"LISTEN": "127.0.0.1:%d" % port},
        "lf-send": {"SERVER": active.addr, "STANDBY": standby.addr,
                    "SEND_OPTS": "--heartbeat-interval 0.2 --hard-timeout 2 "
                                 "--retry-wait 0.2 --retry-max-interval 1"},
    })
    svscan = subprocess.Popen(["s6-svscan", str(scan)],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              start_new_session=True)
    sender = Sender(port)
    try:
        for n in names:
            wait(lambda: (scan / n / "supervise" / "status").exists(),
                 what="s6-supervise on %s" % n)
        subprocess.run(["s6-svwait", "-U", "-t", "20000"] +
                       [str(scan / n) for n in names], check=True,
                       timeout=30)
        expect = set()

        def traffic(k):
            sender.send("data.production.app",
                        [{"seq": "%d.%d" % (k, i)} for i in range(10)])
            expect.update("%d.%d" % (k, i) for i in range(10))

        def got(*srvs):
            return {r.get("seq") for s in srvs for r in event_seqs(s.msgs)}
        traffic(0)
        wait(lambda: expect <= got(active), what="events at the active")
        assert not got(standby)
        active.close()          # the active aggregator goes down
        for k in range(1, 4):
            traffic(k)
        wait(lambda: expect <= got(active, standby), 30,
             "every event at the active or the standby")
        assert got(standby), "nothing went to the standby"
    finally:
        sender.close()
        subprocess.run(["s6-svscanctl", "-t", str(scan)], timeout=10)
        try:
            svscan.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(svscan.pid, signal.SIGKILL)
            raise
        active.close()
        standby.close()
    wait(lambda: not procs_under(tmp_path), 10, "no process left")
    check_logs(tmp_path / "log")


def test_s6_storage(tmp_path):
    """The storage role under s6-svscan: lf-recv -> lf-buffer (chunks
    keyed by category) -> lf-mysql into a private MariaDB, a table
    data_${category} per category.  lf-mysql and lf-buffer killed -9 are
    restarted; every acked event is a row, once (the id is the key)."""
    need("s6-svscan", "s6-svwait", "s6-svstat", "s6-svscanctl")
    from mariadb import MariaDB, available
    if not available():
        pytest.skip("no mariadbd")
    db = MariaDB()
    db.start()
    scan = tmp_path / "scan"
    scan.mkdir()
    port = free_port()
    try:
        db.sql("CREATE DATABASE logs")
        for cat in ("web", "api"):
            db.sql("CREATE TABLE data_%s (id BIGINT PRIMARY KEY, "
                   "category VARCHAR(32), data JSON)" % cat, db="logs")
        names = install_role("s6", "storage", scan, {
            "*": {"SOCKET": str(tmp_path / "run" / "buffer.sock")},
            "lf-buffer": {"SPOOL": str(tmp_path / "spool" / "mysql"),
                          "BUFFER_OPTS": "--flush-interval 0.2 "
                                         "--queued-chunks-limit-size 64"},
            "lf-recv": {"LISTEN": "127.0.0.1:%d" % port},
            "lf-mysql": {"SPOOL": str(tmp_path / "spool" / "mysql"),
                         "DB_SOCKET": db.sock, "USERNAME": "root",
                         "PASSWORD_FILE": "",
                         "MYSQL_OPTS": "--on-duplicate-key-update "
                                       "--on-duplicate-update-keys data "
                                       "--retry-wait 0.2"},
        })
        assert names == ["lf-buffer", "lf-mysql", "lf-recv"]
        svscan = subprocess.Popen(["s6-svscan", str(scan)],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        sender = Sender(port)
        try:
            for n in names:
                wait(lambda: (scan / n / "supervise" / "status").exists(),
                     what="s6-supervise on %s" % n)
            subprocess.run(["s6-svwait", "-U", "-t", "20000"] +
                           [str(scan / n) for n in names], check=True,
                           timeout=30)
            ids = []

            def traffic(k):
                recs = [{"id": k * 100 + i, "category": ("web", "api")[i % 2],
                         "data": {"k": k, "i": i}} for i in range(20)]
                sender.send("data.production.app", recs)
                ids.extend(r["id"] for r in recs)

            traffic(0)
            for k, victim in enumerate(["lf-mysql", "lf-buffer"], 1):
                old = s6_pid(scan / victim)
                os.kill(old, signal.SIGKILL)
                traffic(k)
                s6_restarted(scan / victim, old)
                traffic(k + 10)

            def rows():
                return sorted(int(r[0]) for cat in ("web", "api")
                              for r in db.rows("SELECT id FROM data_%s" %
                                               cat, db="logs"))
            wait(lambda: rows() == sorted(ids), 60,
                 "every acked event a row in data_${category}")
            web = db.rows("SELECT id, category FROM data_web", db="logs")
            assert web and all(r[1] == "web" for r in web)
        finally:
            sender.close()
            subprocess.run(["s6-svscanctl", "-t", str(scan)], timeout=10)
            try:
                svscan.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(svscan.pid, signal.SIGKILL)
                raise
    finally:
        db.close()
    wait(lambda: not procs_under(tmp_path), 10, "no process left")
    check_logs(tmp_path / "log")


# ---- runit: the aggregator role ----

def runit_pid(svc):
    try:
        return int((svc / "supervise" / "pid").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def sv(*args, timeout=30):
    return subprocess.run(["sv"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def start_emulator(tmp_path):
    portf = tmp_path / "td.port"
    p = subprocess.Popen([sys.executable, str(REPO / "scripts" /
                                               "td-emulator"),
                          "--host", "127.0.0.1", "--port", "0",
                          "--port-file", str(portf), "--key", "k",
                          "--any-table", "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: portf.exists() and portf.read_text().strip(),
         what="the emulator")
    return p, "http://127.0.0.1:%s" % portf.read_text().strip()


def emu_rows(url, db, table):
    with urllib.request.urlopen("%s/_emu/rows?db=%s&table=%s" %
                                (url, db, table), timeout=5) as r:
        return [json.loads(x) for x in r.read().decode().splitlines() if x]


def test_runit_aggregator(tmp_path):
    """The aggregator role under runsvdir: lf-recv (source hostname,
    --match) -> lf-buffer copying into three spools -> lf-tdlog (the
    emulator), lf-file (LTSV files), lf-send (a fake storage host).
    Readiness of lf-buffer through its check script (sv start); lf-buffer
    and lf-recv killed -9 are restarted by runsv; every acked event
    reaches all three outputs; HUP to runsvdir stops everything."""
    need("runsvdir", "runsv", "sv", "chpst", "svlogd")
    storage = FwdServer()
    emu, url = start_emulator(tmp_path)
    key = tmp_path / "td.key"
    key.write_text("k\n")
    key.chmod(0o600)
    svdir = tmp_path / "service"
    svdir.mkdir()
    port = free_port()
    spools = tmp_path / "spool"
    backup = tmp_path / "backup"
    names = install_role("runit", "aggregator", svdir, {
        "*": {"SOCKET": str(tmp_path / "run" / "buffer.sock")},
        # lf-buffer's own: its check script must read it, not its caller's
        "lf-buffer": {"READY_FILE": str(tmp_path / "run" / "buffer.ready"),
                      "SPOOL_DIR": str(spools), "BUFFER_OPTS":
                      "--flush-mode interval --flush-interval 0.2"},
        "lf-recv": {"LISTEN": "127.0.0.1:%d" % port},
        "lf-tdlog": {"SPOOL": str(spools / "td"), "APIKEY_FILE": str(key),
                     "ENDPOINT": url, "TDLOG_OPTS": "--retry-wait 0.2"},
        "lf-file": {"SPOOL": str(spools / "backup"),
                    "FILE_PATH": str(backup) + "/${tag}/%Y%m%d%H"},
        "lf-send": {"SERVER": storage.addr, "SPOOL": str(spools / "storage"),
                    "SEND_OPTS": "--retry-wait 0.2"},
    })
    assert names == ["lf-buffer", "lf-file", "lf-recv", "lf-send",
                     "lf-tdlog"]
    rsd = subprocess.Popen(["runsvdir", "-P", str(svdir)],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL,
                           start_new_session=True,
                           env=dict(os.environ, PATH=SYS_PATH))
    sender = Sender(port)
    seen = []
    try:
        for n in names:
            wait(lambda: (svdir / n / "supervise" / "ok").exists(),
                 what="runsv on %s" % n)
        # sv start waits for lf-buffer's check, which reads the file its
        # --notify-fd wrote (sv check alone says ok for "down, want up")
        r = sv("-w", "20", "start", svdir / "lf-buffer")
        assert r.returncode == 0, r.stdout
        assert (tmp_path / "run" / "buffer.ready").read_text() == "\n"
        for n in names:
            wait(lambda: runit_pid(svdir / n), what="%s up" % n)
        expect = set()

        def traffic(k):
            sender.send("data.production.web",
                        [{"seq": "%d.%d" % (k, i)} for i in range(25)])
            expect.update("%d.%d" % (k, i) for i in range(25))

        traffic(0)
        sender.send("data.staging.web", [{"seq": "staging"}])
        for k, victim in enumerate(["lf-buffer", "lf-recv", "lf-send"], 1):
            old = runit_pid(svdir / victim)
            os.kill(old, signal.SIGKILL)
            seen.append(old)
            traffic(k)
            wait(lambda: runit_pid(svdir / victim) not in (0, old),
                 what="%s restarted" % victim)
            r = sv("-w", "20", "start", svdir / victim)
            assert r.returncode == 0, r.stdout
            traffic(k + 10)

        def files_seqs():
            out = []
            for root, _, files in os.walk(backup):
                for fn in files:
                    with open(os.path.join(root, fn)) as f:
                        for line in f:
                            kv = dict(x.split(":", 1)
                                      for x in line.rstrip("\n").split("\t"))
                            out.append(kv)
            return out
        wait(lambda: expect <= {r.get("seq") for r in
                                event_seqs(storage.msgs)},
             60, "every acked event at the storage host")
        wait(lambda: expect <= {r.get("seq") for r in files_seqs()},
             60, "every acked event in the LTSV backup")
        wait(lambda: expect <= {r.get("seq") for r in
                                emu_rows(url, "production", "web")},
             60, "every acked event in the emulator")
        for r in event_seqs(storage.msgs) + files_seqs():
            assert r.get("hostname"), r     # source_hostname_key
        assert "staging" not in {r.get("seq") for r in files_seqs()}
        assert not storage.errors
    finally:
        sender.close()
        rsd.send_signal(signal.SIGHUP)   # TERM to each runsv: a clean stop
        try:
            rsd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(rsd.pid, signal.SIGKILL)
            raise
        finally:
            emu.terminate()
            emu.wait(timeout=10)
            storage.close()
    wait(lambda: not procs_under(tmp_path), 30, "no process left")
    for p in seen:
        assert not alive(p)
    assert "ok: run: ../lf-buffer" in check_logs(tmp_path / "log")


# ---- cron: replaying dead letters ----

def test_cron_requeue(tmp_path):
    """contrib/cron/lf-requeue on a spool with dead chunks (one of them
    too damaged to requeue): the good ones are requeued and delivered to
    a forward server with acks, the damaged one stays dead, and the exit
    status says so (65)."""
    spool = lfchunk.make_spool(tmp_path / "spool")
    dead = []
    for k in range(3):
        name = lfchunk.write_chunk(
            spool, "data.production.app",
            [(1700000000 + i, {"seq": "%d.%d" % (k, i)}) for i in range(10)],
            dirname="dead")
        with open(os.path.join(spool, "dead", name + ".reason"), "w") as f:
            f.write("retry limit reached after 3 retries: refused\n")
        dead.append(name)
    bad = lfchunk.write_chunk(spool, "data.production.app",
                              [(1700000000, {"seq": "bad"})],
                              dirname="dead", corrupt="flip-body")
    srv = FwdServer()
    try:
        env = dict(os.environ, PATH="%s:%s" % (BIN, SYS_PATH))
        p = subprocess.run([str(CONTRIB / "cron" / "lf-requeue"), spool,
                            "--server", srv.addr, "--require-ack-response",
                            "--retry-max-times", "2", "--retry-wait", "0.1"],
                           capture_output=True, text=True, env=env,
                           timeout=60)
        assert p.returncode == 65, (p.stdout, p.stderr)
        for n in dead:
            assert "requeued %s" % n in p.stdout
        got = sorted(r["seq"] for r in event_seqs(srv.msgs))
        assert got == sorted("%d.%d" % (k, i) for k in range(3)
                             for i in range(10))
        assert lfchunk.list_chunks(spool, "new") == []
        assert lfchunk.list_chunks(spool, "dead") == [bad]
        # nothing left to do: a second run is quiet and succeeds
        os.unlink(os.path.join(spool, "dead", bad))
        p = subprocess.run([str(CONTRIB / "cron" / "lf-requeue"), spool,
                            "--server", srv.addr, "--require-ack-response"],
                           capture_output=True, text=True, env=env,
                           timeout=60)
        assert (p.returncode, p.stdout) == (0, ""), p.stderr
    finally:
        srv.close()


def test_cron_requeue_usage(tmp_path):
    p = subprocess.run([str(CONTRIB / "cron" / "lf-requeue")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 64 and "usage" in p.stderr
    env = dict(os.environ, PATH="%s:%s" % (BIN, SYS_PATH))
    p = subprocess.run([str(CONTRIB / "cron" / "lf-requeue"),
                        str(tmp_path / "nospool"), "--server", "127.0.0.1:9"],
                       capture_output=True, text=True, env=env, timeout=10)
    assert p.returncode == 66


# ---- logrotate with lf-tail ----

def spool_events(spool):
    evs = []
    for n in lfchunk.list_chunks(spool):
        c = lfchunk.read_chunk(os.path.join(spool, "new", n))
        evs.extend(e[1] for e in c["events"])
    return evs


def test_logrotate_with_lf_tail(tmp_path):
    """contrib/logrotate/lf-app, its paths moved into tmp_path, run with
    logrotate -f three times while an application writes and lf-tail
    follows the log into lf-buffer: every line arrives once."""
    need("logrotate")
    app = tmp_path / "app"
    app.mkdir()
    conf = (CONTRIB / "logrotate" / "lf-app").read_text()
    assert "copytruncate" not in conf.split("{", 1)[1]
    conf = conf.replace("/var/log/app/", str(app) + "/")
    conf = conf.replace("/run/app.pid", str(tmp_path / "app.pid"))
    (tmp_path / "logrotate.conf").write_text(conf)
    sock = tmp_path / "buffer.sock"
    spool = str(tmp_path / "spool")
    (app / "web.log").write_text("")
    buf = subprocess.Popen([os.path.join(BIN, "lf-buffer"), "--listen",
                            "unix:%s" % sock, "--flush-interval", "0.2",
                            "--queued-chunks-limit-size", "100",
                            spool], stderr=subprocess.PIPE)
    wait(lambda: sock.exists(), what="lf-buffer's socket")
    tail = subprocess.Popen([os.path.join(BIN, "lf-tail"), "-t",
                             "data.production.app", "-f", "ltsv",
                             "--pos-file", str(tmp_path / "app.pos"),
                             "--rotate-wait", "1", "--to", "unix:%s" % sock,
                             str(app / "*.log")], stderr=subprocess.PIPE)
    n = 3000
    done = threading.Event()

    def writer():      # reopens the log for each line, as after a HUP
        for i in range(n):
            with open(app / "web.log", "a") as f:
                f.write("seq:%d\tmsg:line %d\n" % (i, i))
            if i % 100 == 99:
                time.sleep(0.05)
        done.set()
    try:
        time.sleep(0.5)     # lf-tail has the file open
        t = threading.Thread(target=writer)
        t.start()
        for _ in range(3):
            time.sleep(0.4)
            r = subprocess.run(["logrotate", "-f", "-s",
                                str(tmp_path / "logrotate.state"),
                                str(tmp_path / "logrotate.conf")],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
        t.join()
        rotated = sorted(os.listdir(app))
        assert "web.log.1" in rotated and "web.log.2.gz" in rotated, rotated
        try:
            wait(lambda: len(spool_events(spool)) >= n, 30,
                 "every line in the spool")
        except AssertionError:
            seqs = sorted({int(e["seq"]) for e in spool_events(spool)})
            missing = sorted(set(range(n)) - set(seqs))
            raise AssertionError("%d of %d; missing %s..." % (
                len(seqs), n, missing[:20]))
        time.sleep(0.5)     # a duplicate would come now
        seqs = [e["seq"] for e in spool_events(spool)]
        assert sorted(seqs, key=int) == [str(i) for i in range(n)]
    finally:
        for p in (tail, buf):
            p.terminate()
            p.wait(timeout=30)
    assert tail.returncode == 0, tail.stderr.read()
    assert buf.returncode == 0, buf.stderr.read()


# ---- systemd units ----

UNITS = sorted((CONTRIB / "systemd").glob("*.service"))


def tool_options(tool):
    """The long options a tool's --help names."""
    p = subprocess.run([os.path.join(BIN, tool), "--help"],
                       capture_output=True, text=True, timeout=10)
    return set(re.findall(r"--[a-z][a-z0-9-]*", p.stdout + p.stderr))


# --metrics-file comes with another change; the scripts pass it only when
# METRICS_FILE is set, and the tests leave it empty.
PENDING = {"--metrics-file"}


def command_options(text, tool):
    """The long options given to tool in the command lines of text (one
    command per logical line, continuation lines joined)."""
    text = text.replace("\\\n", " ")
    opts = set()
    for line in text.splitlines():
        m = re.search(r"\b%s\b(.*)" % re.escape(tool), line)
        if m and not line.lstrip().startswith("#"):
            opts |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m.group(1)))
    return opts - {"--"}


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on each unit (templates as an instance),
    with ExecStart pointing at LF_BIN: it must print nothing."""
    need("systemd-analyze")
    assert len(UNITS) == 8
    for u in UNITS:
        name = u.name.replace("@.", "@test.")
        (tmp_path / name).write_text(
            u.read_text().replace("/usr/local/bin/", str(BIN) + "/"))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            str(tmp_path / name)],
                           capture_output=True, text=True, timeout=60)
        if "Failed to initialize" in p.stderr or \
                "not booted" in p.stderr:
            pytest.skip("systemd-analyze cannot run here: %s" % p.stderr)
        assert (p.returncode, p.stderr) == (0, ""), (u.name, p.stderr)


def test_systemd_units_options():
    """Every option in a unit's ExecStart, and in the example environment
    files, is one the tool's --help names; the units keep to Type=exec,
    Restart=always and the hardening."""
    envs = {f.name: f.read_text()
            for f in (CONTRIB / "systemd" / "env").glob("*.env")}
    for u in UNITS:
        text = u.read_text()
        tool = u.name.split("@")[0].split(".")[0]
        m = re.search(r"^ExecStart=/usr/local/bin/(\S+)(.*)$", text, re.M)
        assert m and m.group(1) == tool, u.name
        for key in ("Type=exec", "Restart=always", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "ReadWritePaths=",
                    "EnvironmentFile=/etc/lf/"):
            assert key in text or (key == "ReadWritePaths=" and
                                   tool in ("lf-recv", "lf-tail")), \
                (u.name, key)
        known = tool_options(tool)
        used = command_options("%s%s" % (tool, m.group(2)), tool)
        for name, env in envs.items():
            if name.startswith(tool + "-") or name == tool + ".env":
                used |= command_options(
                    "\n".join(tool + " " + line.split("=", 1)[1]
                              for line in env.splitlines()
                              if "_OPTS=" in line), tool)
        assert used, u.name
        assert used <= known, (u.name, used - known)


# ---- the run scripts' options, and shell syntax ----

SCRIPTS = sorted(p for p in CONTRIB.rglob("*")
                 if p.is_file() and p.read_bytes().startswith(b"#!/bin/sh"))


def test_run_scripts_options():
    """Each run script names an existing option of its tool, and each
    service directory is complete (s6: notification-fd, type, the
    dependency on lf-buffer; runit: lf-buffer's check)."""
    n = 0
    for sup in ("runit", "s6"):
        for role in ("forwarder", "aggregator", "storage"):
            for svc in sorted((CONTRIB / sup / role).iterdir()):
                tool = svc.name
                run = svc / "run"
                for f in (run, svc / "log" / "run"):
                    assert os.access(f, os.X_OK), f
                text = run.read_text()
                assert "exec 2>&1" in text
                used = command_options(text, "exec " + tool)
                assert used, run
                assert used - PENDING <= tool_options(tool), \
                    (run, used - tool_options(tool))
                if sup == "s6":
                    assert "--notify-fd 3" in text
                    assert (svc / "notification-fd").read_text() == "3\n"
                    assert (svc / "type").read_text() == "longrun\n"
                    assert (svc / "dependencies.d" / "lf-buffer").exists() \
                        == (tool != "lf-buffer")
                else:
                    assert (svc / "check").exists() == (tool == "lf-buffer")
                n += 1
    assert n == 24


def test_shell_syntax():
    """sh -n on every shell script in contrib/, and shellcheck when it
    is installed."""
    assert len(SCRIPTS) >= 50
    for s in SCRIPTS:
        p = subprocess.run(["sh", "-n", str(s)], capture_output=True,
                           text=True, timeout=10)
        assert (p.returncode, p.stderr) == (0, ""), s
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    p = subprocess.run(["shellcheck", "-s", "sh"] + [str(s) for s in SCRIPTS],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout


def test_lf7_seed_commands():
    """lf(7), The seed topology: the three td-agent.conf files and the lf
    command lines of each role, whose options all exist."""
    text = (REPO / "man" / "lf.7").read_text()
    sec = text.split(".Ss The seed topology", 1)[1].split(".Sh ", 1)[0]
    for role in ("The forwarder:", "The aggregator:", "The storage host:"):
        assert role in sec
    cmds = sec.replace("\\e\n", " ").splitlines()
    tools = set()
    for line in cmds:
        m = re.match(r"(lf-[a-z]+) ", line)
        if m:
            tool = m.group(1)
            tools.add(tool)
            used = command_options(line, tool)
            assert used <= tool_options(tool), (line, used)
    assert tools == {"lf-buffer", "lf-tail", "lf-recv", "lf-send",
                     "lf-tdlog", "lf-file", "lf-mysql"}
