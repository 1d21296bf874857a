"""Learning from wrong teacher traces on toy world v2: continued SFT vs REDI (alpha 0.5 / 0.8 / 1.0) vs DPO vs SimPO vs
QCRD, all from the same stage-1 SFT adapter with the same stage-2 budget, the stage-2 learning rate of every arm chosen
on dev; pass@k against the SFT start; the seed papers' claims checked against v1's verdicts.

    python benchmarks/negatives_v2.py [--seeds 3] [--train-per-level 24] [--samples 4] [--sft-steps 120] [--steps 40]
                                      [--work runs/negatives_v2] [--out benchmarks/results/negatives_v2]
    python benchmarks/negatives_v2.py --phase dev --methods sft-cont,redi-a0.8   # shards: dev runs first (seed 0),
    python benchmarks/negatives_v2.py --phase test --only-seeds 1                # then test seeds, then a plain call aggregates
    python benchmarks/negatives_v2.py --tiny --work /tmp/neg2 --out /tmp/neg2/res   # smoke run (numbers meaningless)

Protocol (`reasondistill.eval.compare`; resumable: finished runs and evaluations in --work are reused):
1. Data. toy2:teacher-small samples --samples traces (T = 1) of --train-per-level training chains per level (1-8).
   Positives (verified correct, at most --per-problem per problem, `traces.sft_examples`) are the stage-1 data and the
   continued-SFT data; `methods.redi.preference_pairs` builds one (chosen, rejected) pair per problem where the teacher
   was both right and wrong (REDI, DPO, SimPO); QCRD reads all samples (self-consistency). The same teacher's pairs on
   --probe-per-level dev chains per level are the held-out probe whose per-token chosen / rejected log-probs every
   stage-2 run measures.
2. Stage 1, per seed (`sft-start`): SFT of the QLoRA student (toy2:student, NF4, LoRA r = 16) on the positives,
   --sft-steps x --batch-size at --lr (cosine). It is the start of every stage-2 run.
3. Stage 2, per seed, --steps steps x --batch-size examples from `sft-start`, each arm trained through the registry as
   `reasondistill train --method M --set sft_adapter=<sft-start>` would: `sft-cont` (`sft` on the positives, with the
   stage-2 callbacks), `redi-a0.5`, `redi-a0.8`, `redi-a1.0`, `dpo` (TRL DPOTrainer, beta 0.1), `simpo` (TRL CPOTrainer
   loss_type='simpo'), `qcrd` (2 rounds, student negatives at T 1.5); every stage-2 adapter is stored in fp32.
4. Selection: every arm's stage-2 learning rate from the declared sweep --sweep-lr, chosen on dev (chains at
   --eval-levels, --dev-per-level problems per level, 2 samples) with the runs of seed 0; test evaluated once per arm
   and seed at the chosen learning rate.
5. Test: accuracy (avg@--eval-samples at T = 1) and pass@k on --eval-per-level test chains per level at --eval-levels,
   for every arm and for `sft-start`. Intervals: hierarchical bootstrap over seeds and problems for accuracy (Δ paired
   with `sft-cont`); pass@k of each arm minus `sft-start`'s: Student-t over the per-seed differences.
The v1 record (`negatives_toy.json`: a fixed stage-2 learning rate, Student-t over seeds) is quoted beside each verdict.
Writes --out.json, --out.md and --out_by_level.png.
"""
import json, sys, time
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from negatives_toy import curves_of, _mean_curve   # v1's readers of the probe curves (one copy)
from common import (bench_parser, parse_args, start, tiny_note, add_sweep, sweep_from_args, write_report, add_phases,
                    phase_seeds, run_phase, verdict as _verdict)

ARMS = ('sft-cont', 'redi-a0.5', 'redi-a0.8', 'redi-a1.0', 'dpo', 'simpo', 'qcrd')
STUDENT, TEACHER = 'toy2:student', 'toy2:teacher-small'
# (claim, arm, baseline, direction): the claim holds when the paired interval of (arm − baseline) lies on `direction`'s side of 0
CLAIMS = (('REDI (alpha 0.8) beats continued SFT', 'redi-a0.8', 'sft-cont', +1),
          ('REDI with alpha = 1 (symmetric) falls below alpha = 0.8', 'redi-a1.0', 'redi-a0.8', -1),
          ('DPO beats continued SFT', 'dpo', 'sft-cont', +1),
          ('SimPO beats continued SFT', 'simpo', 'sft-cont', +1),
          ('QCRD beats continued SFT', 'qcrd', 'sft-cont', +1))

