"""Student-aware data recipes on the toy world (toy teacher -> toy student base): RSD, Gen-SSD, DASD, DeepDistill
against plain verified teacher traces — data side always, model side (SFT on each recipe's traces, over seeds) on request.

    nice -n 19 python benchmarks/recipes_toy.py --data-only            # the data-side table (minutes on 1 CPU core)
    nice -n 19 python benchmarks/recipes_toy.py [--seeds 3] [--steps 200] [--train-per-level 20] ...   # + model side
    python benchmarks/recipes_toy.py --tiny --work /tmp/rt --out /tmp/rt/res     # smoke run: a few problems, 2 steps

Protocol (resumable: every stage skips what `--work` already holds).
1. Teacher traces. `--train-per-level` training problems per level (levels 1-8); the shipped teacher samples
   `--samples` traces per problem at T = 0.6 and at T = 1.0 (`dasd.schedule_traces`, verified, teacher log-probs
   recorded). Plain SFT data = the verified T = 1.0 traces (the demo's recipe).
2. Cold start. The student base answers toy questions without reasoning (its chat behaviour is answer-only), so
   RSD's acceptor and Gen-SSD's scorer are also run as a *cold-started* student (the Gen-SSD paper asks for one; RSD's
   paper student is a reasoning model): QLoRA SFT of toy:student on one verified T = 1.0 trace for each of the first
   `--coldstart-per-level` problems per level, `--coldstart-steps` steps.
3. Recipes. `rsd-base` (acceptor = student base, the paper's setting) and `rsd` (acceptor = cold-started student):
   `--rsd-samples` RSD traces per problem (p_th `--rsd-threshold`, top-20 pools, 5 trials, T = 0.7), filter: fallback
   <= 50%, verified, shortest kept. `gen-ssd`: scorer = cold-started student, K = `--gen-k`, one line per chunk, tau =
   90th percentile of the scorer's chunk PPL on plain verified traces, 2 attempts. `dasd`: DAS selection (teacher-
   vs student-base sentence log-ratio, delta = log 2) of one verified trace per problem at T = 0.6 (stage 1) and at
   T = 1.0 (stage 2); `dasd-random`: random selection of the same size. `deepdistill`: pass rate / CV over the
   `--samples` T = 1.0 samples, stage I (every passing response of the unstable problems).
4. Data-side measurements, per recipe: traces generated, traces kept, yield (problems with a kept trace), mean kept
   length, share of completion tokens with p < 1% under the student base (the RSD paper's statistic; also over all
   generated traces), mean per-trace student PPL, RSD fallback rate, Gen-SSD teacher tokens and prune rate.
5. Model side (unless `--data-only`): from each seed, a QLoRA student (toy:student, NF4, LoRA r = 16) is trained on
   each recipe's examples with the same budget (`--steps` steps of `--batch-size`, lr `--lr`; DASD splits them over
   its two stages, stage 2 from the stage-1 adapter), evaluated on `--eval-per-level` test problems per level at
   `--eval-levels` (`--eval-samples` samples, T = 1; `compare.evaluate_adapter`), and aggregated over seeds with the
   seed-paired difference to `sft` (plain verified teacher traces). Recipes that keep nothing are skipped and said so.
   Optional methods (name them in `--methods`): `dasd-random` (DASD with random instead of DAS selection) and
   `dasd-mixed` (DASD's mixed-policy stage on top of the seed's `dasd` run: the stage-2 student answers the training
   problems with 1.5x the teacher's length, responses matching `--mixed-triggers` — default truncated *and* wrong,
   since the toy student rarely runs out of budget — are cut at a random point and continued by the teacher, and
   `--mixed-steps` more steps are trained on the verified mixed traces plus the stage-2 examples; its budget is
   therefore `--steps` + `--mixed-steps`).
6. RSD student-specific check (`--other-student build|PATH`, off by default): a second student base B sharing the
   tokenizer (`build`: the toy student recipe from teacher layers (0, 2, 3) instead of (0, 1, 3), seed 1,
   `--other-student-steps` steps; or any local model folder). B is cold-started like A = toy:student, RSD traces are
   made with B's cold start as the acceptor (`rsd-other`), and four more runs per seed are trained and evaluated:
   `rsd-foreign` (A on B's RSD traces), `other-rsd` (B on its own), `other-rsd-foreign` (B on A's, i.e. `rsd`) and
   `other-sft` (B on plain traces). Student-specific traces means rsd > rsd-foreign for A and other-rsd >
   other-rsd-foreign for B.
Every arm trains through the registry (`registry.make_config` + `registry.entry_point`, the path of `reasondistill
train --method NAME`): `rsd`, `rsd-base`, `gen-ssd`, `dasd`, `dasd-random` and `deepdistill` run their method's entry
on the data side's trace stores (`traces=...`, seed 0, so nothing is sampled again), the other arms `sft` on a kept set.
Writes `--out`.json, `--out`.md and `--out`_data.png (and `--out`_by_level.png with the model side).
"""
import os, sys, time
from pathlib import Path
from common import bench_parser, parse_args, start, tiny_note

