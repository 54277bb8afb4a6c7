"""Real services under load (issue 13): a private PostgreSQL cluster under
pgbench and an nginx master with two workers under an HTTP load, tracked and
dumped while they serve, and unharmed after: pgbench ends with no failed
transaction and its tables consistent, nginx serves every request.

The root-only tests use today's single-process commands.  The --tree tests
take the whole tree: a full dump, incremental ones under load, a final
--leave-stopped one compared byte for byte with every stopped process (by
treeimg.py, which does not run dirtytrack), then resume the tree."""
import os
import signal
import time

from common import PAGE, Skip, check, check_eq, holders, wait_for
from services import Nginx, PgCluster, proc_state
from treeimg import PE_PARENT, PE_PRESENT, DumpDir, compare_live

INCREMENTALS = 3
PG_CLIENTS = 4
PG_AUX = 5      # checkpointer, bgwriter, walwriter, autovacuum and logical replication launchers


def no_holders(pids, timeout=5):
    pids = set(pids)
    wait_for(lambda: not set(holders().values()) & pids, timeout,
             f'no holder left for {sorted(pids)} (have {holders()})')


def dirs(ctx, n):
    return [os.path.join(ctx.tmp, f'dump{i}') for i in range(n)]


def check_single_chain(ctx, pid, ds, results):
    """Each dump of a single process, read by treeimg: a tree of one, the
    JSON's pages_written the PE_PRESENT entries, the chain resolving."""
    for i, (d, res) in enumerate(zip(ds, results)):
        dd = DumpDir(d)
        check_eq([p.pid for p in dd.procs], [pid], f'{d}: pstree')
        pms = [dd.private[pid], *dd.shmem.values()]
        check_eq(sum(pm.count(PE_PRESENT) for pm in pms), res['pages_written'],
                 f'{d}: PE_PRESENT (private and shared) vs pages_written')
        check_eq(res['full'], i == 0, f'{d}: full')
        private = private_present(dd, pid)
        if i:
            check(dd.private[pid].count(PE_PARENT) > 0,
                  f'{d}: incremental dump with no PE_PARENT entry')
            # the private pages shrink (shared memory: see the tree tests)
            check(private < full_private, f'{d}: the incremental dump stores {private} private '
                  f'pages, the full one {full_private}')
        else:
            full_private = private
        check(set(dd.private[pid].flags) <= set(dd.memory(pid)),
              f'{d}: private pages not resolved through the chain')


def private_present(dd, pid):
    """PE_PRESENT pages of pid's pagemap outside its shared VMAs."""
    shared = [v for v in dd.vmas[pid] if v.shared]
    return sum(1 for a, f in dd.private[pid].flags.items()
               if f == PE_PRESENT and not any(v.start <= a < v.end for v in shared))


def track_root(ctx, pid, ds, under_load):
    """start ROOT, a full dump, incremental ones with --parent, stop: the
    JSON results."""
    ctx.ok('start', pid)
    try:
        results, parent = [], None
        for d in ds:
            check(under_load(), 'the load ended before the dumps did: make it longer')
            results.append(ctx.json('dump', pid, '-D', d, *(['--parent', parent] if parent else [])))
            parent = d
            time.sleep(0.2)
    finally:
        ctx.run('stop', pid)
    no_holders([pid])
    return results


def wait_backends(pg, n):
    wait_for(lambda: len(pg.children()) >= PG_AUX + n, 20,
             f'{n} pgbench backends (children: {pg.children()})')


def test_services_pg_root_under_load(ctx):
    with PgCluster(ctx.tmp) as pg:
        pg.pgbench_init()
        bench = pg.pgbench(clients=PG_CLIENTS, seconds=8, rate=300)
        wait_backends(pg, PG_CLIENTS)
        ds = dirs(ctx, 1 + INCREMENTALS)
        results = track_root(ctx, pg.pid, ds, bench.running)
        done = bench.result(30)
        total, history = pg.consistency()
        check_eq(history, done, 'pgbench_history rows vs transactions processed')
        check_single_chain(ctx, pg.pid, ds, results)


