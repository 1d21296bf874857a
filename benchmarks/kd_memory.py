"""Peak memory and time of a token-level KD loss, forward + backward, on CPU at Qwen's vocabulary:
`chunked_kd_loss` (never builds [T, V]) against `naive_kd_loss` (full [T, V] logits, plain autograd).

    nice -n 19 python benchmarks/kd_memory.py [--tokens 1024 --hidden 256 --vocab 151936 --chunk 128 --threads 1 --reps 4]
    nice -n 19 python benchmarks/kd_memory.py --sweep [--reps 2 --divs fkl --max-naive-gb 16]

`--sweep` measures curves instead of one point (fkl unless `--divs` says otherwise), each point for a trainable student
LM head and a frozen one (`W.requires_grad_(False)`, the LoRA case: no gradient into the head): a T-curve (T = 256 ...
8,192 at H = 256), an H-curve (H = 256, 1,024, 1,536 at T = 1,024) and a chunk-size curve (chunk = 32, 64 at T = 256).
The naive loss runs only where its peak, extrapolated from the largest smaller T already measured, stays under
`--max-naive-gb` and under the available memory; elsewhere it is recorded as not run with that estimate, and ratios
against it are marked as estimates. Writes benchmarks/results/kd_memory.{md,json,png}.

Method (perf_anchors.md §5.3): student hidden states [T, H] and LM head [V, H] (trainable unless --head frozen), teacher hidden
states [T, H] and head [V, H], fp32; loss = forward KL and generalized JSD (beta = 0.5), backward into the student's
hidden states (and head). Each variant runs in a fresh process; memory = peak RSS (ru_maxrss) minus the RSS once the
inputs exist; time = median wall time of the repetitions after the first (warm-up). Both variants run side by side
in one invocation, so the ratios stay meaningful on a loaded machine; the absolute times do not.
Goals: memory ratio <= 0.10 and time ratio <= 1.0. Writes benchmarks/results/kd_memory.{md,json}.
"""
import json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, write_report

DIVS = [('fkl', {}), ('jsd', {'beta': 0.5})]
GOAL_MEM, GOAL_TIME = 0.10, 1.0

def rss_bytes():
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def child(a):
    os.environ.setdefault('OMP_NUM_THREADS', str(a.threads))
    import torch
    from reasondistill.divergences import chunked_kd_loss, naive_kd_loss
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    T, H, V = a.tokens, a.hidden, a.vocab
    # in place, so that creating the inputs leaves no transient peak above the baseline
    h = torch.randn(T, H, generator=g).requires_grad_()
    W = torch.randn(V, H, generator=g).mul_(2 / H ** 0.5).requires_grad_(a.head == 'trainable')   # logits with std ~2
    th = torch.randn(T, H, generator=g)
    tW = torch.randn(V, H, generator=g).mul_(2 / H ** 0.5)
    kw = dict(DIVS)[a.name]
    fn = (lambda: chunked_kd_loss(h, W, th, tW, name=a.name, chunk_size=a.chunk, **kw)) if a.variant == 'chunked' else \
         (lambda: naive_kd_loss(h, W, th, tW, name=a.name, **kw))
    base = rss_bytes()
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, values = [], []
    for _ in range(a.reps):
        h.grad = W.grad = None
        t0 = time.perf_counter()
        loss = fn()
        loss.backward()
        times.append(time.perf_counter() - t0)
        values.append(float(loss.detach()))
        del loss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(variant=a.variant, name=a.name, base_mb=base / 2**20, maxrss_before_mb=max_before / 2**20,
                          peak_mb=peak / 2**20, growth_mb=(peak - base) / 2**20, times_s=times,
                          loss=values[-1],
                          grad_w_norm=float(W.grad.norm()) if W.grad is not None else None,
                          grad_h_norm=float(h.grad.norm()))))

def cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor()

def run_point(a, variant, name, T, H, chunk, head):
    "One variant at one point, in a fresh process: its result dict, or the child's exit status on failure."
    cmd = [sys.executable, __file__, '--child', variant, name, f'--tokens={T}', f'--hidden={H}', f'--vocab={a.vocab}',
           f'--chunk={chunk}', f'--threads={a.threads}', f'--reps={a.reps}', f'--head={head}']
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)})
    if p.returncode: print(p.stdout, p.stderr[-3000:]); return p.returncode
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r['time_s'] = statistics.median(r['times_s'][1:] or r['times_s'])
    # the peak must come from the loss, not from an earlier transient (which would hide the loss's own peak)
    r['clean_baseline'] = r['maxrss_before_mb'] <= r['base_mb'] + 0.05 * r['growth_mb']
    return r