METHODS = ('sft', 'rsd', 'rsd-base', 'gen-ssd', 'dasd', 'dasd-random', 'dasd-mixed', 'deepdistill')
OPTIONAL = ('dasd-random', 'dasd-mixed')     # run only when named in --methods

def parse(argv=None):
    ap = bench_parser('recipes_toy', __doc__, [m for m in METHODS if m not in OPTIONAL],
                      groups=('run', 'work', 'seeds', 'methods', 'train', 'eval'), seeds=3, batch_size=16, lr=6e-3,
                      max_length=256, eval_levels='2,4,6,8', eval_per_level=50, eval_samples=2, max_new_tokens=256)
    ap.add_argument('--train-per-level', type=int, default=20, help='training problems per level (levels 1-8)')
    ap.add_argument('--samples', type=int, default=4, help='teacher samples per problem at each temperature (T = 0.6 and 1.0)')
    ap.add_argument('--rsd-samples', type=int, default=16, help='RSD traces per problem')
    ap.add_argument('--rsd-threshold', type=float, default=0.01, help="RSD's acceptance threshold p_th")
    ap.add_argument('--gen-k', type=int, default=4, help='Gen-SSD teacher candidates per chunk')
    ap.add_argument('--coldstart-per-level', type=int, default=8, help='cold start: problems per level with one verified trace each')
    ap.add_argument('--coldstart-steps', type=int, default=60, help='cold start: SFT steps')
    ap.add_argument('--steps', type=int, default=200, help='optimizer steps of every method (DASD: split over its two stages)')
    ap.add_argument('--mixed-steps', type=int, default=50, help="dasd-mixed: steps of DASD's mixed-policy stage")
    ap.add_argument('--mixed-triggers', default='truncated,wrong', help='dasd-mixed: student responses the teacher continues')
    ap.add_argument('--other-student', default=None, help="RSD student-specific check: 'build' or a second student base folder (same tokenizer)")
    ap.add_argument('--other-student-steps', type=int, default=1000, help="steps of the second student base ('build')")
    ap.add_argument('--data-only', action='store_true', help='data side only (no training)')
    a = parse_args(ap, argv, known=METHODS, tiny=dict(
        seeds=1, train_per_level=1, samples=2, rsd_samples=2, coldstart_per_level=1, coldstart_steps=2, steps=2, batch_size=4,
        eval_levels='2,4', eval_per_level=1, eval_samples=1, max_new_tokens=96, other_student_steps=2, mixed_steps=2))
    a.teacher_name, a.student_name = 'toy:teacher', 'toy:student'   # the world's models (recipes_v2 sets v2's)
    return a

def _tc(a, steps, seed):
    from reasondistill.train import TrainConfig
    return TrainConfig(lr=a.lr, max_steps=max(1, steps), batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                       save_steps=max(50, steps), seed=seed)

# every arm trains through the registry, as `reasondistill train --method NAME` does: make_config + entry_point
def rsd_settings(a, adapter=None, work=None, name='rsd'):
    "The `rsd` config of the benchmark (the data side's traces: seed 0, store WORK/NAME)."
    over = {'threshold': a.rsd_threshold, 'n_samples': a.rsd_samples, 'max_new_tokens': a.max_new_tokens, 'seed': 0}
    return {**over, 'student_adapter': adapter, 'traces': str(work / name)} if work is not None else over

