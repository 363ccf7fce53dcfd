"""A scripted forward-protocol server for the tests of lf-send, written
with Python's msgpack (independent of lf's encoder and decoder).

It checks every message the way Fluentd's in_forward reads a
PackedForward / CompressedPackedForward one: a 3-array of a str tag, bin
entries and an options map whose "size" is the entry count, whose "chunk"
is the base64 of 16 bytes (24 characters; required unless need_chunk is
False, and then only acked if present) and whose "compressed" is
"gzip" when the entries are gzip members (several, concatenated, are
allowed).  A message that breaks a rule is recorded in .errors.

Each connection takes the next behaviour of the script (the last one
repeats):
  ack          ack each message ({"ack": chunk})
  late:SEC     ack each message SEC seconds after it came
  never        read, never ack
  wrong        answer {"ack": "<some other id>"}, never the right one
  closemid     read a few bytes of the first message, then close
  close        close at once after accepting
  helo         the <security> handshake (HELO / PING / PONG, with .key),
               then ack each message
  pongfalse    the handshake, answered ["PONG", false, "go away", ...]
  baddigest    the handshake, answered PONG true with a digest made from
               another key (a server that does not know the key)

With udp=True it also answers udp heartbeats on its port as in_forward
does (a byte 00 to the sender), until udp_mute is set.
"""
import base64
import gzip
import hashlib
import os
import socket
import threading
import zlib
import time

import msgpack

from lfchunk import _ext_hook


def gzip_members(data):
    """How many gzip members data holds, one after another."""
    n = 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data)
        assert d.eof, "a truncated member"
        data = d.unused_data
        n += 1
    return n


class Message:
    def __init__(self, tag, entries, size, chunk, compressed, conn):
        self.tag, self.entries, self.size = tag, entries, size
        self.chunk, self.compressed, self.conn = chunk, compressed, conn

    def events(self):
        return _unpack(self.entries)


def _unpack(data):
    u = msgpack.Unpacker(raw=False, ext_hook=_ext_hook, strict_map_key=False)
    u.feed(data)
    return list(u)


