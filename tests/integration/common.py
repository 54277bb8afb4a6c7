"""Shared helpers for the integration tests: run the real dirtytrack binary
against real target processes (tests/target/dt-target.c)."""
import json
import os
import subprocess
import time

from target import Target, TargetError  # noqa: F401  (re-exported)

PAGE = 4096


class Skip(Exception):
    """A test that cannot run here (raise with the reason): counted apart."""


def need_root(what):
    if os.geteuid() != 0:
        raise Skip(f'needs root: {what}')


def second_user(name='dt-hostile'):
    """(uid, gid) of an unprivileged user of the tests' own, created when missing."""
    import pwd
    need_root(f'creates the user {name}')
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin',
                        name], check=True, capture_output=True)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def as_user(uid, gid):
    """preexec for a Target (or Popen): become uid/gid for good."""
    def become():
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    return become


class Ctx:
    def __init__(self, bin_path, target_path, tmpdir):
        self.bin = os.path.abspath(bin_path)
        self.target_bin = os.path.abspath(target_path)
        self.tmp = tmpdir
        # each test gets its own state directory: no cross-talk
        self.env = dict(os.environ, DIRTYTRACK_STATE_DIR=os.path.join(tmpdir, 'state'))

    def target(self, **kw):
        return Target(self.target_bin, **kw)

    def run(self, *args, env=None, user=None, group=None, timeout=60):
        """Run dirtytrack (as uid user, gid group or user); returns (exit code,
        stdout, stderr)."""
        cmd = [self.bin, *map(str, args)]
        if user is not None:
            group = user if group is None else group
            cmd = ['setpriv', f'--reuid={user}', f'--regid={group}', '--clear-groups', *cmd]
        e = dict(self.env)
        if env:
            e.update(env)
        r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
        # under `make check-asan` any sanitizer report fails the test
        if 'Sanitizer' in r.stderr or 'runtime error:' in r.stderr:
            raise AssertionError(f'sanitizer report from dirtytrack {" ".join(map(str, args))}:\n'
                                 + r.stderr)
        return r.returncode, r.stdout, r.stderr

    def json(self, *args, expect=0, **kw):
        """Run with -j, check the exit code, return the parsed document."""
        rc, out, err = self.run('-j', *args, **kw)
        if rc != expect:
            raise AssertionError(f'dirtytrack {" ".join(map(str, args))}: exit {rc}, '
                                 f'expected {expect}; stderr: {err.strip()}')
        return json.loads(out)

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        if rc != 0:
            raise AssertionError(f'dirtytrack {" ".join(map(str, args))}: exit {rc}: {err.strip()}')
        return out


def pages_of(start, end):
    return set(range(start, end, PAGE))


def ranges_to_pages(vmas_or_ranges):
    s = set()
    for r in vmas_or_ranges:
        s |= pages_of(int(r[0], 0) if isinstance(r[0], str) else r[0],
                      int(r[1], 0) if isinstance(r[1], str) else r[1])
    return s


def check(cond, msg=''):
    if not cond:
        raise AssertionError(msg)


def check_eq(got, want, what=''):
    if got != want:
        raise AssertionError(f'{what}: got {got!r}, want {want!r}')


def wait_for(cond, timeout, what):
    """Poll cond() until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.02)


def holders(target_pid=None):
    """Live holder processes (dirtytrack __holder PID START), optionally of
    one target: {holder pid: target pid}.  Zombies waiting for init to reap
    them hold nothing and do not count."""
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
            with open(f'/proc/{name}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if len(argv) < 3 or argv[1] != b'__holder' or state in 'ZX':
            continue
        tp = int(argv[2])
        if target_pid is None or tp == target_pid:
            found[int(name)] = tp
    return found


def uffd_fds(pid):
    """The userfaultfd fds in pid's fd table."""
    out = []
    d = f'/proc/{pid}/fd'
    for name in os.listdir(d):
        try:
            if os.readlink(f'{d}/{name}') == 'anon_inode:[userfaultfd]':
                out.append(int(name))
        except OSError:
            pass
    return sorted(out)
