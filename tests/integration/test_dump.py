"""`dirtytrack dump`: what full and incremental dump directories hold, read
back with a parser of our own (and with CRIU's crit), against a model of what
the test wrote into the target's regions and against the live target.

The model (Mem) knows, for every test region, the bytes of every page that
has content and which pages were written since the last dump.  Assertions
are always restricted to the test's own regions: the target's bookkeeping
writes a few other pages.
"""
import glob
from functools import partial
import json
import os
import random
import signal
import stat
import struct
import subprocess
import time

from common import PAGE, check, check_eq, need_root
from treeimg import (MM_MAGIC, PAGEMAP_MAGIC, PE_PARENT, PE_PRESENT, PSTREE_MAGIC,  # noqa: F401
                     Pagemap, STATS_MAGIC, img_records, pb_fields, uints)

ZERO = bytes(PAGE)
WRITE_OFFSET, DEFAULT_BYTE = 8, 0xA5

ANON_LIKE = ('anon', 'heap', 'stack', 'thp')
SHMEM = ('shared', 'memfd')
STORED = ANON_LIKE + SHMEM + ('filepriv',)   # kinds whose content a dump stores


def map_files_readable():
    """Can dirtytrack open /proc/PID/map_files here (CAP_CHECKPOINT_RESTORE)?
    Without it, shared anonymous memory is stored whole."""
    return os.geteuid() == 0


# -- CRIU images -----------------------------------------------------------

class Dump:
    """One process of a dump directory (the root by default): its pagemap
    entries (checked to be well-formed) and its pages, private ones from
    pagemap-PID.img and shared ones from pagemap-shmem-SHMID.img placed where
    the process's mm image maps each object.  flags: {page address: PE_*}."""

    def __init__(self, path, pid=None, top=None):
        """top: the dump of the chain asked for, whose mappings place the
        shared objects (a process may be absent from its parents)."""
        self.path = os.path.realpath(path)
        tree = img_records(os.path.join(self.path, 'pstree.img'), PSTREE_MAGIC)
        self.pids = [e[1][0] for e in tree]
        self.pid = self.pids[0] if pid is None else pid
        self.flags, self.where = {}, {}
        self.entries = []
        if self.pid in self.pids:
            pm = os.path.join(self.path, f'pagemap-{self.pid}.img')
            for vaddr, nr, flags, data, off in self._read_pm(pm):
                self._add(vaddr, nr, flags, data, off)
            (mm,) = img_records(os.path.join(self.path, f'mm-{self.pid}.img'), MM_MAGIC)
            self.mm = mm
        shm = {}
        for f in glob.glob(os.path.join(self.path, 'pagemap-shmem-*.img')):
            shm[int(os.path.basename(f)[14:-4])] = list(self._read_pm(f))
        mm = (top or self).mm
        for v in map(pb_fields, mm.get(14, [])):
            start, end, pgoff, shmid = v[1][0], v[2][0], v[3][0], v[4][0]
            for vaddr, nr, flags, data, off in shm.get(shmid, []):
                lo, hi = max(vaddr, pgoff), min(vaddr + nr * PAGE, pgoff + end - start)
                if lo < hi:
                    self._add(start + lo - pgoff, (hi - lo) // PAGE, flags, data,
                              off + (lo - vaddr) if off is not None else None)
        self.entries.sort()
        link = os.path.join(self.path, 'parent')
        self.parent = os.path.realpath(link) if os.path.islink(link) else None

    def _read_pm(self, pm):
        """(vaddr or offset, nr, flags, pages bytes, offset in them) of each
        entry of a pagemap file, read and checked by treeimg.Pagemap."""
        m = Pagemap(os.path.dirname(pm), os.path.basename(pm))
        for key, nr, flags, off in m.entries:
            yield key, nr, flags, m.data, off

    def _add(self, vaddr, nr, flags, data, off):
        self.entries.append((vaddr, nr, flags))
        for k in range(nr):
            a = vaddr + k * PAGE
            check(a not in self.flags, f'{self.path}: two entries for {a:#x}')
            self.flags[a] = flags
            if flags == PE_PRESENT:
                self.where[a] = (data, off + k * PAGE)

    def page(self, a):
        data, o = self.where[a]
        return data[o:o + PAGE]

    def count(self, flag):
        return sum(1 for f in self.flags.values() if f == flag)

    def pages(self, flag, lo, hi):
        return {a for a, f in self.flags.items() if f == flag and lo <= a < hi}


def chain_of(path, pid=None):
    chain = [Dump(path, pid)]
    while chain[-1].parent:
        check(len(chain) < 64, f'{path}: parent chain loops')
        chain.append(Dump(chain[-1].parent, chain[0].pid, chain[0]))
    return chain


def resolve(path, pid=None):
    """{page address: bytes} for every page with an entry in dump `path`:
    follow the parent links, the newest PE_PRESENT copy wins."""
    chain, out = chain_of(path, pid), {}
    for a in chain[0].flags:
        for d in chain:
            f = d.flags.get(a)
            check(f is not None, f'{a:#x} is PE_PARENT in {chain[0].path} but has no entry in {d.path}')
            if f == PE_PRESENT:
                out[a] = d.page(a)
                break
        else:
            raise AssertionError(f'{a:#x}: PE_PARENT down to the end of the chain of {path}')
    return out


def mm_vmas(d):
    (mm,) = img_records(os.path.join(d.path, f'mm-{d.pid}.img'), MM_MAGIC)
    return [(v[1][0], v[2][0]) for v in map(pb_fields, mm.get(14, []))]


def crit(*args):
    r = subprocess.run(['crit', *args], capture_output=True, text=True)
    check(r.returncode == 0, f'crit {" ".join(args)}: exit {r.returncode}: {r.stderr.strip()[-400:]}')
    return r.stdout


def crit_decode(path):
    return json.loads(crit('decode', '-i', path))


# -- running dumps ---------------------------------------------------------