def test_services_nginx_root_under_load(ctx):
    with Nginx(ctx.tmp) as ng:
        load = ng.load(threads=4, seconds=6)
        ds = dirs(ctx, 1 + INCREMENTALS)
        results = track_root(ctx, ng.pid, ds, load.running)
        load.result(60)
        check_single_chain(ctx, ng.pid, ds, results)


def stop_all(pids):
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    for p in pids:
        wait_for(lambda: proc_state(p) == 'T', 10, f'{p} stopped')


def dump_each_stopped(ctx, pids):
    """Every process of a stopped tree, dumped alone (a one-off full dump),
    equals the live process byte for byte: the reader against real service
    memory (shared_buffers, SysV and /dev/shm segments, libraries).  Returns
    {pid: pages compared}."""
    stop_all(pids)
    try:
        compared = {}
        for p in pids:
            d = os.path.join(ctx.tmp, f'alone-{p}')
            ctx.ok('dump', p, '-D', d, '--no-track')
            compared.update(compare_live(d))
            check_eq(proc_state(p), 'T', f'{p} after its dump')
        return compared
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def test_services_pg_stopped_processes_equal_their_dumps(ctx):
    with PgCluster(ctx.tmp) as pg:
        pg.pgbench_init()
        bench = pg.pgbench(clients=PG_CLIENTS, seconds=4, rate=300)
        wait_backends(pg, PG_CLIENTS)
        pids = pg.pids()
        compared = dump_each_stopped(ctx, pids)
        check_eq(set(compared), set(pids), 'processes compared')
        # each maps shared_buffers (32 MiB), filled by pgbench -i
        for p, n in compared.items():
            check(n * PAGE >= 8 << 20, f'{p}: only {n} pages compared')
        done = bench.result(30)
        check_eq(pg.consistency()[1], done, 'pgbench_history rows vs transactions')


def test_services_nginx_stopped_processes_equal_their_dumps(ctx):
    with Nginx(ctx.tmp) as ng:
        load = ng.load(threads=4, seconds=30)
        wait_for(lambda: load.ok >= 100, 10, '100 requests served')
        pids = ng.pids()
        check_eq(set(dump_each_stopped(ctx, pids)), set(pids), 'processes compared')
        served = load.ok
        wait_for(lambda: load.ok >= served + 100, 30, '100 requests served after the resume')
        load.stop.set()
        load.result(60)


# -- whole trees -------------------------------------------------------------

def tree_dump(ctx, pid, d, parent=None, *opts):
    """dump --tree, checked against the directory: the JSON's processes are
    pstree.img's, the root first, each pages_written its PE_PRESENT entries."""
    res = ctx.json('dump', '--tree', pid, '-D', d, *(['--parent', parent] if parent else []), *opts)
    dd = DumpDir(d)
    check_eq(os.path.realpath(res['dir']), dd.path, 'json dir')
    procs = {p['pid']: p for p in res['processes']}
    check_eq([p.pid for p in dd.procs][0], pid, 'the root is first in pstree.img')
    check_eq(set(procs), {p.pid for p in dd.procs}, 'json processes vs pstree.img')
    for p in dd.procs[1:]:
        check_eq(procs[p.pid]['ppid'], p.ppid, f'json ppid of {p.pid}')
    for p in dd.procs:
        check_eq(procs[p.pid]['pages_written'], dd.private[p.pid].count(PE_PRESENT),
                 f'{d}: json pages_written of {p.pid} vs its pagemap')
        if parent is None:
            check(procs[p.pid]['full'], f'{d}: process {p.pid} of a full dump is not full')
    shared = sum(m.count(PE_PRESENT) for m in dd.shmem.values())
    check_eq(res['pages_written'], sum(p['pages_written'] for p in res['processes']) + shared,
             f'{d}: json pages_written vs the processes and the shared objects')
    return res, dd