def rel(c, n, k):
    "Relative difference of field `k` between the chunked and naive results (None where the field is absent)."
    return abs(c[k] - n[k]) / abs(n[k]) if c.get(k) is not None and n.get(k) is not None else None

def main():
    ap = bench_parser('kd_memory', __doc__, groups=('run',), threads=1)
    ap.add_argument('--tokens', type=int, default=1024); ap.add_argument('--hidden', type=int, default=256)
    ap.add_argument('--vocab', type=int, default=151936); ap.add_argument('--chunk', type=int, default=128)
    ap.add_argument('--reps', type=int, default=None, help='repetitions, the first a warm-up (default: 4; 2 with --sweep)')
    ap.add_argument('--head', choices=('trainable', 'frozen'), default='trainable',
                    help="student LM head: trainable, or frozen (requires_grad False, the LoRA case); single-point mode")
    ap.add_argument('--sweep', action='store_true', help='measure the T-, H- and chunk-curves, trainable and frozen head')
    ap.add_argument('--divs', default=None, help='divergences, comma-separated (default: fkl,jsd; fkl with --sweep)')
    ap.add_argument('--max-naive-gb', type=float, default=16.0,
                    help='--sweep: do not run the naive loss where its extrapolated peak RSS growth exceeds this')
    ap.add_argument('--render', action='store_true', help='rewrite OUT.md and OUT.png from the OUT.json of a sweep, measuring nothing')
    ap.add_argument('--child', nargs=2, metavar=('VARIANT', 'NAME'))
    a = parse_args(ap, tiny=dict(tokens=128, vocab=4096, reps=1))
    if a.reps is None: a.reps = 2 if a.sweep else 4
    if not (a.sweep or a.render) and a.out == 'benchmarks/results/kd_memory':   # one point must not overwrite the committed sweep
        a.out = 'benchmarks/results/kd_memory_point'
    a.divs = tuple(x for x in (a.divs or ('fkl' if a.sweep else 'fkl,jsd')).split(',') if x)
    bad = set(a.divs) - set(dict(DIVS))
    if bad: ap.error(f'unknown divergences {sorted(bad)}; known: {[n for n, _ in DIVS]}')
    if min(a.tokens, a.hidden, a.vocab, a.chunk, a.reps) < 1: ap.error('--tokens, --hidden, --vocab, --chunk and --reps must be >= 1')
    if a.child:
        a.variant, a.name = a.child
        return child(a)
    if a.render: return render(a)
    if a.sweep: return sweep(a)
    import torch
    load_start = os.getloadavg()
    res, t_start = {}, time.time()
    for name in a.divs:
        for variant in ('naive', 'chunked'):
            r = run_point(a, variant, name, a.tokens, a.hidden, a.chunk, a.head)
            if isinstance(r, int): return r
            res[variant, name] = r
            print(f"{name:4} {variant:8} peak RSS growth {r['growth_mb']:8.0f} MB   time {r['time_s']:6.2f} s", flush=True)
    load_end = os.getloadavg()
    row_mb = a.tokens * a.vocab * 4 / 2**20
    summary = {}
    for name in a.divs:
        n, c = res['naive', name], res['chunked', name]
        mem, tim = c['growth_mb'] / n['growth_mb'], c['time_s'] / n['time_s']
        summary[name] = dict(naive_mb=n['growth_mb'], chunked_mb=c['growth_mb'], naive_buffers=n['growth_mb'] / row_mb,
                             naive_s=n['time_s'], chunked_s=c['time_s'], mem_ratio=mem, time_ratio=tim,
                             loss_rel_diff=rel(c, n, 'loss'),
                             mem_goal_met=mem <= GOAL_MEM, time_goal_met=tim <= GOAL_TIME,
                             grad_w_norm_rel_diff=rel(c, n, 'grad_w_norm'), grad_h_norm_rel_diff=rel(c, n, 'grad_h_norm'))
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                   torch_threads=a.threads, load_avg_start=load_start, load_avg_end=load_end,
                   niceness=os.nice(0), psutil=_has_psutil())
    setup = dict(tokens=a.tokens, hidden=a.hidden, vocab=a.vocab, chunk=a.chunk, reps=a.reps, head=a.head, dtype='float32',
                 wall_s=time.time() - t_start)
    goals = dict(mem_ratio_max=GOAL_MEM, time_ratio_max=GOAL_TIME)
    met = all(s['mem_goal_met'] and s['time_goal_met'] for s in summary.values())
    clean = all(r['clean_baseline'] for r in res.values())
    lines = ['# KD loss memory: chunked vs naive (CPU)', '',
             f"T = {a.tokens:,} tokens, H = {a.hidden}, V = {a.vocab:,}, chunk = {a.chunk}, fp32, forward + backward into the "
             f"student's hidden states{' and LM head' if a.head == 'trainable' else ' (LM head frozen)'}; each variant in a fresh process; memory = peak RSS (ru_maxrss) minus RSS "
             f"once the inputs exist; time = {f'median of {a.reps - 1} repetition(s) after a warm-up' if a.reps > 1 else 'one run (no warm-up)'}. One `[T, V]` fp32 tensor = "
             f"{row_mb:.0f} MB.", '',
             '| divergence | naive peak growth | chunked peak growth | memory ratio | naive time | chunked time | time ratio | goals (mem <= 0.10, time <= 1.0) |',
             '|---|---|---|---|---|---|---|---|']
    for name, s in summary.items():
        lines.append(f"| {name}{' (beta=0.5)' if name == 'jsd' else ''} | {s['naive_mb']:,.0f} MB (= {s['naive_buffers']:.1f} `[T,V]`) "
                     f"| {s['chunked_mb']:,.0f} MB | **{s['mem_ratio']:.3f}** | {s['naive_s']:.2f} s | {s['chunked_s']:.2f} s "
                     f"| **{s['time_ratio']:.2f}** | memory {'met' if s['mem_goal_met'] else 'NOT met'}, time "
                     f"{'met' if s['time_goal_met'] else 'NOT met'} |")
    agree = max(x for s in summary.values() for x in (s['loss_rel_diff'], s['grad_w_norm_rel_diff'], s['grad_h_norm_rel_diff'])
                if x is not None)
    lines += ['', f"All goals met: **{'yes' if met else 'no'}**. Chunked and naive agree on the loss and on the gradient "
              f"norms to {agree:.1e} (relative). Peak RSS before the loss ran was at the baseline in every process: "
              f"{'yes' if clean else 'NO (memory numbers unreliable)'}.", '',
              f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, torch {machine['torch']}, "
              f"{a.threads} torch thread(s), niceness {machine['niceness']}. Load average (1/5/15 min) at start "
              f"{'/'.join(f'{x:.2f}' for x in load_start)}, at end {'/'.join(f'{x:.2f}' for x in load_end)}.", '',
              'The machine may be shared with other work (see the load average): absolute times are then inflated and '
              'noisy, but both variants ran in the same invocation, one after the other, so the ratios remain meaningful; '
              'memory is unaffected by load.']
    write_report(a, lines + [''], dict(setup=setup, machine=machine, goals=goals, all_goals_met=met, clean_baselines=clean,
                                      summary=summary, runs={f'{v}/{n}': r for (v, n), r in res.items()}))
    return 0 if met else 1

