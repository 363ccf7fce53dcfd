"""End-to-end tests of lf-file: a spool's chunks written to files
(Fluentd's out_file), exactly once.

The spools are made by tests/e2e/lfchunk.py (Python's own encoder), the
files are read back with Python (gzip, msgpack), and the lines are
compared byte for byte with what Fluentd's formatters write (their
documented examples: out_file "TIME<TAB>TAG<TAB>JSON", ltsv, json, csv
with force_quotes, tsv, single_value).

Exactly once is checked by counting: every event carries a unique id,
and after kills (-9 at seeded instants), failed syncs, failed unlinks
and a full filesystem every id is in the files once.

Figures asserted, with why:
- kill rounds: up to 30 per mode over 80 chunks of 1000 events, each
  killing lf-file 0 to 40 ms after its start (a chunk takes milliseconds
  to write, so kills land before, inside and after writes: about a third
  of them leave a chunk half written); about 7 s a mode under ASan.
- WAIT (30 s) for anything to happen: generous on a loaded machine.
"""
import gzip
import os
import random
import signal
import stat
import subprocess
import time

import msgpack
import pytest

import conftest
import lfchunk
from conftest import _env, fault_env, fault_log, run, run_ok, tool
from test_lf_buffer import fill, smallfs, work

__all__ = ["smallfs", "work"]  # fixtures used by name

WAIT = 30
T0 = 1714566896         # 2024-05-01T12:34:56Z
DAY = 1714521600        # 2024-05-01T00:00:00Z
UTC = {"TZ": "UTC"}

wait_for = conftest.waiter(WAIT)


def spool_with(tmp, chunks):
    """chunks: [(tag, events, timekey, variables)] -> spool path."""
    sp = lfchunk.make_spool(tmp / "spool")
    for i, (tag, evs, tk, var) in enumerate(chunks):
        lfchunk.write_chunk(sp, tag, evs, timekey=tk, variables=var,
                            seal_us=1000000 + i)
    return sp


def lf_file(sp, *args, env=UTC, rc=0, quiet=True):
    code, out, err = run("lf-file", list(args) + ["--once", sp], env=env)
    assert code == rc, err
    if rc == 0 and quiet:
        assert err == b""
    return err


def files(d):
    """{relative path: bytes} of the regular files under d."""
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out


REC = {"k1": "v1", "k2": "v2"}


@pytest.mark.parametrize("args,want", [
    ([], b"2024-05-01T12:34:56+00:00\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--utc"], b"2024-05-01T12:34:56Z\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--timezone", "+09:00"],
     b"2024-05-01T21:34:56+09:00\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--delimiter", "COMMA", "--output-tag=false"],
     b"2024-05-01T12:34:56+00:00,{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--time-format", "%Y/%m/%d %H:%M:%S.%L %z"],
     b"2024/05/01 12:34:56.123 +0000\tfoo.bar\t{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--format", "json"], b"{\"k1\":\"v1\",\"k2\":\"v2\"}\n"),
    (["--format", "json", "--include-time-key", "--include-tag-key",
      "--utc"],
     b"{\"k1\":\"v1\",\"k2\":\"v2\",\"tag\":\"foo.bar\","
     b"\"time\":\"2024-05-01T12:34:56Z\"}\n"),
    (["--format", "json", "--include-time-key", "--time-type", "float",
      "--time-key", "ts"],
     b"{\"k1\":\"v1\",\"k2\":\"v2\",\"ts\":1714566896.123456}\n"),
    (["--format", "ltsv"], b"k1:v1\tk2:v2\n"),
    (["--format", "ltsv", "--delimiter", ",", "--label-delimiter", "="],
     b"k1=v1,k2=v2\n"),
    (["--format", "ltsv", "--include-time-key", "--time-type", "unixtime"],
     b"k1:v1\tk2:v2\ttime:1714566896\n"),
    (["--format", "csv", "--fields", "k2,k1,none"], b"\"v2\",\"v1\",\"\"\n"),
    (["--format", "csv", "--fields", "k1,k2", "--force-quotes=false"],
     b"v1,v2\n"),
    (["--format", "tsv", "--fields", "k1,k2"], b"v1\tv2\n"),
    (["--format", "single_value", "--message-key", "k2"], b"v2\n"),
    (["--format", "single_value", "--message-key", "k2",
      "--add-newline=false"], b"v2"),
    (["--format", "json", "--newline", "crlf"],
     b"{\"k1\":\"v1\",\"k2\":\"v2\"}\r\n"),
])
def test_formats_byte_exact(tmp_path, args, want):
    sp = spool_with(tmp_path, [("foo.bar", [((T0, 123456789), REC)] * 2,
                                None, None)])
    lf_file(sp, "--path", tmp_path / "out" / "f", *args)
    assert files(tmp_path / "out") == {"f_0.log": want * 2}
    assert lfchunk.list_chunks(sp) == []


