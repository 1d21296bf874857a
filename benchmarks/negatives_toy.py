"""Learning from wrong teacher traces on the toy world: continued SFT vs REDI (alpha 0.5 / 0.8 / 1.0) vs DPO vs SimPO
vs QCRD, all from the same stage-1 SFT adapter with the same stage-2 budget, over seeds; pass@k against the SFT start;
and the alpha = 1 collapse check at a high learning rate.

    nice -n 10 python benchmarks/negatives_toy.py [--seeds 3] [--train-per-level 40] [--samples 4] [--sft-steps 200]
                                                  [--steps 60] [--lr 6e-3] [--lr2 1e-3] [--lr-high 1e-2]
                                                  [--work runs/negatives_toy] [--out benchmarks/results/negatives_toy]
    python benchmarks/negatives_toy.py --tiny --work /tmp/neg --out /tmp/neg/res     # smoke run (numbers meaningless)

Protocol (resumable: every stage skips what `--work` already holds).
1. Data. The shipped toy teacher samples `--samples` traces (T = 1) for `--train-per-level` training problems per level
   (levels 1-8). Positives (verified correct, at most `--per-problem` per problem) are the stage-1 SFT data and the
   continued-SFT data; `methods.redi.preference_pairs` builds one (chosen, rejected) pair per problem where the teacher was both
   right and wrong; QCRD reads all samples (self-consistency). `--probe-per-level` dev problems give held-out pairs
   whose per-token chosen / rejected log-probs are probed during every stage-2 run.
2. Stage 1, per seed: QLoRA student (toy:student, NF4, LoRA r 16) SFT on the positives, `--sft-steps` x `--batch-size`
   at `--lr` (cosine). This adapter is `sft-start`, the start of every stage-2 run.
3. Stage 2, per seed, `--steps` steps at `--lr2` for every method, each trained through the registry exactly as
   `reasondistill train --method M --set sft_adapter=<sft-start> ...` would (`sft` with the stage-2 callbacks for
   continued SFT; the two-stage entries of redi, dpo, simpo and qcrd, which skip stage 1); a step holds `--batch-size` examples (pairs for
   REDI/DPO/SimPO, positives for continued SFT, `--batch-size`/2 problems with all their positives/negatives for QCRD):
   `sft-cont` (train_sft on the positives), `redi-a0.5`, `redi-a0.8`, `redi-a1.0`, `dpo` (TRL DPOTrainer, beta 0.1),
   `simpo` (TRL CPOTrainer loss_type='simpo', beta 2, gamma 1), `qcrd` (2 rounds, student negatives at T 1.5).
   Collapse check: `redi-a0.8-hi`, `redi-a1.0-hi` at `--lr-high`. QCRD ablations: `qcrd-nodisc` (every quality weight
   1) and `qcrd-pos` (no negatives: only the closest-self-consistent-positive term).
4. Evaluation: `compare.evaluate_adapter`, `--eval-samples` samples (T = 1) per test problem, `--eval-per-level` problems
   at levels `--eval-levels`: accuracy (avg@n) overall and by level, pass@k for k = 1, 2, 4, ...
5. Aggregation over seeds (95% Student t), seed-paired differences against `sft-cont` (accuracy) and against
   `sft-start` (pass@k: does a method narrow pass@k?), and the probe curves (mean over seeds).
Writes `--out`.json, `--out`.md, `--out`_by_level.png, `--out`_pass_at_k.png, `--out`_logps.png.
"""
import os, platform, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note

STAGE2 = ('sft-cont', 'redi-a0.5', 'redi-a0.8', 'redi-a1.0', 'dpo', 'simpo', 'qcrd', 'redi-a0.8-hi', 'redi-a1.0-hi',
          'qcrd-nodisc', 'qcrd-pos')
METHODS = ('sft-start',) + STAGE2

