"""make bench: a spool delivered by lf-send to bench_recv, a C forward
server on loopback that acks each chunk.

    send.py LF_BIN LF_BENCH [events]

1,000,000 events of ~150 bytes are put into a spool by lf-buffer in
chunks of ~1 MB (not timed); then lf-send --once --require-ack-response
delivers them, and again with --compress gzip.  Reports events/s from
lf-send's start to its exit (every chunk acked and deleted), lf-send's
CPU seconds per million events and its peak RSS (getrusage)."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

lfbin, benchbin = sys.argv[1], sys.argv[2]
total = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
PER = 1000


def record(i):
    return {"host": "192.168.0.12", "method": "GET",
            "path": "/items/%08u.html" % i, "code": "200",
            "agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0)",
            "referer": "http://example.com/"}


def make_spool(d):
    t = 1441588984
    ents = b"".join(msgpack.packb([msgpack.ExtType(0, struct.pack(">II", t + i, i)),
                                   record(i)]) for i in range(PER))
    msg = msgpack.packb(["bench.access", ents, {"size": PER}], use_bin_type=True)
    src = os.path.join(d, "in.msgpack")
    with open(src, "wb") as f:
        for _ in range(total // PER):
            f.write(msg)
    spool = os.path.join(d, "spool")
    with open(src, "rb") as f:
        subprocess.run([os.path.join(lfbin, "lf-buffer"), "--chunk-limit-size",
                        "1m", spool], stdin=f, check=True)
    os.unlink(src)
    return spool, len(ents) / PER


def run(d, spool, args):
    work = os.path.join(d, "work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(spool, work)
    nchunks = len(os.listdir(os.path.join(work, "new")))
    portf = os.path.join(d, "port")
    if os.path.exists(portf):
        os.unlink(portf)
    recv = subprocess.Popen([os.path.join(benchbin, "bench_recv"), portf,
                             str(total)], stdout=subprocess.PIPE)
    while not os.path.exists(portf) or not open(portf).read().endswith("\n"):
        time.sleep(0.01)
    port = open(portf).read().strip()
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-send"), "--once",
                          "--require-ack-response", "--server",
                          "127.0.0.1:" + port] + args + [work])
    _, st, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    out = recv.communicate(timeout=60)[0].decode().strip()
    assert os.listdir(os.path.join(work, "new")) == []
    return dt, ru, nchunks, out


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-send.")
    try:
        spool, evsize = make_spool(d)
        print("%d events of %.0f bytes in a spool" % (total, evsize))
        for name, args in (("acks", []),
                           ("acks, 4 in flight", ["--flush-thread-count", "4"]),
                           ("acks, gzip", ["--compress", "gzip",
                                           "--flush-thread-count", "2"])):
            dt, ru, nchunks, out = run(d, spool, args)
            cpu = ru.ru_utime + ru.ru_stime
            print("lf-send (%s): %d chunks, %.0f events/s, %.1f MB/s, "
                  "cpu %.2f s per million events, peak RSS %.1f MB  [%s]" % (
                      name, nchunks, total / dt, total * evsize / dt / 1e6,
                      cpu / (total / 1e6), ru.ru_maxrss / 1024, out))
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
