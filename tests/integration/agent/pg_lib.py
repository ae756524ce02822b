"""A throw-away PostgreSQL cluster for tests and benchmarks: Debian's initdb and
pg_ctl run as the unprivileged `postgres` user (runuser) on a private data and
socket directory under /tmp, listening on 127.0.0.1 on a free port. Each test
gets its own database (create_db) so tests never see each other's rows.

Used by the agent tests (every node test runs on SQLite and on PostgreSQL),
the fleet tests and bench/fleet. `pg_cluster` is the session fixture; a
conftest.py imports it to use it."""
import atexit
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import free_port  # noqa: E402,F401 (one definition for every area)


def pg_bindir():
    """Directory with initdb/pg_ctl (newest Debian postgresql), or None."""
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not cands:
        return None
    d = os.path.dirname(cands[-1])
    return d if os.path.exists(os.path.join(d, "initdb")) else None


def skip_reason():
    """Why the cluster cannot be started here, or None."""
    if not pg_bindir():
        return "PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb, pg_ctl)"
    if not shutil.which("runuser"):
        return "runuser not available"
    try:
        import pwd
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user to run the server as"
    if os.geteuid() != 0:
        return "need root to run the server as the postgres user (runuser)"
    return None


class PgCluster:
    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="de-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "server.log")
        os.mkdir(self.sock)
        shutil.chown(self.dir, "postgres", "postgres")
        shutil.chown(self.sock, "postgres", "postgres")
        self.port = free_port()
        self.ndb = 0

    def _as_pg(self, args, check=True, timeout=60):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + args, check=check,
                              timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def init(self):
        self._as_pg([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust",
                     "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nmax_connections = 200\nshared_buffers = 32MB\n"
                    # the wake-up triggers are PL/pgSQL: loaded once in the postmaster
                    # instead of in every new backend (each diskctl connects anew)
                    "shared_preload_libraries = 'plpgsql'\n"
                    % (self.port, self.sock))
        return self

    def start(self):
        self._as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log,
                     "-w", "-t", "60", "start"])
        # an interrupted run (Ctrl-C, an exception outside the fixture) still stops it
        atexit.register(self.destroy)
        return self

    def stop(self, mode="fast"):
        self._as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode,
                     "-w", "-t", "60", "stop"], check=False)

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        if os.path.isdir(self.dir):
            self.stop("immediate")
            shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-c", sql], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return r.stdout.decode().strip()

    def create_db(self, name=None):
        """A fresh database; returns its postgresql:// URL."""
        self.ndb += 1
        name = name or "t%d" % self.ndb
        self.psql('CREATE DATABASE "%s"' % name)
        return self.url(name)

    def url(self, name):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, name)

    def drop_db(self, url):
        """Drops the database of a create_db() URL (closing its sessions)."""
        name = url.rsplit("/", 1)[1]
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


try:
    import pytest
except ImportError:  # bench/fleet runs without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def pg_cluster():
        """One throw-away cluster per pytest session (skipped with the reason
        when the server binaries or the postgres user are missing)."""
        why = skip_reason()
        if why:
            pytest.skip(why)
        c = PgCluster().init().start()
        try:
            yield c
        finally:
            c.destroy()
