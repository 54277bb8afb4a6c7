"""The command-line surface: install, --help, help, --version, -p, the man
page and the bash completion against the option table, argument checks,
messages, JSON escaping, the demo's output.  The real binary throughout;
the option table is what `dirtytrack --completion-helper` says it is."""
import json
import os
import pty
import re
import shutil
import signal
import stat
import subprocess
import time

from common import Skip, check, check_eq
from test_attach import EXIT_ERROR, EXIT_PERM, fails

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
MAN = os.path.join(ROOT, 'man', 'dirtytrack.1')
COMPLETION = os.path.join(ROOT, 'bash-completion', 'dirtytrack')


# -- the table, as the binary gives it -------------------------------------

def table(ctx, cmd=None):
    """(first line words, {option name: (kind, words)}) of --completion-helper."""
    out = ctx.ok('--completion-helper', *([cmd] if cmd else []))
    lines = out.splitlines()
    opts = {}
    for ln in lines[1:]:
        name, kind, *words = ln.split()
        opts[name] = (kind, words)
    return lines[0].split(), opts


def commands(ctx):
    first, _ = table(ctx)
    check_eq(first[0], 'commands', 'first line of --completion-helper')
    return first[1:]


def long_names(opts):
    return {n for n in opts if n.startswith('--')}


# -- make install / uninstall ------------------------------------------------

def make(ctx, *args):
    build = os.path.dirname(ctx.bin)
    r = subprocess.run(['make', '-s', '-C', ROOT, f'BUILD={build}', '-o', ctx.bin, *args],
                       capture_output=True, text=True, timeout=120)
    check_eq(r.returncode, 0, f'make {" ".join(args)}: {r.stderr.strip()}')
    return r.stdout


def files_under(top):
    found = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            found[os.path.relpath(p, top)] = stat.S_IMODE(os.lstat(p).st_mode)
    return found


def same_bytes(a, b):
    with open(a, 'rb') as x, open(b, 'rb') as y:
        return x.read() == y.read()


def test_install_uninstall(ctx):
    dest = os.path.join(ctx.tmp, 'dest')
    make(ctx, 'install', f'DESTDIR={dest}', 'PREFIX=/usr')
    want = {'usr/bin/dirtytrack': 0o755, 'usr/share/man/man1/dirtytrack.1': 0o644,
            'usr/share/bash-completion/completions/dirtytrack': 0o644}
    check_eq(files_under(dest), want, 'installed files and modes')
    for path, src in (('usr/bin/dirtytrack', ctx.bin), ('usr/share/man/man1/dirtytrack.1', MAN),
                      ('usr/share/bash-completion/completions/dirtytrack', COMPLETION)):
        check(same_bytes(os.path.join(dest, path), src), f'{path} is a copy of {src}')
    rc, out, err = ctx.run('--version')
    r = subprocess.run([os.path.join(dest, 'usr/bin/dirtytrack'), '--version'],
                       capture_output=True, text=True)
    check_eq((r.returncode, r.stdout), (0, out), 'the installed binary runs')
    r = subprocess.run(['man', '-w', '-M', os.path.join(dest, 'usr/share/man'), 'dirtytrack'],
                       capture_output=True, text=True)
    if shutil.which('man'):
        check_eq(r.stdout.strip(), os.path.join(dest, 'usr/share/man/man1/dirtytrack.1'),
                 f'man finds the page ({r.stderr.strip()})')
    make(ctx, 'uninstall', f'DESTDIR={dest}', 'PREFIX=/usr')
    check_eq(files_under(dest), {}, 'files left after uninstall')
    # the default prefix, and DESTDIR in front of it
    plan = make(ctx, '-n', 'install', 'DESTDIR=/stage')
    for path in ('/stage/usr/local/bin/dirtytrack', '/stage/usr/local/share/man/man1/dirtytrack.1',
                 '/stage/usr/local/share/bash-completion/completions/dirtytrack'):
        check(path in plan, f'make -n install does not write {path}:\n{plan}')


# -- --version ----------------------------------------------------------------

def makefile_version():
    with open(os.path.join(ROOT, 'Makefile')) as f:
        return re.search(r'^VERSION\s*:=\s*(\S+)', f.read(), re.M).group(1)


