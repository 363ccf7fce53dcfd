"""End-to-end tests of lf-send's name handling (--expire-dns-cache,
--dns-round-robin, lookups off the event loop).

Names are answered by tests/tools/fakedns.so (an LD_PRELOAD shim of
getaddrinfo/getnameinfo) from a file the test rewrites while lf-send
runs; an answer may carry a port, so several fwdserver.py servers on
127.0.0.1 stand for several addresses of one name.  The shim logs each
lookup it answers, so the tests count lookups too.
"""
import json
import os
import time

import pytest

import conftest
from conftest import BIN
from fwdserver import FwdServer
from test_lf_send import ACK, Send, fill, left, spool  # noqa: F401
from test_tls import pki  # noqa: F401

WAIT = 30
wait_for = conftest.waiter(WAIT)

# one connection per chunk, so that every chunk asks for an address
NOKEEP = ["--keepalive", "false"]


class Names:
    """The shim's file, and the environment that makes lf-send read it."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "hosts"
        self.log = tmp_path / "fakedns.log"
        self.path.write_text("")

    def set(self, **names):
        """set(app_test=[port, ...] or "fail" / "again" / "hang")."""
        lines = []
        for name, v in names.items():
            name = name.replace("_", ".")
            if isinstance(v, str):
                lines.append("%s %s" % (name, v))
            else:
                lines.append(name + " " +
                             " ".join("127.0.0.1,%d" % p for p in v))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)     # never a half-written file

    def lookups(self, name):
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return 0
        return text.splitlines().count("getaddrinfo " + name)

    def env(self):
        so = BIN.parent / "tests" / "tools" / "fakedns.so"
        if not os.access(so, os.R_OK):
            pytest.fail("%s is not built (make units)" % so)
        asan = os.environ.get("ASAN_OPTIONS",
                              "detect_leaks=1:abort_on_error=1")
        return {"LD_PRELOAD": str(so), "LF_FAKEDNS": str(self.path),
                "LF_FAKEDNS_LOG": str(self.log),
                "ASAN_OPTIONS": asan + ":verify_asan_link_order=0"}


@pytest.fixture
def names(tmp_path):
    return Names(tmp_path)


def one_by_one(spool, n, seed):
    """n chunks, each written once the one before has left the spool:
    each goes out on a new connection (--keepalive false)."""
    for i in range(n):
        fill(spool, 1, 3, seed=seed + i)
        wait_for(lambda: not left(spool), what="chunk %d delivered" % i)


def moved(spool, tmp_path, names, extra):
    """app.test moves from a to b while lf-send runs: (a, b, s)."""
    a, b = FwdServer(["ack"]), FwdServer(["ack"])
    names.set(app_test=[a.port])
    s = Send(spool, tmp_path, ["--server", "app.test:24224"] + ACK + NOKEEP
             + extra, env=names.env())
    try:
        one_by_one(spool, 3, 0)
        assert len(a.msgs) == 3 and b.msgs == []
        names.set(app_test=[b.port])
        time.sleep(1.2)         # past --expire-dns-cache 1s
        one_by_one(spool, 3, 10)
    finally:
        rc = s.stop()
        a.close()
        b.close()
    assert rc == 0
    return a, b, s


def test_expire_dns_cache_follows_a_moved_name(spool, tmp_path, names):
    a, b, s = moved(spool, tmp_path, names, ["--expire-dns-cache", "1s"])
    assert len(a.msgs) == 3 and len(b.msgs) == 3
    assert names.lookups("app.test") >= 2


def test_without_expire_dns_cache_the_name_is_resolved_once(spool, tmp_path,
                                                            names):
    # Fluentd's nil: the old address still answers, so it is kept
    a, b, s = moved(spool, tmp_path, names, [])
    assert len(a.msgs) == 6 and b.msgs == []
    # one lookup for every connection and heartbeat (they share it)
    assert names.lookups("app.test") == 1


def test_a_detached_server_is_resolved_again(spool, tmp_path, names):
    """Without --expire-dns-cache, a server marked down forgets its
    address (Fluentd's detach): once the old address stops answering,
    heartbeats find the new one and chunks follow."""
    a, b = FwdServer(["ack"]), FwdServer(["ack"])
    names.set(app_test=[a.port])
    s = Send(spool, tmp_path, ["--server", "app.test:24224,name=app",
                               "--hard-timeout", "0.5s",
                               "--phi-failure-detector=false"] + ACK,
             env=names.env())
    try:
        one_by_one(spool, 2, 0)
        names.set(app_test=[b.port])
        a.close()
        wait_for(lambda: "app: down" in s.text(), what="app down")
        wait_for(lambda: "app: up" in s.text(), what="app up again")
        one_by_one(spool, 2, 10)
    finally:
        rc = s.stop()
        b.close()
    assert rc == 0
    assert len(a.msgs) == 2 and len(b.msgs) == 2


def test_dns_round_robin_spreads_connections(spool, tmp_path, names):
    srv = [FwdServer(["ack"]) for _ in range(3)]
    names.set(rr_test=[v.port for v in srv])
    s = Send(spool, tmp_path, ["--server", "rr.test:24224",
                               "--dns-round-robin", "true",
                               "--heartbeat-type", "none"] + ACK + NOKEEP,
             env=names.env())
    try:
        one_by_one(spool, 9, 0)
    finally:
        rc = s.stop()
        for v in srv:
            v.close()
    assert rc == 0
    # each connection the next address: three chunks each, in turn
    assert [len(v.msgs) for v in srv] == [3, 3, 3]


def test_without_round_robin_one_address_until_it_fails(spool, tmp_path,
                                                        names):
    srv = [FwdServer(["ack"]) for _ in range(3)]
    names.set(rr_test=[v.port for v in srv])
    s = Send(spool, tmp_path, ["--server", "rr.test:24224",
                               "--heartbeat-type", "none"] + ACK + NOKEEP,
             env=names.env())
    try:
        one_by_one(spool, 4, 0)
        assert [len(v.msgs) for v in srv] == [4, 0, 0]
        srv[0].close()          # refused: the next address takes over
        one_by_one(spool, 4, 10)
    finally:
        rc = s.stop()
        for v in srv[1:]:
            v.close()
    assert rc == 0
    assert [len(v.msgs) for v in srv] == [4, 4, 0]


def test_round_robin_needs_transport_heartbeats(spool, tmp_path):
    rc, out, err = conftest.run("lf-send", [
        "--server", "x.test:1", "--dns-round-robin", "true",
        "--heartbeat-type", "udp", str(spool)])
    assert rc == 64 and b"--heartbeat-type transport or none" in err


def test_a_hung_resolver_does_not_stop_the_rest(spool, tmp_path, names):
    """One server's name never answers (the shim hangs): the other server
    gets every chunk and its heartbeats, the state file is written, and
    lf-send still exits promptly on TERM."""
    b = FwdServer(["ack"])
    names.set(hang_test="hang")
    sf = os.path.join(spool, "state", "send")
    s = Send(spool, tmp_path, ["--server", "hang.test:24224,name=hung",
                               "--server", b.addr + ",name=b",
                               "--connect-timeout", "2s"] + ACK,
             env=names.env())
    try:
        fill(spool, 10, 5)
        wait_for(lambda: not left(spool), what="delivery through b")
        n = b.nconn
        # heartbeats to b go on, every 0.05s
        wait_for(lambda: b.nconn >= n + 10, what="b's heartbeats")

        def state():
            try:
                st = json.load(open(sf))
            except (OSError, ValueError):
                return None
            return st if st["chunks"] == 10 else None
        st = wait_for(state, what="the state file")
        mt = os.stat(sf).st_mtime_ns
        wait_for(lambda: os.stat(sf).st_mtime_ns != mt,
                 what="the state file written again")
        assert names.lookups("hang.test") == 0     # still inside the call
        t = time.monotonic()
        rc = s.stop()
        took = time.monotonic() - t
    finally:
        if s.p.poll() is None:
            s.stop()
        b.close()
    assert rc == 0
    assert took < 10, took      # 1s for the stuck worker, and ASan's exit
    assert len(b.msgs) >= 10
    hung = [v for v in st["servers"] if v["name"] == "hung"][0]
    assert hung["chunks"] == 0
    assert "hang.test: cannot resolve: no answer in 1s" in s.text()


def test_a_name_that_never_resolves_is_logged_once_per_reason(spool,
                                                              tmp_path,
                                                              names):
    b = FwdServer(["ack"])
    names.set(bad_test="fail")
    s = Send(spool, tmp_path, ["--server", "bad.test:24224,name=bad",
                               "--server", b.addr] + ACK, env=names.env())
    try:
        # heartbeats every 0.05s: each one looks the name up again
        wait_for(lambda: names.lookups("bad.test") >= 20, what="retries")
        names.set(bad_test="again")
        n = names.lookups("bad.test")
        wait_for(lambda: names.lookups("bad.test") >= n + 20,
                 what="more retries")
        fill(spool, 4, 5)
        wait_for(lambda: not left(spool), what="delivery through b")
    finally:
        rc = s.stop()
        b.close()
    assert rc == 0
    lines = [ln for ln in s.text().splitlines() if "cannot resolve" in ln]
    assert len(lines) == 2, lines
    assert "bad.test: cannot resolve: Name or service not known" in lines[0]
    assert "Temporary failure in name resolution" in lines[1]


def test_tls_and_handshake_over_a_resolved_name(spool, tmp_path, names,
                                                 pki):
    """The socket takes the stand-in fd's place once the name is in (TLS
    has bound that fd number already): TLS, the handshake and transport
    heartbeats all work over a name, with a lookup for every connection
    (--expire-dns-cache 0)."""
    from fwdsecure import Server
    from test_lf_send import CALM
    from test_lf_send_tls import HB, acked_all, tls_opts
    from test_tls import KEY, secret_file, server_ctx
    chunks = fill(spool, 4, 5)
    kf = secret_file(tmp_path, "key", KEY)
    with Server(tls=server_ctx(pki), key=KEY, threaded=True) as srv:
        names.set(tls_test=[srv.port])
        s = Send(spool, tmp_path, HB + CALM + tls_opts(pki) + [
            "--server", "tls.test:24224,name=localhost",
            "--shared-key-file", kf, "--expire-dns-cache", "0"],
            env=names.env())
        try:
            wait_for(lambda: len(srv.pings) >= 5, what="heartbeats")
            wait_for(lambda: acked_all(srv, chunks), what="acks")
            wait_for(lambda: not left(spool), what="an empty spool")
            text = s.text()
        finally:
            rc = s.stop()
    assert rc == 0
    assert "down" not in text and "cannot resolve" not in text, text
    # a lookup for every connection: heartbeats and chunks
    assert names.lookups("tls.test") >= 5
