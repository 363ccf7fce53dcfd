"""lf-recv's security (issue 9): the shared-key handshake, user auth,
client networks, TLS (1.2 and 1.3) and client certificates.

The best proof is lf-send -> lf-recv (both sides lf's, with the same
options as Fluentd's), so every case is also run with an independent
client: tests/e2e/fwdsecure.py (Python's ssl module, and the handshake
written from research/forward-protocol.md section 3).  Certificates are
made by test_tls.py's fixture (the openssl command)."""
import os
import socket
import ssl
import time

import msgpack
import pytest

import lfchunk
from conftest import T
from fwdsecure import client as pyclient, sha512_hex
from test_lf_recv import (WAIT, Recv, TcpClient, free_port, recvs,  # noqa: F401
                          wait_for, work)
from test_lf_send import Send, fill, left
from test_tls import KEY, pki, secret_file  # noqa: F401

SEND = ["--require-ack-response", "--retry-wait", "0.1s",
        "--retry-randomize=false", "--heartbeat-type", "none"]


def start(recvs, work, args=(), **kw):
    r = Recv(work, args, **kw)
    recvs.append(r)
    return r.start()


def tls_server(pki, client_ca=False):
    a = ["--transport", "tls",
         "--tls-cert-path", os.path.join(pki, "server.crt"),
         "--tls-private-key-path", os.path.join(pki, "server.key")]
    if client_ca:
        a += ["--tls-ca-path", os.path.join(pki, "ca.crt"),
              "--tls-client-cert-auth", "true"]
    return a


def tls_client_opts(pki, cert=False):
    a = ["--transport", "tls", "--tls-ca-path", os.path.join(pki, "ca.crt")]
    if cert:
        a += ["--tls-cert-path", os.path.join(pki, "client.crt"),
              "--tls-private-key-path", os.path.join(pki, "client.key")]
    return a


