"""Hosts as network namespaces for the multi-host tests (test_ha.py).

A Net is a private switch: a namespace holding a bridge, and one namespace
per host, each joined to the bridge by a veth pair and given its own
address in 10.77.0.0/24 (the same subnet in every test: no namespace is
shared, so two tests never see each other's).  Processes run in a host
with `ip netns exec`; each is kept as a Popen in its own process group,
its stderr in a log file.  Net.close() kills every process of every
namespace (`ip netns pids`), then deletes the namespaces, whatever state
the test left them in.

Each host gets /etc/netns/NS/hosts (bind-mounted over /etc/hosts by `ip
netns exec`) naming every host of the net, so lf-recv's
--source-hostname-key finds the senders' names as it would on a LAN.

Run as a script, this module is the applications of the forwarders:

    ha.py acked  PREFIX N TAG PORT RATE [PROGRESS]
        a Fluentd logger with require_ack_response: batches of 25 events,
        each resent with the same chunk id until acked (reconnecting as
        long as it takes); PROGRESS gets the count acked so far
    ha.py fluent PREFIX N TAG PORT RATE [PROGRESS]
        Debian's python3-fluent-logger (no acks: for runs where nothing
        on the forwarder is killed)

N events with ids PREFIXnnnnnn, RATE a second, to 127.0.0.1:PORT.
"""
import base64
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SUBNET = "10.77.0."
PORT = 24224
_seq = itertools.count()


def sh(*args, check=True):
    r = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(map(str, args)),
                                       r.stderr.decode().strip()))
    return r.stdout.decode()


class Proc:
    def __init__(self, host, name, argv, popen, log):
        self.host, self.name, self.argv = host, name, argv
        self.p, self.log = popen, log

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.signal(signal.SIGKILL)
        self.p.wait(timeout=30)

    def stop(self, timeout=30):
        """TERM, then KILL if it does not go in time; its exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.p.returncode

    def logtext(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


class Host:
    def __init__(self, net, role, ip):
        self.net, self.role, self.ip = net, role, ip
        self.ns = "%s-%s" % (net.prefix, role)
        self.dir = os.path.join(net.dir, role)
        self.procs = []
        os.makedirs(self.dir)

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def start(self, name, argv, env=None, notify=True, stdout=None,
              timeout=60):
        """Start argv in the host; with notify, pass --notify-fd and wait
        for the tool's readiness line."""
        argv = [str(a) for a in argv]
        pass_fds = ()
        r = w = None
        if notify:
            r, w = os.pipe()
            argv = argv[:1] + ["--notify-fd", str(w)] + argv[1:]
            pass_fds = (w,)
        log = self.path("%s.%d.log" % (name, next(_seq)))
        e = dict(os.environ)
        e.update({"LC_ALL": "C", "no_proxy": "*",
                  "ASAN_OPTIONS": os.environ.get(
                      "ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1"),
                  "UBSAN_OPTIONS": os.environ.get(
                      "UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")})
        e.update(env or {})
        with open(log, "wb") as lf:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns] + argv,
                                 stdin=subprocess.DEVNULL,
                                 stdout=stdout or subprocess.DEVNULL,
                                 stderr=lf, env=e, pass_fds=pass_fds,
                                 start_new_session=True)
        proc = Proc(self, name, argv, p, log)
        self.procs.append(proc)
        if notify:
            os.close(w)
            try:
                ready = _read_line(r, timeout)
            finally:
                os.close(r)
            if not ready:
                proc.kill()
                raise AssertionError("%s on %s not ready in %ss:\n%s" % (
                    name, self.role, timeout, proc.logtext()[-3000:]))
        return proc

    def proc(self, name):
        """The last process started under name."""
        return [p for p in self.procs if p.name == name][-1]

    def kill(self, *names):
        """kill -9 the processes of names (all when none), as a crash."""
        for p in self.procs:
            if not names or p.name in names:
                if p.alive():
                    p.kill()

    def run(self, *argv, check=True):
        return sh("ip", "netns", "exec", self.ns, *argv, check=check)


def _read_line(fd, timeout):
    end = time.monotonic() + timeout
    import select
    while time.monotonic() < end:
        rl, _, _ = select.select([fd], [], [], 0.2)
        if rl:
            return os.read(fd, 1) == b"\n"
    return False


