"""The README's main job (scripts/demo): the HA topology on one machine.

The demo feeds 800 events with unique ids (lf-tail on a log file, and
Debian's Python Fluentd logger into the forwarder's lf-recv), kills -9
the active aggregator half way, and counts every id at the Treasure Data
emulator, in the LTSV backup and in MariaDB.  Asserted here from its
output: the failover happened (the forwarder's lf-send marked the active
down, the standby delivered events and its chunks), the final table has
800 written and 0 lost at every destination, and at the end no process
of the demo runs and its temporary directory is gone."""
import os
import re
import subprocess

from conftest import BIN, check_no_sanitizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DESTINATIONS = ("Treasure Data emulator", "LTSV backup", "MariaDB")
WRITTEN = 2 * (300 + 100)


def run_demo():
    env = dict(os.environ, LF_BIN=os.path.abspath(BIN))
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "demo")],
                       env=env, capture_output=True, timeout=300)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, out + err
    check_no_sanitizer(p.stderr)
    return out


def table(out):
    """The final table: destination -> (written, delivered, duplicated,
    lost)."""
    rows = {}
    for dest in DESTINATIONS:
        m = re.search(r"^   %s +(\d+) +(\d+) +(\d+) +(\d+)$" % re.escape(dest),
                      out, re.M)
        assert m, "no row for %s in:\n%s" % (dest, out)
        rows[dest] = tuple(int(x) for x in m.groups())
    return rows


def alive(pid, work):
    """Whether pid is still a process of the demo (its command line names
    the demo's temporary directory, as every one of them does)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return work.encode() in f.read()
    except FileNotFoundError:
        return False


def test_demo_fails_over_and_loses_nothing():
    out = run_demo()
    work = re.search(r"\(in \$W=(/tmp/lf-demo\.\w+)\)", out).group(1)

    # what runs: every role's processes, the python emulator and MariaDB
    started = re.findall(r"^   ((?:fwd|active|standby|storage)_[a-z]+|"
                         r"td_emulator|mariadbd) +(\d+) +(\S+)", out, re.M)
    names = [n for n, _, _ in started]
    for role in ("fwd", "active", "standby", "storage"):
        assert any(n.startswith(role + "_") for n in names), out
    assert names.count("active_recv") == 2      # killed, then back
    assert "fwd_tail" in names and "fwd_recv" in names
    assert "td_emulator" in names and "mariadbd" in names

    # the failover: the active was killed with its five processes, the
    # forwarder's lf-send marked it down and the standby took the events
    killed = re.search(r"^   killed:((?: \d+){5})$", out, re.M)
    assert killed, out
    assert re.search(r"^     active: down: ", out, re.M), out
    m = re.search(r"delivered through the active aggregator: (\d+) events, "
                  r"through the standby: (\d+)", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out
    m = re.search(r"the forwarder's lf-send: active (\d+) chunks \((\d+) "
                  r"events\), standby (\d+) chunks \((\d+) events\)", out)
    assert m and int(m.group(3)) > 0 and int(m.group(4)) > 0, out
    # every event acked by one of them: what the forwarder delivered
    assert int(m.group(2)) + int(m.group(4)) >= WRITTEN, out

    # the arrivals: both aggregators wrote the LTSV backup; MariaDB and
    # the emulator show the records with the forwarder's host name
    assert re.search(r"LTSV backup backup/active/data\.production\.access/"
                     r"\d{10}\.log \(\d+ lines\)", out), out
    assert re.search(r"LTSV backup backup/standby/data\.production\.app/"
                     r"\d{10}\.log \(\d+ lines\)", out), out
    assert re.search(r'"id": "p0001", "hostname": "\w+"', out), out
    assert re.search(r"\| a0001 \| \S+ +\| [\d.]+ +\| /", out), out

    # the table: what was fed, all of it at each destination
    rows = table(out)
    for dest, (written, delivered, duplicated, lost) in rows.items():
        assert written == WRITTEN, (dest, rows)
        assert delivered == WRITTEN and lost == 0, (dest, rows)
        assert duplicated >= 0

    # lf-top over every tool's --metrics-file: a row per tool, the
    # forwarder's two servers with the standby marked
    top = out.split("== 11. what an operator sees")[1].split("== 12.")[0]
    for row in ("fwd_tail +lf-tail", "fwd_send +lf-send",
                "active_tdlog +lf-tdlog", "storage_mysql +lf-mysql"):
        assert re.search(r"^   %s " % row, top, re.M), top
    assert re.search(r"^     \S+ +(up|down) .*standby, phi", top, re.M), top
    assert "stale" not in top and "error" not in top, top

    # stopped cleanly: nothing left running, the temporary files gone
    assert re.search(r"^   %d processes stopped, none left; \$W removed;"
                     % (len(started) - 5), out, re.M), out
    assert not os.path.exists(work)
    pids = [int(p) for _, p, _ in started] + \
        [int(p) for p in killed.group(1).split()]
    assert [p for p in pids if alive(p, work)] == []
    others = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and alive(int(d), work):
            others.append(int(d))
    assert others == []