def client_ctx(pki, cert=False, version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, "client.crt"),
                            os.path.join(pki, "client.key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def events_of(chunks):
    return sorted((r["c"], r["i"]) for evs in chunks.values() for _t, r in evs)


def got_events(r):
    return sorted((dict(rec[1])[("str", "c")][1], dict(rec[1])[("str", "i")][1])
                  for _tag, _t, rec in r.events())


def deliver(tmp_path, r, chunks, args):
    """lf-send the spool to lf-recv until every chunk is acked (deleted).
    Both ends default to this machine's name as their self hostname, which
    a client refuses in the PONG (a loop to itself?): lf-send gets its own."""
    spool = str(tmp_path / "spool")
    s = Send(spool, tmp_path, SEND + ["--server", "127.0.0.1:%d" % r.port,
                                      "--self-hostname", "client.example"] +
             list(args))
    try:
        wait_for(lambda: not left(spool), what="every chunk acked")
    finally:
        rc = s.stop()
    assert rc == 0, s.text()
    return s


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


# ---------------------------------------------------------------------------
# The handshake
# ---------------------------------------------------------------------------

def test_lf_send_handshake_right_key(work, recvs, spool, tmp_path):
    kf = secret_file(tmp_path, "key", KEY)
    chunks = fill(spool, 4, 10)
    r = start(recvs, work, ["--shared-key-file", kf, "--self-hostname",
                            "server.example"])
    s = deliver(tmp_path, r, chunks, ["--shared-key-file", kf])
    assert r.stop() == 0
    assert got_events(r) == events_of(chunks)
    assert KEY.decode() not in r.text() + s.text()
    assert r.stats()["listeners"][0]["handshake_failures"] == 0


def test_lf_send_handshake_wrong_key(work, recvs, spool, tmp_path):
    """Refused with PONG false "shared_key mismatch": lf-send says why
    (once), keeps its chunks, and lf-recv counts each failure."""
    kf = secret_file(tmp_path, "key", KEY)
    wrong = secret_file(tmp_path, "wrong", b"not-the-key")
    fill(spool, 2, 5)
    r = start(recvs, work, ["--shared-key-file", kf])
    s = Send(spool, tmp_path, SEND + ["--server", "127.0.0.1:%d" % r.port,
                                      "--shared-key-file", wrong])
    try:
        r.wait_stat("handshake_failures", 3, 0)
        wait_for(lambda: "shared_key mismatch" in s.text(), what="lf-send's log")
        assert len(left(spool)) == 2
    finally:
        assert s.stop() == 0
    assert r.stop() == 0
    assert r.events() == []
    assert s.text().count("shared_key mismatch") == 1
    assert "shared key mismatch" in r.text()
    for secret in (KEY.decode(), "not-the-key"):
        assert secret not in r.text() + s.text()


def test_python_handshake_right_and_wrong_key(work, recvs, tmp_path):
    kf = secret_file(tmp_path, "key", KEY)
    r = start(recvs, work, ["--shared-key-file", kf, "--self-hostname",
                            "server.example"])
    assert pyclient(r.port, key=KEY) == "cHljaHVuaw=="
    with pytest.raises(PermissionError, match="shared_key mismatch"):
        pyclient(r.port, key=b"wrong")
    # no handshake at all: the client's message is taken as a PING, which
    # it is not: refused, nothing stored
    with TcpClient(r.port) as c:
        helo = c.read_reply(WAIT)
        assert helo[0] == "HELO" and helo[1]["keepalive"] is True
        assert len(helo[1]["nonce"]) == 16 and len(helo[1]["auth"]) == 16
        c.send_raw(msgpack.packb(["t", T, {"a": 1}, {"chunk": "x"}]))
        pong = c.read_reply(WAIT)
        assert pong[:3] == ["PONG", False, "invalid ping message"], pong
        assert c.wait_closed(WAIT)[0]
    assert r.stop() == 0
    assert len(r.events()) == 3
    assert r.stats()["listeners"][0]["handshake_failures"] == 2


def test_handshake_deny_keepalive(work, recvs, tmp_path):
    """--deny-keepalive: HELO says keepalive false, and the connection is
    closed after its first message (its ack written first)."""
    kf = secret_file(tmp_path, "key", KEY)
    r = start(recvs, work, ["--shared-key-file", kf, "--self-hostname",
                            "server.example", "--deny-keepalive", "true"])
    with TcpClient(r.port) as c:
        helo = c.read_reply(WAIT)
        assert helo[0] == "HELO" and helo[1]["keepalive"] is False
        salt = b"1" * 32
        c.send_raw(msgpack.packb(["PING", "client.example", salt, sha512_hex(
            salt, b"client.example", helo[1]["nonce"], KEY), "", ""]) +
            msgpack.packb(["t", T, {"a": 1}, {"chunk": "one"}]) +
            msgpack.packb(["t", T, {"a": 2}, {"chunk": "two"}]))
        pong = c.read_reply(WAIT)
        assert pong[:4] == ["PONG", True, "", "server.example"]
        assert pong[4] == sha512_hex(salt, b"server.example",
                                     helo[1]["nonce"], KEY)
        assert c.wait_closed(WAIT) == (True, [{"ack": "one"}])
    assert r.stop() == 0
    assert len(r.events()) == 1


def test_user_auth(work, recvs, spool, tmp_path):
    kf = secret_file(tmp_path, "key", KEY)
    users = secret_file(tmp_path, "users", b"# who\nalice pw\nbob  other")
    pw = secret_file(tmp_path, "pw", b"pw")
    bad = secret_file(tmp_path, "bad", b"nope")
    chunks = fill(spool, 2, 5)
    r = start(recvs, work, ["--shared-key-file", kf, "--user-auth", "true",
                            "--users-file", users])
    # the wrong password: refused, counted, kept
    s = Send(spool, tmp_path, SEND + ["--server", "127.0.0.1:%d" % r.port,
                                      "--shared-key-file", kf,
                                      "--username", "alice",
                                      "--password-file", bad])
    try:
        r.wait_stat("handshake_failures", 2, 0)
        wait_for(lambda: "username/password mismatch" in s.text(),
                 what="lf-send's log")
        assert len(left(spool)) == 2
    finally:
        assert s.stop() == 0
    deliver(tmp_path, r, chunks, ["--shared-key-file", kf, "--username",
                                  "alice", "--password-file", pw])
    assert pyclient(r.port, key=KEY, user=b"bob", password=b"other")
    with pytest.raises(PermissionError, match="username/password mismatch"):
        pyclient(r.port, key=KEY, user=b"bob", password=b"pw")
    with pytest.raises(PermissionError, match="username/password mismatch"):
        pyclient(r.port, key=KEY, user=b"carol", password=b"")
    assert r.stop() == 0
    assert len(r.events()) == 10 + 3
    assert "nope" not in r.text() and " pw" not in r.text()


def test_handshake_stalled_closed_after_message_timeout(work, recvs, tmp_path):
    """A client that connects and never sends its PING, or sends a right
    PING a byte every 0.2 s (it would take a minute), is closed after
    --message-timeout: the handshake's time counts from the connect."""
    kf = secret_file(tmp_path, "key", KEY)
    r = start(recvs, work, ["--shared-key-file", kf, "--message-timeout",
                            "1s"])
    with TcpClient(r.port) as silent, TcpClient(r.port) as slow:
        t0 = time.monotonic()
        assert silent.read_reply(WAIT)[0] == "HELO"
        helo = slow.read_reply(WAIT)
        salt = b"0" * 32
        ping = msgpack.packb(["PING", "client.example", salt, sha512_hex(
            salt, b"client.example", helo[1]["nonce"], KEY), "", ""])
        closed = False
        for b in ping:
            try:
                slow.send_raw(bytes([b]))
            except Exception:
                closed = True
            if closed or not slow.nothing_for(0.2):
                break
        took = time.monotonic() - t0
        assert slow.wait_closed(0.1) == (True, []), \
            "a trickling handshake held for %.1f s" % took
        assert 0.9 <= took < 6, took
        assert silent.wait_closed(WAIT) == (True, [])
        assert time.monotonic() - t0 < 6
    assert r.stop() == 0
    assert r.text().count("handshake not done in 1 s") == 2, r.text()
    assert r.stats()["connections"] == 0


# ---------------------------------------------------------------------------
# Client networks
# ---------------------------------------------------------------------------

def test_allow_networks(work, recvs, tmp_path):
    """Only 127.0.0.2/32 and ::1 may connect: 127.0.0.1 is closed at once
    (no HELO, no ack), counted, logged; the allowed ones deliver."""
    port = free_port("0.0.0.0")
    p6 = free_port("::1", socket.AF_INET6)
    r = start(recvs, work, ["--allow", "127.0.0.2/32", "--allow", "::1",
                            "--allow-anonymous-source", "false"],
              listen=["0.0.0.0:%d" % port, "[::1]:%d" % p6])
    with TcpClient(port, "127.0.0.1") as c:
        c.send_raw(msgpack.packb(["t", T, {"a": 0}, {"chunk": "no"}]))
        assert c.wait_closed(WAIT) == (True, [])
    for host, p, tok in (("127.0.0.2", port, "v4"), ("::1", p6, "v6")):
        with TcpClient(p, host, src=host) as c:
            c.send_raw(msgpack.packb(["t", T, {"a": 1}, {"chunk": tok}]))
            assert c.read_ack(WAIT) == tok
    r.wait_stat("refused_connections", 1, 0)
    assert r.stop() == 0
    assert len(r.events()) == 2
    assert "127.0.0.1: not in an --allow network: refused" in r.text()
    st = r.stats()["listeners"]
    assert st[0]["refused_connections"] == 1 and st[1]["refused_connections"] == 0


def test_dual_stack_listener_names_ipv4_clients_as_ipv4(work, recvs):
    """--listen [::]:PORT takes IPv4 clients too (::ffff:a.b.c.d): they
    match the IPv4 --allow networks, and are named as IPv4 in the log and
    in --source-address-key (before: "::ffff:127.0.0.2")."""
    port = free_port("::", socket.AF_INET6)
    r = start(recvs, work, ["--allow", "127.0.0.2/32", "--allow", "::1",
                            "--allow-anonymous-source", "false",
                            "--source-address-key", "ip"],
              listen=["[::]:%d" % port])
    for host, tok in (("127.0.0.2", "v4"), ("::1", "v6")):
        with TcpClient(port, host, src=host) as c:
            c.send_raw(msgpack.packb(["t", T, {"a": 1}, {"chunk": tok}]))
            assert c.read_ack(WAIT) == tok
    with TcpClient(port, "127.0.0.1") as c:
        assert c.wait_closed(WAIT) == (True, [])
    assert r.stop() == 0
    assert [dict(e[2][1])[("str", "ip")][1] for e in r.events()] == [
        "127.0.0.2", "::1"]
    assert r.lines("warn") == ["tcp: 127.0.0.1: not in an --allow network: "
                               "refused"]


def test_allow_with_anonymous_source_true_lets_all_in(work, recvs):
    r = start(recvs, work, ["--allow", "10.0.0.0/8"])
    with TcpClient(r.port) as c:
        c.send_raw(msgpack.packb(["t", T, {"a": 1}, {"chunk": "ok"}]))
        assert c.read_ack(WAIT) == "ok"
    assert r.stop() == 0
    assert r.stats()["listeners"][0]["refused_connections"] == 0


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_python_client(work, recvs, pki, version):
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    r = start(recvs, work, tls_server(pki))
    ctx = client_ctx(pki, version=v)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port)),
                        server_hostname="localhost")
    assert s.version() == "TLSv" + version
    s.close()
    assert pyclient(r.port, tls=ctx, server_name="localhost") == "cHljaHVuaw=="
    assert r.stop() == 0
    assert len(r.events()) == 3


