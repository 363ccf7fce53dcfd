"""Odd files in a spool (issue 6, findings 5 and 6) and chunk bodies read
in bounded memory (lib/spool: spool_body_next, spool_chunk_verify).

Only regular files are chunks (lf-spool(5)).  Anything else with a
chunk's name, in tmp/, new/ or dead/, must give every tool a clear outcome
and never hang it or stop it for good: a FIFO, a directory, a socket, a
device node, a symbolic link (followed by nobody but lf-cat, which reads
what its user names), and the regular files that are not sound: empty,
cut below the header, unreadable (mode 000).  Every tool runs with a
timeout, so a hang fails the test instead of hanging it.

The tools run without CAP_DAC_OVERRIDE (setpriv), so that a mode 000 file
is unreadable even to root.
"""
import errno
import json
import os
import socket
import stat
import struct
import subprocess
import time

import msgpack
import pytest

import lfchunk
from conftest import REPO, _env, check_no_sanitizer, tool

BIN = os.environ.get("LF_BIN", str(REPO / "build" / "bin"))
FAKEDEST = os.path.normpath(BIN + "/../tests/tools/fakedest")
WAIT = 30           # seconds for one run: generous, under ASan
SETPRIV = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
           "--inh-caps", "-dac_override,-dac_read_search"]
EV = [(1700000000, {"msg": "hello"}), (1700000001, {"msg": "world"})]

KINDS = ("fifo", "dir", "socket", "chardev", "symlink", "dangling", "empty",
         "short", "mode000")
NOTFILE = {"fifo": "a FIFO", "dir": "a directory", "socket": "a socket",
           "chardev": "a character device", "blockdev": "a block device",
           "symlink": "a symbolic link",
           "dangling": "a symbolic link"}
FOLDERS = ("tmp", "new", "dead")


def runp(argv, timeout=WAIT, input_bytes=b""):
    """Run argv without the DAC capabilities; (rc, stdout, stderr).  A run
    that outlives timeout fails the test (subprocess kills it)."""
    try:
        p = subprocess.run(SETPRIV + argv, input=input_bytes,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        pytest.fail("hung: %s did not end in %ss" % (argv, timeout))
    check_no_sanitizer(p.stderr)
    return p.returncode, p.stdout, p.stderr


def fakedest():
    if not os.access(FAKEDEST, os.X_OK):
        pytest.fail("%s is not built (make units)" % FAKEDEST)
    return FAKEDEST


def staged_name():
    return "%s.chunk" % os.urandom(16).hex()


def ready_name():
    return lfchunk.ready_name(1, os.urandom(16))   # sorts first


def sound_chunk(state="R", events=EV, tag="odd"):
    return lfchunk.encode_chunk(tag, events, state=state)[0]


def make_odd(spool, folder, kind, elsewhere):
    """Put an odd file of kind into SPOOL/folder; returns its name.
    elsewhere: a directory outside the spool, for link targets."""
    name = staged_name() if folder == "tmp" else ready_name()
    path = os.path.join(spool, folder, name)
    state = "S" if folder == "tmp" else "R"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "socket":
        # a relative name: a Unix socket path is limited to 108 bytes
        cwd = os.getcwd()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.chdir(os.path.join(spool, folder))
            s.bind(name)
        finally:
            os.chdir(cwd)
            s.close()
    elif kind == "chardev":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))   # null
    elif kind == "blockdev":
        os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(7, 0))   # loop0
    elif kind in ("symlink", "dangling"):
        target = os.path.join(elsewhere, "target.chunk")
        if kind == "symlink":
            with open(target, "wb") as f:
                f.write(sound_chunk(state))
        os.symlink(target, path)
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "short":
        # a chunk whose events were acked, cut below its header
        with open(path, "wb") as f:
            f.write(sound_chunk(state)[:40])
    elif kind == "mode000":
        with open(path, "wb") as f:
            f.write(sound_chunk(state))
        os.chmod(path, 0)
    else:
        raise ValueError(kind)
    if folder == "dead":
        with open(path + ".reason", "w") as f:
            f.write("put there by a test\n")
    return name


def lexists(spool, folder, name):
    return os.path.lexists(os.path.join(spool, folder, name))


def reason(spool, name):
    return lfchunk.read_reason(spool, name)


@pytest.fixture
def env(tmp_path):
    spool = lfchunk.make_spool(tmp_path / "spool")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return spool, str(elsewhere)


def target_intact(elsewhere, kind, folder):
    """A symbolic link's target is never moved, changed or removed."""
    if kind != "symlink":
        return
    with open(os.path.join(elsewhere, "target.chunk"), "rb") as f:
        data = f.read()
    assert lfchunk.read_chunk(os.path.join(elsewhere, "target.chunk"))["head_ok"]
    assert len(data) > 64


