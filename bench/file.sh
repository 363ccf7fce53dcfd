# make bench: lf-file from a spool to files on this machine's disk.
#
# 1,000,000 events of ~150 bytes are put into two spools by lf-buffer
# with a daily timekey (not timed): one in lf-buffer's default chunks
# (256m: one chunk here), one in chunks of at most 8096 records (as
# bench/tdlog.sh), where the syncs per chunk count.  Then lf-file --once
# writes them, exactly once (the state record synced before and after
# each chunk, the file fdatasync'd), as LTSV: --append (one file per
# slice), one file per chunk, and gzip (level 6, Ruby's GzipWriter
# default) separately.  Reports events/s from lf-file's start to its
# exit (every chunk written and deleted), MB/s of output, lf-file's CPU
# seconds per million events and its peak RSS (getrusage).  On a loaded
# machine the CPU seconds are the steadier figure.
set -eu
/usr/bin/python3 - "$LF_BIN" <<'PY'
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

lfbin = sys.argv[1]
total = 1000000
PER = 1000


def record(i):
    return {"host": "192.168.0.12", "method": "GET",
            "path": "/items/%08u.html" % i, "code": "200",
            "agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0)",
            "referer": "http://example.com/"}


def make_spool(d, name, limits):
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
    spool = os.path.join(d, name)
    with open(src, "rb") as f:
        subprocess.run([os.path.join(lfbin, "lf-buffer"), "--timekey", "1d"]
                       + limits + [spool], stdin=f, check=True)
    os.unlink(src)
    return spool, len(ents) / PER


def run(d, spool, args):
    work = os.path.join(d, "work")
    out = os.path.join(d, "out")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(spool, work)
    nchunks = len(os.listdir(os.path.join(work, "new")))
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-file"), "--once",
                          "--timekey", "1d", "--path", out + "/access",
                          "--format", "ltsv"] + args + [work])
    _, st, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    assert os.listdir(os.path.join(work, "new")) == []
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    return dt, ru, nchunks, size


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-file.")
    try:
        big, evsize = make_spool(d, "big", [])
        small, _ = make_spool(d, "small", ["--chunk-limit-records", "8096"])
        print("%d events of %.0f bytes in a spool" % (total, evsize))
        for name, spool, args in (
                ("ltsv, --append", big, ["--append"]),
                ("ltsv, --append, 8096-record chunks", small, ["--append"]),
                ("ltsv, a file per 8096-record chunk", small, []),
                ("ltsv, --append, gzip -6", big,
                 ["--append", "--compress", "gzip"])):
            dt, ru, nchunks, size = run(d, spool, args)
            cpu = ru.ru_utime + ru.ru_stime
            print("lf-file (%s): %d chunks, %.0f events/s, %.1f MB/s out, "
                  "cpu %.2f s per million events, peak RSS %.1f MB" % (
                      name, nchunks, total / dt, size / dt / 1e6,
                      cpu / (total / 1e6), ru.ru_maxrss / 1024))
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
PY
