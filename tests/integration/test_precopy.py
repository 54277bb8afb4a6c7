"""`dirtytrack precopy`: the pre-copy loop BASE/1 (full), BASE/2, ...,
BASE/final against live dt-target workloads, its -j event stream, how it ends
(--until-pages, --until-ratio, no convergence, --max-iters), what it does with
the target afterwards (--then), SIGINT/SIGTERM, and examples/precopy.sh, the
same loop written with plain `dirtytrack dump` calls and rsync.

Workloads: a region of FILLED pages filled with one byte (so every page has
content), and `spin 1 a 0 N`, a thread rewriting N pages continuously: a
small N is a hot set the loop converges on, N = FILLED rewrites everything.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import time

from common import PAGE, check, check_eq, wait_for

EXIT_INTERRUPTED = 130  # precopy stopped by SIGINT/SIGTERM: dirtytrack(1) EXIT STATUS

FILLED = 4000
HOT = 32
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '..', '..', 'examples', 'precopy.sh')


# -- helpers ---------------------------------------------------------------

def state(pid):
    """The state letter of /proc/PID/stat (None once the process is gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def workload(ctx, hot, filled=FILLED):
    """A target with `filled` pages of content and a thread rewriting the
    first `hot` of them, already spinning."""
    t = ctx.target()
    try:
        t.map('a', 'anon', filled)
        t.map('b', 'anon', 4)       # for commands, apart from the spinner
        t.fill('a', 0, filled, 7)
        if hot:
            t.spin(1, 'a', 0, hot)
            t.wait_spinning(3)
    except BaseException:
        t.kill()
        raise
    return t


def release(t):
    """Undo what a test did to the target: resume it, stop the spinner, end it."""
    if t.alive():
        try:
            os.kill(t.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        try:
            t.unspin()
        except Exception:  # noqa: BLE001 - not spinning, or gone
            pass
    t.close()


def events(out):
    """The JSON lines of precopy -j, checked: iterations, one final at most,
    then the summary, last."""
    evs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    check(evs, 'precopy -j printed nothing')
    kinds = [e.get('event') for e in evs]
    check_eq(kinds[-1], 'summary', 'the last event')
    check(kinds.count('summary') == 1, f'one summary: {kinds}')
    check(kinds.count('final') <= 1, f'at most one final: {kinds}')
    if 'final' in kinds:
        check_eq(kinds.index('final'), len(kinds) - 2, 'the final event comes right before the summary')
    check(all(k in ('iteration', 'final', 'summary') for k in kinds), f'event kinds {kinds}')
    for e in evs[:-1]:
        for k in ('name', 'dir', 'full', 'pages_dirty', 'pages_written', 'pages_parent',
                  'bytes_written', 'dump_ms', 'freeze_ms', 'dirty_mib_per_s', 'est_downtime_ms'):
            check(k in e, f'{e["event"]} event without {k}: {e}')
        check_eq(e['bytes_written'], e['pages_written'] * PAGE, f'bytes_written of {e["name"]}')
    for k in ('iterations', 'bytes_total', 'converged', 'reason', 'interrupted', 'final', 'last'):
        check(k in evs[-1], f'summary without {k}: {evs[-1]}')
    return evs


def precopy(ctx, pid, base, *opts, expect=0, timeout=30):
    """Run precopy -j; returns (iteration events, final event or None, summary)."""
    rc, out, err = ctx.run('-j', 'precopy', pid, '-D', base, *opts, timeout=timeout)
    check(rc == expect, f'precopy exit {rc}, expected {expect}; stderr: {err.strip()}')
    evs = events(out)
    iters = [e for e in evs if e['event'] == 'iteration']
    final = [e for e in evs if e['event'] == 'final']
    return iters, final[0] if final else None, evs[-1]


def check_loop(base, iters, final, summ):
    """What every complete (not interrupted) run must satisfy."""
    check(iters, 'no iteration')
    check_eq(summ['iterations'], len(iters), 'summary iterations')
    for n, e in enumerate(iters, 1):
        check_eq(e['name'], str(n), f'name of iteration {n}')
        check_eq(os.path.realpath(e['dir']), os.path.realpath(os.path.join(base, str(n))),
                 f'dir of iteration {n}')
        check_eq(e['full'], n == 1, f'full of iteration {n}')
        check_eq(e['freeze_ms'], 0, f'iteration {n} runs without freezing the target')
        if n > 1:
            check(e['pages_parent'] > 0, f'iteration {n} refers to its parent: {e}')
    check(final is not None, 'no final event')
    check_eq(final['name'], 'final', 'final name')
    check_eq(os.path.realpath(final['dir']), os.path.realpath(os.path.join(base, 'final')), 'final dir')
    check(not final['full'], 'the final dump is incremental')
    check(final['freeze_ms'] > 0, f'the final dump froze the target: {final}')
    check_eq(summ['interrupted'], False, 'summary interrupted')
    want_target = {'leave-stopped': 'stopped', 'kill': 'killed', 'resume': 'running'}
    check_eq(summ['target'], want_target[summ['then']], f'summary target for --then {summ["then"]}')
    check_eq(os.path.realpath(summ['final']), os.path.realpath(final['dir']), 'summary final')
    check_eq(summ['final_freeze_ms'], final['freeze_ms'], 'summary final_freeze_ms')
    check_eq(os.path.realpath(summ['last']), os.path.realpath(final['dir']), 'summary last')
    check_eq(summ['bytes_total'], sum(e['bytes_written'] for e in iters + [final]), 'bytes_total')
    # the chain on disk: final -> N -> ... -> 1, relative links
    for n in range(2, len(iters) + 1):
        link = os.readlink(os.path.join(base, str(n), 'parent'))
        check_eq(os.path.realpath(os.path.join(base, str(n), link)),
                 os.path.realpath(os.path.join(base, str(n - 1))), f'parent of {n}')
    link = os.readlink(os.path.join(base, 'final', 'parent'))
    check_eq(os.path.realpath(os.path.join(base, 'final', link)),
             os.path.realpath(os.path.join(base, str(len(iters)))), 'parent of final')
    check_eq(sorted(os.listdir(base)),
             sorted([str(n) for n in range(1, len(iters) + 1)] + ['final']), f'contents of {base}')


def verify(ctx, d, pid=None):
    """verify -j; checks exit 0 and returns the document."""
    args = ['verify', d] + (['--pid', pid] if pid is not None else [])
    doc = ctx.json(*args)
    check(doc.get('chain_ok') is True, f'verify {d}: {doc}')
    if pid is not None:
        check(doc.get('equal') is True and doc.get('pages_differ') == 0, f'verify {d} --pid: {doc}')
    return doc


def no_sanitizer(err, what):
    """Output ctx.run did not see (Popen, the example script): under
    `make check-asan` a sanitizer report fails the test there too."""
    if 'Sanitizer' in err or 'runtime error:' in err:
        raise AssertionError(f'sanitizer report from {what}:\n{err}')


def tmp_leftovers(base):
    return glob.glob(os.path.join(base, '.*'))


# -- converging, not converging ------------------------------------------------

def converges_on_hot_set(ctx, *opts):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--until-pages', 200, '--interval', 200,
                                     *opts)
        check_loop(base, iters, final, summ)
        check_eq(summ['converged'], True, 'converged')
        check('until-pages' in summ['reason'], f'reason: {summ["reason"]}')
        check(len(iters) <= 3, f'{len(iters)} iterations for a {HOT}-page hot set')
        check(iters[0]['pages_written'] >= FILLED, f'the full dump stores every page: {iters[0]}')
        check(iters[-1]['pages_written'] <= 200, f'the last iteration: {iters[-1]}')
        for e in iters[1:]:
            check(e['dirty_mib_per_s'] > 0, f'dirty rate of a spinning target: {e}')
            check(e['pages_parent'] >= FILLED - HOT - 64, f'most pages in the parent: {e}')
        check_eq(iters[0]['dirty_mib_per_s'], 0, 'no dirty rate for the first dump')
        check(final['pages_written'] < 1000, f'the final dump is small: {final}')
        check_eq(state(t.pid), 'T', 'target state after --then leave-stopped (default)')
        doc = verify(ctx, os.path.join(base, 'final'), t.pid)
        check(doc['pages_compared'] >= FILLED, f'verify compared the filled pages: {doc}')
        # show reads the final dump and its chain
        show = ctx.json('show', os.path.join(base, 'final'))
        check(show, 'show -j of BASE/final')
        check(not tmp_leftovers(base), f'temporary directories left: {tmp_leftovers(base)}')
        # stopped means stopped: nothing changes while the target is in T
        time.sleep(0.2)
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_converges_on_hot_set(ctx):
    converges_on_hot_set(ctx)


def test_precopy_converges_scan_pagemap(ctx):
    converges_on_hot_set(ctx, '--scan', 'pagemap')


def test_precopy_human_output(ctx):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        out = ctx.ok('precopy', t.pid, '-D', base, '--until-pages', 200, '--interval', 100)
        lines = out.splitlines()
        check(lines[0].split()[:2] == ['ITER', 'PAGES'], f'header: {lines[0]!r}')
        check(lines[1].startswith('1 ') and lines[1].endswith('(full)'), f'first row: {lines[1]!r}')
        check(any(ln.startswith('final ') for ln in lines), f'no final row:\n{out}')
        check('until-pages' in out and 'final freeze' in out, f'summary lines:\n{out}')
        check('\033' not in out, 'no terminal control sequences when stdout is not a tty')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_layout_changes(ctx):
    # the target maps, unmaps, discards, reprotects and moves memory between
    # the iterations (and during them): the final chain still equals it
    for scan in ('ioctl', 'pagemap'):
        t = workload(ctx, HOT)
        base = os.path.join(ctx.tmp, 'pc-' + scan)
        p = subprocess.Popen([ctx.bin, '-j', 'precopy', str(t.pid), '-D', base, '--interval', '600',
                              '--max-iters', '4', '--scan', scan], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ctx.env)
        try:
            wait_for(lambda: os.path.isdir(os.path.join(base, '1')) or p.poll() is not None, 10,
                     'BASE/1')
            t.map('c', 'anon', 100)
            t.fill('c', 0, 100, 9)
            t.unmap('a', 100, 100)
            t.dontneed('a', 300, 10)
            t.map('s', 'shared', 20)
            t.fill('s', 0, 20, 3)
            wait_for(lambda: os.path.isdir(os.path.join(base, '2')) or p.poll() is not None, 10,
                     'BASE/2')
            t.fill('c', 50, 50, 0)
            t.fill('a', 1000, 10, 0)
            t.write('s', 5)
            t.mprotect('a', 2000, 5, 'r')
            t.remap('c', 200, move=True)
            t.fill('c', 150, 50, 4)
            out, err = p.communicate(timeout=20)
            no_sanitizer(err, 'precopy')
            check_eq(p.returncode, 0, f'precopy --scan {scan} exit (stderr {err.strip()})')
            iters, final = [], None
            for e in events(out)[:-1]:
                if e['event'] == 'final':
                    final = e
                else:
                    iters.append(e)
            check_loop(base, iters, final, events(out)[-1])
            check(len(iters) >= 2, f'--scan {scan}: {len(iters)} iterations')
            verify(ctx, os.path.join(base, 'final'), t.pid)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            release(t)


def test_precopy_until_ratio(ctx):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--until-ratio', 0.5, '--interval', 100,
                                     '--max-iters', 5)
        check_loop(base, iters, final, summ)
        # the ratio compares incremental iterations, never one with the full dump
        check(len(iters) >= 3, f'stopped after {len(iters)} iterations: {summ["reason"]}')
        last, before = iters[-1]['pages_written'], iters[-2]['pages_written']
        if summ['converged']:
            check('until-ratio' in summ['reason'], f'reason: {summ["reason"]}')
            check(last <= 0.5 * before, f'converged with {last} pages after {before}')
        else:
            check('not converge' in summ['reason'] or 'max-iters' in summ['reason'],
                  f'reason: {summ["reason"]}')
            check(last > 0.5 * before, f'{last} pages after {before} is under the ratio')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_idle_target_until_pages_zero(ctx):
    # --until-pages 0: stop once an iteration writes no page at all.  An idle
    # target writes nothing after the full dump: iteration 2 is empty.
    t = workload(ctx, 0, filled=400)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--until-pages', 0, '--interval', 50)
        check_loop(base, iters, final, summ)
        check_eq(iters[1]['pages_written'], 0, 'pages written by an idle target')
        check('not converge' not in summ['reason'],
              f'an idle target (0 pages written) reported as not converging: {summ}')
        check_eq(summ['converged'], True, f'converged with --until-pages 0 ({summ["reason"]})')
        check_eq(len(iters), 2, 'iterations: the second wrote 0 pages <= 0')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_idle_target_defaults(ctx):
    # no threshold given: an iteration that writes nothing leaves nothing to
    # copy; the loop must not call that "does not converge"
    t = workload(ctx, 0, filled=400)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--interval', 50)
        check_loop(base, iters, final, summ)
        check('not converge' not in summ['reason'],
              f'an idle target (0 pages written) reported as not converging: {summ}')
        check_eq(summ['converged'], True, f'converged ({summ["reason"]})')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_until_options_exclusive(ctx):
    t = workload(ctx, 0, filled=16)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        rc, out, err = ctx.run('precopy', t.pid, '-D', base, '--until-pages', 10,
                               '--until-ratio', 0.5)
        check_eq(rc, 2, f'exit of --until-pages with --until-ratio (stderr {err.strip()})')
        check(not os.path.exists(os.path.join(base, '1')), 'no dump on a usage error')
        check(state(t.pid) not in ('T', 't'), 'target left running')
    finally:
        release(t)


