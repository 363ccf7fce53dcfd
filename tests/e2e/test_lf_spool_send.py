"""lf-spool stat shows lf-send's SPOOL/state/send when there is one."""
import json
import os

import pytest

import lfchunk
from conftest import run, run_ok
from fwdserver import FwdServer
from test_lf_send import Send, fill, free_port, left, wait_for


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


def test_stat_shows_lf_send_state(spool, tmp_path):
    fill(spool, 3, 10)
    srv = FwdServer(["ack"])
    dead = "127.0.0.1:%d" % free_port()
    s = Send(spool, tmp_path, [
        "--require-ack-response", "--heartbeat-interval", "0.05s",
        "--hard-timeout", "0.5s", "--server", srv.addr + ",name=main",
        "--server", dead + ",standby,name=spare"])
    try:
        def seen():
            j = json.loads(run_ok("lf-spool", ["stat", "--json", spool]))
            sv = j.get("send", {}).get("servers", [])
            return not left(spool) and len(sv) == 2 and \
                sv[0]["chunks"] == 3 and not sv[1]["up"] and \
                sv[1]["last_error"] and j
        j = wait_for(seen, what="the state file with both servers")
        out = run_ok("lf-spool", ["stat", spool]).decode().splitlines()
    finally:
        assert s.stop() == 0
        srv.close()
    assert j["send"]["pid"] == s.p.pid and j["send"]["events"] == 30
    # the spool's own lines first, as without lf-send
    assert out[0] == "spool   " + spool and out[4].startswith("dead ")
    # a retry line when consume left one, then lf-send's
    if out[5].startswith("retry"):
        out = out[:5] + out[6:]
    assert out[5].startswith("send    pid %d, written " % s.p.pid)
    assert out[5].endswith(": 3 chunks, 30 events, %d bytes, 0 retries" %
                           j["send"]["bytes"])
    assert out[6].startswith("server  main: up, phi ")
    assert out[6].endswith("in flight 0 chunks (0 events), delivered 3 "
                           "chunks (30 events, %d bytes), 0 retries" %
                           j["send"]["servers"][0]["bytes"])
    assert out[7].startswith("server  spare (standby): down, phi ")
    assert out[8].startswith("        last error: ")
    assert "no heartbeat" in out[8] or "refused" in out[8]
    assert len(out) == 9


def test_stat_send_state_escaped_and_bad(spool):
    path = os.path.join(spool, "state", "send")
    with open(path, "w") as f:
        json.dump({"pid": 1, "time": 0, "chunks": 0, "events": 0,
                   "bytes": 0, "retries": 0, "servers": [
                       {"name": "a\x1b[2Jb", "up": False, "phi": 1e9,
                        "last_error": "bad\nline"}]}, f)
    out = run_ok("lf-spool", ["stat", spool]).decode().splitlines()
    assert out[6].startswith("server  a\\033[2Jb: down, phi ")
    assert out[7] == "        last error: bad\\012line"
    with open(path, "w") as f:
        f.write("{garbage")
    rc, out, err = run("lf-spool", ["stat", spool])
    assert rc == 0 and b"state/send: not lf-send's state" in err
    assert len(out.decode().splitlines()) == 5      # as without one
    assert "send" not in json.loads(run("lf-spool", ["stat", "--json",
                                                     spool])[1])
