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
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

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
    import urllib.request
    with urllib.request.urlopen("%s/_emu/rows?db=%s&table=%s" %
                                (url, db, table), timeout=5) as r:
        import json
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
        "*": {"SOCKET": str(tmp_path / "run" / "buffer.sock"),
              "READY_FILE": str(tmp_path / "run" / "buffer.ready")},
        "lf-buffer": {"SPOOL_DIR": str(spools), "BUFFER_OPTS":
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