def test_csv_quoting_as_ruby(tmp_path):
    rec = {"a": 'x,"y', "b": 2, "n": None, "e": "", "l": "p\nq", "f": 1.5,
           "t": True, "m": {"k": [1]}}
    sp = spool_with(tmp_path, [("t", [(T0, rec)], None, None)])
    lf_file(sp, "--path", tmp_path / "o" / "o", "--format", "csv",
            "--force-quotes=false", "--fields", "a,b,n,e,l,f,t,m")
    assert files(tmp_path / "o") == {
        "o_0.log": b'"x,""y",2,,"","p\nq",1.5,true,"{""k"":[1]}"\n'}


def test_msgpack_replays_through_lf_cat(tmp_path):
    evs = [((T0 + i, i), {"i": i, "s": "x" * i}) for i in range(50)]
    sp = spool_with(tmp_path, [("a.b", evs, None, None)])
    lf_file(sp, "--path", tmp_path / "o" / "o", "--format", "msgpack")
    data = open(tmp_path / "o" / "o_0.log", "rb").read()
    out = run_ok("lf-cat", [tmp_path / "o" / "o_0.log"])
    assert out == b"".join(
        b'{"tag":"a.b","time":%d.%09d,"record":{"i":%d,"s":"%s"}}\n' %
        (T0 + i, i, i, b"x" * i) for i in range(50))
    # one PackedForward message for the chunk
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    msgs = list(u)
    assert len(msgs) == 1 and msgs[0][0] == "a.b" and msgs[0][2] == {"size": 50}


def test_out_file_naming_and_placeholders(tmp_path):
    out = tmp_path / "out"
    sp = spool_with(tmp_path, [
        ("app.web.x", [(DAY + 10, {"n": 1})], DAY, {"host": "h1"}),
        ("app.web.x", [(DAY + 20, {"n": 2})], DAY, {"host": "h1"}),
        ("app.db.x", [(DAY + 86400, {"n": 3})], DAY + 86400, {"host": "h2"}),
    ])
    lf_file(sp, "--path", str(out) + "/${tag[1]}/${host}/${tag[-1]}",
            "--timekey", "1d", "--timekey-use-utc", "--chunk-key", "host",
            "--format", "json")
    assert files(out) == {
        "web/h1/x.20240501_0.log": b'{"n":1}\n',
        "web/h1/x.20240501_1.log": b'{"n":2}\n',
        "db/h2/x.20240502_0.log": b'{"n":3}\n',
    }


@pytest.mark.parametrize("path,args,want", [
    ("b.*", ["--timekey", "1h"], ["b.2024050112_0", "b.2024050113_0"]),
    ("b.*.data", ["--timekey", "60"],
     ["b.202405011200_0.data", "b.202405011300_0.data"]),
    ("b.%Y-%m-%d-%H", ["--timekey", "1h", "--append"],
     ["b.2024-05-01-12.log", "b.2024-05-01-13.log"]),
    ("b", ["--timekey", "1h", "--append", "--path-suffix", ".txt"],
     ["b.2024050112.txt", "b.2024050113.txt"]),
    ("b", ["--timekey", "1h", "--add-path-suffix", "false"],
     ["b.2024050112_0", "b.2024050113_0"]),
    ("b", ["--timekey", "10"],
     ["b.20240501120000_0.log", "b.20240501130000_0.log"]),
])
def test_path_templates(tmp_path, path, args, want):
    h = 1714564800      # 2024-05-01T12:00:00Z
    sp = spool_with(tmp_path, [("t", [(h + 5, {"a": 1})], h, None),
                               ("t", [(h + 3605, {"a": 2})], h + 3600, None)])
    lf_file(sp, "--path", tmp_path / "o" / path, "--timekey-use-utc",
            "--format", "json", *args)
    assert sorted(files(tmp_path / "o")) == want