# ---------------------------------------------------------------------------
# lf-buffer: recovery of tmp/ at start
# ---------------------------------------------------------------------------

def buffer_start(spool):
    """lf-buffer in pipe mode with nothing to read: start (recovery), stop."""
    return runp([tool("lf-buffer"), spool])


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_lf_buffer_starts(env, kind, folder):
    spool, elsewhere = env
    name = make_odd(spool, folder, kind, elsewhere)
    rc, out, err = buffer_start(spool)
    assert (rc, out) == (0, b""), err
    target_intact(elsewhere, kind, folder)
    if folder != "tmp":
        # not lf-buffer's: left as it is
        assert lexists(spool, folder, name)
        assert err == b""
        return
    assert not lexists(spool, "tmp", name)
    if kind == "empty":
        # provably empty: the one thing removed
        assert not lexists(spool, "dead", name)
        assert err == b""       # an info line, shown with -v
        return
    assert lexists(spool, "dead", name)
    why = reason(spool, name)
    if kind in NOTFILE:
        assert why == "not a staged chunk: %s, not a regular file" \
            % NOTFILE[kind], why
    elif kind == "short":
        assert why == "staged chunk with a bad header: chunk file is " \
            "shorter than its header", why
    else:
        assert why == "staged chunk that cannot be opened: Permission " \
            "denied", why
    assert b"lf-buffer: warn: tmp/%s: %s: moved to dead/" \
        % (name.encode(), why.encode()) in err, err
    # and the next start has nothing to say
    rc, out, err = buffer_start(spool)
    assert (rc, out, err) == (0, b"", b"")


def test_lf_buffer_acked_chunk_cut_below_header_is_kept(env):
    # Finding 6: a staged chunk whose events were acked, cut to 40 bytes
    # (below CHUNK_FIXED), was unlinked with an info line.  It may hold
    # acked data: it goes to dead/, byte for byte, with a warning.
    spool, _ = env
    name = staged_name()
    data = sound_chunk("S", [(1700000000 + i, {"i": i}) for i in range(50)])
    path = os.path.join(spool, "tmp", name)
    for cut in (1, 40, 63, 64, 70):
        with open(path, "wb") as f:
            f.write(data[:cut])
        rc, out, err = buffer_start(spool)
        assert rc == 0, err
        assert not lexists(spool, "tmp", name)
        with open(os.path.join(spool, "dead", name), "rb") as f:
            assert f.read() == data[:cut]
        assert "shorter than its header" in reason(spool, name)
        assert b"lf-buffer: warn: tmp/%s" % name.encode() in err, err
        os.unlink(os.path.join(spool, "dead", name))
        os.unlink(os.path.join(spool, "dead", name + ".reason"))


# ---------------------------------------------------------------------------
# lf-spool stat, ls, fsck, requeue
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_lf_spool_stat_and_ls(env, kind, folder):
    spool, elsewhere = env
    name = make_odd(spool, folder, kind, elsewhere)
    rc, out, err = runp([tool("lf-spool"), "stat", "--json", spool])
    assert rc == 0, err
    st = json.loads(out)
    state = {"tmp": "staged", "new": "ready", "dead": "dead"}[folder]
    assert st[state]["chunks"] == 1 and st[state]["unreadable"] == 1, st
    size = 40 if kind == "short" else 0
    if kind == "mode000":
        size = len(sound_chunk())
    assert st[state]["bytes"] == size, st
    if folder != "dead":
        assert name.encode() in err, err
    rc, out, err = runp([tool("lf-spool"), "ls", spool])
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 1 and name in lines[0], lines
    if folder == "dead":
        assert lines[0].endswith("put there by a test"), lines
    elif kind in NOTFILE:
        assert lines[0].endswith("unreadable: %s, not a regular file"
                                 % NOTFILE[kind]), lines
    # nothing moved
    assert lexists(spool, folder, name)
    target_intact(elsewhere, kind, folder)


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_lf_spool_fsck(env, kind, folder):
    spool, elsewhere = env
    name = make_odd(spool, folder, kind, elsewhere)
    good = lfchunk.write_chunk(spool, "good", EV)
    fsck = [tool("lf-spool"), "fsck", spool]
    rc, out, err = runp(fsck)
    text = out.decode()
    if kind == "mode000":
        # cannot be checked, so neither judged nor moved: an I/O error
        assert rc == 74, (out, err)
        assert b"%s/%s: cannot check: " % (folder.encode(), name.encode()) \
            in err, err
        assert lexists(spool, folder, name)
        return
    moved = kind in NOTFILE and folder != "dead" or \
        folder == "new"
    if folder == "dead":
        assert rc == 0, (out, err)
        what = "not a chunk" if kind in NOTFILE else "corrupt"
        assert "dead/%s: %s: " % (name, what) in text, text
        assert lexists(spool, "dead", name)
    elif moved:
        assert rc == 65, (out, err)
        assert lexists(spool, "dead", name) and \
            not lexists(spool, folder, name)
        if kind in NOTFILE:
            line = "%s/%s: not a chunk: %s, not a regular file; moved to " \
                "dead/" % (folder, name, NOTFILE[kind])
            assert reason(spool, name) == "lf-spool fsck: not a chunk: %s, " \
                "not a regular file" % NOTFILE[kind]
        else:
            line = "new/%s: corrupt: chunk file is shorter than its " \
                "header; moved to dead/" % name
        assert line in text.splitlines(), text
    else:
        # a staged file lf-buffer may be writing: reported only
        assert rc == 65, (out, err)
        assert "tmp/%s: corrupt: chunk file is shorter than its header" \
            % name in text, text
        assert lexists(spool, "tmp", name)
    assert lexists(spool, "new", good)
    target_intact(elsewhere, kind, folder)
    # fsck does not fail for ever over what it set aside
    if moved:
        rc, out, err = runp(fsck)
        assert rc == 0, (out, err)