T_CURVE, H_CURVE, CHUNK_CURVE = (256, 512, 1024, 2048, 4096, 8192), (256, 1024, 1536), (32, 64)
SWEEP_H, SWEEP_T, CHUNK_T = 256, 1024, 256
HEADS = ('trainable', 'frozen')

def _commit():
    root = Path(__file__).resolve().parent.parent
    git = lambda *c: subprocess.run(['git', *c], cwd=root, capture_output=True, text=True).stdout.strip()
    return dict(commit=git('rev-parse', 'HEAD') or None, dirty=bool(git('status', '--porcelain', '--untracked-files=no')))

def _available_mb():
    try:
        import psutil
        return psutil.virtual_memory().available / 2**20
    except ImportError:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'): return int(line.split()[1]) / 1024
    return float('inf')

def sweep(a):
    """The T-, H- and chunk-curves, each point for a trainable and a frozen head. The naive loss runs only where its
    peak growth, extrapolated linearly in T from the largest smaller T measured at the same H and head, fits."""
    import torch
    t_start, load_start = time.time(), os.getloadavg()
    mb = lambda T: T * a.vocab * 4 / 2**20                        # one fp32 [T, V] tensor, MB
    cmd = 'python ' + ' '.join(['benchmarks/kd_memory.py'] + sys.argv[1:])
    points = []                                                    # (curve, T, H, chunk, head)
    for head in HEADS:
        points += [('T', T, SWEEP_H, a.chunk, head) for T in T_CURVE]
        points += [('H', SWEEP_T, H, a.chunk, head) for H in H_CURVE]
        points += [('chunk', CHUNK_T, SWEEP_H, c, head) for c in CHUNK_CURVE]
    if a.tiny: points = [(c, max(T // 16, 8), max(H // 16, 8), max(ch // 16, 2), hd) for c, T, H, ch, hd in points]
    runs, rows = {}, []                                            # runs[(variant, name, T, H, chunk, head)]
    def measure(variant, name, T, H, chunk, head):
        key = (variant, name, T, H, chunk if variant == 'chunked' else 0, head)
        if key not in runs:
            r = run_point(a, variant, name, T, H, chunk, head)
            if isinstance(r, int): raise SystemExit(r)
            runs[key] = r
            print(f"[{time.time() - t_start:5.0f}s] {name} {head:9} {variant:7} T={T:5} H={H:4} chunk={chunk:3}: "
                  f"peak RSS growth {r['growth_mb']:7.0f} MB, time {r['time_s']:6.2f} s", flush=True)
        return runs[key]
    def naive_estimate(name, T, H, head):
        done = sorted((k[2], r['growth_mb']) for k, r in runs.items() if k[0] == 'naive' and k[1] == name and k[3] == H
                      and k[5] == head and k[2] < T)
        if not done: return None, None
        T0, g0 = done[-1]
        return g0 * T / T0, g0 / mb(T0)                            # linear in T through the origin: an upper bound
    for name in a.divs:
        for curve, T, H, chunk, head in points:
            c = measure('chunked', name, T, H, chunk, head)
            est, k = naive_estimate(name, T, H, head)
            limit = min(a.max_naive_gb * 1024, _available_mb() - 3 * 1024)
            row = dict(curve=curve, name=name, T=T, H=H, chunk=chunk, head=head, chunked_mb=c['growth_mb'], chunked_s=c['time_s'],
                       chunk_buffer_mb=chunk * a.vocab * 4 / 2**20, head_grad_mb=a.vocab * H * 4 / 2**20 if head == 'trainable' else 0.0,
                       tv_mb=mb(T), clean=c['clean_baseline'])
            if est is not None and est > limit:
                row.update(naive_run=False, naive_mb=est, naive_buffers=k, naive_s=None, time_ratio=None, mem_ratio=c['growth_mb'] / est,
                           naive_note=f"not run: would need ≈ {est / 1024:.1f} GB ({k:.1f} × [T,V] at the largest smaller T), "
                                      f"over the limit of {limit / 1024:.1f} GB")
            else:
                n = measure('naive', name, T, H, chunk, head)
                row.update(naive_run=True, naive_mb=n['growth_mb'], naive_buffers=n['growth_mb'] / mb(T), naive_s=n['time_s'],
                           mem_ratio=c['growth_mb'] / n['growth_mb'], time_ratio=c['time_s'] / n['time_s'],
                           loss_rel_diff=rel(c, n, 'loss'), grad_h_norm_rel_diff=rel(c, n, 'grad_h_norm'),
                           grad_w_norm_rel_diff=rel(c, n, 'grad_w_norm'), clean=c['clean_baseline'] and n['clean_baseline'])
            row['mem_goal_met'] = row['mem_ratio'] <= GOAL_MEM
            rows.append(row)
            _write_sweep(a, rows, runs, t_start, load_start, cmd, torch, partial=True)
    _write_sweep(a, rows, runs, t_start, load_start, cmd, torch, partial=False)
    return 0

def _fmt_ratio(r):
    return f"**{r['mem_ratio']:.3f}**" if r['naive_run'] else f"≈ {r['mem_ratio']:.3f} (estimate)"

def _write_sweep(a, rows, runs, t_start, load_start, cmd, torch, partial):
    "Write OUT.md, OUT.json (and, once complete, OUT.png) of the sweep so far."
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                   torch_threads=a.threads, load_avg_start=load_start, load_avg_end=os.getloadavg(), niceness=os.nice(0),
                   psutil=_has_psutil())
    setup = dict(mode='sweep', T_curve=T_CURVE, H_curve=H_CURVE, chunk_curve=CHUNK_CURVE, vocab=a.vocab, chunk=a.chunk,
                 reps=a.reps, divs=a.divs, max_naive_gb=a.max_naive_gb, tiny=a.tiny, dtype='float32', wall_s=time.time() - t_start,
                 complete=not partial, command=cmd, date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), **_commit())
    _render(a, rows, runs, setup, machine)

def render(a):
    "Rewrite OUT.md and OUT.png from OUT.json of an earlier sweep (no measurement)."
    src = Path(a.out + '.json')
    j = json.loads(src.read_text()) if src.exists() else {}
    if j.get('setup', {}).get('mode') != 'sweep':
        print(f"kd_memory: {src} {'is not the result of --sweep' if j else 'does not exist'}", file=sys.stderr); return 2
    st = j['setup']
    for k in ('vocab', 'chunk', 'reps', 'max_naive_gb', 'tiny'): setattr(a, k, st.get(k, getattr(a, k)))
    a.divs, a.threads = tuple(st['divs']), j['machine']['torch_threads']
    runs = {tuple(int(x) if x.isdigit() else x for x in k.split('/')): r for k, r in j['runs'].items()}
    _render(a, j['rows'], runs, st, j['machine'])
    return 0

def _render(a, rows, runs, setup, machine):
    partial, cmd, load_start, load_end = not setup['complete'], setup['command'], machine['load_avg_start'], machine['load_avg_end']
    V = a.vocab
    L = [f"# KD loss memory: chunked vs naive, as a function of T, H and chunk size (CPU){' (TINY smoke run: numbers are meaningless)' if a.tiny else ''}"
         + (' — PARTIAL (sweep still running or stopped)' if partial else ''), '',
         f"Command: `{cmd}` at commit {setup['commit']}{' (with uncommitted changes)' if setup['dirty'] else ''}, {setup['date']}; "
         f"wall time {setup['wall_s'] / 60:.1f} min.", '',
         f"V = {V:,}, fp32, forward + backward; the student's hidden states always get a gradient, the student's LM head "
         f"[V, H] either also (**trainable**) or not (**frozen**, `requires_grad_(False)`: the LoRA case). Each variant in a "
         f"fresh process; memory = peak RSS (ru_maxrss) minus the RSS once the inputs exist; time = "
         f"{'median of ' + str(a.reps - 1) + ' repetition(s) after a warm-up' if a.reps > 1 else 'one run (no warm-up)'}. "
         f"Goal: memory ratio (chunked / naive) <= {GOAL_MEM}. One `[T, V]` fp32 tensor = {T_CURVE[2] * V * 4 / 2**20:.0f} MB "
         f"at T = 1,024; one `[chunk, V]` buffer = {a.chunk * V * 4 / 2**20:.0f} MB at chunk = {a.chunk}; the head's "
         f"gradient `[V, H]` = {V * 256 * 4 / 2**20:.0f} MB at H = 256, {V * 1536 * 4 / 2**20:.0f} MB at H = 1,536.", '']
    head_txt = {'trainable': 'trainable head', 'frozen': 'frozen head'}
    L += ['## Where the memory goal (ratio <= 0.10) holds', '', '(est.: the naive loss was not run there; the ratio is against its extrapolated peak.)', '']
    for name in a.divs:
        for head in HEADS:
            for curve in ('T', 'H', 'chunk'):
                sel = [r for r in rows if r['name'] == name and r['head'] == head and r['curve'] == curve]
                if not sel: continue
                var = {'T': 'T', 'H': 'H', 'chunk': 'chunk'}[curve]
                yes = [f"{r[var]:,}{'' if r['naive_run'] else ' (est.)'}" for r in sel if r['mem_goal_met']]
                no = [f"{r[var]:,} ({r['mem_ratio']:.2f}{'' if r['naive_run'] else ', est.'})" for r in sel if not r['mem_goal_met']]
                L.append(f"- {name}, {head_txt[head]}, {title_of(curve, a)}: holds at {var} = {', '.join(yes) or 'none'}; "
                         f"not at {var} = {', '.join(no) or 'none'}.")
    L.append('')
    if 'jsd' not in a.divs:
        L += ['jsd (beta = 0.5) is not in this sweep (time); `--divs fkl,jsd` adds it.', '']
    for curve, title in (('T', f'T-curve (H = {SWEEP_H}, chunk = {a.chunk})'), ('H', f'H-curve (T = {SWEEP_T:,}, chunk = {a.chunk})'),
                         ('chunk', f'Chunk-size curve (T = {CHUNK_T}, H = {SWEEP_H}; naive from the T-curve)')):
        sel = [r for r in rows if r['curve'] == curve]
        if not sel: continue
        L += [f'## {title}', '',
              '| div | head | T | H | chunk | naive peak growth | chunked peak growth | memory ratio | <= 0.10 | naive time | chunked time | time ratio |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
        for r in sel:
            naive = (f"{r['naive_mb']:,.0f} MB (= {r['naive_buffers']:.1f} `[T,V]`)" if r['naive_run'] else
                     f"not run: ≈ {r['naive_mb'] / 1024:.1f} GB est. ({r['naive_buffers']:.1f} × `[T,V]`)")
            L.append(f"| {r['name']} | {r['head']} | {r['T']:,} | {r['H']:,} | {r['chunk']} | {naive} | {r['chunked_mb']:,.0f} MB "
                     f"(= {r['chunked_mb'] / r['chunk_buffer_mb']:.1f} `[chunk,V]`) | {_fmt_ratio(r)} | "
                     f"{'yes' if r['mem_goal_met'] else 'no'}{'' if r['naive_run'] else ' (est.)'} | "
                     f"{'—' if r['naive_s'] is None else '%.2f s' % r['naive_s']} | {r['chunked_s']:.2f} s | "
                     f"{'—' if r['time_ratio'] is None else '%.2f' % r['time_ratio']} |")
        L.append('')
    ex = _explain(a, rows)
    if ex: L += ['## Reading the curves', ''] + ex + ['']
    agree = [x for r in rows for x in (r.get('loss_rel_diff'), r.get('grad_h_norm_rel_diff'), r.get('grad_w_norm_rel_diff')) if x is not None]
    L += ['', f"Chunked and naive agree on the loss and the gradient norms to {max(agree):.1e} (relative) wherever both ran. "
          f"Peak RSS before the loss ran was at the baseline in every process: "
          f"{'yes' if all(r['clean_baseline'] for r in runs.values()) else 'NO (memory numbers unreliable)'}.", '',
          f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, torch {machine['torch']}, "
          f"{a.threads} torch thread(s), niceness {machine['niceness']}. Load average (1/5/15 min) at start "
          f"{'/'.join(f'{x:.2f}' for x in load_start)}, at end {'/'.join(f'{x:.2f}' for x in load_end)}. The machine may be "
          f"shared with other work: absolute times are then inflated and noisy; memory is unaffected by load.", '']
    slow = list({(r['head'], r['T'], r['H'], r['chunk']): r for r in rows
                 if r.get('time_ratio') is not None and r['time_ratio'] > GOAL_TIME}.values())
    if slow:
        L += [f"Times are single repetitions after a warm-up on a loaded machine, so the time ratios are indicative only. Where "
              f"the chunked loss measured slower than the naive one (time ratio > {GOAL_TIME}): " + ', '.join(
                  f"{r['head']} head T = {r['T']:,}, H = {r['H']:,}, chunk = {r['chunk']} ({r['time_ratio']:.2f})" for r in slow)
              + "; a quieter run with more repetitions is needed before reading these as a regression.", '']
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    if not partial and _plot(a, rows, out.with_suffix('.png') if out.suffix == '' else Path(str(out) + '.png')):
        L += [f'![memory vs T and H]({Path(a.out).name}.png)', '']
    write_report(a, L + [''], dict(setup=setup, machine=machine, goals=dict(mem_ratio_max=GOAL_MEM), rows=rows,
                                   runs={'/'.join(map(str, k)): r for k, r in runs.items()}))

def _fit(xs, ys):
    "Least-squares line y = a + b x."
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b

def _explain(a, rows):
    "Plain sentences that explain the curves in terms of [T, V], [chunk, V] and [V, H] buffers (from the measured rows)."
    L, V = [], a.vocab
    for name in a.divs:
        T_rows = {hd: [r for r in rows if r['curve'] == 'T' and r['name'] == name and r['head'] == hd] for hd in HEADS}
        if not all(T_rows.values()): continue
        buf = T_rows['frozen'][0]['chunk_buffer_mb']
        F = {hd: statistics.median(r['chunked_mb'] for r in rs) for hd, rs in T_rows.items()}
        rng = {hd: (min(r['chunked_mb'] for r in rs), max(r['chunked_mb'] for r in rs), rs[0]['T'], rs[-1]['T']) for hd, rs in T_rows.items()}
        gw = T_rows['trainable'][0]['head_grad_mb']
        L.append(f"- **Chunked memory is a fixed cost, flat in T** ({name}, H = {SWEEP_H}, chunk = {a.chunk}): "
                 + '; '.join(f"{lo:,.0f}–{hi:,.0f} MB over T = {t0:,}…{t1:,} with a {hd} head" for hd, (lo, hi, t0, t1) in rng.items())
                 + f". With the frozen head it is ≈ {F['frozen'] / buf:.1f} `[chunk, V]` fp32 buffers of {buf:.0f} MB"
                 + (" (in `divergences._kd_pass` with fkl: the chunk's teacher and student log-probs, two `[chunk, V]` tensors, the "
                    "gradient w.r.t. the logits overwriting the student's, plus a `[2, 8, V]` row-reduction scratch of "
                    f"{2 * 8 * V * 4 / 2**20:.0f} MB)" if name == 'fkl' else '')
                 + f"; the trainable head adds {F['trainable'] - F['frozen']:,.0f} MB, i.e. the head's fp32 gradient `[V, H]` ({gw:.0f} MB at H = {SWEEP_H}) "
                 f"that the chunked loss accumulates.")
        fits = {}
        for hd, rs in T_rows.items():
            ms = [r for r in rs if r['naive_run']]
            if len(ms) < 2: continue
            a0, b = _fit([r['T'] for r in ms], [r['naive_mb'] for r in ms])
            fits[hd] = (a0, b, b / (V * 4 / 2**20), ms)
        if fits:
            L.append("- **Naive memory grows linearly in T**: " + '; '.join(
                f"{hd} head ≈ {a0:,.0f} MB + {k:.1f} × `[T, V]` (fit over the measured T = {', '.join(format(r['T'], ',') for r in ms)})"
                for hd, (a0, b, k, ms) in fits.items())
                + ". So the ratio falls like 1/T: ratio(T) ≈ F / (a + k · T · V · 4 B), F being the chunked fixed cost, and "
                "the goal ratio <= 0.10 needs T >= (10 F − a) / (k · V · 4 B): "
                + '; '.join(f"T >= {(10 * F[hd] - a0) / b:,.0f} with a {hd} head" for hd, (a0, b, k, ms) in fits.items())
                + f" (H = {SWEEP_H}, chunk = {a.chunk}).")
        C_rows = [r for r in rows if r['curve'] in ('chunk', 'T') and r['name'] == name and r['T'] == CHUNK_T and r['H'] == SWEEP_H]
        if fits and any(r['curve'] == 'chunk' for r in C_rows):
            parts = []
            for hd in HEADS:
                cs = sorted((r for r in C_rows if r['head'] == hd and hd in fits), key=lambda r: r['chunk'])
                if not cs: continue
                a0, b, k, _ = fits[hd]
                parts.append(f"{hd} head: " + ', '.join(f"chunk {r['chunk']} → {r['chunked_mb']:,.0f} MB, ratio {r['mem_ratio']:.3f}, "
                                                       f"time {r['chunked_s']:.2f} s, goal from T ≈ {max((10 * r['chunked_mb'] - a0) / b, 0):,.0f}"
                                                       for r in cs))
            L.append(f"- **The chunk size sets the fixed cost** (T = {CHUNK_T}, H = {SWEEP_H}): " + '; '.join(parts)
                     + ". The `[chunk, V]` buffers shrink with the chunk; the `[V, H]` head gradient (trainable) does not, "
                     "so a smaller chunk moves the goal to smaller T (the times show what it costs)." + _floor(C_rows))
        H_rows = [r for r in rows if r['curve'] == 'H' and r['name'] == name]
        if H_rows:
            L.append(f"- **H** (T = {SWEEP_T:,}): " + '; '.join(
                f"{hd} head: " + ', '.join(f"H = {r['H']:,} → chunked {r['chunked_mb']:,.0f} MB / naive "
                                           f"{r['naive_mb']:,.0f} MB{'' if r['naive_run'] else ' (est.)'} = {r['mem_ratio']:.3f}"
                                           for r in H_rows if r['head'] == hd) for hd in HEADS
                if any(r['head'] == hd for r in H_rows))
                + '. ' + _h_reading(rows, H_rows, V))
    return L

def _floor(C_rows):
    "A sentence on the frozen head's growth at the two smallest chunks, where it stops following the [chunk, V] buffers."
    fr = sorted((r for r in C_rows if r['head'] == 'frozen'), key=lambda r: r['chunk'])
    if len(fr) < 2 or fr[1]['chunked_mb'] > 1.1 * fr[0]['chunked_mb']: return ''
    return (f" With a frozen head the growth stops falling from chunk {fr[1]['chunk']} to {fr[0]['chunk']}: {fr[0]['chunked_mb']:,.0f} MB at "
            f"chunk {fr[0]['chunk']}, {fr[1]['chunked_mb']:,.0f} MB at chunk {fr[1]['chunk']}, while two `[chunk, V]` tensors "
            f"and the scratch come to {2 * fr[0]['chunk_buffer_mb'] + 2 * 8 * fr[0]['chunk_buffer_mb'] / fr[0]['chunk']:,.0f} MB "
            f"at chunk {fr[0]['chunk']}: a floor of other origin (not investigated; glibc keeps buffers under its mmap threshold "
            "of up to 32 MB on the heap, which is one candidate), so at T = 256 the frozen ratio stays just above 0.10.")

def _h_reading(rows, H_rows, V):
    "How the head's gradient [V, H] enters each variant's peak, from the lowest and highest H measured (trainable head)."
    tr = sorted((r for r in H_rows if r['head'] == 'trainable' and r['naive_run']), key=lambda r: r['H'])
    fr = [r['mem_ratio'] for r in H_rows if r['head'] == 'frozen']
    if len(tr) < 2: return ''
    lo, hi = tr[0], tr[-1]
    dg = (hi['H'] - lo['H']) * V * 4 / 2**20
    return (f"The `[T, V]` and `[chunk, V]` buffers do not depend on H; the head's fp32 gradient `[V, H]` does, growing by "
            f"{dg:,.0f} MB from H = {lo['H']:,} to {hi['H']:,}. With a trainable head the chunked peak grows by "
            f"{hi['chunked_mb'] - lo['chunked_mb']:,.0f} MB over that range, the naive peak by {hi['naive_mb'] - lo['naive_mb']:,.0f} MB: "
            "the chunked loss allocates the head's gradient (zeros, fp32) before its first chunk and holds it through the pass; "
            "the naive loss's peak is set while its [T, V] buffers are alive, and its head gradient evidently lands in memory "
            "freed by then, so it barely raises that peak. The trainable ratio therefore rises with H "
            f"({lo['mem_ratio']:.3f} → {hi['mem_ratio']:.3f}). Since the chunked peak is flat in T and the naive one "
            "proportional to T, the goal holds from T ≈ 10 × chunked × T / naive: "
            + ', '.join(f"T ≈ {10 * r['chunked_mb'] * r['T'] / r['naive_mb']:,.0f} at H = {r['H']:,}" for r in tr)
            + " (trainable head, chunk = " + str(tr[0]['chunk']) + "). "
            + (f"The frozen head has no such term: its ratio stays at {min(fr):.3f}–{max(fr):.3f}." if fr else ''))

def title_of(curve, a):
    return {'T': f'H = {SWEEP_H}', 'H': f'T = {SWEEP_T:,}', 'chunk': f'T = {CHUNK_T}, H = {SWEEP_H}'}[curve]

def _plot(a, rows, path):
    "Memory and ratio against T (and H): a small png; False where matplotlib is missing."
    try:
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, matplotlib.ticker
    except ImportError: return False
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for head, col in zip(HEADS, ('C0', 'C1')):
        for name in a.divs[:1]:
            for j, (curve, x) in enumerate((('T', 'T'), ('H', 'H'))):
                sel = [r for r in rows if r['curve'] == curve and r['head'] == head and r['name'] == name]
                if not sel: continue
                xs = [r[x] for r in sel]
                if j == 0:
                    ax[0].plot(xs, [r['chunked_mb'] for r in sel], 'o-', color=col, label=f'chunked, {head}')
                    run = [r for r in sel if r['naive_run']]; est = [r for r in sel if not r['naive_run']]
                    ax[0].plot([r['T'] for r in run], [r['naive_mb'] for r in run], 's--', color=col, label=f'naive, {head}')
                    if est: ax[0].plot([run[-1]['T']] + [r['T'] for r in est], [run[-1]['naive_mb']] + [r['naive_mb'] for r in est],
                                       ':', color=col, marker='x', label=f'naive (estimate), {head}')
                ax[j + 1].plot(xs, [r['mem_ratio'] for r in sel], 'o-', color=col, label=head)
                ex = [r for r in sel if not r['naive_run']]
                if ex: ax[j + 1].plot([r[x] for r in ex], [r['mem_ratio'] for r in ex], 'x', color='k', ms=9)
    ax[0].set(xscale='log', yscale='log', xlabel='T (tokens)', ylabel='peak RSS growth (MB)', title=f'memory vs T (H = {SWEEP_H})')
    ax[1].set(xscale='log', yscale='log', xlabel='T (tokens)', ylabel='chunked / naive memory', title='memory ratio vs T (x: naive estimated)')
    ax[2].set(xlabel='H', ylabel='chunked / naive memory', title=f'memory ratio vs H (T = {SWEEP_T:,})')
    for x in ax[1:]: x.axhline(GOAL_MEM, color='r', lw=0.8, ls='--', label='goal 0.10')
    for x in ax: x.legend(fontsize=7); x.grid(alpha=0.3)
    for x in ax[:2]:
        x.set_xticks(T_CURVE, [str(t) for t in T_CURVE]); x.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout(); fig.savefig(path, dpi=90); plt.close(fig)
    return True

def _has_psutil():
    try: import psutil; return psutil.__version__
    except ImportError: return None

if __name__ == '__main__': sys.exit(main())
