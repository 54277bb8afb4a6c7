"""show, verify and flatten over real dump chains.

A target with three regions (private anonymous, memfd, private file
mapping) is dumped three times over controlled writes, the last dump
leaving it stopped.  show must describe what was written, verify must find
the chain whole and equal to the stopped process's memory (and name the one
page we change behind its back), flatten must give a standalone full dump
that crit reads and that holds the same memory.  Damaged chains (truncated
pages file, wrong magic, garbage pagemap record, parent loop, missing
parent) must be refused by every command with exit 2 and one line naming
the culprit.

Pagemaps are decoded independently of dirtytrack, with CRIU's crit.
"""
import json
import glob
import os
import shutil
import signal
import struct
import subprocess
import time

from common import PAGE, check, check_eq

CRIT = '/usr/bin/crit'
WRITE_OFFSET = 8        # where dt-target's `write` puts its byte


# -- helpers -----------------------------------------------------------------

def crit_decode(path):
    r = subprocess.run([CRIT, 'decode', '-i', path, '--pretty'], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f'crit decode {path}: exit {r.returncode}: {r.stderr.strip()[-300:]}')
    return json.loads(r.stdout)


def _num(v):
    return int(v, 16) if isinstance(v, str) else v


def crit_view(dump, pid):
    """Process pid's pages as crit decodes them: [(vaddr, nr_pages, flags,
    pages file, offset in it)], its private pagemap and each shared object's
    pagemap-shmem-SHMID.img where its mm image maps the object, sorted."""
    def entries(name):
        doc = crit_decode(os.path.join(dump, name))
        check_eq(doc['magic'], 'PAGEMAP', f'{name} magic')
        pages, off, out = f'pages-{doc["entries"][0]["pages_id"]}.img', 0, []
        for e in doc['entries'][1:]:
            flags = e.get('flags', '')
            out.append((_num(e['vaddr']), e['nr_pages'], flags, pages, off))
            if 'PE_PRESENT' in flags:
                off += e['nr_pages'] * PAGE
        return out
    view = entries(f'pagemap-{pid}.img')
    mm = crit_decode(os.path.join(dump, f'mm-{pid}.img'))['entries'][0]
    for v in mm['vmas']:
        start, end, pgoff, shmid = (_num(v[k]) for k in ('start', 'end', 'pgoff', 'shmid'))
        name = f'pagemap-shmem-{shmid}.img'
        if not shmid or not os.path.exists(os.path.join(dump, name)):
            continue
        for off0, n, flags, pages, poff in entries(name):
            lo, hi = max(off0, pgoff), min(off0 + n * PAGE, pgoff + end - start)
            if lo < hi:
                view.append((start + lo - pgoff, (hi - lo) // PAGE, flags, pages,
                             poff + lo - off0))
    return sorted(view)


def pagemap(dump, pid):
    """[(vaddr, nr_pages, flags-string)] of process pid in a dump, decoded by crit."""
    return [e[:3] for e in crit_view(dump, pid)]


def covered(entries, flag=None):
    """Page addresses of the entries (with flag, if given)."""
    s = set()
    for vaddr, n, flags in entries:
        if flag is None or flag in flags:
            s |= {vaddr + i * PAGE for i in range(n)}
    return s


def region_pages(t, name):
    base, n = t.regions[name]
    return {base + i * PAGE for i in range(n)}


def page_set(t, name, *idx):
    return {t.page_addr(name, i) for i in idx}


def stop_state(pid):
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()[0]


def poke(pid, addr, data):
    """Change the stopped target's memory behind everyone's back."""
    fd = os.open(f'/proc/{pid}/mem', os.O_RDWR)
    try:
        old = os.pread(fd, len(data), addr)
        check_eq(os.pwrite(fd, data, addr), len(data), 'pwrite /proc/PID/mem')
    finally:
        os.close(fd)
    return old