def track_tree(ctx, root, ds, under_load, after):
    """start --tree, a full dump, incremental ones under load, a final
    --leave-stopped one; compare_live of the stopped tree and verify; resume
    every process; `after` checks the service; stop --tree."""
    ctx.ok('start', '--tree', root)
    stopped, seen = [], {root}
    try:
        dumps, parent = [], None
        for i, d in enumerate(ds):
            check(under_load(), 'the load ended before the dumps did: make it longer')
            last = i == len(ds) - 1
            dumps.append(tree_dump(ctx, root, d, parent, *(['--leave-stopped'] if last else [])))
            seen |= {p.pid for p in dumps[-1][1].procs}
            parent = d
            if not last:
                time.sleep(0.3)
        final = dumps[-1][1]
        stopped = [p.pid for p in final.procs]
        for p in stopped:
            check_eq(proc_state(p), 'T', f'state of {p} after --leave-stopped')
        compared = compare_live(ds[-1])
        check_eq(set(compared), set(stopped), 'processes compared')
        ctx.ok('verify', ds[-1], '--pid', root)
    finally:
        for p in stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
    try:
        after()
    finally:
        ctx.run('stop', '--tree', root)
    no_holders(seen)
    return [dd for _, dd in dumps]


def shmem_present(dd):
    return {shmid: m.count(PE_PRESENT) for shmid, m in dd.shmem.items()}


def test_services_pg_tree_under_load(ctx):
    with PgCluster(ctx.tmp) as pg:
        pg.pgbench_init()
        bench = pg.pgbench(clients=PG_CLIENTS, seconds=20, rate=200)
        wait_backends(pg, PG_CLIENTS)
        ds = dirs(ctx, 2 + INCREMENTALS)
        checked = {}

        def after():
            checked['done'] = bench.result(40)
            checked['history'] = pg.consistency()[1]

        dumps = track_tree(ctx, pg.pid, ds, bench.running, after)
        check_eq(checked['history'], checked['done'], 'pgbench_history rows vs transactions')
        # shared_buffers is the largest shared object; an incremental dump
        # stores the pages written since its parent, not the whole of it
        full = shmem_present(dumps[0])
        check(full, f'{ds[0]}: no pagemap-shmem file (shared_buffers stored once for the tree)')
        buffers = max(full, key=full.get)
        check(full[buffers] * PAGE >= 8 << 20, f'{ds[0]}: the largest shared object stores '
              f'{full[buffers]} pages, less than 8 MiB: not shared_buffers?')
        if os.geteuid() != 0:
            # without map_files a hole punched in it is unseen: stored whole (man page)
            return
        # (a fork since the parent - autovacuum starts workers - stores it whole:
        # a child may have written it and gone; at least one dump is incremental)
        incremental = 0
        for d, dd in zip(ds[1:], dumps[1:]):
            inc = shmem_present(dd).get(buffers, 0)
            if buffers in dd.shmem and dd.shmem[buffers].count(PE_PARENT):
                incremental += 1
                check(inc < full[buffers], f'{d}: the incremental dump stores {inc} pages of '
                      f'shared_buffers (shmid {buffers}), the full one {full[buffers]}')
        check(incremental >= 1, 'shared_buffers was stored whole in every incremental dump')


def test_services_nginx_tree_under_load(ctx):
    with Nginx(ctx.tmp) as ng:
        load = ng.load(threads=4, seconds=40)
        ds = dirs(ctx, 2 + INCREMENTALS)

        def after():
            served = load.ok
            wait_for(lambda: load.ok >= served + 100 or not load.running(), 30,
                     '100 requests served after the resume')
            load.stop.set()
            check(load.ok >= served + 100, f'{load.ok - served} requests served after the resume')
            load.result(60)

        dumps = track_tree(ctx, ng.pid, ds, load.running, after)
        check_eq(sorted(p.pid for p in dumps[0].procs), sorted(ng.pids()), 'the tree dumped')
