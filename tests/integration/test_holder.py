"""Tracking lives in a holder process of ours, never in the target: the
target's fd table is untouched by every command, its children inherit
nothing, an application's own userfaultfd is left alone, and the holder
comes and goes with the target."""
import os
import signal
import subprocess
import time

from common import PAGE, check, check_eq, holders, uffd_fds
from test_attach import code_head, fd_table, signal_status, uw_vmas
from test_dump import Mem, PE_PARENT, PE_PRESENT, check_chain, check_regions, dump, ranges, refuse

EXIT_ERROR = 2


def fd_snapshot(pid):
    """Every fd of pid with its link and its fdinfo (position, flags)."""
    out = {}
    for fd, link in fd_table(pid).items():
        try:
            with open(f'/proc/{pid}/fdinfo/{fd}') as f:
                info = f.read()
        except OSError:
            info = None
        out[fd] = (link, info)
    return out


def wait_no_holder(pid, timeout=5):
    deadline = time.monotonic() + timeout
    while holders(pid):
        check(time.monotonic() < deadline, f'holder of {pid} still alive: {holders(pid)}')
        time.sleep(0.02)


def child_mem(m, child):
    """The model of a forked child: its regions hold what the parent's held."""
    c = Mem(child, m.tmp, tag='child-')
    for name in m.kind:
        c.kind[name], c.blank[name] = m.kind[name], m.blank[name]
        c.content[name], c.written[name] = dict(m.content[name]), set()
    return c


# -- the target's fd table, before and after every command -------------------

def test_fd_table_untouched_by_every_command(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 32)
        m.fill('a', 0, 32, 3)
        orig = fd_snapshot(t.pid)
        d = os.path.join(ctx.tmp, 'd')
        steps = [
            ('start', lambda: ctx.json('start', t.pid)),
            ('status', lambda: ctx.json('status', t.pid)),
            ('dump', lambda: dump(ctx, t.pid, d + '1')),
            ('dump --parent', lambda: dump(ctx, t.pid, d + '2', parent=d + '1')),
            ('watch', lambda: ctx.ok('-j', 'watch', t.pid, '--interval', '50', '--count', '2')),
            ('precopy', lambda: ctx.ok('-j', 'precopy', t.pid, '-D', d + 'p', '--max-iters',
                                       '2', '--interval', '50', '--then', 'resume')),
            ('stop', lambda: ctx.json('stop', t.pid)),
            ('dump (untracked)', lambda: dump(ctx, t.pid, d + '3')),
            ('stop again', lambda: ctx.json('stop', t.pid)),
        ]
        for what, step in steps:
            step()
            check_eq(fd_snapshot(t.pid), orig, f'fd table and fdinfo of the target after {what}')
            check_eq(uffd_fds(t.pid), [], f'userfaultfd in the target after {what}')
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after stop')
        wait_no_holder(t.pid)


# -- fork: children get nothing of ours --------------------------------------

def test_forked_children_inherit_nothing(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 64)
        m.fill('a', 0, 64, 1)
        ctx.json('start', t.pid)
        child = t.forkserve(ctx.tmp)        # a long-lived child, forked while tracked
        cm = child_mem(m, child)
        check_eq((uffd_fds(t.pid), uffd_fds(child.pid)), ([], []), 'userfaultfd fds after fork')
        check_eq(uw_vmas(child.pid), [], 'uw VMAs in the child')
        d = [os.path.join(ctx.tmp, f'p{i}') for i in range(4)]
        dump(ctx, t.pid, d[0])
        m.mark()
        for i in range(1, 4):
            t.forkloop(20)                   # and a fork-and-exit loop, each round
            m.write('a', 5 * i, 3, 10 + i)
            cm.write('a', 40 + i, 1, 20 + i)  # the child's writes are its own
            for pid in [t.pid, child.pid]:
                check_eq(uffd_fds(pid), [], f'userfaultfd fds in {pid}, round {i}')
            res, dm = dump(ctx, t.pid, d[i], parent=d[i - 1])
            check_regions(m, dm, full=False)
            check_chain(m, d[i])
            m.mark()
        status = ctx.json('status', t.pid)
        if status['holder']['events'] == 'proc connector':
            check(status['holder']['forks'] >= 61, f'forks seen by the holder: {status["holder"]}')
        # the child can be tracked on its own, beside its parent
        cdoc = ctx.json('start', child.pid)
        check_eq(cdoc['already_tracked'], False, 'start CHILD: already tracked?')
        check(cdoc['holder']['pid'] != status['holder']['pid'], 'the child has its own holder')
        c1, c2 = os.path.join(ctx.tmp, 'c1'), os.path.join(ctx.tmp, 'c2')
        res, dm = dump(ctx, child.pid, c1)
        check_regions(cm, dm, full=True)
        cm.mark()
        cm.write('a', 7, 2, 0x31)
        m.write('a', 30, 1, 0x32)
        res, dm = dump(ctx, child.pid, c2, parent=c1)
        check_regions(cm, dm, full=False)
        check_chain(cm, c2)
        res, dm = dump(ctx, t.pid, d[0] + 'x', parent=d[3])
        check_regions(m, dm, full=False)
        # stop the parent: no registration left in it, whatever its children do
        ctx.json('stop', t.pid)
        check_eq(uw_vmas(t.pid), [], 'uw VMAs in the parent after stop')
        check_eq(ctx.json('status', child.pid)['tracking'], 'on', 'the child is still tracked')
        ctx.json('stop', child.pid)
        check_eq(uw_vmas(child.pid), [], 'uw VMAs in the child after stop')
        wait_no_holder(t.pid)
        wait_no_holder(child.pid)


