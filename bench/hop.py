"""make bench: lf-cat --to into lf-buffer over a Unix socket, with acks.

    hop.py LF_BIN [events]

1,000,000 events of ~150 bytes, read by lf-cat from a file (a msgpack
stream, then JSON lines), sent over the acked hop into lf-buffer, which
commits them to a spool.  Reports events/s from lf-cat's start to its
exit (every event acked), and for both processes the CPU seconds per
million events and the peak RSS (getrusage of each child)."""
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

lfbin = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
PER = 1000


def record(i):
    return {"host": "192.168.0.12", "method": "GET",
            "path": "/items/%08u.html" % i, "code": "200",
            "agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0)",
            "referer": "http://example.com/"}


def make_inputs(d):
    """The same events twice: a msgpack stream of PackedForward messages
    of 1,000 events, and JSON lines."""
    t = 1441588984
    mp = os.path.join(d, "in.msgpack")
    js = os.path.join(d, "in.json")
    ents = b"".join(msgpack.packb([msgpack.ExtType(0, struct.pack(">II", t + i, i)),
                                   record(i)]) for i in range(PER))
    msg = msgpack.packb(["bench.access", ents, {"size": PER}], use_bin_type=True)
    with open(mp, "wb") as f:
        for _ in range(total // PER):
            f.write(msg)
    import json
    lines = "".join(json.dumps({"tag": "bench.access", "time": t + i,
                                "record": record(i)}, separators=(",", ":")) + "\n"
                    for i in range(PER)).encode()
    with open(js, "wb") as f:
        for _ in range(total // PER):
            f.write(lines)
    return mp, js, len(ents) / PER


def run(d, src, args):
    spool = os.path.join(d, "spool")
    shutil.rmtree(spool, ignore_errors=True)
    sock = os.path.join(d, "s")
    r, w = os.pipe()
    buf = subprocess.Popen([os.path.join(lfbin, "lf-buffer"), "--listen",
                            "unix:" + sock, "--notify-fd", str(w),
                            "--flush-interval", "1s", "--chunk-limit-size", "8m",
                            spool], pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    assert os.read(r, 1) == b"\n"
    os.close(r)
    t0 = time.monotonic()
    cat = subprocess.Popen([os.path.join(lfbin, "lf-cat"), "--to",
                            "unix:" + sock] + args + [src])
    _, st, ru_cat = os.wait4(cat.pid, 0)
    t1 = time.monotonic()
    cat.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    buf.send_signal(signal.SIGTERM)
    _, st, ru_buf = os.wait4(buf.pid, 0)
    buf.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    return t1 - t0, ru_cat, ru_buf


def median_of(n, d, src, args):
    """The median run of n by wall time: the machine may be shared."""
    runs = sorted((run(d, src, args) for _ in range(n)), key=lambda r: r[0])
    return runs[n // 2]


def report(name, t, ru_cat, ru_buf):
    cpu = lambda ru: (ru.ru_utime + ru.ru_stime) / total * 1e6
    print("lf-cat --to (%s): %.0f events/s (%d events, %.3f s); "
          "CPU s per 1M events: lf-cat %.2f, lf-buffer %.2f; "
          "peak RSS: lf-cat %.1f MB, lf-buffer %.1f MB"
          % (name, total / t, total, t, cpu(ru_cat), cpu(ru_buf),
             ru_cat.ru_maxrss / 1024, ru_buf.ru_maxrss / 1024))


def main():
    d = tempfile.mkdtemp(prefix="lfhop")
    # the inputs on tmpfs if there is one, and synced: writing back
    # 400 MB of inputs must not compete with lf-buffer's fdatasyncs
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    ind = tempfile.mkdtemp(prefix="lfhop", dir=shm)
    try:
        mp, js, size = make_inputs(ind)
        os.sync()
        print("events of %.0f bytes (msgpack entry)" % size)
        report("msgpack stream, median of 3", *median_of(3, d, mp, []))
        report("JSON lines, median of 3", *median_of(3, d, js, ["-i", "json"]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(ind, ignore_errors=True)


main()