def test_precopy_does_not_converge(ctx):
    t = workload(ctx, FILLED)    # every page rewritten all the time
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--max-iters', 3, '--interval', 100,
                                     '--until-pages', 200)
        check_loop(base, iters, final, summ)
        check_eq(summ['converged'], False, 'converged')
        check(2 <= len(iters) <= 3, f'{len(iters)} iterations with --max-iters 3')
        check('not converge' in summ['reason'] or 'max-iters' in summ['reason'],
              f'reason: {summ["reason"]}')
        # (the final dump follows the last iteration at once: it sees less)
        for e in iters[1:]:
            check(e['pages_written'] >= FILLED - 64, f'everything rewritten: {e}')
        check_eq(state(t.pid), 'T', 'target state after the final dump')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_max_iters(ctx):
    # a hot set that never falls under --until-pages: --max-iters ends the loop
    t = workload(ctx, 512)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--max-iters', 2, '--interval', 50,
                                     '--until-pages', 10)
        check_loop(base, iters, final, summ)
        check_eq(len(iters), 2, 'iterations')
        check_eq(summ['converged'], False, 'converged')
        check('max-iters' in summ['reason'], f'reason: {summ["reason"]}')
        verify(ctx, os.path.join(base, 'final'), t.pid)
        os.kill(t.pid, signal.SIGCONT)
        # --max-iters 1: the full dump and the final one
        base1 = os.path.join(ctx.tmp, 'pc1')
        iters, final, summ = precopy(ctx, t.pid, base1, '--max-iters', 1)
        check_loop(base1, iters, final, summ)
        check_eq(len(iters), 1, 'iterations with --max-iters 1')
        verify(ctx, os.path.join(base1, 'final'), t.pid)
    finally:
        release(t)