def test_version(ctx):
    version = makefile_version()
    r = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short=12', 'HEAD'],
                       capture_output=True, text=True)
    out = ctx.ok('--version')
    if r.returncode == 0:
        m = re.fullmatch(r'dirtytrack (\S+) \(commit ([0-9a-f]{12})(-dirty)?\)\n', out)
        check(m, f'--version: {out!r}')
        check_eq(m.group(1), version, 'version')
        check_eq(m.group(2), r.stdout.strip(), 'the commit the binary was built from')
        doc = ctx.json('--version')
        check_eq(doc, {'version': version, 'commit': m.group(2) + (m.group(3) or '')},
                 '-j --version')
    else:
        check_eq(out, f'dirtytrack {version} (built outside a git checkout: commit unknown)\n',
                 '--version outside git')
    check_eq(ctx.ok('-V'), out, '-V')
    # a tree without .git (a tarball): the Makefile says the commit is unknown
    tree = os.path.join(ctx.tmp, 'tarball')
    os.makedirs(tree)
    shutil.copy(os.path.join(ROOT, 'Makefile'), tree)
    r = subprocess.run(['make', '-s', '-C', tree, 'BUILD=b', 'b/gen/version.h'],
                       capture_output=True, text=True, env=dict(os.environ, GIT_DIR='/nonexistent'))
    check_eq(r.returncode, 0, f'version.h outside git: {r.stderr}')
    with open(os.path.join(tree, 'b', 'gen', 'version.h')) as f:
        check_eq(f.read(), f'#define DT_VERSION "{version}"\n#define DT_COMMIT ""\n',
                 'version.h without .git')


# -- help ------------------------------------------------------------------------

def test_help(ctx):
    top = ctx.ok('--help')
    check_eq(ctx.ok('help'), top, 'dirtytrack help = dirtytrack --help')
    check_eq(ctx.ok('-h'), top, '-h')
    cmds = commands(ctx)
    check_eq(len(cmds), 13, f'commands: {cmds}')
    for c in cmds:
        check(re.search(rf'^  {c} ', top, re.M), f'--help does not list {c}')
        out = ctx.ok(c, '--help')
        check(out.startswith(f'usage: dirtytrack {c}'), f'{c} --help: {out[:80]!r}')
        check('exit status: 0 ' in out, f'{c} --help has no exit status:\n{out}')
        check_eq(ctx.ok('help', c), out, f'help {c} = {c} --help')
        check_eq(ctx.ok(c, '-h'), out, f'{c} -h')
    # the defaults are in the help, with their options
    for c, opt, default in (('watch', '-i, --interval MS', '1000'),
                            ('precopy', '--max-iters N', '10'),
                            ('precopy', '--then leave-stopped|kill|resume', 'leave-stopped'),
                            ('dump', '--scan ioctl|pagemap', 'ioctl')):
        out = ctx.ok(c, '--help')
        at = re.search(rf'^ +{re.escape(opt)}', out, re.M)
        check(at, f'{c} --help has no line for {opt}:\n{out}')
        block = re.split(r'\n(?=  -|\n)', out[at.start():])[0]
        check(f'(default: {default})' in ' '.join(block.split()),
              f'{c} --help: {opt} without its default {default}:\n{out}')
    fails(ctx, ['help', 'frobnicate'], EXIT_ERROR, None, 'frobnicate')


HELP_OPTION = re.compile(r'^  (?:-(\w), )?\s*--([\w-]+)', re.M)


def help_names(text):
    names = set()
    for short, long in HELP_OPTION.findall(text):
        names.add('--' + long)
        if short:
            names.add('-' + short)
    return names


def man_blocks():
    with open(MAN) as f:
        man = f.read()
    syn = man[man.index('.SH SYNOPSIS'):man.index('.SH DESCRIPTION')]
    opts = man[man.index('BEGIN GENERATED options'):man.index('END GENERATED options')]
    opts = opts[opts.index('\n'):opts.rindex('\n')]    # not the marker lines
    return man, syn, opts


def roff_names(text):
    text = text.replace('\\-', '-')
    return set(re.findall(r'(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])(?![\w-])', text))


