"""threads: each thread's state, system call and backtrace, the target stopped
only while we look and resumed as it was; frozen dumps record the backtraces
(show --threads prints them, diff ignores them); watch --threads shows each
thread's CPU time.  The target parks threads in functions of its own
(dt-target `park`)."""
import json
import os
import shutil
import signal
import subprocess
import time

from common import as_user, check, check_eq, second_user

EXIT_ERROR, EXIT_GONE = 2, 5
# how a trace may end on a corrupted stack: cleanly, with the reason
BROKEN_ENDS = {'unreadable', 'bad-stack-pointer', 'bad-return-address', 'loop'}


def park(t, kind, n=1, arg=None):
    """Threads parked in dt_park_KIND; their tids."""
    line = f'park {kind} {n}' + ('' if arg is None else f' {arg}')
    return [int(x) for x in t.cmd(line).split()]


def by_tid(doc):
    return {th['tid']: th for th in doc['threads']}


def names(th):
    return [f['function'] for f in th['frames']]


def tracer_of(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(dict(ln.split(':', 1) for ln in f)['TracerPid'])


def thread_ticks(pid, tid):
    with open(f'/proc/{pid}/task/{tid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_threads_in_named_functions(ctx):
    with ctx.target() as t:
        reader, = park(t, 'read')
        sleeper, = park(t, 'nanosleep')
        waiter, = park(t, 'futex')
        spinner, = park(t, 'spin')
        doc = ctx.json('threads', t.pid)
        check_eq(doc['pid'], t.pid, 'pid')
        check(doc['frozen_ms'] > 0 and doc['seize_ms'] > 0, f'frozen and seize times: {doc}')
        ths = by_tid(doc)
        check_eq(set(ths), {t.pid, reader, sleeper, waiter, spinner}, 'every thread')
        want = {reader: ('dt_park_read', 'read', 'dt-read'),
                sleeper: ('dt_park_nanosleep', 'clock_nanosleep', 'dt-nanosleep'),
                waiter: ('dt_park_futex', 'futex', 'dt-futex')}
        for tid, (func, call, name) in want.items():
            th = ths[tid]
            check_eq(th['name'], name, f'thread {tid} name')
            check_eq(th['state'], 'S', f'{name}: state before the stop')
            check_eq(th['syscall']['name'], call, f'{name}: system call')
            check(func in names(th) and 'park_main' in names(th),
                  f'{name}: {func} and park_main in the backtrace: {names(th)}')
            check(names(th).index(func) < names(th).index('park_main'), f'{name}: callee first')
            check_eq(th['end'], 'outermost', f'{name}: a whole trace')
            check(th['unwind_ms'] >= 0 and int(th['ip'], 16) == int(th['frames'][0]['ip'], 16),
                  f'{name}: frame 0 is where the thread is')
            exe = [f for f in th['frames'] if f['function'] == func][0]
            check_eq(exe['map'], ctx.target_bin, f'{name}: the frame of {func} is in dt-target')
        check_eq(ths[reader]['syscall']['args'][0], '0x3', 'read(3, ...)')
        check_eq(ths[reader]['syscall']['nr'], 0, 'read is system call 0')
        check(ths[spinner]['syscall'] is None, f'the spinner is in user code: {ths[spinner]}')
        check_eq(ths[spinner]['state'], 'R', 'the spinner was running')
        check_eq(names(ths[spinner])[0], 'dt_park_spin', 'the spinner is in dt_park_spin')
        check('command_loop' in names(ths[t.pid]), 'the main thread waits in its command loop')
        # the text says the same
        out = ctx.ok('threads', t.pid)
        for needle in (f'thread {reader} (dt-read) state S, in read(0x3,', 'dt_park_read+0x',
                       'dt_park_nanosleep+0x', f'thread {spinner} (dt-spin) state R, in user code',
                       'frozen'):
            check(needle in out, f'{needle!r} in the text output:\n{out}')
        # resumed as it was: the blocked read gets its data and returns normally
        check_eq(tracer_of(t.pid), 0, 'nobody traces the target after threads')
        check_eq(t.cmd('parkread'), 'none', 'the read is still waiting')
        os.write(t.fd3_w, b'hello\n')
        deadline = time.monotonic() + 5
        while t.cmd('parkread') == 'none' and time.monotonic() < deadline:
            time.sleep(0.01)
        check_eq(t.cmd('parkread'), '6 0 hello', 'read() returned the data, no error')
        before = thread_ticks(t.pid, spinner)
        time.sleep(0.3)
        check(thread_ticks(t.pid, spinner) > before, 'the spinner runs on')


def test_threads_64(ctx):
    with ctx.target() as t:
        tids = park(t, 'nanosleep', 64)
        doc = ctx.json('threads', t.pid)
        ths = by_tid(doc)
        check_eq(len(ths), 65, 'the main thread and 64 parked ones')
        for tid in tids:
            check('dt_park_nanosleep' in names(ths[tid]), f'thread {tid}: {names(ths[tid])}')
            check_eq(ths[tid]['end'], 'outermost', f'thread {tid}: a whole trace')


def test_threads_stripped_target(ctx):
    stripped = os.path.join(ctx.tmp, 'dt-target-stripped')
    subprocess.run(['strip', '-o', stripped, ctx.target_bin], check=True)
    from target import Target
    with Target(stripped) as t:
        reader, = park(t, 'read')
        th = by_tid(ctx.json('threads', t.pid))[reader]
        ours = [f for f in th['frames'] if f['map'] == stripped]
        check(len(ours) >= 2, f'the frames in the stripped binary are there: {th["frames"]}')
        for f in ours:
            check(f['function'] is None and int(f['ip'], 16) > 0 and int(f['map_offset'], 16) > 0,
                  f'no name without symbols, an address and a file offset: {f}')
        check(th['frames'][0]['function'] is not None, 'libc still names its read')
        out = ctx.ok('threads', t.pid)
        check('dt_park_read' not in out and f'{stripped}+0x' in out, f'addresses only:\n{out}')


def test_threads_corrupted_frame_pointer(ctx):
    with ctx.target() as t:
        garbage, = park(t, 'badfp')
        loop, = park(t, 'loopfp')
        reader, = park(t, 'read')
        doc = ctx.json('threads', '--depth', '1024', t.pid)
        ths = by_tid(doc)
        bad = ths[garbage]
        check_eq(names(bad)[0], 'dt_park_badfp', 'frame 0 is the function that broke its frame')
        check(len(bad['frames']) <= 2 and bad['end'] in BROKEN_ENDS,
              f'a garbage frame pointer ends the trace: {bad["frames"]}, {bad["end"]}')
        lp = ths[loop]
        check(len(lp['frames']) <= 3 and lp['end'] in BROKEN_ENDS,
              f'a frame pointer chain that loops ends the trace: {lp["frames"]}, {lp["end"]}')
        check_eq(ths[reader]['end'], 'outermost', 'the other threads are unwound whole')
        out = ctx.ok('threads', t.pid)
        check('(the trace ends at ' in out, f'the text says why the trace ends:\n{out}')
        check_eq(t.cmd('pid'), str(t.pid), 'the target runs on')


def test_threads_jit_code(ctx):
    with ctx.target() as t:
        jit, = park(t, 'jit')
        th = by_tid(ctx.json('threads', t.pid))[jit]
        check_eq(len(th['frames']), 1, f'one frame: {th["frames"]}')
        f = th['frames'][0]
        check(f['function'] is None and f['map'] == '', f'an address in anonymous memory: {f}')
        check_eq(th['end'], 'no-unwind-info', 'the trace ends with the marker')
        out = ctx.ok('threads', t.pid)
        check('[anonymous]' in out and 'without unwind information' in out, out)


def test_threads_depth(ctx):
    with ctx.target() as t:
        deep, = park(t, 'deep', 1, 100)
        th = by_tid(ctx.json('threads', '--depth', '10', t.pid))[deep]
        check_eq(len(th['frames']), 10, 'at most --depth frames')
        check_eq(th['end'], 'depth', 'ended by the depth')
        check_eq(names(th)[1:10], ['dt_park_deep'] * 9, 'the recursion')
        th = by_tid(ctx.json('threads', t.pid))[deep]
        check_eq(len(th['frames']), 64, 'the default depth is 64')
        th = by_tid(ctx.json('threads', '--depth', '1024', t.pid))[deep]
        check_eq(th['end'], 'outermost', 'deep enough for the whole trace')
        check_eq(names(th).count('dt_park_deep'), 101, 'every level')
        for bad in ('0', '1025', 'x'):
            rc, out, err = ctx.run('threads', '--depth', bad, t.pid)
            check_eq(rc, EXIT_ERROR, f'--depth {bad}')
            check('--depth' in err and len(err.strip().splitlines()) == 1, err)


def test_threads_other_users_process(ctx):
    """Root, with only the capabilities threads keeps, unwinds another
    user's process: its memory, registers and mapped files."""
    uid, gid = second_user()
    with ctx.target(preexec=as_user(uid, gid)) as t:
        reader, = park(t, 'read')
        th = by_tid(ctx.json('threads', t.pid))[reader]
        check('dt_park_read' in names(th) and th['end'] == 'outermost', f'{th}')
        check_eq(th['syscall']['name'], 'read', 'its system call')


def test_threads_no_such_process(ctx):
    rc, out, err = ctx.run('threads', 4194303)
    check_eq(rc, EXIT_GONE, f'no such process: {err}')


def test_threads_target_exits_meanwhile(ctx):
    """Killed while its threads are unwound (deep stacks make that take a
    while): one clear line, exit 5, and nothing left behind."""
    with ctx.target() as t:
        park(t, 'deep', 200, 1000)
        p = subprocess.Popen([ctx.bin, 'threads', '--depth', '1024', str(t.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ctx.env)
        deadline = time.monotonic() + 10
        while tracer_of(t.pid) != p.pid:
            check(time.monotonic() < deadline and p.poll() is None, 'threads never seized')
        time.sleep(0.005)
        t.proc.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        check_eq(p.returncode, EXIT_GONE, f'exit status ({err.strip()})')
        check('exited' in err and len(err.strip().splitlines()) == 1, f'one clear line: {err!r}')
        check_eq(out, '', 'no half output')


def core_thread(ctx, d, tid):
    return [th for th in ctx.json('show', '--threads', d)['threads'] if th['tid'] == tid][0]


def test_frozen_dump_records_backtraces(ctx):
    def one_cpu():
        # the kernel writes the cpu number into each thread's rseq area (TLS):
        # on one cpu it stays the same between the two dumps diff compares
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with ctx.target(preexec=one_cpu) as t:
        reader, = park(t, 'read')
        jit, = park(t, 'jit')
        a = os.path.join(ctx.tmp, 'a')
        b = os.path.join(ctx.tmp, 'b')
        c = os.path.join(ctx.tmp, 'c')
        ctx.ok('dump', '--no-track', '--freeze', '-D', a, t.pid)
        th = core_thread(ctx, a, reader)
        bt = th['backtrace']
        check('dt_park_read' in names(bt) and bt['end'] == 'outermost', f'recorded: {bt}')
        check(bt['unwind_ms'] >= 0 and int(bt['frames'][0]['ip'], 16) == int(th['ip'], 16),
              'frame 0 is at the recorded ip')
        check_eq(core_thread(ctx, a, jit)['backtrace']['end'], 'no-unwind-info', 'the JIT thread')
        out = ctx.ok('show', '--threads', a)
        check('dt_park_read+0x' in out and 'without unwind information' in out, out)
        # crit still decodes every core image (our fields are unknown to it, skipped)
        for name in os.listdir(a):
            if name.startswith('core-'):
                r = subprocess.run(['crit', 'decode', '-i', os.path.join(a, name)],
                                   capture_output=True, text=True)
                check_eq(r.returncode, 0, f'crit decode {name}: {r.stderr.strip()[-300:]}')
                check_eq(json.loads(r.stdout)['entries'][0]['mtype'], 'X86_64', name)
        # a dump that does not freeze records none; diff does not look at them
        ctx.ok('dump', '--no-track', '-D', b, t.pid)
        check(core_thread(ctx, b, reader)['backtrace'] is None, 'no backtrace unfrozen')
        rc, out, err = ctx.run('diff', a, b)
        check_eq(rc, 0, f"diff ignores backtraces: {out[-1500:]} {err}")
        # left stopped: recorded too, and the target stays stopped until continued
        ctx.ok('dump', '--no-track', '--leave-stopped', '-D', c, t.pid)
        check('dt_park_read' in names(core_thread(ctx, c, reader)['backtrace']), 'leave-stopped')
        os.kill(t.pid, signal.SIGCONT)
        os.write(t.fd3_w, b'ping\n')
        deadline = time.monotonic() + 5
        while t.cmd('parkread') == 'none' and time.monotonic() < deadline:
            time.sleep(0.01)
        check_eq(t.cmd('parkread'), '5 0 ping', 'the read returns its data after the dumps')


def test_precopy_final_dump_records_backtraces(ctx):
    with ctx.target() as t:
        reader, = park(t, 'read')
        base = os.path.join(ctx.tmp, 'pc')
        ctx.ok('precopy', '-D', base, '-i', '50', '--max-iters', '1', '--then', 'resume', t.pid)
        bt = core_thread(ctx, os.path.join(base, 'final'), reader)['backtrace']
        check('dt_park_read' in names(bt), f'the final dump has the backtrace: {bt}')
        check(core_thread(ctx, os.path.join(base, '1'), reader)['backtrace'] is None,
              'the running dumps before it have none')
        shutil.rmtree(base)


def test_watch_threads_cpu(ctx):
    with ctx.target() as t:
        spinner, = park(t, 'spin')
        sleeper, = park(t, 'nanosleep')
        rc, out, err = ctx.run('-j', 'watch', '--threads', '-n', '2', '-i', '300', t.pid)
        check_eq(rc, 0, err)
        lines = [json.loads(ln) for ln in out.splitlines()]
        check_eq(len(lines), 2, 'two intervals')
        for ln in lines:
            cpu = {th['tid']: th for th in ln['threads']}
            check_eq(set(cpu), {t.pid, spinner, sleeper}, 'every thread')
            check(cpu[spinner]['cpu_s'] > 0.1, f'the spinner ran: {cpu[spinner]}')
            check(cpu[sleeper]['cpu_s'] < 0.05, f'the sleeper did not: {cpu[sleeper]}')
            check_eq(cpu[spinner]['name'], 'dt-spin', 'names')
        rc, out, err = ctx.run('watch', '--threads', '-n', '1', '-i', '200', t.pid)
        check_eq(rc, 0, err)
        check(f'{spinner}(dt-spin)' in out and 'cpu:' in out, out)