def test_precopy_link_model(ctx):
    # --link-mbps: the estimated downtime adds the transfer of the dump
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    mbps = 1000.0
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--link-mbps', mbps, '--until-pages', 200,
                                     '--max-iters', 4)
        check_loop(base, iters, final, summ)
        for e in iters:
            want = e['dump_ms'] + e['bytes_written'] * 8 / (mbps * 1e6) * 1e3
            check(abs(e['est_downtime_ms'] - want) <= 0.01 + want * 1e-4,
                  f'est_downtime_ms {e["est_downtime_ms"]}, want {want:.3f}: {e}')
        verify(ctx, os.path.join(base, 'final'), t.pid)
    finally:
        release(t)


# -- --then ----------------------------------------------------------------

def test_precopy_then_resume(ctx):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--until-pages', 200, '--interval', 100,
                                     '--then', 'resume')
        check_loop(base, iters, final, summ)
        st = state(t.pid)
        check(st not in ('T', 't', None), f'target state after --then resume: {st}')
        c = t.spincount()
        t.wait_spinning(c + 10)      # the spinner runs again
        t.write('b', 1)              # and the command loop answers
        verify(ctx, os.path.join(base, 'final'))
    finally:
        release(t)


def test_precopy_then_kill(ctx):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        iters, final, summ = precopy(ctx, t.pid, base, '--until-pages', 200, '--interval', 100,
                                     '--then', 'kill')
        check_loop(base, iters, final, summ)
        rc = t.wait(5)
        check_eq(rc, -signal.SIGKILL, 'target exit status after --then kill')
        verify(ctx, os.path.join(base, 'final'))
    finally:
        release(t)


