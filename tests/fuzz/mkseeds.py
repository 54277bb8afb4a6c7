#!/usr/bin/env python3
"""Make the fuzzers' seed corpus (tests/fuzz/corpus/) from real dumps and a
real process: a dump chain of tests/target/dt-target (full, then
incremental) gives the image seeds and the chain seeds; the target's own
/proc files give the /proc seeds.

    python3 tests/fuzz/mkseeds.py build/dirtytrack build/dt-target

The seeds are committed: run this again when an image format changes."""
import glob
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
from target import Target  # noqa: E402

CORPUS = os.path.join(HERE, 'corpus')
IMAGES = {'inventory': 'inventory.img', 'pstree': 'pstree.img', 'mm': 'mm-*.img',
          'core': 'core-*.img', 'stats': 'stats-dump', 'pagemap': 'pagemap-*.img'}


def put(kind, name, data):
    os.makedirs(os.path.join(CORPUS, kind), exist_ok=True)
    with open(os.path.join(CORPUS, kind, name), 'wb') as f:
        f.write(data)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def chain_record(which, data):
    return struct.pack('<BH', which, len(data)) + data


def chain_seed(child, parent):
    """fuzz_chain's input: dump `parent` as a (files 0..4), `child` as b."""
    out = b''
    for base, d in ((0, parent), (5, child)):
        files = [os.path.join(d, 'inventory.img'), os.path.join(d, 'pstree.img'),
                 glob.glob(os.path.join(d, 'mm-*.img'))[0],
                 glob.glob(os.path.join(d, 'pagemap-*.img'))[0]]
        for i, f in enumerate(files):
            out += chain_record(base + i, read(f))
        pages = glob.glob(os.path.join(d, 'pages-*.img'))[0]
        out += chain_record(base + 4, struct.pack('<I', os.path.getsize(pages)))
    return out


def main():
    dt, target = map(os.path.abspath, sys.argv[1:3])
    tmp = tempfile.mkdtemp(prefix='dt-seeds-')
    env = dict(os.environ, DIRTYTRACK_STATE_DIR=os.path.join(tmp, 'state'))
    shutil.rmtree(CORPUS, ignore_errors=True)
    try:
        with Target(target) as t:
            t.map('a', 'anon', 4)
            t.fill('a', 0, 4, 1)
            d1, d2 = os.path.join(tmp, 'd1'), os.path.join(tmp, 'd2')
            subprocess.run([dt, 'dump', str(t.pid), '-D', d1], env=env, check=True,
                           capture_output=True)
            t.write('a', 1)
            subprocess.run([dt, 'dump', str(t.pid), '-D', d2, '--parent', d1], env=env,
                           check=True, capture_output=True)
            # frozen: the core images hold registers
            d3 = os.path.join(tmp, 'd3')
            t.write('a', 2)
            subprocess.run([dt, 'dump', str(t.pid), '-D', d3, '--parent', d2, '--freeze'],
                           env=env, check=True, capture_output=True)
            for n, d in (('full', d1), ('incremental', d2), ('frozen', d3)):
                for kind, pat in IMAGES.items():
                    for i, f in enumerate(sorted(glob.glob(os.path.join(d, pat)))[:2]):
                        put(kind, f'{n}-{i}', read(f))
            put('chain', 'incremental', chain_seed(d2, d1))
            put('chain', 'frozen', chain_seed(d3, d2))
            put('chain', 'full', chain_seed(d1, d1))
            proc = f'/proc/{t.pid}'
            for kind in ('maps', 'smaps', 'stat', 'status'):
                put(kind, 'dt-target', read(os.path.join(proc, kind)))
            subprocess.run([dt, 'stop', str(t.pid)], env=env, check=True, capture_output=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