def test_tls_lf_send_with_handshake(work, recvs, spool, tmp_path, pki):
    kf = secret_file(tmp_path, "key", KEY)
    chunks = fill(spool, 3, 10)
    r = start(recvs, work, tls_server(pki) + ["--shared-key-file", kf])
    deliver(tmp_path, r, chunks, tls_client_opts(pki) + [
        "--shared-key-file", kf, "--tls-verify-hostname", "false"])
    assert pyclient(r.port, tls=client_ctx(pki), server_name="localhost",
                    key=KEY) == "cHljaHVuaw=="
    with pytest.raises(PermissionError, match="shared_key mismatch"):
        pyclient(r.port, tls=client_ctx(pki), server_name="localhost",
                 key=b"wrong")
    assert r.stop() == 0
    assert len(r.events()) == 30 + 3


def test_tls_plain_client_refused(work, recvs, pki):
    """A plain-text client on a TLS port gets nothing stored and is
    closed; a TLS client on a plain port fails its handshake."""
    r = start(recvs, work, tls_server(pki))
    with TcpClient(r.port) as c:
        c.send_raw(msgpack.packb(["t", T, {"a": 1}, {"chunk": "x"}]))
        closed, got = c.wait_closed(WAIT)
        assert closed and got == []
    r.wait_stat("handshake_failures", 1, 0)
    assert r.stop() == 0
    assert r.events() == []


