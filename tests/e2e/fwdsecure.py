"""A forward-protocol server in Python for the TLS and handshake tests:
Python's ssl module for TLS, and Fluentd in_forward's <security>
handshake (HELO / PING / PONG) written from research/forward-protocol.md
section 3, independently of lib/handshake.  It acks every chunk, counts
events, and records what it saw, so a test can check both sides.

Modes for a misbehaving server: key= a different shared key (the client
is refused), pong_digest="bad" (the server answers with a digest that
proves nothing), users= for user auth."""
import hashlib
import os
import socket
import ssl
import threading

import msgpack


def sha512_hex(*parts):
    return hashlib.sha512(b"".join(parts)).hexdigest()


class Server:
    def __init__(self, tls=None, key=None, hostname=b"server.example",
                 users=None, pong_digest="good", read_delay=0,
                 threaded=False):
        self.tls = tls                  # an ssl.SSLContext, or None
        self.key = key                  # bytes: run the handshake
        self.hostname = hostname
        self.users = users              # {b"alice": b"pw"}: user auth
        self.pong_digest = pong_digest
        self.read_delay = read_delay    # seconds before reading data
        # a thread per connection: a client's heartbeat connections are
        # served while its data connection stays open
        self.threaded = threaded
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if read_delay:
            # a small window (inherited by accepted sockets), so the
            # client's sends back up in its own buffer and go partial
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.events = 0
        self.chunks = []
        self.versions = []              # negotiated TLS versions
        self.peers = []                 # client certificate subjects
        self.pings = []                 # (host, user) of accepted PINGs
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            conn.settimeout(10)
            if self.threaded:
                threading.Thread(target=self._conn, args=(conn,),
                                 daemon=True).start()
            else:
                self._conn(conn)

    def _conn(self, conn):
        try:
            self._serve(conn)
        except Exception as e:  # recorded, and the test checks them
            self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            conn.close()

    def _serve(self, conn):
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
            self.versions.append(conn.version())
            cert = conn.getpeercert()
            if cert:
                self.peers.append(dict(x[0] for x in cert["subject"]))
        up = msgpack.Unpacker(raw=True, strict_map_key=False)
        if self.key is not None and not self._handshake(conn, up):
            return
        if self.read_delay:
            # let the client's socket buffer fill: its writes go partial
            self.stop.wait(self.read_delay)
        while not self.stop.is_set():
            for msg in up:
                self._message(conn, msg)
            data = conn.recv(65536)
            if not data:
                return
            up.feed(data)

    def _read(self, conn, up):
        while True:
            for msg in up:
                return msg
            data = conn.recv(4096)
            if not data:
                raise ValueError("closed during the handshake")
            up.feed(data)

    def _handshake(self, conn, up):
        nonce, auth = os.urandom(16), os.urandom(16)
        conn.sendall(msgpack.packb(
            ["HELO", {"nonce": nonce, "auth": auth, "keepalive": True}],
            use_bin_type=True))
        ping = self._read(conn, up)
        if (not isinstance(ping, list) or len(ping) != 6
                or ping[0] != b"PING"):
            return self._pong(conn, False, "invalid ping message")
        _, host, salt, digest, user, pwdigest = ping
        if digest.decode() != sha512_hex(salt, host, nonce, self.key):
            return self._pong(conn, False, "shared_key mismatch")
        if self.users is not None:
            pw = self.users.get(user)
            if pw is None or pwdigest.decode() != sha512_hex(auth, user, pw):
                return self._pong(conn, False, "username/password mismatch")
        self.pings.append((host, user))
        mine = sha512_hex(salt, self.hostname, nonce, self.key)
        if self.pong_digest == "bad":
            mine = sha512_hex(salt, self.hostname, nonce, b"not the key")
        conn.sendall(msgpack.packb(
            ["PONG", True, "", self.hostname.decode(), mine]))
        return True

    def _pong(self, conn, ok, reason):
        conn.sendall(msgpack.packb(["PONG", ok, reason, "", ""]))
        self.errors.append("refused: " + reason)
        return False

    def _message(self, conn, msg):
        tag, body, opt = msg[0], msg[1], msg[2] if len(msg) > 2 else {}
        up = msgpack.Unpacker(raw=True)
        up.feed(body)
        n = sum(1 for _ in up)
        chunk = opt.get(b"chunk")
        with self.lock:
            self.events += n
            if chunk is not None:
                self.chunks.append(chunk)
        if chunk is not None:
            conn.sendall(msgpack.packb({"ack": chunk.decode()}))


def client(port, tls=None, server_name=None, key=None,
           hostname=b"pyclient.example", user=b"", password=b"",
           check_pong=True):
    """A Python forward client (Fluentd out_forward's side of the
    handshake): connect, TLS if tls (an ssl.SSLContext), the handshake if
    key, then one PackedForward message with a chunk id.  Returns the
    ack's chunk (str), or raises."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if tls is not None:
            conn = tls.wrap_socket(conn, server_hostname=server_name)
        up = msgpack.Unpacker(raw=True, strict_map_key=False)

        def read():
            while True:
                for msg in up:
                    return msg
                data = conn.recv(4096)
                if not data:
                    raise ValueError("closed")
                up.feed(data)
        if key is not None:
            helo = read()
            assert helo[0] == b"HELO", helo
            nonce, auth = helo[1][b"nonce"], helo[1][b"auth"]
            salt = os.urandom(16).hex().encode()
            ping = ["PING", hostname, salt,
                    sha512_hex(salt, hostname, nonce, key), user,
                    sha512_hex(auth, user, password) if auth else ""]
            conn.sendall(msgpack.packb(ping))
            pong = read()
            assert pong[0] == b"PONG", pong
            if not pong[1]:
                raise PermissionError(pong[2].decode())
            if check_pong:
                assert pong[4].decode() == sha512_hex(salt, pong[3], nonce,
                                                      key), "PONG digest"
        body = b"".join(msgpack.packb([1441588984, {"n": i}])
                        for i in range(3))
        conn.sendall(msgpack.packb(
            ["py.tag", body, {"size": 3, "chunk": "cHljaHVuaw=="}],
            use_bin_type=True))
        return read()[b"ack"].decode()
    finally:
        conn.close()
