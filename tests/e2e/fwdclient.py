"""A small forward-protocol client for the end-to-end tests: it connects
to a Unix socket, sends PackedForward messages with a "chunk" option and
reads the {"ack": chunk} replies, as Fluentd's out_forward does with
require_ack_response.  Everything has a timeout: a test must fail, never
hang.

    c = Client(path)
    c.send("app.log", entries_bytes, token="abc\\n", size=3)
    assert c.read_ack(5) == "abc\\n"

The message is [tag, bin(entries), {"size": n, "chunk": token}].  A token
is a str (out_forward sends Base64.encode64 of the chunk id, so a str with
a trailing newline) or bytes (sent as bin).  Acks come back decoded with
raw=False: a str token as str, a bin token as bytes.
"""
import base64
import os
import select
import socket
import struct
import time

import msgpack


class Closed(Exception):
    """The server closed the connection."""


class Timeout(Exception):
    """Nothing (or not enough) arrived in time."""


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def pack_entries(events):
    """PackedForward entries: [time, record] concatenated; an int time
    becomes an EventTime."""
    out = []
    for t, r in events:
        if isinstance(t, int) and not isinstance(t, bool):
            t = event_time(t)
        out.append(msgpack.packb([t, r], use_bin_type=True))
    return b"".join(out)


def fluentd_token(raw=None):
    """A chunk token as out_forward makes it: Base64.encode64 of a 16-byte
    unique id, which ends with a newline."""
    if raw is None:
        raw = os.urandom(16)
    return base64.encodebytes(raw).decode()


def message(tag, entries, token=None, size=None, extra=None):
    """The bytes of a PackedForward message."""
    opt = {}
    if size is not None:
        opt["size"] = size
    if token is not None:
        opt["chunk"] = token
    if extra:
        opt.update(extra)
    return msgpack.packb([tag, entries, opt], use_bin_type=True)


class Client:
    def __init__(self, path, timeout=10.0):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except Exception:
            self.sock.close()
            raise
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data, timeout=10.0):
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))
        except socket.timeout:
            raise Timeout("send blocked for %ss" % timeout)

    def send(self, tag, entries, token=None, size=None, timeout=10.0):
        if not isinstance(entries, (bytes, bytearray)):
            if size is None:
                size = len(entries)
            entries = pack_entries(entries)
        self.send_raw(message(tag, bytes(entries), token, size), timeout)

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, deadline):
        """Read once more into the unpacker.  Raises Closed at EOF and
        Timeout at the deadline."""
        if self.eof:
            raise Closed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("no reply in time")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise Timeout("no reply in time")
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed")
        self.unpacker.feed(data)

    def read_reply(self, timeout=10.0):
        """The next reply object, whatever it is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return next(self.unpacker)
            except StopIteration:
                pass
            self._fill(deadline)

    def read_ack(self, timeout=10.0):
        """The token of the next reply, which must be {"ack": token}."""
        o = self.read_reply(timeout)
        if not (isinstance(o, dict) and list(o) == ["ack"]):
            raise AssertionError("not an ack: %r" % (o,))
        return o["ack"]

    def read_acks(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        res = []
        while len(res) < n:
            res.append(self.read_ack(max(0.0, deadline - time.monotonic())))
        return res

    def poll_acks(self, timeout=0.0):
        """Every ack that arrives within timeout (none is not an error);
        raises Closed if the connection is closed and nothing is left."""
        res = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                o = next(self.unpacker)
                assert isinstance(o, dict) and list(o) == ["ack"], o
                res.append(o["ack"])
                continue
            except StopIteration:
                pass
            if self.eof:
                if res:
                    return res
                raise Closed("connection closed")
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.sock], [], [], max(0.0, left))
            if not r:
                return res
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.eof = True
                continue
            self.unpacker.feed(data)

    def wait_closed(self, timeout=10.0):
        """True if the server closes the connection within timeout (any
        reply read meanwhile is returned in a list as the second value)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.read_reply(max(0.0, deadline - time.monotonic())))
            except Closed:
                return True, got
            except Timeout:
                return False, got


def connect_retry(path, timeout=10.0):
    """Connect, retrying while the socket is not there or refuses."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
