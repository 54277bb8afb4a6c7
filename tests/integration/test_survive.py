"""The target survives anything that happens to dirtytrack: kills at named
fault points and at random moments, a target that exits or unmaps memory
mid-dump, a failed dump, a signal to the dump, and its own signal handlers
are kept.  After every death the next dump is correct or refused with a
clear reason: no sequence of kills loses a write."""
import os
import random
import signal
import subprocess
import time

from common import PAGE, check, check_eq, holders, uffd_fds
from test_attach import code_head, signal_status, uw_vmas
from test_dump import (Mem, PE_PRESENT, check_chain, check_no_tmp, check_regions, dump, refuse,
                       resolve)
from test_holder import fd_snapshot, wait_no_holder

EXIT_ERROR, EXIT_GONE, EXIT_INTERRUPTED = 2, 5, 130
HANDLED = (signal.SIGTRAP, signal.SIGSEGV, signal.SIGUSR1, signal.SIGCHLD)


def target_state(t):
    return {'code': code_head(t.pid), 'signals': signal_status(t.pid), 'fds': fd_snapshot(t.pid),
            'actions': {s.name: t.sigaction(s) for s in HANDLED}, 'altstack': t.altstack(),
            'mask': t.sigmask()}


def settled(pid, timeout=10):
    """Wait until nobody traces pid: a holder finishes the injection it was
    doing when the command that asked for it was killed."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        with open(f'/proc/{pid}/status') as f:
            tracer = int(dict(ln.split(':', 1) for ln in f)['TracerPid'])
        quiet = quiet + 1 if tracer == 0 else 0
        check(time.monotonic() < deadline, f'process {pid} still traced by {tracer}')
        time.sleep(0.01)


def live_equals_chain(t, m, d):
    """The chain resolves to what the target holds now, for every test page
    (checked by reading the target's memory ourselves)."""
    res = resolve(d)
    with open(f'/proc/{t.pid}/mem', 'rb', buffering=0) as f:
        for name in m.kind:
            lo, hi = m.span(name)
            f.seek(lo)
            live = f.read(hi - lo)
            for i in range((hi - lo) // PAGE):
                got = res.get(lo + i * PAGE)
                want = live[i * PAGE:(i + 1) * PAGE]
                check(got == want or (got is None and want == bytes(PAGE)),
                      f'{d}: region {name} page {i} differs from the live target')


def test_signal_dispositions_kept(ctx):
    with ctx.target() as t:
        for s in HANDLED:
            t.signals(s)
        t.altstack(set_one=True)
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        orig = target_state(t)
        d = os.path.join(ctx.tmp, 'd')
        for what, cmd in (('start', ['start', t.pid]), ('dump', ['dump', t.pid, '-D', d + '1']),
                          ('dump --freeze', ['dump', t.pid, '-D', d + '2', '--freeze',
                                             '--parent', d + '1']),
                          ('stop', ['stop', t.pid])):
            ctx.ok(*cmd)
            check_eq(target_state(t), orig, f'signal dispositions and masks after {what}')
        # its own SIGTRAP handler is still its own: a SIGTRAP is handled, not fatal
        os.kill(t.pid, signal.SIGTRAP)
        deadline = time.monotonic() + 5
        while t.sigcount(signal.SIGTRAP) != 1:
            check(time.monotonic() < deadline, 'SIGTRAP not handled')
            time.sleep(0.01)
        check_eq(t.getpid(), t.pid, 'target answers after its SIGTRAP')


def test_kill_after_collect_never_loses_a_write(ctx):
    """Killed between consuming the written pages and recording the dump:
    the next --parent on the older dump is refused, --full-if-needed
    recovers, and the chain holds every write."""
    for point in ('after-collect', 'mid-copy', 'before-rename'):
        with ctx.target() as t:
            m = Mem(t, ctx.tmp, tag=point)
            m.map('a', 'anon', 256)
            m.fill('a', 0, 256, 1)
            d = [os.path.join(ctx.tmp, f'{point}-{i}') for i in range(4)]
            dump(ctx, t.pid, d[0])
            m.mark()
            m.write('a', 10, 5, 2)
            rc, _, _ = ctx.run('dump', t.pid, '-D', d[1], '--parent', d[0],
                               env={'DIRTYTRACK_FAULT': point})
            check_eq(rc, -signal.SIGKILL, f'dump with DIRTYTRACK_FAULT={point}')
            check(not os.path.exists(d[1]), f'{point}: {d[1]} exists after the kill')
            left = [n for n in os.listdir(ctx.tmp) if n.startswith(f'.{point}-1.tmp-')]
            check(left, f'{point}: the killed dump left its temporary directory (the test needs it)')
            err = refuse(ctx, t.pid, d[2], parent=d[0], words=('never completed',))
            check('--full-if-needed' in err, f'{point}: the refusal says how out: {err!r}')
            res, dm = dump(ctx, t.pid, d[2], '--full-if-needed', parent=d[0])
            check(res['full'], f'{point}: recovered with a full dump: {res}')
            # a later dump beside the killed one clears what it left
            rc, _, err = ctx.run('dump', t.pid, '-D', d[1] + 'x', '--parent', d[2])
            check_eq(rc, 0, f'{point}: dump beside the killed dump: {err}')
            check_no_tmp(d[1])
            d[2] = d[1] + 'x'
            m.mark()
            m.write('a', 100, 3, 3)
            res, dm = dump(ctx, t.pid, d[3], parent=d[2])
            check_regions(m, dm, full=False)
            check_chain(m, d[3])
            live_equals_chain(t, m, d[3])
            ctx.json('stop', t.pid)


def dump_copying(ctx, pid, d, *opts):
    """Start a dump of pid into d and return it (a Popen) once it has begun
    copying pages: its temporary directory holds some of pages-1.img."""
    p = subprocess.Popen([ctx.bin, '-j', 'dump', str(pid), '-D', d, *opts], env=ctx.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent, name = os.path.split(d)
    deadline = time.monotonic() + 20
    while True:
        tmp = [n for n in os.listdir(parent) if n.startswith(f'.{name}.tmp-')]
        pages = os.path.join(parent, tmp[0], 'pages-1.img') if tmp else None
        if pages and os.path.exists(pages) and os.path.getsize(pages) > 0:
            return p
        check(p.poll() is None and time.monotonic() < deadline,
              'the dump ended before its copy could be seen')
        time.sleep(0.001)


def test_target_exits_during_dump(ctx):
    with ctx.target() as t:
        t.map('big', 'anon', 64 * 256)     # 64 MiB: the copy takes a while
        t.fill('big', 0, 64 * 256, 7)
        d = os.path.join(ctx.tmp, 'gone')
        p = dump_copying(ctx, t.pid, d)      # kill the target once the copy has begun
        t.kill()
        out, err = p.communicate(timeout=30)
        check_eq(p.returncode, EXIT_GONE, f'dump of a target that exited mid-copy ({err.strip()})')
        check('exited' in err and len(err.strip().splitlines()) == 1, f'one clear line: {err!r}')
        check(not os.path.exists(d), 'no dump directory')
        check_no_tmp(d)


def test_mapping_vanishes_during_running_dump(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('late', 'anon', 64)           # mapped first: higher address, copied last
        m.fill('late', 0, 64, 4)
        m.map('big', 'anon', 64 * 256)
        m.fill('big', 0, 64 * 256, 5)
        lo, hi = m.span('late')
        check(lo > m.span('big')[0], 'layout: the late region sits above the big one')
        d = os.path.join(ctx.tmp, 'v')
        p = dump_copying(ctx, t.pid, d)
        t.unmap('late')
        out, err = p.communicate(timeout=30)
        check_eq(p.returncode, 0, f'dump while a mapping vanished ({err.strip()})')
        import json
        res = json.loads(out)
        from test_dump import Dump
        dm = Dump(d)
        # mm, pagemap and pages agree: what vanished has no entry and no bytes
        check_eq(dm.pages(PE_PRESENT, lo, hi), set(), 'entries of the vanished mapping')
        check_eq(res['pages_vanished'], 64, f'pages_vanished: {res}')
        check_eq(res['pages_written'], dm.count(PE_PRESENT), 'pages written')
        ctx.json('stop', t.pid)


def test_failed_dump_leaves_target_as_found(ctx):
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 3)
        orig = target_state(t)
        for bad in (os.path.join(ctx.tmp, 'missing', 'd'), '/'):
            rc, _, err = ctx.run('dump', t.pid, '-D', bad)
            check_eq(rc, EXIT_ERROR, f'dump -D {bad}: {err.strip()}')
            check_eq(holders(t.pid), {}, f'no holder after dump -D {bad}')
            check_eq(uw_vmas(t.pid), [], f'uw VMAs after dump -D {bad}')
            check_eq(ctx.json('status', t.pid)['tracking'], 'off', f'status after -D {bad}')
            check_eq(target_state(t), orig, f'target after dump -D {bad}')


def test_dump_refuses_without_space(ctx):
    if os.geteuid() != 0:
        return      # mounting a small tmpfs needs root; the check itself is the same
    mnt = os.path.join(ctx.tmp, 'small')
    os.mkdir(mnt)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt],
                       capture_output=True)
    check_eq(r.returncode, 0, f'mount a 1 MiB tmpfs: {r.stderr!r}')
    try:
        with ctx.target() as t:
            t.map('a', 'anon', 1024)
            t.fill('a', 0, 1024, 3)
            d = os.path.join(mnt, 'd')
            rc, _, err = ctx.run('dump', t.pid, '-D', d)
            check_eq(rc, EXIT_ERROR, f'dump into a full tmpfs: {err.strip()}')
            check('not enough free space' in err, f'message: {err!r}')
            check_eq(holders(t.pid), {}, 'no tracking left by the refused dump')
            check_eq(os.listdir(mnt), [], 'nothing left in the small filesystem')
    finally:
        subprocess.run(['umount', mnt])


def test_signal_stops_dump_cleanly(ctx):
    with ctx.target() as t:
        t.map('big', 'anon', 64 * 256)
        t.fill('big', 0, 64 * 256, 7)
        orig = target_state(t)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            d = os.path.join(ctx.tmp, f'sig{sig}')
            p = dump_copying(ctx, t.pid, d)
            p.send_signal(sig)
            out, err = p.communicate(timeout=30)
            check_eq(p.returncode, EXIT_INTERRUPTED, f'dump stopped by {sig.name}: {err.strip()}')
            check('interrupted' in err, f'message: {err!r}')
            check(not os.path.exists(d), 'no dump directory')
            check_no_tmp(d)
            wait_no_holder(t.pid)
            check_eq(target_state(t), orig, f'target after {sig.name} to its dump')


def test_random_kills_of_every_command(ctx):
    """SIGKILL, SIGTERM, SIGINT, SIGHUP and a whole-process-group SIGINT (Ctrl-C)
    at random moments of start, stop, dump, dump --freeze and precopy: the
    target is never harmed, and every later dump is correct or refused."""
    rnd = random.Random(10)
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 512)
        m.fill('a', 0, 512, 1)
        orig = target_state(t)
        kills = interrupted = 0
        # DT_KILLS=300 for a longer run by hand (the suite runs 60)
        for i in range(int(os.environ.get('DT_KILLS', '60'))):
            kind = rnd.choice(['start', 'stop', 'dump', 'freeze', 'precopy'])
            d = os.path.join(ctx.tmp, f'r{i}')
            args = {'start': ['start', t.pid], 'stop': ['stop', t.pid],
                    'dump': ['dump', t.pid, '-D', d], 'freeze': ['dump', t.pid, '-D', d, '--freeze'],
                    'precopy': ['precopy', t.pid, '-D', d, '--max-iters', '2', '--interval', '20',
                                '--then', 'resume']}[kind]
            sig = rnd.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, 'group'])
            p = subprocess.Popen([ctx.bin, *map(str, args)], env=ctx.env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, 0.01))
            try:
                if sig == 'group':
                    os.killpg(p.pid, signal.SIGINT)
                else:
                    p.send_signal(sig)
            except ProcessLookupError:
                pass
            p.wait()
            kills += 1
            interrupted += p.returncode != 0
            settled(t.pid)
            check_eq(target_state(t), orig, f'target after kill {i} ({sig}) of {kind}')
            check_eq(t.getpid(), t.pid, f'target answers after kill {i}')
            check_eq(uffd_fds(t.pid), [], f'userfaultfd in the target after kill {i}')
        print(f'  {kills} commands killed at random, {interrupted} of them mid-flight; '
              'the target was unharmed every time')
        check(interrupted >= kills // 6, f'only {interrupted} of {kills} commands were interrupted')
        # whatever state the kills left: a dump is taken or refused, and then exact
        m.mark()
        m.write('a', 7, 3, 0x33)
        base = os.path.join(ctx.tmp, 'after')
        res, _ = dump(ctx, t.pid, base + '1', '--full-if-needed')
        m.mark()
        m.write('a', 300, 2, 0x34)
        res, dm = dump(ctx, t.pid, base + '2', parent=base + '1')
        check_regions(m, dm, full=False)
        live_equals_chain(t, m, base + '2')
        ctx.json('stop', t.pid)


def test_random_kills_while_blocked_in_read(ctx):
    """The same kills while the target's main thread is blocked in read(2):
    the call resumes as if nothing happened and returns what is written."""
    rnd = random.Random(11)
    with ctx.target() as t:
        t.block('read')
        orig = (code_head(t.pid), signal_status(t.pid), fd_snapshot(t.pid))
        for i in range(20):
            args = rnd.choice([['start', t.pid], ['stop', t.pid],
                               ['dump', t.pid, '-D', os.path.join(ctx.tmp, f'b{i}')]])
            p = subprocess.Popen([ctx.bin, *map(str, args)], env=ctx.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, 0.03))
            p.send_signal(rnd.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]))
            p.wait()
            settled(t.pid)
            check_eq((code_head(t.pid), signal_status(t.pid), fd_snapshot(t.pid)), orig,
                     f'blocked target after kill {i} of {args[0]}')
        ctx.run('stop', t.pid)
        t.feed_fd3('hello')
        check_eq(t.done(), ('read', 5, 0, 'hello'), 'the blocked read returned what was written')


