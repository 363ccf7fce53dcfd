"""A throwaway MariaDB for the tests: Debian's mariadbd in a temporary
directory, on a Unix socket (and with tcp=True a port on 127.0.0.1), utf8mb4, root without a password
(../shared/research/outputs.md 1.14).  Queried with the mariadb client
(-N -B: tab-separated rows), so the tests share no code with lf-mysql.

    db = MariaDB(tmp_path_factory.mktemp("mdb"))
    db.start(); db.sql("CREATE TABLE ...")
    rows = db.rows("SELECT id, data FROM data_a")
    db.kill(); db.start()     # the same data directory
    db.stop()
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

OPTS = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci", "--skip-name-resolve"]


def available():
    return shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")


class MariaDB:
    def __init__(self, tcp=False):
        # a short path: a socket's must stay under 108 bytes
        self.dir = tempfile.mkdtemp(prefix="lfmdb.", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.log = os.path.join(self.dir, "error.log")
        self.p = None
        self.port = None
        if tcp:     # a free port on loopback, kept across restarts
            with socket.socket() as so:
                so.bind(("127.0.0.1", 0))
                self.port = so.getsockname()[1]
        with open(os.path.join(self.dir, "install.log"), "wb") as f:
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", "--datadir=" +
                 self.data, "--user=root",
                 "--auth-root-authentication-method=normal",
                 "--skip-test-db"] + OPTS, stdout=f, stderr=f, check=True,
                timeout=120)

    def start(self, *extra, timeout=60):
        assert self.p is None
        self.p = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", "--user=root",
             "--datadir=" + self.data, "--socket=" + self.sock,
             "--pid-file=" + os.path.join(self.dir, "mysqld.pid"),
             "--log-error=" + self.log] + self.net() + OPTS +
            list(extra), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(["mariadb-admin", "--no-defaults",
                                "--socket=" + self.sock, "-uroot", "ping"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mariadbd did not start:\n" +
                                   open(self.log).read()[-3000:])
            time.sleep(0.05)

    def net(self):
        if self.port is None:
            return ["--skip-networking"]
        return ["--bind-address=127.0.0.1", "--port=%d" % self.port]

    def stop(self, sig=signal.SIGTERM):
        if self.p is None:
            return
        self.p.send_signal(sig)
        self.p.wait(timeout=60)
        self.p = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def sql(self, text, db=None, check=True):
        """Run statements; their output as tab-separated lines."""
        args = ["mariadb", "--no-defaults", "--socket=" + self.sock,
                "-uroot", "-N", "-B", "--default-character-set=utf8mb4"]
        if db:
            args.append(db)
        r = subprocess.run(args, input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s" % (text, r.stderr.decode()))
        return r.stdout.decode()

    def rows(self, text, db=None):
        out = self.sql(text, db)
        return [tuple(line.split("\t")) for line in out.splitlines()]

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
