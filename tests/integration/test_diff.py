"""dirtytrack diff A B: the memory two dumps describe, compared page by page.

Every region a test looks at is fenced by PROT_NONE guard pages so that it is
a mapping of its own: its row of the diff then holds exactly the test's
pages, never the target's own bookkeeping (which dirties a few pages of the
neighbouring anonymous mappings between two dumps).

Counting rules checked here (see dirtytrack(1)):
- a page no entry covers is zero, pages compare by content: an explicit
  all-zero page against no entry is unchanged;
- only_a: A has non-zero content, B no entry (only_b the other way round);
- written_identical: unchanged pages stored again (between A exclusive and B
  inclusive for A ancestor of B) with the same bytes.
"""
import ctypes
import os
import re
import shutil

from common import PAGE, check, check_eq

GUARDED = 32            # data pages between the two guard pages


def guarded(t, name, pages=GUARDED, kind='anon'):
    """A region of `pages` data pages at t.base(name) + PAGE, with a guard
    page either side; returns (start, end) of its data mapping."""
    t.map(name, kind, pages + 2)
    t.mprotect(name, 0, 1, 'none')
    t.mprotect(name, pages + 1, 1, 'none')
    base = t.base(name)
    return base + PAGE, base + (pages + 1) * PAGE


def pg(t, name, i):
    """Address of data page i of a guarded region."""
    return t.base(name) + (i + 1) * PAGE


def dump(ctx, t, d, parent=None):
    args = ['dump', t.pid, '-D', os.path.join(ctx.tmp, d)]
    if parent:
        args += ['--parent', os.path.join(ctx.tmp, parent)]
    doc = ctx.json(*args)
    return doc['dir']


def diff(ctx, a, b, *opts, expect=None):
    """(exit code, JSON document) of diff -j, checked to be well formed."""
    import json
    rc, out, err = ctx.run('-j', 'diff', a, b, *opts)
    check(rc in (0, 1), f'diff {a} {b}: exit {rc}: {err.strip()}')
    if expect is not None:
        check_eq(rc, expect, 'diff exit status')
    doc = json.loads(out)
    total = {k: 0 for k in ('only_a', 'only_b', 'changed', 'unchanged', 'written_identical')}
    for v in doc['vmas']:
        for k in total:
            total[k] += v[k]
    for k in total:
        check_eq(total[k], doc['totals'][k], f'sum of vmas[].{k} vs totals')
    differ = doc['totals']['only_a'] + doc['totals']['only_b'] + doc['totals']['changed'] > 0
    check_eq(rc, 1 if differ else 0, 'exit status vs totals')
    check_eq(doc['differ'], differ, '"differ"')
    return rc, doc


def row(doc, start, end):
    rows = [v for v in doc['vmas'] if int(v['start'], 16) == start and int(v['end'], 16) == end]
    check(len(rows) == 1, f'no single row {start:#x}-{end:#x} in '
          f'{[(v["start"], v["end"]) for v in doc["vmas"]]}')
    return rows[0]


def within(ranges, start, end):
    """[(start, end)] of a JSON range list, clipped to [start, end)."""
    out = []
    for r in ranges:
        s, e = max(int(r[0], 16), start), min(int(r[1], 16), end)
        if s < e:
            out.append((s, e))
    return out


def counts(v):
    return {k: v[k] for k in ('only_a', 'only_b', 'changed', 'unchanged', 'written_identical')}


def text_rows(out):
    """{(start, end): [only_a, only_b, changed, unchanged, written_identical(, bytes)]}
    and the total row, from the text table."""
    rows, total = {}, None
    for ln in out.splitlines():
        m = re.match(r'^([0-9a-f]+)-([0-9a-f]+)\s+\S.*?((?:\s+\d+){5,6})\s*$', ln)
        if m:
            rows[(int(m.group(1), 16), int(m.group(2), 16))] = [int(x) for x in m.group(3).split()]
        elif ln.startswith('total'):
            total = [int(x) for x in ln.split()[1:]]
    return rows, total