def dump(ctx, pid, d, *opts, parent=None):
    """Run a dump that must succeed; check its JSON against the directory.
    Returns (json, Dump)."""
    args = ['dump', pid, '-D', d, *opts] + (['--parent', parent] if parent else [])
    res = ctx.json(*args)
    dm = Dump(d)
    check_eq(os.path.realpath(res['dir']), dm.path, 'json dir')
    check_eq(res['pid'], pid, 'json pid')
    check_eq(dm.pid, pid, 'pagemap-PID.img')
    check_eq(res['full'], res['parent'] is None, 'json full vs parent')
    if parent and res['full']:
        check(res.get('full_because'), f'full dump with --parent {parent} but no full_because')
    if not res['full']:
        check_eq(os.path.realpath(res['parent']), os.path.realpath(parent), 'json parent')
        link = os.readlink(os.path.join(d, 'parent'))
        check(not link.startswith('/'), f'parent link {link!r} is not relative')
        check_eq(dm.parent, os.path.realpath(parent), 'parent link target')
    else:
        check(not os.path.lexists(os.path.join(d, 'parent')), f'{d}: full dump has a parent link')
    check_eq(res['pages_present'], dm.count(PE_PRESENT), 'json pages_present')
    check_eq(res['pages_written'], dm.count(PE_PRESENT), 'json pages_written')
    check_eq(res['pages_parent'], dm.count(PE_PARENT), 'json pages_parent')
    check_eq(res['bytes_written'], res['pages_written'] * PAGE, 'json bytes_written')
    # the directory: files, modes, stats, entries inside the dumped VMAs
    names = set(os.listdir(d))
    for want in ('inventory.img', 'pstree.img', f'mm-{pid}.img', f'pagemap-{pid}.img',
                 'pages-1.img', 'stats-dump'):
        check(want in names, f'{d}: no {want} (has {sorted(names)})')
    check(any(n.startswith('core-') for n in names), f'{d}: no core-TID.img')
    check_eq(stat.S_IMODE(os.stat(d).st_mode), 0o700, f'{d} mode')
    for n in names - {'parent'}:
        st = os.lstat(os.path.join(d, n))
        check(stat.S_ISREG(st.st_mode), f'{d}/{n} is not a regular file')
        check_eq(stat.S_IMODE(st.st_mode), 0o600, f'{d}/{n} mode')
    (stats,) = img_records(os.path.join(d, 'stats-dump'), STATS_MAGIC)
    check_eq(pb_fields(stats[1][0]).get(7, [0])[0], res['pages_written'], 'stats-dump pages_written')
    vmas = sorted(mm_vmas(dm))   # entries may span adjacent VMAs, as CRIU's do
    for a in dm.flags:
        check(any(s <= a < e for s, e in vmas), f'{d}: page {a:#x} has an entry but is in no '
              f'VMA of mm-{pid}.img')
    return res, dm


def check_no_tmp(d):
    parent, base = os.path.split(os.path.abspath(d))
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    left = [n for n in os.listdir(parent) if n.startswith(f'.{base}.tmp-')]
    check(not left, f'leftover temporary directories in {parent}: {left}')


def refuse(ctx, pid, d, *opts, parent=None, code=2, words=()):
    """Run a dump that must fail with `code`, leaving nothing behind."""
    existed = os.path.lexists(d)
    args = ['dump', pid, '-D', d, *opts] + (['--parent', parent] if parent else [])
    rc, out, err = ctx.run(*args)
    check_eq(rc, code, f'dirtytrack {" ".join(map(str, args))} (stderr: {err.strip()})')
    for w in words:
        check(w in err, f'refusal message {err.strip()!r} does not mention {w!r}')
    if not existed:
        check(not os.path.lexists(d), f'{d} exists after a failed dump')
    check_no_tmp(d)
    return err


# -- the target and a model of its test regions ----------------------------

