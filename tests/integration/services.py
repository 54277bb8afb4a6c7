"""Real services for the tests, each private to one test and cleaned up
whatever happens: a PostgreSQL cluster under pgbench load (PgCluster) and an
nginx master with two workers under an HTTP load (Nginx).  Standard library
only; the servers come from Debian (./bootstrap.sh check installs them).

Both run as the current user, or as an unprivileged user of the tests' own
when we are root (PostgreSQL refuses root; nginx's workers take its `user`
directive), listen only on a private unix socket directory or 127.0.0.1, and
are started directly as our children (no pg_ctl, no daemonizing) so that a
test can always reach, stop and reap every process of theirs.
"""
import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from common import as_user, check, check_eq, second_user, wait_for

SERVICE_USER = 'dt-service'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tree_pids(pid):
    """pid and all its descendants, parents first (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        for task in glob.glob(f'/proc/{p}/task/*/children'):
            try:
                with open(task) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def proc_state(pid):
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()[0]


class Service:
    """A server process (our child, in a process group of its own) and its
    temporary directory.  Subclasses set self.proc in start()."""

    name = 'service'

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, self.name)
        os.makedirs(self.dir, mode=0o755)
        self.proc = None
        if os.geteuid() == 0:
            self.uid, self.gid = second_user(SERVICE_USER)
            self.preexec = as_user(self.uid, self.gid)
        else:
            self.uid, self.gid, self.preexec = os.getuid(), os.getgid(), None

    def own(self, path, mode):
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def spawn(self, argv, log, preexec=None):
        self.log = log
        with open(log, 'ab') as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         cwd=self.dir, preexec_fn=preexec, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def pids(self):
        """The server's processes now, the master first."""
        return tree_pids(self.pid)

    def children(self):
        return self.pids()[1:]

    def log_tail(self, n=2000):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()[-n:]
        except (OSError, AttributeError):
            return ''

    def shutdown(self, sig, timeout):
        """Ask the master to stop (resuming the tree first: a stopped
        process cannot act on it); past timeout, or when the master is gone
        already, kill whatever is left of its process group."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                for p in self.pids():
                    try:
                        os.kill(p, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
                os.kill(self.pid, sig)
                self.proc.wait(timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        finally:
            try:
                os.killpg(self.pid, signal.SIGKILL)     # the group is the master's pid
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(10)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# -- PostgreSQL ------------------------------------------------------------

def pg_bindir():
    dirs = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    check(dirs, 'PostgreSQL is not installed (initdb not found under /usr/lib/postgresql): '
          './bootstrap.sh check installs it')
    return os.path.dirname(dirs[-1])


class PgCluster(Service):
    """A private cluster: initdb in a temporary directory, a unix socket
    directory of its own (listen_addresses=''), small shared_buffers."""

    name = 'pg'
    role = 'dt'

    def __init__(self, tmp, shared_buffers='32MB'):
        super().__init__(tmp)
        self.bin = pg_bindir()
        self.data = os.path.join(self.dir, 'data')
        self.sock = os.path.join(self.dir, 'sock')
        self.shared_buffers = shared_buffers
        self.benches = []

    def start(self):
        self.own(self.dir, 0o700)
        self.own(self.sock, 0o700)
        r = subprocess.run([f'{self.bin}/initdb', '-D', self.data, '-U', self.role, '--auth=trust',
                            '--locale=C', '-E', 'UTF8', '--no-sync', '--no-instructions'],
                           capture_output=True, text=True, cwd=self.dir, preexec_fn=self.preexec,
                           timeout=60)
        check(r.returncode == 0, f'initdb: exit {r.returncode}: {r.stderr.strip()[-800:]}')
        opts = {'listen_addresses': '', 'unix_socket_directories': self.sock,
                'shared_buffers': self.shared_buffers, 'huge_pages': 'off', 'max_connections': 20,
                'fsync': 'off', 'synchronous_commit': 'off', 'full_page_writes': 'off',
                'max_wal_size': '256MB', 'logging_collector': 'off'}
        argv = [f'{self.bin}/postgres', '-D', self.data]
        for k, v in opts.items():
            argv += ['-c', f'{k}={v}']
        self.spawn(argv, os.path.join(self.dir, 'postgres.log'), self.preexec)
        wait_for(self.ready, 60, f'postgres to accept connections; log: {self.log_tail()}')

    def ready(self):
        check(self.proc.poll() is None, f'postgres exited ({self.proc.returncode}): '
              f'{self.log_tail()}')
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == 'ready'

    def client(self, tool, *args):
        return [f'{self.bin}/{tool}', '-h', self.sock, '-U', self.role, *map(str, args)]

    def sql(self, query, db='postgres'):
        r = subprocess.run(self.client('psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db,
                                       '-c', query),
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f'psql {query!r}: exit {r.returncode}: {r.stderr.strip()}')
        return r.stdout.strip()

    def pgbench_init(self, scale=1):
        r = subprocess.run(self.client('pgbench', '-i', '-q', '-s', scale, 'postgres'),
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f'pgbench -i: exit {r.returncode}: {r.stderr.strip()[-800:]}')

    def pgbench(self, clients=4, transactions=None, seconds=None, rate=None):
        """Start pgbench in the background (tpcb-like, `clients` clients on 2
        threads), for a transaction count per client or a time."""
        args = ['-n', '-c', clients, '-j', 2]
        args += ['-t', transactions] if transactions else ['-T', seconds]
        if rate:
            args += ['-R', rate]
        b = Pgbench(subprocess.Popen(self.client('pgbench', *args, 'postgres'),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True),
                    clients * transactions if transactions else None)
        self.benches.append(b)
        return b

    def consistency(self):
        """pgbench's invariant: every balance change is in the history, and
        the three balance tables agree.  Returns (sum, history rows)."""
        out = self.sql('select coalesce((select sum(abalance) from pgbench_accounts), 0), '
                       'coalesce((select sum(bbalance) from pgbench_branches), 0), '
                       'coalesce((select sum(tbalance) from pgbench_tellers), 0), '
                       'coalesce((select sum(delta) from pgbench_history), 0), '
                       '(select count(*) from pgbench_history)')
        a, b, t, h, n = map(int, out.split('|'))
        check(a == b == t == h, f'pgbench tables inconsistent: sum(abalance) {a}, '
              f'sum(bbalance) {b}, sum(tbalance) {t}, sum(delta) {h}')
        return a, n

    def stop(self):
        try:
            for b in self.benches:
                b.kill()
        finally:
            self.shutdown(signal.SIGINT, 20)     # SIGINT: fast shutdown
            shutil.rmtree(self.dir, ignore_errors=True)


class Pgbench:
    """One pgbench run in the background."""

    def __init__(self, proc, expect):
        self.proc, self.expect, self.out = proc, expect, None

    def result(self, timeout=60):
        """Wait for the end; check it ran every transaction with none failed.
        Returns the number of transactions processed."""
        try:
            self.out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f'pgbench still running after {timeout} s')
        out = self.out
        check(self.proc.returncode == 0, f'pgbench: exit {self.proc.returncode}: {out[-1500:]}')
        m = re.search(r'^number of failed transactions: (\d+)', out, re.M)
        check(m, f'pgbench printed no failed-transaction count: {out[-1500:]}')
        check_eq(int(m.group(1)), 0, f'pgbench failed transactions ({out[-1500:]})')
        m = re.search(r'^number of transactions actually processed: (\d+)(?:/(\d+))?', out, re.M)
        check(m, f'pgbench printed no processed count: {out[-1500:]}')
        done = int(m.group(1))
        check(done > 0, 'pgbench processed no transaction')
        if self.expect is not None:
            check_eq(done, self.expect, 'pgbench transactions processed')
        return done

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


# -- nginx -------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    limit_conn_zone $binary_remote_addr zone=peraddr:1m;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        limit_conn peraddr 1000;
        location / {{ }}
    }}
}}
"""


