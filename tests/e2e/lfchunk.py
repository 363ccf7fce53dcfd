"""Write and read lf spool chunk files exactly as lib/chunk.h lays them out,
with an encoder independent of lf's (Python's zlib and msgpack), for the
end-to-end tests of every spool tool (lf-send, lf-tdlog, lf-spool, lf-cat).

    offset size
    0      8    magic: c1 'l' 'f' 'c' 'h' 'u' 'n' 'k'
    8      1    version, 1
    9      1    state: 'S' staged, 'R' sealed (ready)
    10     2    zero
    12     4    header length H
    16     16   chunk id
    32     8    created, microseconds since the epoch
    40     8    body length
    48     8    event count
    56     4    CRC-32 of the body
    60     4    CRC-32 of bytes 0..59 then 64..H-1
    64     H-64 chunk keys: msgpack map {"tag", ["timekey"], ["variables"]}
    H      ...  body: concatenated [time, record] (PackedForward entries)

Integers are big-endian.  A ready chunk is SPOOL/new/NAME with NAME =
<seal time: 16 hex digits of microseconds>.<id: 32 hex>.chunk (lib/spool.h).

    spool = make_spool(tmp_path / "spool")
    name = write_chunk(spool, "app.log", [(1700000000, {"msg": "hi"})])
    c = read_chunk(os.path.join(spool, "new", name))
    corrupt_chunk(os.path.join(spool, "new", name), "flip-body")
"""
import os
import struct
import time
import zlib

import msgpack

MAGIC = b"\xc1lfchunk"
VERSION = 1
FIXED = 64
DIRS = ("tmp", "new", "dead", "state")
_uniq = [0]


def make_spool(path):
    """Make a spool directory (and its tmp/ new/ dead/ state/); returns path
    as a str."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    for d in DIRS:
        os.makedirs(os.path.join(path, d), exist_ok=True)
    return path


def event_time(sec, nsec=0):
    """The forward protocol's EventTime: msgpack ext 0, 8 bytes."""
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def _time(t):
    if isinstance(t, tuple):
        return event_time(*t)
    if isinstance(t, int) and not isinstance(t, bool):
        return event_time(t)
    return t    # an ExtType, a float, or anything the test wants as is


def pack_events(events):
    """Body bytes: concatenated [time, record].  A time may be an int
    (seconds), a (sec, nsec) tuple (both become EventTime), or any object
    msgpack can pack (kept as is)."""
    return b"".join(msgpack.packb([_time(t), r], use_bin_type=True)
                    for t, r in events)


def pack_keys(tag, timekey=None, variables=None):
    """The chunk keys map, in lf's order: tag, timekey, variables."""
    keys = {"tag": tag}
    if timekey is not None:
        keys["timekey"] = timekey
    if variables is not None:
        keys["variables"] = variables
    return msgpack.packb(keys, use_bin_type=True)


def head_crc(head):
    """CRC-32 of a header's bytes 0..59 then 64..H-1."""
    return zlib.crc32(head[FIXED:], zlib.crc32(head[:60])) & 0xffffffff


def encode_chunk(tag, events=(), state="R", id=None, created_us=None,
                 timekey=None, variables=None, body=None, count=None):
    """The bytes of a chunk file.  body (raw bytes) replaces the packed
    events; count overrides the event count written in the header.
    Returns (bytes, id)."""
    if id is None:
        id = os.urandom(16)
    assert len(id) == 16
    if created_us is None:
        created_us = int(time.time() * 1e6)
    if body is None:
        body = pack_events(events)
        if count is None:
            count = len(events)
    if count is None:
        count = 0
    keys = pack_keys(tag, timekey, variables)
    hlen = FIXED + len(keys)
    fixed = bytearray(FIXED)
    fixed[0:8] = MAGIC
    fixed[8] = VERSION
    fixed[9] = ord(state)
    struct.pack_into(">I", fixed, 12, hlen)
    fixed[16:32] = id
    struct.pack_into(">QQQI", fixed, 32, created_us, len(body), count,
                     zlib.crc32(body) & 0xffffffff)
    head = bytes(fixed) + keys
    struct.pack_into(">I", fixed, 60, head_crc(head))
    return bytes(fixed) + keys + body, id


def ready_name(seal_us, id):
    return "%016x.%s.chunk" % (seal_us, id.hex())