def test_tls_client_cert_auth(work, recvs, spool, tmp_path, pki):
    chunks = fill(spool, 2, 5)
    r = start(recvs, work, tls_server(pki, client_ca=True))
    # without a certificate: refused in the TLS handshake
    with pytest.raises((ssl.SSLError, ConnectionResetError, ValueError,
                        BrokenPipeError)):
        pyclient(r.port, tls=client_ctx(pki), server_name="localhost")
    r.wait_stat("handshake_failures", 1, 0)
    assert pyclient(r.port, tls=client_ctx(pki, cert=True),
                    server_name="localhost") == "cHljaHVuaw=="
    deliver(tmp_path, r, chunks, tls_client_opts(pki, cert=True) + [
        "--tls-verify-hostname", "false"])
    assert r.stop() == 0
    assert len(r.events()) == 3 + 10


@pytest.mark.parametrize("mode", ["tls", "handshake", "both"])
def test_connect_and_close_is_no_failure(work, recvs, pki, tmp_path, mode):
    """A transport heartbeat or a health check connects and closes (after
    HELO, or inside the TLS handshake): no log line and no handshake
    failure counted; a real failure still is.  Before: each one was a
    warning "TLS handshake: TLS error" and a failure."""
    kf = secret_file(tmp_path, "key", KEY)
    args = tls_server(pki) if mode != "handshake" else []
    if mode != "tls":
        args += ["--shared-key-file", kf, "--self-hostname", "server.example"]
    r = start(recvs, work, args)
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", r.port))
        if i == 4 and mode != "handshake":
            s.sendall(b"\x16\x03\x01")     # a ClientHello cut short
        s.close()
    ctx = client_ctx(pki) if mode != "handshake" else None
    key = KEY if mode != "tls" else None
    assert pyclient(r.port, tls=ctx, server_name="localhost", key=key)
    r.wait_stat("connections", 6, 0)
    assert r.stats()["listeners"][0]["handshake_failures"] == 0
    with TcpClient(r.port) as c:        # plain bytes: TLS or PING wrong
        c.send_raw(msgpack.packb(["t", T, {"a": 1}]))
        assert c.wait_closed(WAIT)[0]
    r.wait_stat("handshake_failures", 1, 0)
    assert r.stop() == 0
    assert len(r.lines("warn")) == 1, r.text()