def parse():
    ap = bench_parser('negatives_v2', __doc__, ARMS, groups=('run', 'work', 'seeds', 'methods', 'train', 'eval'), seeds=3,
                      batch_size=16, lr=3e-3, max_length=1024, eval_levels='2,4,6,8', eval_per_level=30, eval_samples=4,
                      max_new_tokens=256)
    add_sweep(ap, lr='2e-4,1e-3')
    ap.add_argument('--train-per-level', type=int, default=24, help='training chains per level (levels 1-8)')
    ap.add_argument('--samples', type=int, default=4, help='teacher samples per training problem (T = 1)')
    ap.add_argument('--per-problem', type=int, default=2, help='positives per problem (stage-1 and continued-SFT data)')
    ap.add_argument('--trace-tokens', type=int, default=256, help="the teacher's generation budget (kept apart from "
                    '--max-new-tokens, the student evaluation budget, so that a smoke run still has whole teacher traces)')
    ap.add_argument('--probe-per-level', type=int, default=4, help='dev chains per level whose pairs are the held-out probe')
    ap.add_argument('--sft-steps', type=int, default=120, help='stage-1 SFT steps (at --lr)')
    ap.add_argument('--steps', type=int, default=40, help='stage-2 steps of every arm (learning rate from --sweep-lr)')
    ap.add_argument('--probe-every', type=int, default=5, help='stage-2 steps between probes')
    ap.add_argument('--dev-per-level', type=int, default=15, help='dev chains per level for the learning-rate choice')
    ap.add_argument('--note', default='', help='a sentence printed under the report title')
    add_phases(ap)
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=2, samples=2, probe_per_level=1, sft_steps=2, steps=2,
                                 batch_size=4, eval_levels='2,4', eval_per_level=2, eval_samples=2, max_new_tokens=64,
                                 dev_per_level=2, sweep_lr='1e-3', probe_every=1), known=ARMS)
    for k in ('train_per_level', 'samples', 'per_problem', 'probe_per_level', 'sft_steps', 'steps', 'dev_per_level',
              'eval_per_level', 'eval_samples', 'seeds', 'batch_size'):
        if getattr(a, k) < 1: ap.error(f"--{k.replace('_', '-')} must be >= 1")
    a.test_seeds = phase_seeds(a)
    return a

def data(a, work, log) -> dict:
    "Teacher traces on training and probe (dev) chains -> dict(train, probe (problems, traces, pairs, stats), positives)."
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.traces import generate_traces, sft_examples
    from reasondistill.tracestore import TraceStore
    from reasondistill.rollout import SamplingParams
    from reasondistill.methods.redi import preference_pairs
    stok, teacher, d = load_tokenizer(STUDENT), None, {}
    for name, split, n in (('train', 'train', a.train_per_level), ('probe', 'dev', a.probe_per_level)):
        probs = toy2_problems(n, split, families=('chain',))
        store, t0 = work / f'traces-{name}', time.perf_counter()
        have = 0
        if store.exists():
            with TraceStore(store, readonly=True) as st: have = sum(1 for _ in st)
        if have < len(probs) * a.samples:              # resumable: only the missing traces are sampled
            if teacher is None: teacher = load_model(TEACHER)
            generate_traces(probs, *teacher, store, n_samples=a.samples, model_name=TEACHER,
                            params=SamplingParams(temperature=1.0, max_new_tokens=a.trace_tokens, seed=0))
        with TraceStore(store, readonly=True) as st: traces = list(st)
        pairs, pst = preference_pairs(traces, probs, stok)
        level = {p.id: p.meta['level'] for p in probs}
        wrong = {}
        for t in traces:
            w = wrong.setdefault(str(level.get(t.problem_id)), [0, 0]); w[1] += 1; w[0] += t.verdict != 'correct'
        n_wrong = sum(w for w, _ in wrong.values())
        n_trunc = sum(t.finish_reason == 'length' for t in traces)
        d[name] = dict(problems=probs, traces=traces, pairs=pairs, pair_stats=pst, seconds=time.perf_counter() - t0,
                       n_traces=len(traces), n_wrong=n_wrong, n_truncated=n_trunc,
                       wrong_by_level={l: w for l, (w, _) in sorted(wrong.items(), key=lambda x: int(x[0]))},
                       traces_by_level={l: m for l, (_, m) in sorted(wrong.items(), key=lambda x: int(x[0]))})
        if name == 'train': d['positives'], d['positive_stats'] = sft_examples(traces, probs, stok, per_problem=a.per_problem)
        log(f"{name}: {len(traces)} teacher traces of {len(probs)} chains, {n_wrong} not correct "
            f"({100 * n_wrong / max(len(traces), 1):.0f}%, {n_trunc} truncated; by level {d[name]['wrong_by_level']}); "
            f"{pst['pairs']} pairs")
    if not d['positive_stats']['kept']: raise SystemExit('no verified teacher trace to train on: raise --train-per-level or --samples')
    if not d['train']['pairs']: raise SystemExit('no preference pair (no problem where the teacher was both right and wrong): '
                                                 'raise --train-per-level or --samples')
    return d

