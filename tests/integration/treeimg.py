"""An independent reader of CRIU image directories as dirtytrack writes them,
for a process tree or a single process (a tree of one), parent chains
included; and a byte-for-byte comparison of a dump with the live, stopped
processes it was taken from.  It never runs dirtytrack.

The layout (CRIU's): pstree.img lists the processes; per process mm-PID.img
(its VMAs) and pagemap-PID.img (its private memory) with its own
pages-N.img; shared memory once per object for the whole tree in
pagemap-shmem-SHMID.img (entries by byte offset in the object), shown in
each process through the VMAs whose shmid is SHMID.  A dump without any
pagemap-shmem file is the single-process layout, where pagemap-PID.img holds
the shared memory too, by virtual address.

Also the protobuf wire helpers the other tests read images with.
"""
import glob
import os
import struct

from common import PAGE, check, check_eq

PE_PARENT, PE_PRESENT = 1, 4
COMMON_MAGIC = 0x54564319
PAGEMAP_MAGIC, MM_MAGIC, PSTREE_MAGIC, STATS_MAGIC = 0x56084025, 0x57492820, 0x50273030, 0x57093306

# VMA status bits (CRIU)
FILE_PRIVATE, FILE_SHARED, ANON_SHARED, ANON_PRIVATE = 1 << 6, 1 << 7, 1 << 8, 1 << 9
SYSVIPC, MEMFD = 1 << 10, 1 << 14

# /proc/PID/pagemap bits
PM_PRESENT, PM_SWAPPED, PM_FILE = 1 << 63, 1 << 62, 1 << 61


# -- protobuf wire format --------------------------------------------------

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        if c < 0x80:
            return v, i
        shift += 7


def pb_fields(b):
    """A protobuf message as {field number: [values]}: varints as int,
    everything else as bytes."""
    out, i = {}, 0
    while i < len(b):
        key, i = varint(b, i)
        wt = key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise AssertionError(f'protobuf wire type {wt}')
        out.setdefault(key >> 3, []).append(v)
    check(i == len(b), 'protobuf message overruns its record')
    return out


def uints(vals):
    """A repeated uint32 field, packed or not."""
    out = []
    for v in vals:
        if isinstance(v, int):
            out.append(v)
            continue
        i = 0
        while i < len(v):
            x, i = varint(v, i)
            out.append(x)
    return out


def img_records(path, magic):
    """The records of an ordinary image (u32 common magic, u32 magic, then
    u32 length + protobuf), each as pb_fields()."""
    with open(path, 'rb') as f:
        b = f.read()
    check(b[:8] == struct.pack('<II', COMMON_MAGIC, magic), f'{path}: bad magic {b[:8].hex()}')
    recs, i = [], 8
    while i < len(b):
        check(i + 4 <= len(b), f'{path}: truncated length at {i}')
        (n,) = struct.unpack_from('<I', b, i)
        check(i + 4 + n <= len(b), f'{path}: truncated record at {i}')
        recs.append(pb_fields(b[i + 4:i + 4 + n]))
        i += 4 + n
    return recs


# -- one dump directory ----------------------------------------------------

class Pagemap:
    """One pagemap file (pagemap-PID.img or pagemap-shmem-SHMID.img) with
    its pages file, checked to be well-formed.  flags: {key: PE_*}, where a
    key is a virtual address or an offset in a shared object."""

    def __init__(self, d, name):
        self.path = os.path.join(d, name)
        head, *ents = img_records(self.path, PAGEMAP_MAGIC)
        self.pages_id = head[1][0]
        with open(os.path.join(d, f'pages-{self.pages_id}.img'), 'rb') as f:
            self.data = f.read()
        self.flags, self.offset = {}, {}
        self.entries = []       # (key, nr_pages, flags, offset in the pages file or None)
        off = prev_end = 0
        for e in ents:
            key, nr, flags = e[1][0], e[2][0], e.get(4, [0])[0]
            check_eq(e.get(5, [nr])[0], nr, f'{self.path}: nr_pages (field 5) vs field 2 at {key:#x}')
            check(nr > 0 and key % PAGE == 0 and key >= prev_end,
                  f'{self.path}: bad, overlapping or unsorted entry {key:#x}+{nr}')
            check(flags in (PE_PRESENT, PE_PARENT), f'{self.path}: flags {flags} at {key:#x}')
            prev_end = key + nr * PAGE
            self.entries.append((key, nr, flags, off if flags == PE_PRESENT else None))
            for k in range(nr):
                a = key + k * PAGE
                self.flags[a] = flags
                if flags == PE_PRESENT:
                    self.offset[a], off = off, off + PAGE
        check_eq(len(self.data), off, f'{self.path}: pages-{self.pages_id}.img size vs its '
                 'PE_PRESENT pages')

    def page(self, a):
        o = self.offset[a]
        return self.data[o:o + PAGE]

    def count(self, flag):
        return sum(1 for f in self.flags.values() if f == flag)