# -- the application's own userfaultfd ----------------------------------------

def test_application_own_uffd_left_alone(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('own', 'anon', 16)
        m.map('a', 'anon', 16)
        m.fill('own', 0, 16, 7)
        m.fill('a', 0, 16, 8)
        ofd = t.ownuffd('own')
        before = fd_snapshot(t.pid)
        check_eq(t.ownwritten('own'), set(), 'own uffd: nothing written after it protected all')
        lo, hi = m.span('own')
        doc = ctx.json('start', t.pid)
        st = ctx.json('status', t.pid)
        own = [v for v in st['vmas'] if int(v['start'], 16) <= lo < int(v['end'], 16)]
        check_eq([(v['state'], v.get('reason')) for v in own],
                 [('skipped', 'owned by another userfaultfd')], 'status of the owned mapping')
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        dump(ctx, t.pid, d1)
        m.mark()
        m.write('own', 2, 2, 0x41)
        m.write('a', 5, 1, 0x42)
        res, dm = dump(ctx, t.pid, d2, parent=d1)
        # the part it owns is dumped by content, every page of it; the rest exactly
        check_eq(ranges({(a - lo) // PAGE for a in dm.pages(PE_PRESENT, lo, hi)}), '0-15',
                 'owned region in the incremental dump')
        alo, ahi = m.span('a')
        check_eq(ranges({(a - alo) // PAGE for a in dm.pages(PE_PRESENT, alo, ahi)}), '5',
                 'tracked region in the incremental dump')
        check_chain(m, d2)
        # its write-protect state was not touched by our collections
        check_eq(t.ownwritten('own'), {2, 3}, 'own uffd: written pages as the application sees')
        ctx.json('stop', t.pid)
        check_eq(fd_snapshot(t.pid), before, 'fd table after stop')
        check_eq(uffd_fds(t.pid), [ofd], 'the application keeps its userfaultfd')
        check_eq(len(uw_vmas(t.pid)), 1, 'the application keeps its registration')
        m.write('own', 9, 1, 0x43)
        check_eq(t.ownwritten('own'), {2, 3, 9}, 'own uffd still tracks after stop')


# -- the holder dies, or its target does ---------------------------------------

def test_holder_killed(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 32)
        m.fill('a', 0, 32, 5)
        holder = ctx.json('start', t.pid)['holder']['pid']
        d1, d2, d3 = (os.path.join(ctx.tmp, f'd{i}') for i in (1, 2, 3))
        dump(ctx, t.pid, d1)
        m.mark()
        sum0, code0, sig0 = t.checksum('a'), code_head(t.pid), signal_status(t.pid)
        os.kill(holder, signal.SIGKILL)
        wait_no_holder(t.pid)
        check_eq((t.checksum('a'), code_head(t.pid), signal_status(t.pid)), (sum0, code0, sig0),
                 'target after its holder was killed')
        check_eq(uw_vmas(t.pid), [], 'no registration is left without a holder')
        doc = ctx.json('status', t.pid)
        check_eq(doc['tracking'], 'lost', f'status: {doc}')
        check('holder' in doc['reason'] and str(holder) in doc['reason'], f'reason: {doc}')
        rc, out, _ = ctx.run('status', t.pid)
        check('tracking lost (holder gone)' in out, f'text status: {out!r}')
        m.write('a', 3, 1, 0x51)
        refuse(ctx, t.pid, d2, parent=d1, code=EXIT_ERROR, words=('holder', 'gone'))
        res, dm = dump(ctx, t.pid, d3, '--full-if-needed', parent=d1)
        check(res['full'] and 'lost' in res['full_because'], f'recovered dump: {res}')
        check_chain(m, d3)
        check_eq(ctx.json('status', t.pid)['tracking'], 'on', 'tracking after the recovery')
        ctx.json('stop', t.pid)


def test_holder_ends_with_its_target(ctx):
    with ctx.target() as t:
        ctx.json('start', t.pid)
        check_eq(len(holders(t.pid)), 1, 'one holder')
        t.exec()
        wait_no_holder(t.pid, timeout=3)
        check_eq(ctx.json('status', t.pid)['tracking'], 'lost', 'status after exec')
        ctx.json('start', t.pid)
        t.exit(0)
        wait_no_holder(t.pid, timeout=3)


def test_holder_ends_when_told(ctx):
    """SIGTERM to the holder ends tracking cleanly; terminal signals do not."""
    with ctx.target() as t:
        holder = ctx.json('start', t.pid)['holder']['pid']
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
            os.kill(holder, sig)
        time.sleep(0.2)
        check_eq(holders(t.pid), {holder: t.pid}, 'holder after terminal signals')
        with open(f'/proc/{holder}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        check(state in 'SR', f'holder state {state}: SIGTSTP did not stop it')
        with open(f'/proc/{holder}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        check(int(fields[3]) != os.getsid(0), 'the holder is in a session of its own')
        check_eq(int(fields[4]), 0, 'the holder has no controlling terminal')
        check_eq(os.readlink(f'/proc/{holder}/cwd'), '/', 'holder cwd')
        for fd in (0, 1, 2):
            check_eq(os.readlink(f'/proc/{holder}/fd/{fd}'), '/dev/null', f'holder fd {fd}')
        if os.geteuid() == 0:
            with open(f'/proc/{holder}/status') as f:
                eff = int(dict(ln.split(':', 1) for ln in f)['CapEff'], 16)
            check_eq(eff, 1 << 19, 'the holder keeps CAP_SYS_PTRACE alone once attached')
        os.kill(holder, signal.SIGTERM)
        wait_no_holder(t.pid)
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after the holder ended')


def test_fifty_targets_no_holder_left(ctx):
    targets = []
    try:
        for _ in range(50):
            targets.append(ctx.target(extra_fd_pipe=False))
        for t in targets:
            ctx.json('start', t.pid)
        check_eq(sorted(holders().get(h) for h in holders() if holders().get(h) in
                        {t.pid for t in targets}), sorted(t.pid for t in targets),
                 'one holder per target')
        for t in targets[:25]:
            ctx.json('stop', t.pid)
        for t in targets[25:]:
            t.kill()
        pids = {t.pid for t in targets}
        deadline = time.monotonic() + 5
        while set(holders().values()) & pids:
            check(time.monotonic() < deadline, f'holders left: {holders()}')
            time.sleep(0.05)
    finally:
        for t in targets:
            t.kill()


def test_stop_without_state_directory(ctx):
    with ctx.target() as t:
        ctx.json('start', t.pid)
        bad = os.path.join(ctx.tmp, 'not-a-dir')
        with open(bad, 'w') as f:
            f.write('x')
        doc = ctx.json('stop', t.pid, env={'DIRTYTRACK_STATE_DIR': bad})
        check_eq(doc, {'pid': t.pid, 'was_tracked': True}, 'stop with an unusable state dir')
        wait_no_holder(t.pid)
        check_eq(uw_vmas(t.pid), [], 'uw VMAs after stop')


def test_injection_fault_points(ctx):
    """The command killed at each step of the injection: the holder finishes
    it, sees the command gone, and leaves the target as it found it."""
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 9)
        orig = {'code': code_head(t.pid), 'signals': signal_status(t.pid),
                'fds': fd_snapshot(t.pid), 'sum': t.checksum('a')}
        for point in ('after-seize', 'after-patch', 'in-syscall', 'before-restore'):
            rc, _, _ = ctx.run('start', t.pid, env={'DIRTYTRACK_FAULT': point})
            check_eq(rc, -signal.SIGKILL, f'start with DIRTYTRACK_FAULT={point}')
            wait_no_holder(t.pid)
            check_eq(ctx.json('status', t.pid)['tracking'], 'off', f'status after a kill at {point}')
            now = {'code': code_head(t.pid), 'signals': signal_status(t.pid),
                   'fds': fd_snapshot(t.pid), 'sum': t.checksum('a')}
            check_eq(now, orig, f'target after a kill at {point}')
            check_eq(uw_vmas(t.pid), [], f'uw VMAs after a kill at {point}')
            check_eq(t.getpid(), t.pid, f'target answers after a kill at {point}')
        ctx.json('start', t.pid)
        ctx.json('stop', t.pid)


def test_random_kills_during_start(ctx):
    """SIGKILL, SIGTERM, SIGINT and SIGHUP at random moments of start and a
    first dump: the target lives on, as it was."""
    import random
    rnd = random.Random(9)
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 9)
        orig = (code_head(t.pid), signal_status(t.pid), fd_snapshot(t.pid), t.checksum('a'))
        n = 0
        for i in range(40):
            sig = rnd.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
            args = ['start', t.pid] if i % 2 else ['dump', t.pid, '-D',
                                                   os.path.join(ctx.tmp, f'k{i}')]
            p = subprocess.Popen([ctx.bin, *map(str, args)], env=ctx.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, 0.03))
            p.send_signal(sig)
            p.wait()
            n += p.returncode != 0
            ctx.run('stop', t.pid)
            wait_no_holder(t.pid)
            check_eq((code_head(t.pid), signal_status(t.pid), fd_snapshot(t.pid),
                      t.checksum('a')), orig, f'target after kill {i} ({sig.name}) of {args[0]}')
            check_eq(t.getpid(), t.pid, f'target answers after kill {i}')
        check(n > 0, 'no command was interrupted: the test measured nothing')


def start_watch(ctx, pid, *extra):
    p = subprocess.Popen([ctx.bin, '-j', 'watch', str(pid), '--interval', '50', *extra],
                         env=ctx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(p.stdout.readline().strip().startswith('{'), 'watch printed its first interval')
    return p


def test_auto_tracking_leases(ctx):
    """Tracking a watch turned on lasts while any watch relies on it; a dump
    or a start pins it; a killed watch lets it go."""
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        w1 = start_watch(ctx, t.pid)
        holder = list(holders(t.pid))
        check_eq(len(holder), 1, 'the first watch turned tracking on')
        w2 = start_watch(ctx, t.pid)
        check_eq(list(holders(t.pid)), holder, 'the second watch uses the same holder')
        w1.send_signal(signal.SIGINT)
        check_eq(w1.wait(10), 0, 'first watch ends cleanly')
        # the second still watches: tracking is still on under it
        t.write('a', 2, 1, 9)
        line = json_line(w2)
        check_eq(list(holders(t.pid)), holder, 'tracking stays on for the second watch')
        check(line['pages'] >= 0 and 'forks' in line, f'watch line: {line}')
        w2.send_signal(signal.SIGINT)
        check_eq(w2.wait(10), 0, 'second watch ends cleanly')
        wait_no_holder(t.pid)
        check_eq(ctx.json('status', t.pid)['tracking'], 'off', 'status after the last watch')
        # a dump during an auto watch pins tracking: its session outlives the watch
        w3 = start_watch(ctx, t.pid)
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        dump(ctx, t.pid, d1)
        w3.send_signal(signal.SIGTERM)
        check_eq(w3.wait(10), 0, 'watch ends on SIGTERM')
        check_eq(ctx.json('status', t.pid)['tracking'], 'on', 'the dump pinned tracking')
        # the watch consumed writes after d1 (as documented): d1 is no parent now,
        # but the session is the same one, and the chain goes on from a new dump
        refuse(ctx, t.pid, d2, parent=d1, words=('latest collection',))
        dump(ctx, t.pid, d2)
        t.write('a', 4, 1, 10)
        res, _ = dump(ctx, t.pid, d2 + 'b', parent=d2)
        check(not res['full'], f'incremental after the watch ended: {res}')
        ctx.json('stop', t.pid)
        # a watch killed outright: its lease ends with it, and so does the tracking
        w4 = start_watch(ctx, t.pid)
        w4.kill()
        w4.wait()
        wait_no_holder(t.pid)
        check_eq(uw_vmas(t.pid), [], 'no registration left after a killed watch')
        # tracking ended as designed with its last lease: off, not lost
        check_eq(ctx.json('status', t.pid)['tracking'], 'off', 'status after a killed watch')


def json_line(p):
    import json
    return json.loads(p.stdout.readline())


def test_watch_ends_when_tracking_is_stopped(ctx):
    with ctx.target() as t:
        ctx.json('start', t.pid)
        w = start_watch(ctx, t.pid)
        ctx.json('stop', t.pid)
        check_eq(w.wait(10), EXIT_ERROR, 'watch after stop under it')
        err = w.stderr.read()
        check('ended' in err and 'holder' in err, f'watch says why: {err!r}')
        wait_no_holder(t.pid)
        check_eq(uw_vmas(t.pid), [], 'no registration once the watch let go')


def test_state_directory_does_not_grow(ctx):
    from test_attach import free_pid
    state = ctx.env['DIRTYTRACK_STATE_DIR']
    dead = []
    with ctx.target() as t:
        ctx.json('start', t.pid)
        for _ in range(3):
            with ctx.target() as gone:
                ctx.json('start', gone.pid)
                dead.append(gone.pid)
            wait_no_holder(dead[-1])
        stale = free_pid()
        for n in (f'{stale}.lock', f'{stale}.session'):
            with open(os.path.join(state, n), 'w') as f:
                f.write('dirtytrack-session 2\n')
        ctx.json('stop', t.pid)
        left = sorted(os.listdir(state))
        check_eq([n for n in left if n.split('.')[0] in {str(p) for p in dead + [stale]}], [],
                 f'files of dead processes left in the state directory: {left}')
        check(f'{t.pid}.lock' in left, f'the live target keeps its lock file: {left}')


def test_dump_no_track(ctx):
    """A one-off full dump: no holder, no registration, nothing left on."""
    from test_dump import check_regions
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 16)
        m.fill('a', 0, 16, 0x44)
        d = os.path.join(ctx.tmp, 'once')
        res, dm = dump(ctx, t.pid, d, '--no-track')
        check(res['full'] and not res['tracking_started'], f'--no-track dump: {res}')
        check_regions(m, dm, full=True)
        check_eq(holders(t.pid), {}, 'no holder after --no-track')
        check_eq(uw_vmas(t.pid), [], 'no registration after --no-track')
        check_eq(ctx.json('status', t.pid)['tracking'], 'off', 'status after --no-track')
        rc, _, err = ctx.run('dump', t.pid, '-D', d + '2', '--no-track', '--parent', d)
        check_eq(rc, EXIT_ERROR, f'--no-track with --parent: {err}')
        check('--no-track' in err, err)
        # and it is no parent for a tracked dump
        ctx.json('start', t.pid)
        refuse(ctx, t.pid, d + '3', parent=d, words=('session',))
        ctx.json('stop', t.pid)


def test_holder_name_cannot_be_squatted(ctx):
    """Another user who binds the name a holder would have had keeps nobody
    from tracking: the name carries a random token."""
    import socket as sk
    from common import second_user, as_user
    if os.geteuid() != 0:
        from common import Skip
        raise Skip('needs root: a second user squats the name')
    uid, gid = second_user()
    with ctx.target() as t:
        with open(f'/proc/{t.pid}/stat') as f:
            start = f.read().rsplit(')', 1)[1].split()[19]
        squat = subprocess.Popen(
            ['python3', '-c', 'import socket,sys,time; s=socket.socket(socket.AF_UNIX, '
             'socket.SOCK_SEQPACKET); s.bind(sys.argv[1].encode().replace(b"@", b"\\0", 1)); '
             's.listen(4); print("bound", flush=True); time.sleep(60)',
             f'@dirtytrack/holder/0/{t.pid}/{start}'],
            preexec_fn=as_user(uid, gid), stdout=subprocess.PIPE, text=True)
        try:
            check_eq(squat.stdout.readline().strip(), 'bound', 'the squatter bound the old name')
            doc = ctx.json('start', t.pid)
            check_eq(doc['already_tracked'], False, 'start despite the squatter')
            d = os.path.join(ctx.tmp, 'sq')
            dump(ctx, t.pid, d)
            check_eq(ctx.json('status', t.pid)['tracking'], 'on', 'status despite the squatter')
            ctx.json('stop', t.pid)
        finally:
            squat.kill()
            squat.wait()