# -- SIGINT / SIGTERM --------------------------------------------------------

def check_interrupted(ctx, t, base, out):
    """After an interrupted run: every dump there is whole and verifies, no
    temporary directory, the target runs and answers."""
    evs = events(out)
    summ = evs[-1]
    check_eq(summ['interrupted'], True, 'summary interrupted')
    check_eq(summ['converged'], False, 'summary converged')
    check_eq(summ['reason'], 'interrupted', 'summary reason')
    check_eq(summ['target'], 'running', 'summary target after an interrupt')
    check_eq(summ['then'], 'leave-stopped', 'summary then (the default)')
    if summ['final'] is None:
        check_eq(summ['final_freeze_ms'], None, 'no final dump: no final_freeze_ms')
    check(not tmp_leftovers(base), f'temporary directories left: {tmp_leftovers(base)}')
    names = sorted(os.listdir(base))
    nums = sorted(int(n) for n in names if n.isdigit())
    check(nums and nums == list(range(1, len(nums) + 1)), f'dumps in {base}: {names}')
    check_eq(summ['iterations'], len(nums), f'summary iterations ({names})')
    for n in nums:
        verify(ctx, os.path.join(base, str(n)))
    last = os.path.join(base, 'final') if 'final' in names else os.path.join(base, str(nums[-1]))
    check_eq(os.path.realpath(summ['last']), os.path.realpath(last), 'summary last')
    if 'final' in names:
        # interrupted during the final dump: complete, not announced as a cut-over
        verify(ctx, last)
    st = state(t.pid)
    check(st not in ('T', 't', None), f'target state after the interrupt: {st}')
    c = t.spincount()
    t.wait_spinning(c + 10)
    t.write('b', 1, byte=0x3C)
    check_eq(t.read('b', 1), 0x3C, 'the target answers commands')
    return names, summ


