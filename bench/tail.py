"""make bench: lf-tail reading a pre-written 1,000,000-line file from its
head (issue 10, "Speed").

    tail.py LF_BIN [lines]

Each run: lf-tail --read-from-head --exit-on-eof on one file, to
/dev/null (stdout mode) or through --to into lf-buffer with acks (the
position file saved only after acks).  Reports lines/s from lf-tail's
start to its exit (every line out, or acked), CPU seconds and peak RSS of
lf-tail (getrusage of the child).  Targets: none 2M lines/s, ltsv with
time 1M, json 700k, apache regexp 500k, --to 700k; RSS under 16 MB."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

lfbin = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
PER = 1000


def ltsv(i):
    return ("time:2024-05-01T12:34:56+00:00\thost:192.168.0.12\tmethod:GET\t"
            "path:/items/%08u.html\tcode:200\tsize:%u\treferer:-\t"
            "agent:Mozilla/5.0 (X11; Linux x86_64)\n" % (i, i % 5000))


def js(i):
    return json.dumps({"time": "2024-05-01T12:34:56+00:00",
                       "host": "192.168.0.12", "method": "GET",
                       "path": "/items/%08u.html" % i, "code": 200,
                       "size": i % 5000, "agent": "Mozilla/5.0"},
                      separators=(",", ":")) + "\n"


def apache(i):
    return ('192.168.0.12 - - [01/May/2024:12:34:56 +0000] "GET '
            '/items/%08u.html HTTP/1.1" 200 %u "-" "Mozilla/5.0 (X11)"\n'
            % (i, i % 5000))


def write(d, name, fn):
    p = os.path.join(d, name)
    block = "".join(fn(i) for i in range(PER)).encode()
    with open(p, "wb") as f:
        for _ in range(total // PER):
            f.write(block)
    return p, len(block) / PER


def run_tail(args, path, extra_env=None):
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-tail"), "-t", "bench",
                          "--read-from-head", "--exit-on-eof"] + args +
                         [path], stdout=subprocess.DEVNULL)
    _, st, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    t1 = time.monotonic()
    assert os.waitstatus_to_exitcode(st) == 0, st
    return t1 - t0, ru


def report(name, dt, ru, size):
    print("  %-28s %9.0f lines/s  %6.1f MB/s  cpu %.2fs  rss %.1f MB" %
          (name, total / dt, total * size / dt / 1e6,
           ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024))


def run_to(d, path, size):
    spool = os.path.join(d, "spool")
    shutil.rmtree(spool, ignore_errors=True)
    sock = os.path.join(d, "s")
    r, w = os.pipe()
    buf = subprocess.Popen([os.path.join(lfbin, "lf-buffer"), "--listen",
                            "unix:" + sock, "--notify-fd", str(w),
                            "--flush-interval", "1s", "--chunk-limit-size",
                            "8m", spool], pass_fds=(w,),
                           stderr=subprocess.DEVNULL)
    os.close(w)
    assert os.read(r, 1) == b"\n"
    os.close(r)
    pos = os.path.join(d, "pos")
    for f in (pos, pos + ".sent"):
        if os.path.exists(f):
            os.unlink(f)
    dt, ru = run_tail(["--to", "unix:" + sock, "--pos-file", pos,
                       "--read-lines-limit", "10000"], path)
    buf.send_signal(signal.SIGTERM)
    _, st, ru_buf = os.wait4(buf.pid, 0)
    buf.returncode = 0
    with open(pos) as f:
        assert int(f.read().split("\t")[1], 16) == os.path.getsize(path)
    report("none --to lf-buffer (acked)", dt, ru, size)
    print("  %-28s %9s          cpu %.2fs  rss %.1f MB" % (
        "  (lf-buffer)", "", ru_buf.ru_utime + ru_buf.ru_stime,
        ru_buf.ru_maxrss / 1024))


def main():
    d = tempfile.mkdtemp(prefix="lftb")
    try:
        lt, lsz = write(d, "ltsv.log", ltsv)
        jf, jsz = write(d, "json.log", js)
        af, asz = write(d, "apache.log", apache)
        print("  %d lines, ~%.0f bytes each (ltsv)" % (total, lsz))
        dt, ru = run_tail(["-f", "none"], lt)
        report("none", dt, ru, lsz)
        dt, ru = run_tail(["-f", "ltsv", "--time-key", "time",
                           "--time-format", "%Y-%m-%dT%H:%M:%S%z"], lt)
        report("ltsv (time parsed)", dt, ru, lsz)
        dt, ru = run_tail(["-f", "json", "--time-type", "string",
                           "--time-format", "%Y-%m-%dT%H:%M:%S%z"], jf)
        report("json (time parsed)", dt, ru, jsz)
        dt, ru = run_tail(["-f", "apache2"], af)
        report("apache2 (regexp)", dt, ru, asz)
        run_to(d, lt, lsz)
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