def complete(ctx, *words):
    """COMPREPLY of the bash completion for `dirtytrack WORDS...` (the last is
    the word under the cursor)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
              '_dirtytrack; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(['bash', '-c', script, 'bash', COMPLETION, ctx.bin, *words],
                       capture_output=True, text=True, env=ctx.env, cwd=ctx.tmp)
    check_eq(r.returncode, 0, f'completion {words}: {r.stderr}')
    return sorted(x for x in r.stdout.split('\n') if x)


def test_table_help_man_completion_agree(ctx):
    """Every option of the table is in the command's --help, its man SYNOPSIS
    and OPTIONS and its completion; and nothing is there that the table lacks."""
    r = subprocess.run(['python3', os.path.join(ROOT, 'scripts', 'man-sync.py'), '--bin', ctx.bin,
                        '--check', MAN], capture_output=True, text=True)
    check_eq(r.returncode, 0, f'make check-man: {r.stderr.strip()}')
    man, syn, man_opts = man_blocks()
    cmds = commands(ctx)
    check_eq(complete(ctx, ''), sorted(cmds), 'completion of the command name')
    _, global_opts = table(ctx)
    check_eq(complete(ctx, '-'), sorted(global_opts), 'completion of options before the command')
    every = set(global_opts)
    for c in cmds:
        first, opts = table(ctx, c)
        every |= set(opts)
        shown = help_names(ctx.ok(c, '--help'))
        check_eq(shown, set(opts), f'{c} --help options')
        # the synopsis line of c: each option (but -h) by its shortest name
        block = syn[syn.index(f'.B dirtytrack {c}\n'):]
        block = block[:block.index('.PP')]
        rows = HELP_OPTION.findall(ctx.ok(c, '--help'))
        check_eq(roff_names(block), {'-' + sh if sh else '--' + lo for sh, lo in rows
                                     if lo != 'help'}, f'man SYNOPSIS of {c}')
        check_eq(complete(ctx, c, '--'), sorted(long_names(opts)), f'completion of {c} --')
        check_eq(complete(ctx, c, '-'), sorted(opts), f'completion of {c} -')
        for name, (kind, words) in opts.items():
            if kind == 'words':
                check_eq(complete(ctx, c, name, ''), sorted(words), f'completion of {c} {name}')
            if kind == 'value':
                check_eq(complete(ctx, c, name, ''), [], f'no completion for {c} {name} VALUE')
    check_eq(roff_names(man_opts), every, 'man OPTIONS: every option, nothing else')
    # outside examples of other tools (rsync, grep), every option named is the table's
    man = re.sub(r'^\.\\".*\n', '', man, flags=re.M)     # comments
    prose = re.sub(r'^\.nf\n.*?^\.fi\n', lambda m: ''.join(
        ln + '\n' for ln in m.group(0).splitlines() if 'dirtytrack' in ln), man, flags=re.M | re.S)
    check_eq(roff_names(prose) - every, set(), 'options in the man page that the table lacks')
    with open(COMPLETION) as f:
        script = f.read()
    check_eq({n for n in every if n.startswith('--') and n in script}, set(),
             'option names written into the completion script (it must ask the binary)')


def test_completion_values(ctx):
    with ctx.target() as t:
        os.makedirs(os.path.join(ctx.tmp, 'ckpt', 'one'))
        check(str(t.pid) in complete(ctx, 'status', str(t.pid)[:-1]), 'PID operand')
        check(str(t.pid) in complete(ctx, 'verify', 'ckpt/one', '--pid', str(t.pid)[:-1]),
              '--pid PID')
    check_eq(complete(ctx, 'dump', '1', '-D', 'ck'), ['ckpt'], '-D DIR')
    check_eq(complete(ctx, 'dump', '1', '-D', 'x', '--parent', 'ckpt/'), ['ckpt/one'], '--parent')
    check_eq(complete(ctx, 'flatten', 'ckpt/one', '-o', 'ck'), ['ckpt'], '-o OUT')
    check_eq(complete(ctx, 'show', 'ck'), ['ckpt'], 'show DIR')
    check_eq(complete(ctx, 'help', 'pre'), ['precopy'], 'help COMMAND')
    check_eq(complete(ctx, '-j', 'precopy', '1', '--then', 'k'), ['kill'], '--then after -j')


# -- -p ------------------------------------------------------------------------

def test_pretty(ctx):
    with ctx.target() as t:
        t.map('a', 'anon', 4)
        t.fill('a', 0, 4, 7)
        d = os.path.join(ctx.tmp, 'd1')
        ctx.json('dump', t.pid, '-D', d)
        ctx.ok('stop', t.pid)
    compact = ctx.ok('-j', 'show', d)
    check_eq(len(compact.splitlines()), 1, '-j is one line')
    for args in (('-p', 'show', d), ('show', d, '-p'), ('show', '--pretty', d), ('-j', '-p', 'show', d)):
        out = ctx.ok(*args)
        check_eq(json.loads(out), json.loads(compact), f'{args}: the same document')
        lines = out.splitlines()
        check(lines[0] == '{' and lines[-1] == '}' and lines[1].startswith('  "dir": '),
              f'{args}: indented: {lines[:3]}')
        check_eq(out, json.dumps(json.loads(out), indent=2, ensure_ascii=False) + '\n',
                 f'{args}: two spaces a level, one member a line')


# -- JSON escaping -------------------------------------------------------------

def test_json_escapes_non_utf8_paths(ctx):
    raw = os.fsencode(ctx.tmp) + b'/dump-\xff\xfe-\xc3\xa9'
    with ctx.target() as t:
        t.map('a', 'anon', 2)
        t.fill('a', 0, 2, 1)
        for args in ([b'-j', b'dump', str(t.pid).encode(), b'-D', raw], [b'-j', b'show', raw],
                     [b'-j', b'verify', raw], [b'-j', b'diff', raw, raw]):
            r = subprocess.run([os.fsencode(ctx.bin), *args], capture_output=True, env=ctx.env)
            check_eq(r.returncode, 0, f'{args}: {r.stderr!r}')
            text = r.stdout.decode('utf-8')      # strict: valid UTF-8, always
            doc = json.loads(text)
            where = doc['a'] if b'diff' in args else doc
            check(where['dir'].endswith('/dump-\u00ff\u00fe-\u00e9'),
                  f'{args}: dir {where["dir"]!r}: invalid bytes as \\u00XX, valid UTF-8 kept')
            check('\\u00ff\\u00fe' in text, f'{args}: escaped, not raw: {text[:200]!r}')
        ctx.ok('stop', t.pid)


# -- argument checks and messages -------------------------------------------

def test_numbers_rejected(ctx):
    with ctx.target() as t:
        base = os.path.join(ctx.tmp, 'pc')
        for args, words in (
                (['status', ' 12'], ["' 12'", 'process id']),
                (['status', '+12'], ["'+12'"]),
                (['watch', t.pid, '--interval', ' 12'], ['--interval', "' 12'"]),
                (['watch', t.pid, '--count', '0x10'], ['--count', '0x10']),
                (['precopy', t.pid, '-D', base, '--link-mbps', '0x0.8'], ['--link-mbps', '0x0.8']),
                (['precopy', t.pid, '-D', base, '--link-mbps', '1e-300'], ['--link-mbps', '1e-300']),
                (['precopy', t.pid, '-D', base, '--link-mbps', '1e300'], ['--link-mbps', '1e300']),
                (['precopy', t.pid, '-D', base, '--until-ratio', 'nan'], ['--until-ratio', 'nan']),
                (['precopy', t.pid, '-D', base, '--until-pages', '-1'], ['--until-pages', '-1']),
                (['precopy', t.pid, '-D', base, '--then', 'stop'],
                 ['--then', 'leave-stopped', 'kill', 'resume']),
                (['dump', t.pid, '-D', base, '--scan', 'bits'], ['--scan', 'ioctl', 'pagemap'])):
            cmd = args[0]
            fails(ctx, args, EXIT_ERROR, cmd, *words)
        check(not os.path.exists(base), 'nothing created by a rejected command')


def test_dump_dir_of_its_own(ctx):
    with ctx.target() as t:
        os.makedirs(os.path.join(ctx.tmp, 'ckpt'))
        for d in ('.', './', 'ckpt/..', '/', 'ckpt/.'):
            r = subprocess.run([ctx.bin, '-j', 'dump', str(t.pid), '-D', d], capture_output=True,
                               text=True, env=ctx.env, cwd=ctx.tmp)
            check_eq(r.returncode, EXIT_ERROR, f'dump -D {d}: {r.stderr}')
            check(r.stderr.startswith(f'dirtytrack dump: -D {d}: ') and
                  'directory of its own' in r.stderr and len(r.stderr.splitlines()) == 1,
                  f'dump -D {d}: {r.stderr!r}')
        check_eq(ctx.json('status', t.pid)['tracking'], 'off', 'refused before tracking started')
        check_eq(sorted(os.listdir(ctx.tmp)), ['ckpt'] + sorted(
            n for n in os.listdir(ctx.tmp) if n == 'state'), 'nothing written')
        fails(ctx, ['flatten', 'ckpt', '-o', '.'], EXIT_ERROR, 'flatten', '-o .')


def kernel_thread():
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open(f'/proc/{p}/stat') as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(')') + 2:].split()
        if int(fields[6]) & 0x00200000:
            return int(p), s[s.index('(') + 1:s.rindex(')')]
    raise Skip('no kernel thread visible in this pid namespace')


def test_kernel_thread_and_self(ctx):
    pid, comm = kernel_thread()
    for cmd in ('status', 'start', 'dump'):
        args = [cmd, pid] + (['-D', os.path.join(ctx.tmp, 'd')] if cmd == 'dump' else [])
        fails(ctx, args, EXIT_ERROR, cmd, f'process {pid} ({comm}) is a kernel thread')
    fails(ctx, ['verify', ctx.tmp, '--pid', pid], EXIT_ERROR, 'verify', 'kernel thread')
    # the pid of dirtytrack itself: a shell that execs it keeps its pid
    r = subprocess.run(['sh', '-c', 'exec "$0" status $$', ctx.bin], capture_output=True,
                       text=True, env=ctx.env)
    check_eq(r.returncode, EXIT_ERROR, f'status of itself: {r.stderr}')
    check(re.fullmatch(r'dirtytrack status: process \d+ is dirtytrack itself: [^\n]*\n', r.stderr),
          f'message: {r.stderr!r}')


def test_permission_names_owner(ctx):
    """Refused over another user's process: the message says whose it is and
    what would be needed.  As root: our target, traced as nobody; as a normal
    user: process 1, root's."""
    if os.geteuid() == 0:
        with ctx.target() as t:
            for cmd in ('start', 'status', 'stop'):
                msg = fails(ctx, [cmd, t.pid], EXIT_PERM, cmd, t.pid, user=65534)
                check(f'process {t.pid} belongs to user root (uid 0), you are ' in msg and
                      '(uid 65534)' in msg and 'CAP_SYS_PTRACE' in msg, f'{cmd}: {msg!r}')
        return
    if os.stat('/proc/1').st_uid == os.geteuid():
        raise Skip('process 1 is ours here: no process of another user to try')
    for cmd in ('start', 'status', 'stop'):
        msg = fails(ctx, [cmd, 1], EXIT_PERM, cmd, 1)
        check('process 1 belongs to user root (uid 0), you are ' in msg and
              f'(uid {os.geteuid()})' in msg and 'CAP_SYS_PTRACE' in msg, f'{cmd}: {msg!r}')