def test_diff_parent_child(ctx):
    with ctx.target() as t:
        s, e = guarded(t, 'a')
        t.fill('a', 1, GUARDED, 1)           # data pages 0..31 of the region
        d1 = dump(ctx, t, 'd1')
        t.write('a', 4, 2, 7)                # pages 3, 4: one byte each
        t.fill('a', 11, 1, 1)                # page 10: rewritten with the same bytes
        t.fill('a', 21, 1, 9)                # page 20: every byte
        t.fill('a', 26, 1, 0)                # page 25: every byte, to zero
        d2 = dump(ctx, t, 'd2', parent='d1')

    for a, b, rel in ((d1, d2, 'a_is_ancestor_of_b'), (d2, d1, 'b_is_ancestor_of_a')):
        rc, doc = diff(ctx, a, b, '--pages', '--bytes', expect=1)
        check_eq(doc['relation'], rel, 'relation')
        check_eq(doc['distance'], 1, 'distance')
        check_eq(doc['same_process'], True, 'same_process')
        check_eq(doc['a']['dir'], a, 'a.dir')
        check_eq(doc['b']['dir'], b, 'b.dir')
        v = row(doc, s, e)
        check_eq(v['kind'], 'anon', 'kind')
        check_eq(v['mapped'], 'both', 'mapped')
        check_eq(counts(v), dict(only_a=0, only_b=0, changed=4, unchanged=GUARDED - 4,
                                 written_identical=1), f'{a} vs {b}: counts')
        check_eq(v['changed_bytes'], 2 + PAGE + PAGE, 'changed_bytes')
        want = [(s + 3 * PAGE, s + 5 * PAGE), (s + 20 * PAGE, s + 21 * PAGE),
                (s + 25 * PAGE, s + 26 * PAGE)]
        check_eq(within(doc['changed_ranges'], s, e), want, 'changed ranges')
        check_eq(within(doc['only_a_ranges'] + doc['only_b_ranges'], s, e), [], 'only ranges')
        # per-range bytes line up with the ranges
        check_eq(len(doc['changed_ranges_bytes']), len(doc['changed_ranges']), 'range bytes')
        by_range = {(int(r[0], 16), int(r[1], 16)): n
                    for r, n in zip(doc['changed_ranges'], doc['changed_ranges_bytes'])}
        check_eq([by_range.get(r) for r in want], [2, PAGE, PAGE], 'bytes of each range')
        check_eq(doc['changed_bytes'], doc['totals']['changed_bytes'], 'changed_bytes')

        # the text table says the same
        rc2, out, err = ctx.run('diff', a, b, '--bytes', '--pages')
        check_eq(rc2, 1, 'text exit status')
        rows, total = text_rows(out)
        check_eq(rows.get((s, e)), [0, 0, 4, GUARDED - 4, 1, 2 + 2 * PAGE], 'text row')
        tt = doc['totals']
        check_eq(total, [tt['only_a'], tt['only_b'], tt['changed'], tt['unchanged'],
                         tt['written_identical'], tt['changed_bytes']], 'text total')
        last = out.strip().splitlines()[-1]
        check(last.startswith('differ: %d pages changed (%d bytes)'
                              % (tt['changed'], tt['changed_bytes'])), f'summary {last!r}')
        check(f'{tt["written_identical"]} of them written but identical' in last, last)
        check(f'changed  {s + 20 * PAGE:012x}-{s + 21 * PAGE:012x} 1 page, 4096 bytes' in out,
              out)

    # without --pages / --bytes: no ranges, no byte counts
    rc, doc = diff(ctx, d1, d2)
    check('changed_ranges' not in doc and 'changed_bytes' not in doc, sorted(doc))
    check('changed_bytes' not in doc['totals'], sorted(doc['totals']))


def test_diff_same_dump_is_empty(ctx):
    with ctx.target() as t:
        guarded(t, 'a')
        t.fill('a', 1, GUARDED, 3)
        d1 = dump(ctx, t, 'd1')
    rc, doc = diff(ctx, d1, d1, '--pages', '--bytes', expect=0)
    check_eq(doc['relation'], 'same', 'relation')
    tt = doc['totals']
    check_eq((tt['only_a'], tt['only_b'], tt['changed'], tt['written_identical'],
              tt['changed_bytes']), (0, 0, 0, 0, 0), 'totals')
    check(tt['unchanged'] >= GUARDED, tt)
    check_eq((doc['changed_ranges'], doc['only_a_ranges'], doc['only_b_ranges']), ([], [], []),
             'ranges')
    rc, out, err = ctx.run('diff', d1, d1)
    check_eq(rc, 0, 'exit')
    check(out.strip().splitlines()[-1].startswith('same: '), out)
    # the same dump through another path (a symlink) is still the same dump
    link = os.path.join(ctx.tmp, 'link')
    os.symlink(d1, link)
    rc, doc = diff(ctx, link, d1, expect=0)
    check_eq(doc['relation'], 'same', 'relation through a symlink')
    # a copy is the same dump (same dump id), but its pages are still read:
    # one flipped byte shows
    copy = os.path.join(ctx.tmp, 'copy')
    shutil.copytree(d1, copy, symlinks=True)
    rc, doc = diff(ctx, d1, copy, expect=0)
    check_eq((doc['relation'], doc['totals']['written_identical']), ('same', 0), 'intact copy')
    pages = os.path.join(copy, [f for f in os.listdir(copy) if f.startswith('pages-')][0])
    with open(pages, 'r+b') as f:
        f.seek(PAGE + 100)
        b = f.read(1)
        f.seek(PAGE + 100)
        f.write(bytes([b[0] ^ 0xff]))
    rc, doc = diff(ctx, d1, copy, '--bytes', '--pages', expect=1)
    check_eq((doc['relation'], doc['totals']['changed'], doc['changed_bytes']), ('same', 1, 1),
             'damaged copy')
    check_eq(len(doc['changed_ranges']), 1, 'one changed range')


