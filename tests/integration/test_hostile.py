"""Hostile paths and images (issue 12), as root with a second, unprivileged
user created by the test (`dt-hostile`) playing the other user.

- A symlink another user plants in a sticky world-writable directory is not
  followed (precopy -D, dump -D through it); our own is.
- Image files are regular files, bounded: a FIFO, a symlink to /dev/zero or
  to a secret, an inventory larger than a page are refused in one line
  naming the file, exit 2, without hanging and without writing anything.
- A parent link leads beside its dump, through no symlink, to a dump of the
  same owner.
- The state directory is ours or refused with the way out.
- precopy creates nothing before it may trace the target.
- Root keeps only the capabilities of lib/caps.c's table; the images are
  the same as the target's own user (no capabilities at all) takes.

Each test skips (with the reason) when not run as root.
"""
import glob
import json
import os
import shutil
import stat
import subprocess

from common import PAGE, as_user, check, check_eq, need_root, second_user  # noqa: F401
from test_dump import PSTREE_MAGIC, img_records

EXIT_ERROR, EXIT_PERM = 2, 3


def sticky_dir(ctx):
    """A /tmp of our own: root's, mode 1777."""
    d = os.path.join(ctx.tmp, 'sticky')
    os.mkdir(d)
    os.chmod(d, 0o1777)
    return d


def plant(uid, gid, target, link):
    """The other user makes `link` -> `target`."""
    subprocess.run(['setpriv', f'--reuid={uid}', f'--regid={gid}', '--clear-groups',
                    'ln', '-s', target, link], check=True)


def user_dir(ctx, name, uid, gid, mode=0o755):
    d = os.path.join(ctx.tmp, name)
    os.mkdir(d)
    os.chown(d, uid, gid)
    os.chmod(d, mode)
    return d


# precopy prints its table's header before the first dump
HEADER = {'precopy': 'ITER        PAGES        MiB   DUMP(ms)  DIRTY MiB/s  DOWNTIME~(ms)\n'}


def refused(ctx, args, code, line, **kw):
    """args fails with exit code and exactly one stderr line, nothing on stdout."""
    if args[0] == 'diff':
        code = EXIT_ERROR       # diff(1) has one error status
    rc, out, err = ctx.run(*args, timeout=20, **kw)
    check_eq(rc, code, f'{args}: exit ({err.strip()})')
    check_eq(out, HEADER.get(args[0], ''), f'{args}: stdout')
    check_eq(err, f'dirtytrack {args[0]}: {line}\n', f'{args}: message')
    rc, out, _ = ctx.run('-j', *args, timeout=20, **kw)
    check_eq(json.loads(out.splitlines()[-1])['error'], {'kind': {2: 'error', 3: 'permission'}[code],
                                        'exit': code, 'message': line}, f'{args}: -j error')


def tree(path):
    """Every name under path (for 'nothing was written there')."""
    out = []
    for root, dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(root, n), path) for n in dirs + files]
    return sorted(out)


def dump(ctx, pid, d, *opts):
    return ctx.json('dump', pid, '-D', d, *opts)


# -- symlinks the user did not name ------------------------------------------

def test_hostile_precopy_planted_symlink(ctx):
    uid, gid = second_user()
    st = sticky_dir(ctx)
    victim = user_dir(ctx, 'victim', uid, gid, 0o777)     # only the link rule stands between
    base = os.path.join(st, 'mig')
    plant(uid, gid, victim, base)
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        refused(ctx, ['precopy', t.pid, '-D', base, '--max-iters', '2', '--interval', '50'],
                EXIT_PERM, f'{base}: refusing to follow {base}, a symlink of uid {uid} in the '
                f'sticky world-writable directory {st}')
        check_eq(tree(victim), [], 'written into the other user\'s directory')
        check_eq(sorted(os.listdir(st)), ['mig'], 'sticky directory')
        check(os.path.islink(base), 'the planted link is left alone')