def test_append_one_file_per_slice(tmp_path):
    evs = lambda n: [(DAY + i, {"i": i}) for i in range(n)]  # noqa: E731
    sp = spool_with(tmp_path, [("t", evs(3), DAY, None)] * 4 +
                    [("t", evs(2), DAY + 86400, None)])
    lf_file(sp, "--path", tmp_path / "o" / "log", "--timekey", "1d",
            "--timekey-use-utc", "--append", "--format", "ltsv")
    got = files(tmp_path / "o")
    assert sorted(got) == ["log.20240501.log", "log.20240502.log"]
    assert got["log.20240501.log"] == b"i:0\ni:1\ni:2\n" * 4
    assert got["log.20240502.log"] == b"i:0\ni:1\n"


def test_gzip_a_member_per_chunk(tmp_path):
    sp = spool_with(tmp_path, [("t", [(DAY, {"c": c, "i": i})
                                      for i in range(100)], DAY, None)
                               for c in range(3)])
    lf_file(sp, "--path", tmp_path / "o" / "log", "--timekey", "1d",
            "--timekey-use-utc", "--append", "--compress", "gzip",
            "--format", "ltsv")
    data = open(tmp_path / "o" / "log.20240501.log.gz", "rb").read()
    assert data.count(b"\x1f\x8b\x08") >= 3
    p = subprocess.run(["zcat", tmp_path / "o" / "log.20240501.log.gz"],
                       stdout=subprocess.PIPE, check=True)
    assert p.stdout == b"".join(b"c:%d\ti:%d\n" % (c, i)
                                for c in range(3) for i in range(100))
    # each member on its own is whole
    d = gzip.decompress(data)
    assert d == p.stdout


def test_symlink_and_modes(tmp_path):
    sp = spool_with(tmp_path, [("t", [(DAY + i * 86400, {"i": i})],
                                DAY + i * 86400, None) for i in range(3)])
    lf_file(sp, "--path", tmp_path / "o" / "d1" / "d2" / "log",
            "--timekey", "1d", "--timekey-use-utc", "--file-mode", "0600",
            "--dir-mode", "0750", "--symlink-path", tmp_path / "o" / "cur",
            "--format", "json", env=dict(UTC))
    assert stat.S_IMODE(os.stat(tmp_path / "o").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(tmp_path / "o" / "d1" / "d2").st_mode) == 0o750
    for n in files(tmp_path / "o"):
        assert stat.S_IMODE(os.stat(tmp_path / "o" / n).st_mode) == 0o600
    link = os.readlink(tmp_path / "o" / "cur")
    assert link == str(tmp_path / "o" / "d1" / "d2" / "log.20240503_0.log")
    assert open(tmp_path / "o" / "cur", "rb").read() == b'{"i":2}\n'


@pytest.mark.parametrize("args,msg", [
    (["--path", "o/${host}/x"], b"not keyed by host"),
    (["--path", "o/%Y%m%d/x"], b"not keyed by time"),
    (["--path", "o/x.*"], b"needs --timekey"),
    (["--path", "o/x.%Y%m", "--timekey", "1d"],
     b"insufficient timestamp placeholders"),
    (["--path", "o/x", "--format", "csv"], b"needs --fields"),
    (["--path", "o/x", "--format", "nope"], b"unknown format"),
    (["--path", "o/x", "--timezone", "Nowhere/Else"], b"unknown timezone"),
])
def test_bad_configuration(tmp_path, args, msg):
    sp = spool_with(tmp_path, [("t", [(T0, {"a": 1})], None, None)])
    err = lf_file(sp, *args, rc=64)
    assert msg in err
    assert len(lfchunk.list_chunks(sp)) == 1