def interrupt_idle(ctx, sig):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    p = None
    try:
        p = subprocess.Popen([ctx.bin, '-j', 'precopy', str(t.pid), '-D', base, '--interval', '5000',
                              '--max-iters', '50'], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ctx.env)
        first = os.path.join(base, '1')
        wait_for(lambda: os.path.isdir(first) or p.poll() is not None, 10, f'{first}')
        check(p.poll() is None, f'precopy ended early: {p.poll()}')
        show = ctx.json('show', first)     # complete as soon as it exists
        check(show, 'show -j of BASE/1')
        time.sleep(0.3)                    # well inside the 5 s interval
        t0 = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
        no_sanitizer(err, 'precopy')
        check(time.monotonic() - t0 < 3, f'{sig!r} handled promptly, not after the interval')
        check_eq(p.returncode, EXIT_INTERRUPTED, f'precopy exit after {sig!r} (stderr {err.strip()})')
        names, summ = check_interrupted(ctx, t, base, out)
        check_eq(names, ['1'], 'dumps after an interrupt in the first interval')
        check(summ['final'] is None, f'summary final: {summ}')
        # interrupted the tracking session stays usable: a later dump on top works
        doc = ctx.json('dump', t.pid, '-D', os.path.join(base, '2'), '--parent', first)
        check_eq(doc['full'], False, 'incremental dump after the interrupt')
        verify(ctx, os.path.join(base, '2'))
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        release(t)