def write_chunk(spool, tag, events=(), state="R", id=None, created_us=None,
                seal_us=None, dirname="new", timekey=None, variables=None,
                body=None, count=None, corrupt=None):
    """Write a chunk into SPOOL/dirname the maildir way (tmp/, fsync,
    rename, fsync the folder).  Returns its name.  seal_us sets the name's
    time (FIFO order); by default it is now, made strictly increasing
    within this process so chunks written in a row sort in that order.
    corrupt: one of CORRUPTIONS, applied before the rename."""
    data, id = encode_chunk(tag, events, state, id, created_us, timekey,
                            variables, body, count)
    if seal_us is None:
        seal_us = max(int(time.time() * 1e6), _uniq[0] + 1)
        _uniq[0] = seal_us
    name = ready_name(seal_us, id)
    tmp = os.path.join(spool, "tmp", ".lfchunk-%s.tmp" % id.hex())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if corrupt:
        corrupt_chunk(tmp, corrupt)
    os.rename(tmp, os.path.join(spool, dirname, name))
    fd = os.open(os.path.join(spool, dirname), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return name


CORRUPTIONS = ("flip-body", "truncate", "bad-header-crc", "bad-magic",
               "short-header")


def corrupt_chunk(path, how):
    """Damage a chunk file in place:
    flip-body       one body byte flipped (body CRC mismatch)
    truncate        the last byte of the body cut off
    bad-header-crc  a byte of the chunk keys flipped (header CRC mismatch)
    bad-magic       the first byte changed
    short-header    cut to 40 bytes, shorter than any header"""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        hlen = struct.unpack_from(">I", data, 12)[0]
        if how == "flip-body":
            assert len(data) > hlen, "no body to flip"
            data[hlen + (len(data) - hlen) // 2] ^= 0xff
        elif how == "truncate":
            assert len(data) > hlen, "no body to cut"
            data = data[:-1]
        elif how == "bad-header-crc":
            data[FIXED + 1] ^= 0x01
        elif how == "bad-magic":
            data[0] ^= 0xff
        elif how == "short-header":
            data = data[:40]
        else:
            raise ValueError("unknown corruption %r" % how)
        f.seek(0)
        f.truncate()
        f.write(bytes(data))
        f.flush()
        os.fsync(f.fileno())


def _ext_hook(code, data):
    return msgpack.ExtType(code, data)


def read_chunk(path):
    """Decode a chunk file into a dict: state, hlen, id (bytes), id_hex,
    created_us, bodylen, count, bodycrc, headcrc, head_ok, body_ok, keys,
    tag, timekey, variables, body, events ([time, record] lists, times as
    msgpack.ExtType; None if the body does not parse), name, size.
    Raises ValueError if it is not a chunk file at all."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FIXED or data[:8] != MAGIC:
        raise ValueError("%s: not a chunk file" % path)
    hlen = struct.unpack_from(">I", data, 12)[0]
    if hlen < FIXED or hlen > len(data):
        raise ValueError("%s: bad header length %d" % (path, hlen))
    created_us, bodylen, count, bodycrc, headcrc = \
        struct.unpack_from(">QQQII", data, 32)
    head = data[:hlen]
    body = data[hlen:hlen + bodylen]
    keys = msgpack.unpackb(data[FIXED:hlen], raw=False, strict_map_key=False)
    try:
        u = msgpack.Unpacker(ext_hook=_ext_hook, raw=False,
                             strict_map_key=False)
        u.feed(body)
        events = list(u)
    except Exception:
        events = None
    return {
        "name": os.path.basename(path),
        "size": len(data),
        "version": data[8],
        "state": chr(data[9]),
        "hlen": hlen,
        "id": bytes(data[16:32]),
        "id_hex": data[16:32].hex(),
        "created_us": created_us,
        "bodylen": bodylen,
        "count": count,
        "bodycrc": bodycrc,
        "headcrc": headcrc,
        "head_ok": head_crc(head) == headcrc,
        "body_ok": len(body) == bodylen and
                   (zlib.crc32(body) & 0xffffffff) == bodycrc,
        "keys": keys,
        "tag": keys.get("tag") if isinstance(keys, dict) else None,
        "timekey": keys.get("timekey") if isinstance(keys, dict) else None,
        "variables": keys.get("variables") if isinstance(keys, dict) else None,
        "body": body,
        "events": events,
    }


def list_chunks(spool, dirname="new"):
    """Chunk names in SPOOL/dirname, sorted (FIFO order), as lf lists
    them: no dotfiles, no .reason files."""
    d = os.path.join(spool, dirname)
    return sorted(n for n in os.listdir(d)
                  if not n.startswith(".") and n.endswith(".chunk"))


def read_reason(spool, name):
    """The reason beside a dead letter, without its newline."""
    with open(os.path.join(spool, "dead", name + ".reason")) as f:
        return f.read().rstrip("\n")