def test_chunk_not_keyed_as_the_template_says(tmp_path):
    """--chunk-key says host, the chunks have none: a usage error, and
    the chunk stays where it is."""
    sp = spool_with(tmp_path, [("t", [(T0, {"a": 1})], None, None)])
    err = lf_file(sp, "--path", tmp_path / "o" / "${host}", "--chunk-key",
                  "host", rc=64)
    assert b"not keyed by host" in err
    assert len(lfchunk.list_chunks(sp)) == 1
    assert files(tmp_path / "o") == {} if os.path.exists(tmp_path / "o") \
        else True


def test_unsafe_value_goes_to_dead(tmp_path):
    sp = spool_with(tmp_path, [("t", [(T0, {"a": 1})], None,
                                {"host": "../../etc"}),
                               ("t", [(T0, {"a": 2})], None, {"host": "ok"})])
    err = lf_file(sp, "--path", tmp_path / "o" / "${host}" / "x",
                  "--chunk-key", "host", "--format", "json", quiet=False)
    assert b"unsafe value for a path: ../../etc" in err
    assert files(tmp_path / "o") == {"ok/x_0.log": b'{"a":2}\n'}
    dead = lfchunk.list_chunks(sp, "dead")
    assert len(dead) == 1
    assert "unsafe value" in lfchunk.read_reason(sp, dead[0])


# ---- exactly once ----

def id_spool(tmp_path, nchunks, per, timekey=None):
    chunks = []
    for c in range(nchunks):
        evs = [(DAY + 60 * c, {"id": c * per + i, "pad": "p" * 40})
               for i in range(per)]
        chunks.append(("t", evs, DAY if timekey else None, None))
    return spool_with(tmp_path, chunks), nchunks * per


def read_ids(d):
    """Every id in the ltsv files under d (gzip read whole: a torn member
    would fail here)."""
    ids = []
    for name, data in files(d).items():
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        assert data == b"" or data.endswith(b"\n"), name
        for line in data.splitlines():
            f = dict(x.split(b":", 1) for x in line.split(b"\t"))
            assert f[b"pad"] == b"p" * 40, line
            ids.append(int(f[b"id"]))
    return ids


def assert_once(d, n):
    ids = read_ids(d)
    dup = len(ids) - len(set(ids))
    assert dup == 0, "%d duplicates" % dup
    assert sorted(ids) == list(range(n))


@pytest.mark.parametrize("mode", [
    [], ["--append", "--timekey", "1d"],
    ["--append", "--timekey", "1d", "--compress", "gzip"]])
def test_kill9_at_seeded_instants(tmp_path, mode):
    sp, n = id_spool(tmp_path, 80, 1000, timekey="--timekey" in mode)
    out = tmp_path / "o"
    args = [tool("lf-file"), "-v", "--path", str(out / "log"), "--format",
            "ltsv", "--timekey-use-utc"] + mode + [sp]
    rng = random.Random(1234 + len(mode))
    kills = undone = 0
    for _ in range(30):
        if not lfchunk.list_chunks(sp):
            break
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=_env(UTC))
        time.sleep(rng.uniform(0, 0.04))
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=WAIT)
        conftest.check_no_sanitizer(err)
        kills += 1
        undone += err.count(b"undid a chunk")
    print("kills %d, chunks undone %d" % (kills, undone))
    lf_file(sp, *args[1:-1], quiet=False)
    assert lfchunk.list_chunks(sp) == []
    assert kills >= 5
    assert_once(out, n)


def test_killed_between_sync_and_delete(tmp_path):
    """The chunk cannot be unlinked (so lf-file stops, as if killed right
    after its write): the next run finds it done and deletes it."""
    sp, n = id_spool(tmp_path, 3, 10)
    log = tmp_path / "fault.log"
    code, _, err = run("lf-file", ["--path", tmp_path / "o" / "log",
                                   "--format", "ltsv", "--once", sp],
                       env=dict(UTC, **fault_env("unlink@/new/:1:EIO", log)))
    assert code == 74, err
    assert len(fault_log(log)) == 1
    assert len(lfchunk.list_chunks(sp)) == 3
    err = lf_file(sp, "--path", tmp_path / "o" / "log", "--format", "ltsv",
                  "-v", quiet=False)
    assert b"written before" in err
    assert_once(tmp_path / "o", n)
    assert sorted(files(tmp_path / "o")) == ["log_0.log", "log_1.log",
                                             "log_2.log"]