class Vma:
    def __init__(self, f):
        self.start, self.end, self.pgoff = f[1][0], f[2][0], f[3][0]
        self.shmid, self.prot, self.flags, self.status = f[4][0], f[5][0], f[6][0], f[7][0]

    @property
    def shared(self):
        """Shared memory (stored by object): a shmid and a shared status."""
        return self.shmid != 0 and bool(self.status & (ANON_SHARED | SYSVIPC | MEMFD | FILE_SHARED))

    @property
    def has_content(self):
        """A VMA whose memory a dump stores."""
        return self.shared or bool(self.status & (ANON_PRIVATE | FILE_PRIVATE))

    def __repr__(self):
        return f'[{self.start:#x}-{self.end:#x} status {self.status:#x} shmid {self.shmid}]'


class Proc:
    def __init__(self, f):
        self.pid, self.ppid, self.pgid, self.sid = f[1][0], f[2][0], f[3][0], f[4][0]
        self.threads = uints(f.get(5, []))


class DumpDir:
    """One dump directory: pstree, per-process VMAs and pagemaps, shared
    objects; `parent` the DumpDir its parent link names, or None."""

    def __init__(self, path, depth=0):
        self.path = os.path.realpath(path)
        check(depth < 64, f'{path}: parent chain loops or is deeper than 64')
        self.procs = [Proc(r) for r in img_records(os.path.join(self.path, 'pstree.img'),
                                                   PSTREE_MAGIC)]
        check(self.procs, f'{self.path}: pstree.img lists no process')
        seen = set()
        for p in self.procs:
            check(p.pid not in seen, f'{self.path}: pid {p.pid} twice in pstree.img')
            check(p is self.procs[0] or p.ppid in seen,
                  f'{self.path}: pstree.img lists pid {p.pid} before its parent {p.ppid}')
            seen.add(p.pid)
        self.vmas, self.private = {}, {}
        for p in self.procs:
            (mm,) = img_records(os.path.join(self.path, f'mm-{p.pid}.img'), MM_MAGIC)
            self.vmas[p.pid] = [Vma(pb_fields(v)) for v in mm.get(14, [])]
            self.private[p.pid] = Pagemap(self.path, f'pagemap-{p.pid}.img')
        self.shmem = {}
        for f in sorted(glob.glob(os.path.join(self.path, 'pagemap-shmem-*.img'))):
            name = os.path.basename(f)
            self.shmem[int(name[len('pagemap-shmem-'):-4])] = Pagemap(self.path, name)
        ids = [m.pages_id for m in [*self.private.values(), *self.shmem.values()]]
        check_eq(len(set(ids)), len(ids), f'{self.path}: pages_id of the pagemap files')
        link = os.path.join(self.path, 'parent')
        self.parent = DumpDir(os.path.join(self.path, os.readlink(link)), depth + 1) \
            if os.path.islink(link) else None
        if self.shmem:
            self._check_private_only()

    def _check_private_only(self):
        for pid, pm in self.private.items():
            shared = [v for v in self.vmas[pid] if v.shared]
            for a in pm.flags:
                v = next((v for v in shared if v.start <= a < v.end), None)
                check(v is None, f'{self.path}: pagemap-{pid}.img has {a:#x}, in the shared VMA '
                      f'{v} (shared memory belongs in pagemap-shmem-{v and v.shmid}.img)')

    def pagemap(self, name):
        """The Pagemap of file `name` here, or None."""
        if name.startswith('pagemap-shmem-'):
            return self.shmem.get(int(name[len('pagemap-shmem-'):-4]))
        pid = int(name[len('pagemap-'):-4])
        return self.private.get(pid)

    def resolve(self, name):
        """{key: 4096 bytes} for every page file `name` has an entry for,
        PE_PARENT entries looked up down the parent chain (same file name)."""
        out = {}
        top = self.pagemap(name)
        for a, f in top.flags.items():
            d, pm = self, top
            while f == PE_PARENT:
                d = d.parent
                check(d is not None, f'{self.path}/{name}: {a:#x} is PE_PARENT down to the end '
                      'of the chain')
                pm = d.pagemap(name)
                check(pm is not None, f'{self.path}/{name}: {a:#x} is PE_PARENT but {d.path} has '
                      f'no {name}')
                f = pm.flags.get(a)
                check(f is not None, f'{self.path}/{name}: {a:#x} is PE_PARENT but has no entry '
                      f'in {d.path}/{name}')
            out[a] = pm.page(a)
        return out

    def memory(self, pid):
        """{page address: 4096 bytes}: every page of process pid the dump
        holds, private and shared."""
        mem = self.resolve(f'pagemap-{pid}.img')
        objects = {}
        for v in self.vmas[pid]:
            if not v.shared or v.shmid not in self.shmem:
                continue
            if v.shmid not in objects:
                objects[v.shmid] = self.resolve(f'pagemap-shmem-{v.shmid}.img')
            for off, data in objects[v.shmid].items():
                if v.pgoff <= off < v.pgoff + (v.end - v.start):
                    mem[v.start + off - v.pgoff] = data
        return mem

    def count(self, name, flag):
        """How many entries of file `name` here have flag (0: no such file)."""
        pm = self.pagemap(name)
        return pm.count(flag) if pm else 0