def test_hostile_dump_dir_through_planted_symlink(ctx):
    uid, gid = second_user()
    st = sticky_dir(ctx)
    victim = user_dir(ctx, 'victim', uid, gid, 0o777)
    dd = os.path.join(st, 'dd')
    plant(uid, gid, victim, dd)
    mine = os.path.join(ctx.tmp, 'mine')
    os.mkdir(mine)
    os.symlink(mine, os.path.join(st, 'own'))           # ours: followed
    with ctx.target() as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        x = os.path.join(dd, 'x')
        refused(ctx, ['dump', t.pid, '-D', x], EXIT_PERM,
                f'{x}: refusing to follow {dd}, a symlink of uid {uid} in the sticky '
                f'world-writable directory {st}')
        check_eq(tree(victim), [], 'written into the other user\'s directory')
        res = dump(ctx, t.pid, os.path.join(st, 'own', 'x'))
        # -o and --parent go the same way: the planted link is refused
        shutil.copytree(os.path.join(mine, 'x'), os.path.join(victim, 'x'), symlinks=True)
        out = os.path.join(dd, 'out')
        refused(ctx, ['flatten', os.path.join(mine, 'x'), '-o', out], EXIT_PERM,
                f'{out}: refusing to follow {dd}, a symlink of uid {uid} in the sticky '
                f'world-writable directory {st}')
        refused(ctx, ['dump', t.pid, '-D', os.path.join(mine, 'z'), '--parent', x], EXIT_PERM,
                f'{x}: refusing to follow {dd}, a symlink of uid {uid} in the sticky '
                f'world-writable directory {st}')
        check_eq(tree(victim), tree(os.path.join(mine, 'x')) and
                 ['x'] + ['x/' + n for n in tree(os.path.join(mine, 'x'))],
                 'the other user\'s directory after the refusals')
        check(not os.path.lexists(os.path.join(mine, 'z')), 'dump with a refused parent left z')
        check_eq(res['dir'], os.path.join(st, 'own', 'x'), 'dump through our own symlink')
        check_eq(sorted(os.listdir(mine)), ['x'], 'our own symlink followed once')
        # the rule is the directory's, not the sticky bit's alone: a link the
        # directory's owner made is followed too
        st2 = user_dir(ctx, 'sticky2', uid, gid, 0o1777)
        plant(uid, gid, mine, os.path.join(st2, 'owners'))
        dump(ctx, t.pid, os.path.join(st2, 'owners', 'y'), '--full-if-needed')
        check(os.path.isdir(os.path.join(mine, 'y')), 'the directory owner\'s link followed')
        ctx.ok('stop', t.pid)


# -- image files: regular, bounded -------------------------------------------

def base_chain(ctx, t):
    """d1 (full) and d2 (incremental) of t, in ctx.tmp/c."""
    c = os.path.join(ctx.tmp, 'c')
    os.mkdir(c)
    t.map('a', 'anon', 8)
    t.fill('a', 0, 8, 1)
    d1, d2 = os.path.join(c, 'd1'), os.path.join(c, 'd2')
    dump(ctx, t.pid, d1)
    t.write('a', 2)
    dump(ctx, t.pid, d2, '--parent', d1)
    ctx.ok('stop', t.pid)
    return c, d1, d2


def case(ctx, c, name):
    d = os.path.join(ctx.tmp, name)
    shutil.copytree(c, d, symlinks=True)
    return os.path.join(d, 'd1'), os.path.join(d, 'd2')


def readers(d, other, out):
    return [['show', d], ['verify', d], ['diff', other, d], ['flatten', d, '-o', out]]