def gen_ssd_settings(a, tau, adapter=None, work=None):
    "The `gen-ssd` config of the benchmark (tau calibrated on the data side, seed 0, store WORK/gen-ssd)."
    over = {'k': a.gen_k, 'tau': tau, 'max_new_tokens': a.max_new_tokens, 'seed': 0}
    return {**over, 'student_adapter': adapter, 'traces': str(work / 'gen-ssd')} if work is not None else over

def dasd_settings(a, work):
    "The `dasd` config of the benchmark (the data side's teacher stores WORK/teacher/T0.6 and T1.0, seed 0)."
    return {'n_samples': a.samples, 'max_new_tokens': a.max_new_tokens, 'seed': 0, 'traces': str(work / 'teacher')}

def sft_cfg(a, steps, seed):
    from reasondistill.registry import make_config
    cfg = make_config('sft'); cfg.train = _tc(a, steps, seed)
    return cfg

def method_cfg(a, name, over, steps, seed):
    "The config of method `name` with the benchmark's settings `over` and training budget."
    from reasondistill.registry import make_config
    cfg = make_config(name, over); cfg.train = _tc(a, steps, seed)
    return cfg

QUANT = {}   # student -> how its base is loaded when not '4bit' (recipes_v2: a base whose layer widths bitsandbytes' CPU NF4 path rejects)
def quant(student:str) -> str: return QUANT.get(student, '4bit')

def train_arm(name, data, out, cfg, student='toy:student', student_spec=None, method=None, teacher='toy:teacher'):
    "Train registry method `name` on `data` into `out` (QLoRA student, the world's teacher): its summary."
    from reasondistill.registry import entry_point
    from reasondistill.train import Run, default_student_spec
    run = Run(str(out), student_spec or default_student_spec(student, quant=quant(student)), teacher=teacher)
    return entry_point(name)(data, run, cfg, method=method or name)

