"""Writes the page tables never see and memory we cannot read are never lost
in silence: shared memory dumped without capabilities (pages written by a
forked child, pages zapped from the process's page tables), shared
anonymous hugetlb.  Each time the test itself compares the dump with the
stopped process's memory, and checks that verify --pid would have caught
the old behaviour (DIRTYTRACK_SIMULATE_MISSING brings it back)."""
import os
import signal
import subprocess

from common import PAGE, Skip, check, check_eq, second_user, as_user
from test_dump import PE_PRESENT, Dump, resolve
from test_hostile import user_dir

EXIT_DIFFER = 1
WRITE_OFFSET = 8
ZERO = bytes(PAGE)


def live_pages(pid, lo, hi):
    """The stopped process's memory, read by the test itself."""
    with open(f'/proc/{pid}/mem', 'rb', buffering=0) as f:
        f.seek(lo)
        data = f.read(hi - lo)
    return [data[i:i + PAGE] for i in range(0, hi - lo, PAGE)]


def chain_equals_live(d, pid, lo, hi, what):
    res = resolve(d)
    for i, live in enumerate(live_pages(pid, lo, hi)):
        got = res.get(lo + i * PAGE, ZERO)
        check(got == live, f'{what}: page {i} of the dump differs from the stopped process')


class Runner:
    """Run dirtytrack as the target's user: a second user when we are root
    (no capability over anything), or ourselves."""

    def __init__(self, ctx):
        self.ctx = ctx
        if os.geteuid() == 0:
            self.uid, self.gid = second_user()
            self.base = user_dir(ctx, 'u', self.uid, self.gid)
        else:
            self.uid = self.gid = None
            self.base = ctx.tmp
        self.env = {'DIRTYTRACK_STATE_DIR': os.path.join(self.base, 'state')}

    def target(self):
        pre = as_user(self.uid, self.gid) if self.uid is not None else None
        return self.ctx.target(preexec=pre)

    def run(self, *args, env=None):
        e = dict(self.env, **(env or {}))
        return self.ctx.run(*args, user=self.uid, group=self.gid, env=e)

    def dir(self, name):
        return os.path.join(self.base, name)


def shared_setup(t):
    sh, mf = t.map('sh', 'shared', 8), t.map('mf', 'memfd', 8)
    t.fill('sh', 0, 4, 0x21)
    t.forkwrite('sh', 6, 0x27)        # a child writes a page we never mapped
    t.dontneed('sh', 0, 2)            # zapped from our page tables, kept in the object
    t.fill('mf', 0, 2, 0x31)
    t.forkwrite('mf', 5, 0x35)
    t.dontneed('mf', 0, 1)
    return sh, mf


