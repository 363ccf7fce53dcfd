#!/usr/bin/python3
"""Write the seed corpus for fuzz_stream: one file per forward-protocol mode
and edge case.  The first byte of each seed picks the split size."""
import gzip, os, struct, sys
import msgpack

T = 1441588984
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "stream")
os.makedirs(out, exist_ok=True)

def et(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))

def pk(o):
    return msgpack.packb(o, use_bin_type=True)

rec = {"host": "10.0.0.1", "method": "GET", "path": "/index.html", "code": 200}
entries = b"".join(pk([et(T, i), rec]) for i in range(3))
seeds = {
    "message_int": pk(["tag.a", T, {"message": "bar"}]),
    "message_chunk": pk(["tag.a", et(T, 500000000), {"k": "v"}, {"chunk": "p8n9gmxTQVC8/nh2wlKKeQ=="}]),
    "forward": pk(["tag.a", [[T, {"a": 1}], [et(T + 1), {"b": 2}]], {"size": 2}]),
    "packed_bin": pk(["tag.a", entries, {"size": 3}]),
    "packed_str": b"\x93\xa5tag.a\xdb" + struct.pack(">I", len(entries)) + entries
                  + pk({"size": 3, "compressed": "text", "chunk": "AAECAwQFBgcICQoLDA0ODw==\n"}),
    "compressed": pk(["tag.a", gzip.compress(entries[:20]) + gzip.compress(entries[20:]),
                      {"compressed": "gzip", "size": 3}]),
    "metadata": pk(["tag.a", [[[et(T), {}], {"a": 1}]], {"fluent_signal": 0}]),
    "float_time": pk(["tag.a", 1441588984.25, rec]),
    "invalid_events": pk(["t", [[1.5, {}], [T, "x"], [T, {"ok": 1}]], {"chunk": "abc"}]),
    "heartbeat_mix": b"\xc0" + pk(["a", T, {}]) + b"\xc0" + pk({"a": 1}),
    "nested": pk(["t", T, {"a": [[[{"b": [1, 2.5, None, True, b"\x00\xff"]}]]]}]),
}
for i, (name, data) in enumerate(sorted(seeds.items())):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([i]) + data)
