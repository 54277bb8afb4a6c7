"""Process trees: --tree tracks, dumps and verifies a process with all its
descendants, as one CRIU image directory with shared memory stored once.

The target forks children that serve commands of their own (forkserve):
they share the parent's MAP_SHARED anonymous memory and memfd, and each has
its own copy of the private memory.  Every dump is read back by the test's
own reader (test_dump.Dump, per process, shared objects placed through each
process's mm image) and compared byte for byte with /proc/PID/mem of every
process, which is idle (or stopped) while it is read.
"""

import glob
import subprocess
import sys
import os
import signal
import time

from common import PAGE, check, check_eq, holders, uffd_fds
from test_dump import (PE_PARENT, PE_PRESENT, PSTREE_MAGIC, img_records, map_files_readable,
                       resolve)


def pstree(d):
    return [(e[1][0], e[2][0]) for e in img_records(os.path.join(d, 'pstree.img'), PSTREE_MAGIC)]


def live_page(pid, addr):
    with open(f'/proc/{pid}/mem', 'rb', buffering=0) as f:
        f.seek(addr)
        return f.read(PAGE)


def check_live(d, pids, regions):
    """Every page of the test regions, as the chain of d resolves it for each
    process, is the process's live page (a page without an entry must be
    zero in the process)."""
    for pid in pids:
        res = resolve(d, pid)
        for name, (base, n) in regions.items():
            for i in range(n):
                a = base + i * PAGE
                live = live_page(pid, a)
                got = res.get(a)
                if got is None:
                    check(live == bytes(PAGE), f'{d}: process {pid} {name} page {i}: no entry, '
                          'but the process has content there')
                else:
                    check(got == live, f'{d}: process {pid} {name} page {i} differs from the '
                          'live process')