def check_pages(got, want, what):
    """Two {address: bytes} maps are equal; on a difference, say where
    (addresses, not page contents)."""
    if got == want:
        return
    extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
    differ = sorted(a for a in got.keys() & want.keys() if got[a] != want[a])
    raise AssertionError(f'{what}: ' + '; '.join(
        f'{len(v)} pages {k} (first {", ".join(hex(a) for a in v[:4])})'
        for k, v in (('not expected', extra), ('missing', missing), ('different', differ)) if v))


# -- the live processes ----------------------------------------------------

def swap_devices():
    with open('/proc/swaps') as f:
        return len(f.read().splitlines()) - 1


def real_swap(e, ndev):
    """A swapped-looking pagemap entry is content when it is a real swap
    entry (type below the number of devices, offset non-zero), not a uffd-wp
    marker; with the frame hidden (unprivileged) we cannot tell: keep it."""
    if not e & PM_SWAPPED or ndev == 0:
        return False
    frame = e & ((1 << 55) - 1)
    return frame == 0 or ((frame & 31) < ndev and frame >> 5 != 0)


def live_maps(pid):
    out = set()
    with open(f'/proc/{pid}/maps') as f:
        for ln in f:
            s, e = ln.split()[0].split('-')
            out.add((int(s, 16), int(e, 16)))
    return out


def runs(addrs):
    """Sorted page addresses as (start, pages) runs."""
    out = []
    for a in sorted(addrs):
        if out and out[-1][0] + out[-1][1] * PAGE == a:
            out[-1][1] += 1
        else:
            out.append([a, 1])
    return out


def first_difference(a, b):
    return next(i for i in range(PAGE) if a[i] != b[i])


def compare_process(d, pid):
    """Compare process pid (stopped) with what dump d holds for it; raise
    AssertionError at the first difference.  Returns the pages compared."""
    with open(f'/proc/{pid}/stat') as f:
        state = f.read().rsplit(')', 1)[1].split()[0]
    check(state in 'Tt', f'pid {pid} is not stopped (state {state}): a live comparison needs '
          'the whole tree stopped')
    mem = d.memory(pid)
    vmas = [v for v in d.vmas[pid] if v.has_content]
    maps = live_maps(pid)
    for v in vmas:
        check((v.start, v.end) in maps, f'pid {pid}: the dumped VMA {v} is not in its live maps')
    ndev = swap_devices()
    need = set()
    with open(f'/proc/{pid}/pagemap', 'rb') as pm:
        for v in vmas:
            n = (v.end - v.start) // PAGE
            raw = os.pread(pm.fileno(), n * 8, v.start // PAGE * 8)
            check_eq(len(raw), n * 8, f'pid {pid}: pagemap of {v}')
            for i, (e,) in enumerate(struct.iter_unpack('<Q', raw)):
                if not (e & PM_PRESENT or real_swap(e, ndev)):
                    continue
                if v.status & FILE_PRIVATE and not v.shared and e & PM_FILE:
                    continue    # the file's own page, not content of the process
                need.add(v.start + i * PAGE)
    missing = sorted(need - mem.keys())
    check(not missing, f'pid {pid}: {len(missing)} live pages with content are not in the dump '
          f'{d.path}, the first {missing[0]:#x}' if missing else '')
    for a in mem:
        check(any(v.start <= a < v.end for v in vmas),
              f'pid {pid}: the dump holds {a:#x}, in no VMA of mm-{pid}.img that has content')
    with open(f'/proc/{pid}/mem', 'rb', buffering=0) as m:
        for start, n in runs(mem):
            live = os.pread(m.fileno(), n * PAGE, start)
            check_eq(len(live), n * PAGE, f'pid {pid}: reading {start:#x}+{n} pages')
            for k in range(n):
                a, got = start + k * PAGE, live[k * PAGE:(k + 1) * PAGE]
                if got != mem[a]:
                    i = first_difference(mem[a], got)
                    raise AssertionError(
                        f'pid {pid}: page {a:#x} differs from the dump {d.path}: first at byte '
                        f'{i:#x}, dump {mem[a][i]:#04x}, live {got[i]:#04x}')
    return len(mem)


def compare_live(dumpdir):
    """Check every process of the dump's pstree.img against the live stopped
    process, byte for byte.  Returns {pid: pages compared}."""
    d = DumpDir(dumpdir)
    return {p.pid: compare_process(d, p.pid) for p in d.procs}