@pytest.mark.parametrize("kind", KINDS)
def test_lf_spool_requeue_refuses_odd_dead(env, kind):
    spool, elsewhere = env
    name = make_odd(spool, "dead", kind, elsewhere)
    rc, out, err = runp([tool("lf-spool"), "requeue", spool, name])
    assert rc == (74 if kind == "mode000" else 65), (out, err)
    assert b"dead/%s: not requeued: " % name.encode() in err, err
    if kind in NOTFILE:
        assert NOTFILE[kind].encode() + b", not a regular file" in err, err
    assert lexists(spool, "dead", name) and not lexists(spool, "new", name)
    # requeue of every dead chunk goes on past it
    good = lfchunk.write_chunk(spool, "good", EV, dirname="dead")
    rc, out, err = runp([tool("lf-spool"), "requeue", spool])
    assert out == b"requeued %s\n" % good.encode(), (out, err)
    target_intact(elsewhere, kind, "dead")


def test_lf_spool_purge_removes_a_dead_directory(env):
    spool, elsewhere = env
    name = make_odd(spool, "dead", "dir", elsewhere)
    rc, out, err = runp([tool("lf-spool"), "purge", "--dead", spool])
    assert (rc, err) == (0, b""), err
    assert not lexists(spool, "dead", name)


def test_odd_reason_and_retry_files(env, tmp_path):
    # a FIFO as dead/NAME.reason or state/retry is read by nobody
    spool, _ = env
    name = lfchunk.write_chunk(spool, "dead", EV, dirname="dead")
    os.mkfifo(os.path.join(spool, "dead", name + ".reason"))
    os.mkfifo(os.path.join(spool, "state", "retry"))
    rc, out, err = runp([tool("lf-spool"), "ls", spool])
    assert rc == 0 and out.decode().rstrip().endswith(" -"), (out, err)
    rc, out, err = runp([tool("lf-spool"), "stat", spool])
    assert rc == 0, err
    assert b"retry   unreadable: state/retry: a FIFO, not a regular file" \
        in out, out
    good = lfchunk.write_chunk(spool, "good", EV)
    rc, out, err = runp([fakedest(), "--once", "--log",
                         str(tmp_path / "out"), spool])
    assert rc == 0, err
    assert b"state/retry: a FIFO, not a regular file; starting without a " \
        b"retry pending" in err, err
    assert not lexists(spool, "new", good)


# ---------------------------------------------------------------------------
# lf-cat on a chunk path
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "fifo"])
def test_lf_cat(env, kind, folder):
    # lf-cat reads what it is named, as cat(1) does: it follows a link
    # and reads a device; it never hangs on a spool file.
    spool, elsewhere = env
    name = make_odd(spool, folder, kind, elsewhere)
    rc, out, err = runp([tool("lf-cat"), os.path.join(spool, folder, name)])
    want = {"dir": (74, b"Is a directory"),
            "socket": (66, b"No such device or address"),
            "chardev": (0, b""), "symlink": (0, b""),
            "dangling": (66, b"No such file or directory"),
            "empty": (0, b""),
            "short": (65, b"bad chunk file: chunk file is shorter than its "
                      b"header"),
            "mode000": (66, b"Permission denied")}[kind]
    assert rc == want[0], err
    assert want[1] in err, err
    if kind == "symlink":
        assert out.count(b"\n") == 2 and b"world" in out, out
    else:
        assert out == b""


