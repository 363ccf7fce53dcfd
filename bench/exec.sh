# make bench: lf-exec's cost per chunk and per event.
#
# 1,000,000 events of ~150 bytes are put into a spool by lf-buffer in
# 1000 chunks of 1000 events (not timed); then lf-exec --once runs a
# command per chunk: `true` (reads nothing: the cost of a run, fork,
# exec, wait, the chunk's claim and deletion), `cat > /dev/null` (the
# events written through a pipe: the default msgpack stream, and
# --format json), and --path-arg (a file per chunk).  Reports the wall
# time per chunk in ms (lf-exec's start to its exit, every chunk
# deleted), events/s, lf-exec's own CPU seconds per million events and
# its peak RSS (from its state file: getrusage of itself, so the
# commands' CPU is not in it), and the CPU of lf-exec and its commands
# together (wait4).
set -eu
/usr/bin/python3 - "$LF_BIN" <<'PY'
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

lfbin = sys.argv[1]
total, PER = 1000000, 1000


def record(i):
    return {"host": "192.168.0.12", "method": "GET",
            "path": "/items/%08u.html" % i, "code": "200",
            "agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0)",
            "referer": "http://example.com/"}


def make_spool(d):
    t = 1441588984
    ents = b"".join(msgpack.packb(
        [msgpack.ExtType(0, struct.pack(">II", t + i, i)), record(i)])
        for i in range(PER))
    msg = msgpack.packb(["app.access", ents, {"size": PER}],
                        use_bin_type=True)
    src = os.path.join(d, "in.msgpack")
    with open(src, "wb") as f:
        for _ in range(total // PER):
            f.write(msg)
    spool = os.path.join(d, "spool")
    with open(src, "rb") as f:
        subprocess.run([os.path.join(lfbin, "lf-buffer"),
                        "--chunk-limit-records", str(PER),
                        "--chunk-limit-size", "32m", spool],
                       stdin=f, check=True)
    os.unlink(src)
    return spool, len(ents) / PER


def run(d, spool, args):
    work = os.path.join(d, "work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(spool, work)
    nchunks = len(os.listdir(os.path.join(work, "new")))
    i = args.index("--")
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-exec"), "--once"] +
                         args[:i] + [work] + args[i:])
    _, st, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    assert os.listdir(os.path.join(work, "new")) == []
    with open(os.path.join(work, "state", "exec")) as f:
        s = json.load(f)
    assert s["events"] == total and s["chunks"] == nchunks, s
    return dt, ru, nchunks, s


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-exec.")
    try:
        spool, evsize = make_spool(d)
        print("%d events of %.0f bytes in a spool, %d per chunk" %
              (total, evsize, PER))
        t0 = time.monotonic()
        subprocess.run("seq 1000 | xargs -n1 true", shell=True, check=True)
        print("baseline: xargs -n1 true, %.2f ms per run (fork, exec, "
              "wait)" % (time.monotonic() - t0))
        for name, args in (
                ("true, 1 in flight", ["--", "true"]),
                ("true, 4 in flight", ["--flush-thread-count", "4",
                                       "--", "true"]),
                ("cat >/dev/null, msgpack", ["--shell", "--",
                                             "exec cat >/dev/null"]),
                ("cat >/dev/null, msgpack, 4 in flight",
                 ["--flush-thread-count", "4", "--shell", "--",
                  "exec cat >/dev/null"]),
                ("cat >/dev/null, --format json",
                 ["--format", "json", "--shell", "--",
                  "exec cat >/dev/null"]),
                ("--path-arg, true", ["--path-arg", "--", "true"])):
            dt, ru, nchunks, s = run(d, spool, args)
            print("lf-exec (%s): %.2f ms per chunk, %.0f events/s, "
                  "%.1f MB/s to commands; lf-exec cpu %.2f s per million "
                  "events, peak RSS %.1f MB; with its commands cpu %.2f s" % (
                      name, dt * 1000 / nchunks, total / dt,
                      s["bytes"] / dt / 1e6,
                      s["cpu_seconds"] / (total / 1e6),
                      s["max_rss_kb"] / 1024,
                      ru.ru_utime + ru.ru_stime))
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
PY
