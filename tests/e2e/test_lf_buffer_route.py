"""End-to-end tests of lf-buffer's tag routing (issue 9, "Tag routing"):
PATTERN=SPOOL arguments with Fluentd's match patterns (lib/match), copies
where several patterns match, a tag of no spool dropped, counted, logged
as Fluentd's "no patterns matched" and still acked, bad patterns refused
as usage errors, and the hop's promise kept while routing: no acked event
lost in any spool, none stored twice, across kill -9.

The harness (Lfb, the Sender of the crash test, the chunk readers) is
test_lf_buffer.py's.
"""
import os
import random
import re

from conftest import fault_env, fault_log, packb, run
from fwdclient import fluentd_token, pack_entries
from test_lf_buffer import (all_files, fsck, id_counts,
                            kill_while_sending, lfb, log_lines, mkspool,
                            msg_events, procs, send_acked, spool_events,
                            wait_for, work)

assert procs and work           # pytest fixtures, used by name

PROD, STG = "data.production", "data.staging"


def stats(err):
    """The counts of the -v stats line at exit (one per spool; the
    unmatched counts are of the whole process)."""
    lines = [l for l in log_lines(err, "info") if "stats:" in l]
    assert lines, err
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[0])}


def unmatched_warnings(err):
    return [l for l in log_lines(err, "warn")
            if l.startswith("no patterns matched")]


def tags_of(spool):
    return sorted({t for t, _, _ in spool_events(spool)})


def test_route_two_environments(work, procs):
    """Each environment's tags go to its own spool, and only there."""
    prod, stg = mkspool(work, "prod"), mkspool(work, "stg")
    b = lfb(procs, work, [PROD + ".**=" + prod, STG + ".**=" + stg]).start()
    c = b.client()
    want = {prod: {}, stg: {}}
    for i in range(40):
        env = PROD if i % 2 == 0 else STG
        tag = "%s.app%d" % (env, i % 3) if i % 5 else env  # ** matches env
        send_acked(c, tag, msg_events(i, 1 + i % 4))
        want[prod if env == PROD else stg].update(
            {(i, e): 1 for e in range(1 + i % 4)})
    c.close()
    assert b.stop() == 0
    for s in (prod, stg):
        assert id_counts(spool_events(s)) == want[s], s
        assert all_files(s, "tmp") == []
        fsck(s)
    assert all(t.startswith(PROD) for t in tags_of(prod))
    assert all(t.startswith(STG) for t in tags_of(stg))


def test_route_copies_and_spool_without_pattern(work, procs):
    """A message goes into every spool whose pattern matches (out_copy),
    and into a spool without a pattern whatever its tag; several patterns
    in one argument are any-of; {a,b} alternatives."""
    prod, arch, dev, allsp = (mkspool(work, n) for n in
                              ("prod", "arch", "dev", "all"))
    b = lfb(procs, work, [
        PROD + ".**=" + prod,
        "data.{production,staging}.**=" + arch,
        "data.dev.* other.dev=" + dev,
        allsp], ["-v"]).start()
    c = b.client()
    sent = {}
    tags = [PROD + ".web", STG + ".web", "data.dev.x", "other.dev",
            "data.dev.x.y", "misc"]
    for i in range(60):
        tag = tags[i % len(tags)]
        send_acked(c, tag, msg_events(i, 3))
        sent[i] = tag
    # a re-send (same token) is a duplicate in each spool it went to
    tok = fluentd_token()
    send_acked(c, PROD + ".web", msg_events(100, 2), token=tok)
    send_acked(c, PROD + ".web", msg_events(100, 2), token=tok)
    sent[100] = PROD + ".web"
    c.close()
    assert b.stop() == 0

    def want(pred):
        return {(i, e): 1 for i, t in sent.items() if pred(t)
                for e in range(2 if i == 100 else 3)}

    assert id_counts(spool_events(prod)) == want(lambda t: t.startswith(PROD))
    assert id_counts(spool_events(arch)) == want(
        lambda t: t.startswith((PROD, STG)))
    assert id_counts(spool_events(dev)) == want(
        lambda t: t in ("data.dev.x", "other.dev"))
    assert id_counts(spool_events(allsp)) == want(lambda t: True)
    st = stats(b.err.decode())
    assert st["duplicates"] == 1, st
    assert st["unmatched_messages"] == 0, st


