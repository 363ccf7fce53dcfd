"""lf-recv --http: Fluentd's in_http through the real binary, to stdout
(lf-cat) and over the acknowledged hop to lf-buffer.  lib/httpin's own
cases (every status, bound and split) are in tests/unit/test_httpin.c;
these prove the wiring: what the answer waits for, --match, the tag
prefix, the state file, TERM."""
import http.client
import json
import time

import msgpack

from conftest import ev
from test_lf_recv import (Buf, Recv, bufs, free_port, recvs,  # noqa: F401
                          spool_events, work)

WAIT = 20


def post(port, path, body, ctype="application/json", timeout=WAIT):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=body, headers={"Content-Type": ctype})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def start(work, recvs, args=(), to=None):
    port = free_port()
    r = Recv(work, ["--http", "127.0.0.1:%d" % port] + list(args), to=to,
             listen=[])
    recvs.append(r)
    r.start()
    r.http = port
    return r


def test_bodies_to_stdout(work, recvs):
    """Each body type, the tag from the path, ?time= and the record's
    time key, all through lf-recv | lf-cat."""
    r = start(work, recvs)
    p = r.http
    assert post(p, "/app/a?time=1441588984.5", b'{"k":"v"}')[0] == 200
    assert post(p, "/app/b", b'[{"n":1,"time":1441588985},{"n":2,"time":1441588986}]')[0] == 200
    assert post(p, "/app/c", msgpack.packb({"m": 1, "time": 1441588987}),
                "application/msgpack")[0] == 200
    assert post(p, "/app/d", b'json={"f":1}&time=1441588988',
                "application/x-www-form-urlencoded")[0] == 200
    assert post(p, "/app/e", b'{"l":1,"time":1441588989}\n{"l":2,"time":1441588990}\n',
                "application/x-ndjson")[0] == 200
    assert r.stop() == 0
    assert r.events() == [
        ev("app.a", 1441588984, 500000000, {"k": "v"}),
        ev("app.b", 1441588985, 0, {"n": 1}),
        ev("app.b", 1441588986, 0, {"n": 2}),
        ev("app.c", 1441588987, 0, {"m": 1}),
        ev("app.d", 1441588988, 0, {"f": 1}),
        ev("app.e", 1441588989, 0, {"l": 1}),
        ev("app.e", 1441588990, 0, {"l": 2}),
    ]
    st = r.stats()["http"]
    assert (st["requests"], st["events"], st["status_4xx"]) == (5, 7, 0)


def test_bad_input_400_nothing_taken(work, recvs):
    """Invalid JSON in a batch is a 400 that says why, and no event of
    the request is taken (Fluentd answers 200 and drops the bad ones)."""
    r = start(work, recvs)
    st, body = post(r.http, "/app/x", b'[{"ok":1},{"bad":]')
    assert st == 400 and b"parse error" in body, body
    assert post(r.http, "/app/x", b'{"ok":2}')[0] == 200
    assert r.stop() == 0
    assert [e[2] for e in r.events()] == [ev("x", 0, 0, {"ok": 2})[2]]
    assert r.stats()["http"]["status_4xx"] == 1


def test_match_and_prefix(work, recvs):
    """--add-tag-prefix comes first, then --match: a tag of another
    environment is answered 200 (no retry for ever), dropped, counted."""
    r = start(work, recvs, ["--add-tag-prefix", "data", "--match",
                            "data.production.**"])
    assert post(r.http, "/production/web", b'{"a":1}')[0] == 200
    assert post(r.http, "/staging/web", b'{"a":2}')[0] == 200
    assert r.stop() == 0
    assert [e[0] for e in r.events()] == ["data.production.web"]
    st = r.stats()
    assert st["http"]["refused_tag_events"] == 1
    assert st["refused_tag_events"] == 1
    assert any('no patterns matched tag="data.staging.web"' in l
               for l in r.lines("warn")), r.text()


def test_200_waits_for_lf_buffer(work, recvs, bufs):
    """With --to, the 200 comes only once lf-buffer acked: lf-buffer down,
    no answer; started, the answer comes and the event is in the spool."""
    b = Buf(work)
    bufs.append(b)
    r = start(work, recvs, to=b.sock)
    c = http.client.HTTPConnection("127.0.0.1", r.http, timeout=WAIT)
    c.request("POST", "/app/held", body=b'{"h":1}',
              headers={"Content-Type": "application/json"})
    c.sock.settimeout(1.0)
    try:
        c.getresponse()
        assert False, "answered before lf-buffer acked"
    except TimeoutError:
        pass
    c.close()
    # the request stays in flight: lf-buffer comes, it goes before the next
    b.start()
    assert post(r.http, "/app/next", b'{"h":2}')[0] == 200
    assert r.stop() == 0
    assert b.stop() == 0
    assert sorted(e[2]["h"] for e in spool_events(b.spools[0])) == [1, 2]


def test_term_answers_in_flight(work, recvs, bufs):
    """TERM with a request waiting for lf-buffer's ack: lf-recv stops
    taking requests but answers that one once the ack comes."""
    b = Buf(work, ["--commit-wait", "1s"])
    bufs.append(b)
    b.start()
    r = start(work, recvs, to=b.sock)
    c = http.client.HTTPConnection("127.0.0.1", r.http, timeout=WAIT)
    c.request("POST", "/app/t", body=b'{"t":1}',
              headers={"Content-Type": "application/json"})
    time.sleep(0.2)         # taken, waiting for the 1 s commit
    r.p.send_signal(15)
    resp = c.getresponse()
    assert resp.status == 200
    c.close()
    assert r.p.wait(WAIT) == 0
    assert b.stop() == 0
    assert [e[2] for e in spool_events(b.spools[0])] == [{"t": 1}]