class FwdServer:
    def __init__(self, script=("ack",), port=0, listen=True, need_chunk=True,
                 udp=False, key=b"shared"):
        self.key = key                  # the handshake modes' shared key
        self.handshakes = 0             # PINGs with the right digest
        self.need_chunk = need_chunk    # False: a message may have none
        self.udp = udp                  # answer udp heartbeats (as in_forward)
        self.udp_mute = False           # stop answering them
        self.udp_beats = 0
        self.script = list(script)
        self.port = port
        self.msgs = []          # every well-formed message, in order
        self.acked = []         # chunk ids acked, in order
        self.errors = []
        self.nconn = 0
        self.eofs = []          # when a client closed a connection
        self.lock = threading.Lock()
        self.stopping = False
        self.sock = None
        self.conns = []
        if listen:
            self.listen()

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self.sock = s
        threading.Thread(target=self._accept, daemon=True).start()
        if self.udp:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", self.port))
            self.usock = u
            threading.Thread(target=self._udp, daemon=True).start()

    def _udp(self):
        u = self.usock
        while not self.stopping:
            try:
                data, src = u.recvfrom(128)
            except OSError:
                return
            if not self.udp_mute:
                self.udp_beats += 1
                u.sendto(b"\x00", src)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self.stopping = True
        if self.udp and self.usock:
            self.usock.close()
            self.usock = None
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self):
        sock = self.sock
        while not self.stopping:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                i = self.nconn
                self.nconn += 1
            mode = self.script[min(i, len(self.script) - 1)]
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, i, mode),
                             daemon=True).start()

    def _check(self, m):
        if not (isinstance(m, list) and len(m) == 3):
            return "not a 3-array"
        tag, ent, opt = m
        if not isinstance(tag, str):
            return "tag is not a str"
        if not isinstance(ent, bytes):
            return "entries are not bin"
        if not isinstance(opt, dict):
            return "options are not a map"
        chunk = opt.get("chunk")
        if chunk is None and not self.need_chunk:
            pass
        elif not isinstance(chunk, str) or len(chunk) != 24 or \
                len(base64.b64decode(chunk, validate=True)) != 16:
            return "bad chunk option %r" % (chunk,)
        comp = opt.get("compressed")
        if comp not in (None, "gzip", "text"):
            return "bad compressed %r" % (comp,)
        raw = ent
        if comp == "gzip":
            ent = gzip.decompress(ent)   # all members
        evs = _unpack(ent)
        if opt.get("size") != len(evs):
            return "size %r, %d entries" % (opt.get("size"), len(evs))
        for e in evs:
            if not (isinstance(e, list) and len(e) == 2 and
                    isinstance(e[1], dict)):
                return "bad entry %r" % (e,)
        m = Message(tag, ent, len(evs), chunk, comp, None)
        m.raw = raw
        return m

    def _serve(self, c, i, mode):
        u = msgpack.Unpacker(raw=False, ext_hook=_ext_hook,
                             strict_map_key=False, max_buffer_size=1 << 30)
        got = 0
        try:
            if mode == "close":
                return
            if mode in ("helo", "pongfalse", "baddigest"):
                if not self._handshake(c, u, mode):
                    return
                mode = "ack"
            while not self.stopping:
                data = c.recv(1 << 16)
                if not data:
                    with self.lock:
                        self.eofs.append(time.monotonic())
                    return
                got += len(data)
                if mode == "closemid":
                    return
                u.feed(data)
                for m in u:
                    r = self._check(m)
                    if isinstance(r, str):
                        with self.lock:
                            self.errors.append(r)
                        return
                    r.conn = i
                    with self.lock:
                        self.msgs.append(r)
                    if r.chunk is not None:     # in_forward acks only then
                        self._answer(c, mode, r.chunk)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _handshake(self, c, u, mode):
        def sha(*parts):
            return hashlib.sha512(b"".join(parts)).hexdigest()
        nonce = os.urandom(16)
        c.sendall(msgpack.packb(["HELO", {"nonce": nonce, "auth": b"",
                                          "keepalive": True}],
                                use_bin_type=True))
        ping = None
        while ping is None:
            data = c.recv(4096)
            if not data:
                return False
            u.feed(data)
            for ping in u:
                break
        if not (isinstance(ping, list) and len(ping) == 6 and
                ping[0] == "PING"):
            with self.lock:
                self.errors.append("bad PING %r" % (ping,))
            return False
        host, salt, digest = [x.encode() if isinstance(x, str) else x
                              for x in ping[1:4]]
        if digest.decode() != sha(salt, host, nonce, self.key):
            c.sendall(msgpack.packb(["PONG", False, "shared_key mismatch",
                                     "", ""]))
            return False
        with self.lock:
            self.handshakes += 1
        if mode == "pongfalse":
            c.sendall(msgpack.packb(["PONG", False, "go away", "", ""]))
            return False
        key = self.key if mode == "helo" else b"not the key"
        c.sendall(msgpack.packb(["PONG", True, "", "fwdserver",
                                 sha(salt, b"fwdserver", nonce, key)]))
        return mode == "helo"

    def _answer(self, c, mode, chunk):
        if mode == "ack":
            self._ack(c, chunk)
        elif mode.startswith("late:"):
            t = threading.Timer(float(mode[5:]), self._ack, (c, chunk))
            t.daemon = True
            t.start()
        elif mode == "wrong":
            c.sendall(msgpack.packb({"ack": base64.b64encode(
                bytes(16)).decode()}))

    def _ack(self, c, chunk):
        try:
            c.sendall(msgpack.packb({"ack": chunk}))
        except OSError:
            return
        with self.lock:
            self.acked.append(chunk)

    def chunk_ids(self):
        """{chunk id (16 raw bytes): times received}"""
        res = {}
        with self.lock:
            for m in self.msgs:
                k = base64.b64decode(m.chunk)
                res[k] = res.get(k, 0) + 1
        return res
