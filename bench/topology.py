"""make bench: the whole one-machine topology, acks on every hop (issue 13,
"Speed").

    topology.py LF_BIN LF_BENCH [events]

    lf-tail --to lf-buffer A (spool A) -> lf-send --require-ack-response
    -> lf-recv --to lf-buffer B (spool B) -> lf-tdlog -> bench_http_sink

bench_http_sink -e stands for Treasure Data: it inflates each upload and
counts its records.  The followed file is on tmpfs (/dev/shm) when there
is one, so that its writeback does not compete with the spools'
fdatasyncs; the spools are in TMPDIR (the disk sets their pace).

1. Sustained rate, three runs on the same processes: 1,500,000 LTSV
   lines of ~150 bytes, generated before the clock starts, are appended
   to the followed file at once.  Reports events/s and MB/s of lines
   from the first append until 90% of them are at the sink (the last
   chunks wait for their flush intervals: 1 s in each buffer), and until
   all are; then the median run's rate.
2. Latency: half that rate, for 10 s, by a writer that appends every 2 ms
   the lines due, each with its write time (field wt, microseconds since
   the epoch), then 3 s more of lines without it, so that the last
   stamped ones do not wait for flush intervals either; the sink takes
   each record's arrival (its upload read whole) less wt.  Reports the
   median, p99 and largest (an upload's records share an arrival time).
3. For every process, the CPU seconds per million events of each phase
   (utime + stime from /proc/PID/stat, before and after) and its peak RSS
   (VmHWM, just before it is stopped); and the sink's own CPU.

The options are an operator's for this volume: chunks of 8 MiB sealed
after 1 s (or when full) and up to 4 ready chunks queued in both
buffers; lf-tail batches of 5,000 lines; 2 chunks in flight for lf-send
and 4 uploads in flight for lf-tdlog, at gzip level 1.

Then the sustained runs again with glibc's malloc keeping the memory
freed (GLIBC_TUNABLES, for every process): what is left of the cost of
fresh pages, which are dear on a virtual machine (before lib/ingest,
lib/hop and lib/buffer kept their large buffers between messages,
lf-buffer B and lf-recv spent half their CPU on page faults)."""
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

lfbin, benchbin = sys.argv[1], sys.argv[2]
total = int(sys.argv[3]) if len(sys.argv) > 3 else 1500000
RUNS = 3
LAT_SECONDS = 10
TAIL_SECONDS = 3
PER = 1000
HZ = os.sysconf("SC_CLK_TCK")

BUFFER_OPTS = ["--flush-interval", "1s", "--chunk-limit-size", "8m",
               "--queued-chunks-limit-size", "4"]
MALLOC = ("glibc.malloc.mmap_threshold=33554432:"
          "glibc.malloc.trim_threshold=67108864")


