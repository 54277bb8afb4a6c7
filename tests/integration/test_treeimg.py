"""The independent image reader (treeimg.py) against dumps of a single
process made by today's binary (a tree of one, shared memory still in
pagemap-PID.img by virtual address): exact pages, parent chains, and a
live comparison that finds a changed byte and a page missing from the dump."""
import os
import signal
import struct

from common import PAGE, check, check_eq
from test_dump import map_files_readable
from treeimg import (COMMON_MAGIC, MM_MAGIC, PAGEMAP_MAGIC, PE_PARENT, PE_PRESENT, PSTREE_MAGIC, DumpDir,
                     check_pages, compare_live)

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
            check_eq(len(full.shmem), 2, 'pagemap-shmem files of a single-process dump (its two '
                     'shared objects, stored once each)')
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


# -- the tree layout, written by hand ----------------------------------------
# Today's binary writes no pagemap-shmem file: these images are made here,
# field by field as in CRIU's .proto files, to check the reader's tree side.

def enc_varint(v):
    out = bytearray()
    while True:
        out.append((v & 0x7f) | (0x80 if v > 0x7f else 0))
        v >>= 7
        if not v:
            return bytes(out)


def enc(fields):
    """[(field number, int or bytes)] as a protobuf message."""
    out = b''
    for n, v in fields:
        if isinstance(v, int):
            out += enc_varint(n << 3) + enc_varint(v)
        else:
            out += enc_varint(n << 3 | 2) + enc_varint(len(v)) + v
    return out


def write_img(path, magic, records):
    with open(path, 'wb') as f:
        f.write(struct.pack('<II', COMMON_MAGIC, magic))
        for r in records:
            f.write(struct.pack('<I', len(r)) + r)


def write_pagemap(d, name, pages_id, entries, pages_file=True):
    """entries [(key, flags, [page bytes, ...])]: PE_PRESENT ones carry pages."""
    recs = [enc([(1, pages_id)])]
    data = b''
    for key, flags, pages in entries:
        nr = len(pages)
        recs.append(enc([(1, key), (2, nr), (4, flags), (5, nr)]))
        if flags == PE_PRESENT:
            data += b''.join(pages)
    write_img(os.path.join(d, name), PAGEMAP_MAGIC, recs)
    if not pages_file:
        return
    with open(os.path.join(d, f'pages-{pages_id}.img'), 'wb') as f:
        f.write(data)


def write_tree(d, procs, vmas):
    """procs [(pid, ppid)], vmas {pid: [(start, end, pgoff, shmid, status)]}."""
    os.makedirs(d)
    write_img(os.path.join(d, 'pstree.img'), PSTREE_MAGIC,
              [enc([(1, pid), (2, ppid), (3, pid), (4, pid), (5, pid)]) for pid, ppid in procs])
    for pid, _ in procs:
        mm = [(14, enc([(1, s), (2, e), (3, off), (4, shmid), (5, 3), (6, 0x21 if shmid else 0x22),
                        (7, st)])) for s, e, off, shmid, st in vmas[pid]]
        write_img(os.path.join(d, f'mm-{pid}.img'), MM_MAGIC, [enc(mm)])


SHM, PRIV = 0x10000000, 0x30000000
TREE_VMAS = {100: [(SHM, SHM + 4 * PAGE, 0, 7, 0x101), (PRIV, PRIV + PAGE, 0, 0, 0x201)],
             101: [(0x20000000, 0x20000000 + 2 * PAGE, 2 * PAGE, 7, 0x101),
                   (PRIV, PRIV + PAGE, 0, 0, 0x201)]}


def P(b):
    return bytes([b]) * PAGE


def test_treeimg_tree_layout_by_hand(ctx):
    full, inc = os.path.join(ctx.tmp, 'full'), os.path.join(ctx.tmp, 'inc')
    write_tree(full, [(100, 0), (101, 100)], TREE_VMAS)
    write_pagemap(full, 'pagemap-100.img', 1, [(PRIV, PE_PRESENT, [P(0x11)])])
    write_pagemap(full, 'pagemap-101.img', 2, [(PRIV, PE_PRESENT, [P(0x22)])])
    write_pagemap(full, 'pagemap-shmem-7.img', 3,
                  [(0, PE_PRESENT, [P(0xa0), P(0xa1), P(0xa2), P(0xa3)])])
    write_tree(inc, [(100, 0), (101, 100)], TREE_VMAS)
    os.symlink('../full', os.path.join(inc, 'parent'))
    write_pagemap(inc, 'pagemap-100.img', 1, [(PRIV, PE_PARENT, [None])])
    write_pagemap(inc, 'pagemap-101.img', 2, [(PRIV, PE_PRESENT, [P(0x33)])])
    write_pagemap(inc, 'pagemap-shmem-7.img', 3, [(0, PE_PARENT, [None]), (PAGE, PE_PRESENT, [P(0xb1)]),
                                                 (2 * PAGE, PE_PARENT, [None, None])])
    d = DumpDir(inc)
    check_eq([(p.pid, p.ppid) for p in d.procs], [(100, 0), (101, 100)], 'pstree')
    check_eq(d.count('pagemap-shmem-7.img', PE_PRESENT), 1, 'shared pages stored by inc')
    check_pages(d.memory(100), {PRIV: P(0x11), SHM: P(0xa0), SHM + PAGE: P(0xb1),
                                SHM + 2 * PAGE: P(0xa2), SHM + 3 * PAGE: P(0xa3)}, 'process 100')
    # 101 maps the object from offset 2 pages on
    check_pages(d.memory(101), {PRIV: P(0x33), 0x20000000: P(0xa2), 0x20000000 + PAGE: P(0xa3)},
                'process 101')
    check_pages(DumpDir(full).memory(101), {PRIV: P(0x22), 0x20000000: P(0xa2),
                                            0x20000000 + PAGE: P(0xa3)}, 'process 101, full')

    def refused(what, words):
        try:
            DumpDir(inc).memory(100)
        except AssertionError as e:
            check(all(w in str(e) for w in words), f'{what}: {e}')
            return
        raise AssertionError(f'{what}: read without complaint')

    # shared memory in a private pagemap; a PE_PARENT the parent lacks;
    # two pagemap files with one pages file
    write_pagemap(inc, 'pagemap-100.img', 1, [(SHM, PE_PRESENT, [P(1)]), (PRIV, PE_PARENT, [None])])
    refused('shared page in pagemap-100.img', ('pagemap-100.img', f'{SHM:#x}', 'pagemap-shmem-7.img'))
    write_pagemap(inc, 'pagemap-100.img', 1, [(PRIV + PAGE, PE_PARENT, [None])])
    refused('PE_PARENT missing in the parent', (f'{PRIV + PAGE:#x}', 'no entry', 'pagemap-100.img'))
    write_pagemap(inc, 'pagemap-100.img', 2, [(PRIV, PE_PRESENT, [P(0x33)])], pages_file=False)
    refused('one pages_id twice', ('pages_id',))
