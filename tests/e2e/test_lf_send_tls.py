"""lf-send over TLS and the forward handshake (HELO / PING / PONG),
end to end, against tests/e2e/fwdsecure.py (Python's ssl module and an
independent implementation of in_forward's <security> handshake), with
certificates made by the openssl command (test_tls.py's fixture)."""
import base64
import os
import ssl
import time

import pytest

import lfchunk
from fwdsecure import Server
from test_lf_send import CALM, Send, fill, left, wait_for
from test_tls import KEY, pki, secret_file, server_ctx  # noqa: F401

BASE = ["--require-ack-response", "--retry-wait", "0.1s",
        "--retry-randomize=false", "--heartbeat-type", "none"]
HB = ["--require-ack-response", "--retry-wait", "0.1s",
      "--retry-randomize=false", "--heartbeat-interval", "0.05s",
      "--recover-wait", "0.2s", "--hard-timeout", "1s"]


def acked_all(srv, chunks):
    got = set(base64.b64decode(c) for c in list(srv.chunks))
    return got >= set(chunks)


def run_until_delivered(spool, tmp_path, srv, chunks, args):
    s = Send(spool, tmp_path, args)
    try:
        wait_for(lambda: not left(spool) and acked_all(srv, chunks),
                 what="every chunk acked and deleted")
    finally:
        rc = s.stop()
    assert rc == 0, s.text()
    return s


@pytest.fixture
def spool(tmp_path):
    return lfchunk.make_spool(tmp_path / "spool")


def test_handshake_right_key_delivers(spool, tmp_path):
    chunks = fill(spool, 4, 10)
    kf = secret_file(tmp_path, "key", KEY)
    with Server(key=KEY) as srv:
        s = run_until_delivered(spool, tmp_path, srv, chunks, BASE + [
            "--server", srv.addr, "--shared-key-file", kf,
            "--self-hostname", "client.example"])
    assert srv.events == 40
    assert srv.pings and set(srv.pings) == {(b"client.example", b"")}
    assert KEY.decode() not in s.text()


def test_handshake_wrong_key_refused_then_retried(spool, tmp_path):
    """Refused: one log line with the reason, the chunks kept and tried
    again; once the server has our key, they are delivered."""
    chunks = fill(spool, 3, 5)
    kf = secret_file(tmp_path, "key", KEY)
    with Server(key=b"another-key") as srv:
        s = Send(spool, tmp_path, BASE + ["--server", srv.addr,
                                         "--shared-key-file", kf])
        try:
            wait_for(lambda: len(srv.errors) >= 3, what="three refusals")
            assert len(left(spool)) == 3 and srv.events == 0
            text = s.text()
            assert text.count("shared_key mismatch") == 1, text
            srv.key = KEY
            wait_for(lambda: not left(spool) and acked_all(srv, chunks),
                     what="delivery once the key is right")
        finally:
            rc = s.stop()
    assert rc == 0, s.text()
    assert KEY.decode() not in s.text() and "another-key" not in s.text()


def test_per_server_key_and_user(spool, tmp_path):
    """A server's own shared-key-file=, username=, password-file= win
    over the global options."""
    chunks = fill(spool, 2, 5)
    wrong = secret_file(tmp_path, "wrong", b"not-it")
    kf = secret_file(tmp_path, "key", KEY)
    pw = secret_file(tmp_path, "pw", b"pa55")
    with Server(key=KEY, users={b"alice": b"pa55"}) as srv:
        run_until_delivered(spool, tmp_path, srv, chunks, BASE + [
            "--shared-key-file", wrong, "--server",
            "%s,shared-key-file=%s,username=alice,password-file=%s" %
            (srv.addr, kf, pw)])
    assert {u for h, u in srv.pings} == {b"alice"}


def exits(spool, tmp_path, args):
    s = Send(spool, tmp_path, args, ready=False)
    s.p.wait(30)
    return s.stop(), s.text()


def test_secret_file_mode_and_usage(spool, tmp_path):
    loose = secret_file(tmp_path, "key", KEY, mode=0o644)
    rc, text = exits(spool, tmp_path, ["--server", "127.0.0.1:1",
                                       "--shared-key-file", loose])
    assert rc == 78 and "key" in text and KEY.decode() not in text
    assert exits(spool, tmp_path, ["--server", "127.0.0.1:1", "--username",
                                   "alice"])[0] == 64
    assert exits(spool, tmp_path, ["--server", "127.0.0.1:1",
                                   "--tls-ca-path", "/nonexistent"])[0] == 64
    rc, text = exits(spool, tmp_path, ["--server", "127.0.0.1:1",
                                       "--transport", "tls", "--tls-ca-path",
                                       "/nonexistent"])
    assert rc == 78 and "No such file" in text


def test_wrong_handshake_server_marked_down(spool, tmp_path):
    """A server whose PONG proves nothing (a bad digest) gets no data:
    it is marked down, the chunks stay; when it answers right, it comes
    back up and everything is delivered."""
    chunks = fill(spool, 3, 5)
    kf = secret_file(tmp_path, "key", KEY)
    with Server(key=KEY, pong_digest="bad", threaded=True) as srv:
        s = Send(spool, tmp_path, HB + ["--server", srv.addr,
                                       "--shared-key-file", kf])
        try:
            wait_for(lambda: ": down:" in s.text(),
                     what="the server marked down")
            assert len(left(spool)) == 3 and srv.events == 0
            assert s.text().count("does not know our shared key") == 1
            srv.pong_digest = "good"
            wait_for(lambda: not left(spool) and acked_all(srv, chunks),
                     what="delivery once the server answers right")
        finally:
            rc = s.stop()
    assert rc == 0, s.text()