def test_hints_name_only_own_options(ctx):
    for c in commands(ctx):
        _, opts = table(ctx, c)
        r = subprocess.run([ctx.bin, c, '--no-such-option'], capture_output=True, text=True)
        check(f"see 'dirtytrack {c} --help'" in r.stderr, f'{c}: {r.stderr!r}')
    with ctx.target() as t:
        t.map('a', 'anon', 2)
        t.fill('a', 0, 2, 1)
        d1, d2 = os.path.join(ctx.tmp, 'd1'), os.path.join(ctx.tmp, 'd2')
        ctx.json('dump', t.pid, '-D', d1)
        ctx.json('status', t.pid)
        ctx.ok('watch', t.pid, '--count', 1, '--interval', 10)     # consumes: d1 is stale
        msg = fails(ctx, ['dump', t.pid, '-D', d2, '--parent', d1], EXIT_ERROR, 'dump',
                    'cannot dump incrementally')
        check('--full-if-needed' in msg, f'dump has --full-if-needed: {msg!r}')
        # the note of a full dump goes to stderr, the report alone to stdout
        rc, out, err = ctx.run('dump', t.pid, '-D', d2, '--parent', d1, '--full-if-needed')
        check_eq(rc, 0, f'dump --full-if-needed: {err}')
        check(err.startswith('dirtytrack dump: taking a full dump: ') and
              len(err.splitlines()) == 1, f'stderr: {err!r}')
        check(out.startswith(f'{d2}: full dump 1 of process {t.pid}: ') and
              'taking' not in out, f'stdout: {out!r}')
        ctx.ok('stop', t.pid)