def present_pages(d, name_glob, base=0):
    """Page indices (from base) of the PE_PRESENT entries of pagemap files."""
    out = set()
    for pm in glob.glob(os.path.join(d, name_glob)):
        head, *ents = img_records(pm, 0x56084025)
        for e in ents:
            if e.get(4, [0])[0] == PE_PRESENT:
                out |= {(e[1][0] - base) // PAGE + k for k in range(e[2][0])}
    return out


def private_present(d, pid, base, n):
    return {i for i in present_pages(d, f'pagemap-{pid}.img', base) if 0 <= i < n}


def dump_tree(ctx, root, d, *opts, parent=None):
    args = ['dump', root, '-D', d, '--tree', *opts] + (['--parent', parent] if parent else [])
    res = ctx.json(*args)
    check_eq(res['tree'], True, 'json tree')
    check_eq(sorted(p['pid'] for p in res['processes']), sorted(p for p, _ in pstree(d)),
             'json processes vs pstree.img')
    check_eq(res['pages_written'], sum(p['pages_written'] for p in res['processes']) +
             sum(s['pages_written'] for s in res['shared']), 'total pages written')
    return res


SH_INODE = {}


def inode_at(pid, addr):
    with open(f'/proc/{pid}/maps') as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
            if lo <= addr < hi:
                return int(line.split()[4])
    raise AssertionError(f'{addr:#x} not mapped in {pid}')


def shm_of(res):
    """The report of the shared anonymous region 'sh'."""
    (sh,) = [s for s in res['shared'] if s['shmid'] == SH_INODE['sh']]
    return sh


def wait_stopped(pid, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        with open(f'/proc/{pid}/stat') as f:
            st = f.read().rsplit(')', 1)[1].split()[0]
        if st in 'Tt':
            return
        check(time.monotonic() < deadline, f'process {pid} not stopped: state {st}')
        time.sleep(0.01)


def test_tree_dump_incremental_exact(ctx):
    with ctx.target() as t:
        sh = t.map('sh', 'shared', 32)
        SH_INODE['sh'] = inode_at(t.pid, sh)
        a = t.map('a', 'anon', 16)
        t.map('m', 'memfd', 8)
        t.fill('sh', 0, 32, 1)         # no holes: reading one would allocate it
        t.fill('a', 0, 16, 2)
        t.fill('m', 0, 8, 3)
        c1 = t.forkserve(ctx.tmp)
        c2 = t.forkserve(ctx.tmp)
        regions = {k: t.regions[k] for k in ('sh', 'a', 'm')}
        c1.fill('a', 0, 4, 0x11)          # copy-on-write: the child's own pages
        doc = ctx.json('start', '--tree', t.pid)
        check_eq(sorted(p['pid'] for p in doc['processes']), sorted([t.pid, c1.pid, c2.pid]),
                 'start --tree processes')
        d1, d2, d3, d4, d5 = (os.path.join(ctx.tmp, f'd{i}') for i in range(1, 6))
        res = dump_tree(ctx, t.pid, d1)
        check_eq(res['full'], True, 'first dump full')
        check_eq(pstree(d1), [(t.pid, 0), (c1.pid, t.pid), (c2.pid, t.pid)], 'pstree.img')
        # shared memory once: one pagemap-shmem file per object, not per process
        check_eq(len(glob.glob(os.path.join(d1, 'pagemap-shmem-*.img'))), 2,
                 'pagemap-shmem files (shared anon and memfd)')
        check_eq(shm_of(res)['pages_written'], 32,
                 'shared object stored once')
        check_live(d1, [t.pid, c1.pid, c2.pid], regions)

        # exact per-process dirty sets
        t.write('a', 1, 2, 0x21)
        c1.write('a', 5, 1, 0x22)
        c1.write('sh', 7, 1, 0x23)
        t.write('sh', 20, 1, 0x24)
        res = dump_tree(ctx, t.pid, d2, parent=d1)
        check_eq(res['full'], False, 'second dump incremental')
        check_eq(private_present(d2, t.pid, a, 16), {1, 2}, 'root private pages stored')
        check_eq(private_present(d2, c1.pid, a, 16), {5}, 'child 1 private pages stored')
        check_eq(private_present(d2, c2.pid, a, 16), set(), 'child 2 private pages stored')
        s = shm_of(res)
        if map_files_readable() and s['incremental']:
            shmid = s['shmid']
            check_eq(present_pages(d2, f'pagemap-shmem-{shmid}.img'), {7, 20},
                     'shared pages stored: the union of what each process wrote')
        else:
            check(s['whole_because'], f'shared object stored whole without a reason: {s}')
        check(map_files_readable() <= s['incremental'], f'shared anon not incremental: {s}')
        check_live(d2, [t.pid, c1.pid, c2.pid], regions)

        # a child forks: the grandchild is new (whole); the object may have
        # been written by a child we never saw: whole
        g = c2.forkserve(ctx.tmp)
        g.write('sh', 3, 1, 0x31)
        g.write('a', 9, 1, 0x32)
        res = dump_tree(ctx, t.pid, d3, parent=d2)
        pr = {p['pid']: p for p in res['processes']}
        check(g.pid in pr and pr[g.pid]['full'], f'grandchild stored whole: {pr.get(g.pid)}')
        check(not pr[t.pid]['full'] and not pr[c1.pid]['full'], 'old processes incremental')
        check_eq(shm_of(res)['incremental'], False, 'shared object after a fork')
        check_live(d3, [t.pid, c1.pid, c2.pid, g.pid], regions)

        # a child exits: it leaves the tree; what it wrote is in the object
        c1.write('sh', 11, 1, 0x41)
        c1.kill()
        deadline = time.monotonic() + 5
        while c1.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        res = dump_tree(ctx, t.pid, d4, parent=d3)
        check(c1.pid not in [p for p, _ in pstree(d4)], 'the exited child left the tree')
        check_eq(shm_of(res)['incremental'], False, 'shared object after a mapper exited')
        check_live(d4, [t.pid, c2.pid, g.pid], regions)

        # frozen, left stopped: every process stopped, memory equal to the dump
        t.write('a', 12, 1, 0x51)
        g.write('sh', 30, 1, 0x52)
        res = dump_tree(ctx, t.pid, d5, '--leave-stopped', parent=d4)
        pids = [t.pid, c2.pid, g.pid]
        try:
            for pid in pids:
                wait_stopped(pid)
            check_live(d5, pids, regions)
            v = ctx.json('verify', d5, '--pid', t.pid)
            check_eq((v['equal'], len(v['processes'])), (True, 3), 'verify --pid of the tree')
            show = ctx.json('show', d5)
            check_eq(sorted(p['pid'] for p in show['processes']), sorted(pids), 'show processes')
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        # diff of two tree dumps: per process
        r, out, _ = ctx.run('-j', 'diff', d4, d5)
        check_eq(r, 1, 'diff of two different tree dumps')
        doc = ctx.json('stop', '--tree', t.pid)
        check_eq(sorted(p['pid'] for p in doc['processes']), sorted(pids), 'stop --tree')
        for pid in pids:
            deadline = time.monotonic() + 5
            while holders(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            check(not holders(pid), f'holder of {pid} after stop --tree: {holders(pid)}')
        for c in (c2, g):
            c.kill()


def test_tree_refused_parent_does_not_inject(ctx):
    """A tree dump on a parent that cannot be used fails before anything changes."""
    with ctx.target() as t:
        t.map('a', 'anon', 4)
        c = t.forkserve(ctx.tmp)
        d1 = os.path.join(ctx.tmp, 'one')
        ctx.json('dump', t.pid, '-D', d1)      # the root alone
        rc, _, err = ctx.run('dump', t.pid, '-D', os.path.join(ctx.tmp, 'two'), '--tree',
                             '--parent', d1)
        check_eq(rc, 0, f'tree on a one-process parent: the new child is stored whole: {err}')
        check('stored whole' in err or err == '', f'stderr: {err!r}')
        ctx.json('stop', '--tree', t.pid)
        c.kill()


def test_tree_sysv_shared_once(ctx):
    """SysV shared memory of a tree: stored once, incrementally when the
    kernel's attach count is the tree's own (and we can open the object)."""
    with ctx.target() as t:
        sv = t.map('sv', 'sysv', 16)
        t.map('decoy', 'sysv', 1)            # attached twice too: counts must be per segment
        t.fill('sv', 0, 16, 4)
        c = t.forkserve(ctx.tmp)
        regions = {'sv': t.regions['sv']}
        ino = inode_at(t.pid, sv)
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        res = dump_tree(ctx, t.pid, d1)
        (s,) = [x for x in res['shared'] if x['shmid'] == ino]
        check_eq((s['mappings'], s['pages_written']), (2, 16), 'SysV object stored once')
        c.write('sv', 3, 1, 0x61)
        t.write('sv', 9, 1, 0x62)
        res = dump_tree(ctx, t.pid, d2, parent=d1)
        (s,) = [x for x in res['shared'] if x['shmid'] == ino]
        if s['incremental']:
            check_eq(present_pages(d2, f'pagemap-shmem-{ino}.img'), {3, 9},
                     'SysV pages stored: the union of both processes\' writes')
        else:
            check(s['whole_because'] and not map_files_readable(),
                  f'SysV stored whole as root: {s}')
        check_live(d2, [t.pid, c.pid], regions)
        # a process outside the tree attaches it (by id): the kernel's count says so
        outside = subprocess.Popen(
            [sys.executable, '-c', 'import ctypes, sys, time\n'
             'libc = ctypes.CDLL(None, use_errno=True)\n'
             'libc.shmat.restype = ctypes.c_void_p\n'
             f'p = libc.shmat({ino}, None, 0)\n'
             'print("attached" if p not in (None, ctypes.c_void_p(-1).value) else '
             '"failed", flush=True)\n'
             'time.sleep(60)'], stdout=subprocess.PIPE, text=True)
        try:
            check_eq(outside.stdout.readline().strip(), 'attached', 'shmat by an outsider')
            t.write('sv', 5, 1, 0x63)
            d3 = os.path.join(ctx.tmp, 'd3')
            res = dump_tree(ctx, t.pid, d3, parent=d2)
            (s,) = [x for x in res['shared'] if x['shmid'] == ino]
            check(not s['incremental'], f'SysV attached outside the tree stored incrementally: {s}')
            if map_files_readable():
                check_eq(s['whole_because'], 'attached by a process outside the tree',
                         'why the SysV object is stored whole')
            check_live(d3, [t.pid, c.pid], regions)
        finally:
            outside.kill()
            outside.wait()
        ctx.json('stop', '--tree', t.pid)
        c.kill()


def test_tree_child_forking_during_dump(ctx):
    """Children that fork and exit while the tree is dumped do not break it."""
    with ctx.target() as t:
        t.map('a', 'anon', 2048)
        t.fill('a', 0, 2048, 5)
        c = t.forkserve(ctx.tmp)
        regions = {'a': t.regions['a']}
        ctx.json('start', '--tree', t.pid)
        for k, opts in enumerate(([], ['--freeze'])):
            d = os.path.join(ctx.tmp, f'd{k}')
            p = subprocess.Popen([ctx.bin, '-j', 'dump', str(t.pid), '-D', d, '--tree', *opts],
                                 env=ctx.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
            c.forkloop(100)                  # 100 children born and gone meanwhile
            out, err = p.communicate(timeout=60)
            check_eq(p.returncode, 0, f'dump --tree {opts} while a child forks: {err.strip()}')
            check_live(d, [t.pid, c.pid], regions)
        ctx.json('stop', '--tree', t.pid)
        c.kill()


def test_tree_child_killed_during_frozen_dump(ctx):
    """A child killed while the tree is frozen: the dump is whole without it,
    or refused cleanly; the others run on, untraced."""
    with ctx.target() as t:
        t.map('a', 'anon', 4096)
        t.fill('a', 0, 4096, 6)
        ctx.json('start', t.pid)
        outcomes = set()
        for k in range(4):
            c = t.forkserve(ctx.tmp)
            c.fill('a', 0, 4096, 7 + k)      # its own copy: something to read
            d = os.path.join(ctx.tmp, f'k{k}')
            p = subprocess.Popen([ctx.bin, '-j', 'dump', str(t.pid), '-D', d, '--tree',
                                  '--freeze'], env=ctx.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            time.sleep(0.005 * k)
            c.kill()
            out, err = p.communicate(timeout=60)
            if p.returncode == 0:
                pids = [pid for pid, _ in pstree(d)]
                outcomes.add('with' if c.pid in pids else 'without')
                if c.pid not in pids:
                    check(not os.path.exists(os.path.join(d, f'pagemap-{c.pid}.img')),
                          'the pagemap of a process the dump left out is still there')
                check_live(d, [t.pid], {'a': t.regions['a']})
            else:
                outcomes.add('refused')
                check(len(err.strip().splitlines()) == 1, f'one line: {err!r}')
                check(not os.path.exists(d), f'{d} left behind by a refused dump')
            with open(f'/proc/{t.pid}/status') as f:
                tracer = int(dict(ln.split(':', 1) for ln in f)['TracerPid'])
            check_eq(tracer, 0, 'the root is traced after the dump')
            t.write('a', 1, 1, 0x70 + k)     # and runs
        ctx.json('stop', '--tree', t.pid)


def test_tree_with_a_child_not_ours(ctx):
    """start/dump --tree by a user who cannot trace one child: a clear error,
    and nothing injected in the processes that were ours."""
    from common import need_root, second_user
    from test_hostile import user_dir
    need_root('makes processes of two other users')
    uid, gid = second_user()
    ouid, ogid = second_user('dt-other')
    with ctx.target() as t:
        t.map('a', 'anon', 4)
        c = t.forkserve(ctx.tmp)
        c.cmd(f'become {ouid} {ogid}')
        t.cmd(f'become {uid} {gid}')
        udir = user_dir(ctx, 'u', uid, gid)
        env = dict(ctx.env, DIRTYTRACK_STATE_DIR=os.path.join(udir, 'state'))
        for args in (['start', '--tree', t.pid],
                     ['dump', t.pid, '-D', os.path.join(udir, 'd'), '--tree']):
            rc, out, err = ctx.run(*args, user=uid, group=gid, env=env)
            check(rc == 3, f'{args[0]} --tree with a child of another user: exit {rc}: {err}')
            check(str(c.pid) in err and len(err.strip().splitlines()) == 1,
                  f'{args[0]}: the error names the child, in one line: {err!r}')
            check(not holders(t.pid), f'{args[0]}: a holder was left for the root')
            check_eq(uffd_fds(t.pid), [], f'{args[0]}: a userfaultfd in the root')
        check(not os.path.exists(os.path.join(udir, 'd')), 'a refused dump left its directory')
        c.kill()


def test_tree_exec_flatten_precopy(ctx):
    """An exec'd child is stored whole; every file of a tree dump decodes
    with crit; flatten keeps the tree; precopy --tree leaves every process
    stopped, equal to its final dump."""
    from test_dump import crit
    with ctx.target() as t:
        t.map('a', 'anon', 16)
        m = t.map('m', 'memfd', 8)
        t.map('sh', 'shared', 8)
        for name, n in (('a', 16), ('m', 8), ('sh', 8)):
            t.fill(name, 0, n, 3)
        c = t.forkserve(ctx.tmp)
        ctx.json('start', '--tree', t.pid)
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        dump_tree(ctx, t.pid, d1)
        c.exec()                              # a new program: what we tracked is gone
        c.map('b', 'anon', 8)
        c.fill('b', 0, 8, 9)
        t.write('a', 2, 1, 0x44)
        res = dump_tree(ctx, t.pid, d2, parent=d1)
        pr = {p['pid']: p for p in res['processes']}
        check(pr[c.pid]['full'] and pr[c.pid]['full_because'],
              f'the exec\'d child stored whole, with a reason: {pr[c.pid]}')
        check(not pr[t.pid]['full'], 'the root incremental')
        (mf,) = [s for s in res['shared'] if s['shmid'] == inode_at(t.pid, m)]
        check(not mf['incremental'] and 'write(2)' in mf['whole_because'],
              f'a memfd is stored whole (write(2) bypasses page tables): {mf}')
        check_live(d2, [t.pid], {k: t.regions[k] for k in ('a', 'm', 'sh')})
        check_live(d2, [c.pid], {'b': c.regions['b']})
        for name in sorted(os.listdir(d2)):
            if not name.startswith('pages-') and name != 'parent':
                crit('decode', '-i', os.path.join(d2, name))
        base = os.path.join(ctx.tmp, 'pc')
        pc = subprocess.run([ctx.bin, '-j', 'precopy', '--tree', str(t.pid), '-D', base,
                             '--max-iters', '2', '--interval', '50', '--then', 'leave-stopped'],
                            env=ctx.env, capture_output=True, text=True, timeout=120)
        pids = [t.pid, c.pid]
        try:
            check_eq(pc.returncode, 0, f'precopy --tree: {pc.stderr.strip()}')
            for pid in pids:
                wait_stopped(pid)
            final = os.path.join(base, 'final')
            check_eq(sorted(p for p, _ in pstree(final)), sorted(pids), 'final dump: the tree')
            check_live(final, [t.pid], {k: t.regions[k] for k in ('a', 'm', 'sh')})
            check_live(final, [c.pid], {'b': c.regions['b']})
            flat = os.path.join(ctx.tmp, 'flat')
            ctx.json('flatten', final, '-o', flat)
            check(not os.path.lexists(os.path.join(flat, 'parent')), 'flattened has a parent')
            check_eq(sorted(p for p, _ in pstree(flat)), sorted(pids), 'flattened: the tree')
            for d in (final, flat):
                v = ctx.json('verify', d, '--pid', t.pid)
                check_eq((v['equal'], len(v['processes'])), (True, 2), f'verify --pid {d}')
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        ctx.json('stop', '--tree', t.pid)
        c.kill()


def test_tree_dump_killed_anytime(ctx):
    """A tree dump killed at any moment hurts no process of the tree: each
    lives on untraced, and the next dump of the tree is exact."""
    import random
    rnd = random.Random(int(os.environ.get('DT_SEED', '13')))
    with ctx.target() as t:
        t.map('a', 'anon', 512)
        t.map('sh', 'shared', 64)
        t.fill('a', 0, 512, 1)
        t.fill('sh', 0, 64, 2)
        kids = [t.forkserve(ctx.tmp) for _ in range(2)]
        pids = [t.pid] + [k.pid for k in kids]
        regions = {k: t.regions[k] for k in ('a', 'sh')}
        parent = None
        for i in range(12):
            d = os.path.join(ctx.tmp, f'k{i}')
            opts = rnd.choice([[], ['--freeze']])
            args = [ctx.bin, '-j', 'dump', str(t.pid), '-D', d, '--tree', '--full-if-needed',
                    *opts] + (['--parent', parent] if parent else [])
            p = subprocess.Popen(args, env=ctx.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            time.sleep(rnd.uniform(0, 0.03))
            p.kill()
            p.communicate()
            if p.returncode == 0:
                parent = d                   # it finished first: a parent for the next
            for pid in pids:
                deadline = time.monotonic() + 5
                while True:
                    with open(f'/proc/{pid}/status') as f:
                        st = dict(ln.split(':', 1) for ln in f)
                    if int(st['TracerPid']) == 0:
                        break
                    check(time.monotonic() < deadline, f'process {pid} still traced')
                    time.sleep(0.01)
                check(st['State'].split()[0] in 'SR', f'process {pid}: state {st["State"]}')
            t.write('a', i, 1, 0x30 + i)     # each process runs on
            kids[i % 2].write('a', 100 + i, 1, 0x50 + i)
        final = os.path.join(ctx.tmp, 'final')
        dump_tree(ctx, t.pid, final, '--full-if-needed', parent=parent)
        check_live(final, pids, regions)
        ctx.json('stop', '--tree', t.pid)
        for k in kids:
            k.kill()