def test_tls_handshake_stalled_closed(work, recvs, pki):
    """A TLS client that connects and sends no ClientHello is closed
    after --message-timeout."""
    r = start(recvs, work, tls_server(pki) + ["--message-timeout", "1s"])
    with TcpClient(r.port) as c:
        t0 = time.monotonic()
        assert c.wait_closed(WAIT)[0]
        assert 0.9 <= time.monotonic() - t0 < 6
    assert r.stop() == 0


def test_sha512_vector_of_section_9():
    """fwdsecure's digest against research section 9 vector 14, so the
    Python side of these tests is right independently of lf."""
    nonce = bytes(range(16))
    salt = b"0123456789abcdef0123456789abcdef"
    assert sha512_hex(salt, b"client.example", nonce, b"secret") == (
        "3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed"
        "63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df")


# ---------------------------------------------------------------------------
# Hostile clients through TLS: the bounds of lib/ingest hold when the
# bytes come out of OpenSSL (records decrypted ahead, read on past them)
# ---------------------------------------------------------------------------

def tls_sock(r, pki):
    s = client_ctx(pki).wrap_socket(
        socket.create_connection(("127.0.0.1", r.port), timeout=WAIT),
        server_hostname="localhost")
    return s


def read_obj(s, timeout=WAIT):
    """The next reply object, or None at EOF."""
    s.settimeout(timeout)
    u = msgpack.Unpacker(raw=False)
    while True:
        o = next(u, None)
        if o is not None:
            return o
        try:
            d = s.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            d = b""
        if not d:
            return None
        u.feed(d)


def one(tok, m, pad=0):
    rec = {"m": m, "pad": "x" * pad}
    return msgpack.packb(["t", msgpack.packb([msgpack.ExtType(
        0, b"\x55\xec\xe6\xf8\0\0\0\0"), rec]), {"size": 1, "chunk": tok}],
        use_bin_type=True)


def test_tls_hostile(work, recvs, pki):
    """Through TLS: a gzip bomb is refused (the connection goes on), an
    oversized message and deep nesting close their connection, a
    truncated message is dropped, a stall inside a message is closed
    after --message-timeout; memory stays bounded and a good TLS client
    is served all along."""
    import gzip as gz
    from test_lf_recv import SMALL_QUARANTINE, rss_mb
    r = start(recvs, work, tls_server(pki) + ["--max-message-size", "4m",
                                              "--message-timeout", "1s"],
              env=SMALL_QUARANTINE)
    rss0 = rss_mb(r.p.pid)
    bomb = gz.compress(b"\xc6\x1f\xff\xff\xfb" + bytes((1 << 29) - 5), 1)

    def good(tok):
        s = tls_sock(r, pki)
        s.sendall(one(tok, 0))
        assert read_obj(s) == {"ack": tok}
        s.close()

    s = tls_sock(r, pki)
    # many messages in one TLS write, then a bomb, then one more
    s.sendall(b"".join(one("m%d" % i, i, 1000) for i in range(50)))
    s.sendall(msgpack.packb(["t", bomb, {"compressed": "gzip", "chunk": "b"}],
                            use_bin_type=True))
    s.sendall(one("after", 1))
    u = msgpack.Unpacker(raw=False)
    acks = []
    s.settimeout(WAIT)
    while len(acks) < 51:
        d = s.recv(65536)
        assert d
        u.feed(d)
        acks += [o["ack"] for o in u]
    assert acks == ["m%d" % i for i in range(50)] + ["after"]
    s.close()
    good("g1")
    for bad in (one("big", 1, 5 << 20),
                b"\x94\xa1t\x01\x81\xa1k" + b"\x91" * 100000 + b"\xc0"):
        s = tls_sock(r, pki)
        try:
            s.sendall(bad)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
        assert read_obj(s) is None
        s.close()
        good("g2")
    s = tls_sock(r, pki)
    s.sendall(one("cut", 3)[:30])
    t0 = time.monotonic()
    assert read_obj(s) is None
    assert 0.9 <= time.monotonic() - t0 < 6
    s.close()
    peak = rss_mb(r.p.pid)
    good("g3")
    print("TLS hostile: RSS %.0f -> %.0f MB" % (rss0, peak))
    assert peak - rss0 < 128 + 64
    assert r.stop() == 0
    assert len(r.events()) == 50 + 1 + 4
    assert r.stats()["bad_messages"] == 3  # the bomb, the big one, the deep one