def one_error_line(err, *names, what=''):
    lines = err.strip().splitlines()
    check(len(lines) == 1, f'{what}: want one stderr line, got {lines!r}')
    for n in names:
        alts = n if isinstance(n, tuple) else (n,)
        check(any(x in lines[0] for x in alts),
              f'{what}: stderr {lines[0]!r} does not name {" or ".join(alts)!r}')


def hexr(a, b):
    return [hex(a), hex(b)]


class Chain:
    """A target with three regions and a chain of three dumps in ctx.tmp/chain:
    d1 full, d2 and d3 incremental, d3 taken with --leave-stopped."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.base = os.path.join(ctx.tmp, 'chain')
        os.makedirs(self.base)
        backing = os.path.join(ctx.tmp, 'backing')
        with open(backing, 'wb') as f:
            f.write(bytes([0x11]) * 8 * PAGE)
        self.t = t = ctx.target()
        self.pid = t.pid
        t.map('a', 'anon', 16)
        t.map('m', 'memfd', 8)
        t.map('f', 'filepriv', 8, backing)
        # the last byte written to each page (at WRITE_OFFSET)
        self.byte = {}
        ctx.ok('start', t.pid)
        self.write('a', (0, 1, 2, 3), 0x31)
        self.write('m', (1, 2), 0x32)
        self.write('f', (2,), 0x33)
        self.rep = [self.dump('d1')]
        self.write('a', (5, 6), 0x41)
        self.write('f', (4,), 0x42)
        self.rep.append(self.dump('d2', 'd1'))
        self.write('a', (0,), 0x51)
        self.write('m', (6,), 0x52)
        self.rep.append(self.dump('d3', 'd2', '--leave-stopped'))

    def write(self, name, pages, byte):
        for p in pages:
            self.t.write(name, p, 1, byte)
            self.byte[self.t.page_addr(name, p)] = byte

    def dir(self, name):
        return os.path.join(self.base, name)

    def dump(self, name, parent=None, *extra):
        args = ['dump', self.pid, '-D', self.dir(name)]
        if parent:
            args += ['--parent', self.dir(parent)]
        return self.ctx.json(*args, *extra)

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.t.kill()


def check_dump_pages(c, dump, names=('a', 'm', 'f')):
    """A whole dump (flattened, or resolved through crit's view of each
    pagemap of a chain) holds the bytes we wrote."""
    ents = crit_view(dump, c.pid)
    found, size = {}, {}
    for vaddr, n, flags, pages, off in ents:
        if 'PE_PRESENT' not in flags:
            continue
        with open(os.path.join(dump, pages), 'rb') as f:
            f.seek(off)
            data = f.read(n * PAGE)
        check_eq(len(data), n * PAGE, f'{dump}/{pages}: short at {off}')
        for i in range(n):
            found[vaddr + i * PAGE] = data[i * PAGE + WRITE_OFFSET]
    ents = [e[:3] for e in ents]
    for addr, byte in c.byte.items():
        check(addr in found, f'{dump}: written page {addr:#x} not present')
        check_eq(found[addr], byte, f'{dump}: byte of page {addr:#x}')
    return ents


# -- the tests ---------------------------------------------------------------

def test_show_verify_chain(ctx):
    """show -j against crit's view of each pagemap, verify (whole chain and
    against the stopped process), then a page changed behind our back."""
    c = Chain(ctx)
    try:
        t = c.t
        check_eq(stop_state(c.pid) in ('T', 't'), True, 'target left stopped')
        d3 = c.dir('d3')
        doc = ctx.json('show', d3)
        check_eq(doc['dir'], os.path.realpath(d3), 'dir')
        check_eq(doc['pid'], c.pid, 'pid')
        check_eq(doc['comm'], 'dt-target', 'comm')
        check_eq((doc['id'], doc['iteration'], doc['full'], doc['frozen']),
                 (c.rep[2]['id'], 3, False, True), 'id, iteration, full, frozen')
        check(abs(doc['dump_unix'] - time.time()) < 120, f'dump_unix {doc["dump_unix"]}')
        check_eq([(x['dir'], x['id'], x['iteration']) for x in doc['chain']],
                 [(os.path.realpath(c.dir(n)), r['id'], i)
                  for n, r, i in (('d3', c.rep[2], 3), ('d2', c.rep[1], 2), ('d1', c.rep[0], 1))],
                 'chain')
        for x, r in zip(doc['chain'], reversed(c.rep)):
            check_eq((x['pages_present'], x['pages_parent']),
                     (r['pages_present'], r['pages_parent']), f'chain entry {x["dir"]}')
        check_eq((doc['pages_present'], doc['pages_parent']),
                 (c.rep[2]['pages_present'], c.rep[2]['pages_parent']), 'totals vs dump')
        check_eq(doc['pages_total'], doc['pages_present'] + doc['pages_parent'], 'pages_total')
        check_eq(doc['pages_bytes'], sum(os.path.getsize(p) for p in
                                         glob.glob(os.path.join(d3, 'pages-*.img'))),
                 'pages_bytes (all pages files)')

        # what each dump holds of our regions, as crit decodes it
        pm = {n: pagemap(c.dir(n), c.pid) for n in ('d1', 'd2', 'd3')}
        a, f, m = (region_pages(t, n) for n in 'afm')
        check_eq(covered(pm['d1']) & a, page_set(t, 'a', 0, 1, 2, 3), 'd1 anon')
        check_eq(covered(pm['d2'], 'PE_PRESENT') & a, page_set(t, 'a', 5, 6), 'd2 anon present')
        check_eq(covered(pm['d3'], 'PE_PRESENT') & a, page_set(t, 'a', 0), 'd3 anon present')
        check_eq(covered(pm['d3']) & a, page_set(t, 'a', 0, 1, 2, 3, 5, 6), 'd3 anon described')
        check_eq(covered(pm['d3']) & f, page_set(t, 'f', 2, 4), 'd3 file-private described')
        check_eq(covered(pm['d3']) & m, page_set(t, 'm', 1, 2, 6), 'd3 memfd described')
        check_eq(covered(pm['d2'], 'PE_PRESENT') & f, page_set(t, 'f', 4), 'd2 filepriv present')

        # show's per-mapping counts agree with the pagemap crit decodes
        present, parent = covered(pm['d3'], 'PE_PRESENT'), covered(pm['d3'], 'PE_PARENT')
        kinds = {}
        for v in doc['vmas']:
            s, e = int(v['start'], 16), int(v['end'], 16)
            check_eq(v['bytes'], e - s, 'vma bytes')
            span = set(range(s, e, PAGE))
            check_eq((v['pages_present'], v['pages_parent']),
                     (len(span & present), len(span & parent)), f'vma {v["start"]}')
            for name in 'amf':
                if s <= t.base(name) < e:
                    kinds[name] = (v['kind'], v['status'], v['prot'])
        check_eq(kinds['a'][:2], ('anon', 0x201), 'anon vma kind/status')
        check_eq(kinds['m'][0], 'shmem', 'memfd vma kind (the name status gives it)')
        check_eq(kinds['f'][0], 'file', 'file vma kind (the name status gives it)')
        check_eq(kinds['a'][2], 'rw-', 'anon prot')
        out = ctx.ok('show', d3)
        check('incremental, iteration 3' in out and f'{t.base("m"):012x}' in out, out)

        # verify: the chain, then the chain against the stopped process
        v = ctx.json('verify', d3)
        check_eq((v['chain_ok'], v['dumps'], v['pages_total']),
                 (True, 3, doc['pages_total']), 'verify')
        out = ctx.ok('verify', d3)
        check('chain OK' in out, out)
        v = ctx.json('verify', d3, '--pid', c.pid)
        check_eq((v['equal'], v['mismatches'], v['pid_match']), (True, [], True), 'verify --pid')
        check(v['pages_compared'] >= doc['pages_total'] - v['pages_not_compared_file'],
              f'pages compared {v["pages_compared"]}')
        check(v['pages_compared'] > 0, 'nothing compared')

        # one page of d2's changed in the live process: verify names it
        addr = t.page_addr('a', 5)
        old = poke(c.pid, addr + 100, b'\x77')
        v = ctx.json('verify', d3, '--pid', c.pid, expect=1)
        check_eq((v['equal'], v['mismatches']), (False, [hexr(addr, addr + PAGE)]), 'mismatch')
        rc, out, err = ctx.run('verify', d3, '--pid', c.pid)
        check_eq(rc, 1, 'text verify exit')
        check(f'{addr:012x}-{addr + PAGE:012x}' in out, f'range not named: {out}')
        # a page the chain does not hold: an untouched anonymous page
        addr2 = t.page_addr('a', 9)
        poke(c.pid, addr2, b'\x01')
        v = ctx.json('verify', d3, '--pid', c.pid, expect=1)
        check_eq(v['mismatches'], [hexr(addr, addr + PAGE), hexr(addr2, addr2 + PAGE)],
                 'two mismatches')
        poke(c.pid, addr2, b'\x00')
        poke(c.pid, addr + 100, old)
        ctx.json('verify', d3, '--pid', c.pid)
    finally:
        c.close()


def test_verify_pid_refusals(ctx):
    """verify --pid refuses a running process; a stopped other process is
    compared with a warning about the pid."""
    c = Chain(ctx)
    other = ctx.target()
    try:
        other.map('a', 'anon', 4)
        other.write('a', 0, 1)
        rc, out, err = ctx.run('verify', c.dir('d3'), '--pid', other.pid)
        check_eq(rc, 2, f'running process: exit ({err.strip()})')
        one_error_line(err, 'not stopped', str(other.pid), what='running process')
        os.kill(other.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while stop_state(other.pid) not in ('T', 't') and time.monotonic() < deadline:
            time.sleep(0.01)
        rc, out, err = ctx.run('-j', 'verify', c.dir('d3'), '--pid', other.pid)
        check(rc in (0, 1), f'other pid: exit {rc} ({err.strip()})')
        check_eq(json.loads(out)['pid_match'], False, 'pid_match')
        rc, out, err = ctx.run('verify', c.dir('d3'), '--pid', other.pid)
        check('warning' in err and str(c.pid) in err, f'no pid warning: {err!r}')
        rc, out, err = ctx.run('verify', c.dir('d3'), '--pid', '999999999')
        check(rc in (2, 5), f'bad pid exit {rc}')
    finally:
        os.kill(other.pid, signal.SIGKILL)
        other.kill()
        c.close()


def test_flatten(ctx):
    """flatten: a standalone full dump crit reads, holding the same memory."""
    c = Chain(ctx)
    try:
        t = c.t
        d3, out = c.dir('d3'), os.path.join(ctx.tmp, 'flat')
        before = ctx.json('show', d3)
        doc = ctx.json('flatten', d3, '-o', out)
        check_eq(doc['pages_present'], before['pages_total'], 'pages written')
        check_eq(doc['pages_bytes'], before['pages_total'] * PAGE, 'bytes written')
        check(not os.path.lexists(os.path.join(out, 'parent')), 'flattened dump has a parent')
        check_eq(oct(os.stat(out).st_mode & 0o777), oct(0o700), 'mode of OUT')
        pid = c.pid
        names = sorted(os.listdir(out))
        for n in ('inventory.img', 'pstree.img', f'mm-{pid}.img', f'core-{pid}.img',
                  f'pagemap-{pid}.img', 'pages-1.img', 'pages-2.img', 'stats-dump'):
            check(n in names, f'{n} missing from {names}')
        for n in ('pstree.img', f'mm-{pid}.img', f'core-{pid}.img', 'stats-dump'):
            with open(os.path.join(d3, n), 'rb') as a, open(os.path.join(out, n), 'rb') as b:
                check(a.read() == b.read(), f'{n} not copied unchanged')
        # crit reads every image (pages-N.img is raw data, not an image)
        for n in names:
            if n.startswith('pages-'):
                continue
            crit_decode(os.path.join(out, n))
            r = subprocess.run([CRIT, 'show', os.path.join(out, n)], capture_output=True,
                               text=True, timeout=30)
            check_eq(r.returncode, 0, f'crit show {n}: {r.stderr.strip()[-300:]}')
        inv = crit_decode(os.path.join(out, 'inventory.img'))
        check_eq(inv['magic'], 'INVENTORY', 'inventory magic')

        ents = check_dump_pages(c, out)
        check(all(fl == 'PE_PRESENT' for _, _, fl in ents), f'non-present entries: {ents}')
        check_eq(covered(ents), covered(pagemap(d3, pid)), 'same pages described')
        for (v1, n1, _), (v2, _, _) in zip(ents, ents[1:]):
            check(v1 + n1 * PAGE < v2, f'entries not coalesced at {v2:#x}')

        flat = ctx.json('show', out)
        check_eq((flat['full'], flat['id'], flat['iteration'], flat['pid'], len(flat['chain'])),
                 (True, before['id'], 3, pid, 1), 'show flattened')
        check_eq((flat['pages_present'], flat['pages_parent']), (before['pages_total'], 0),
                 'flattened pages')
        v = ctx.json('verify', out)
        check_eq((v['chain_ok'], v['dumps']), (True, 1), 'verify flattened')
        v = ctx.json('verify', out, '--pid', pid)
        check_eq((v['equal'], v['mismatches']), (True, []), 'verify --pid flattened')
        addr = t.page_addr('f', 4)
        poke(pid, addr + WRITE_OFFSET, b'\x00')
        v = ctx.json('verify', out, '--pid', pid, expect=1)
        check_eq(v['mismatches'], [hexr(addr, addr + PAGE)], 'flattened mismatch')

        # text output
        out2 = os.path.join(ctx.tmp, 'flat2')
        text = ctx.ok('flatten', c.dir('d2'), '-o', out2)
        check('pages written' in text, text)
        check_eq(ctx.json('show', out2)['pages_total'], c.rep[1]['pages_present']
                 + c.rep[1]['pages_parent'], 'flatten of d2')

        # into a directory that is not empty: refused, left as it was
        busy = os.path.join(ctx.tmp, 'busy')
        os.makedirs(busy)
        with open(os.path.join(busy, 'keep'), 'w') as f:
            f.write('mine')
        rc, _, err = ctx.run('flatten', d3, '-o', busy)
        check_eq(rc, 2, 'flatten into a non-empty dir')
        one_error_line(err, busy, 'not empty', what='non-empty OUT')
        check_eq(os.listdir(busy), ['keep'], 'non-empty OUT touched')
        with open(os.path.join(busy, 'keep')) as f:
            check_eq(f.read(), 'mine', 'keep')
        check_eq(sorted(x for x in os.listdir(ctx.tmp) if x.startswith('.')), [],
                 'temporary directories left behind')
        # an empty one is fine
        empty = os.path.join(ctx.tmp, 'empty')
        os.makedirs(empty)
        ctx.json('flatten', d3, '-o', empty)
        rc, _, err = ctx.run('flatten', d3)
        check_eq(rc, 2, 'flatten without -o')
    finally:
        c.close()


def corrupt_truncate(case, pid):
    p = os.path.join(case, 'd2', 'pages-1.img')
    os.truncate(p, os.path.getsize(p) - 100)
    return ('pages-1.img', ('d2', 'd3/parent'))


def corrupt_mm_magic(case, pid):
    p = os.path.join(case, 'd1', f'mm-{pid}.img')
    with open(p, 'r+b') as f:
        f.seek(4)
        f.write(struct.pack('<I', 0x12345678))
    # the dump is named as reached: d1, or d2/parent
    return (f'mm-{pid}.img', ('d1', 'd2/parent'))


def corrupt_pagemap_record(case, pid):
    p = os.path.join(case, 'd3', f'pagemap-{pid}.img')
    with open(p, 'rb') as f:
        data = bytearray(f.read())
    head_len, = struct.unpack_from('<I', data, 8)
    pos = 12 + head_len
    n, = struct.unpack_from('<I', data, pos)
    data[pos + 4:pos + 4 + n] = b'\xff' * n      # the first entry's bytes
    with open(p, 'wb') as f:
        f.write(data)
    return (f'pagemap-{pid}.img', 'd3')


def corrupt_core(case, pid):
    p = os.path.join(case, 'd2', f'core-{pid}.img')
    with open(p, 'r+b') as f:
        f.truncate(10)
    return (f'core-{pid}.img', ('d2', 'd3/parent'))


def corrupt_parent_loop(case, pid):
    link = os.path.join(case, 'd3', 'parent')
    os.unlink(link)
    os.symlink('../d3', link)
    return ('d3', 'loop')


def corrupt_parent_missing(case, pid):
    link = os.path.join(case, 'd3', 'parent')
    os.unlink(link)
    os.symlink('../gone', link)
    return ('d3/parent', 'missing')


def test_damaged_chains(ctx):
    """Every command refuses a damaged chain: exit 2, one line naming it."""
    c = Chain(ctx)
    c.close()
    pid = c.pid
    for corrupt in (corrupt_truncate, corrupt_mm_magic, corrupt_pagemap_record,
                    corrupt_parent_loop, corrupt_parent_missing, corrupt_core):
        case = os.path.join(ctx.tmp, corrupt.__name__)
        shutil.copytree(c.base, case, symlinks=True)
        names = corrupt(case, pid)
        top, out = os.path.join(case, 'd3'), os.path.join(case, 'out')
        commands = [('show', top), ('verify', top), ('flatten', top, '-o', out)]
        if corrupt is corrupt_core:
            # a parent's core image: only verify reads every dump's core;
            # show reads the top one, flatten copies the top one
            commands = [('verify', top)]
        for args in commands:
            what = f'{corrupt.__name__}: {args[0]}'
            rc, stdout, err = ctx.run(*args)
            check_eq(rc, 2, f'{what} exit ({err.strip()})')
            check_eq(stdout, '', f'{what} stdout')
            one_error_line(err, *names, what=what)
            rc, stdout, err = ctx.run('-j', *args)
            check_eq(rc, 2, f'{what} -j exit')
            check_eq(json.loads(stdout)['error']['exit'], 2, f'{what} -j error document')
        check(not os.path.exists(out), f'{corrupt.__name__}: flatten left {out}')
        check_eq([x for x in os.listdir(case) if x.startswith('.')], [],
                 f'{corrupt.__name__}: temporary directory left')
    # and the undamaged chain still passes
    ctx.json('verify', os.path.join(c.base, 'd3'))


def test_usage_errors(ctx):
    for args in (('show',), ('verify',), ('flatten', '/nonexistent'), ('show', 'a', 'b'),
                 ('verify', '/x', '--pid', 'abc')):
        rc, out, err = ctx.run(*args)
        check_eq(rc, 2, f'{args}: exit')
        one_error_line(err, what=str(args))
    rc, out, err = ctx.run('show', os.path.join(ctx.tmp, 'nothing'))
    check_eq(rc, 2, 'show of a missing dir')
    one_error_line(err, 'nothing', what='missing dir')
    for cmd in ('show', 'verify', 'flatten'):
        check(f'dirtytrack {cmd}' in ctx.ok(cmd, '--help'), f'{cmd} --help')
