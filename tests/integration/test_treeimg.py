"""The independent image reader (treeimg.py) against dumps of a single
process made by today's binary (a tree of one, shared memory still in
pagemap-PID.img by virtual address): exact pages, parent chains, and a
live comparison that finds a changed byte and a page missing from the dump."""
import os
import signal

from common import PAGE, check, check_eq
from test_dump import map_files_readable
from treeimg import PE_PARENT, PE_PRESENT, DumpDir, check_pages, compare_live

KINDS = (('a', 'anon', 8), ('s', 'shared', 4), ('m', 'memfd', 4))
FILLED = {'a': (0, 1, 2, 5), 's': (1, 3), 'm': (0, 2)}


def page_of(b):
    return bytes([b]) * PAGE


def regions_memory(t, mem):
    """The pages of mem inside the test's regions."""
    out = {}
    for name, _, n in KINDS:
        lo = t.base(name)
        out.update({a: v for a, v in mem.items() if lo <= a < lo + n * PAGE})
    return out


def expected(t, content):
    """content {(region, page): byte}: the pages a dump must hold there.
    Holes of shared anonymous memory are stored as zeros where the dump
    cannot open the object (no CAP_CHECKPOINT_RESTORE) and so stores the
    whole mapping; a memfd it reaches through the target's own fd."""
    out = {t.page_addr(r, p): page_of(b) for (r, p), b in content.items()}
    if not map_files_readable():
        for name, kind, n in KINDS:
            if kind == 'shared':
                for p in range(n):
                    out.setdefault(t.page_addr(name, p), bytes(PAGE))
    return out


def test_treeimg_single_process_chain(ctx):
    with ctx.target() as t:
        for name, kind, n in KINDS:
            t.map(name, kind, n)
        content = {}
        for name, pages in FILLED.items():
            for p in pages:
                b = 0x10 + 16 * 'asm'.index(name) + p
                t.fill(name, p, 1, b)
                content[(name, p)] = b
        ctx.ok('start', t.pid)
        try:
            d1, d2, d3 = (os.path.join(ctx.tmp, f'd{i}') for i in (1, 2, 3))
            ctx.ok('dump', t.pid, '-D', d1)
            full = DumpDir(d1)
            check_eq([(p.pid, p.ppid) for p in full.procs], [(t.pid, 0)], 'pstree (the root has ppid 0, as in CRIU)')
            check_eq(full.procs[0].threads, [t.pid], 'threads')
            check_eq(full.shmem, {}, 'pagemap-shmem files of a single-process dump')
            check_pages(regions_memory(t, full.memory(t.pid)), expected(t, content), 'full dump')

            # incremental: private pages written since d1 are PE_PRESENT, the
            # others PE_PARENT, and the chain resolves to the new bytes
            for (name, p), b in (('a', 2), 0x77), (('a', 6), 0x78), (('s', 0), 0x79):
                t.fill(name, p, 1, b)
                content[(name, p)] = b
            ctx.ok('dump', t.pid, '-D', d2, '--parent', d1)
            inc = DumpDir(d2)
            check_eq(inc.parent.path, full.path, 'parent link')
            pm, lo = inc.private[t.pid], t.base('a')
            flags = {(a - lo) // PAGE: f for a, f in pm.flags.items() if lo <= a < lo + 8 * PAGE}
            check_eq(flags, {0: PE_PARENT, 1: PE_PARENT, 2: PE_PRESENT, 5: PE_PARENT,
                             6: PE_PRESENT}, 'flags of region a in the incremental dump')
            check_pages(regions_memory(t, inc.memory(t.pid)), expected(t, content), 'chain d2 -> d1')

            t.fill('m', 3, 1, 0x7a)
            content[('m', 3)] = 0x7a
            ctx.ok('dump', t.pid, '-D', d3, '--parent', d2, '--leave-stopped')
            last = DumpDir(d3)
            check_pages(regions_memory(t, last.memory(t.pid)), expected(t, content), 'chain d3')
            compared = compare_live(d3)
            check_eq(list(compared), [t.pid], 'processes compared')
            check(compared[t.pid] >= len(content), f'only {compared[t.pid]} pages compared')

            # the comparison fails on a changed byte and on a page with
            # content the dump does not hold (both written while stopped)
            with open(f'/proc/{t.pid}/mem', 'r+b', buffering=0) as m:
                a = t.page_addr('a', 5) + 100
                os.pwrite(m.fileno(), b'\xee', a)
                try:
                    compare_live(d3)
                    raise AssertionError('compare_live missed a changed byte')
                except AssertionError as e:
                    check(f'page {a - 100:#x} differs' in str(e) and 'byte 0x64' in str(e)
                          and 'live 0xee' in str(e), f'message: {e}')
                os.pwrite(m.fileno(), bytes([0x10 + 5]), a)
                check_eq(compare_live(d3), compared, 'after undoing the change')
                hole = t.page_addr('a', 7)
                os.pwrite(m.fileno(), b'\x01', hole)
                try:
                    compare_live(d3)
                    raise AssertionError('compare_live missed a page not in the dump')
                except AssertionError as e:
                    check('not in the dump' in str(e) and f'{hole:#x}' in str(e), f'message: {e}')
            os.kill(t.pid, signal.SIGCONT)
            try:
                compare_live(d3)
                raise AssertionError('compare_live compared a running process')
            except AssertionError as e:
                check('not stopped' in str(e), f'message: {e}')
        finally:
            os.kill(t.pid, signal.SIGCONT)
            ctx.run('stop', t.pid)
