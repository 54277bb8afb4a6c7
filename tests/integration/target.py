"""Driver for tests/target/dt-target, the scriptable test target process.

The target reads one command per line on stdin and answers each with exactly
one line on stdout: ``ok [VALUE...]`` or ``err MESSAGE``.  ``block`` commands
answer ``ok blocking [PORT]`` before blocking and print ``done ...`` once the
blocking call returns; read that second line with :meth:`Target.line` or
:meth:`Target.done`.

Only the Python standard library is used; all reads go through select()
with timeouts, so a misbehaving target raises TargetError instead of hanging
a test.

Example::

    with Target("/tmp/dt-target") as t:
        base = t.map("a", "anon", 16)
        t.write("a", 3, n=2)
        assert t.pages("a", 3, 2) == {base + 3 * PAGE, base + 4 * PAGE}
"""

import os
import select
import signal
import subprocess
import time

PAGE = 4096

__all__ = ["PAGE", "Target", "TargetError"]


class TargetError(Exception):
    """The target replied ``err ...``, timed out, died, or said nonsense."""


class Target:
    """A running dt-target process.

    binary:        path of the dt-target executable.
    extra_fd_pipe: create a pipe whose read end is fd 3 in the target (for
                   ``block read``); the write end is kept as ``self.fd3_w``.
    env:           environment for the target (None: inherit).
    preexec:       callable run in the child before exec (as Popen preexec_fn).
    args:          extra argv entries (the target ignores them).
    """

    def __init__(self, binary, extra_fd_pipe=True, env=None, preexec=None,
                 args=(), ready_timeout=10):
        self.binary = binary
        self.pid = None
        self.proc = None
        self.fd3_w = None
        self.regions = {}       # name -> (address, pages)
        self.children = set()   # pids created by fork / forkwrite
        self._buf = b""
        self._eof = False

        read_end = None
        pass_fds = ()
        child_setup = preexec
        if extra_fd_pipe:
            read_end, self.fd3_w = os.pipe()
            if read_end != 3 and not _fd_open(3):
                # Fd 3 is free here (odd: std fds closed): just use it.
                os.dup2(read_end, 3, inheritable=False)
                os.close(read_end)
                read_end = 3
            pass_fds = (3,)
            if read_end != 3:
                # Fd 3 belongs to something else in this process; the child
                # gets our pipe on fd 3 instead (dup2 makes it inheritable).
                # Popen keeps fd 3 because it is in pass_fds.
                def child_setup(r=read_end, user=preexec):
                    os.dup2(r, 3)
                    if user is not None:
                        user()
        try:
            self.proc = subprocess.Popen(
                [binary, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                bufsize=0, env=env, pass_fds=pass_fds, preexec_fn=child_setup)
        finally:
            if read_end is not None:
                os.close(read_end)
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        try:
            self.pid = self._expect_ready(ready_timeout)
        except BaseException:
            self.kill()
            raise
        if self.pid != self.proc.pid:
            self.kill()
            raise TargetError("ready pid %d != spawned pid %d"
                              % (self.pid, self.proc.pid))

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.kill()
        except Exception:
            pass

    # -- low level protocol ----------------------------------------------
    def _expect_ready(self, timeout):
        ln = self.line(timeout)
        parts = ln.split()
        if len(parts) != 2 or parts[0] != "ready":
            raise TargetError("expected 'ready PID', got %r" % ln)
        return int(parts[1])

    def send(self, line):
        """Send one raw command line without reading the reply."""
        if "\n" in line:
            raise ValueError("command must be a single line")
        data = (line + "\n").encode()
        try:
            while data:
                n = os.write(self._in, data)
                data = data[n:]
        except (BrokenPipeError, OSError) as e:
            raise TargetError("target stdin closed (%s) sending %r%s"
                              % (e, line, self._status())) from None

    def line(self, timeout=10):
        """Read one line from the target (without the newline)."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                ln = self._buf[:nl]
                self._buf = self._buf[nl + 1:]
                return ln.decode(errors="replace")
            if self._eof:
                raise TargetError("target closed stdout%s" % self._status())
            left = deadline - time.monotonic()
            if left <= 0:
                raise TargetError("timeout (%.1fs) waiting for target output"
                                  % timeout)
            r, _, _ = select.select([self._out], [], [], left)
            if not r:
                continue
            chunk = os.read(self._out, 65536)
            if not chunk:
                self._eof = True
            else:
                self._buf += chunk

    def reply(self, timeout=10):
        """Read one reply line; return text after 'ok ', raise on 'err'."""
        ln = self.line(timeout)
        if ln == "ok":
            return ""
        if ln.startswith("ok "):
            return ln[3:]
        if ln.startswith("err"):
            raise TargetError("target: " + ln[4:])
        raise TargetError("unexpected reply %r" % ln)

    def cmd(self, line, timeout=10):
        """Send a command; return the reply text after 'ok ' ('' for ok)."""
        self.send(line)
        try:
            return self.reply(timeout)
        except TargetError as e:
            raise TargetError("%s: %s" % (line, e)) from None

    def _status(self):
        if self.proc is None:
            return ""
        rc = self.proc.poll()
        if rc is None:
            return ""
        if rc < 0:
            return " (target killed by signal %d)" % -rc
        return " (target exited with %d)" % rc

    # -- regions ---------------------------------------------------------
    def _record(self, name, addr, pages):
        self.regions[name] = (addr, pages)
        return addr

    def map(self, name, kind, pages, path=None):
        line = "map %s %s %d" % (name, kind, pages)
        if path is not None:
            line += " " + os.fspath(path)
        return self._record(name, int(self.cmd(line), 16), pages)

    def heap(self, name, pages):
        return self._record(name, int(self.cmd("heap %s %d" % (name, pages)), 16),
                            pages)

    def stack(self, name, pages):
        return self._record(name, int(self.cmd("stack %s %d" % (name, pages)), 16),
                            pages)

    def addr(self, name):
        """Ask the target for (address, pages) and refresh the record."""
        a, n = self.cmd("addr " + name).split()
        self.regions[name] = (int(a, 16), int(n))
        return self.regions[name]

    def base(self, name):
        return self.regions[name][0]

    def page_addr(self, name, page):
        return self.regions[name][0] + page * PAGE

    def pages(self, name, first, n):
        """Set of page addresses of pages first..first+n-1 of region name."""
        base = self.regions[name][0]
        return {base + (first + i) * PAGE for i in range(n)}

    def unmap(self, name, page=None, n=None):
        if page is None:
            self.cmd("unmap " + name)
            self.regions.pop(name, None)
        else:
            self.cmd("unmap %s %d %d" % (name, page, n))

    def remap(self, name, pages, move=False):
        addr = int(self.cmd("remap %s %d%s" % (name, pages,
                                               " move" if move else "")), 16)
        return self._record(name, addr, pages)

    def mprotect(self, name, page, n, prot):
        self.cmd("mprotect %s %d %d %s" % (name, page, n, prot or "none"))

    def dontneed(self, name, page, n):
        self.cmd("dontneed %s %d %d" % (name, page, n))

    def mapfixed(self, name, page, n):
        self.cmd("mapfixed %s %d %d" % (name, page, n))

    # -- memory access ---------------------------------------------------
    def write(self, name, page, n=1, byte=None):
        line = "write %s %d %d" % (name, page, n)
        if byte is not None:
            line += " %d" % byte
        self.cmd(line)

    def fill(self, name, page, n, byte):
        self.cmd("fill %s %d %d %d" % (name, page, n, byte))

    def read(self, name, page, n=1):
        return int(self.cmd("read %s %d %d" % (name, page, n)))

    def sysread(self, name, page, n):
        return int(self.cmd("sysread %s %d %d" % (name, page, n)))

    def checksum(self, name, timeout=60):
        return int(self.cmd("checksum " + name, timeout=timeout), 16)

    def threads(self, nthreads, name, page, n, byte=None, timeout=30):
        line = "threads %d %s %d %d" % (nthreads, name, page, n)
        if byte is not None:
            line += " %d" % byte
        self.cmd(line, timeout=timeout)

    def spin(self, nthreads, name, page, n):
        self.cmd("spin %d %s %d %d" % (nthreads, name, page, n))

    def unspin(self, timeout=30):
        self.cmd("unspin", timeout=timeout)

    def spincount(self):
        return int(self.cmd("spincount"))

    def wait_spinning(self, minimum=1, timeout=10):
        """Wait until the spinners completed at least `minimum` passes."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.spincount()
            if c >= minimum:
                return c
            if time.monotonic() > deadline:
                raise TargetError("spinners made only %d passes" % c)
            time.sleep(0.005)

    # -- blocking calls --------------------------------------------------
    def block(self, kind, timeout=10):
        """Start `block KIND`; returns the text after 'ok blocking'
        ('' or the port for accept).  Read the result with done()."""
        rest = self.cmd("block " + kind, timeout=timeout)
        if not rest.startswith("blocking"):
            raise TargetError("unexpected block reply %r" % rest)
        return rest[len("blocking"):].strip()

    def done(self, timeout=10):
        """Read a 'done KIND RESULT ERRNO [EXTRA]' line.

        Returns (kind, result, errno, extra) with extra a str or None."""
        ln = self.line(timeout)
        parts = ln.split(" ", 4)
        if len(parts) < 4 or parts[0] != "done":
            raise TargetError("expected 'done ...', got %r" % ln)
        return parts[1], int(parts[2]), int(parts[3]), \
            (parts[4] if len(parts) > 4 else None)

    def block_accept(self, timeout=10):
        """Start `block accept`; returns the port to connect to."""
        return int(self.block("accept", timeout))

    def feed_fd3(self, data):
        """Write bytes (or str) to the fd-3 pipe."""
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd3_w, data)

    def syscall_state(self):
        """First field of /proc/PID/syscall of the main thread: a syscall
        number as str, 'running', or None if unreadable."""
        try:
            with open("/proc/%d/syscall" % self.pid) as f:
                return f.read().split()[0]
        except (OSError, IndexError):
            return None

    def wait_blocked(self, nr=None, timeout=10):
        """Wait until the main thread sleeps in a syscall other than the
        command loop's read(0, ...).  With nr, wait for that syscall number
        (e.g. 0 read, 35 nanosleep, 202 futex, 43 accept).
        Needs ptrace access to the target (we are its parent)."""
        deadline = time.monotonic() + timeout
        path = "/proc/%d/syscall" % self.pid
        while True:
            try:
                with open(path) as f:
                    fields = f.read().split()
                with open("/proc/%d/stat" % self.pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError as e:
                raise TargetError("cannot read %s: %s" % (path, e)) from None
            if fields and fields[0] not in ("running", "-1") and state in "SD":
                idle = fields[0] == "0" and int(fields[1], 16) == 0
                if not idle and (nr is None or int(fields[0]) == nr):
                    return int(fields[0])
            if time.monotonic() > deadline:
                raise TargetError("target not blocked after %.1fs (%s)"
                                  % (timeout, " ".join(fields[:2])))
            time.sleep(0.002)

    # -- signals, processes, fds -----------------------------------------
    def signals(self, sig, restart=False):
        self.cmd("signals %d%s" % (int(sig), " restart" if restart else ""))

    def sigcount(self, sig):
        return int(self.cmd("sigcount %d" % int(sig)))

    def sigaction(self, sig):
        """(handler, flags, mask) of sig, as the kernel holds them."""
        return tuple(self.cmd("sigaction %d" % int(sig)).split())

    def altstack(self, set_one=False):
        return tuple(self.cmd("altstack set" if set_one else "altstack").split())

    def sigmask(self):
        return int(self.cmd("sigmask"), 16)

    def fork(self):
        pid = int(self.cmd("fork"))
        self.children.add(pid)
        return pid

    def forkwrite(self, name, page, byte=None):
        line = "forkwrite %s %d" % (name, page)
        if byte is not None:
            line += " %d" % byte
        pid = int(self.cmd(line))
        self.children.add(pid)
        return pid

    def exec(self, timeout=10):
        """exec the target again; returns the pid from the new ready line.
        Region records are dropped (the new image has no regions)."""
        self.cmd("exec")
        pid = self._expect_ready(timeout)
        if pid != self.pid:
            raise TargetError("pid changed across exec: %d -> %d"
                              % (self.pid, pid))
        self.regions.clear()
        return pid

    def close_fds(self):
        self.cmd("close-fds")

    def fds(self):
        return int(self.cmd("fds"))

    def getpid(self):
        return int(self.cmd("pid"))

    def exit(self, code=0, timeout=10):
        """Ask the target to _exit(code); returns its exit status."""
        self.cmd("exit %d" % code)
        return self.wait(timeout)

    def forkserve(self, tmpdir):
        """Fork a child that serves commands of its own (regions included),
        over two fifos in tmpdir; returns it as a ChildTarget."""
        n = len(self.children)
        fin = os.path.join(tmpdir, "child%d-%d.in" % (self.pid, n))
        fout = os.path.join(tmpdir, "child%d-%d.out" % (self.pid, n))
        os.mkfifo(fin, 0o600)
        os.mkfifo(fout, 0o600)
        # O_RDWR: neither open blocks, and neither end ever sees EOF early
        w = os.open(fin, os.O_RDWR | os.O_CLOEXEC)
        r = os.open(fout, os.O_RDWR | os.O_CLOEXEC)
        pid = int(self.cmd("forkserve %s %s" % (fin, fout)))
        self.children.add(pid)
        return ChildTarget(pid, w, r, dict(self.regions))

    def forkloop(self, n):
        return int(self.cmd("forkloop %d" % n))

    def ownuffd(self, name):
        """Give region name to a userfaultfd of the target's own (async
        write-protect, all pages protected); returns its fd number."""
        return int(self.cmd("ownuffd %s" % name))

    def ownwritten(self, name):
        """Pages of name written since ownuffd, as the target's own
        userfaultfd sees them."""
        return {int(x) for x in self.cmd("ownwritten %s" % name).split()}

    # -- lifetime --------------------------------------------------------
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TargetError("target did not exit within %.1fs"
                              % timeout) from None

    def kill_children(self):
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.children.clear()

    def kill(self):
        """SIGKILL the target (and its fork children) and reap it."""
        self.kill_children()
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_pipes()

    def close(self, timeout=5):
        """Close stdin (the target exits on EOF); kill it if it lingers.
        Returns the exit status."""
        if self.proc is None:
            return None
        self.kill_children()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._close_pipes()
        return rc

    def _close_pipes(self):
        if self.fd3_w is not None:
            try:
                os.close(self.fd3_w)
            except OSError:
                pass
            self.fd3_w = None
        for f in (self.proc.stdin, self.proc.stdout) if self.proc else ():
            try:
                f.close()
            except OSError:
                pass


def _fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


class ChildTarget(Target):
    """A child forked by Target.forkserve: the same protocol, over fifos."""

    def __init__(self, pid, w, r, regions):
        self.binary = None
        self.proc = None
        self.fd3_w = None
        self.regions = regions
        self.children = set()
        self._buf = b""
        self._eof = False
        self._in, self._out = w, r
        self.pid = None
        self.pid = self._expect_ready(10)
        if self.pid != pid:
            raise TargetError("child said ready %d, forked %d" % (self.pid, pid))

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
        except OSError:
            return False

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._close_pipes()

    def close(self, timeout=5):
        self.kill()

    def _close_pipes(self):
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass
        self._in = self._out = -1