def test_lf_cat_fifo_is_a_stream(env):
    # A FIFO is input, read as it comes, once its writer is there.
    spool, elsewhere = env
    name = make_odd(spool, "new", "fifo", elsewhere)
    path = os.path.join(spool, "new", name)
    p = subprocess.Popen(SETPRIV + [tool("lf-cat"), path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env())
    # the writer's end without blocking: ENXIO until lf-cat has opened it
    deadline = time.monotonic() + WAIT
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline or \
                    p.poll() is not None:
                p.kill()
                pytest.fail("lf-cat never opened the FIFO: %r" % e)
            time.sleep(0.01)
    os.set_blocking(fd, True)
    os.write(fd, sound_chunk())
    os.close(fd)
    try:
        out, err = p.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("lf-cat hung on a FIFO with a writer")
    check_no_sanitizer(err)
    assert p.returncode == 0, err
    assert out.count(b"\n") == 2


# ---------------------------------------------------------------------------
# Consumers (lib/consume through tests/tools/fakedest)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("kind", KINDS + ("blockdev",))
def test_consumer(env, tmp_path, kind, folder):
    spool, elsewhere = env
    name = make_odd(spool, folder, kind, elsewhere)
    good = [lfchunk.write_chunk(spool, "good%d" % i, EV) for i in range(2)]
    log = tmp_path / "out"
    rc, out, err = runp([fakedest(), "--once", "--log", str(log), spool])
    delivered = [l.split()[0] for l in log.read_text().splitlines()]
    # every sound chunk is delivered, whatever sits beside them
    assert delivered == [g.split(".")[1] for g in good], err
    target_intact(elsewhere, kind, folder)
    if folder != "new":
        assert (rc, err) == (0, b"")
        assert lexists(spool, folder, name)
        return
    if kind == "mode000":
        # not known bad: left where it is, and --once says "later"
        assert rc == 75, err
        assert b"%s: open: Permission denied; left in new/ for now" \
            % name.encode() in err, err
        assert lexists(spool, "new", name)
        return
    assert rc == 0, err
    assert not lexists(spool, "new", name) and lexists(spool, "dead", name)
    if kind in NOTFILE:
        why = "not a chunk: %s, not a regular file" % NOTFILE[kind]
    else:
        why = "corrupt chunk: chunk file is shorter than its header"
    assert reason(spool, name) == why
    assert b"%s: %s; moved to dead/" % (name.encode(), why.encode()) in err


# ---------------------------------------------------------------------------
# Bodies read in bounded memory
# ---------------------------------------------------------------------------

def peak_rss_kib(argv, tmp_path):
    """Run argv under GNU time, whose small fork is all there is before
    the exec; (rc, stderr, argv's peak RSS in KiB)."""
    out = tmp_path / "rss"
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.fail("/usr/bin/time (GNU time) is needed")
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out)] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=240, env=_env())
    check_no_sanitizer(p.stderr)
    return p.returncode, p.stderr, int(out.read_text().split()[-1])


def big_events(mib, seed=1):
    """About mib MiB of entries of mixed sizes, some larger than a read
    block (256 KiB), so that entries straddle every block boundary."""
    import random
    rnd = random.Random(seed)
    evs, size, i = [], 0, 0
    while size < mib << 20:
        n = rnd.choice((10, 100, 1000, 5000, 70000)) if i % 97 else 300000
        rec = {"i": i, "p": "x" * n}
        evs.append((1700000000 + i % 1000, rec))
        size += n + 30
        i += 1
    return evs


def write_body(spool, tag, body, count, dirname="new"):
    return lfchunk.write_chunk(spool, tag, body=body, count=count,
                               dirname=dirname)