# -- one name per mapping kind --------------------------------------------

def test_kind_names_agree(ctx):
    with ctx.target() as t:
        for name, kind in (('a', 'anon'), ('s', 'shared'), ('m', 'memfd'), ('fp', 'filepriv'),
                           ('fs', 'fileshared')):
            path = os.path.join(ctx.tmp, name) if kind.startswith('file') else None
            if path:
                with open(path, 'wb') as f:
                    f.write(b'\x01' * 4 * 4096)
            t.map(name, kind, 4, path=path)
            t.fill(name, 0, 2, 3)
        status = ctx.json('start', t.pid) and ctx.json('status', t.pid)
        d = os.path.join(ctx.tmp, 'd1')
        ctx.json('dump', t.pid, '-D', d)
        show = ctx.json('show', d)
        rc, out, _ = ctx.run('-j', 'diff', d, d)
        diff = json.loads(out)
        watch = json.loads(ctx.ok('-j', 'watch', t.pid, '--count', 1, '--interval', 10))
        ctx.ok('stop', t.pid)
    by_start = lambda vmas: {v['start']: v['kind'] for v in vmas}  # noqa: E731
    st, sh, df = by_start(status['vmas']), by_start(show['vmas']), by_start(diff['vmas'])
    for name, want in (('a', 'anon'), ('s', 'shmem'), ('m', 'shmem'), ('fp', 'file'),
                       ('fs', 'file-shared')):
        start = hex(t.base(name))
        check_eq((st.get(start), sh.get(start), df.get(start)), (want, want, want),
                 f'kind of {name} in status, show, diff')
    common = set(st) & set(sh)
    check_eq({a: st[a] for a in common}, {a: sh[a] for a in common}, 'status and show kinds')
    check(set(watch['pages_by_kind']) <= set(st.values()) | {'heap', 'stack'},
          f"watch's kinds {sorted(watch['pages_by_kind'])}")


