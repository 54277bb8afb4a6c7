"""Attaching to and detaching from a live target: `start` and `stop` seize
every thread, inject userfaultfd()/fcntl()/close() and must leave the target
exactly as they found it (blocked calls, signals, mask, fds, code, threads),
and every error must be one clear line with the documented exit code."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from common import TargetError, check, check_eq, need_root

UFFD_LINK = 'anon_inode:[userfaultfd]'
EXIT_ERROR, EXIT_PERM, EXIT_UNSUPPORTED, EXIT_GONE = 2, 3, 4, 5
KIND = {EXIT_ERROR: 'error', EXIT_PERM: 'permission', EXIT_UNSUPPORTED: 'unsupported',
        EXIT_GONE: 'gone'}
RTSIG = 40              # a realtime signal: every kill() queues one instance
SLEEP_MS = 1500         # blocking calls with a timeout
SLACK_MS = 450          # a restart from scratch would overshoot by >= the pre-delay
PRE_DELAY = 0.6         # seconds into the blocking call before start/stop runs


# -- looking at the target from outside -------------------------------------

def fd_dir(pid):
    """/proc/PID/fd, or a live thread's when the main thread has exited
    (the fd table is gone from the zombie main thread's entry)."""
    if proc_state(pid) != 'Z':
        return f'/proc/{pid}/fd'
    for tid in os.listdir(f'/proc/{pid}/task'):
        if proc_state(pid, tid) != 'Z':
            return f'/proc/{pid}/task/{tid}/fd'
    return f'/proc/{pid}/fd'


def fd_table(pid):
    """{fd: link target} of every open fd of pid."""
    table = {}
    d = fd_dir(pid)
    for name in os.listdir(d):
        try:
            table[int(name)] = os.readlink(f'{d}/{name}')
        except FileNotFoundError:
            pass
    return table


def uffds(pid):
    return sorted(fd for fd, link in fd_table(pid).items() if link == UFFD_LINK)


def proc_state(pid, tid=None):
    path = f'/proc/{pid}/stat' if tid is None else f'/proc/{pid}/task/{tid}/stat'
    with open(path) as f:
        return f.read().rsplit(')', 1)[1].split()[0]


def wait_state(pid, want, timeout=5):
    deadline = time.monotonic() + timeout
    while proc_state(pid) != want:
        check(time.monotonic() < deadline, f'pid {pid}: state {proc_state(pid)}, want {want}')
        time.sleep(0.005)


def tids(pid):
    return sorted(int(t) for t in os.listdir(f'/proc/{pid}/task'))


def signal_status(pid):
    """Per thread: blocked/ignored/caught masks and pending signals."""
    out = {}
    for tid in tids(pid):
        with open(f'/proc/{pid}/task/{tid}/status') as f:
            out[tid] = {k: v.strip() for k, v in (ln.split(':', 1) for ln in f)
                        if k in ('SigPnd', 'ShdPnd', 'SigBlk', 'SigIgn', 'SigCgt')}
    return out


def uw_vmas(pid):
    """Header lines of the VMAs whose VmFlags contain 'uw' (uffd-wp registered)."""
    hits, head = [], None
    with open(f'/proc/{pid}/smaps') as f:
        for ln in f:
            if ln.startswith('VmFlags:'):
                if 'uw' in ln.split()[1:]:
                    hits.append(head)
            elif not ln[0].isupper():
                head = ln.strip()
    return hits


def code_head(pid, n=16):
    """First n bytes of the executable's first r-xp mapping, via /proc/PID/mem."""
    exe = os.readlink(f'/proc/{pid}/exe')
    with open(f'/proc/{pid}/maps') as f:
        for ln in f:
            parts = ln.split()
            if parts[1] == 'r-xp' and len(parts) >= 6 and parts[5] == exe:
                start = int(parts[0].split('-')[0], 16)
                break
        else:
            raise AssertionError(f'no r-xp mapping of {exe} in pid {pid}')
    with open(f'/proc/{pid}/mem', 'rb') as m:
        m.seek(start)
        return start, m.read(n)


def runtime_ns(pid, tid):
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


def free_pid():
    with open('/proc/sys/kernel/pid_max') as f:
        top = int(f.read())
    return next(p for p in range(top - 1, 300, -1) if not os.path.exists(f'/proc/{p}'))


def no_output(t, secs):
    """The target prints nothing for secs seconds."""
    try:
        ln = t.line(timeout=secs)
    except TargetError as e:
        if 'timeout' in str(e):
            return
        raise
    raise AssertionError(f'target printed {ln!r} while it should be stopped')


# -- running dirtytrack -----------------------------------------------------

def start(ctx, t, already=False):
    before = uffds(t.pid)
    doc = ctx.json('start', t.pid)
    check_eq(doc['pid'], t.pid, 'start: pid')
    check_eq(doc['already_tracked'], already, 'start: already_tracked')
    fd = doc['uffd_fd']
    check(fd >= 1000, f'start: uffd_fd {fd} < 1000')
    check_eq(uffds(t.pid), [fd], 'userfaultfd fds in the target after start')
    if already:
        check_eq(before, [fd], 'uffd fd changed by a second start')
    return doc


def stop(ctx, t, was=True):
    doc = ctx.json('stop', t.pid)
    check_eq(doc, {'pid': t.pid, 'was_tracked': was}, 'stop -j')
    check_eq(uffds(t.pid), [], 'userfaultfd fds in the target after stop')
    return doc


def fails(ctx, args, code, cmd, *words, env=None, user=None):
    """dirtytrack -j ARGS exits `code` with one stderr line 'dirtytrack CMD: msg'
    (or 'dirtytrack: msg' when cmd is None) naming every word, and the same
    message as a JSON error document on stdout."""
    shown = ' '.join(map(str, args))
    rc, out, err = ctx.run('-j', *args, env=env, user=user)
    check_eq(rc, code, f'exit code of `dirtytrack -j {shown}` (stderr {err.strip()!r})')
    lines = err.splitlines()
    check(len(lines) == 1, f'`{shown}`: want exactly one stderr line, got {len(lines)}: '
          f'{lines[:3]!r}{"..." if len(lines) > 3 else ""}')
    prefix = f'dirtytrack {cmd}: ' if cmd else 'dirtytrack: '
    check(lines[0].startswith(prefix), f'`{shown}`: stderr {lines[0]!r} lacks prefix {prefix!r}')
    msg = lines[0][len(prefix):]
    for w in map(str, words):
        check(w.lower() in msg.lower(), f'`{shown}`: message {msg!r} does not mention {w!r}')
    try:
        doc = json.loads(out)
    except ValueError:
        raise AssertionError(f'`{shown}`: stdout is not a JSON document: {out!r}') from None
    check_eq(doc, {'error': {'kind': KIND[code], 'exit': code, 'message': msg}},
             f'`{shown}`: JSON error')
    return msg


class Soft:
    """Run independent checks, report every failure at the end."""

    def __init__(self):
        self.errors = []

    def __call__(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except AssertionError as e:
            self.errors.append(str(e))
            return None

    def done(self):
        if self.errors:
            raise AssertionError(f'{len(self.errors)} failed: ' + ' | '.join(self.errors))


# -- 1. injection while the target sits in a blocking call ------------------

def blocked_rounds(ctx, kind, finish):
    """Round 1: `start` while the target blocks in `kind`; round 2: `stop`
    while it blocks again.  finish(t, block_reply) unblocks it if needed and
    checks the done line."""
    with ctx.target() as t:
        for op in (start, stop):
            reply = t.block(kind)
            t.wait_blocked()
            time.sleep(PRE_DELAY)
            t0 = time.monotonic()
            op(ctx, t)
            took = time.monotonic() - t0
            check(PRE_DELAY + took < SLEEP_MS / 1000 - 0.2,
                  f'{op.__name__} took {took:.2f}s: it did not run inside the blocking call')
            t.wait_blocked()    # still inside the call after the detach
            finish(t, reply)
            check_eq(t.getpid(), t.pid, 'target answers after the blocking call')


def test_blocked_read(ctx):
    def finish(t, _):
        t.feed_fd3('hello')
        check_eq(t.done(), ('read', 5, 0, 'hello'), 'done line of block read')
    blocked_rounds(ctx, 'read', finish)


def timed_finish(kind, result, errno_):
    def finish(t, _):
        k, res, err, elapsed = t.done(timeout=10)
        check_eq((k, res, err), (kind, result, errno_), f'block {kind}: result, errno')
        ms = int(elapsed)
        check(SLEEP_MS <= ms < SLEEP_MS + SLACK_MS,
              f'block {kind}:{SLEEP_MS} took {ms} ms (woke early, or restarted from scratch)')
    return finish


def test_blocked_nanosleep(ctx):
    blocked_rounds(ctx, f'nanosleep:{SLEEP_MS}', timed_finish('nanosleep', 0, 0))


def test_blocked_futex(ctx):
    blocked_rounds(ctx, f'futex:{SLEEP_MS}', timed_finish('futex', -1, 110))   # ETIMEDOUT


def test_blocked_accept(ctx):
    def finish(t, port):
        with socket.create_connection(('127.0.0.1', int(port)), timeout=5):
            k, fd, err, _ = t.done()
        check_eq((k, err), ('accept', 0), 'block accept: errno')
        check(fd >= 0, f'accept returned {fd}')
    blocked_rounds(ctx, 'accept', finish)


# -- 2. signals and stop state ----------------------------------------------

def test_signals_delivered_exactly_once(ctx):
    with ctx.target() as t:
        t.signals(RTSIG)
        sent, refused, stop_ev = [0], [0], threading.Event()

        def sender():
            while not stop_ev.is_set():
                for _ in range(25):
                    try:
                        os.kill(t.pid, RTSIG)
                        sent[0] += 1
                    except BlockingIOError:     # queue full (RLIMIT_SIGPENDING)
                        refused[0] += 1
                time.sleep(0.0002)

        th = threading.Thread(target=sender)
        th.start()
        try:
            time.sleep(0.05)
            for _ in range(25):
                start(ctx, t)
                stop(ctx, t)
        finally:
            stop_ev.set()
            th.join()
        check(sent[0] > 100, f'only {sent[0]} signals sent')
        deadline = time.monotonic() + 5
        while t.sigcount(RTSIG) < sent[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        check_eq(t.sigcount(RTSIG), sent[0], f'handler runs (sent {sent[0]}, refused {refused[0]})')
        for tid, st in signal_status(t.pid).items():
            check_eq((st['SigPnd'], st['ShdPnd']), ('0' * 16,) * 2, f'pending signals of {tid}')


def test_sigstop_state_kept(ctx):
    with ctx.target() as t:
        os.kill(t.pid, signal.SIGSTOP)
        wait_state(t.pid, 'T')
        t.send('pid')           # answered only once the target runs again
        for op in (start, stop):
            op(ctx, t)
            check_eq(proc_state(t.pid), 'T', f'state right after {op.__name__}')
            no_output(t, 0.3)
            check_eq(proc_state(t.pid), 'T', f'state 0.3 s after {op.__name__}')
        os.kill(t.pid, signal.SIGCONT)
        check_eq(t.reply(), str(t.pid), 'reply to the command sent while stopped')
        check_eq(t.getpid(), t.pid, 'target answers after SIGCONT')
        check(proc_state(t.pid) in 'SR', f'state {proc_state(t.pid)} after SIGCONT')


# -- 3. the target is left as it was found ----------------------------------

def test_target_left_as_found(ctx):
    blocked = {signal.SIGUSR1, signal.SIGRTMIN + 6}
    with ctx.target(preexec=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, blocked)) as t:
        t.map('a', 'anon', 64)
        t.fill('a', 0, 64, 0x5A)
        t.write('a', 3, 5, 0x11)

        def snap():
            return {'sigmask': t.sigmask(), 'signals': signal_status(t.pid),
                    'code': code_head(t.pid), 'checksum': t.checksum('a'),
                    'fds': t.fds(), 'fd_table': fd_table(t.pid)}

        orig = snap()
        check_eq(orig['sigmask'], (1 << (signal.SIGUSR1 - 1)) | (1 << (signal.SIGRTMIN + 5)),
                 'sigmask set up by the test')
        check_eq(uw_vmas(t.pid), [], 'uw VMAs before start')

        fd = start(ctx, t)['uffd_fd']
        now = snap()
        check_eq(now['fd_table'], {**orig['fd_table'], fd: UFFD_LINK}, 'fd table while tracked')
        check_eq(now['fds'], orig['fds'] + 1, 'fd count while tracked')
        check(uw_vmas(t.pid), 'no VMA registered for uffd-wp while tracked')
        for key in ('sigmask', 'signals', 'code', 'checksum'):
            check_eq(now[key], orig[key], f'{key} while tracked')
        t.write('a', 0, 2, 0x77)        # tracked writes resolve in the kernel
        check_eq(t.read('a', 0, 2), 2 * 0x77, 'read back while tracked')
        t.write('a', 0, 2, 0x5A)

        stop(ctx, t)
        check_eq(snap(), orig, 'target state after stop')
        check_eq(uw_vmas(t.pid), [], 'VMAs still registered for uffd-wp after stop')
        check_eq(ctx.json('status', t.pid)['tracking'], 'off', 'status after stop')


# -- 4. idempotence ----------------------------------------------------------

def test_start_stop_idempotent(ctx):
    with ctx.target() as t:
        first = start(ctx, t)
        second = start(ctx, t, already=True)
        check_eq(second['uffd_fd'], first['uffd_fd'], 'uffd fd of the second start')
        rc, out, _ = ctx.run('start', t.pid)
        check_eq(rc, 0, 'third start (text)')
        check('already tracked' in out, f'text start output: {out!r}')
        stop(ctx, t, was=True)
        stop(ctx, t, was=False)
        check_eq(ctx.run('stop', t.pid)[0], 0, 'third stop (text)')
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after stops')


# -- 5. multi-threaded target ------------------------------------------------

def test_multithreaded_spinners(ctx):
    with ctx.target() as t:
        t.map('s', 'anon', 16)
        t.spin(4, 's', 0, 16)
        t.wait_spinning(1)
        threads = tids(t.pid)
        check_eq(len(threads), 5, 'threads of the target')

        def all_running(what):
            c0 = t.spincount()
            r0 = {tid: runtime_ns(t.pid, tid) for tid in threads[1:]}
            time.sleep(0.3)
            check(t.spincount() > c0, f'spinners made no progress {what}')
            for tid in threads[1:]:
                check(runtime_ns(t.pid, tid) > r0[tid], f'thread {tid} did not run {what}')
            check_eq(tids(t.pid), threads, f'threads {what}')
            for tid in threads:
                check(proc_state(t.pid, tid) in 'RS', f'thread {tid} state {what}')

        for i in range(3):
            start(ctx, t)
            all_running(f'after start #{i + 1}')
            stop(ctx, t)
            all_running(f'after stop #{i + 1}')
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after stop')
        t.unspin()
        check_eq(t.getpid(), t.pid, 'target answers')


# -- 6. bad input and vanishing targets --------------------------------------

def test_bad_pid_arguments(ctx):
    soft = Soft()
    for cmd in ('start', 'stop', 'status'):
        soft(fails, ctx, [cmd, 'abc'], EXIT_ERROR, cmd, 'abc', 'process id')
        soft(fails, ctx, [cmd, '12x'], EXIT_ERROR, cmd, '12x')
        soft(fails, ctx, [cmd, '0'], EXIT_ERROR, cmd, "'0'")
        soft(fails, ctx, [cmd], EXIT_ERROR, cmd, 'missing PID')
        pid = free_pid()
        soft(fails, ctx, [cmd, pid], EXIT_GONE, cmd, pid, 'no such process')
    soft.done()


def test_zombie_target(ctx):
    child = subprocess.Popen(['true'])
    try:
        wait_state(child.pid, 'Z')
        soft = Soft()
        for cmd in ('start', 'stop', 'status'):
            soft(fails, ctx, [cmd, child.pid], EXIT_GONE, cmd, child.pid, 'zombie')
        soft.done()
    finally:
        child.wait()


def test_unprivileged_user(ctx):
    need_root('running dirtytrack as another user (setpriv)')
    with ctx.target() as t:
        before = fd_table(t.pid)
        soft = Soft()
        for cmd in ('start', 'stop', 'status'):
            soft(fails, ctx, [cmd, t.pid], EXIT_PERM, cmd, t.pid, user=65534)
        soft.done()
        check_eq(fd_table(t.pid), before, 'fd table after refused start')
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after refused start')
        check_eq(t.getpid(), t.pid, 'target answers')
        # and the same user's refusal does not disturb a tracked target
        fd = start(ctx, t)['uffd_fd']
        fails(ctx, ['stop', t.pid], EXIT_PERM, 'stop', t.pid, user=65534)
        check_eq(uffds(t.pid), [fd], 'uffd fd after refused stop')
        stop(ctx, t)


def test_target_exits(ctx):
    # exits (and is reaped) while tracked
    with ctx.target() as t:
        start(ctx, t)
        check_eq(t.exit(0), 0, 'target exit status')
        for cmd in ('status', 'stop', 'start'):
            fails(ctx, [cmd, t.pid], EXIT_GONE, cmd, t.pid)
    # killed while tracked, not yet reaped
    with ctx.target() as t:
        start(ctx, t)
        os.kill(t.pid, signal.SIGKILL)
        wait_state(t.pid, 'Z')
        for cmd in ('status', 'stop', 'start'):
            fails(ctx, [cmd, t.pid], EXIT_GONE, cmd, t.pid, 'zombie')
    # exits in the middle of a running watch
    with ctx.target() as t:
        start(ctx, t)
        w = subprocess.Popen([ctx.bin, 'watch', '--interval', '50', str(t.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ctx.env)
        try:
            time.sleep(0.4)
            check(w.poll() is None, f'watch ended early: {w.poll()}')
            t.exit(0)
            _, err = w.communicate(timeout=10)
        finally:
            if w.poll() is None:
                w.kill()
                w.communicate()
        check_eq(w.returncode, EXIT_GONE, f'watch exit code when the target exits ({err.strip()!r})')
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith('dirtytrack watch: '),
              f'watch stderr: {lines!r}')


def test_start_races_exit(ctx):
    """The target exits while start attaches: start either wins (0) or the
    process is gone (5, one line, not blamed on exec); it never hangs."""
    soft = Soft()
    for i in range(100):
        with ctx.target() as t:
            t.send(f'block nanosleep:{i % 10}')    # exit 0..9 ms from now
            t.send('exit 0')
            try:
                rc, out, err = ctx.run('-j', 'start', t.pid, timeout=5)
            except subprocess.TimeoutExpired:
                soft.errors.append(f'start hung (> 5 s) on a target exiting after {i % 10} ms')
                break
            soft(check, rc in (0, EXIT_GONE), f'start racing exit: exit {rc}: {err.strip()!r}')
            if rc == EXIT_GONE:
                soft(check_eq, len(err.splitlines()), 1, f'stderr lines: {err!r}')
                soft(check_eq, json.loads(out)['error']['kind'], 'gone', 'error kind')
                soft(check, 'exec' not in err, f'exit reported as exec: {err.strip()!r}')
            check_eq(t.wait(), 0, 'target exit status')
    soft.done()


LEADER_EXITS = """
import ctypes, threading, time
threading.Thread(target=lambda: [time.sleep(0.01) for _ in iter(int, 1)]).start()
print('ready', flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_leader_thread_exited(ctx):
    """A live process whose main thread called pthread_exit(): its leader is
    a zombie thread, but the process runs and can be tracked."""
    p = subprocess.Popen([sys.executable, '-c', LEADER_EXITS], stdout=subprocess.PIPE, text=True)
    try:
        check_eq(p.stdout.readline().strip(), 'ready', 'helper')
        deadline = time.monotonic() + 5
        while proc_state(p.pid) != 'Z':
            check(time.monotonic() < deadline, 'leader thread did not exit')
            time.sleep(0.01)
        rc, out, err = ctx.run('-j', 'start', p.pid, timeout=10)
        check_eq(rc, 0, f'start on a process whose leader exited ({err.strip()!r})')
        fd = json.loads(out)['uffd_fd']
        check_eq(uffds(p.pid), [fd], 'uffd fds after start')
        rc, out, err = ctx.run('-j', 'stop', p.pid, timeout=10)
        check_eq((rc, json.loads(out)), (0, {'pid': p.pid, 'was_tracked': True}), 'stop')
        check_eq(uffds(p.pid), [], 'uffd fds after stop')
        check(p.poll() is None, 'helper died')
    finally:
        p.kill()
        p.wait()


def test_exec_loses_tracking(ctx):
    with ctx.target() as t:
        start(ctx, t)
        t.exec()
        check_eq(uffds(t.pid), [], 'uffd fds after exec (O_CLOEXEC)')
        doc = ctx.json('status', t.pid)
        check_eq(doc['tracking'], 'lost', f'status after exec: {doc}')
        check('exec' in doc.get('reason', ''), f'status reason: {doc}')
        fails(ctx, ['watch', '--count', '1', '--interval', '100', t.pid], EXIT_GONE, 'watch',
              t.pid, 'exec')
        check_eq(uffds(t.pid), [], 'uffd fds after the failed watch')


def test_exec_watch_first(ctx):
    """The same, asked the other way round: watch first, then status."""
    with ctx.target() as t:
        start(ctx, t)
        t.exec()
        fails(ctx, ['watch', '--count', '1', '--interval', '100', t.pid], EXIT_GONE, 'watch',
              t.pid, 'exec')
        doc = ctx.json('status', t.pid)
        check_eq(doc['tracking'], 'lost', f'status after exec and watch: {doc}')
        check('exec' in doc.get('reason', ''), f'status reason: {doc}')


MISSING = [  # simulated feature, name in `check`, word the start error must use
    ('wp_async', 'UFFD_FEATURE_WP_ASYNC', 'WP_ASYNC'),
    ('userfaultfd', 'userfaultfd (user-mode only)', 'userfaultfd'),
    ('pagemap_scan', 'PAGEMAP_SCAN', 'PAGEMAP_SCAN'),
]


def test_simulated_missing_features(ctx):
    doc = ctx.json('check')
    check(doc['usable'], f'check without simulation: {doc}')
    check(all(f['ok'] for f in doc['features'] if f['required']), f'check: {doc}')
    soft = Soft()
    with ctx.target() as t:
        before = fd_table(t.pid)
        for feature, name, word in MISSING:
            env = {'DIRTYTRACK_SIMULATE_MISSING': feature}
            soft(fails, ctx, ['start', t.pid], EXIT_UNSUPPORTED, 'start', word, env=env)
            soft(check_eq, fd_table(t.pid), before, f'fd table after start without {feature}')
            soft(check_eq, uw_vmas(t.pid), [], f'uw VMAs after start without {feature}')
            soft(check_eq, ctx.json('status', t.pid)['tracking'], 'off',
                 f'status after start without {feature}')
            doc = ctx.json('check', expect=EXIT_UNSUPPORTED, env=env)
            soft(check_eq, doc['usable'], False, f'check usable without {feature}')
            feats = {f['name']: f for f in doc['features']}
            soft(check_eq, (feats[name]['ok'], feats[name]['required']), (False, True),
                 f'check: {name} without {feature}')
        check_eq(t.getpid(), t.pid, 'target answers')
        # the simulation is per invocation: a real start still works
        start(ctx, t)
        stop(ctx, t)
    soft.done()


# -- 7. unknown options and commands ----------------------------------------

def test_unknown_option(ctx):
    soft = Soft()
    with ctx.target() as t:
        for cmd in ('start', 'stop', 'status', 'watch'):
            soft(fails, ctx, [cmd, '--bogus', t.pid], EXIT_ERROR, cmd, '--bogus')
            soft(fails, ctx, [cmd, '-Z', t.pid], EXIT_ERROR, cmd, '-Z')
            soft(fails, ctx, [cmd, t.pid, 'extra'], EXIT_ERROR, cmd, 'extra')
        soft(fails, ctx, ['stop', '--interval', '5', t.pid], EXIT_ERROR, 'stop', '--interval')
        soft(check_eq, uffds(t.pid), [], 'uffd fds after rejected commands')
    soft.done()


def test_unknown_command(ctx):
    soft = Soft()
    soft(fails, ctx, ['frobnicate', '1'], EXIT_ERROR, None, 'frobnicate')
    soft(fails, ctx, ['--bogus', 'start', '1'], EXIT_ERROR, None, '--bogus')
    soft.done()