def arm_method(arm:str) -> tuple:
    "(registry method, config overrides) of a stage-2 arm."
    if arm == 'sft-cont': return 'sft', {}
    if arm.startswith('redi-a'): return 'redi', {'alpha': float(arm[len('redi-a'):])}
    if arm in ('dpo', 'simpo', 'qcrd'): return arm, {}
    raise ValueError(arm)

def _pass(r:dict, k:int) -> float:
    pk = r.get('pass_at_k') or {}
    return pk.get(str(k), pk.get(k))

def v1_diffs() -> dict:
    """{(arm, baseline): {mean, lo, hi, n_seeds}} on toy world v1 (`negatives_toy.json`: a fixed stage-2 learning rate,
    Student-t over seeds), if that record is here: its `diffs_vs.accuracy` against continued SFT, and redi-a1.0 − redi-a0.8
    from its runs (per-seed differences, the same Student-t)."""
    f = Path(__file__).parent / 'results' / 'negatives_toy.json'
    if not f.exists(): return {}
    from reasondistill.eval.metrics import mean_ci_over_seeds
    rec = json.loads(f.read_text())
    base = (rec.get('diffs_vs') or {}).get('baseline', 'sft-cont')
    out = {(m, base): dict(mean=c.get('mean'), lo=c.get('lo'), hi=c.get('hi'), n_seeds=c.get('n'))
           for m, c in ((rec.get('diffs_vs') or {}).get('accuracy') or {}).items()}
    acc = {(r['method'], r['seed']): r['accuracy'] for r in rec.get('runs') or [] if 'accuracy' in r}
    for _, arm, b, _ in CLAIMS:
        if (arm, b) in out: continue
        xs = [acc[(arm, s)] - acc[(b, s)] for (m, s) in acc if m == arm and (b, s) in acc]
        if xs:
            m, lo, hi = mean_ci_over_seeds(xs)
            out[(arm, b)] = dict(mean=m, lo=lo, hi=hi, n_seeds=len(xs))
    return out

