#!/usr/bin/env python3
"""Frozen time of `dirtytrack threads` and of a frozen dump, on a target with
N threads parked in nanosleep (tests/target/dt-target's `park`).

    python3 bench/threads_bench.py --bin build/dirtytrack --target build/dt-target

Prints one line per figure: the median of --rounds runs, with min and max.
`threads` reports its own frozen time (all threads stopped -> all released)
and the time spent unwinding each thread.  A frozen dump's frozen time comes
from its stats-dump (stopped -> released, copying the pages included), and
the part of it spent on backtraces from the unwind times it recorded in its
core images (`show --threads`).  Needs crit (Debian package criu).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
from target import Target  # noqa: E402


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit(f'{" ".join(cmd)}: exit {r.returncode}: {r.stderr.strip()}')
    return json.loads(r.stdout)


def summary(name, values, unit='ms'):
    values = sorted(values)
    print(f'{name}: median {statistics.median(values):.2f} {unit} '
          f'(min {values[0]:.2f}, max {values[-1]:.2f}, {len(values)} runs)')
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', required=True)
    ap.add_argument('--target', required=True)
    ap.add_argument('--threads', type=int, default=64)
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--depth', type=int, default=64)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='dt-threads-bench-')
    env = dict(os.environ, DIRTYTRACK_STATE_DIR=os.path.join(tmp, 'state'))
    try:
        with Target(a.target) as t:
            t.cmd(f'park nanosleep {a.threads}')
            frozen, seize, unwind = [], [], []
            for _ in range(a.rounds):
                d = run_json([a.bin, 'threads', '-j', '--depth', str(a.depth), str(t.pid)])
                frozen.append(d['frozen_ms'])
                seize.append(d['seize_ms'])
                unwind.append(sum(x['unwind_ms'] for x in d['threads']))
            n = len(d['threads'])
            print(f'target: {n} threads ({a.threads} parked in nanosleep + the main thread), '
                  f'{sum(len(x["frames"]) for x in d["threads"])} frames in all')
            summary('threads: frozen (all stopped -> all released)', frozen)
            summary('threads: of which unwinding, all threads', unwind)
            summary('threads: seizing (before the frozen time)', seize)
            frozen_dump, unwind_dump = [], []
            for i in range(a.rounds):
                out = os.path.join(tmp, f'd-{i}')
                subprocess.run([a.bin, 'dump', '--no-track', '--freeze', '-D', out, str(t.pid)],
                               check=True, capture_output=True, env=env)
                s = subprocess.run(['crit', 'decode', '-i', os.path.join(out, 'stats-dump')],
                                   capture_output=True, text=True)
                if s.returncode != 0:
                    sys.exit('crit decode stats-dump failed: ' + s.stderr.strip())
                frozen_dump.append(json.loads(s.stdout)['entries'][0]['dump']['frozen_time']
                                   / 1000)
                shown = run_json([a.bin, 'show', '-j', '--threads', out])
                unwind_dump.append(sum(x['backtrace']['unwind_ms'] for x in shown['threads']))
                shutil.rmtree(out)
            f = summary('dump --freeze: frozen (stopped -> released, pages copied)', frozen_dump)
            u = summary('dump --freeze: of which unwinding, all threads', unwind_dump)
            print(f'dump --freeze: backtraces are {100 * u / f:.0f}% of the frozen time')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