def tls_opts(pki):
    return ["--transport", "tls", "--tls-ca-path",
            os.path.join(pki, "ca.crt")]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_versions(spool, tmp_path, pki, version):
    chunks = fill(spool, 3, 10)
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else \
        ssl.TLSVersion.TLSv1_3
    kf = secret_file(tmp_path, "key", KEY)
    with Server(tls=server_ctx(pki, min_v=v, max_v=v), key=KEY) as srv:
        # 1.2 checks name= against the certificate, 1.3 the IP address
        addr = srv.addr + (",name=localhost" if version == "1.2" else "")
        run_until_delivered(spool, tmp_path, srv, chunks, BASE + tls_opts(
            pki) + ["--server", addr, "--shared-key-file", kf])
    assert srv.events == 30
    assert set(srv.versions) == {"TLSv" + version}


def test_tls_wrong_hostname_refused(spool, tmp_path, pki):
    chunks = fill(spool, 2, 5)
    with Server(tls=server_ctx(pki)) as srv:
        s = Send(spool, tmp_path, BASE + tls_opts(pki) + [
            "--server", srv.addr + ",name=other.example"])
        try:
            wait_for(lambda: "hostname mismatch" in s.text(),
                     what="the refusal")
            assert len(left(spool)) == 2 and srv.events == 0
        finally:
            assert s.stop() == 0
        assert s.text().count("hostname mismatch") == 1
        # the same with the check off is delivered
        run_until_delivered(spool, tmp_path, srv, chunks, BASE + tls_opts(
            pki) + ["--tls-verify-hostname", "false",
                    "--server", srv.addr + ",name=other.example"])


def test_tls_client_certificate(spool, tmp_path, pki):
    chunks = fill(spool, 2, 5)
    with Server(tls=server_ctx(pki, client_ca=True)) as srv:
        run_until_delivered(spool, tmp_path, srv, chunks, BASE + tls_opts(
            pki) + ["--tls-cert-path", os.path.join(pki, "client.crt"),
                    "--tls-private-key-path", os.path.join(pki, "client.key"),
                    "--server", srv.addr])
    assert {"commonName": "client"} in srv.peers


def test_tls_refusal_is_one_line_with_heartbeats(spool, tmp_path, pki):
    """A certificate refused is logged once, though the chunks' connection
    and every heartbeat probe (a connection of its own) meet it."""
    fill(spool, 2, 5)
    with Server(tls=server_ctx(pki)) as srv:
        s = Send(spool, tmp_path, HB + tls_opts(pki) + [
            "--server", srv.addr + ",name=other.example"])
        try:
            wait_for(lambda: "hostname mismatch" in s.text(),
                     what="the refusal")
            time.sleep(0.5)     # ten heartbeat rounds, each refused
            assert len(left(spool)) == 2 and srv.events == 0
        finally:
            assert s.stop() == 0
        assert s.text().count("hostname mismatch") == 1, s.text()


def test_tls_heartbeats_and_handshake(spool, tmp_path, pki):
    """Transport heartbeats go through TLS and the handshake too (their
    own connections): the server stays up and everything is delivered."""
    chunks = fill(spool, 4, 5)
    kf = secret_file(tmp_path, "key", KEY)
    with Server(tls=server_ctx(pki), key=KEY, threaded=True) as srv:
        s = Send(spool, tmp_path, HB + CALM + tls_opts(pki) + [
            "--server", srv.addr, "--shared-key-file", kf])
        try:
            wait_for(lambda: not left(spool) and acked_all(srv, chunks) and
                     len(srv.pings) >= 5, what="delivery and heartbeats")
        finally:
            assert s.stop() == 0, s.text()
    assert ": down:" not in s.text(), s.text()


@pytest.mark.parametrize("mode,reason", [
    ("pongfalse", "go away"),
    ("baddigest", "does not know our shared key"),
])
def test_scripted_wrong_handshake(spool, tmp_path, mode, reason):
    """fwdserver.py answering the handshake wrongly, as the active
    server, with a right standby: the active is marked down, the chunks
    go to the standby, none is lost or sent to the wrong server; when
    the active answers right again it is back up and takes new chunks."""
    from fwdserver import FwdServer
    chunks = fill(spool, 4, 5)
    kf = secret_file(tmp_path, "key", b"shared")
    bad = FwdServer([mode])
    good = FwdServer(["helo"])
    try:
        s = Send(spool, tmp_path, HB + ["--shared-key-file", kf,
                                       "--server", bad.addr,
                                       "--server", good.addr + ",standby"])
        try:
            wait_for(lambda: not left(spool) and
                     set(base64.b64decode(a) for a in good.acked) >=
                     set(chunks), what="delivery through the standby")
            text = s.text()
            assert ": down:" in text and reason in text, text
            # the heartbeats run the handshake too: they keep it down;
            # the refusal is one line, whichever connection met it
            wait_for(lambda: bad.handshakes >= 10, what="heartbeats")
            text = s.text()
            assert text.count(reason) == 1, text
            assert ": up:" not in text and bad.msgs == []
            bad.script = ["helo"]
            wait_for(lambda: ": up:" in s.text(), what="the active back up")
            more = fill(spool, 2, 5, seed=1)
            wait_for(lambda: not left(spool) and
                     set(base64.b64decode(a) for a in bad.acked) >=
                     set(more), what="new chunks to the active")
        finally:
            assert s.stop() == 0, s.text()
    finally:
        bad.close()
        good.close()
    assert bad.errors == [] and good.errors == []