def test_consumer_memory_is_bounded_by_block_not_chunk(env, tmp_path):
    # A 64 MiB chunk: the consumer's peak RSS grows by far less than the
    # chunk over that of a tiny one (it grew by the whole body, 64 MiB,
    # before).  Bound: 16 MiB, a quarter of the body, which leaves room for
    # ASan's own bookkeeping but not for the body.
    spool, _ = env
    small = lfchunk.write_chunk(spool, "small", EV)
    rc, err, base = peak_rss_kib([fakedest(), "--once", spool], tmp_path)
    assert (rc, err) == (0, b""), err
    evs = big_events(64)
    body = lfchunk.pack_events(evs)
    assert len(body) >= 64 << 20
    name = write_body(spool, "big", body, len(evs))
    log = tmp_path / "out"
    rc, err, peak = peak_rss_kib([fakedest(), "--once", "--log", str(log),
                                  spool], tmp_path)
    assert (rc, err) == (0, b""), err
    assert log.read_text().split() == [name.split(".")[1], "big",
                                       str(len(evs))]
    grown = (peak - base) / 1024
    print("consumer peak RSS: tiny chunk %d KiB, 64 MiB chunk %d KiB"
          % (base, peak))
    assert grown < 16, "peak RSS %d KiB, %.1f MiB over a tiny chunk's" \
        % (peak, grown)
    del small


