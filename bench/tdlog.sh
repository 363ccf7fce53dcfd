# make bench: lf-tdlog from a spool to bench_http_sink, a C HTTP server
# on loopback that answers every PUT 200 (so the figure is lf-tdlog's,
# not an emulator's).
#
# 1,000,000 events of ~150 bytes are put into a spool by lf-buffer in
# chunks of at most 8096 records (out_tdlog's chunk_limit_records; not
# timed); then lf-tdlog --once delivers them with 4 uploads in flight,
# at gzip level 1 (the default) and 6 (Ruby's GzipWriter default).
# Reports events/s from lf-tdlog's start to its exit (every chunk
# answered and deleted), the compression ratio, lf-tdlog's CPU seconds
# per million events and its peak RSS (getrusage).
set -eu
/usr/bin/python3 - "$LF_BIN" "$LF_BENCH" <<'EOF'
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

lfbin, benchbin = sys.argv[1], sys.argv[2]
total = 1000000
PER = 1000


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
    msg = msgpack.packb(["td.bench.access", ents, {"size": PER}],
                        use_bin_type=True)
    src = os.path.join(d, "in.msgpack")
    with open(src, "wb") as f:
        for _ in range(total // PER):
            f.write(msg)
    spool = os.path.join(d, "spool")
    with open(src, "rb") as f:
        subprocess.run([os.path.join(lfbin, "lf-buffer"),
                        "--chunk-limit-records", "8096",
                        "--chunk-limit-size", "32m", spool],
                       stdin=f, check=True)
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
    sink = subprocess.Popen([os.path.join(benchbin, "bench_http_sink"),
                             portf, str(nchunks)], stdout=subprocess.PIPE)
    while not os.path.exists(portf) or not open(portf).read().endswith("\n"):
        time.sleep(0.01)
    port = open(portf).read().strip()
    env = dict(os.environ, TD_API_KEY="bench/key")
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(lfbin, "lf-tdlog"), "--once",
                          "--database", "bench", "--table", "access",
                          "--endpoint", "http://127.0.0.1:" + port] +
                         args + [work], env=env)
    _, st, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = 0
    assert os.waitstatus_to_exitcode(st) == 0, st
    out = sink.communicate(timeout=60)[0].decode().strip()
    assert os.listdir(os.path.join(work, "new")) == []
    with open(os.path.join(work, "state", "tdlog")) as f:
        s = json.load(f)
    assert s["events"] == total, s
    return dt, ru, nchunks, s, out


def main():
    d = tempfile.mkdtemp(prefix="lf-bench-tdlog.")
    try:
        spool, evsize = make_spool(d)
        print("%d events of %.0f bytes in a spool" % (total, evsize))
        for name, args in (
                ("4 in flight, gzip -1", ["--flush-thread-count", "4"]),
                ("1 in flight, gzip -1", []),
                ("4 in flight, gzip -6", ["--flush-thread-count", "4",
                                          "--compression-level", "6"])):
            dt, ru, nchunks, s, out = run(d, spool, args)
            cpu = ru.ru_utime + ru.ru_stime
            print("lf-tdlog (%s): %d chunks, %.0f events/s, %.1f MB/s of "
                  "msgpack, compression %.1fx, cpu %.2f s per million "
                  "events, peak RSS %.1f MB  [%s]" % (
                      name, nchunks, total / dt, s["bytes"] / dt / 1e6,
                      s["bytes"] / s["bytes_gzip"],
                      cpu / (total / 1e6), ru.ru_maxrss / 1024, out))
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
EOF
