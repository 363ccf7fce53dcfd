"""The fault injector itself (tests/tools/faultinj.so): the failure-branch
tests rely on it, so a rule that silently matched nothing would turn them
into tests of nothing."""
import os

from conftest import fault_env, fault_log, packb, run, T, et


def stream(n=1):
    return b"".join(packb(["t", et(T), {"i": i}]) for i in range(n))


def test_bad_rule_stops_the_process(tmp_path):
    for spec in ("fsync", "nosuch:1:EIO", "fsync:0:EIO", "fsync:1:ENOTANERRNO",
                 "fsync:3-2:EIO"):
        rc, out, err = run("lf-cat", ["-o", "msgpack"], stream(),
                           env=fault_env(spec))
        assert rc == 70, (spec, rc, err)
        assert b"faultinj: bad LF_FAULT rule" in err


def test_open_fails_with_the_errno_given(tmp_path):
    f = tmp_path / "in.mp"
    f.write_bytes(stream())
    log = tmp_path / "flog"
    rc, out, err = run("lf-cat", [f], env=fault_env("open@in.mp:1:EACCES", log))
    assert rc != 0 and out == b""
    assert b"Permission denied" in err
    assert fault_log(log) == [("openat", str(f), "EACCES")]


def test_nth_call_only_and_ranges(tmp_path):
    """Rule 2 of three openat calls of files named a*: only the second."""
    files = []
    for name in ("a1", "a2", "a3"):
        p = tmp_path / name
        p.write_bytes(stream())
        files.append(p)
    log = tmp_path / "flog"
    rc, out, err = run("lf-cat", ["-o", "json"] + files,
                       env=fault_env("open@/a:2:ENOENT", log))
    assert rc != 0
    assert out.count(b"\n") == 2, out
    assert fault_log(log) == [("openat", str(files[1]), "ENOENT")]
    os.unlink(log)
    rc, out, err = run("lf-cat", ["-o", "json"] + files,
                       env=fault_env("open@/a:2+:EIO", log))
    assert out.count(b"\n") == 1
    assert [x[1] for x in fault_log(log)] == [str(files[1]), str(files[2])]


def test_stdio_is_spared_without_substr(tmp_path):
    """A write rule without SUBSTR leaves fds 0-2 alone: the tool still
    writes its output and its log."""
    rc, out, err = run("lf-cat", ["-o", "json"], stream(3),
                       env=fault_env("write:1+:EIO"))
    assert rc == 0 and out.count(b"\n") == 3, (rc, err)


def test_fd_calls_match_the_path_of_the_descriptor(tmp_path):
    """fsync of the spool's tmp/ (a descriptor, matched through
    /proc/self/fd) fails once, when the first chunk is made."""
    log = tmp_path / "flog"
    spool = tmp_path / "sp"
    run("lf-buffer", [spool], stream(),
        env=fault_env("fsync@/sp/tmp:1:EIO", log), timeout=60)
    assert fault_log(log) == [("fsync", str(spool / "tmp"), "EIO")]