def line(i):
    return ("time:2024-05-01T12:34:56+00:00\thost:192.168.0.12\tmethod:GET\t"
            "path:/items/%08u.html\tcode:200\tsize:%u\treferer:-\t"
            "agent:Mozilla/5.0 (X11; Linux x86_64)\n" % (i, i % 5000))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Topology:
    def __init__(self, d, logdir, env=None):
        self.d = d
        os.mkdir(d)
        self.env = dict(os.environ, **(env or {}))
        self.procs = []		# (name, Popen)
        self.sink = None
        self.log = os.path.join(logdir, os.path.basename(d) + ".log")
        open(self.log, "wb").close()

    def start(self, name, argv, env=None):
        env = dict(self.env, **(env or {}))
        r, w = os.pipe()
        err = open(os.path.join(self.d, name + ".err"), "wb")
        p = subprocess.Popen(argv[:1] + ["--notify-fd", str(w)] + argv[1:],
                             pass_fds=(w,), stdout=subprocess.DEVNULL,
                             stderr=err, env=env)
        os.close(w)
        err.close()
        self.procs.append((name, p))
        ready, _, _ = select.select([r], [], [], 30)
        ok = ready and os.read(r, 1) == b"\n"
        os.close(r)
        if not ok:
            self.fail("%s is not ready" % name)

    def fail(self, why):
        print("topology.py: " + why, file=sys.stderr)
        for name, _ in self.procs:
            with open(os.path.join(self.d, name + ".err")) as f:
                e = f.read()
            if e:
                print("-- %s:\n%s" % (name, e), file=sys.stderr)
        self.kill()
        sys.exit(1)

    def kill(self):
        for _, p in self.procs + [("sink", self.sink)] * bool(self.sink):
            if p.poll() is None:
                p.kill()
                p.wait()

    def up(self):
        d, b = self.d, os.path.join(lfbin, "")
        port = free_port()
        self.sink = subprocess.Popen(
            [os.path.join(benchbin, "bench_http_sink"), "-e", "-", "-k",
             "wt", os.path.join(d, "port")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)
        pf = os.path.join(d, "port")
        for _ in range(600):
            if os.path.exists(pf) and open(pf).read().endswith("\n"):
                break
            time.sleep(0.05)
        sinkport = open(pf).read().strip()
        self.start("lf-buffer B", [b + "lf-buffer", "--listen",
                   "unix:" + d + "/b.sock"] + BUFFER_OPTS + [d + "/spoolB"])
        self.start("lf-tdlog", [b + "lf-tdlog", "--endpoint",
                   "http://127.0.0.1:" + sinkport, "--database", "bench",
                   "--table", "access", "--flush-thread-count", "4",
                   d + "/spoolB"], env={"TD_API_KEY": "bench/key"})
        self.start("lf-recv", [b + "lf-recv", "--listen",
                   "127.0.0.1:%d" % port, "--to", "unix:" + d + "/b.sock"])
        self.start("lf-buffer A", [b + "lf-buffer", "--listen",
                   "unix:" + d + "/a.sock"] + BUFFER_OPTS + [d + "/spoolA"])
        self.start("lf-send", [b + "lf-send", "--server",
                   "127.0.0.1:%d" % port, "--require-ack-response",
                   "--flush-thread-count", "2", d + "/spoolA"])
        self.start("lf-tail", [b + "lf-tail", "-t", "app.access", "-f",
                   "ltsv", "--time-key", "time", "--time-format",
                   "%Y-%m-%dT%H:%M:%S%z", "--pos-file", d + "/pos",
                   "--read-lines-limit", "5000", "--to",
                   "unix:" + d + "/a.sock", self.log])

    def cpu(self):
        """Clock ticks of user and system time of each process."""
        out = {}
        for name, p in self.procs + [("sink", self.sink)]:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = int(fields[11]) + int(fields[12])
        return out

    def hwm(self):
        out = {}
        for name, p in self.procs:
            with open("/proc/%d/status" % p.pid) as f:
                for ln in f:
                    if ln.startswith("VmHWM:"):
                        out[name] = int(ln.split()[1])
        return out

    def phase(self, n):
        """Tell the sink the size of the next phase."""
        self.sink.stdin.write(b"%d\n" % n)
        self.sink.stdin.flush()

    def sink_line(self, timeout):
        """The sink's line at the end of a phase, as a dict."""
        fd = self.sink.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.fail("the sink did not get every event in %d s"
                          % timeout)
            c = os.read(fd, 4096)
            if not c:
                self.fail("the sink exited")
            buf += c
        out = {}
        for w in buf.decode().split():
            if "=" in w:
                k, v = w.split("=", 1)
                out[k] = float(v)
        return out

    def stop(self):
        for name, p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            if p.wait(timeout=30) != 0:
                self.fail("%s exited %d" % (name, p.returncode))
        self.sink.stdin.close()
        self.sink.wait(timeout=10)
        self.procs = []
        self.sink = None


def sustained(t, pre, size):
    """Append the whole file at once; the rate until 90% of it arrived at
    the sink, and until all of it did."""
    t.phase(total * 9 // 10)
    t.phase(total - total * 9 // 10)
    t0 = time.time()
    with open(pre, "rb") as src, open(t.log, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    s90, s100 = t.sink_line(120), t.sink_line(60)
    t90, t100 = s90["last"] - t0, s100["last"] - t0
    print("  sustained: %.0f events/s, %.1f MB/s of lines (the first 90%% "
          "in %.2f s); all in %.2f s (%.0f events/s), %d uploads" % (
              total * 0.9 / t90, total * 0.9 * size / t90 / 1e6, t90,
              t100, total / t100, s90["requests"] + s100["requests"]))
    return total * 0.9 / t90


def paced(t, rate):
    """Append rate lines a second for LAT_SECONDS, each stamped, then
    unstamped ones for TAIL_SECONDS more, so that the last stamped lines
    are not left to the flush intervals of a stream that stopped.  The
    sink's line and the rate written."""
    body = [line(i).split("\t", 1)[1] for i in range(PER)]
    plain = [line(i) for i in range(PER)]
    n = int(rate * LAT_SECONDS)
    stop = int(rate * (LAT_SECONDS + TAIL_SECONDS))
    written = 0
    start = time.monotonic()
    with open(t.log, "ab", buffering=0) as f:
        while written < stop:
            due = min(stop, int((time.monotonic() - start) * rate) + 1)
            if written < n:
                due = min(due, n)
                wt = "wt:%d\ttime:2024-05-01T12:34:56+00:00\t" % (
                    time.time() * 1e6)
                f.write("".join(wt + body[i % PER]
                                for i in range(written, due)).encode())
                if due == n:
                    achieved = n / (time.monotonic() - start)
            else:
                f.write("".join(plain[i % PER]
                                for i in range(written, due)).encode())
            written = due
            time.sleep(0.002)
    t.lat_events = written
    t.phase(written)
    return t.sink_line(60), achieved


def table(t, cols, hwm):
    """cols: (heading, ticks by process, events); then peak RSS."""
    print("  %-12s" % "CPU s per 1M" + "".join(" %10s" % h for h, _, _ in cols)
          + " %9s" % "peak RSS")
    for name in [n for n, _ in t.procs] + ["sink"]:
        print("  %-12s" % name + "".join(
            " %10.2f" % (c[name] / HZ / (n / 1e6)) for _, c, n in cols) +
            " %9s" % ("%.1f MB" % (hwm[name] / 1024) if name in hwm
                      else ""))


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def measure(t, pre, size, latency):
    t.up()
    c0 = t.cpu()
    rates = sorted(sustained(t, pre, size) for _ in range(RUNS))
    c1 = t.cpu()
    rate = rates[RUNS // 2]
    print("  sustained, median of %d: %.0f events/s, %.1f MB/s" % (
        RUNS, rate, rate * size / 1e6))
    cols = [("sustained", delta(c0, c1), RUNS * total)]
    if latency:
        s2, achieved = paced(t, rate / 2)
        cols.append(("paced", delta(c1, t.cpu()), t.lat_events))
        print("  latency at %.0f events/s (%d events over %d s): median "
              "%.0f ms, p99 %.0f ms, max %.0f ms" % (
                  achieved, s2["n"], LAT_SECONDS, s2["p50"], s2["p99"],
                  s2["max"]))
    table(t, cols, t.hwm())
    t.stop()


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-topo.")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    ind = tempfile.mkdtemp(prefix="lf-bench-topo.", dir=shm)
    t = None
    try:
        pre = os.path.join(ind, "pre.log")
        block = "".join(line(i) for i in range(PER)).encode()
        with open(pre, "wb") as f:
            for _ in range(total // PER):
                f.write(block)
        size = len(block) / PER
        print("  %d LTSV lines of %.0f bytes a run; spools on %s" % (
            total, size, subprocess.run(
                ["df", "-PT", d], capture_output=True,
                text=True).stdout.split("\n")[1].split()[1]))
        t = Topology(os.path.join(d, "default"), ind)
        measure(t, pre, size, True)
        print("  the same with glibc's malloc keeping freed memory (%s):"
              % MALLOC)
        t = Topology(os.path.join(d, "malloc"), ind,
                     {"GLIBC_TUNABLES": MALLOC})
        measure(t, pre, size, False)
    finally:
        if t is not None:
            t.kill()
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(ind, ignore_errors=True)


main()