def test_hostile_image_files(ctx):
    need_root('the tests of this module run as root (tests/integration/test_hostile.py)')
    secret = os.path.join(ctx.tmp, 'secret')
    with open(secret, 'w') as f:
        f.write('root:secret-hash:19000:0:99999:7:::\n')
    os.chmod(secret, 0o600)
    with ctx.target() as t:
        c, _, _ = base_chain(ctx, t)
    pages = os.path.basename(glob.glob(os.path.join(c, 'd2', 'pages-*.img'))[0])

    def fifo(p):
        os.unlink(p)
        os.mkfifo(p)

    def zero(p):
        os.unlink(p)
        os.symlink('/dev/zero', p)

    def big(p):
        with open(p, 'ab') as f:
            f.write(b'\0' * (2 * PAGE))

    for name, file, damage, why in (
            ('fifo', 'inventory.img', fifo, 'inventory.img is not a regular file (a FIFO)'),
            ('zero', 'inventory.img', zero, 'inventory.img is a symlink: refusing to follow it'),
            ('big', 'inventory.img', big, None),
            ('pages', pages, fifo, f'{pages} is not a regular file (a FIFO)')):
        d1, d2 = case(ctx, c, name)
        path = os.path.join(d2, file)
        damage(path)
        if why is None:
            why = (f'{file} is {os.path.getsize(path)} bytes: more than such an image can '
                   f'hold ({PAGE})')
        out = os.path.join(ctx.tmp, name + '-out')
        for args in readers(d2, d1, out):
            refused(ctx, args, EXIT_ERROR, f'dump {d2}: {why}')
        check(not os.path.lexists(out), f'{name}: flatten left {out}')
    # flatten must not copy what a symlinked stats-dump points at
    for name, target in (('shadow', secret), ('devzero', '/dev/zero')):
        d1, d2 = case(ctx, c, name)
        os.unlink(os.path.join(d2, 'stats-dump'))
        os.symlink(target, os.path.join(d2, 'stats-dump'))
        out = os.path.join(ctx.tmp, name + '-out')
        refused(ctx, ['flatten', d2, '-o', out], EXIT_ERROR,
                f'flattening into {out}: stats-dump is a symlink: refusing to follow it')
        check(not os.path.lexists(out), f'{name}: flatten left {out}')
        check_eq([x for x in os.listdir(ctx.tmp) if x.startswith('.')], [],
                 f'{name}: temporary directory left')
    # a stats-dump larger than the format allows: refused, not read without end
    d1, d2 = case(ctx, c, 'bigstats')
    with open(os.path.join(d2, 'stats-dump'), 'ab') as f:
        f.write(b'\0' * (3 * PAGE))
    size = os.path.getsize(os.path.join(d2, 'stats-dump'))
    out = os.path.join(ctx.tmp, 'bigstats-out')
    refused(ctx, ['flatten', d2, '-o', out], EXIT_ERROR,
            f'flattening into {out}: stats-dump is {size} bytes: more than such an image can '
            f'hold ({PAGE})')


def test_hostile_parent_links(ctx):
    uid, gid = second_user()
    with ctx.target() as t:
        c, _, _ = base_chain(ctx, t)
    # through a symlink: refused even though it leads to the right dump
    d1, d2 = case(ctx, c, 'vialink')
    os.symlink('d1', os.path.join(os.path.dirname(d1), 'ln'))
    os.unlink(os.path.join(d2, 'parent'))
    os.symlink('../ln', os.path.join(d2, 'parent'))
    refused(ctx, ['show', d2], EXIT_ERROR, f'dump {d2}: {d2}/parent (../ln) passes through a '
            'symlink: refusing to follow it')
    # absolute
    os.unlink(os.path.join(d2, 'parent'))
    os.symlink(d1, os.path.join(d2, 'parent'))
    refused(ctx, ['verify', d2], EXIT_ERROR, f'dump {d2}: {d2}/parent is absolute ({d1}): a '
            'parent link is relative')
    # a parent of another user
    d1, d2 = case(ctx, c, 'owner')
    os.chown(d1, uid, gid)
    os.chmod(d1, 0o755)         # readable: the owner rule refuses it, not the mode
    refused(ctx, ['show', d2], EXIT_ERROR, f'dump {d2}: {d2}/parent leads to {d1} of uid {uid}, '
            'the dump is of uid 0: refusing to follow it')
    # the real layout still opens
    ctx.json('verify', os.path.join(c, 'd2'))


# -- the state directory -------------------------------------------------------

