"""Peak memory and time of a token-level KD loss, forward + backward, on CPU at Qwen's vocabulary:
`chunked_kd_loss` (never builds [T, V]) against `naive_kd_loss` (full [T, V] logits, plain autograd).

    nice -n 19 python benchmarks/kd_memory.py [--tokens 1024 --hidden 256 --vocab 151936 --chunk 128 --threads 1 --reps 4]

Method (perf_anchors.md §5.3): student hidden states [T, H] and LM head [V, H] (both trainable), teacher hidden
states [T, H] and head [V, H], fp32; loss = forward KL and generalized JSD (beta = 0.5), backward into the student's
hidden states and head. Each variant runs in a fresh process; memory = peak RSS (ru_maxrss) minus the RSS once the
inputs exist; time = median wall time of the repetitions after the first (warm-up). Both variants run side by side
in one invocation, so the ratios stay meaningful on a loaded machine; the absolute times do not.
Goals: memory ratio <= 0.10 and time ratio <= 1.0. Writes benchmarks/results/kd_memory.{md,json}.
"""
import json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args
from pathlib import Path

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
    W = torch.randn(V, H, generator=g).mul_(2 / H ** 0.5).requires_grad_()    # logits with std ~2
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
                          grad_w_norm=float(W.grad.norm()), grad_h_norm=float(h.grad.norm()))))

def cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor()

def main():
    ap = bench_parser('kd_memory', __doc__, groups=('run',), threads=1)
    ap.add_argument('--tokens', type=int, default=1024); ap.add_argument('--hidden', type=int, default=256)
    ap.add_argument('--vocab', type=int, default=151936); ap.add_argument('--chunk', type=int, default=128)
    ap.add_argument('--reps', type=int, default=4)
    ap.add_argument('--child', nargs=2, metavar=('VARIANT', 'NAME'))
    a = parse_args(ap, tiny=dict(tokens=128, vocab=4096, reps=1))
    if a.child:
        a.variant, a.name = a.child
        return child(a)
    import torch
    load_start = os.getloadavg()
    res, t_start = {}, time.time()
    for name, _ in DIVS:
        for variant in ('naive', 'chunked'):
            cmd = [sys.executable, __file__, '--child', variant, name] + [f'--{k}={getattr(a, k)}' for k in
                                                                          ('tokens', 'hidden', 'vocab', 'chunk', 'threads', 'reps')]
            p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)})
            if p.returncode: print(p.stdout, p.stderr[-3000:]); return p.returncode
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r['time_s'] = statistics.median(r['times_s'][1:] or r['times_s'])
            # the peak must come from the loss, not from an earlier transient (which would hide the loss's own peak)
            r['clean_baseline'] = r['maxrss_before_mb'] <= r['base_mb'] + 0.05 * r['growth_mb']
            res[variant, name] = r
            print(f"{name:4} {variant:8} peak RSS growth {r['growth_mb']:8.0f} MB   time {r['time_s']:6.2f} s", flush=True)
    load_end = os.getloadavg()
    row_mb = a.tokens * a.vocab * 4 / 2**20
    summary = {}
    for name, _ in DIVS:
        n, c = res['naive', name], res['chunked', name]
        mem, tim = c['growth_mb'] / n['growth_mb'], c['time_s'] / n['time_s']
        summary[name] = dict(naive_mb=n['growth_mb'], chunked_mb=c['growth_mb'], naive_buffers=n['growth_mb'] / row_mb,
                             naive_s=n['time_s'], chunked_s=c['time_s'], mem_ratio=mem, time_ratio=tim,
                             loss_rel_diff=abs(c['loss'] - n['loss']) / abs(n['loss']),
                             mem_goal_met=mem <= GOAL_MEM, time_goal_met=tim <= GOAL_TIME,
                             grad_w_norm_rel_diff=abs(c['grad_w_norm'] - n['grad_w_norm']) / n['grad_w_norm'],
                             grad_h_norm_rel_diff=abs(c['grad_h_norm'] - n['grad_h_norm']) / n['grad_h_norm'])
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                   torch_threads=a.threads, load_avg_start=load_start, load_avg_end=load_end,
                   niceness=os.nice(0), psutil=_has_psutil())
    setup = dict(tokens=a.tokens, hidden=a.hidden, vocab=a.vocab, chunk=a.chunk, reps=a.reps, dtype='float32',
                 wall_s=time.time() - t_start)
    goals = dict(mem_ratio_max=GOAL_MEM, time_ratio_max=GOAL_TIME)
    met = all(s['mem_goal_met'] and s['time_goal_met'] for s in summary.values())
    clean = all(r['clean_baseline'] for r in res.values())
    lines = ['# KD loss memory: chunked vs naive (CPU)', '',
             f"T = {a.tokens:,} tokens, H = {a.hidden}, V = {a.vocab:,}, chunk = {a.chunk}, fp32, forward + backward into the "
             f"student's hidden states and LM head; each variant in a fresh process; memory = peak RSS (ru_maxrss) minus RSS "
             f"once the inputs exist; time = median of {a.reps - 1} repetitions after a warm-up. One `[T, V]` fp32 tensor = "
             f"{row_mb:.0f} MB.", '',
             '| divergence | naive peak growth | chunked peak growth | memory ratio | naive time | chunked time | time ratio | goals (mem <= 0.10, time <= 1.0) |',
             '|---|---|---|---|---|---|---|---|']
    for name, s in summary.items():
        lines.append(f"| {name}{' (beta=0.5)' if name == 'jsd' else ''} | {s['naive_mb']:,.0f} MB (= {s['naive_buffers']:.1f} `[T,V]`) "
                     f"| {s['chunked_mb']:,.0f} MB | **{s['mem_ratio']:.3f}** | {s['naive_s']:.2f} s | {s['chunked_s']:.2f} s "
                     f"| **{s['time_ratio']:.2f}** | memory {'met' if s['mem_goal_met'] else 'NOT met'}, time "
                     f"{'met' if s['time_goal_met'] else 'NOT met'} |")
    agree = max(max(s['loss_rel_diff'], s['grad_w_norm_rel_diff'], s['grad_h_norm_rel_diff']) for s in summary.values())
    lines += ['', f"All goals met: **{'yes' if met else 'no'}**. Chunked and naive agree on the loss and on the gradient "
              f"norms to {agree:.1e} (relative). Peak RSS before the loss ran was at the baseline in every process: "
              f"{'yes' if clean else 'NO (memory numbers unreliable)'}.", '',
              f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, torch {machine['torch']}, "
              f"{a.threads} torch thread(s), niceness {machine['niceness']}. Load average (1/5/15 min) at start "
              f"{'/'.join(f'{x:.2f}' for x in load_start)}, at end {'/'.join(f'{x:.2f}' for x in load_end)}.", '',
              'The machine may be shared with other work (see the load average): absolute times are then inflated and '
              'noisy, but both variants ran in the same invocation, one after the other, so the ratios remain meaningful; '
              'memory is unaffected by load.']
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.md').write_text('\n'.join(lines) + '\n')
    Path(a.out + '.json').write_text(json.dumps(dict(setup=setup, machine=machine, goals=goals, all_goals_met=met, clean_baselines=clean,
                                                     summary=summary, runs={f'{v}/{n}': r for (v, n), r in res.items()}),
                                                indent=1) + '\n')
    print('\n'.join(lines))
    return 0 if met else 1

def _has_psutil():
    try: import psutil; return psutil.__version__
    except ImportError: return None

if __name__ == '__main__': sys.exit(main())