def data(a, work, log, probs=None):
    "Every recipe's traces and selections of `probs` (default: the v1 training problems); returns (problems, kept, data-side stats)."
    import numpy as np
    from reasondistill.core import read_json, write_json
    from reasondistill.models import load_model, load_tokenizer, ModelSpec, render_prompt
    from reasondistill.toyworld import toy_problems, LEVELS
    from reasondistill.tracestore import TraceStore
    from reasondistill.traces import sft_examples
    from reasondistill.registry import make_config
    from reasondistill.methods import rsd as R, gen_ssd as G, dasd as S, deepdistill as D
    T_, S_ = a.teacher_name, a.student_name
    probs = probs if probs is not None else toy_problems(a.train_per_level, LEVELS, split='train')
    levels = sorted({p.meta['level'] for p in probs})
    teacher, tok = load_model(T_); base, _ = load_model(S_)
    stok = load_tokenizer(S_)
    t0 = time.perf_counter()
    stores = S.schedule_traces(probs, teacher, tok, work / 'teacher', (0.6, 1.0), a.samples, a.max_new_tokens,
                               model_name=T_)
    tr = {T: list(TraceStore(p, readonly=True)) for T, p in stores.items()}
    secs = dict(teacher=time.perf_counter() - t0)
    log('teacher traces: ' + ', '.join(f'T={T}: {sum(t.verdict == "correct" for t in v)}/{len(v)} correct' for T, v in tr.items()))
    # cold start: one verified T=1.0 trace for the first coldstart-per-level problems of each level
    cs_ids = {p.id for lv in levels for p in [q for q in probs if q.meta.get('level') == lv][:a.coldstart_per_level]}
    cs_ex, _ = sft_examples(tr[1.0], [p for p in probs if p.id in cs_ids], stok, per_problem=1)
    t0 = time.perf_counter()
    cs = train_arm('sft', cs_ex, work / 'coldstart', sft_cfg(a, a.coldstart_steps, 0), student=S_, method='coldstart', teacher=T_)
    secs['coldstart'] = time.perf_counter() - t0
    cold, _ = load_model(ModelSpec(S_, quant=quant(S_), adapter=cs['final']))
    log(f"cold start: {len(cs_ex)} examples, {cs.get('global_step')} steps")
    kept, gen = {}, {}
    rcfg = make_config('rsd', rsd_settings(a))
    for name, acc in (('rsd-base', base), ('rsd', cold)):        # the names the `rsd` entry records (teacher, student base)
        t0 = time.perf_counter()
        R.rsd_traces(probs, teacher, acc, tok, work / name, rcfg, seed=rcfg.seed, names=(T_, S_))
        gen[name] = list(TraceStore(work / name, readonly=True)); secs[name] = time.perf_counter() - t0
        kept[name], sel = R.select_rsd(gen[name], rcfg.max_fallback)
        log(f"{name}: {sel['kept']} kept of {len(gen[name])} traces ({sel['dropped_by_reason']})")
    other = None
    if a.other_student:                                  # RSD student-specific check: a second student base B
        other = build_other_student(a, work, log) if a.other_student == 'build' else a.other_student
        ocs = train_arm('sft', cs_ex, work / 'coldstart-other', sft_cfg(a, a.coldstart_steps, 0), student=other, method='coldstart', teacher=T_)
        ocold, otok = load_model(ModelSpec(other, quant=quant(other), adapter=ocs['final']))
        from reasondistill.methods.rsd import check_shared_vocab
        check_shared_vocab(tok, otok)
        t0 = time.perf_counter()
        R.rsd_traces(probs, teacher, ocold, tok, work / 'rsd-other', rcfg, names=(T_, 'coldstart-other'))
        gen['rsd-other'] = list(TraceStore(work / 'rsd-other', readonly=True)); secs['rsd-other'] = time.perf_counter() - t0
        kept['rsd-other'], sel = R.select_rsd(gen['rsd-other'], rcfg.max_fallback)
        log(f"rsd-other: {sel['kept']} kept of {len(gen['rsd-other'])} traces")
    t0 = time.perf_counter()
    cal = sorted([t for t in tr[1.0] if t.verdict == 'correct'], key=lambda t: (t.problem_id, t.sample_idx))
    tau_path = work / 'gen-ssd-tau.json'
    if tau_path.exists(): tau = read_json(tau_path)['tau']
    else: tau = G.calibrate_tau(cal[:400], cold, stok, 0.9); write_json(tau_path, dict(tau=tau, n_traces=len(cal[:400])))
    gcfg = make_config('gen-ssd', gen_ssd_settings(a, tau))
    gst = G.gen_ssd_traces(probs, teacher, cold, tok, work / 'gen-ssd', gcfg, seed=gcfg.seed, names=(T_, S_))
    gen['gen-ssd'] = list(TraceStore(work / 'gen-ssd', readonly=True)); secs['gen-ssd'] = time.perf_counter() - t0
    kept['gen-ssd'], _ = G.select_gen_ssd(gen['gen-ssd'])
    log(f"gen-ssd: tau {tau:.2f}, {len(kept['gen-ssd'])} kept of {len(gen['gen-ssd'])}")
    t0 = time.perf_counter()
    dcfg = make_config('dasd', dasd_settings(a, work))
    das_path = work / 'das_scores.json'
    if das_path.exists(): das = {float(k): v for k, v in read_json(das_path).items()}
    else:
        das = {T: S.das_scores(S._eligible(tr[T]), (teacher, tok), (base, stok), dcfg.delta) for T in tr}
        write_json(das_path, {str(k): v for k, v in das.items()})
    for T in tr:
        kept[f'dasd-T{T}'], _ = S.das_select(tr[T], das[T], 1)
        kept[f'dasd-random-T{T}'], _ = S.random_select(tr[T], 1, len(kept[f'dasd-T{T}']))
    secs['dasd-selection'] = time.perf_counter() - t0
    graded, counts = D.grade_problems(probs, tr[1.0], a.samples)
    kept['deepdistill'], dd = D.deepdistill_select(tr[1.0], graded, 'I')
    kept['sft'] = [t for t in tr[1.0] if t.verdict == 'correct' and t.finish_reason != 'length']
    log(f"deepdistill: grades {counts}, {dd['kept']} traces kept")
    # data-side table
    sets = {'plain T=1.0 (sft)': (tr[1.0], kept['sft']), 'plain T=0.6': (tr[0.6], [t for t in tr[0.6] if t.verdict == 'correct']),
            'rsd-base': (gen['rsd-base'], kept['rsd-base']), 'rsd': (gen['rsd'], kept['rsd']),
            'gen-ssd': (gen['gen-ssd'], kept['gen-ssd']), 'dasd stage 1 (T=0.6)': (tr[0.6], kept['dasd-T0.6']),
            'dasd stage 2 (T=1.0)': (tr[1.0], kept['dasd-T1.0']), 'dasd-random T=1.0': (tr[1.0], kept['dasd-random-T1.0']),
            'deepdistill (stage I)': (tr[1.0], kept['deepdistill'])}
    if other: sets['rsd-other (acceptor B)'] = (gen['rsd-other'], kept['rsd-other'])
    rows = {}
    for name, (alltr, k) in sets.items():
        sk = R.student_token_stats(k, base, stok); sa = R.student_token_stats(alltr, base, stok)
        sc = R.student_token_stats(k, cold, stok)
        row = dict(generated=len(alltr), kept=len(k), yield_=len({t.problem_id for t in k}) / len(probs),
                   mean_tokens=float(np.mean([t.n_completion_tokens for t in k])) if k else float('nan'),
                   low_prob_share_kept=sk['low_prob_share'], low_prob_share_all=sa['low_prob_share'], student_ppl_kept=sk['mean_ppl'],
                   low_prob_share_kept_coldstart=sc['low_prob_share'], coldstart_ppl_kept=sc['mean_ppl'])
        if name.startswith('rsd'):
            toks = sum(t.n_completion_tokens for t in alltr)
            row['fallback_rate'] = sum(t.meta['rsd']['src'].count('S') for t in alltr) / max(toks, 1)
            row['traces_over_50pct_fallback'] = sum(t.meta['rsd']['fallback_rate'] > 0.5 for t in alltr) / max(len(alltr), 1)
            row['fallback_rate_kept'] = sum(t.meta['rsd']['src'].count('S') for t in k) / max(sum(t.n_completion_tokens for t in k), 1)
        if name == 'gen-ssd':
            row.update(teacher_tokens=sum(t.meta['gen_ssd']['teacher_tokens'] for t in alltr),
                       prune_rate=sum(t.meta['gen_ssd']['pruned'] for t in alltr) / max(len(alltr), 1), tau=tau,
                       restarts=sum(t.meta['gen_ssd']['attempts'] - 1 for t in alltr))
        rows[name] = row
    plain_tokens = sum(t.n_completion_tokens for t in tr[1.0]) / max(a.samples, 1)
    rows['gen-ssd']['teacher_tokens_per_plain_sample'] = rows['gen-ssd']['teacher_tokens'] / max(plain_tokens, 1)
    sp = work / 'stage_seconds.json'                      # a resumed stage takes ~0 s: keep the time of the run that did it
    old = read_json(sp) if sp.exists() else {}
    secs = {k: (v if v > 2 or k not in old else old[k]) for k, v in secs.items()}
    write_json(sp, {**old, **secs})
    return probs, kept, dict(table=rows, grades=counts, seconds=secs, coldstart=dict(examples=len(cs_ex), final=cs['final']),
                             n_problems=len(probs), other_student=other)