def test_shared_memory_without_capabilities(ctx):
    r = Runner(ctx)
    # the old behaviour (mapped pages only) is caught by verify; on a target of
    # its own: reading memory through the process maps what it reads
    with r.target() as t:
        shared_setup(t)
        bad = r.dir('old')
        rc, _, err = r.run('dump', t.pid, '-D', bad, '--leave-stopped',
                           env={'DIRTYTRACK_SIMULATE_MISSING': 'shmem_objects'})
        check_eq(rc, 0, f'dump with shared memory objects pretended away: {err}')
        rc, out, _ = r.run('verify', bad, '--pid', t.pid)
        check_eq(rc, EXIT_DIFFER, f'verify --pid of the old, partial dump: {out}')
        check('DIFFERENT' in out, out)
        os.kill(t.pid, signal.SIGCONT)
        r.run('stop', t.pid)
    with r.target() as t:
        sh, mf = shared_setup(t)
        d = r.dir('d')
        rc, out, err = r.run('-j', 'dump', t.pid, '-D', d, '--leave-stopped')
        check_eq(rc, 0, f'dump as the target\'s user: {err}')
        try:
            dm = Dump(d)
            # the memfd through the process's own fd: exactly its extents
            check_eq(sorted((a - mf) // PAGE for a in dm.pages(PE_PRESENT, mf, mf + 8 * PAGE)),
                     [0, 1, 5], 'memfd pages stored')
            # shared anonymous memory has no fd: every page, read through the mapping
            check_eq(sorted((a - sh) // PAGE for a in dm.pages(PE_PRESENT, sh, sh + 8 * PAGE)),
                     list(range(8)), 'shared anonymous pages stored')
            page6 = resolve(d)[sh + 6 * PAGE]
            check_eq(page6[WRITE_OFFSET], 0x27, 'the child\'s write is in the dump')
            chain_equals_live(d, t.pid, sh, sh + 8 * PAGE, 'shared anonymous')
            chain_equals_live(d, t.pid, mf, mf + 8 * PAGE, 'memfd')
            rc, out, err = r.run('verify', d, '--pid', t.pid)
            check_eq(rc, 0, f'verify --pid: {out} {err}')
        finally:
            os.kill(t.pid, signal.SIGCONT)
            r.run('stop', t.pid)


def set_hugepages(n):
    with open('/proc/sys/vm/nr_hugepages', 'w') as f:
        f.write(str(n))
    with open('/proc/sys/vm/nr_hugepages') as f:
        return int(f.read())


def test_shared_hugetlb_is_stored(ctx):
    if os.geteuid() != 0:
        raise Skip('needs root: sets vm.nr_hugepages')
    with open('/proc/sys/vm/nr_hugepages') as f:
        old = int(f.read())
    try:
        if set_hugepages(old + 2) < old + 2:
            raise Skip('the kernel gave no huge pages (vm.nr_hugepages)')
        with ctx.target() as t:
            hs = t.map('hs', 'hugeshared', 512)
            t.write('hs', 3, 1, 0x61)
            t.write('hs', 200, 1, 0x62)
            d1, d2 = os.path.join(ctx.tmp, 'h1'), os.path.join(ctx.tmp, 'h2')
            ctx.ok('dump', t.pid, '-D', d1)
            res = resolve(d1)
            check_eq((res[hs + 3 * PAGE][WRITE_OFFSET], res[hs + 200 * PAGE][WRITE_OFFSET]),
                     (0x61, 0x62), 'shared hugetlb pages in the full dump')
            st = ctx.json('status', t.pid)
            kinds = [v['kind'] for v in st['vmas'] if int(v['start'], 16) == hs]
            check_eq(kinds, ['shmem'], 'shared hugetlb is shared memory')
            t.write('hs', 7, 1, 0x63)
            ctx.ok('dump', t.pid, '-D', d2, '--parent', d1, '--leave-stopped')
            try:
                check_eq(resolve(d2)[hs + 7 * PAGE][WRITE_OFFSET], 0x63, 'written after d1')
                chain_equals_live(d2, t.pid, hs, hs + 512 * PAGE, 'shared hugetlb')
                ctx.json('verify', d2, '--pid', t.pid)
                # as it was: never stored, and verify says so
                bad = os.path.join(ctx.tmp, 'old')
                ctx.ok('dump', t.pid, '-D', bad, '--full-if-needed', '--parent', d2,
                       env={'DIRTYTRACK_SIMULATE_MISSING': 'hugetlb_shmem'})
                rc, out, _ = ctx.run('verify', bad, '--pid', t.pid)
                check_eq(rc, EXIT_DIFFER, f'verify --pid of a dump without the hugetlb pages: {out}')
            finally:
                os.kill(t.pid, signal.SIGCONT)
                ctx.run('stop', t.pid)
    finally:
        set_hugepages(old)


def uring_setup(t):
    b = t.map('b', 'anon', 16)
    t.fill('b', 0, 16, 0x11)
    t.cmd('uring b')                     # the whole region is a registered buffer
    return b


def test_io_uring_fixed_buffer_writes(ctx):
    """READ_FIXED writes through the pinned pages: no write-protect bit sees
    it, so the pinned buffer counts as written at every collection."""
    d = [os.path.join(ctx.tmp, f'u{i}') for i in range(4)]
    # the old behaviour: pinned pages trusted to the page tables, and verify says so
    with ctx.target() as t:
        uring_setup(t)
        ctx.ok('dump', t.pid, '-D', d[0], env={'DIRTYTRACK_SIMULATE_MISSING': 'pinned_pages'})
        check_eq(int(t.cmd('uringread b 2 4 119')), 4 * PAGE, 'READ_FIXED result')
        ctx.ok('dump', t.pid, '-D', d[1], '--parent', d[0], '--leave-stopped',
               env={'DIRTYTRACK_SIMULATE_MISSING': 'pinned_pages'})
        rc, out, _ = ctx.run('verify', d[1], '--pid', t.pid)
        check_eq(rc, EXIT_DIFFER, f'verify --pid of a dump that trusted the page tables: {out}')
        os.kill(t.pid, signal.SIGCONT)
        ctx.run('stop', t.pid)
    with ctx.target() as t:
        b = uring_setup(t)
        ctx.ok('dump', t.pid, '-D', d[2])
        st = ctx.json('status', t.pid)
        check_eq(st['pinned']['pages'], 16, f'status: pinned pages {st["pinned"]}')
        check(st['pinned']['vmpin_bytes'] >= 16 * PAGE and st['pinned']['unattributed_bytes'] == 0,
              f'VmPin explained by the io_uring buffer: {st["pinned"]}')
        check_eq(int(t.cmd('uringread b 2 4 119')), 4 * PAGE, 'READ_FIXED result')
        res = ctx.json('dump', t.pid, '-D', d[3], '--parent', d[2], '--leave-stopped')
        try:
            check_eq(res['pinned_pages'], 16, f'dump: pinned pages {res}')
            dm = Dump(d[3])
            check_eq(sorted((a - b) // PAGE for a in dm.pages(PE_PRESENT, b, b + 16 * PAGE)),
                     list(range(16)), 'the pinned buffer is stored by content')
            res_pages = resolve(d[3])
            for i in range(2, 6):
                check_eq(res_pages[b + i * PAGE], bytes([119]) * PAGE, f'page {i} as READ_FIXED wrote it')
            chain_equals_live(d[3], t.pid, b, b + 16 * PAGE, 'io_uring buffer')
            ctx.json('verify', d[3], '--pid', t.pid)
        finally:
            os.kill(t.pid, signal.SIGCONT)
        # I/O queued in a frozen dump: a warning; with --strict an error, and no dump
        t.cmd('uringqueue')
        rc, out, err = ctx.run('-j', 'dump', t.pid, '-D', d[3] + 'q', '--freeze')
        check_eq(rc, 0, f'frozen dump with I/O queued: {err}')
        import json
        doc = json.loads(out)
        check_eq(doc['io_uring_queued'], 1, f'dump JSON: {doc}')
        check('in flight' in err and 'warning' in err, f'the warning: {err!r}')
        rc, _, err = ctx.run('dump', t.pid, '-D', d[3] + 's', '--freeze', '--strict',
                             '--parent', d[3] + 'q')
        check_eq(rc, 2, f'--strict: {err}')
        check('in flight' in err, f'--strict says why: {err!r}')
        check(not os.path.exists(d[3] + 's'), 'no dump under --strict')
        # the refusal consumed nothing: the chain goes on from the last dump
        res = ctx.json('dump', t.pid, '-D', d[3] + 't', '--parent', d[3] + 'q')
        check(not res['full'], f'incremental after a --strict refusal: {res}')
        ctx.run('stop', t.pid)