@pytest.mark.parametrize("spec", [
    "fdatasync@/o/:1:EIO", "fdatasync@/o/:2:EIO", "pwrite@/o/:2:ENOSPC",
    "fdatasync@/state/file:2:EIO", "pwrite@/state/file:3:ENOSPC"])
def test_write_faults_retried(tmp_path, spec):
    sp, n = id_spool(tmp_path, 4, 2000, timekey=True)
    log = tmp_path / "fault.log"
    p = subprocess.Popen([tool("lf-file"), "--path", str(tmp_path / "o" / "log"),
                          "--format", "ltsv", "--append", "--timekey", "1d",
                          "--retry-wait", "0.1", sp], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE,
                         env=_env(dict(UTC, **fault_env(spec, log))))
    try:
        wait_for(lambda: not lfchunk.list_chunks(sp), what="the spool drained")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=WAIT)
    conftest.check_no_sanitizer(err)
    assert p.returncode == 0, err
    assert len(fault_log(log)) == 1
    assert b"retrying" in err
    assert_once(tmp_path / "o", n)


def test_full_disk_blocks_then_completes(tmp_path, smallfs):
    sp, n = id_spool(tmp_path, 20, 1000)     # ~1.3 MB of lines
    fill(smallfs, leave_pages=40)           # 160 KiB free
    out = os.path.join(smallfs, "o")
    p = subprocess.Popen([tool("lf-file"), "--path", out + "/log",
                          "--format", "ltsv", "--retry-wait", "0.1",
                          "--retry-max-interval", "0.3", sp],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=_env(UTC))
    try:
        # some chunks go, then it stalls with chunks left
        wait_for(lambda: os.path.exists(os.path.join(sp, "state", "file"))
                 and len(lfchunk.list_chunks(sp)) < 20, what="progress")
        time.sleep(1)
        left = len(lfchunk.list_chunks(sp))
        assert 0 < left < 20
        assert p.poll() is None
        os.unlink(os.path.join(smallfs, "filler"))
        wait_for(lambda: not lfchunk.list_chunks(sp), what="the rest written")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=WAIT)
    conftest.check_no_sanitizer(err)
    assert b"No space left on device" in err
    assert_once(out, n)


def test_seed_backup_from_lf_buffer_spool(tmp_path):
    """The seed's backup: lf-buffer keys the chunks by tag, hour and host
    (out_copy's second store), lf-file appends each hour's LTSV lines to
    ${tag}/${host}/%Y%m%d%H; the chunk keys of a real lf-buffer spool
    and lf-file's template agree, and every event is there once."""
    h = 1714564800      # 2024-05-01T12:00:00Z
    evs = [(tag, h + 1200 * i, {"host": "h%d" % (i % 2), "i": i})
           for i in range(12) for tag in ("app.web", "app.db")]
    stream = b"".join(msgpack.packb([tag, lfchunk.event_time(t), r],
                                    use_bin_type=True) for tag, t, r in evs)
    fwd, backup = tmp_path / "fwd", tmp_path / "backup"
    run_ok("lf-buffer", ["--timekey", "1h", "--timekey-use-utc",
                         "--chunk-key", "host", fwd, backup],
           input_bytes=stream)
    out = tmp_path / "log"
    lf_file(str(backup), "--timekey", "1h", "--timekey-use-utc",
            "--chunk-key", "host", "--append", "--format", "ltsv",
            "--path", str(out) + "/${tag}/${host}/%Y%m%d%H")
    want = {}
    for tag, t, r in evs:
        name = "%s/%s/%s.log" % (tag, r["host"], time.strftime(
            "%Y%m%d%H", time.gmtime(t - t % 3600)))
        want[name] = want.get(name, b"") + b"host:%s\ti:%d\n" % (
            r["host"].encode(), r["i"])
    got = files(out)
    assert {k: sorted(v.splitlines()) for k, v in got.items()} == \
        {k: sorted(v.splitlines()) for k, v in want.items()}
    assert len(lfchunk.list_chunks(str(fwd))) > 0   # the other store