class Mem:
    """The target plus what its test regions hold: content[name] maps page
    index -> the bytes a dump must store (only kinds in STORED), written[name]
    the indices written since the last mark()."""

    def __init__(self, t, tmp, tag=''):
        self.t, self.tmp, self.tag = t, tmp, tag
        self.kind, self.content, self.written, self.blank = {}, {}, {}, {}
        self.whole_next = set()     # shared regions a child outside the tree maps

    def map(self, name, kind, n, file_byte=0x5a):
        path = None
        if kind.startswith('file'):
            path = os.path.join(self.tmp, f'{self.tag}{name}.file')
            with open(path, 'wb') as f:
                f.write(bytes([file_byte]) * n * PAGE)
        if kind in ('heap', 'stack'):
            getattr(self.t, kind)(name, n)
        else:
            self.t.map(name, kind, n, path)
        self.kind[name], self.content[name], self.written[name] = kind, {}, set()
        self.blank[name] = bytes([file_byte]) * PAGE if path else ZERO
        if kind == 'shared' and not map_files_readable():
            # no way to the object: every page is stored, read through the mapping
            self.content[name] = {i: ZERO for i in range(n)}
        return self.base(name)

    def base(self, name):
        return self.t.regions[name][0]

    def span(self, name):
        base, n = self.t.regions[name]
        return base, base + n * PAGE

    def _set(self, name, p, n, make):
        for i in range(p, p + n):
            if self.kind[name] in STORED:
                self.content[name][i] = make(self.content[name].get(i, self.blank[name]))
            self.written[name].add(i)

    def fill(self, name, p, n, b):
        self.t.fill(name, p, n, b)
        self._set(name, p, n, lambda old: bytes([b]) * PAGE)

    def write(self, name, p, n=1, b=DEFAULT_BYTE):
        self.t.write(name, p, n, b)
        self._set(name, p, n, lambda old: old[:WRITE_OFFSET] + bytes([b]) + old[WRITE_OFFSET + 1:])

    def threads(self, nthreads, name, p, n, b):
        self.t.threads(nthreads, name, p, n, b)
        self._set(name, p, n, lambda old: old[:WRITE_OFFSET] + bytes([b]) + old[WRITE_OFFSET + 1:])

    def read(self, name, p, n=1):
        """Reading a hole of anonymous or shared memory allocates a zero page
        here (no zero page in this guest): content, new since the parent."""
        s = self.t.read(name, p, n)
        if self.kind[name] in ANON_LIKE + SHMEM:
            self._set(name, p, n, lambda old: old)
        return s

    def sysread(self, name, p, n):
        """read(2) from /dev/urandom: the kernel writes the pages."""
        self.t.sysread(name, p, n)
        lo = self.base(name)
        with open(f'/proc/{self.t.pid}/mem', 'rb', buffering=0) as f:
            f.seek(lo + p * PAGE)
            data = f.read(n * PAGE)
        self._set(name, p, n, lambda old: None)
        for i in range(n):
            self.content[name][p + i] = data[i * PAGE:(i + 1) * PAGE]

    def forkwrite(self, name, p, b):
        """A forked child writes the page: only shared memory changes."""
        self.t.forkwrite(name, p, b)
        # the child wrote through page tables we never see, and maps the object
        # as long as it lives (it pauses): stored whole from now on
        self.whole_next.add(name)
        if self.kind[name] in SHMEM:
            self._set(name, p, 1, lambda old: old[:WRITE_OFFSET] + bytes([b]) + old[WRITE_OFFSET + 1:])

    def dontneed(self, name, p, n):
        self.t.dontneed(name, p, n)
        if self.kind[name] not in SHMEM:     # shared content stays in its object
            for i in range(p, p + n):
                self.content[name].pop(i, None)
                self.written[name].add(i)

    def mapfixed(self, name, p, n):
        self.t.mapfixed(name, p, n)
        for i in range(p, p + n):
            self.content[name].pop(i, None)

    def remap(self, name, n, move=False):
        old = self.base(name)
        self.t.remap(name, n, move)
        self.content[name] = {i: c for i, c in self.content[name].items() if i < n}
        if self.base(name) != old:                 # every page is new at the new place
            self.written[name] |= set(self.content[name])

    def unmap(self, name):
        self.t.unmap(name)
        for d in (self.kind, self.content, self.written, self.blank):
            d.pop(name)

    def sync_present(self, name):
        """Pages the kernel populated without our writing them (a THP fault
        fills the whole huge page with zeros) have content too."""
        lo, hi = self.span(name)
        with open(f'/proc/{self.t.pid}/pagemap', 'rb') as f:
            f.seek(lo // PAGE * 8)
            raw = f.read((hi - lo) // PAGE * 8)
        for i, (e,) in enumerate(struct.iter_unpack('<Q', raw)):
            if e >> 63 and i not in self.content[name]:
                self.content[name][i] = ZERO
                self.written[name].add(i)

    def mark(self):
        for s in self.written.values():
            s.clear()



def stored_whole(kind):
    """Shared memory an incremental dump stores whole: files (write(2) changes
    them unseen), and shared anonymous memory whose holes we cannot see
    (without map_files a punched hole looks unchanged)."""
    return kind == 'memfd' or (kind == 'shared' and not map_files_readable())


def ranges(idx):
    """Page indices as a compact string: '0-3,8,10-11'."""
    out, idx = [], sorted(idx)
    while idx:
        j = 0
        while j + 1 < len(idx) and idx[j + 1] == idx[0] + j + 1:
            j += 1
        out.append(f'{idx[0]}' if j == 0 else f'{idx[0]}-{idx[j]}')
        idx = idx[j + 1:]
    return ','.join(out) or '-'


def same_page(got, want, what):
    if got == want:
        return
    if got is None or want is None:
        raise AssertionError(f'{what}: {"no entry" if got is None else "an entry"}, '
                             f'want {"content" if got is None else "none"}')
    i = next(k for k in range(PAGE) if got[k] != want[k])
    raise AssertionError(f'{what}: byte {i} is {got[i]:#x}, want {want[i]:#x}')


def check_regions(m, dm, full, loose=()):
    """The entries of dump dm inside the test regions: a full dump stores every
    page with content; an incremental one the pages written since the last
    mark() (and all of shared memory) as PE_PRESENT, the other pages with
    content as PE_PARENT.  Regions in `loose` may store more as PE_PRESENT
    (changed VMAs).  Stored bytes must be the model's."""
    for name, kind in m.kind.items():
        lo, hi = m.span(name)
        pres = {(a - lo) // PAGE for a in dm.pages(PE_PRESENT, lo, hi)}
        par = {(a - lo) // PAGE for a in dm.pages(PE_PARENT, lo, hi)}
        have = set(m.content[name])
        whole = full or stored_whole(kind) or (kind in SHMEM and name in m.whole_next)
        want = have if whole else have & m.written[name]
        what = f'{os.path.basename(dm.path)}: region {name} ({kind})'
        if name in loose:
            check(want <= pres and pres | par == have,
                  f'{what}: PE_PRESENT {ranges(pres)} PE_PARENT {ranges(par)}, want content '
                  f'{ranges(have)} with at least {ranges(want)} PE_PRESENT')
        else:
            check_eq(ranges(pres), ranges(want), f'{what}: PE_PRESENT pages')
            check_eq(ranges(par), ranges(have - want), f'{what}: PE_PARENT pages')
        for i in pres:
            same_page(dm.page(lo + i * PAGE), m.content[name][i], f'{what}: page {i} in pages-1.img')


def check_chain(m, path):
    """Resolving the chain gives every test page the model's content, and no
    entry for pages without content."""
    res = resolve(path)
    for name, kind in m.kind.items():
        lo, hi = m.span(name)
        for i in range((hi - lo) // PAGE):
            same_page(res.get(lo + i * PAGE), m.content[name].get(i),
                      f'{os.path.basename(os.path.realpath(path))} resolved: region {name} '
                      f'({kind}) page {i}')
    return res


def proc_state(pid, tid=None):
    with open(f'/proc/{pid}/task/{tid or pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()[0]


def wait_state(pid, want, timeout=5):
    end = time.monotonic() + timeout
    while proc_state(pid) != want:
        check(time.monotonic() < end, f'process {pid} not in state {want}')
        time.sleep(0.005)


def tids_of(pid):
    return sorted(int(x) for x in os.listdir(f'/proc/{pid}/task'))


# -- 1. full dump ----------------------------------------------------------

def test_dump_full_regions(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        kinds = ('anon', 'heap', 'stack', 'shared', 'memfd', 'filepriv', 'fileshared')
        for k, kind in enumerate(kinds):
            m.map(kind, kind, 24)
            m.fill(kind, 2, 3, 0x30 + k)
            m.write(kind, 10, 2, 0x50 + k)
            m.write(kind, 23, 1, 0x70 + k)
        m.map('none', 'none', 8)
        m.read('filepriv', 14, 4)     # page-cache pages mapped, never copied: not stored
        m.read('fileshared', 14, 4)
        m.map('thp', 'thp', 512)
        m.write('thp', 0, 1, 0x61)
        m.fill('thp', 100, 2, 0x62)
        m.write('thp', 511, 1, 0x63)
        m.sync_present('thp')
        d = os.path.join(ctx.tmp, 'full')
        res, dm = dump(ctx, t.pid, d)
        check(res['full'] and res['iteration'] == 1 and not res['frozen'], f'json: {res}')
        check_eq(dm.count(PE_PARENT), 0, 'PE_PARENT entries in a full dump')
        check_regions(m, dm, full=True)
        check_chain(m, d)
        # crit reads every image file (pages-1.img is raw data without a magic)
        for n in sorted(os.listdir(d)):
            if not n.startswith('pages-'):
                crit('decode', '-i', os.path.join(d, n))
                crit('show', os.path.join(d, n))
        crit_ents = []
        for n in sorted(os.listdir(d)):
            if n.startswith('pagemap-'):
                ents = crit_decode(os.path.join(d, n))['entries']
                check(os.path.exists(os.path.join(d, f'pages-{ents[0].get("pages_id")}.img')),
                      f'crit: {n} head names a pages file that is not there')
                crit_ents += [(n, e['vaddr'], e['nr_pages'], e['flags']) for e in ents[1:]]
        ours = []
        for n in sorted(os.listdir(d)):
            if n.startswith('pagemap-'):
                ours += [(n, v, nr, f) for v, nr, f, _, _ in dm._read_pm(os.path.join(d, n))]
        check_eq(crit_ents, ours, 'crit pagemap entries vs ours')
        check(any(n.startswith('pagemap-shmem-') for n in os.listdir(d)),
              f'{d}: shared memory is not in a pagemap-shmem-SHMID.img')
        pst = crit_decode(os.path.join(d, 'pstree.img'))['entries'][0]
        check_eq((pst['pid'], pst['threads']), (t.pid, [t.pid]), 'crit pstree')
        vmas = crit_decode(os.path.join(d, f'mm-{t.pid}.img'))['entries'][0]['vmas']
        lo, hi = m.span('anon')
        check(any(v['start'] <= lo and hi <= v['end'] and (v['status'], v['flags']) == (0x201, 0x22)
                  for v in vmas),
              f'no private anonymous VMA (status 0x201, flags 0x22) holding {lo:#x}-{hi:#x} '
              f'in mm-{t.pid}.img')


# -- 2. chain of incremental dumps -----------------------------------------

def test_dump_incremental_chain(ctx):
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        for name, kind, n in (('a', 'anon', 64), ('h', 'heap', 16), ('s', 'stack', 16),
                              ('fp', 'filepriv', 16), ('m', 'memfd', 16), ('sh', 'shared', 16),
                              ('thp', 'thp', 512)):
            m.map(name, kind, n)
        steps = [
            lambda: (m.fill('a', 0, 32, 1), m.write('h', 0, 8, 1), m.fill('s', 0, 4, 1),
                     m.fill('fp', 0, 2, 1), m.write('m', 0, 8, 1), m.fill('sh', 0, 4, 1),
                     m.write('thp', 0, 1, 1)),
            lambda: (m.write('a', 3, 2, 2), m.threads(4, 'a', 40, 8, 3), m.write('h', 2, 1, 2),
                     m.write('thp', 5, 1, 2), m.write('m', 3, 1, 2)),
            lambda: (m.threads(3, 'a', 0, 6, 4), m.fill('s', 10, 1, 4), m.write('fp', 8, 1, 4),
                     m.threads(2, 'thp', 300, 4, 4), m.sysread('a', 50, 3)),
            lambda: m.write('sh', 9, 1, 5),        # no private page written this time
        ]
        # dumps in different directories: nested, with a trailing slash, through a symlink
        os.makedirs(os.path.join(ctx.tmp, 'x/y'))
        os.symlink('x', os.path.join(ctx.tmp, 'ln'))
        dirs = [os.path.join(ctx.tmp, d) for d in ('d1', 'x/y/d2', 'd3/', 'ln/d4')]
        dirs[1] = os.path.relpath(dirs[1])          # relative to our (and the tool's) cwd
        prev = None
        for i, (step, d) in enumerate(zip(steps, dirs)):
            step()
            m.sync_present('thp')
            res, dm = dump(ctx, t.pid, d, parent=prev)
            check_eq((res['full'], res['iteration']), (i == 0, i + 1), f'{d}: json full, iteration')
            check_regions(m, dm, full=i == 0)
            check_chain(m, d)
            if prev:
                check_eq(os.path.realpath(os.path.join(d, os.readlink(os.path.join(d, 'parent')))),
                         os.path.realpath(prev), f'{d}/parent resolved from {d}')
            m.mark()
            prev = d


# -- 3. the chain against the live process ---------------------------------

def test_dump_chain_matches_live_memory(ctx):
    rnd = random.Random(3)
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        for name, kind in (('a', 'anon'), ('h', 'heap'), ('s', 'stack'), ('fp', 'filepriv'),
                           ('m', 'memfd'), ('sh', 'shared'), ('fs', 'fileshared')):
            m.map(name, kind, 48)
        prev = None
        for i in range(4):
            for name in m.kind:
                for _ in range(6):
                    p = rnd.randrange(44)
                    if rnd.random() < 0.3:
                        m.fill(name, p, rnd.randrange(1, 4), rnd.randrange(1, 256))
                    else:
                        m.write(name, p, rnd.randrange(1, 4), rnd.randrange(1, 256))
            if i == 2:
                m.dontneed('a', 0, 8)
                m.threads(4, 'a', 20, 12, 0x77)
            d = os.path.join(ctx.tmp, f'd{i + 1}')
            last = i == 3
            res, dm = dump(ctx, t.pid, d, *(['--leave-stopped'] if last else []), parent=prev)
            check_regions(m, dm, full=i == 0)
            m.mark()
            prev = d
        try:
            check(res['left_stopped'] and res['frozen'], f'json: {res}')
            check_eq(proc_state(t.pid), 'T', 'state after --leave-stopped')
            with open(f'/proc/{t.pid}/status') as f:
                check('TracerPid:\t0\n' in f.read(), 'still traced after --leave-stopped')
            resolved = check_chain(m, d)
            with open(f'/proc/{t.pid}/mem', 'rb', buffering=0) as mem:
                for name, kind in m.kind.items():
                    lo, hi = m.span(name)
                    for a in range(lo, hi, PAGE):
                        mem.seek(a)
                        live = mem.read(PAGE)
                        # no entry: zero, or the file's content for a private file mapping
                        want = live if kind == 'fileshared' else resolved.get(a, m.blank[name])
                        same_page(live, want, f'live {name} ({kind}) page {(a - lo) // PAGE} '
                                  f'vs resolved chain')
        finally:
            os.kill(t.pid, signal.SIGCONT)
        check_eq(t.getpid(), t.pid, 'target answers after SIGCONT')


# -- 4. --freeze and threads -----------------------------------------------

def test_dump_freeze_threads(ctx):
    with ctx.target() as t:
        t.map('a', 'anon', 16)
        t.fill('a', 0, 16, 1)
        t.spin(3, 'a', 0, 8)
        try:
            t.wait_spinning(3)
            tids = tids_of(t.pid)
            check_eq(len(tids), 4, 'threads')
            d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
            res, _ = dump(ctx, t.pid, d1)
            check(not res['frozen'], f'json: {res}')
            for tid in tids:
                core = crit_decode(os.path.join(d1, f'core-{tid}.img'))['entries'][0]
                check('tc' in core, f'core-{tid}.img (no --freeze) has no tc: {core}')
            (pst,) = img_records(os.path.join(d1, 'pstree.img'), PSTREE_MAGIC)
            check_eq(sorted(uints(pst.get(5, []))), tids, 'pstree threads (no --freeze)')
            res, dm = dump(ctx, t.pid, d2, '--freeze', parent=d1)
            check(res['frozen'] and not res['left_stopped'], f'json: {res}')
            for tid in tids_of(t.pid):
                check(proc_state(t.pid, tid) not in 'tT', f'thread {tid} stopped after --freeze')
            n = t.spincount()
            t.wait_spinning(n + 3)       # the spinners run on
            (pst,) = img_records(os.path.join(d2, 'pstree.img'), PSTREE_MAGIC)
            check_eq(sorted(uints(pst.get(5, []))), tids, 'pstree threads')
            cores = sorted(int(f[5:-4]) for f in os.listdir(d2) if f.startswith('core-'))
            check_eq(cores, tids, 'core-TID.img files')
            with open(f'/proc/{t.pid}/maps') as f:
                execs = [tuple(int(x, 16) for x in ln.split()[0].split('-'))
                         for ln in f if ln.split()[1][2] == 'x']
            fs_bases = set()
            for tid in tids:
                core = crit_decode(os.path.join(d2, f'core-{tid}.img'))['entries'][0]
                gp = core.get('thread_info', {}).get('gpregs')
                check(gp, f'core-{tid}.img has no thread_info.gpregs: {core}')
                ip = int(str(gp['ip']), 0)
                check(any(s <= ip < e for s, e in execs), f'core-{tid}.img: ip {ip:#x} not in code')
                fs_bases.add(gp['fs_base'])
            check_eq(len(fs_bases), len(tids), 'distinct fs_base per thread (registers per thread)')
            lo = t.base('a')
            check_eq(dm.pages(PE_PRESENT, lo, lo + 16 * PAGE), t.pages('a', 0, 8),
                     'spinner pages PE_PRESENT in the --freeze dump')
            check_eq(dm.pages(PE_PARENT, lo, lo + 16 * PAGE), t.pages('a', 8, 8),
                     'other pages PE_PARENT')
            # --leave-stopped: every thread stopped, not traced; SIGCONT resumes them
            d3, d4 = os.path.join(ctx.tmp, 'd3'), os.path.join(ctx.tmp, 'd4')
            dump(ctx, t.pid, d3, '--leave-stopped', parent=d2)
            try:
                for tid in tids:
                    check_eq(proc_state(t.pid, tid), 'T', f'thread {tid} after --leave-stopped')
            finally:
                os.kill(t.pid, signal.SIGCONT)
            t.wait_spinning(t.spincount() + 3)
            # a process stopped before a --freeze dump stays stopped
            os.kill(t.pid, signal.SIGSTOP)
            try:
                wait_state(t.pid, 'T')
                dump(ctx, t.pid, d4, '--freeze', parent=d3)
                check_eq(proc_state(t.pid), 'T', 'stopped process after a --freeze dump')
            finally:
                os.kill(t.pid, signal.SIGCONT)
        finally:
            t.unspin()


# -- 5. MADV_DONTNEED and mapping changes between dumps --------------------

def test_dump_dontneed_and_vma_changes(ctx):
    need_root('zapped shared memory is found through /proc/PID/map_files '
              '(CAP_CHECKPOINT_RESTORE)')
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        for name, kind, n in (('a', 'anon', 32), ('b', 'anon', 16), ('g', 'anon', 8),
                              ('mv', 'anon', 8), ('fx', 'anon', 16), ('sh', 'shared', 8),
                              ('fp', 'filepriv', 8)):
            m.map(name, kind, n)
        for k, (name, n) in enumerate((('a', 16), ('b', 16), ('g', 4), ('mv', 6), ('fx', 16),
                                       ('sh', 4), ('fp', 4))):
            m.fill(name, 0, n, 0x11 + k)
        m.remap('g', 4)                       # shrink: room to grow in place later
        m.map('thp', 'thp', 512)
        m.write('thp', 0, 1, 0x18)
        m.sync_present('thp')
        d1, d2, d3 = (os.path.join(ctx.tmp, f'd{i}') for i in (1, 2, 3))
        dump(ctx, t.pid, d1)
        m.mark()
        old_b, old_mv = m.span('b'), m.span('mv')
        m.dontneed('a', 4, 4)                 # zapped: zero, no entry
        m.dontneed('a', 8, 2)
        m.write('a', 8, 1, 0x21)              # zapped, then written
        m.read('a', 9)                        # zapped, then read: a zero page
        m.dontneed('sh', 0, 2)                # shared: the content stays in the object
        m.dontneed('fp', 0, 2)                # private copies dropped: file content again
        m.dontneed('thp', 10, 5)              # splits the huge page
        m.forkwrite('sh', 6, 0x27)            # a child writes shared memory we never touched
        m.forkwrite('a', 12, 0x28)            # ... and its own copy of a private page
        m.write('a', 13, 1, 0x29)             # our write to a page shared with the child
        m.unmap('b')
        m.map('r', 'anon', 16)                # most likely at b's old address
        m.fill('r', 0, 4, 0x22)
        m.map('n', 'anon', 8)
        m.fill('n', 2, 3, 0x23)
        m.remap('g', 8)                       # grow
        m.write('g', 6, 1, 0x24)
        m.remap('mv', 8, move=True)
        m.mapfixed('fx', 4, 4)
        m.write('fx', 5, 1, 0x25)
        m.map('h', 'heap', 4)                 # new heap VMA after the first dump
        m.fill('h', 0, 2, 0x26)
        res, dm = dump(ctx, t.pid, d2, parent=d1)
        check(not res['full'], f'json: {res}')
        check_regions(m, dm, full=False, loose={'g', 'fx', 'thp'})
        check_chain(m, d2)
        # explicitly, what the brief says
        pg = lambda name, *i: {m.base(name) + k * PAGE for k in i}  # noqa: E731
        ents = lambda flag, name: dm.pages(flag, *m.span(name))     # noqa: E731
        check(not (pg('a', 4, 5, 6, 7) & set(dm.flags)), 'zapped pages have entries')
        check(pg('a', 8, 9) <= ents(PE_PRESENT, 'a'), 'zapped then written/read pages not PE_PRESENT')
        check_eq(ents(PE_PRESENT, 'sh'), pg('sh', 0, 1, 2, 3, 6), 'shared pages after DONTNEED')
        check(not (pg('thp', *range(10, 15)) & set(dm.flags)), 'zapped THP pages have entries')
        check_eq(ents(PE_PRESENT, 'r'), pg('r', 0, 1, 2, 3), 'new VMA (at b\'s address: '
                 f'{m.base("r") == old_b[0]}) PE_PRESENT')
        check_eq(ents(PE_PRESENT, 'mv'), pg('mv', *range(6)), 'moved VMA PE_PRESENT')
        check(pg('g', 6) <= ents(PE_PRESENT, 'g'), 'grown part not PE_PRESENT')
        check_eq(ents(PE_PRESENT, 'h'), pg('h', 0, 1), 'new heap VMA PE_PRESENT')
        ours = set().union(*(range(*m.span(n), PAGE) for n in m.kind))
        for lo, hi in (old_b, old_mv):
            stale = {a for a in dm.flags if lo <= a < hi} - ours
            check(not stale, f'entries in the removed range {lo:#x}-{hi:#x}: {sorted(stale)[:4]}')
        m.mark()
        # the zapped pages read back as zero (and are zero-filled pages now)
        check_eq(m.read('a', 4, 4), 0, 'zapped pages read back')
        _, dm = dump(ctx, t.pid, d3, parent=d2)
        check_regions(m, dm, full=False)
        check_chain(m, d3)


def test_dump_prot_none_mapping_written_between_dumps(ctx):
    """A mapping that is PROT_NONE whenever a dump looks (so never registered)
    but made writable, written and closed again in between: its pages changed
    and must not be taken from the parent."""
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('pn', 'anon', 8)
        m.fill('pn', 0, 4, 0x11)
        t.mprotect('pn', 0, 8, 'none')
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        dump(ctx, t.pid, d1)
        m.mark()
        t.mprotect('pn', 0, 8, 'rw')
        m.fill('pn', 0, 2, 0x22)
        t.mprotect('pn', 0, 8, 'none')
        _, dm = dump(ctx, t.pid, d2, parent=d1)
        check_chain(m, d2)
        # an untracked mapping's content is stored whole, written or not
        check_regions(m, dm, full=False, loose=('pn',))
        lo, hi = m.span('pn')
        check_eq(len(dm.pages(PE_PRESENT, lo, hi)), 4, 'PE_PRESENT pages of the PROT_NONE region')


# -- 6. refusals -----------------------------------------------------------

def test_dump_refuses_stale_parent(ctx):
    p = partial(os.path.join, ctx.tmp)
    with ctx.target() as t, ctx.target() as u:
        t.map('a', 'anon', 16)
        t.fill('a', 0, 8, 1)
        dump(ctx, t.pid, p('A'))
        t.write('a', 0)
        dump(ctx, t.pid, p('B'), parent=p('A'))
        t.write('a', 1)
        refuse(ctx, t.pid, p('C'), parent=p('A'), words=('latest',))
        refuse(ctx, t.pid, p('C'), parent=p('nonexistent'))
        os.mkdir(p('notadump'))
        refuse(ctx, t.pid, p('C'), parent=p('notadump'))
        # refusals consume nothing: B is still the latest and page 1 still written
        _, dm = dump(ctx, t.pid, p('D'), parent=p('B'))
        lo = t.base('a')
        check_eq(dm.pages(PE_PRESENT, lo, lo + 16 * PAGE), t.pages('a', 1, 1),
                 'PE_PRESENT after refused dumps')
        res, _ = dump(ctx, t.pid, p('E'), '--full-if-needed', parent=p('B'))
        check(res['full'] and 'latest' in res.get('full_because', ''), f'json: {res}')
        res, _ = dump(ctx, t.pid, p('F'), '--full-if-needed', parent=p('E'))
        check(not res['full'] and 'full_because' not in res, f'needless full dump: {res}')
        # a watch collects too: F is not the latest any more
        rc, out, err = ctx.run('watch', t.pid, '--count', 1, '--interval', 50)
        check_eq(rc, 0, f'watch: {err}')
        refuse(ctx, t.pid, p('G'), parent=p('F'), words=('latest',))
        res, _ = dump(ctx, t.pid, p('G'), '--full-if-needed', parent=p('F'))
        check(res['full'] and res.get('full_because'), f'json: {res}')
        # another process's dump is no parent (u untracked, then tracked)
        u.map('a', 'anon', 4)
        u.fill('a', 0, 4, 2)
        refuse(ctx, u.pid, p('U1'), parent=p('G'))
        res, _ = dump(ctx, u.pid, p('U1'), '--full-if-needed', parent=p('G'))
        check(res['full'] and res.get('full_because'), f'json: {res}')
        refuse(ctx, u.pid, p('U2'), parent=p('G'), words=('another process',))
        refuse(ctx, t.pid, p('T2'), parent=p('U1'), words=('another process',))
        dump(ctx, u.pid, p('U2'), parent=p('U1'))
        # `status` looks without collecting: the parent stays the latest
        t.write('a', 5)
        rc, out, err = ctx.run('status', t.pid)
        check_eq(rc, 0, f'status: {err}')
        _, dm = dump(ctx, t.pid, p('T2'), parent=p('G'))
        check_eq(dm.pages(PE_PRESENT, lo, lo + 16 * PAGE), t.pages('a', 5, 1), 'PE_PRESENT after status')


def test_dump_refuses_broken_chain_and_other_session(ctx):
    p = partial(os.path.join, ctx.tmp)
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        dump(ctx, t.pid, p('A'))
        dump(ctx, t.pid, p('B'), parent=p('A'))
        # the parent's own parent is missing: refused, then fine once it is back
        os.rename(p('A'), p('A.away'))
        refuse(ctx, t.pid, p('C'), parent=p('B'))
        os.rename(p('A.away'), p('A'))
        dump(ctx, t.pid, p('C'), parent=p('B'))
        # tracking stopped, then restarted: a new session
        check_eq(ctx.run('stop', t.pid)[0], 0, 'stop')
        refuse(ctx, t.pid, p('D'), parent=p('C'))
        check_eq(ctx.run('start', t.pid)[0], 0, 'start')
        refuse(ctx, t.pid, p('D'), parent=p('C'), words=('session',))
        res, _ = dump(ctx, t.pid, p('D'), '--full-if-needed', parent=p('C'))
        check(res['full'] and res.get('full_because'), f'json: {res}')
        # exec: the old address space is gone
        t.exec()
        refuse(ctx, t.pid, p('E'), parent=p('D'), code=5)
        res, _ = dump(ctx, t.pid, p('E'), '--full-if-needed', parent=p('D'))
        check(res['full'] and res.get('full_because'), f'json: {res}')


def test_dump_concurrent_dumps_same_parent(ctx):
    """Dumps of one process started at the same time on the same parent: each
    that succeeds must be correct (only one can collect the pages written
    since the parent; the others must be refused, or wait and be refused).
    A few rounds, each on a parent that succeeded in the round before."""
    p = partial(os.path.join, ctx.tmp)
    with ctx.target() as t:
        m = Mem(t, ctx.tmp)
        m.map('a', 'anon', 64)
        m.fill('a', 0, 64, 1)
        parent = p('A')
        dump(ctx, t.pid, parent)
        for r in range(5):
            m.fill('a', 0, 64, 2 + r)
            procs = [subprocess.Popen([ctx.bin, '-j', 'dump', str(t.pid), '-D', p(f'B{r}{i}'),
                                       '--parent', parent], env=ctx.env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for i in range(4)]
            outs = [(pr.communicate(timeout=60), pr.returncode) for pr in procs]
            ok = [p(f'B{r}{i}') for i, (_, rc) in enumerate(outs) if rc == 0]
            check(ok, f'round {r}: no dump succeeded: {[o[0][1] for o in outs]}')
            for i, ((out, err), rc) in enumerate(outs):
                check(rc in (0, 2) and 'Sanitizer' not in err, f'B{r}{i}: exit {rc}: {err}')
                if rc == 0:
                    check_chain(m, p(f'B{r}{i}'))
                else:
                    check(not os.path.lexists(p(f'B{r}{i}')), f'B{r}{i} left behind')
            check_eq(len(ok), 1, f'round {r}: concurrent dumps on one parent that succeeded')
            parent = ok[0]


def test_dump_refuses_bad_dir(ctx):
    p = partial(os.path.join, ctx.tmp)
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        dump(ctx, t.pid, p('base'))
        t.write('a', 3)
        # DIR exists and is not empty: refused, untouched
        os.mkdir(p('full'))
        with open(p('full/keep'), 'w') as f:
            f.write('keep me')
        refuse(ctx, t.pid, p('full'), parent=p('base'), words=('not empty',))
        check_eq(os.listdir(p('full')), ['keep'], 'non-empty DIR listing')
        with open(p('full/keep')) as f:
            check_eq(f.read(), 'keep me', 'non-empty DIR file')
        # DIR is a regular file
        with open(p('file'), 'w') as f:
            f.write('x')
        refuse(ctx, t.pid, p('file'), parent=p('base'))
        check(os.path.isfile(p('file')), 'file DIR replaced')
        # DIR is a symlink (to an empty directory; dangling): nothing written through it
        os.mkdir(p('real'))
        os.symlink(p('real'), p('link'))
        refuse(ctx, t.pid, p('link'), parent=p('base'), words=('symlink',))
        check(os.path.islink(p('link')) and os.listdir(p('real')) == [], 'written through a symlink')
        os.symlink('nowhere', p('dangling'))
        refuse(ctx, t.pid, p('dangling'), parent=p('base'))
        check(os.path.islink(p('dangling')) and not os.path.lexists(p('nowhere')),
              'dangling symlink followed')
        # DIR's parent directory missing; --freeze with --leave-stopped
        refuse(ctx, t.pid, p('no/such/dir'), parent=p('base'))
        refuse(ctx, t.pid, p('fl'), '--freeze', '--leave-stopped', parent=p('base'))
        check(proc_state(t.pid) not in 'tT', 'target stopped after a refused dump')
        # an existing empty directory is taken; the refusals consumed nothing
        os.mkdir(p('empty'), 0o755)
        _, dm = dump(ctx, t.pid, p('empty'), parent=p('base'))
        lo = t.base('a')
        check_eq(dm.pages(PE_PRESENT, lo, lo + 8 * PAGE), t.pages('a', 3, 1),
                 'PE_PRESENT after refused dumps')
        left = [n for n in os.listdir(ctx.tmp) if '.tmp-' in n]
        check(not left, f'leftover temporary directories: {left}')


def test_dump_target_gone(ctx):
    p = partial(os.path.join, ctx.tmp)
    t = ctx.target()
    t.map('a', 'anon', 8)
    t.fill('a', 0, 8, 1)
    dump(ctx, t.pid, p('A'))
    t.kill()
    refuse(ctx, t.pid, p('B'), parent=p('A'), code=5)
    refuse(ctx, t.pid, p('C'), code=5)
    u = ctx.target()                              # never tracked
    u.kill()
    refuse(ctx, u.pid, p('D'), code=5)


# -- 7. the two scan backends agree ----------------------------------------

def backend_run(ctx, backend):
    """A chain of three dumps of a fixed workload; returns each dump's entries
    in the test regions as {(region, page index): (flag, bytes)}."""
    views = []
    with ctx.target() as t:
        m = Mem(t, ctx.tmp, tag=backend)
        for name, kind, n in (('a', 'anon', 64), ('h', 'heap', 16), ('s', 'stack', 16),
                              ('fp', 'filepriv', 16), ('m', 'memfd', 16), ('sh', 'shared', 8),
                              ('fs', 'fileshared', 8)):
            m.map(name, kind, n)
        steps = [
            lambda: (m.fill('a', 0, 24, 1), m.write('h', 0, 6, 1), m.fill('s', 2, 3, 1),
                     m.fill('fp', 0, 4, 1), m.write('m', 0, 10, 1), m.fill('sh', 0, 2, 1),
                     m.fill('fs', 0, 2, 1)),
            lambda: (m.threads(4, 'a', 10, 20, 2), m.dontneed('a', 0, 4), m.write('fp', 9, 1, 2),
                     m.write('s', 8, 1, 2), m.map('n', 'anon', 8), m.fill('n', 1, 2, 2)),
            lambda: (m.remap('n', 8, move=True), m.write('a', 60, 1, 3), m.dontneed('fp', 0, 1),
                     m.write('m', 12, 1, 3)),
        ]
        prev = None
        for i, step in enumerate(steps):
            step()
            d = os.path.join(ctx.tmp, f'{backend}{i + 1}')
            scan = backend if backend != 'mixed' else ('pagemap', 'ioctl')[i % 2]
            _, dm = dump(ctx, t.pid, d, '--scan', scan, parent=prev)
            check_regions(m, dm, full=i == 0, loose={'n'})
            check_chain(m, d)
            view = {}
            for name in m.kind:
                lo, hi = m.span(name)
                for a in range(lo, hi, PAGE):
                    if a in dm.flags:
                        view[name, (a - lo) // PAGE] = (dm.flags[a], a in dm.where and dm.page(a))
            views.append(view)
            m.mark()
            prev = d
    return views


def test_dump_scan_backends_agree(ctx):
    ioctl = backend_run(ctx, 'ioctl')
    for other in ('pagemap', 'mixed'):      # mixed: pagemap, ioctl, pagemap in one chain
        for i, (a, b) in enumerate(zip(ioctl, backend_run(ctx, other))):
            diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            check(not diff, f'dump {i + 1}: --scan ioctl and {other} differ at (region, page, '
                  f'flags, flags): {[(*k, a.get(k, (None,))[0], b.get(k, (None,))[0]) for k in diff[:8]]}')


def test_dump_says_it_started_tracking(ctx):
    """A full dump of an untracked process turns tracking on, and says so."""
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 3)
        first = ctx.json('dump', t.pid, '-D', os.path.join(ctx.tmp, 'd1'))
        check_eq(first['tracking_started'], True, 'tracking_started of the first dump')
        check_eq(ctx.json('status', t.pid)['tracking'], 'on', 'tracking after the first dump')
        again = ctx.json('dump', t.pid, '-D', os.path.join(ctx.tmp, 'd2'))
        check_eq(again['tracking_started'], False, 'tracking_started when already tracked')
        rc, out, _ = ctx.run('dump', t.pid, '-D', os.path.join(ctx.tmp, 'd3'))
        check(rc == 0 and 'now on' not in out, f'text output when already tracked: {out!r}')
        ctx.ok('stop', t.pid)
        rc, out, _ = ctx.run('dump', t.pid, '-D', os.path.join(ctx.tmp, 'd4'))
        check(rc == 0 and 'tracking of process' in out, f'text output after stop: {out!r}')