def test_precopy_sigint(ctx):
    interrupt_idle(ctx, signal.SIGINT)


def test_precopy_sigterm(ctx):
    interrupt_idle(ctx, signal.SIGTERM)


def test_precopy_interrupt_anytime(ctx):
    # signals at arbitrary moments, inside dumps too (short interval, big
    # dumps): whatever is on disk afterwards is whole
    t = workload(ctx, FILLED, filled=FILLED)
    try:
        for k, delay in enumerate((0, 0.03, 0.08, 0.15, 0.25, 0.35)):
            base = os.path.join(ctx.tmp, f'pc{k}')
            sig = signal.SIGINT if k % 2 == 0 else signal.SIGTERM
            p = subprocess.Popen([ctx.bin, '-j', 'precopy', str(t.pid), '-D', base,
                                  '--interval', '20', '--max-iters', '50'],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=ctx.env)
            try:
                wait_for(lambda: os.path.isdir(base) or p.poll() is not None, 10, base)
                time.sleep(delay)
                if p.poll() is None:
                    p.send_signal(sig)
                out, err = p.communicate(timeout=15)
                no_sanitizer(err, 'precopy')
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            evs = events(out)
            check_eq(p.returncode, EXIT_INTERRUPTED if evs[-1]['interrupted'] else 0,
                     f'precopy exit (stderr {err.strip()})')
            if not evs[-1]['interrupted']:
                # the loop ended on its own before the signal came: a full run
                os.kill(t.pid, signal.SIGCONT)
                continue
            if not os.path.isdir(os.path.join(base, '1')):
                # the signal came before the first dump was done: nothing to see
                check(not tmp_leftovers(base), f'temporary directories: {tmp_leftovers(base)}')
                continue
            check_interrupted(ctx, t, base, out)
    finally:
        release(t)


# -- errors ----------------------------------------------------------------

def test_precopy_base_not_empty(ctx):
    t = workload(ctx, 0, filled=16)
    base = os.path.join(ctx.tmp, 'pc')
    try:
        os.makedirs(os.path.join(base, '1'))
        with open(os.path.join(base, '1', 'junk'), 'w') as f:
            f.write('x')
        rc, out, err = ctx.run('precopy', t.pid, '-D', base, '--max-iters', 2)
        check_eq(rc, 2, f'exit with a non-empty BASE/1 (stderr {err.strip()})')
        check(err.strip(), 'an error message')
        check(not os.path.exists(os.path.join(base, 'final')), 'no final dump')
        check(not tmp_leftovers(base), f'temporary directories: {tmp_leftovers(base)}')
        check(state(t.pid) not in ('T', 't'), 'target left running')
    finally:
        release(t)


def test_precopy_target_gone(ctx):
    t = workload(ctx, 0, filled=16)
    pid = t.pid
    t.exit(0)
    base = os.path.join(ctx.tmp, 'pc')
    rc, out, err = ctx.run('precopy', pid, '-D', base)
    check_eq(rc, 5, f'exit for a process that is gone (stderr {err.strip()})')
    check(not os.path.exists(os.path.join(base, '1')), 'no dump')