class Nginx(Service):
    """A master and 2 workers on 127.0.0.1:port serving one static file
    (`body`, at /index.html), with a shared memory zone (limit_conn)."""

    name = 'nginx'

    def __init__(self, tmp, size=20000):
        super().__init__(tmp)
        self.port = free_port()
        self.body = bytes((i * 7 + i // 251) & 0xff for i in range(size))
        self.loads = []

    def start(self):
        binary = shutil.which('nginx') or '/usr/sbin/nginx'
        check(os.path.exists(binary), 'nginx is not installed: ./bootstrap.sh check installs it')
        os.makedirs(os.path.join(self.dir, 'www'))
        os.makedirs(os.path.join(self.dir, 'tmp'))
        with open(os.path.join(self.dir, 'www', 'index.html'), 'wb') as f:
            f.write(self.body)
        user = f'user {SERVICE_USER};' if os.geteuid() == 0 else ''
        conf = os.path.join(self.dir, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write(NGINX_CONF.format(user=user, dir=self.dir, port=self.port))
        self.spawn([binary, '-p', self.dir, '-c', conf, '-e', os.path.join(self.dir, 'error.log')],
                   os.path.join(self.dir, 'stderr.log'))
        self.log = os.path.join(self.dir, 'error.log')
        wait_for(self.ready, 30, f'nginx to serve with 2 workers; log: {self.log_tail()}')

    def ready(self):
        check(self.proc.poll() is None, f'nginx exited ({self.proc.returncode}): {self.log_tail()}')
        if len(self.children()) != 2:
            return False
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1):
                return True
        except OSError:
            return False

    def load(self, threads=4, seconds=10, requests=5000, per_connection=50, pause=0.002,
             timeout=60):
        """Start an HTTP load in the background: `threads` clients, each
        sending GETs for `seconds` (at most `requests`, `pause` s apart),
        a new connection every `per_connection`."""
        g = Load(self, threads, seconds, requests, per_connection, pause, timeout)
        self.loads.append(g)
        return g

    def stop(self):
        try:
            for g in self.loads:
                g.stop.set()
            for g in self.loads:
                g.join(30)
        finally:
            self.shutdown(signal.SIGTERM, 10)   # SIGTERM: fast shutdown
            shutil.rmtree(self.dir, ignore_errors=True)


class Load:
    """Clients of an Nginx: each response must be 200 with the exact body."""

    def __init__(self, server, threads, seconds, requests, per_connection, pause, timeout):
        self.server, self.requests, self.per_connection = server, requests, per_connection
        self.pause, self.timeout = pause, timeout
        self.deadline = time.monotonic() + seconds
        self.sent, self.ok, self.failures, self.lock = 0, 0, [], threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def client(self):
        conn, sent = None, 0
        try:
            while (sent < self.requests and time.monotonic() < self.deadline
                   and not self.stop.is_set()):
                if conn is None or sent % self.per_connection == 0:
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection('127.0.0.1', self.server.port,
                                                      timeout=self.timeout)
                sent += 1
                try:
                    conn.request('GET', '/index.html')
                    r = conn.getresponse()
                    body = r.read()
                    good = r.status == 200 and body == self.server.body
                    why = None if good else f'status {r.status}, {len(body)} bytes'
                except (OSError, http.client.HTTPException) as e:
                    why, conn = f'{type(e).__name__}: {e}', None
                with self.lock:
                    self.sent += 1
                    if why is None:
                        self.ok += 1
                    else:
                        self.failures.append(why)
                time.sleep(self.pause)
        finally:
            if conn:
                conn.close()

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout=60):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0, end - time.monotonic()))
        return not self.running()

    def result(self, timeout=60):
        """Wait for every client; check every request was served.  Returns
        the number served."""
        check(self.join(timeout), f'HTTP load still running after {timeout} s')
        check(not self.failures, f'{len(self.failures)} of {self.sent} requests failed, '
              f'the first: {self.failures[:1]}')
        check(self.ok > 0, 'no request sent')
        check_eq(self.ok, self.sent, 'requests served')
        return self.ok
