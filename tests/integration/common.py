"""Shared helpers for the integration tests: run the real dirtytrack binary
against real target processes (tests/target/dt-target.c)."""
import json
import os
import subprocess

from target import Target, TargetError  # noqa: F401  (re-exported)

PAGE = 4096


class Skip(Exception):
    """This test cannot run here; the message says why (run.py counts it)."""


def need_root(what):
    """Skip unless we are root: `what` is what the test does that needs it."""
    if os.geteuid() != 0:
        raise Skip(f'needs root: {what}')


class Ctx:
    def __init__(self, bin_path, target_path, tmpdir):
        self.bin = os.path.abspath(bin_path)
        self.target_bin = os.path.abspath(target_path)
        self.tmp = tmpdir
        # each test gets its own state directory: no cross-talk
        self.env = dict(os.environ, DIRTYTRACK_STATE_DIR=os.path.join(tmpdir, 'state'))

    def target(self, **kw):
        return Target(self.target_bin, **kw)

    def run(self, *args, env=None, user=None, timeout=60):
        """Run dirtytrack; returns (exit code, stdout, stderr)."""
        cmd = [self.bin, *map(str, args)]
        if user is not None:
            cmd = ['setpriv', f'--reuid={user}', f'--regid={user}', '--clear-groups', *cmd]
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
