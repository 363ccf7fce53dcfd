"""The README's main job (scripts/demo) runs and shows every sample event
arriving at the aggregator, at the Treasure Data emulator, in the LTSV
backup files and in MariaDB."""
import os
import subprocess

from conftest import BIN, check_no_sanitizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_demo_runs_end_to_end():
    env = dict(os.environ, LF_BIN=os.path.abspath(BIN))
    env.pop("TD_API_KEY", None)
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "demo")],
                       env=env, capture_output=True, timeout=300)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, out + err
    check_no_sanitizer(p.stderr)
    assert "lf-send: every chunk delivered and acknowledged (exit 0)" in out
    assert "lf-tdlog: every chunk imported (exit 0)" in out
    # the 9 sample lines, each with the forwarder's host name
    arrived = [l for l in out.splitlines() if l.startswith('{"tag":"data.production.')]
    assert len(arrived) == 9, out
    assert all('"hostname":' in l for l in arrived)
    assert "production.access: 6 rows" in out and "production.app: 3 rows" in out
    # the LTSV backup and the MariaDB tables of the storage side
    assert "data.production.access.log: 6 lines" in out
    assert "data.production.app.log: 3 lines" in out
    assert "lf-mysql: every chunk committed (exit 0)" in out
    assert "logs.data_access: 6 rows" in out and "logs.data_app: 3 rows" in out