# -- watch totals, no escape codes -------------------------------------

def test_watch_prints_totals_when_interrupted(ctx):
    with ctx.target() as t:
        t.map('a', 'anon', 64)
        for json_mode in (False, True):
            args = [ctx.bin] + (['-j'] if json_mode else []) + ['watch', str(t.pid), '-i', '50']
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=ctx.env)
            time.sleep(0.3)
            t.fill('a', 0, 10, 5)
            time.sleep(0.3)
            p.send_signal(signal.SIGINT if json_mode else signal.SIGTERM)
            out, err = p.communicate(timeout=10)
            check_eq(p.returncode, 0, f'watch after a signal: {err}')
            lines = out.splitlines()
            if json_mode:
                evs = [json.loads(ln) for ln in lines]
                total, rows = evs[-1], evs[:-1]
                check_eq(total['event'], 'totals', 'last line')
                check_eq(total['intervals'], len(rows), 'intervals')
                check_eq(total['pages'], sum(e['pages'] for e in rows), 'pages')
                check(total['pages'] >= 10, f'the 10 pages written: {total}')
                check_eq(total['bytes'], total['pages'] * 4096, 'bytes')
            else:
                m = re.fullmatch(r'total: (\d+) intervals in [\d.]+ s, (\d+) pages written '
                                 r'\([\d.]+ MiB, [\d.]+ MiB/s on average\)', lines[-1])
                check(m, f'last line: {lines[-1]!r}')
                rows = lines[1:-1]
                check_eq(int(m.group(1)), len(rows), 'intervals')
                check_eq(int(m.group(2)), sum(int(r.split()[1]) for r in rows), 'pages')
            check('\033' not in out + err, 'no escape codes into a pipe')


FAKE_DT = '#!/bin/sh\necho "dirtytrack $*"\n'
FAKE_WORKLOAD = '#!/bin/sh\necho ready\nexec sleep 30\n'


