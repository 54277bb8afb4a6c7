"""An incremental dump builds its content map from its parent's plus what
changed (written, zapped, new or moved mappings) instead of walking every
page table.  These tests hold it to the walk: after each kind of change,
the pages an incremental dump gives content for (PE_PRESENT and PE_PARENT)
are exactly those a full walk finds at the same moment (a --no-track full
dump taken right after it), and the bytes agree."""
import os

from common import check, check_eq, need_root
from test_dump import Mem, PE_PRESENT, dump, ranges, resolve, same_page

PAGE = 4096


def vma_of(dm_vmas, a):
    for s, e in dm_vmas:
        if s <= a < e:
            return s, e
    return None


def walk_agrees(ctx, m, inc, tag):
    """A full walk (--no-track dump) right after incremental dump `inc`: the
    same pages have content in every test region, with the same bytes."""
    full = os.path.join(ctx.tmp, f'walk-{tag}')
    _, fm = dump(ctx, m.t.pid, full, '--no-track')
    got = resolve(inc)
    for name, kind in m.kind.items():
        lo, hi = m.span(name)
        inc_pages = {(a - lo) // PAGE for a in got if lo <= a < hi}
        walk_pages = {(a - lo) // PAGE for a in fm.pages(PE_PRESENT, lo, hi)}
        check_eq(ranges(inc_pages), ranges(walk_pages),
                 f'{tag}: region {name} ({kind}): pages with content, incremental vs walk')
        for i in walk_pages:
            same_page(got[lo + i * PAGE], fm.page(lo + i * PAGE),
                      f'{tag}: region {name} page {i}, incremental vs walk')
    # and outside the test regions: the target's own heap, stack, libraries
    outside = set(got) ^ set(fm.flags)
    check(len(outside) <= 8, f'{tag}: {len(outside)} pages differ outside the test regions '
          f'(first {sorted(outside)[:4]})')


def test_content_map_matches_walk(ctx):
    need_root('shared memory is found through /proc/PID/map_files (CAP_CHECKPOINT_RESTORE)')
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        for name, kind, n in (('a', 'anon', 64), ('b', 'anon', 16), ('g', 'anon', 8),
                              ('mv', 'anon', 8), ('fx', 'anon', 16), ('sh', 'shared', 8),
                              ('fp', 'filepriv', 8), ('st', 'stack', 8)):
            m.map(name, kind, n)
        m.fill('a', 0, 32, 0x11)             # pages 32-63 never touched
        for k, name in enumerate(('b', 'g', 'mv', 'fx', 'sh', 'fp', 'st')):
            m.fill(name, 0, 4, 0x12 + k)
        m.remap('g', 4)
        m.map('thp', 'thp', 512)
        m.write('thp', 0, 1, 0x19)
        m.sync_present('thp')
        d = [os.path.join(ctx.tmp, f'd{i}') for i in range(5)]
        dump(ctx, t.pid, d[0])
        m.mark()

        # 1. zaps, reads of holes, fork COW, mappings replaced, moved, grown
        m.dontneed('a', 4, 4)                 # zapped: no content
        m.dontneed('a', 8, 2)
        m.write('a', 8, 1, 0x21)              # zapped, then written
        m.read('a', 9)                        # zapped, then read
        m.read('a', 40, 4)                    # holes read: zero pages, new content
        m.forkwrite('a', 12, 0x22)            # the child's copy only
        m.write('a', 13, 1, 0x23)             # a page shared with the child, COW
        m.dontneed('sh', 0, 2)                # shared: the object keeps it
        m.forkwrite('sh', 6, 0x24)            # shared memory written by another process
        m.dontneed('fp', 0, 2)                # private copies dropped
        m.dontneed('thp', 10, 5)              # a huge page split
        m.unmap('b')
        m.map('r', 'anon', 16)                # most likely at b's old address
        m.fill('r', 0, 4, 0x25)
        m.remap('g', 8)                       # grown in place
        m.write('g', 6, 1, 0x26)
        m.remap('mv', 8, move=True)           # moved
        m.mapfixed('fx', 4, 4)                # unmapped and mapped again in place
        m.write('fx', 5, 1, 0x27)
        m.map('h', 'heap', 4)
        m.fill('h', 0, 2, 0x28)
        m.write('st', 5, 1, 0x29)
        res, _ = dump(ctx, t.pid, d[1], parent=d[0])
        check(not res['full'], f'json: {res}')
        walk_agrees(ctx, m, d[1], 'after changes')
        m.mark()

        # 2. the zapped pages read back (zero pages now), more holes read
        m.read('a', 4, 4)
        m.read('fx', 6, 2)
        m.read('r', 10, 2)
        m.write('mv', 7, 1, 0x2a)
        dump(ctx, t.pid, d[2], parent=d[1])
        walk_agrees(ctx, m, d[2], 'after reads')
        m.mark()

        # 3. nothing at all
        dump(ctx, t.pid, d[3], parent=d[2])
        walk_agrees(ctx, m, d[3], 'nothing written')

        # 4. a mapping made PROT_NONE and back (never tracked while none)
        t.mprotect('r', 0, 16, None)
        t.mprotect('r', 0, 16, 'rw')
        m.write('r', 1, 1, 0x2b)
        m.dontneed('a', 0, 2)
        dump(ctx, t.pid, d[4], parent=d[3])
        walk_agrees(ctx, m, d[4], 'after mprotect')