def test_hostile_state_dir(ctx):
    uid, gid = second_user()
    env = {k: v for k, v in os.environ.items()
           if k not in ('DIRTYTRACK_STATE_DIR', 'XDG_RUNTIME_DIR')}
    default = f'/tmp/dirtytrack-{uid}'
    if os.path.lexists(default):
        subprocess.run(['rm', '-rf', default], check=True)
    os.mkdir(default, 0o755)       # someone else (root) got there first
    try:
        with ctx.target(preexec=as_user(uid, gid)) as t:
            def run(*args, e=env):
                return subprocess.run(['setpriv', f'--reuid={uid}', f'--regid={gid}',
                                       '--clear-groups', ctx.bin, *map(str, args)], env=e,
                                      capture_output=True, text=True, timeout=30)
            line = (f'state directory {default} belongs to uid 0 (root), not to us (uid {uid}): '
                    'set DIRTYTRACK_STATE_DIR to a directory of your own')
            r = run('start', t.pid)
            check_eq((r.returncode, r.stderr), (EXIT_ERROR, f'dirtytrack start: {line}\n'),
                     'start with a state directory of another user')
            # stop does not depend on the state directory (the holder issue)
            r = run('stop', t.pid)
            check_eq(r.returncode, 0, f'stop with a state directory of another user: {r.stderr}')
            check_eq(os.listdir(default), [], 'written into the other user\'s state directory')
            # the way out the message names
            own = user_dir(ctx, 'own-state', uid, gid, 0o700)
            e = dict(env, DIRTYTRACK_STATE_DIR=own)
            for cmd in ('start', 'stop'):
                r = run(cmd, t.pid, e=e)
                check_eq(r.returncode, 0, f'{cmd} with DIRTYTRACK_STATE_DIR: {r.stderr}')
        # ours but too open: made private
        os.rmdir(default)
        os.mkdir(default)
        os.chown(default, uid, gid)
        os.chmod(default, 0o777)
        with ctx.target(preexec=as_user(uid, gid)) as t:
            r = run('start', t.pid)
            check_eq(r.returncode, 0, f'start: {r.stderr}')
            check_eq(stat.S_IMODE(os.stat(default).st_mode), 0o700, 'state directory mode')
            check_eq(run('stop', t.pid).returncode, 0, 'stop')
    finally:
        subprocess.run(['rm', '-rf', default], check=True)


# -- nothing created before permission ----------------------------------------

def test_hostile_precopy_creates_nothing_unpermitted(ctx):
    uid, gid = second_user()
    udir = user_dir(ctx, 'u', uid, gid)
    base = os.path.join(udir, 'mig')
    env = {'DIRTYTRACK_STATE_DIR': os.path.join(udir, 'state')}
    with ctx.target() as t:           # root's process: not the other user's to trace
        rc, out, err = ctx.run('precopy', t.pid, '-D', base, user=uid, group=gid, env=env)
        check_eq((rc, out), (EXIT_PERM, HEADER['precopy']), f'precopy of another user\'s process: {err}')
        check(err.startswith(f'dirtytrack precopy: cannot read the fds of process {t.pid}: '
                             'Permission denied; process') and err.count('\n') == 1,
              f'one line naming the process and its owner: {err!r}')
        check(not os.path.lexists(base), f'precopy created {base} before it was permitted')


# -- capabilities --------------------------------------------------------------

CAP = {'CAP_DAC_READ_SEARCH': 2, 'CAP_KILL': 5, 'CAP_NET_ADMIN': 12, 'CAP_SYS_PTRACE': 19,
       'CAP_CHECKPOINT_RESTORE': 40}
KEPT = {
    'start': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE', 'CAP_NET_ADMIN'],
    'stop': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH'],
    'status': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE'],
    'watch': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE', 'CAP_NET_ADMIN'],
    'threads': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_KILL'],
    'dump': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE', 'CAP_KILL',
             'CAP_NET_ADMIN'],
    'precopy': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE', 'CAP_KILL',
                'CAP_NET_ADMIN'],
    'verify': ['CAP_SYS_PTRACE', 'CAP_DAC_READ_SEARCH', 'CAP_CHECKPOINT_RESTORE'],
}


def caps_of(pid):
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k.startswith('Cap'):
                out[k] = int(v, 16)
    return out


def test_hostile_caps_table(ctx):
    need_root('lists what root keeps')
    doc = ctx.json('check')
    got = {r['command']: r['keep'] for r in doc['capabilities_kept']}
    check_eq(got, KEPT, 'check -j capabilities_kept')
    check_eq([r['with'] for r in doc['capabilities_kept'] if r['command'] == 'verify'],
             ['--pid'], 'verify keeps them with --pid only')
    text = ctx.ok('check')
    check('  dump           CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH,CAP_CHECKPOINT_RESTORE,CAP_KILL,'
          'CAP_NET_ADMIN' in text, text)
    check('  every other command keeps none' in text, text)