def parse(argv=None):
    ap = bench_parser('negatives_toy', __doc__, METHODS, groups=('run', 'work', 'seeds', 'methods', 'train', 'eval'),
                      seeds=3, batch_size=16, lr=6e-3, max_length=256, eval_per_level=25, eval_samples=4)
    ap.add_argument('--train-per-level', type=int, default=40, help='training problems per level (levels 1-8)')
    ap.add_argument('--samples', type=int, default=4, help='teacher samples per training problem (T = 1)')
    ap.add_argument('--per-problem', type=int, default=2, help='positives per problem (stage-1 and continued-SFT data)')
    ap.add_argument('--probe-per-level', type=int, default=4, help='dev problems per level whose pairs are the held-out probe')
    ap.add_argument('--sft-steps', type=int, default=200, help='stage-1 SFT steps')
    ap.add_argument('--steps', type=int, default=60, help='stage-2 steps of every method')
    ap.add_argument('--lr2', type=float, default=1e-3, help='stage-2 learning rate')
    ap.add_argument('--lr-high', type=float, default=1e-2, help='stage-2 learning rate of the -hi (collapse check) runs')
    ap.add_argument('--probe-every', type=int, default=5, help='stage-2 steps between probes')
    ap.add_argument('--note', default='', help='a sentence printed under the report title')
    return parse_args(ap, argv, tiny=dict(seeds=1, train_per_level=2, samples=2, probe_per_level=2, sft_steps=2, steps=2,
                                          batch_size=4, eval_levels='2,8', eval_per_level=2, eval_samples=2,
                                          max_new_tokens=96, probe_every=1), known=METHODS)

def data(a, work, log):
    "Teacher traces on training and probe (dev) problems -> dict(traces, problems, positives, pairs, probe pairs, stats)."
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.toyworld import toy_problems, LEVELS
    from reasondistill.traces import generate_traces
    from reasondistill.tracestore import TraceStore
    from reasondistill.rollout import SamplingParams
    from reasondistill.traces import sft_examples
    from reasondistill.methods.redi import preference_pairs
    teacher, ttok = load_model('toy:teacher')
    stok = load_tokenizer('toy:student')
    d = {}
    for name, split, n in (('train', 'train', a.train_per_level), ('probe', 'dev', a.probe_per_level)):
        probs = toy_problems(n, LEVELS, split=split)
        t0 = time.perf_counter()
        generate_traces(probs, teacher, ttok, work / f'traces-{name}', n_samples=a.samples,
                        params=SamplingParams(temperature=1.0, max_new_tokens=a.max_new_tokens, seed=0), model_name='toy:teacher')
        with TraceStore(work / f'traces-{name}', readonly=True) as st: traces = list(st)
        pairs, pst = preference_pairs(traces, probs, stok)
        d[name] = dict(problems=probs, traces=traces, pairs=pairs, pair_stats=pst, seconds=time.perf_counter() - t0)
        if name == 'train':
            d['positives'], d['positive_stats'] = sft_examples(traces, probs, stok, per_problem=a.per_problem)
        wrong = sum(t.verdict != 'correct' for t in traces)
        log(f"{name}: {len(traces)} teacher traces on {len(probs)} problems, {wrong} not correct "
            f"({100 * wrong / max(len(traces), 1):.1f}%); {pst['pairs']} pairs; dropped problems {pst['problems_dropped_by_reason']}")
    return d

def train_stage1(a, seed, d, work):
    "`sft-start`: the registry's `sft` on the positives."
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.registry import make_config, entry_point
    cfg = make_config('sft')
    cfg.train = TrainConfig(lr=a.lr, max_steps=a.sft_steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                            save_steps=max(50, a.sft_steps), seed=seed)
    run = Run(str(work / f'seed{seed}' / 'sft-start' / 'train'), default_student_spec())
    return entry_point('sft')(d['positives'], run, cfg, method='sft')

def arm(method:str) -> tuple:
    "(registry method, config overrides) of a stage-2 arm."
    if method == 'sft-cont': return 'sft', {}
    if method.startswith('redi'): return 'redi', {'alpha': float(method.split('-a')[1].split('-')[0])}
    if method in ('dpo', 'simpo'): return method, {}
    if method == 'qcrd-nodisc': return 'qcrd', {'discriminator': False}                      # every quality weight 1
    if method == 'qcrd-pos': return 'qcrd', {'discriminator': False, 'w_neg': 0.0, 'n_student': 0}   # no negatives at all
    if method == 'qcrd': return 'qcrd', {}
    raise ValueError(method)