def test_diff_only_and_zero(ctx):
    with ctx.target() as t:
        s, e = guarded(t, 'a')
        us, ue = guarded(t, 'u', 4)
        t.fill('a', 1, 8, 5)         # pages 0..7
        t.fill('a', 11, 2, 0)        # pages 10, 11: present, all zero
        t.fill('u', 1, 4, 6)
        d1 = dump(ctx, t, 'd1')
        t.dontneed('a', 3, 2)        # pages 2, 3: gone (zero), non-zero in d1
        t.dontneed('a', 11, 1)       # page 10: gone, was explicit zero: unchanged
        ns, ne = guarded(t, 'n', 4)
        t.fill('n', 2, 2, 8)         # new mapping, pages 1, 2
        t.unmap('u')
        d2 = dump(ctx, t, 'd2', parent='d1')

    rc, doc = diff(ctx, d1, d2, '--pages', expect=1)
    v = row(doc, s, e)
    check_eq(counts(v), dict(only_a=2, only_b=0, changed=0, unchanged=6 + 2,
                             written_identical=0), 'region a')
    check_eq(within(doc['only_a_ranges'], s, e), [(s + 2 * PAGE, s + 4 * PAGE)], 'only in a')
    vu = row(doc, us, ue)
    check_eq((vu['mapped'], vu['only_a'], vu['unchanged']), ('a', 4, 0), 'unmapped region')
    vn = row(doc, ns, ne)
    check_eq((vn['mapped'], vn['only_b'], vn['unchanged']), ('b', 2, 0), 'new region')
    check_eq(within(doc['only_b_ranges'], ns, ne), [(ns + PAGE, ns + 3 * PAGE)], 'only in b')
    rc, out, err = ctx.run('diff', d1, d2, '--pages')
    check(f'only-a   {s + 2 * PAGE:012x}-{s + 4 * PAGE:012x} 2 pages' in out, out)
    check(f'only-b   {ns + PAGE:012x}-{ns + 3 * PAGE:012x} 2 pages' in out, out)

    # the other way round, only_a and only_b swap
    rc, doc = diff(ctx, d2, d1, expect=1)
    check_eq(counts(row(doc, s, e))['only_b'], 2, 'reversed: region a')
    check_eq(row(doc, ns, ne)['only_a'], 2, 'reversed: new region')
    check_eq(row(doc, us, ue)['only_b'], 4, 'reversed: unmapped region')


def no_aslr():
    # the same binary without ASLR maps its regions at the same addresses
    ctypes.CDLL(None, use_errno=True).personality(0x0040000)


def test_diff_unrelated_processes(ctx):
    docs = []
    with ctx.target(preexec=no_aslr) as t1, ctx.target(preexec=no_aslr) as t2:
        for t in (t1, t2):
            guarded(t, 'a')
            t.fill('a', 1, 16, 4)
        t2.fill('a', 6, 1, 5)        # page 5: every byte
        t2.write('a', 8, 1, 6)       # page 7: one byte
        t2.fill('a', 17, 1, 4)       # page 16: only in b
        d1 = dump(ctx, t1, 'p1')
        d2 = dump(ctx, t2, 'p2')
        check_eq(t1.base('a'), t2.base('a'), 'region address without ASLR')
        s, e = t1.base('a') + PAGE, t1.base('a') + (GUARDED + 1) * PAGE
    rc, doc = diff(ctx, d1, d2, '--bytes', '--pages', expect=1)
    docs.append(doc)
    check_eq(doc['relation'], 'unrelated', 'relation')
    check_eq(doc['same_process'], False, 'same_process')
    v = row(doc, s, e)
    # unrelated chains share no stored page: every equal page was compared
    check_eq(counts(v), dict(only_a=0, only_b=1, changed=2, unchanged=14,
                             written_identical=14), 'region a')
    check_eq(v['changed_bytes'], PAGE + 1, 'changed bytes')
    check_eq(within(doc['changed_ranges'], s, e),
             [(s + 5 * PAGE, s + 6 * PAGE), (s + 7 * PAGE, s + 8 * PAGE)], 'changed ranges')
    rc, out, err = ctx.run('diff', d1, d2)
    check_eq(rc, 1, 'exit')
    check('note: a and b are dumps of different processes' in out, out)
    check('relation: unrelated' in out, out)