def build_other_student(a, work, log):
    "A second toy student base: the toy student recipe from teacher layers (0, 2, 3), seed 1; resumable."
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.toyworld import student_from_teacher, train_toy_model
    out = work / 'other-student'
    if (out / 'config.json').exists(): return str(out)
    teacher, _ = load_model('toy:teacher'); tok = load_tokenizer('toy:student')
    t0 = time.perf_counter()
    model, _ = train_toy_model('student', tok, work / 'other-student-build', a.other_student_steps, lr=1e-3, seed=1,
                               init=student_from_teacher(teacher, tok, layers=(0, 2, 3)), name='student', probe_every=0, log=log)
    model.save_pretrained(out); tok.save_pretrained(out)
    log(f'built the other student base in {time.perf_counter() - t0:.0f}s ({a.other_student_steps} steps)')
    return str(out)

# the RSD student-specific check: method -> (examples key, which student)
CHECK = {'rsd-foreign': ('rsd-other', 'A'), 'other-rsd': ('rsd-other', 'B'), 'other-rsd-foreign': ('rsd', 'B'), 'other-sft': ('sft', 'B')}

def train(a, method, seed, probs, kept, work, student='toy:student', key=None, cold=None, tau=None, out=None):
    """Train one method from one seed through the registry; (training summary with 'final', number of examples), or
    (None, 0) when the recipe kept nothing. The recipe methods re-open the data side's trace stores (nothing is
    sampled again) and select as the data side did; `cold` is the cold-start adapter (RSD's acceptor, Gen-SSD's scorer)."""
    from reasondistill.models import load_tokenizer, ModelSpec
    from reasondistill.traces import sft_examples
    stok = load_tokenizer(student)
    out = Path(out) if out is not None else work / f'seed{seed}' / method
    T_ = a.teacher_name
    if method == 'dasd-mixed':                                   # DASD's mixed-policy stage, from the seed's `dasd` run
        from reasondistill.models import load_model
        from reasondistill.tracestore import TraceStore
        from reasondistill.methods import dasd as S
        s2, n = train(a, 'dasd', seed, probs, kept, work, student, out=out.parent / out.name.replace('dasd-mixed', 'dasd'))
        if s2 is None: return None, 0
        teacher, tok = load_model(T_); dstu, _ = load_model(ModelSpec(student, quant=quant(student), adapter=s2['final']))
        ref = {t.problem_id: t.n_completion_tokens for t in kept['dasd-T1.0']}
        S.mixed_policy_traces(probs, dstu, teacher, tok, out / 'mixed-traces', ref, S.MixedPolicyConfig(
            max_new_tokens=a.max_new_tokens, triggers=tuple(a.mixed_triggers.split(','))), seed=seed)
        with TraceStore(out / 'mixed-traces', readonly=True) as st: mex, _ = S.mixed_examples(list(st), probs, stok)
        if not mex: return None, 0
        ex2, _ = sft_examples(kept['dasd-T1.0'], probs, stok)
        s3 = train_arm('sft', mex + ex2, out / 'stage3', sft_cfg(a, a.mixed_steps, seed),
                       student_spec=ModelSpec(student, quant=quant(student), adapter=s2['final']), method=method, teacher=T_)
        return s3, n + len(mex)
    if method in ('dasd', 'dasd-random'):                        # two stages, half the steps each (stage_steps)
        pre = 'dasd' if method == 'dasd' else 'dasd-random'
        if not kept[f'{pre}-T0.6'] or not kept[f'{pre}-T1.0']: return None, 0
        over = {**dasd_settings(a, work), 'selection': 'das' if method == 'dasd' else 'random',
                'stage_steps': [a.steps // 2, a.steps - a.steps // 2]}
        s = train_arm('dasd', probs, out, method_cfg(a, 'dasd', over, a.steps // 2, seed), student, method=method, teacher=T_)
        return s['stages'][-1]['train'], sum(st['data']['kept'] for st in s['stages'])
    if not kept[key or method]: return None, 0
    if method in ('rsd', 'rsd-base'):
        over = rsd_settings(a, cold if method == 'rsd' else None, work, method)
        s = train_arm('rsd', probs, out / 'train', method_cfg(a, 'rsd', over, a.steps, seed), student, method=method, teacher=T_)
        return s['train'], s['data']['kept']
    if method == 'gen-ssd':
        s = train_arm('gen-ssd', probs, out / 'train', method_cfg(a, 'gen-ssd', gen_ssd_settings(a, tau, cold, work), a.steps, seed),
                      student, method=method, teacher=T_)
        return s['train'], s['data']['kept']
    if method == 'deepdistill':                                  # stage I over the T = 1.0 teacher samples
        over = {'n_samples': a.samples, 'seed': 0, 'traces': str(work / 'teacher' / 'T1.0')}
        s = train_arm('deepdistill', probs, out / 'train', method_cfg(a, 'deepdistill', over, a.steps, seed), student, method=method, teacher=T_)
        return s['train'], s['data']['kept']
    ex, _ = sft_examples(kept[key or method], probs, stok)      # sft and the RSD check's arms: SFT on a kept set
    if not ex: return None, 0
    return train_arm('sft', ex, out / 'train', sft_cfg(a, a.steps, seed), student, method=method, teacher=T_), len(ex)

def _fmt(x, pct=False):
    if x is None or x != x: return '–'
    return f'{100 * x:.1f}%' if pct else (f'{x:.1f}' if abs(x) >= 10 else f'{x:.3g}')

def plot_data(rows, path):
    from reasondistill.eval.plots import new_figure, save_figure
    fig, axes = new_figure(figsize=(7.5, 3.2)); ax = axes[0, 0]
    names = list(rows); xs = range(len(names))
    val = lambda n, k: 100 * rows[n][k] if rows[n]['kept'] and rows[n][k] == rows[n][k] else 0
    ax.bar([x - 0.27 for x in xs], [val(n, 'low_prob_share_all') for n in names], 0.27, label='student base, all generated', color='0.7')
    ax.bar(list(xs), [val(n, 'low_prob_share_kept') for n in names], 0.27, label='student base, kept', color='tab:blue')
    ax.bar([x + 0.27 for x in xs], [val(n, 'low_prob_share_kept_coldstart') for n in names], 0.27,
           label='cold-started student, kept', color='tab:orange')
    ax.set_xticks(list(xs), names, rotation=30, ha='right', fontsize='small')
    ax.set_ylabel('tokens with p < 1% (%)')
    ax.legend(frameon=False, fontsize='x-small', ncols=3, loc='lower center', bbox_to_anchor=(0.5, 1.0))
    save_figure(fig, path)

def data_table_lines(dstats:dict) -> list:
    "The data-side table of a recipes benchmark (markdown lines) from its data statistics."
    lines = ['Columns: p_S<1% = share of completion tokens with probability < 1% under the student base (all generated traces / '
             'kept ones); "cold" = the same under the cold-started student (the acceptor of `rsd`, the scorer of `gen-ssd`); '
             'PPL = mean per-trace perplexity of the kept traces.', '',
             '| recipe | generated | kept | yield | mean tokens (kept) | p_S<1% (all) | p_S<1% (kept) | student PPL (kept) | p_cold<1% (kept) | cold PPL (kept) | RSD fallback (all / kept) | notes |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    rows = dstats['table']
    for n, r in rows.items():
        fb = f"{_fmt(r['fallback_rate'], True)} / {_fmt(r['fallback_rate_kept'], True)}" if 'fallback_rate' in r else ''
        note = (f"{_fmt(r['traces_over_50pct_fallback'], True)} of traces > 50% fallback" if 'fallback_rate' in r else
                f"tau {r['tau']:.1f}, pruned {_fmt(r['prune_rate'], True)}, teacher tokens {r['teacher_tokens']} "
                f"({r['teacher_tokens_per_plain_sample']:.1f}x one plain sample per problem)" if n == 'gen-ssd' else '')
        lines.append(f"| {n} | {r['generated']} | {r['kept']} | {_fmt(r['yield_'], True)} | {_fmt(r['mean_tokens'])} | "
                     f"{_fmt(r['low_prob_share_all'], True)} | {_fmt(r['low_prob_share_kept'], True)} | {_fmt(r['student_ppl_kept'])} | "
                     f"{_fmt(r['low_prob_share_kept_coldstart'], True)} | {_fmt(r['coldstart_ppl_kept'])} | {fb} | {note} |")
    lines += ['', 'Data-stage times (s, of the invocation that ran each stage): ' +
              ', '.join(f'{k} {v:.0f}' for k, v in dstats['seconds'].items()) + '.', '']
    return lines

def main(argv=None):
    a = parse(argv)
    import torch
    from reasondistill.core import read_json, write_json
    from reasondistill.toyworld import toy_problems
    from reasondistill.eval import compare
    work, log = start(a)
    t_start, load0 = a.t_start, a.load_start
    probs, kept, dstats = data(a, work, log)
    rows = dstats['table']
    png = Path(a.out + '_data.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_data(rows, png)
    lines = ['# Student-aware data recipes on the toy world' + tiny_note(a), '',
             f"{dstats['n_problems']} training problems ({a.train_per_level} per level, levels 1-8); teacher toy:teacher, student "
             f"toy:student. Plain: {a.samples} teacher samples per problem at T = 0.6 and T = 1.0. RSD: {a.rsd_samples} samples per "
             f"problem, p_th = {a.rsd_threshold}, top-20 pools, 5 trials, T = 0.7; `rsd-base` accepts with the student base, `rsd` "
             f"with a cold-started student ({dstats['coldstart']['examples']} traces, {a.coldstart_steps} steps). Gen-SSD: K = "
             f"{a.gen_k}, one line per chunk, scorer = the cold-started student. DASD: DAS (delta = log 2) vs random, one trace per "
             f"problem per temperature. DeepDistill: stage I over {a.samples} T = 1.0 samples (grades {dstats['grades']}). "
             '"p_S < 1%" is measured under the student base for every set.', '', *data_table_lines(dstats)]
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items() if k not in ('t_start', 'load_start')},
               data=dstats)
    if not a.data_only:
        test_probs = toy_problems(a.eval_per_level, a.eval_levels, split='test')
        runs, skipped = [], []
        other = dstats['other_student']
        todo = list(a.methods) + (list(CHECK) if other else [])
        for seed in range(a.seeds):
            for method in todo:
                rdir = work / f'seed{seed}' / method
                if (rdir / compare.RESULT_FILE).exists(): runs.append(read_json(rdir / compare.RESULT_FILE)); continue
                key, who = CHECK.get(method, (method, 'A'))
                student = other if who == 'B' else 'toy:student'
                t0 = time.perf_counter()
                summ, n_ex = train(a, method, seed, probs, kept, work, student, key, dstats['coldstart']['final'], rows['gen-ssd']['tau'])
                t_train = time.perf_counter() - t0
                if summ is None: skipped.append((seed, method)); log(f'seed {seed} {method}: the recipe kept nothing, skipped'); continue
                t0 = time.perf_counter()
                ev = compare.evaluate_adapter(summ['final'], test_probs, rdir / 'eval', student=student, n_samples=a.eval_samples,
                                              max_new_tokens=a.max_new_tokens, name=method)
                r = compare.save_result(rdir, method, seed, train_seconds=t_train, eval_seconds=time.perf_counter() - t0,
                                        n_examples=n_ex, train_loss=summ.get('train_loss'), **ev)
                runs.append(r)
                log(f"seed {seed} {method:12} acc {100 * r['accuracy']:5.1f}%  ({n_ex} examples; train {t_train:.0f}s, eval {r['eval_seconds']:.0f}s)")
        runs = [r for r in runs if r['method'] in todo]
        if runs:
            agg = compare.aggregate_results(runs, metrics=('accuracy', 'mean_tokens'))
            diffs = compare.paired_differences(runs, 'sft') if 'sft' in agg else None
            bpng = Path(a.out + '_by_level.png')
            compare.plot_by_level(agg, path=bpng, title=f'Toy world: SFT on each recipe\'s traces, {a.seeds} seed(s), 95% interval')
            lines += ['## Model side', '', f"Same budget for every method: {a.steps} steps x {a.batch_size} sequences, lr {a.lr}, "
                      f"QLoRA r = 16 on toy:student (DASD: {a.steps // 2} + {a.steps - a.steps // 2} steps over its two stages). "
                      f"Test: {a.eval_per_level} problems per level at levels {', '.join(map(str, a.eval_levels))}, {a.eval_samples} "
                      f"samples each (T = 1). Seeds: {a.seeds}; Δ vs sft is paired.", '',
                      compare.results_markdown(agg, diffs=diffs, baseline='sft', note=True), '']
            if other:
                lines += [f"RSD student-specific check: A = toy:student, B = {other}. Traces made for A: `rsd`; for B: `rsd-other`. "
                          "A: rsd vs rsd-foreign; B: other-rsd vs other-rsd-foreign (other-sft: B's plain-SFT reference).", '']
            if skipped: lines += [f"Skipped (recipe kept nothing): {', '.join(f'{m} (seed {s})' for s, m in skipped)}.", '']
            res.update(aggregate=agg, paired_vs_sft=diffs, runs=runs, skipped=skipped)
    load1 = os.getloadavg()
    lines += [f"Wall time of this invocation {time.time() - t_start:.0f} s (finished stages are reused); load average at start "
              f"{load0[0]:.2f}, at end {load1[0]:.2f}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads. "
              f"Plot: `{png.name}`.", '']
    res.update(load_avg_start=load0)
    compare.write_benchmark(a.out, lines, res, t_start, strict=a.strict)
    return 0

if __name__ == '__main__':
    sys.exit(main())