def test_lf_cat_memory_is_bounded_and_output_whole(env, tmp_path):
    # lf-cat -o json of a 32 MiB chunk: every event, in order, and a peak
    # RSS that does not grow with the chunk (bound as above).
    spool, _ = env
    small = lfchunk.write_chunk(spool, "small", EV)
    rc, err, base = peak_rss_kib([tool("lf-cat"), os.path.join(
        spool, "new", small)], tmp_path)
    assert (rc, err) == (0, b""), err
    evs = big_events(32, seed=2)
    name = write_body(spool, "big", lfchunk.pack_events(evs), len(evs))
    path = os.path.join(spool, "new", name)
    rc, err, peak = peak_rss_kib([tool("lf-cat"), path], tmp_path)
    assert (rc, err) == (0, b""), err
    print("lf-cat peak RSS: tiny chunk %d KiB, 32 MiB chunk %d KiB"
          % (base, peak))
    assert (peak - base) / 1024 < 16, (peak, base)
    # and the output is every event, each once, in order
    p = subprocess.run([tool("lf-cat"), path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=240, env=_env())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(evs)
    for line, (_t, rec) in zip(lines, evs):
        assert json.loads(line)["record"]["i"] == rec["i"]


def entry(i, n=10):
    return msgpack.packb([msgpack.ExtType(0, struct.pack(">II", 1700000000,
                                                         0)),
                          {"i": i, "p": "y" * n}], use_bin_type=True)


BLOCK = 256 << 10
AFTER = 12


def body_across(bad_at, bad, pad=70000):
    """Entries of about pad bytes, then `bad` (bytes) straddling a block
    boundary (it starts 5 bytes before one), then AFTER more entries.
    (body, number of good entries before bad)"""
    parts, size, i = [], 0, 0
    while i < bad_at:
        e = entry(i, pad)
        parts.append(e)
        size += len(e)
        i += 1
    # fill up to 5 bytes short of a block boundary
    room = (-size - 5) % BLOCK
    if room < 1000:
        room += BLOCK
    filler = next(e for e in (entry(i, n) for n in range(room - 60, room))
                  if len(e) == room)
    parts.append(filler)
    i += 1
    parts.append(bad)
    # then blocks more, read for the CRC only
    for j in range(AFTER):
        parts.append(entry(i + 1 + j, pad))
    return b"".join(parts), i


@pytest.mark.parametrize("how", ["crc", "count", "entry", "cut-entry",
                                 "short"])
def test_corrupt_big_chunk_goes_to_dead(env, tmp_path, how):
    spool, _ = env
    evs = big_events(8, seed=3)
    body = lfchunk.pack_events(evs)
    count = len(evs)
    if how == "crc":
        # a byte flipped in the middle: write the header's CRC first
        data, _ = lfchunk.encode_chunk("big", body=body, count=count)
        name = lfchunk.ready_name(1, os.urandom(16))
        b = bytearray(data)
        b[len(b) // 2] ^= 0x10
        with open(os.path.join(spool, "new", name), "wb") as f:
            f.write(bytes(b))
        want = "corrupt chunk: chunk body checksum mismatch"
    elif how == "count":
        name = write_body(spool, "big", body, count + 1)
        want = "corrupt chunk: chunk body holds %d events, header says %d" \
            % (count, count + 1)
    elif how == "entry":
        # a record that is not a map, across a block boundary, CRC right
        bad = msgpack.packb([msgpack.ExtType(0, b"\0" * 8), [1, 2, 3]])
        body, good = body_across(20, bad)
        name = write_body(spool, "big", body, good + 1 + AFTER)
        want = "corrupt chunk: chunk body has a bad entry after %d events" \
            % good
    elif how == "cut-entry":
        # the last entry cut short, CRC right
        body = body[:-3]
        name = write_body(spool, "big", body, count)
        want = "corrupt chunk: chunk body has a bad entry after %d events" \
            % (count - 1)
    else:
        data, _ = lfchunk.encode_chunk("big", body=body, count=count)
        name = lfchunk.ready_name(1, os.urandom(16))
        with open(os.path.join(spool, "new", name), "wb") as f:
            f.write(data[:-1000])
        want = "corrupt chunk: chunk file is %d bytes, header says %d" \
            % (len(data) - 1000, len(data))
    good = lfchunk.write_chunk(spool, "good", EV)
    log = tmp_path / "out"
    rc, out, err = runp([fakedest(), "--once", "--log", str(log), spool])
    assert rc == 0, err
    assert [l.split()[0] for l in log.read_text().splitlines()] == \
        [good.split(".")[1]]
    assert reason(spool, name) == want
    # lf-spool fsck and lf-cat agree, and lf-cat prints nothing of it
    rc, out, err = runp([tool("lf-cat"), os.path.join(spool, "dead", name)])
    assert rc == 65 and out == b"", err
    if how == "short":
        want = "corrupt chunk: chunk body is cut short"   # lf-cat's words
    assert want.split(": ", 1)[1].encode() in err, err


def test_entries_across_blocks_read_right(env, tmp_path):
    # Entries of every size around the block size, one much larger than a
    # block: delivered, and lf-cat prints each one (json and msgpack).
    spool, _ = env
    evs = []
    for i, n in enumerate([BLOCK - 40, BLOCK - 30, 3 * BLOCK, 1, BLOCK,
                           BLOCK + 1, 17, 2 * BLOCK - 25]):
        evs.append((1700000000 + i, {"i": i, "p": "z" * n}))
    name = write_body(spool, "t", lfchunk.pack_events(evs), len(evs))
    path = os.path.join(spool, "new", name)
    rc, out, err = runp([tool("lf-cat"), path])
    assert (rc, err) == (0, b"")
    assert [json.loads(l)["record"]["i"] for l in out.splitlines()] == \
        list(range(len(evs)))
    rc, out, err = runp([tool("lf-cat"), "-o", "msgpack", path])
    assert (rc, err) == (0, b"")
    u = msgpack.Unpacker(raw=False)
    u.feed(out)
    msgs = list(u)
    assert len(msgs) == 1 and msgs[0][2]["size"] == len(evs)
    assert msgs[0][1] == lfchunk.pack_events(evs)
    log = tmp_path / "out"
    rc, out, err = runp([fakedest(), "--once", "--log", str(log), spool])
    assert (rc, err) == (0, b"")
    assert log.read_text().split()[2] == str(len(evs))


def test_header_longer_than_first_read(env, tmp_path):
    # Chunk keys of 6 KiB: the header is read again at its full length.
    spool, _ = env
    name = lfchunk.write_chunk(spool, "t", EV, variables={"v": "k" * 6000})
    rc, out, err = runp([tool("lf-cat"), os.path.join(spool, "new", name)])
    assert (rc, err) == (0, b"") and out.count(b"\n") == 2
    log = tmp_path / "out"
    rc, out, err = runp([fakedest(), "--once", "--log", str(log), spool])
    assert (rc, err) == (0, b"")
    assert log.read_text().split()[0] == name.split(".")[1]


# ---------------------------------------------------------------------------
# Failure branches of lib/spool.c, with tests/tools/faultinj.so
# ---------------------------------------------------------------------------

from conftest import fault_env, fault_log, run  # noqa: E402


def faulty(name, args, spec, tmp_path, input_bytes=b""):
    """Run tool name (or the fakedest path) under faultinj; (rc, out, err,
    the failures made).  The failures must have been made: a rule that
    matched nothing would make the test a test of nothing."""
    log = tmp_path / ("flog.%d" % len(os.listdir(tmp_path)))
    env = fault_env(spec, log)
    argv = [name if name.startswith("/") else tool(name)] + \
        [str(a) for a in args]
    p = subprocess.run(argv, input=input_bytes, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=WAIT, env=_env(env))
    check_no_sanitizer(p.stderr)
    made = fault_log(log)
    assert made, "%s: no failure made (%s): %r" % (spec, name, p.stderr)
    return p.returncode, p.stdout, p.stderr, made


@pytest.mark.parametrize("spec,want", [
    ("openat@/spool:1:EIO", b"Input/output error"),      # the spool itself
    ("fstat@/spool:1:EIO", b"Input/output error"),
    ("openat@/spool/dead:1:EACCES", b"spool/dead: Permission denied"),
    ("fstat@/spool/state:1:EIO", b"Input/output error"),
])
def test_fault_spool_open(env, tmp_path, spec, want):
    spool, _ = env
    rc, out, err, _ = faulty("lf-spool", ["stat", spool], spec, tmp_path)
    assert rc == 74 and out == b"", err
    assert want in err, err


def test_fault_spool_create_and_lock(tmp_path):
    spool = str(tmp_path / "fresh")
    for spec in ("mkdir@/fresh:1:EACCES", "mkdir@/fresh/new:1:EACCES",
                 "fsync@/fresh:1:EIO",
                 "openat@/fresh/lock:1:EACCES"):
        rc, out, err, made = faulty("lf-buffer", [spool], spec, tmp_path)
        assert rc != 0, (spec, err)
        assert made[0][2] in ("EACCES", "EIO")
        assert b"lf-buffer: fatal: " in err or b"lf-buffer: error: " in err, err


def test_spool_folder_on_another_filesystem(env):
    spool, _ = env
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(spool).st_dev:
        pytest.fail("needs /dev/shm on a file system of its own")
    d = os.path.join(shm, "lf-test-%d" % os.getpid())
    os.mkdir(d)
    try:
        os.rmdir(os.path.join(spool, "state"))
        os.symlink(d, os.path.join(spool, "state"))
        rc, out, err = runp([tool("lf-spool"), "stat", spool])
        assert rc == 74 and b"is on another filesystem" in err, err
    finally:
        os.rmdir(d)


@pytest.mark.parametrize("spec,rc_want,moved,words", [
    # spool_file_open's fstat, read_head's fstat, the claim's fstat
    # (taken: passed over), the header's pread, a body pread: all "not
    # known bad", so left in new/
    ("fstat@/spool/new/:1:EIO", 75, False, b"open: Input/output error; left in new/"),
    ("fstat@/spool/new/:3:EIO", 75, False, b"Input/output error; left in new/"),
    ("fstat@/spool/new/:2:EIO", 0, False, b""),
    ("pread@/spool/new/:1:EIO", 75, False, b"read: Input/output error; left in new/"),
    ("pread@/spool/new/:2:EIO", 75, False,
     b"cannot read the chunk body: Input/output error; left in new/"),
])
def test_fault_consumer_reads(env, tmp_path, spec, rc_want, moved, words):
    spool, _ = env
    name = lfchunk.write_chunk(spool, "t", EV)
    log = tmp_path / "out"
    rc, out, err, made = faulty(fakedest(), ["--once", "--log", log, spool],
                                spec, tmp_path)
    assert rc == rc_want, err
    assert words in err, err
    assert lexists(spool, "new", name) and not lexists(spool, "dead", name)
    assert not log.exists() or log.read_text() == ""
    # and with the fault gone it is delivered
    rc, out, err = runp([fakedest(), "--once", "--log", str(log), spool])
    assert (rc, err) == (0, b"") and not lexists(spool, "new", name)


def test_fault_consumer_cannot_bury(env, tmp_path):
    # The move to dead/ fails: the corrupt chunk stays in new/, the others
    # go on, --once says 74.
    spool, _ = env
    bad = lfchunk.write_chunk(spool, "t", EV, corrupt="flip-body")
    good = lfchunk.write_chunk(spool, "t", EV)
    log = tmp_path / "out"
    rc, out, err, made = faulty(fakedest(), ["--once", "--log", log, spool],
                                "rename@/spool/new/:1:EIO", tmp_path)
    assert rc == 74, err
    assert b"cannot move it to dead/: Input/output error" in err, err
    assert lexists(spool, "new", bad) and not lexists(spool, "new", good)
    assert not lexists(spool, "dead", bad)


def test_fault_recovery_cannot_set_aside(env, tmp_path):
    # A staged chunk cut below its header that cannot be moved to dead/,
    # or an empty one that cannot be removed: lf-buffer says so and does
    # not start (nothing is lost, the next start tries again).
    spool, _ = env
    name = staged_name()
    with open(os.path.join(spool, "tmp", name), "wb") as f:
        f.write(sound_chunk("S")[:40])
    rc, out, err, made = faulty("lf-buffer", [spool], "rename@/spool/tmp/:1+:EIO",
                                tmp_path)
    assert rc != 0 and lexists(spool, "tmp", name), err
    assert b"cannot move it to dead/: Input/output error" in err, err
    # an I/O error reading it: not known bad, left, no start
    rc, out, err, made = faulty("lf-buffer", [spool], "pread@/spool/tmp/:1:EIO",
                                tmp_path)
    assert rc != 0 and lexists(spool, "tmp", name), err
    assert b"cannot read: read: Input/output error (left for the next " \
        b"start)" in err, err
    os.unlink(os.path.join(spool, "tmp", name))
    open(os.path.join(spool, "tmp", name), "wb").close()
    rc, out, err, made = faulty("lf-buffer", [spool], "unlink@/spool/tmp/:1:EIO",
                                tmp_path)
    assert rc != 0 and lexists(spool, "tmp", name), err
    assert b"cannot remove an empty file: Input/output error" in err, err
    rc, out, err = runp([tool("lf-buffer"), spool])
    assert (rc, err) == (0, b"") and not lexists(spool, "tmp", name)


def test_fault_fsck_reads(env, tmp_path):
    spool, _ = env
    name = lfchunk.write_chunk(spool, "t", EV, dirname="dead")
    rc, out, err, made = faulty("lf-spool", ["fsck", spool],
                                "pread@/spool/dead/:2:EIO", tmp_path)
    assert rc == 74, (out, err)
    assert b"dead/%s: cannot check: cannot read the chunk body: " \
        b"Input/output error" % name.encode() in err, err
    rc, out, err, made = faulty("lf-spool", ["requeue", spool, name],
                                "pread@/spool/dead/:1:EIO", tmp_path)
    assert rc == 74 and b"not requeued: read: Input/output error" in err, err
    assert lexists(spool, "dead", name)


def test_fault_requeue(env, tmp_path):
    spool, _ = env
    name = lfchunk.write_chunk(spool, "t", EV, dirname="dead")
    rc, out, err, made = faulty("lf-spool", ["requeue", spool, name],
                                "rename@/spool/dead/:1:EIO", tmp_path)
    assert rc == 74 and b"requeue: Input/output error" in err, err
    assert lexists(spool, "dead", name)
    rc, out, err, made = faulty("lf-spool", ["requeue", spool, name],
                                "fsync@/spool/new:1:EIO", tmp_path)
    assert rc == 74, err


# ---------------------------------------------------------------------------
# state/: lf-buffer's dedup window is a regular file or nothing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink", "dangling"])
def test_lf_buffer_odd_window_is_refused_at_once(env, kind):
    """A FIFO at state/window hung lf-buffer at start (it waited to read
    it); a link would have been followed.  Now: a clear error, exit 73,
    and the odd file and a link's target are left alone."""
    spool, elsewhere = env
    path = os.path.join(spool, "state", "window")
    target = os.path.join(elsewhere, "target")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
    else:
        if kind == "symlink":
            with open(target, "wb") as f:
                f.write(b"x" * 48)
        os.symlink(target, path)
    rc, out, err = buffer_start(spool)
    assert rc == 73, err
    assert b"state/window is not a regular file: move it away" in err \
        or (kind == "dir" and b"state/window: Is a directory" in err), err
    assert os.path.lexists(path)
    if kind == "symlink":
        with open(target, "rb") as f:
            assert f.read() == b"x" * 48


def test_lf_buffer_does_not_count_a_link_target(env, tmp_path):
    """--total-limit-size counts the spool's own files: a symbolic link
    in new/ to a big file elsewhere does not fill the spool."""
    spool, elsewhere = env
    big = os.path.join(elsewhere, "big")
    with open(big, "wb") as f:
        f.truncate(8 << 20)
    os.symlink(big, os.path.join(spool, "new", ready_name()))
    stream = msgpack.packb(["t", 1700000000, {"k": "v"}])
    rc, out, err = runp([tool("lf-buffer"), "--total-limit-size", "1m",
                         spool], input_bytes=stream)
    assert rc == 0 and b"total_limit_size" not in err, err
    assert len(os.listdir(os.path.join(spool, "new"))) == 2


def test_bury_race_keeps_the_winners_reason(env, tmp_path):
    """Two processes bury the same chunk: the loser's move finds it gone
    (ENOENT) and already in dead/; it must not remove the reason beside
    it (it used to unlink it, leaving a dead letter without a reason)."""
    spool, _ = env
    bad = lfchunk.write_chunk(spool, "t", EV, corrupt="flip-body")
    # the winner got there first: its copy and reason are in dead/
    with open(os.path.join(spool, "new", bad), "rb") as f:
        data = f.read()
    with open(os.path.join(spool, "dead", bad), "wb") as f:
        f.write(data)
    log = tmp_path / "out"
    rc, out, err, made = faulty(fakedest(), ["--once", "--log", log, spool],
                                "rename@/spool/new/%s:1:ENOENT" % bad,
                                tmp_path)
    assert made == [("rename", os.path.join(spool, "new", bad), "ENOENT")]
    assert lexists(spool, "dead", bad)
    assert reason(spool, bad), "the reason beside dead/%s was removed" % bad