class Net:
    """The switch and the hosts of one test."""

    def __init__(self, workdir):
        self.prefix = "lfha%dx%d" % (os.getpid(), next(_seq))
        self.dir = str(workdir)
        self.hosts = {}
        self.mounts = []
        self.sw = self.prefix + "-sw"
        self.nss = []
        self._addns(self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")

    def _addns(self, ns):
        sh("ip", "netns", "add", ns)
        self.nss.append(ns)

    def host(self, role):
        """A new host named role, with the next address."""
        ip = SUBNET + str(10 + len(self.hosts))
        h = Host(self, role, ip)
        self._addns(h.ns)
        port = "p" + role
        assert len(port) <= 15
        sh("ip", "-n", self.sw, "link", "add", port, "type", "veth", "peer",
           "name", "eth0", "netns", h.ns)
        sh("ip", "-n", self.sw, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", h.ns, "addr", "add", ip + "/24", "dev", "eth0")
        sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", h.ns, "link", "set", "lo", "up")
        self.hosts[role] = h
        self._write_hosts()
        return h

    def _write_hosts(self):
        text = "127.0.0.1 localhost\n" + "".join(
            "%s %s\n" % (h.ip, r) for r, h in self.hosts.items())
        for h in self.hosts.values():
            d = os.path.join("/etc/netns", h.ns)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write(text)

    def link(self, role, up):
        """Cut (or restore) a host's cable: its port on the switch goes
        down; the host itself notices nothing but silence."""
        sh("ip", "-n", self.sw, "link", "set", "p" + role,
           "up" if up else "down")

    def mount_tmpfs(self, path, size):
        os.makedirs(path, exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
           "lfha", path)
        self.mounts.append(path)

    def procs(self):
        return [p for h in self.hosts.values() for p in h.procs]

    def close(self):
        for p in self.procs():
            p.signal(signal.SIGKILL)
        for ns in self.nss:
            for _ in range(50):
                pids = sh("ip", "netns", "pids", ns, check=False).split()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                time.sleep(0.05)
        for p in self.procs():
            try:
                p.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for m in reversed(self.mounts):
            sh("umount", "-l", m, check=False)
        for ns in reversed(self.nss):
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)


# ---- the applications (run inside a forwarder with `ip netns exec`) ----

def _progress(path, n):
    """The count of events acked so far, for the test to read at any time."""
    if path:
        with open(path + ".tmp", "w") as f:
            f.write("%d\n" % n)
        os.replace(path + ".tmp", path)


def app_acked(prefix, n, tag, port, rate, progress=None):
    import msgpack
    batch = 25
    sock = None
    unp = None
    sent = 0
    t0 = time.monotonic()
    for b in range(0, n, batch):
        evs = b"".join(msgpack.packb([
            msgpack.ExtType(0, int(time.time()).to_bytes(4, "big") +
                            (0).to_bytes(4, "big")),
            {"id": "%s%06d" % (prefix, i), "src": "app",
             "msg": "event %d of %s" % (i, prefix)}], use_bin_type=True)
            for i in range(b, min(n, b + batch)))
        token = base64.b64encode(("%s:%d" % (prefix, b)).encode()
                                 .ljust(16, b".")[:16]).decode()
        msg = msgpack.packb([tag, evs, {"size": min(n, b + batch) - b,
                                        "chunk": token}], use_bin_type=True)
        while True:
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), 2)
                    sock.settimeout(10)
                    unp = msgpack.Unpacker(raw=False)
                sock.sendall(msg)
                ack = None
                while ack is None:
                    d = sock.recv(4096)
                    if not d:
                        raise ConnectionError("closed")
                    unp.feed(d)
                    for o in unp:
                        if isinstance(o, dict) and o.get("ack") == token:
                            ack = o
                break
            except (OSError, ConnectionError):
                if sock is not None:
                    sock.close()
                sock = None
                time.sleep(0.1)
        sent = min(n, b + batch)
        _progress(progress, sent)
        if rate:
            ahead = t0 + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    if sock is not None:
        sock.close()
    print("sent %d" % sent, flush=True)