def test_precopy_target_dies_midway(ctx):
    t = workload(ctx, HOT)
    base = os.path.join(ctx.tmp, 'pc')
    p = subprocess.Popen([ctx.bin, '-j', 'precopy', str(t.pid), '-D', base, '--interval', '300'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ctx.env)
    try:
        wait_for(lambda: os.path.isdir(os.path.join(base, '1')) or p.poll() is not None, 10, 'BASE/1')
        t.kill()
        out, err = p.communicate(timeout=10)
        no_sanitizer(err, 'precopy')
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        release(t)
    check_eq(p.returncode, 5, f'precopy exit once the target is gone (stderr {err.strip()})')
    check('no such process' in err or 'gone' in err or 'exited' in err, f'message: {err.strip()}')
    last = json.loads(out.splitlines()[-1])
    check_eq(last.get('error', {}).get('exit'), 5, f'-j error document: {last}')
    check(not tmp_leftovers(base), f'temporary directories: {tmp_leftovers(base)}')
    check(not os.path.exists(os.path.join(base, 'final')), 'no final dump')
    for n in sorted(os.listdir(base)):
        verify(ctx, os.path.join(base, n))     # what was completed stays valid


# -- examples/precopy.sh -----------------------------------------------------

def script(ctx, *args, env=None, timeout=30):
    e = dict(ctx.env, DIRTYTRACK=ctx.bin, INTERVAL='0.2')
    e.update(env or {})
    r = subprocess.run(['bash', SCRIPT, *map(str, args)], capture_output=True, text=True,
                       env=e, timeout=timeout)
    no_sanitizer(r.stderr, 'examples/precopy.sh')
    return r.returncode, r.stdout, r.stderr


def check_script_run(ctx, t, src, dest, out):
    names = sorted(os.listdir(dest))
    check('final' in names, f'DEST holds {names}')
    nums = sorted(int(n) for n in names if n.isdigit())
    check(nums == list(range(1, len(nums) + 1)), f'DEST holds {names}')
    check_eq(names, sorted(os.listdir(src)), 'DEST holds what SRC holds')
    check(not [n for n in names if n.startswith('.')], f'staging directories left: {names}')
    for n in nums:
        verify(ctx, os.path.join(dest, str(n)))
        with open(os.path.join(src, str(n), 'inventory.img'), 'rb') as a, \
                open(os.path.join(dest, str(n), 'inventory.img'), 'rb') as b:
            check(a.read() == b.read(), f'inventory of {n} copied as is')
    check(os.path.islink(os.path.join(dest, 'final', 'parent')), 'the parent link is a link in DEST')
    check_eq(os.readlink(os.path.join(dest, 'final', 'parent')),
             os.readlink(os.path.join(src, 'final', 'parent')), 'final parent link in DEST')
    check_eq(state(t.pid), 'T', 'target left stopped by the final dump')
    verify(ctx, os.path.join(dest, 'final'), t.pid)
    rc, dout, derr = ctx.run('diff', os.path.join(src, 'final'), os.path.join(dest, 'final'))
    check(rc == 0 or 'unknown command' in derr.lower(),
          f'diff SRC/final DEST/final: exit {rc}: {dout}{derr}')
    return nums


def test_precopy_example_script(ctx):
    check(shutil.which('rsync'), 'rsync is not installed: add it to bootstrap.sh')
    t = workload(ctx, HOT)
    # blanks in the paths, a trailing slash: quoting
    src, dest = os.path.join(ctx.tmp, 'src dir'), os.path.join(ctx.tmp, 'dest $x dir')
    try:
        rc, out, err = script(ctx, t.pid, src, dest + '/', 5, 200)
        check_eq(rc, 0, f'precopy.sh exit; stdout:\n{out}\nstderr:\n{err}')
        nums = check_script_run(ctx, t, src, dest, out)
        check(len(nums) <= 3, f'{len(nums)} iterations for a {HOT}-page hot set')
        check('converged' in out and 'EQUAL' in out, f'output:\n{out}')
    finally:
        release(t)


def test_precopy_example_script_no_convergence(ctx):
    check(shutil.which('rsync'), 'rsync is not installed: add it to bootstrap.sh')
    t = workload(ctx, FILLED)
    src, dest = os.path.join(ctx.tmp, 'src'), os.path.join(ctx.tmp, 'dest')
    try:
        rc, out, err = script(ctx, t.pid, src, dest, 3, 200)
        check_eq(rc, 0, f'precopy.sh exit; stdout:\n{out}\nstderr:\n{err}')
        nums = check_script_run(ctx, t, src, dest, out)
        check(2 <= len(nums) <= 3, f'{len(nums)} iterations with MAX_ITERS 3')
        check('did not converge' in out, f'output:\n{out}')
    finally:
        release(t)


def test_precopy_example_script_errors(ctx):
    t = workload(ctx, 0, filled=16)
    src, dest = os.path.join(ctx.tmp, 'src'), os.path.join(ctx.tmp, 'dest')
    try:
        for args in ((), (t.pid, src), ('x', src, dest), (t.pid, src, dest, 0),
                     (t.pid, src, dest, 3, 'y'), (t.pid, src, dest, 3, 2, 1)):
            rc, out, err = script(ctx, *args)
            check_eq(rc, 2, f'precopy.sh {args}: exit (stderr {err.strip()})')
            check('precopy.sh' in err, f'precopy.sh {args}: message {err!r}')
        rc, out, err = script(ctx, t.pid, src, dest, env={'RSYNC': '/nonexistent/rsync'})
        check_eq(rc, 2, f'exit without rsync (stderr {err.strip()})')
        check('rsync' in err and 'install' in err, f'message without rsync: {err!r}')
        rc, out, err = script(ctx, t.pid, src, dest, env={'DIRTYTRACK': '/nonexistent/dt'})
        check_eq(rc, 2, f'exit without dirtytrack (stderr {err.strip()})')
        check('dirtytrack' in err, f'message without dirtytrack: {err!r}')
        os.makedirs(os.path.join(dest, '1'))
        rc, out, err = script(ctx, t.pid, src, dest)
        check_eq(rc, 2, f'exit with an earlier DEST/1 (stderr {err.strip()})')
        check('exists' in err, f'message: {err!r}')
        check(state(t.pid) not in ('T', 't'), 'target left running')
    finally:
        release(t)


SLOW_RSYNC = """#!/bin/sh
# rsync, but the staging directory exists (half copied) for a while first
for last; do :; done
mkdir -p "$last" && touch "$last/half-copied"
echo copying >"$STAGED"
sleep 3
exec rsync "$@"
"""


def script_interrupted(ctx, group):
    """SIGINT while the script copies a dump: exit 130, the half copy removed,
    DEST holds whole verified copies only, the target runs on.  group: the
    signal goes to the whole process group, as a Ctrl-C of the terminal does."""
    t = workload(ctx, FILLED)
    src, dest = os.path.join(ctx.tmp, 'src'), os.path.join(ctx.tmp, 'dest')
    rsync = os.path.join(ctx.tmp, 'slow-rsync')
    staged = os.path.join(ctx.tmp, 'staged')
    with open(rsync, 'w') as f:
        f.write(SLOW_RSYNC)
    os.chmod(rsync, 0o755)
    env = dict(ctx.env, DIRTYTRACK=ctx.bin, INTERVAL='0.1', RSYNC=rsync, STAGED=staged)
    p = subprocess.Popen(['bash', SCRIPT, str(t.pid), src, dest, '50'], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(staged) or p.poll() is not None, 20, 'the first copy')
        check(p.poll() is None, f'precopy.sh ended early: {p.poll()}')
        if group:
            os.killpg(p.pid, signal.SIGINT)
        else:
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    no_sanitizer(err, 'examples/precopy.sh')
    try:
        check_eq(p.returncode, 130, f'precopy.sh exit after SIGINT (stderr {err.strip()})')
        check('interrupted' in err and 'keeps running' in err, f'message: {err!r}')
        names = sorted(os.listdir(dest))
        check_eq([n for n in names if n.startswith('.')], [], 'staging directories in DEST')
        check(not tmp_leftovers(src), f'temporary directories in SRC: {tmp_leftovers(src)}')
        for n in names:
            verify(ctx, os.path.join(dest, n))
        for n in sorted(os.listdir(src)):
            verify(ctx, os.path.join(src, n))
        check(state(t.pid) not in ('T', 't', None), f'target state: {state(t.pid)}')
    finally:
        release(t)


def test_precopy_example_script_sigint(ctx):
    script_interrupted(ctx, group=False)


def test_precopy_example_script_ctrl_c(ctx):
    script_interrupted(ctx, group=True)