def pending_masks(pid):
    """Per thread SigPnd, and the process's ShdPnd, as ints."""
    out = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{tid}/status') as f:
            st = dict(ln.split(':', 1) for ln in f if ':' in ln)
        out[int(tid)] = int(st['SigPnd'], 16)
        out['shared'] = int(st['ShdPnd'], 16)
    return out


def test_leave_stopped_keeps_pending_signals(ctx):
    """Signals that arrive while the final dump is frozen stay pending: none
    delivered before the stop (the stack is the dump's), none lost, none
    doubled; the dump records them."""
    rt = signal.SIGRTMIN + 3
    with ctx.target() as t:
        t.signals(signal.SIGUSR1)
        t.signals(rt)
        t.map('big', 'anon', 32 * 256)
        t.fill('big', 0, 32 * 256, 6)
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        dump(ctx, t.pid, d1)
        t.write('big', 5, 1, 0x61)
        p = subprocess.Popen([ctx.bin, '-j', 'dump', str(t.pid), '-D', d2, '--parent', d1,
                              '--leave-stopped', '--full-if-needed'],
                             env=ctx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # signals while it is frozen: once every thread is in a tracing stop
        # (TracerPid alone is set at PTRACE_SEIZE, before the threads stop)
        deadline = time.monotonic() + 20

        def all_in_tracing_stop():
            try:
                for tid in os.listdir(f'/proc/{t.pid}/task'):
                    with open(f'/proc/{t.pid}/task/{tid}/stat') as f:
                        if f.read().rsplit(')', 1)[1].split()[0] != 't':
                            return False
            except OSError:
                return False
            return True
        while True:
            if all_in_tracing_stop():
                break
            check(p.poll() is None and time.monotonic() < deadline, 'never saw the freeze')
            time.sleep(0.0005)
        os.kill(t.pid, signal.SIGUSR1)
        os.kill(t.pid, rt)
        os.kill(t.pid, rt)
        out, err = p.communicate(timeout=60)
        check_eq(p.returncode, 0, f'dump --leave-stopped: {err.strip()}')
        with open(f'/proc/{t.pid}/stat') as f:
            check_eq(f.read().rsplit(')', 1)[1].split()[0], 'T', 'state after --leave-stopped')
        pend = pending_masks(t.pid)
        allpend = 0
        for v in pend.values():
            allpend |= v
        check(allpend & (1 << (signal.SIGUSR1 - 1)), f'SIGUSR1 still pending: {pend}')
        check(allpend & (1 << (rt - 1)), f'the realtime signal still pending: {pend}')
        # memory (stack included) is the dump's, byte for byte
        res = resolve(d2)
        with open(f'/proc/{t.pid}/mem', 'rb', buffering=0) as f:
            for a, want in res.items():
                f.seek(a)
                check(f.read(PAGE) == want, f'page {a:#x} of the stopped target differs from the dump')
        # the dump says what was pending
        rc, shown, _ = ctx.run('show', d2, '--threads')
        check(rc == 0 and 'SIGUSR1' in shown and f'SIGRTMIN+3' in shown,
              f'show --threads lists the pending signals: {shown!r}')
        os.kill(t.pid, signal.SIGCONT)
        deadline = time.monotonic() + 5
        while (t.sigcount(signal.SIGUSR1), t.sigcount(rt)) != (1, 2):
            check(time.monotonic() < deadline,
                  f'handled after SIGCONT: {t.sigcount(signal.SIGUSR1)}, {t.sigcount(rt)}')
            time.sleep(0.01)
        time.sleep(0.1)
        check_eq((t.sigcount(signal.SIGUSR1), t.sigcount(rt)), (1, 2), 'none lost, none doubled')
        ctx.json('stop', t.pid)