def app_fluent(prefix, n, tag, port, rate, progress=None):
    from fluent import sender
    head, _, last = tag.rpartition(".")
    s = sender.FluentSender(head, host="127.0.0.1", port=port,
                            nanosecond_precision=True)
    t0 = time.monotonic()
    for i in range(n):
        while not s.emit(last, {"id": "%s%06d" % (prefix, i), "src": "app",
                                "msg": "event %d of %s" % (i, prefix)}):
            time.sleep(0.05)    # kept in its pending buffer, sent again
        if rate and i % 25 == 24:
            ahead = t0 + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    s.close()
    assert s.pendings is None, "fluent-logger kept events unsent"
    _progress(progress, n)
    print("sent %d" % n, flush=True)


# ---- the LTSV log the test writes and rotates ----

class LogWriter:
    """Writes n LTSV lines with ids PREFIXnnnnnn to path at rate lines/s,
    in a thread, rotating logrotate-style (rename and create: path.1 to
    path.2 ..., path to path.1, a new path) every rotate lines."""

    def __init__(self, path, prefix, n, rate, rotate=0):
        self.path, self.prefix, self.n = path, prefix, n
        self.rate, self.rotate = rate, rotate
        self.written = 0
        self.rotations = 0
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t.start()
        return self

    def _rotate(self):
        olds = sorted((int(m.group(1)), f) for f in os.listdir(
            os.path.dirname(self.path)) for m in [re.match(
                re.escape(os.path.basename(self.path)) + r"\.(\d+)$", f)]
            if m)
        for k, f in reversed(olds):
            d = os.path.dirname(self.path)
            os.rename(os.path.join(d, f),
                      os.path.join(d, "%s.%d" % (os.path.basename(
                          self.path), k + 1)))
        os.rename(self.path, self.path + ".1")
        self.rotations += 1

    def _run(self):
        try:
            t0 = time.monotonic()
            f = open(self.path, "a")
            for i in range(self.n):
                if self.rotate and i and i % self.rotate == 0:
                    f.close()
                    self._rotate()
                    f = open(self.path, "a")
                f.write("time:%s\tid:%s%06d\tsrc:tail\tpath:/p/%d\t"
                        "code:200\n" % (time.strftime(
                            "%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
                            self.prefix, i, i))
                if i % 20 == 19 or i == self.n - 1:
                    f.flush()
                    self.written = i + 1
                    ahead = t0 + (i + 1) / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            f.close()
        except Exception as e:    # the test reports it
            self.error = e

    def join(self, timeout):
        self.t.join(timeout)
        assert not self.t.is_alive(), "log writer still running"
        assert self.error is None, self.error
        return self.written


if __name__ == "__main__":
    mode, prefix, n, tag, port, rate = sys.argv[1:7]
    progress = sys.argv[7] if len(sys.argv) > 7 else None
    {"acked": app_acked, "fluent": app_fluent}[mode](
        prefix, int(n), tag, int(port), float(rate), progress)


# ---- the results table ----

ORDER = ["steady", "kill-active", "link-cut", "both-aggs-down",
         "forwarder-crashes", "destination-down", "disk-full",
         "disk-full-backlog"]


def table(rows):
    """The rows of test_ha's scenarios as a text table."""
    rows = sorted(rows, key=lambda r: (ORDER.index(r["scenario"]) if
                                       r["scenario"] in ORDER else 99,
                                       r["scenario"], r["dest"]))
    head = ("scenario", "destination", "written", "delivered", "duplicates",
            "lost", "recover_s", "test_s")
    lines = ["lf HA scenarios on network namespaces (events; recover_s: "
             "from the repair until\nevery event written before it is "
             "delivered; steady: after the last write)",
             "%-18s %-11s %8s %9s %10s %5s %9s %6s" % head]
    for r in rows:
        lines.append("%-18s %-11s %8d %9d %10d %5d %9s %6s" % (
            r["scenario"], r["dest"], r["written"], r["delivered"],
            r["duplicates"], r["lost"],
            "-" if r["recover"] is None else "%.1f" % r["recover"],
            "%.1f" % r["elapsed"]))
    return "\n".join(lines) + "\n"