def test_route_unmatched_dropped_counted_acked(work, procs):
    """A tag no spool takes: dropped, counted in the stats, logged as
    Fluentd logs "no patterns matched" (1st, 2nd, 4th ... time), and
    acked so that the client does not send it again forever."""
    prod, stg = mkspool(work, "prod"), mkspool(work, "stg")
    b = lfb(procs, work, [PROD + ".**=" + prod, STG + ".**=" + stg],
            ["-v"]).start()
    c = b.client()
    n_unmatched = 0
    for i in range(40):
        if i % 4 == 3:
            send_acked(c, PROD + ".app", msg_events(i, 2))
        else:
            # another environment's tag, as a misrouted forwarder sends
            send_acked(c, "data.test.app", msg_events(i, 5))
            n_unmatched += 1
    # without a chunk option (no ack asked) too
    c.send("nobody.home", pack_entries(msg_events(51, 3)))
    n_unmatched += 1
    # the 32nd, logged: a hostile tag is shown visibly and cut short
    send_acked(c, 'x"\n\x1b' + "y" * 200, msg_events(50, 1))
    n_unmatched += 1
    send_acked(c, STG + ".app", msg_events(52, 1))     # after it, in order
    c.close()
    assert b.stop() == 0
    assert id_counts(spool_events(prod)) == \
        {(i, e): 1 for i in range(3, 40, 4) for e in range(2)}
    assert id_counts(spool_events(stg)) == {(52, 0): 1}
    err = b.err.decode()
    st = stats(err)
    assert st["unmatched_messages"] == n_unmatched == 32, st
    assert st["unmatched_events"] == 30 * 5 + 1 + 3, st
    assert st["events"] == 10 * 2 + 1, st
    warns = unmatched_warnings(err)
    # Fluentd's schedule: the 1st, 2nd, 4th, 8th, 16th and 32nd time
    assert len(warns) == 6, warns
    assert warns[0].startswith('no patterns matched tag="data.test.app"'), warns
    assert "(1 messages, 5 events so far)" in warns[0], warns
    assert "(32 messages, 154 events so far)" in warns[5], warns
    assert '"x\\"\\n\\033' in warns[5] and '..."' in warns[5], warns
    assert "\x1b" not in err


def test_route_unmatched_log_every_512th(work):
    """Past 256, a warning every 512th time (pipe mode: no acks, same
    counting)."""
    spool = mkspool(work)
    data = b"".join(packb(["z.%d" % i, pack_entries(msg_events(i, 1)),
                           {"size": 1}]) for i in range(1100))
    data += packb(["a.b", pack_entries(msg_events(2000, 2)), {"size": 2}])
    rc, out, err = run("lf-buffer", ["-v", "a.*=" + spool], data)
    err = err.decode()
    assert (rc, out) == (0, b""), err
    warns = unmatched_warnings(err)
    counts = [int(re.search(r"\((\d+) messages", w).group(1)) for w in warns]
    assert counts == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], counts
    assert stats(err)["unmatched_messages"] == 1100
    assert id_counts(spool_events(spool)) == {(2000, 0): 1, (2000, 1): 1}


def test_route_bad_pattern_is_usage_error(work):
    """A bad pattern is exit 64 with a message naming it and what is
    wrong, before any spool is made."""
    sp = mkspool(work)
    cases = [
        ("a.{b,c=" + sp, "pattern 'a.{b,c': unbalanced '{'"),
        ("a}=" + sp, "unbalanced '}'"),
        ("a..b=" + sp, "empty part"),
        (".a=" + sp, "empty part (leading '.')"),
        ("a.=" + sp, "empty part (trailing '.')"),
        ("=" + sp, "empty pattern"),
        ("a.b=", "no spool after the pattern"),
    ]
    for arg, msg in cases:
        rc, out, err = run("lf-buffer", [arg], b"")
        err = err.decode()
        assert rc == 64, (arg, rc, err)
        assert out == b""
        assert msg in err, (arg, err)
        assert err.count("\n") == 1 and err.startswith("lf-buffer: fatal: "), err
        assert not os.path.exists(sp), arg
    # a spool given twice would lock itself out: said plainly
    rc, out, err = run("lf-buffer", ["a=" + sp, "b=" + sp], b"")
    assert rc == 64 and b"spool given twice" in err and b"'a.** b.**=" in err, err
    assert not os.path.exists(sp)


def test_route_argument_rule(work):
    """The left of the first '=' is a pattern only without a '/': a path
    with an '=' stays a path."""
    data = packb(["t", pack_entries(msg_events(0, 2)), {"size": 2}])
    rc, out, err = run("lf-buffer", ["./x=y"], data, cwd=work)
    assert (rc, out, err) == (0, b"", b"")
    assert id_counts(spool_events(os.path.join(work, "x=y"))) == \
        {(0, 0): 1, (0, 1): 1}
    sub = os.path.join(work, "d=e")
    os.mkdir(sub)
    rc, out, err = run("lf-buffer", ["u=" + sub + "/f=g"], data)
    assert (rc, out) == (0, b"")                  # pattern u: tag t dropped
    assert err == (b'lf-buffer: warn: no patterns matched tag="t": 2 events '
                   b'dropped (1 messages, 2 events so far)\n'), err
    assert spool_events(os.path.join(sub, "f=g")) == []