def test_hostile_caps_dropped(ctx):
    uid, gid = second_user()
    with ctx.target(preexec=as_user(uid, gid)) as t:
        t.map('a', 'anon', 8)
        t.fill('a', 0, 8, 1)
        ctx.ok('start', t.pid)
        # a tracking command, while it runs: the table's set, in every set that
        # an exec'd helper of root would get back (bounding), nothing else
        p = subprocess.Popen([ctx.bin, 'watch', str(t.pid), '--interval', '100',
                              '--count', '30'], env=ctx.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            p.stdout.readline()       # it has started
            caps = caps_of(p.pid)
        finally:
            p.kill()
            p.communicate()
        want = sum(1 << CAP[c] for c in KEPT['watch'])
        check_eq(caps, {'CapInh': 0, 'CapPrm': want, 'CapEff': want, 'CapBnd': want,
                        'CapAmb': 0}, 'capabilities of a running watch')
        ctx.ok('stop', t.pid)
    # a reading command keeps nothing: root cannot read the other user's
    # private dump without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH
    with ctx.target() as t:
        c, _, d2 = base_chain(ctx, t)
    priv = user_dir(ctx, 'private', uid, gid, 0o700)
    shutil.copytree(c, os.path.join(priv, 'c'), symlinks=True)
    subprocess.run(['chown', '-R', f'{uid}:{gid}', priv], check=True)
    d = os.path.join(priv, 'c', 'd2')
    for args in (['show', d], ['verify', d], ['diff', d, d], ['flatten', d, '-o',
                                                             os.path.join(ctx.tmp, 'o')]):
        rc, out, err = ctx.run(*args)
        check_eq(rc, EXIT_ERROR if args[0] == 'diff' else EXIT_PERM,
                 f'root {args[0]} of a 0700 dump of another user: {err}')
        check(err.endswith(': Permission denied\n') and err.count('\n') == 1, err)


def test_hostile_caps_same_images(ctx):
    """A dump by root (capabilities dropped to the table's) holds the same
    pagemap and pages as one by the target's own user, who has none."""
    uid, gid = second_user()
    udir = user_dir(ctx, 'u', uid, gid)
    become = as_user(uid, gid)

    def one_cpu_user():
        # the kernel writes the cpu number into the thread's rseq area (TLS):
        # on one cpu it stays the same between the two dumps
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        become()
    with ctx.target(preexec=one_cpu_user) as t:
        for name, kind in (('a', 'anon'), ('m', 'memfd'), ('s', 'shared')):
            t.map(name, kind, 16)
            t.fill(name, 0, 16, 7)
        t.write('a', 3)
        rootd = os.path.join(ctx.tmp, 'root-dump')
        dump(ctx, t.pid, rootd)
        ctx.ok('stop', t.pid)
        userd = os.path.join(udir, 'user-dump')
        env = dict(ctx.env, DIRTYTRACK_STATE_DIR=os.path.join(udir, 'state'))
        for args in (['dump', t.pid, '-D', userd], ['stop', t.pid]):
            rc, _, err = ctx.run(*args, user=uid, group=gid, env=env)
            check_eq(rc, 0, f'{args[0]} by the target\'s user: {err}')
    for pat in ('pagemap-*.img', 'pages-*.img', 'mm-*.img', 'pstree.img'):
        a = sorted(glob.glob(os.path.join(rootd, pat)))
        b = sorted(glob.glob(os.path.join(userd, pat)))
        check_eq([os.path.basename(x) for x in a], [os.path.basename(x) for x in b], pat)
        for x, y in zip(a, b):
            if pat == 'pstree.img':
                # CRIU's fields; ours (1001+) name each dump's own tracking session
                def criu(path):
                    return [{k: v for k, v in e.items() if k < 1000}
                            for e in img_records(path, PSTREE_MAGIC)]
                check_eq(criu(x), criu(y), 'pstree.img by root and by the target\'s user')
                continue
            with open(x, 'rb') as f, open(y, 'rb') as g:
                check(f.read() == g.read(), f'{os.path.basename(x)} differs between the dump '
                      'by root and the one by the target\'s user')