def test_demo_escape_codes_only_on_a_tty(ctx):
    dt, wl = os.path.join(ctx.tmp, 'dt'), os.path.join(ctx.tmp, 'wl')
    for path, text in ((dt, FAKE_DT), (wl, FAKE_WORKLOAD)):
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o755)
    demo = os.path.join(ROOT, 'scripts', 'demo.sh')
    r = subprocess.run(['sh', demo, dt, wl], capture_output=True, text=True, timeout=30)
    check_eq(r.returncode, 0, f'demo with stand-ins: {r.stderr}')
    check('$ ' + dt + ' check' in r.stdout, f'the steps are shown:\n{r.stdout}')
    check('\033' not in r.stdout + r.stderr, f'escape codes into a pipe:\n{r.stdout!r}')
    # on a terminal the commands are bold
    master, slave = pty.openpty()
    p = subprocess.Popen(['sh', demo, dt, wl], stdout=slave, stderr=slave)
    os.close(slave)
    seen = b''
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    check_eq(p.wait(timeout=30), 0, 'demo on a terminal')
    check(b'\033[1m$ ' in seen, f'bold on a terminal: {seen[:200]!r}')


# -- the README's tour, as typed ----------------------------------------------

def readme_tour():
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    block = text[text.index('## A quick tour'):]
    block = block[block.index('```sh\n') + 6:]
    block = block[:block.index('```')]
    lines = []
    for ln in block.splitlines():
        ln = ln.split('#')[0].strip()
        if ln:
            lines.append(ln)
    return lines


def stopped(pid):
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()[0] in 'Tt'


def test_readme_tour(ctx):
    """Every command of the README's quick tour, with 4242 a real target:
    each does what the README says, in order."""
    tour = readme_tour()
    check(len(tour) >= 15 and tour[0] == 'dirtytrack check', f'the tour: {tour}')
    with ctx.target() as t:
        t.map('a', 'anon', 32)
        t.fill('a', 0, 32, 1)
        try:
            for i, ln in enumerate(tour):
                words = ln.replace('4242', str(t.pid)).split()
                if words[0] == 'mkdir':
                    os.makedirs(os.path.join(ctx.tmp, words[1]))
                    continue
                check_eq(words[0], 'dirtytrack', f'tour line {ln!r}')
                if not stopped(t.pid):       # it writes between the steps
                    t.fill('a', i % 32, 1, 0x40 + i)
                p = subprocess.Popen([ctx.bin, *words[1:]], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ctx.env, cwd=ctx.tmp)
                forever = words[1] == 'watch' and '--count' not in words
                try:
                    out, err = p.communicate(timeout=1 if forever else 60)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGINT)     # the reader's Ctrl-C
                    out, err = p.communicate(timeout=10)
                want = (0, 1) if words[1] == 'diff' else (0,)
                check(p.returncode in want, f'tour: `{ln}` exit {p.returncode}: {err.strip()}')
                if forever:
                    check(out.splitlines()[-1].startswith('total: '), f'`{ln}`: {out!r}')
        finally:
            os.kill(t.pid, signal.SIGCONT)


def thread_states(pid):
    states = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/stat') as f:
                states[int(tid)] = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            pass
    return states


def test_left_stopped_is_stopped_on_return(ctx):
    """When dump --leave-stopped (and precopy's final dump) returns, every
    thread is in group stop already, so that verify --pid (or CRIU) right
    after never sees one running: the cause of the flaky precopy tests."""
    with ctx.target() as t:
        t.map('a', 'anon', 64)
        t.spin(8, 'a', 0, 64)
        t.wait_spinning(3)
        try:
            for i in range(15):
                d = os.path.join(ctx.tmp, f'd{i}')
                ctx.json('dump', t.pid, '-D', d, '--leave-stopped')
                states = thread_states(t.pid)
                check(set(states.values()) <= {'T', 't'}, f'round {i}: thread states {states}')
                os.kill(t.pid, signal.SIGCONT)
                t.wait_spinning(t.spincount() + 3)
            base = os.path.join(ctx.tmp, 'pc')
            ctx.ok('precopy', t.pid, '-D', base, '--max-iters', 2, '--interval', 10)
            states = thread_states(t.pid)
            check(set(states.values()) <= {'T', 't'}, f'after precopy: thread states {states}')
        finally:
            os.kill(t.pid, signal.SIGCONT)
            t.unspin()