def test_diff_chain_of_three(ctx):
    """A grandparent against its grandchild: pages the middle dump stored and
    the last one points at are still compared, pages both chains share not."""
    with ctx.target() as t:
        s, e = guarded(t, 'a')
        t.fill('a', 1, GUARDED, 2)
        d1 = dump(ctx, t, 'd1')
        t.fill('a', 2, 1, 3)         # page 1 changed in d2
        t.fill('a', 3, 1, 2)         # page 2 stored again, same bytes
        d2 = dump(ctx, t, 'd2', parent='d1')
        t.write('a', 5, 1, 9)        # page 4: one byte, in d3
        d3 = dump(ctx, t, 'd3', parent='d2')
    rc, doc = diff(ctx, d1, d3, '--bytes', expect=1)
    check_eq((doc['relation'], doc['distance']), ('a_is_ancestor_of_b', 2), 'relation')
    check_eq(len(doc['b']['chain']), 3, 'chain depth of b')
    # the same shape as show's chain
    check_eq(doc['b']['chain'], ctx.json('show', doc['b']['dir'])['chain'], "b's chain as show gives it")
    v = row(doc, s, e)
    check_eq(counts(v), dict(only_a=0, only_b=0, changed=2, unchanged=GUARDED - 2,
                             written_identical=1), 'd1 vs d3')
    check_eq(v['changed_bytes'], PAGE + 1, 'bytes')
    rc, doc = diff(ctx, d2, d3, '--bytes', expect=1)
    check_eq(counts(row(doc, s, e)), dict(only_a=0, only_b=0, changed=1,
                                          unchanged=GUARDED - 1, written_identical=0), 'd2 vs d3')


def test_diff_errors(ctx):
    with ctx.target() as t:
        guarded(t, 'a')
        t.fill('a', 1, 4, 1)
        d1 = dump(ctx, t, 'd1')
        t.fill('a', 1, 1, 2)
        d2 = dump(ctx, t, 'd2', parent='d1')

    def fails(a, b, what):
        rc, out, err = ctx.run('diff', a, b)
        check_eq(rc, 2, f'{what}: exit status (stderr {err.strip()!r})')
        lines = err.strip().splitlines()
        check_eq(len(lines), 1, f'{what}: one line on stderr')
        check(lines[0].startswith('dirtytrack diff: '), lines[0])
        return lines[0]

    empty = os.path.join(ctx.tmp, 'empty')
    os.mkdir(empty)
    check('inventory.img' in fails(empty, d1, 'not a dump dir'), 'names the file')
    fails(d1, os.path.join(ctx.tmp, 'nonexistent'), 'no such directory')

    trunc = os.path.join(ctx.tmp, 'trunc')
    shutil.copytree(d1, trunc, symlinks=True)
    pages = [f for f in os.listdir(trunc) if f.startswith('pages-')][0]
    with open(os.path.join(trunc, pages), 'r+b') as f:
        f.truncate(os.path.getsize(os.path.join(trunc, pages)) - PAGE)
    check('truncated' in fails(d1, trunc, 'truncated pages file'), 'says truncated')

    orphan = os.path.join(ctx.tmp, 'sub', 'orphan')
    shutil.copytree(d2, orphan, symlinks=True)      # its relative parent link dangles
    check('parent' in fails(orphan, d1, 'missing parent'), 'names the parent')

    # JSON mode: the error document, same exit status
    import json
    rc, out, err = ctx.run('-j', 'diff', empty, d1)
    check_eq(rc, 2, 'exit with -j')
    check_eq(json.loads(out)['error']['exit'], 2, 'error document')

    rc, out, err = ctx.run('diff', d1)
    check_eq(rc, 2, 'one dump only')
    rc, out, err = ctx.run('diff', d1, d2, '--bogus')
    check_eq(rc, 2, 'unknown option')