def train_stage2(a, method, seed, d, adapter, work):
    "A stage-2 arm from the `sft-start` adapter, through the registry (the two-stage entries skip stage 1: `sft_adapter`)."
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.models import ModelSpec, load_tokenizer
    from reasondistill.traces import LabelledTraces
    from reasondistill.registry import make_config, entry_point
    from dataclasses import replace
    from reasondistill.methods.redi import stage2_callbacks, stage2_adapter_dtype
    lr = a.lr_high if method.endswith('-hi') else a.lr2
    tc = TrainConfig(lr=lr, max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=1,
                     save_steps=max(50, a.steps), seed=seed)
    out = str(work / f'seed{seed}' / method / 'train')
    name, sets = arm(method)
    probe = d['probe']['pairs']
    if name == 'sft':                              # continued SFT from the stage-1 adapter, with the stage-2 callbacks
        cfg = make_config('sft'); cfg.train = replace(tc, adapter_dtype=stage2_adapter_dtype(tc))   # fp32, as every stage-2 arm
        cbs = stage2_callbacks(load_tokenizer('toy:student'), probe, a.probe_every, a.max_length)
        return entry_point('sft')(d['positives'], Run(out, ModelSpec('toy:student', quant='4bit', adapter=adapter)), cfg,
                                  method=method, callbacks=cbs)
    sets = {**sets, 'probe_every': a.probe_every, 'sft_adapter': adapter, 'lr': lr, 'max_steps': a.steps}
    if name == 'qcrd': sets['max_new_tokens'] = a.max_new_tokens
    cfg = make_config(name, sets)
    cfg.train = tc                                 # stage 2 runs on these, with `lr` and `max_steps` as above
    data = LabelledTraces(d['train']['problems'], d['train']['traces'])
    return entry_point(name)(data, Run(out, default_student_spec()), cfg, method=method, probe=probe)['stage2']

def curves_of(run_dir):
    "Probe and training curves of one stage-2 run (QCRD: its rounds concatenated)."
    from reasondistill.methods.redi import log_curves
    run_dir = Path(run_dir)
    if (run_dir / 'stage2').exists(): run_dir = run_dir / 'stage2'        # the two-stage methods' stage-2 run
    if (run_dir / 'train_log.json').exists(): return log_curves(run_dir)
    out, off = {}, 0
    for r in sorted(run_dir.glob('round*'), key=lambda p: int(p.name[5:])):
        c = log_curves(r)
        for k, vs in c.items(): out.setdefault(k, []).extend((s + off, v) for s, v in vs)
        off += max((s for vs in c.values() for s, _ in vs), default=0)
    return out

def main(argv=None):
    a = parse(argv)
    from reasondistill.core import read_json
    from reasondistill.toyworld import toy_problems
    from reasondistill.eval.compare import evaluate_adapter, save_result
    work, log = start(a)
    d = data(a, work, log)
    test_probs = toy_problems(a.eval_per_level, a.eval_levels, split='test')
    ks = tuple(k for k in (1, 2, 4, 8, 16, 32) if k <= a.eval_samples)
    runs = []
    for seed in range(a.seeds):
        for method in a.methods:
            mdir = work / f'seed{seed}' / method
            rfile = mdir / 'result.json'
            if rfile.exists(): runs.append(read_json(rfile)); continue
            t0 = time.perf_counter()
            s1 = train_stage1(a, seed, d, work)
            summ = s1 if method == 'sft-start' else train_stage2(a, method, seed, d, s1['final'], work)
            t_train = time.perf_counter() - t0 if method != 'sft-start' else s1.get('seconds', 0.0)
            t0 = time.perf_counter()
            ev = evaluate_adapter(summ['final'], test_probs, mdir / 'eval', n_samples=a.eval_samples, ks=ks,
                                  max_new_tokens=a.max_new_tokens, name=method)
            curves = {} if method == 'sft-start' else curves_of(mdir / 'train')
            flat = {f'pass_at_{k}': v for k, v in ev['pass_at_k'].items()}
            r = save_result(mdir, method=method, seed=seed, train_seconds=t_train, eval_seconds=time.perf_counter() - t0,
                            train_loss=summ.get('train_loss'), global_step=summ.get('global_step'), curves=curves, **flat, **ev)
            runs.append(r)
            pc = curves.get('probe/chosen_logps') or [(0, float('nan'))]; pr = curves.get('probe/rejected_logps') or [(0, float('nan'))]
            log(f"seed {seed} {method:13} acc {100 * r['accuracy']:5.1f}%  pass@{ks[-1]} {100 * ev['pass_at_k'][str(ks[-1])] if str(ks[-1]) in ev['pass_at_k'] else 100 * ev['pass_at_k'][ks[-1]]:5.1f}%  "
                f"probe logp chosen {pc[0][1]:.3f}->{pc[-1][1]:.3f} rejected {pr[0][1]:.3f}->{pr[-1][1]:.3f}  "
                f"(train {t_train:.0f}s, eval {r['eval_seconds']:.0f}s)")
    report(a, runs, d, ks, a.t_start, a.load_start)
    return 0