def main():
    a = parse()
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.eval.compare import evaluate_adapter, DevSelection
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.models import ModelSpec, load_tokenizer
    from reasondistill.traces import LabelledTraces
    from reasondistill.registry import make_config, entry_point
    from reasondistill.methods.redi import stage2_callbacks, stage2_adapter_dtype
    work, log = start(a)
    levels = a.eval_levels
    dev = toy2_problems(a.dev_per_level, 'dev', families=('chain',), levels=levels)
    test = toy2_problems(a.eval_per_level, 'test', families=('chain',), levels=levels)
    ks = tuple(k for k in (1, 2, 4, 8, 16, 32) if k <= a.eval_samples)
    K = ks[-1]
    d = data(a, work, log)
    probe = d['probe']['pairs']
    log(f"positives {d['positive_stats']['kept']}, pairs {d['train']['pair_stats']['pairs']}, probe pairs {len(probe)}; "
        f"dev {len(dev)} chains, test {len(test)} chains at levels {list(levels)}")
    stage1_done = {}

    def stage1(seed) -> str:
        "`sft-start` of `seed`: the registry's `sft` on the positives at the fixed --lr (resumable)."
        if seed not in stage1_done:
            out = work / f'seed{seed}' / 'sft-start' / 'train'
            t0 = time.perf_counter()
            cfg = make_config('sft')
            cfg.train = TrainConfig(lr=a.lr, max_steps=a.sft_steps, batch_size=a.batch_size, max_length=a.max_length,
                                    logging_steps=10, save_steps=10 ** 6, seed=seed)
            s = entry_point('sft')(d['positives'], Run(str(out), default_student_spec(STUDENT)), cfg, method='sft')
            if time.perf_counter() - t0 > 30: log(f"seed {seed} sft-start: trained ({time.perf_counter() - t0:.0f}s)")
            stage1_done[seed] = s['final']
        return stage1_done[seed]

    def train(arm, hp, seed) -> dict:
        "A stage-2 arm from `sft-start` at learning rate hp['lr'], through the registry (resumable) -> dict(dir, adapter)."
        adapter = stage1(seed)
        rdir = work / f'seed{seed}' / f"{arm}-lr{hp['lr']:g}"
        out, t0 = rdir / 'train', time.perf_counter()
        tc = TrainConfig(lr=hp['lr'], max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=1,
                         save_steps=10 ** 6, seed=seed)
        name, sets = arm_method(arm)
        if name == 'sft':                          # continued SFT from the stage-1 adapter, with the stage-2 callbacks
            cfg = make_config('sft'); cfg.train = replace(tc, adapter_dtype=stage2_adapter_dtype(tc))   # fp32, as every stage-2 arm
            cbs = stage2_callbacks(load_tokenizer(STUDENT), probe, a.probe_every, a.max_length)
            s = entry_point('sft')(d['positives'], Run(str(out), ModelSpec(STUDENT, quant='4bit', adapter=adapter)), cfg,
                                   method=arm, callbacks=cbs)
        else:
            sets = {**sets, 'probe_every': a.probe_every, 'sft_adapter': adapter, 'lr': hp['lr'], 'max_steps': a.steps}
            if name == 'qcrd': sets['max_new_tokens'] = a.max_new_tokens
            cfg = make_config(name, sets)
            cfg.train = tc                         # stage 2 runs on these, with `lr` and `max_steps` as above
            s = entry_point(name)(LabelledTraces(d['train']['problems'], d['train']['traces']), Run(str(out), default_student_spec(STUDENT)),
                                  cfg, method=arm, probe=probe)
        if time.perf_counter() - t0 > 30: log(f"seed {seed} {arm} lr {hp['lr']:g}: trained ({time.perf_counter() - t0:.0f}s)")
        return dict(dir=str(rdir), adapter=s['final'])

    def score(run, split) -> dict:
        rdir = Path(run['dir'])
        if split == 'dev':
            r = evaluate_adapter(run['adapter'], dev, rdir / 'eval-dev', student=STUDENT, n_samples=2, ks=(1, 2),
                                 max_new_tokens=a.max_new_tokens, name=f'{rdir.name} (dev)')
            log(f"{rdir.parent.name} {rdir.name}: dev accuracy {100 * r['accuracy']:.1f}%")
            return r
        r = evaluate_adapter(run['adapter'], test, rdir / 'eval-test', student=STUDENT, n_samples=a.eval_samples, ks=ks,
                             max_new_tokens=a.max_new_tokens, name=f'{rdir.name} (test)')
        r = dict(r, **{f'pass_at_{k}': _pass(r, k) for k in ks}, curves=curves_of(rdir / 'train') if (rdir / 'train').exists() else {})
        log(f"{rdir.parent.name} {rdir.name}: test accuracy {100 * r['accuracy']:.1f}%, pass@{K} {100 * r[f'pass_at_{K}']:.1f}%")
        return r

    sel = DevSelection(sweep_from_args(a), train, score, seeds=a.test_seeds, dev_seeds=(0,))
    arms = a.methods
    starts = [] if a.phase == 'dev' else [           # test shards evaluate their seeds' sft-start too
        dict(score(dict(dir=str(work / f'seed{s}' / 'sft-start'), adapter=stage1(s)), 'test'), method='sft-start', seed=s)
        for s in a.test_seeds]
    runs = run_phase(a, sel, arms, log)
    if runs is None: return
    report(a, d, sel, [*starts, *runs], arms, ks, test, levels)

