"""Exact dirty-page sets: which pages of the target does dirtytrack report as
written, for every kind of memory and every way of changing it.

Every scenario runs twice, once tracked with --scan ioctl and once with
--scan pagemap (start, status and watch all get the same --scan); each run
must give the exact expected set, and both runs must observe the same sets.

Sets are always intersected with the test's own regions (the target's own
bookkeeping dirties a few of its other pages) and kept as (region, page
index) pairs, so that runs in different processes compare equal.

Needs `status --pages` / `watch --pages` (a "ranges" list of written
["0xSTART", "0xEND"] ranges, sorted, coalesced, end exclusive).
"""
import json
import os
import re
import subprocess
import time

from common import PAGE, check, check_eq

BACKENDS = ('ioctl', 'pagemap')
WATCH_INTERVAL_MS = 1000


# -- sets of pages -----------------------------------------------------------

def pg(name, *specs):
    """{(name, index)} for page indices and ranges of indices."""
    out = set()
    for s in specs:
        out |= {(name, i) for i in (s if isinstance(s, range) else (s,))}
    return out


def parse_ranges(doc, total_key):
    """The "ranges" of a document as [(start, end)], checked to be well-formed
    and to add up to doc[total_key] pages."""
    check('ranges' in doc, f'no "ranges" in {sorted(doc)} (is --pages implemented?)')
    out, prev_end = [], -1
    for r in doc['ranges']:
        check(isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r),
              f'range {r!r} is not ["0xSTART", "0xEND"]')
        s, e = int(r[0], 16), int(r[1], 16)
        check(s < e and s % PAGE == 0 and e % PAGE == 0, f'bad range {r!r}')
        if s <= prev_end:
            raise AssertionError(f'ranges not sorted and coalesced at {r!r}: {doc["ranges"]}')
        out.append((s, e))
        prev_end = e
    check_eq(sum(e - s for s, e in out) // PAGE, doc[total_key], f'pages in ranges vs {total_key}')
    return out


def in_interval_sleep(pid):
    """Is process pid in clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)
    (how watch waits for the end of an interval)?"""
    try:
        with open(f'/proc/{pid}/syscall') as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 2 and fields[0] == '230' and fields[1:3] == ['0x1', '0x1']


def write_each(t, name, pages):
    """One `write` per page (separate runs of pages), pipelined."""
    for i in pages:
        t.send(f'write {name} {i}')
    for i in pages:
        t.reply()


def in_regions(t, ranges):
    """Written ranges restricted to the target's regions, as (name, index)."""
    out = set()
    for name, (base, n) in t.regions.items():
        end = base + n * PAGE
        for s, e in ranges:
            lo, hi = max(s, base), min(e, end)
            out |= {(name, (a - base) // PAGE) for a in range(lo, hi, PAGE)}
    return out


def show(pages):
    """Compact text of a (name, index) set: a[1-3,7] b[0]."""
    parts = []
    for name in sorted({n for n, _ in pages}):
        idx, runs = sorted(i for n, i in pages if n == name), []
        for i in idx:
            if runs and runs[-1][1] == i - 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        parts.append(name + '[' + ','.join(f'{a}-{b}' if a != b else f'{a}' for a, b in runs) + ']')
    return ' '.join(parts) or '{}'


# -- one tracked target ------------------------------------------------------

class Run:
    """A target tracked with one backend; records every observed set."""

    def __init__(self, ctx, t, backend):
        self.ctx, self.t, self.backend = ctx, t, backend
        self.log = []

    def path(self, name):
        return os.path.join(self.ctx.tmp, f'{name}-{self.backend}')

    def map(self, name, kind, n):
        """map, heap or stack region `name` of kind `kind` (files in ctx.tmp)."""
        if kind in ('heap', 'stack'):
            return getattr(self.t, kind)(name, n)
        return self.t.map(name, kind, n, self.path(name) if kind.startswith('file') else None)

    def start(self):
        doc = self.ctx.json('start', self.t.pid, '--scan', self.backend)
        check(not doc['already_tracked'], f'already tracked: {doc}')
        return doc

    def status(self):
        doc = self.ctx.json('status', self.t.pid, '--scan', self.backend, '--pages')
        check_eq(doc['tracking'], 'on', 'tracking')
        return doc

    def expect(self, what, want):
        """status twice: the exact set, and no consuming in between."""
        d1 = self.status()
        got = in_regions(self.t, parse_ranges(d1, 'written_pages'))
        d2 = self.status()
        again = in_regions(self.t, parse_ranges(d2, 'written_pages'))
        self.log.append((what, sorted(got)))
        if got != want:
            raise AssertionError(f'{what}: written {show(got)}, want {show(want)}; '
                                 f'extra {show(got - want)}, missing {show(want - got)}')
        if again != got:
            raise AssertionError(f'{what}: a second status differs: {show(again)} vs {show(got)}')
        check_eq(d2['collections'], d1['collections'], f'{what}: status consumed')
        return d2

    def vma(self, name, page=0, doc=None):
        """The status entry of the VMA holding page `page` of region name."""
        a = self.t.page_addr(name, page)
        for v in (doc or self.status())['vmas']:
            if int(v['start'], 16) <= a < int(v['end'], 16):
                return v
        raise AssertionError(f'no VMA holds {name}[{page}] ({a:#x})')

    def expect_state(self, name, page, state, doc=None):
        v = self.vma(name, page, doc)
        check_eq(v['state'], state, f'state of the VMA of {name}[{page}] ({v})')

    def collections(self):
        """Consuming collections so far; -1 while the target is not tracked."""
        return self.ctx.json('status', self.t.pid, '--scan', self.backend).get('collections', -1)

    def watch(self, workload=None):
        """One `watch --count 1 --pages` whose one interval holds workload().
        The watch's first collection (its discarded baseline) is awaited:
        status shows it counted and the watch sleeps in its interval; and
        workload() must finish before the interval can end.
        Returns the interval's line, with "got": its set in the regions."""
        before = self.collections()
        # an untracked target is armed first (collections 1, then 0), then
        # baselined (1): hence the check that the watch is sleeping too
        baseline = before + 1 if before >= 0 else 1
        not_yet = launched = time.monotonic()   # the baseline comes later
        p = subprocess.Popen([self.ctx.bin, '-j', 'watch', str(self.t.pid), '--count', '1',
                              '--interval', str(WATCH_INTERVAL_MS), '--pages',
                              '--scan', self.backend],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.ctx.env)
        try:
            while True:
                now = time.monotonic()
                if self.collections() < baseline:
                    not_yet = now
                elif in_interval_sleep(p.pid):
                    break
                if p.poll() is not None:
                    raise AssertionError(f'watch exited early: {p.communicate()}')
                check(now - launched < 10, 'watch not seen waiting for its interval within 10 s')
            if workload:
                workload()
            check(time.monotonic() < not_yet + WATCH_INTERVAL_MS / 1000,
                  'the workload outlasted the watch interval')
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        check_eq(p.returncode, 0, f'watch exit status (stderr {err.strip()!r})')
        lines = out.splitlines()
        check_eq(len(lines), 1, f'watch --count 1 lines: {out!r}')
        doc = json.loads(lines[0])
        check_eq(doc['iteration'], 1, 'iteration')
        doc['got'] = in_regions(self.t, parse_ranges(doc, 'pages'))
        self.log.append(('watch', sorted(doc['got'])))
        return doc

    def expect_watch(self, what, want, workload=None):
        doc = self.watch(workload)
        if doc['got'] != want:
            raise AssertionError(f'{what}: watch reported {show(doc["got"])}, want {show(want)}')
        return doc


def both_backends(ctx, scenario):
    """Run scenario(run) once per backend, each on a fresh target; fail
    with every backend's failure, or if the backends saw different sets."""
    logs, errors = {}, []
    for backend in BACKENDS:
        with ctx.target() as t:
            run = Run(ctx, t, backend)
            try:
                scenario(run)
            except Exception as e:  # noqa: BLE001 - report both backends
                errors.append(f'[--scan {backend}] {type(e).__name__}: {e}')
            logs[backend] = run.log
    if errors:
        raise AssertionError('\n'.join(errors))
    for (w1, s1), (w2, s2) in zip(logs['ioctl'], logs['pagemap']):
        if s1 != s2:
            raise AssertionError(f'{w1}: ioctl saw {show(set(s1))}, pagemap saw {show(set(s2))}')
    check_eq(len(logs['pagemap']), len(logs['ioctl']), 'observations per backend')


# -- write, look twice, consume ----------------------------------------------

def test_dirty_write_status_watch(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 64)
        t.fill('a', 0, 32, 0x11)                # half present, half never touched
        r.start()
        r.expect('after start', set())
        t.write('a', 1, 3)
        t.write('a', 40)
        t.write('a', 63)
        written = pg('a', range(1, 4), 40, 63)
        r.expect('after writes', written)
        # watch: the writes above fall in its discarded baseline; only
        # the writes made during its interval are reported
        doc = r.expect_watch('watch', pg('a', 10, 50), lambda: (t.write('a', 10), t.write('a', 50)))
        check(doc['pages_by_kind']['anon'] >= 2, f'pages_by_kind {doc["pages_by_kind"]}')
        r.expect('after the watch consumed', set())
        t.write('a', 20)
        r.expect('a later write', pg('a', 20))
        t.write('a', 1)                        # written before, consumed since
        r.expect('a page written again', pg('a', 1, 20))
    both_backends(ctx, scenario)


# -- every kind of memory ----------------------------------------------------

def kind_scenario(kind, n=32):
    def scenario(r):
        t = r.t
        r.map('a', kind, n)
        t.fill('a', 0, n // 2, 0x11)            # half present, half never touched
        r.start()
        r.expect('after start', set())
        t.read('a', 0, n)
        r.expect('after reading every page', set())
        t.write('a', 1)
        t.write('a', n // 2 - 1, 2)             # one present page, one not
        t.fill('a', n - 3, 3, 0x22)
        want = pg('a', 1, n // 2 - 1, n // 2, range(n - 3, n))
        r.expect('after writes', want)
        r.watch()
        r.expect('after a consuming watch', set())
        t.write('a', 2)
        r.expect('after one more write', pg('a', 2))
    return scenario


def test_dirty_kind_anon(ctx):
    both_backends(ctx, kind_scenario('anon'))


def test_dirty_kind_heap(ctx):
    both_backends(ctx, kind_scenario('heap'))


def test_dirty_kind_stack(ctx):
    both_backends(ctx, kind_scenario('stack'))


def test_dirty_kind_shared(ctx):
    both_backends(ctx, kind_scenario('shared'))


def test_dirty_kind_memfd(ctx):
    both_backends(ctx, kind_scenario('memfd'))


def test_dirty_kind_filepriv(ctx):
    both_backends(ctx, kind_scenario('filepriv'))


def test_dirty_kind_fileshared(ctx):
    both_backends(ctx, kind_scenario('fileshared'))


def anon_huge_kb(pid, addr):
    """AnonHugePages of the VMA holding addr, from /proc/PID/smaps."""
    with open(f'/proc/{pid}/smaps') as f:
        inside = False
        for line in f:
            m = re.match(r'([0-9a-f]+)-([0-9a-f]+) ', line)
            if m:
                inside = int(m[1], 16) <= addr < int(m[2], 16)
            elif inside and line.startswith('AnonHugePages:'):
                return int(line.split()[1])
    raise AssertionError(f'no VMA holds {addr:#x}')


def test_dirty_kind_thp(ctx):
    def scenario(r):
        t = r.t
        base = t.map('a', 'thp', 1024)
        t.fill('a', 0, 1024, 0x11)
        check(anon_huge_kb(t.pid, base) >= 4096,
              f'region not backed by THPs: AnonHugePages {anon_huge_kb(t.pid, base)} kB')
        r.start()
        r.expect('after start', set())
        t.read('a', 0, 1024)
        r.expect('after reading', set())
        t.write('a', 7)                         # first write to the first THP
        r.expect('one write to a THP', pg('a', 7))
        t.write('a', 512 + 511)
        t.write('a', 300)
        r.expect('writes to both THPs', pg('a', 7, 300, 1023))
        r.watch()
        r.expect('after a consuming watch', set())
        t.write('a', 8)
        r.expect('after one more write', pg('a', 8))
        t.dontneed('a', 3, 2)                   # part of a THP
        t.dontneed('a', 512, 512)               # a whole THP
        r.expect('MADV_DONTNEED', pg('a', 3, 4, 8, range(512, 1024)))
    both_backends(ctx, scenario)


# -- writers other than the main thread's own stores ---------------------------

def test_dirty_threads(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 256)
        t.fill('a', 0, 64, 0x11)
        r.start()
        t.threads(8, 'a', 10, 100)
        r.expect('8 threads', pg('a', range(10, 110)))
        t.threads(5, 'a', 60, 120)
        r.expect('then 5 threads', pg('a', range(10, 180)))
        r.watch()
        r.expect('after a consuming watch', set())
        r.expect_watch('threads during a watch', pg('a', range(100, 228)),
                       lambda: t.threads(16, 'a', 100, 128))
    both_backends(ctx, scenario)


def test_dirty_sysread(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 32)
        t.map('m', 'memfd', 8)
        t.fill('a', 0, 8, 0x11)
        r.start()
        check_eq(t.sysread('a', 4, 8), 8 * PAGE, 'bytes read')
        check_eq(t.sysread('m', 1, 2), 2 * PAGE, 'bytes read')
        r.expect('read(2) into tracked memory', pg('a', range(4, 12)) | pg('m', 1, 2))
    both_backends(ctx, scenario)


def test_dirty_dontneed(ctx):
    """MADV_DONTNEED: private anonymous pages become zero (written); shared
    memory keeps its content (not written)."""
    kinds = ('anon', 'shared', 'memfd', 'fileshared')

    def scenario(r):
        t = r.t
        for k in kinds:
            r.map(k, k, 16)
            t.fill(k, 0, 16, 0x11)
        r.start()
        for k in kinds:
            t.dontneed(k, 4, 4)
        r.expect('MADV_DONTNEED', pg('anon', range(4, 8)))
        check_eq([t.read(k, 5) for k in kinds], [0, 0x11, 0x11, 0x11], 'contents after it')
        r.expect('reading the zapped pages', pg('anon', range(4, 8)))
        r.watch()
        r.expect('after a consuming watch', set())
        for k in kinds:
            t.read(k, 4)
            t.write(k, 6)
        r.expect('the zapped pages are tracked again', {(k, 6) for k in kinds})
    both_backends(ctx, scenario)


def test_dirty_dontneed_filepriv(ctx):
    """MADV_DONTNEED on copied-on-write pages of a private file mapping:
    they go back to the file's content, so they changed: written."""
    def scenario(r):
        t = r.t
        r.map('a', 'filepriv', 16)              # a new file: all zeros
        t.fill('a', 0, 16, 0x11)                # private copies of every page
        r.start()
        t.dontneed('a', 4, 4)
        check_eq(t.read('a', 5), 0, 'content after MADV_DONTNEED (the file\'s)')
        r.expect('MADV_DONTNEED of private copies', pg('a', range(4, 8)))
        t.fill('a', 10, 1, 0x33)
        r.watch()
        t.dontneed('a', 10, 1)                  # a copy made and consumed after start
        r.expect('MADV_DONTNEED of a page written after start', pg('a', 10))
    both_backends(ctx, scenario)


def test_dirty_foreign_writes(ctx):
    """Writes into the target through /proc/PID/mem (as a debugger makes),
    also forced writes into pages the target mapped read-only."""
    kinds = ('anon', 'filepriv', 'shared', 'fileshared')

    def scenario(r):
        t = r.t
        for k in kinds:
            r.map(k, k, 8)
            t.fill(k, 0, 4, 0x11)               # pages 0-3 present, 4-7 not
        t.mprotect('anon', 6, 2, 'r')
        t.mprotect('filepriv', 6, 2, 'r')
        r.start()
        fd = os.open(f'/proc/{t.pid}/mem', os.O_RDWR)
        try:
            for k in kinds:
                os.pread(fd, 1, t.page_addr(k, 2))        # reads are no writes
                for p in (1, 5) + ((6, 7) if k in ('anon', 'filepriv') else ()):
                    check_eq(os.pwrite(fd, b'\x22', t.page_addr(k, p) + 100), 1, 'pwrite')
        finally:
            os.close(fd)
        r.expect('/proc/PID/mem writes', pg('anon', 1, 5, 6, 7) | pg('filepriv', 1, 5, 6, 7)
                 | pg('shared', 1, 5) | pg('fileshared', 1, 5))
    both_backends(ctx, scenario)


# -- the address space changes -----------------------------------------------

NEW_KINDS = ('anon', 'shared', 'memfd', 'filepriv', 'fileshared')


def test_dirty_new_vma(ctx):
    def scenario(r):
        t = r.t
        t.map('old', 'anon', 8)
        t.heap('oldheap', 4)
        r.start()
        for k in NEW_KINDS:
            r.map(k, k, 8)
        t.heap('heap', 8)                       # brk grows the heap
        t.write('anon', 2)
        t.write('old', 3)
        every = set().union(*(pg(k, range(8)) for k in NEW_KINDS + ('heap',)))
        doc = r.expect('mappings made after start', every | pg('old', 3))
        for k in NEW_KINDS:
            r.expect_state(k, 0, 'new', doc)
            check_eq(r.vma(k, 0, doc)['written_pages'], int(r.vma(k, 0, doc)['bytes']) // PAGE,
                     f'written_pages of the new {k} VMA')
        r.expect_state('old', 0, 'tracked', doc)
        r.watch()
        doc = r.expect('after a consuming watch', set())
        for k in NEW_KINDS:
            r.expect_state(k, 0, 'tracked', doc)
        for k in NEW_KINDS + ('heap',):
            t.write(k, 5)
        r.expect('writes to the now tracked mappings', {(k, 5) for k in NEW_KINDS + ('heap',)})
    both_backends(ctx, scenario)


def test_dirty_new_vma_during_watch(ctx):
    def scenario(r):
        t = r.t
        t.map('old', 'anon', 8)
        r.start()

        def work():
            t.map('n', 'anon', 8)
            r.map('f', 'fileshared', 4)
            t.write('n', 1)
            t.write('old', 3)
        r.expect_watch('mappings made during the interval', pg('n', range(8)) | pg('f', range(4))
                       | pg('old', 3), work)
        doc = r.expect('after the watch', set())
        r.expect_state('n', 0, 'tracked', doc)
        r.expect_state('f', 0, 'tracked', doc)
        t.write('n', 4)
        r.expect('a write to the new mapping', pg('n', 4))
    both_backends(ctx, scenario)


def test_dirty_mremap_grow(ctx):
    def scenario(r):
        t = r.t
        base = t.map('a', 'anon', 16)
        t.remap('a', 8)                         # leave 8 free pages after it
        t.fill('a', 0, 8, 0x11)
        r.start()
        check_eq(t.remap('a', 16), base, 'mremap grew in place')
        t.write('a', 2)
        r.expect('grown in place', pg('a', 2, range(8, 16)))
        r.watch()
        r.expect('after a consuming watch', set())
        t.write('a', 12)
        t.write('a', 3)
        r.expect('writes after the grow', pg('a', 3, 12))
    both_backends(ctx, scenario)


def test_dirty_mremap_move(ctx):
    def scenario(r):
        t = r.t
        old = t.map('a', 'anon', 8)
        t.fill('a', 0, 4, 0x11)                 # half present, half never touched
        r.start()
        check(t.remap('a', 8, move=True) != old, 'mremap did not move')
        t.write('a', 1)
        doc = r.expect('moved', pg('a', range(8)))
        r.expect_state('a', 0, 'new', doc)
        r.watch()
        doc = r.expect('after a consuming watch', set())
        r.expect_state('a', 0, 'tracked', doc)
        t.write('a', 3)
        r.expect('a write after the move', pg('a', 3))
    both_backends(ctx, scenario)


def test_dirty_mapfixed(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 16)
        t.fill('a', 0, 16, 0x11)
        r.start()
        t.mapfixed('a', 4, 4)
        t.write('a', 10)
        doc = r.expect('MAP_FIXED over pages 4-7', pg('a', range(4, 8), 10))
        r.expect_state('a', 4, 'new', doc)
        r.expect_state('a', 0, 'tracked', doc)
        r.expect_state('a', 8, 'tracked', doc)
        r.watch()
        doc = r.expect('after a consuming watch', set())
        r.expect_state('a', 4, 'tracked', doc)
        t.write('a', 5)
        r.expect('a write to the new part', pg('a', 5))
    both_backends(ctx, scenario)


def test_dirty_fork(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 8)
        t.map('s', 'shared', 4)
        t.fill('a', 0, 8, 0x11)
        t.fill('s', 0, 4, 0x11)
        r.start()
        t.forkwrite('a', 2)
        r.expect("the child's write to private memory", set())
        t.write('a', 5)
        t.write('a', 2)                         # COW-shared with the child
        r.expect('parent writes after fork', pg('a', 2, 5))
        t.fork()
        t.write('a', 6)
        t.write('s', 1)
        r.expect('parent writes after a second fork', pg('a', 2, 5, 6) | pg('s', 1))
    both_backends(ctx, scenario)


def test_dirty_many_scattered(ctx):
    """More written runs than one PAGEMAP_SCAN call returns (4096 regions)."""
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 10000)
        t.fill('a', 0, 5000, 0x11)
        r.start()
        write_each(t, 'a', range(0, 10000, 2))
        r.expect('every other page', pg('a', range(0, 10000, 2)))
        r.expect_watch('every third page during a watch', pg('a', range(1, 10000, 3)),
                       lambda: write_each(t, 'a', range(1, 10000, 3)))
        r.expect('after the watch', set())
    both_backends(ctx, scenario)


def test_dirty_watch_untracked(ctx):
    """watch of an untracked process tracks it for the watch only."""
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 16)
        t.fill('a', 0, 16, 0x11)
        r.expect_watch('the interval of a watch that started tracking', pg('a', 3, range(8, 12)),
                       lambda: (t.write('a', 3), t.fill('a', 8, 4, 0x22)))
        check_eq(r.collections(), -1, 'collections after the watch (not tracked)')
        r.start()
        r.expect('start after the watch', set())
        t.write('a', 0)
        r.expect('a write', pg('a', 0))
    both_backends(ctx, scenario)


def test_dirty_start_again_and_restart(ctx):
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 16)
        r.start()
        t.write('a', 3)
        doc = r.ctx.json('start', t.pid, '--scan', r.backend)
        check(doc['already_tracked'], f'second start: {doc}')
        r.expect('a second start consumes nothing', pg('a', 3))
        r.ctx.ok('stop', t.pid)
        t.write('a', 5)
        r.start()
        r.expect('start after stop', set())
        t.write('a', 7)
        r.expect('a write after the restart', pg('a', 7))
    both_backends(ctx, scenario)


def test_dirty_mprotect_split(ctx):
    """mprotect and partial munmap split tracked VMAs: still tracked."""
    def scenario(r):
        t = r.t
        t.map('a', 'anon', 16)
        t.fill('a', 0, 16, 0x11)
        r.start()
        t.mprotect('a', 4, 4, 'r')
        t.unmap('a', 15, 1)
        t.mprotect('a', 0, 2, 'r')
        t.mprotect('a', 0, 2, 'rw')
        r.expect('mprotect and munmap alone', set())
        t.write('a', 0)
        t.write('a', 9)
        doc = r.expect('writes next to the split', pg('a', 0, 9))
        for page in (0, 4, 9):
            r.expect_state('a', page, 'tracked', doc)
        t.mprotect('a', 4, 4, 'rw')
        t.write('a', 6)
        r.expect('a write to a page made writable again', pg('a', 0, 6, 9))
    both_backends(ctx, scenario)


def test_dirty_prot_none_reservation(ctx):
    """A PROT_NONE reservation is skipped; the part made accessible after
    start is a new VMA, dirty in full until a consuming collection."""
    def scenario(r):
        t = r.t
        t.map('r', 'none', 16)
        r.start()
        doc = r.expect('after start', set())
        r.expect_state('r', 0, 'skipped', doc)
        t.mprotect('r', 0, 4, 'rw')
        t.write('r', 1)
        doc = r.expect('part of a reservation made accessible', pg('r', range(4)))
        r.expect_state('r', 0, 'new', doc)
        r.expect_state('r', 4, 'skipped', doc)
        r.watch()
        doc = r.expect('after a consuming watch', set())
        r.expect_state('r', 0, 'tracked', doc)
        t.write('r', 2)
        r.expect('a write to the accessible part', pg('r', 2))
    both_backends(ctx, scenario)


def test_dirty_new_untrackable_vma(ctx):
    """A shared mapping of a read-only file, made after start, cannot be
    registered: it is "skipped", so none of its pages count as written,
    in status as in a consuming watch."""
    def scenario(r):
        t = r.t
        path = r.path('ro')
        with open(path, 'wb') as f:
            f.write(b'x' * 8 * PAGE)
        t.map('a', 'anon', 8)
        r.start()
        t.map('ro', 'fileshared-ro', 8, path)
        t.write('a', 1)
        doc = r.status()
        r.expect_state('ro', 0, 'skipped', doc)
        check_eq(r.vma('ro', 0, doc)['written_pages'], 0, 'written_pages of a skipped VMA')
        r.expect('a new read-only shared file mapping', pg('a', 1))
        t.unmap('ro')
        r.expect_watch('the same, made during a watch', pg('a', 2),
                       lambda: (t.map('ro', 'fileshared-ro', 8, path), t.write('a', 2)))
    both_backends(ctx, scenario)