def _mean_curve(runs, method, key):
    "Mean over seeds of a curve at the steps every seed has."
    import numpy as np
    cs = [dict((int(s), v) for s, v in (r.get('curves') or {}).get(key, [])) for r in runs if r['method'] == method]
    cs = [c for c in cs if c]
    if not cs: return [], []
    steps = sorted(set.intersection(*(set(c) for c in cs)))
    return steps, [float(np.mean([c[s] for c in cs])) for s in steps]

def report(a, runs, d, ks, t_start, load0):
    import torch, numpy as np
    from reasondistill.core import write_json, library_versions, git_revision, package_dir
    from reasondistill.eval.compare import aggregate_results, paired_differences, results_markdown, plot_by_level, plot_pass_curves, format_ci, write_benchmark
    from reasondistill.eval.plots import new_figure
    metrics = ('accuracy', 'mean_tokens', 'truncation_rate') + tuple(f'pass_at_{k}' for k in ks)
    agg = aggregate_results(runs, metrics)
    base = 'sft-cont' if any(r['method'] == 'sft-cont' for r in runs) else runs[0]['method']
    diffs = paired_differences(runs, base, 'accuracy')
    start_diffs = {k: paired_differences(runs, 'sft-start', f'pass_at_{k}') for k in ks} if any(r['method'] == 'sft-start' for r in runs) else {}
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    plot_by_level(agg, path=str(out) + '_by_level.png', title=f'Toy world, learning from wrong traces: accuracy by level ({a.seeds} seeds)')
    plot_pass_curves(agg, path=str(out) + '_pass_at_k.png', title=f'pass@k, mean over {a.seeds} seeds')
    # probe curves: per-token log-probs of held-out chosen (solid) and rejected (dashed) completions
    fig, ax = new_figure(1, 2, figsize=(10, 3.6))
    groups = [(f'all methods at the main lr ({a.lr2})', [m for m in agg if m in STAGE2 and not m.endswith('-hi')]),
              (f'collapse check: lr {a.lr_high} (-hi) vs {a.lr2}', [m for m in agg if m.endswith('-hi')] + [m for m in ('redi-a0.8', 'redi-a1.0') if m in agg])]
    lr_of = lambda m: a.lr_high if m.endswith('-hi') else a.lr2
    curves_summary = {}
    for axi, (title, ms) in zip(ax[0], groups):
        for i, m in enumerate(ms):
            for key, ls in (('probe/chosen_logps', '-'), ('probe/rejected_logps', '--')):
                x, y = _mean_curve(runs, m, key)
                if x: axi.plot(x, y, ls, color=f'C{i}', label=f'{m} (lr {lr_of(m)})' if ls == '-' else None)
                if x: curves_summary.setdefault(m, {})[key] = dict(first=y[0], last=y[-1], min=min(y))
        axi.set_title(title); axi.set_xlabel('stage-2 step'); axi.set_ylabel('mean per-token log-prob (held-out pairs)')
        axi.grid(alpha=0.3); axi.legend(fontsize='x-small', frameon=False)
    fig.suptitle('solid: chosen (correct) completions, dashed: rejected (wrong) completions; mean over seeds')
    fig.tight_layout(); fig.savefig(str(out) + '_logps.png', dpi=120)
    # grad/update norms summary
    norms = {}
    for m in agg:
        for key in ('grad_norm', 'update_norm'):
            x, y = _mean_curve(runs, m, key)
            if y: norms.setdefault(m, {})[key] = dict(mean=float(np.mean(y)), max=float(np.max(y)), last=y[-1])
    pct = lambda c: format_ci(c, pct=True)
    load1 = os.getloadavg()
    tr, pr = d['train'], d['probe']
    lines = ['# Learning from wrong teacher traces on the toy world: REDI vs continued SFT, DPO, SimPO, QCRD' +
             tiny_note(a), '', *([a.note, ''] if a.note else []),
             f"Data: the toy teacher sampled {a.samples} traces (T = 1) for each of {len(tr['problems'])} training problems "
             f"({a.train_per_level} per level, levels 1-8): {sum(t.verdict == 'correct' for t in tr['traces'])} correct of "
             f"{len(tr['traces'])}. Positives (<= {a.per_problem} per problem): {d['positive_stats']['kept']}. Pairs (one negative "
             f"per problem, `redi.preference_pairs`): **{tr['pair_stats']['pairs']}** of {len(tr['problems'])} problems, by level "
             f"{tr['pair_stats']['pairs_by_level']}; problems dropped: {tr['pair_stats']['problems_dropped_by_reason']}; traces "
             f"dropped: {tr['pair_stats']['traces_dropped_by_reason']}; unused extra negatives: "
             f"{tr['pair_stats']['unused_negatives_one_per_problem']}. Held-out probe pairs (dev problems): {pr['pair_stats']['pairs']}.", '',
             f"Stage 1 (`sft-start`): QLoRA SFT on the positives, {a.sft_steps} steps x {a.batch_size}, lr {a.lr}. Stage 2 from "
             f"that adapter, every method {a.steps} steps x {a.batch_size} examples at lr {a.lr2} (the `-hi` runs at lr "
             f"{a.lr_high}). Test: {a.eval_per_level} problems per level at levels {', '.join(map(str, a.eval_levels))}, "
             f"{a.eval_samples} samples each (T = 1). Seeds: {a.seeds}; Δ columns are "
             "paired (pass@k: on seeds, Student-t).", '',
             results_markdown(agg, metrics=('accuracy', 'mean_tokens', 'truncation_rate'), diffs=diffs, baseline=base, note=True), '',
             '## pass@k', '', '| method | ' + ' | '.join(f'pass@{k}' for k in ks) + ' | ' +
             ' | '.join(f'Δ pass@{k} vs sft-start' for k in ks) + ' |', '|---|' + '---|' * (2 * len(ks))]
    for m, g in agg.items():
        lines.append(f'| {m} | ' + ' | '.join(pct(g['metrics'][f'pass_at_{k}']) if f'pass_at_{k}' in g['metrics'] else '—' for k in ks) + ' | ' +
                     ' | '.join(pct(start_diffs[k][m]) if k in start_diffs and m in start_diffs[k] else '—' for k in ks) + ' |')
    lines += ['', '## Held-out per-token log-probs (probe) and update sizes, mean over seeds', '',
              '| method | chosen: first → last (min) | rejected: first → last (min) | mean grad norm | max grad norm | mean update norm |',
              '|---|---|---|---|---|---|']
    for m in agg:
        c = curves_summary.get(m, {}); n = norms.get(m, {})
        f = lambda k: (f"{c[k]['first']:.3f} → {c[k]['last']:.3f} ({c[k]['min']:.3f})" if k in c else '—')
        g_ = lambda k, s: (f"{n[k][s]:.3g}" if k in n else '—')
        lines.append(f"| {m} | {f('probe/chosen_logps')} | {f('probe/rejected_logps')} | {g_('grad_norm', 'mean')} | "
                     f"{g_('grad_norm', 'max')} | {g_('update_norm', 'mean')} |")
    lines += ['', f"Wall time {time.time() - t_start:.0f} s; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}; "
              f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads. Plots: `{out.name}_by_level.png`, "
              f"`{out.name}_pass_at_k.png`, `{out.name}_logps.png`.", '']
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items() if k not in ('t_start', 'load_start')},
               data=dict(pair_stats=tr['pair_stats'], probe_pair_stats=pr['pair_stats'], positive_stats=d['positive_stats']),
               aggregate=agg, diffs_vs=dict(baseline=base, accuracy=diffs), pass_at_k_vs_sft_start=start_diffs,
               probe_curves=curves_summary, norms=norms, runs=runs, load_avg_start=load0)
    write_benchmark(str(out), lines, res, t_start, strict=getattr(a, 'strict', False))   # JSON with provenance; .md rendered from it

if __name__ == '__main__':
    sys.exit(main())