def report(a, d, sel, runs, arms, ks, test, levels):
    from reasondistill.eval.compare import aggregate_results, paired_differences, plot_by_level
    K = ks[-1]
    metrics = ('accuracy', 'mean_tokens', 'truncation_rate') + tuple(f'pass_at_{k}' for k in ks)
    agg = aggregate_results(runs, metrics)
    diffs = {b: paired_differences(runs, b) for b in {b for _, _, b, _ in CLAIMS} if b in agg}
    start_diffs = paired_differences(runs, 'sft-start', f'pass_at_{K}')
    start_acc = agg['sft-start']['metrics']['accuracy']
    # probe curves: per-token log-probs of held-out chosen / rejected completions, first -> last step, mean over seeds
    curves = {}
    for m in arms:
        for key in ('probe/chosen_logps', 'probe/rejected_logps'):
            x, y = _mean_curve(runs, m, key)
            if x: curves.setdefault(m, {})[key.split('/')[1].split('_')[0]] = dict(first=y[0], last=y[-1], min=min(y), steps=[x[0], x[-1]])
    # verdicts on the seed papers' claims, v1's beside them
    v1 = v1_diffs()
    pts = lambda c: 'not measured' if not c or c.get('mean') is None else (
        f"{100 * c['mean']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] points" if c['lo'] == c['lo'] else f"{100 * c['mean']:+.1f} points (no interval)")
    verdicts = []
    for claim, arm, b, direction in CLAIMS:
        if arm not in arms: continue
        c = diffs.get(b, {}).get(arm)
        c = {k: c.get(k) for k in ('mean', 'lo', 'hi', 'n_seeds', 'n_problems', 'interval')} if c else None
        w = v1.get((arm, b))
        w = dict(w, verdict=_verdict(w, direction)) if w else None
        verdicts.append(dict(claim=claim, arm=arm, baseline=b, metric='accuracy', direction='+' if direction > 0 else '−',
                             verdict=_verdict(c, direction), ci=c, v1=w,
                             evidence=f"{arm} − {b}, accuracy: {pts(c)} (v1: {(w or {}).get('verdict', 'not run')}, {pts(w)})"))
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_by_level(agg, path=png, title=f'Toy world v2, learning from wrong traces: accuracy by level ({len(a.test_seeds)} seeds, 95% interval)')
    tr, pr = d['train'], d['probe']
    res = dict(config={k: v for k, v in vars(a).items() if not k.startswith('_') and k not in ('t_start', 'load_start')},
               data=dict(n_train_problems=len(tr['problems']), n_traces=tr['n_traces'], n_wrong=tr['n_wrong'],
                         wrong_by_level=tr['wrong_by_level'], traces_by_level=tr['traces_by_level'], pair_stats=tr['pair_stats'],
                         positive_stats=d['positive_stats'], probe_pair_stats=pr['pair_stats'], probe_wrong=pr['n_wrong']),
               selection=sel.record(), sft_start=dict(accuracy=start_acc), aggregate=agg,
               paired_vs=diffs, pass_vs_sft_start=dict(metric=f'pass_at_{K}', diffs=start_diffs), probe_curves=curves, verdicts=verdicts, runs=runs)
    ps = tr['pair_stats']
    lines = [f'# Learning from wrong teacher traces on toy world v2: REDI vs continued SFT, DPO, SimPO, QCRD{tiny_note(a)}', '',
             *([a.note, ''] if a.note else []),
             f"Data: {TEACHER} sampled {a.samples} traces (T = 1) of each of {len(tr['problems'])} training chains "
             f"({a.train_per_level} per level, levels 1-8): {tr['n_wrong']} of {tr['n_traces']} not correct (by level: "
             + ', '.join(f"L{l} {w}/{tr['traces_by_level'][l]}" for l, w in tr['wrong_by_level'].items()) + "). "
             f"Positives (≤ {a.per_problem} per problem): {d['positive_stats']['kept']}. Pairs (`redi.preference_pairs`, one per "
             f"problem with a right and a wrong trace): **{ps['pairs']}**, by level {ps['pairs_by_level']}; problems dropped: "
             f"{ps['problems_dropped_by_reason']}. Held-out probe pairs (dev chains): {len(pr['pairs'])}.", '',
             f"Student {STUDENT} (QLoRA NF4, r = 16). Stage 1 (`sft-start`): SFT on the positives, {a.sft_steps} steps x "
             f"{a.batch_size} at lr {a.lr}. Stage 2 from that adapter: every arm {a.steps} steps x {a.batch_size} examples (pairs "
             f"for REDI/DPO/SimPO, positives for continued SFT, {max(1, a.batch_size // 2)} problems with all their samples for "
             f"QCRD), its learning rate chosen on dev (seed 0) from {sel.sweep.grid['lr']}. Test: {len(test)} chains at levels "
             f"{list(levels)}, {a.eval_samples} samples each (T = 1), seeds {list(a.test_seeds)}.", '',
             '## Accuracy', '',
             {'table': 'results', 'metrics': ['accuracy', 'mean_tokens', 'truncation_rate'], 'baseline': 'sft-cont',
              'methods': ['sft-start', *arms]}, '',
             f"`sft-start` (the stage-1 adapter every arm starts from): accuracy {100 * start_acc['mean']:.1f}% "
             f"[{100 * start_acc['lo']:.1f}, {100 * start_acc['hi']:.1f}].", '', f'![accuracy by level]({png.name})', '',
             {'table': 'dev', 'key': 'selection'}, '',
             f'## pass@k against the SFT start', '',
             f"Does training on negatives narrow pass@k? Δ pass@{K}: each arm minus `sft-start`, paired on seeds (Student-t over "
             "the per-seed differences; no interval with one seed).", '',
             '| method | ' + ' | '.join(f'pass@{k}' for k in ks) + f' | Δ pass@{K} vs sft-start (points) |', '|---|' + '---|' * (len(ks) + 1)]
    pct = lambda c: f"{100 * c['mean']:.1f}" + (f" [{100 * c['lo']:.1f}, {100 * c['hi']:.1f}]" if c['lo'] == c['lo'] else '')
    for m in ['sft-start', *arms]:
        if m not in agg: continue
        g = agg[m]['pass_at_k']
        c = start_diffs.get(m)
        lines.append(f'| {m} | ' + ' | '.join(pct(g[str(k)]) if str(k) in g else '—' for k in ks) + ' | ' +
                     (pts(c).replace(' points', '') if c else '—') + ' |')
    lines += ['', '## Held-out probe: per-token log-probs of chosen (right) and rejected (wrong) completions, mean over seeds', '',
              '| arm | chosen: first → last (min) | rejected: first → last (min) |', '|---|---|---|']
    for m in arms:
        c = curves.get(m, {})
        f = lambda k: f"{c[k]['first']:.3f} → {c[k]['last']:.3f} ({c[k]['min']:.3f})" if k in c else '—'
        lines.append(f"| {m} | {f('chosen')} | {f('rejected')} |")
    lines += ['', '## Verdicts on the seed papers\' claims (v2 here; v1 from `negatives_toy.json`: a fixed stage-2 learning rate, '
              'Student-t over seeds)', '',
              '| claim | v2 verdict | v2: arm − baseline, accuracy | v1 verdict | v1: arm − baseline |', '|---|---|---|---|---|']
    lines += [f"| {v['claim']} | {v['verdict']} | {pts(v['ci'])} | {(v['v1'] or {}).get('verdict', 'not run')} | {pts(v['v1'])} |"
              for v in verdicts]
    lines += ['', 'A claim holds when the 95% paired interval of (arm − baseline) lies on its side of zero, fails when it lies on '
              'the other side, and is inconclusive when it straddles zero.']
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