def test_route_ack_waits_for_every_spool_of_the_tag(work, procs):
    """A message for two spools (a copy) whose commit succeeds in the first
    and fails in the second (its staged chunk cannot be made: ENOSPC) is
    not acked, while a message for the first spool alone, committed in the
    same group, is not acked either (the group's acks wait for all).  At
    TERM the events not stored are reported (exit 75); after a restart the
    re-send with the same token is stored in the second spool only: the
    first has it, committed, in its dedup window."""
    arch, stg = mkspool(work, "arch"), mkspool(work, "stgsp")
    flog = os.path.join(work, "faults")
    b = lfb(procs, work, ["data.**=" + arch, STG + ".**=" + stg])
    b.env = fault_env("openat@stgsp/tmp/:1+:ENOSPC", flog)
    b.start()
    c = b.client()
    tok = fluentd_token()
    c.send(STG + ".app", pack_entries(msg_events(0, 4)), token=tok)
    c.send(PROD + ".app", pack_entries(msg_events(1, 2)), token=fluentd_token())
    wait_for(lambda: "commit failed" in b.read_err(), what="commit failed")
    assert c.poll_acks(1.0) == []
    c.close()
    assert b.stop() == 75
    assert fault_log(flog), "no fault made"
    assert "were not stored and not acknowledged" in b.err.decode()
    b.env = None
    b.start()
    c = b.client()
    assert send_acked(c, STG + ".app", msg_events(0, 4), token=tok) == tok
    send_acked(c, STG + ".app", msg_events(2, 2))
    c.close()
    assert b.stop() == 0
    assert id_counts(spool_events(stg)) == \
        {(0, 0): 1, (0, 1): 1, (0, 2): 1, (0, 3): 1, (2, 0): 1, (2, 1): 1}
    assert id_counts(spool_events(arch)) == \
        {(0, 0): 1, (0, 1): 1, (0, 2): 1, (0, 3): 1, (1, 0): 1, (1, 1): 1,
         (2, 0): 1, (2, 1): 1}


def test_failed_commit_window_record_not_taken_as_delivered(work, procs):
    """Found by the test above, without routing: a commit that cannot make
    its staged chunk's file (ENOSPC) left its window record to the tick's
    (or exit's) window sync, naming a chunk that never existed; the next
    start took it for a chunk sealed and delivered since, so the re-send
    was acked as a duplicate and its events were lost.  lib/buffer now
    writes those records only once the files exist."""
    sp = mkspool(work, "stgsp")
    b = lfb(procs, work, [sp])
    b.env = fault_env("openat@stgsp/tmp/:1+:ENOSPC")
    b.start()
    c = b.client()
    tok = fluentd_token()
    c.send("t", pack_entries(msg_events(0, 4)), token=tok)
    wait_for(lambda: b.read_err().count("commit failed") >= 2,
             what="a tick after the failed commit")
    assert c.poll_acks(0) == []
    c.close()
    assert b.stop() == 75
    b.env = None
    b.start()
    c = b.client()
    assert send_acked(c, "t", msg_events(0, 4), token=tok) == tok
    c.close()
    assert b.stop() == 0
    assert id_counts(spool_events(sp)) == {(0, e): 1 for e in range(4)}


def test_route_kill9_no_acked_event_lost(work, procs):
    """kill -9 at random instants while routing to two environments and
    an archive (copies), with unmatched tags mixed in; the sender re-sends
    unacked messages with the same token.  At the end every message is
    acked, and each spool holds exactly the events of its tags, each
    once."""
    N, PER, KILLS = 1500, 20, 16
    prod, stg, arch = (mkspool(work, n) for n in ("prod", "stg", "arch"))
    b = lfb(procs, work, [PROD + ".**=" + prod, STG + ".**=" + stg,
                          "data.{production,staging}.**=" + arch],
            ["--chunk-limit-size", "16k"]).start()
    seed = int(os.environ.get("LF_SEED", "0")) or random.randrange(1 << 30)
    rnd = random.Random(seed)
    envs = [PROD, STG, "data.other"]
    msgs = []
    for i in range(N):
        evs = [(1441588984 + i, {"m": i, "e": e}) for e in range(PER)]
        msgs.append(("%s.a%d" % (envs[i % 3], i % 2), pack_entries(evs), PER,
                     fluentd_token()))
    # a third of the restarts killed again while recovering
    s, kills = kill_while_sending(b, msgs, rnd, seed, KILLS, 0.3)
    assert kills >= KILLS - 2 and s.resent > 0, (kills, s.resent)
    for e in b.errs:
        for line in log_lines(e.decode(errors="replace")):
            assert not line.startswith(("error", "fatal")), line

    def want(envset):
        return {(i, e): 1 for i in range(N) if envs[i % 3] in envset
                for e in range(PER)}

    for spool, envset in ((prod, {PROD}), (stg, {STG}), (arch, {PROD, STG})):
        got, exp = id_counts(spool_events(spool)), want(envset)
        lost = sorted(k for k in exp if k not in got)
        extra = sorted(k for k, v in got.items() if v != 1 or k not in exp)
        assert not lost, "seed %d: %s: %d acked events lost, e.g. %r" % (
            seed, spool, len(lost), lost[:5])
        assert not extra, "seed %d: %s: stored twice or misrouted: %r" % (
            seed, spool, extra[:5])
        assert all_files(spool, "tmp") == []
        fsck(spool)
