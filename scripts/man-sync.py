#!/usr/bin/env python3
"""Keep the generated parts of man/dirtytrack.1 equal to the binary's tables.

Between the lines
    .\\" BEGIN GENERATED NAME (make man: dirtytrack --man-helper NAME)
    .\\" END GENERATED NAME
the page holds exactly what `dirtytrack --man-helper NAME` prints (NAME is
synopsis, options or exit-status).  `make man` rewrites those blocks;
`--check` (make check-man, and the integration tests) exits 1 naming every
block that differs, so the page cannot drift from the option table.
"""
import argparse
import re
import subprocess
import sys

BLOCK = re.compile(r'^\.\\" BEGIN GENERATED (\S+)[^\n]*\n(.*?)^\.\\" END GENERATED \1\n',
                   re.M | re.S)


def generated(binary, name):
    return subprocess.run([binary, '--man-helper', name], check=True, capture_output=True,
                          text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', required=True)
    ap.add_argument('--check', action='store_true')
    ap.add_argument('page')
    a = ap.parse_args()
    with open(a.page) as f:
        text = f.read()
    stale = []

    def fill(m):
        want = generated(a.bin, m.group(1))
        if m.group(2) != want:
            stale.append(m.group(1))
        whole, at = m.group(0), m.start(0)
        return whole[:m.start(2) - at] + want + whole[m.end(2) - at:]

    new = BLOCK.sub(fill, text)
    names = BLOCK.findall(text)
    if not names:
        print(f'{a.page}: no generated blocks', file=sys.stderr)
        return 1
    if a.check:
        if stale:
            print(f'{a.page}: generated blocks differ from the option table: '
                  f'{", ".join(stale)} (run make man)', file=sys.stderr)
            return 1
        return 0
    if new != text:
        with open(a.page, 'w') as f:
            f.write(new)
    return 0


if __name__ == '__main__':
    sys.exit(main())
