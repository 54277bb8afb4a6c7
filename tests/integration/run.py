#!/usr/bin/env python3
"""Integration test runner: every test_* function of every tests/integration/
test_*.py module, each against the real binary, each with a time limit.
Prints one line per test (PASS, FAIL, or SKIP with the reason) and ends
with 'N passed, N failed, N skipped'.  A test that cannot run here (it
needs root, say) raises common.Skip: it is counted, never silently
passed."""
import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import Ctx, Skip  # noqa: E402

TEST_TIMEOUT = 120


class Timeout(Exception):
    pass


def on_alarm(sig, frame):
    raise Timeout(f'test took longer than {TEST_TIMEOUT} s')


def sanitizer_reports(d):
    """Fail on any sanitizer report written since the last test."""
    if not d or not os.path.isdir(d):
        return
    # give holders that are ending a moment to write theirs
    time.sleep(0.05)
    reports = []
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n), errors='replace') as f:
            reports.append(f'{n}:\n{f.read()}')
        os.unlink(os.path.join(d, n))
    if reports:
        raise AssertionError('sanitizer report:\n' + '\n'.join(reports))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', required=True)
    ap.add_argument('--target', required=True)
    ap.add_argument('-k', help='run only tests whose name contains this')
    ap.add_argument('--sanitizer-logs', help='directory where sanitizer reports are written '
                    '(the holder process has no stderr): any report fails the test')
    a = ap.parse_args()
    signal.signal(signal.SIGALRM, on_alarm)
    if a.sanitizer_logs:
        os.makedirs(a.sanitizer_logs, exist_ok=True)
        for n in os.listdir(a.sanitizer_logs):
            os.unlink(os.path.join(a.sanitizer_logs, n))
    passed = failed = skipped = 0
    failures = []
    modules = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith('test_') and f.endswith('.py'))
    for mname in modules:
        mod = importlib.import_module(mname)
        for name in sorted(n for n in dir(mod) if n.startswith('test_')):
            full = f'{mname}.{name}'
            if a.k and a.k not in full:
                continue
            tmp = tempfile.mkdtemp(prefix='dt-test-')
            os.chmod(tmp, 0o755)
            ctx = Ctx(a.bin, a.target, tmp)
            t0 = time.monotonic()
            signal.alarm(TEST_TIMEOUT)
            try:
                getattr(mod, name)(ctx)
                signal.alarm(0)
                sanitizer_reports(a.sanitizer_logs)
                passed += 1
                print(f'PASS {full} ({time.monotonic() - t0:.1f}s)', flush=True)
            except Skip as e:
                signal.alarm(0)
                skipped += 1
                print(f'SKIP {full}: {e}', flush=True)
            except Exception as e:  # noqa: BLE001 - report every failure
                signal.alarm(0)
                failed += 1
                failures.append(full)
                print(f'FAIL {full}: {e}', flush=True)
                traceback.print_exc(file=sys.stdout)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('failed: ' + ' '.join(failures))
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    return 1 if failed or not passed else 0


if __name__ == '__main__':
    sys.exit(main())
