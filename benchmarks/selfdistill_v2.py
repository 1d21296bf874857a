"""OPSD and ATESD on toy world v2, where the student base uses a reference placed in its context: does on-policy
self-distillation with a privileged reference beat continued SFT at an equal token budget?

    python benchmarks/selfdistill_v2.py [--seeds 3] [--token-budget 32000] [--work runs/selfdistill_v2]
    python benchmarks/selfdistill_v2.py --phase dev --methods sft,opsd-none   # shards: dev runs first (seed 0),
    python benchmarks/selfdistill_v2.py --phase test --only-seeds 1           # then test seeds, then a plain call aggregates

Protocol (`reasondistill.eval.compare`; resumable: finished runs and evaluations in --work are reused):
1. Data. toy2:teacher-small samples --samples traces (T = 1) of --train-per-level training chains per level (1-8); the
   verified ones are stage 1's data. The privileged reference of every training problem is the world's error-free
   reference solution (`toyworld2.reference_solution`), the format the student base learned to read.
2. Stage 1 (per seed): SFT of the QLoRA student (toy2:student, NF4, LoRA r = 16) on B/2 completion tokens, lr --lr.
3. Stage 2 arms from the stage-1 adapter, B/2 trained tokens each: `sft` (continued), `opsd` (live self-teacher shown the
   reference, clipped forward KL), `atesd` (OPSD with the Beta controller's reveal ratio), `opsd-none` (the same
   self-teacher shown nothing: isolates what the reference contributes); ATESD's ablations: `atesd-a0`, `atesd-a0.5` (fixed
   reveal ratios; `opsd` is ratio 1) and `atesd-random` (a random ratio per rollout).
4. Selection: every arm's stage-2 learning rate from the declared sweep --sweep-lr, chosen on the dev split (chains at
   --eval-levels, --dev-per-level problems) with the runs of seed 0; test evaluated once per arm and seed at the chosen lr.
5. Privileged gain (nats/token of the reference with it vs without it in the prompt) of the base, of each stage-1
   student and of each arm's final student, on held-out test references: whether SFT and self-distillation keep the
   premise alive.
6. Verdicts: OPSD and ATESD against continued SFT; ATESD's adaptive reveal ratio against the fixed ratios 0, 0.5 and 1
   (`opsd`) and a random one.
Accuracy: avg@--eval-samples at T = 1; intervals: hierarchical bootstrap over seeds and problems, paired with `sft`.
"""
import json, math, sys, time
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note, add_sweep, sweep_from_args, write_report, add_phases, phase_seeds, run_phase
from common import verdict as _verdict, pair_ci, v1_pair, v1_text

ARMS = ('sft', 'opsd', 'atesd', 'opsd-none', 'atesd-a0', 'atesd-a0.5', 'atesd-random')
STUDENT, TEACHER = 'toy2:student', 'toy2:teacher-small'

def parse():
    ap = bench_parser('selfdistill_v2', __doc__, ARMS, seeds=3, train_per_level=24, samples=2, batch_size=8, lr=3e-3,
                      max_length=1024, eval_levels='2,4,6,8', eval_per_level=30, eval_samples=2, max_new_tokens=256)
    add_sweep(ap, lr='1e-3,3e-3')
    ap.add_argument('--token-budget', type=int, default=32_000, help='completion tokens per run (stage 1 + stage 2)')
    ap.add_argument('--max-steps-factor', type=float, default=6.0, help="on-policy arms' step cap, as a multiple of SFT's steps")
    ap.add_argument('--rollout-tokens', type=int, default=192, help='rollout length cap')
    ap.add_argument('--dev-per-level', type=int, default=15, help='dev problems per level for the learning-rate choice')
    add_phases(ap)
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=1, samples=1, batch_size=4, token_budget=600, eval_levels='2,4',
                                 eval_per_level=2, eval_samples=1, max_new_tokens=64, rollout_tokens=32, dev_per_level=2,
                                 sweep_lr='3e-3'), known=ARMS)
    a.test_seeds = phase_seeds(a)
    return a

def reference_examples(probs):
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.toyworld2 import reference_solution
    tok = load_tokenizer(STUDENT)
    return [dict(prompt=render_prompt(tok, p.question), completion='', question=p.question, answer=p.answer,
                 reference=reference_solution(p), problem_id=p.id, level=p.meta['level'], source=p.meta['source']) for p in probs]

def _done(out) -> dict|None:
    f = Path(out) / 'summary.json'
    return json.loads(f.read_text()) if (Path(out) / 'final' / 'adapter_config.json').exists() and f.exists() else None

def main():
    a = parse()
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.eval.compare import teacher_examples, evaluate_adapter, DevSelection, aggregate_results
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.registry import make_config, entry_point
    from reasondistill.models import load_model, ModelSpec
    work, log = start(a)
    levels = a.eval_levels
    train_probs = toy2_problems(a.train_per_level, 'train', families=('chain',))
    dev = toy2_problems(a.dev_per_level, 'dev', families=('chain',), levels=levels)
    test = toy2_problems(a.eval_per_level, 'test', families=('chain',), levels=levels)
    ex, dstats = teacher_examples(train_probs, work / 'traces', a.samples, teacher=TEACHER, student=STUDENT, max_new_tokens=a.max_new_tokens)
    gold = {p.id: p.answer for p in train_probs}
    ex = [dict(e, answer=gold[e['problem_id']]) for e in ex]
    refs = reference_examples(train_probs)
    from reasondistill.models import load_tokenizer
    stok = load_tokenizer(STUDENT)
    mean_tok = sum(len(stok(e['completion'], add_special_tokens=False)['input_ids']) for e in ex) / max(1, len(ex))
    half_tokens = a.token_budget // 2
    half_steps = max(1, round(half_tokens / (a.batch_size * mean_tok)))
    log(f"data: {dstats['kept']} verified traces of {len(train_probs) * a.samples}; {mean_tok:.1f} tokens each; {half_steps} SFT steps per half")

    def tc(lr, seed, steps):
        return TrainConfig(lr=lr, max_steps=steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                           save_steps=10 ** 6, seed=seed, scheduler='constant_with_warmup')

    def stage1(seed):
        out = work / f'seed{seed}' / 'stage1-sft'
        if not _done(out): train_sft(ex, Run(str(out), default_student_spec(STUDENT)), SFTConfig(tc(a.lr, seed, half_steps)), method='sft')
        return str(out / 'final')

    def train(arm, hp, seed):
        start_adapter = stage1(seed)
        out = work / f'seed{seed}' / f"{arm}-lr{hp['lr']:g}"
        if _done(out): return str(out / 'final')
        spec = replace(default_student_spec(STUDENT), lora=None, adapter=start_adapter)
        t = tc(hp['lr'], seed, half_steps)
        if arm == 'sft': train_sft(ex, Run(str(out), spec), SFTConfig(t), method='sft')
        else:
            c = {'budget.tokens': half_tokens, 'rollout.max_new_tokens': a.rollout_tokens, 'self_teacher.template': 'short',
                 'self_teacher.teacher': 'live'}
            if arm == 'opsd-none': c['self_teacher.privileged'] = 'none'
            if arm.startswith('atesd-a'): c['exposure.reveal'] = float(arm[len('atesd-a'):])   # a fixed reveal ratio
            name = 'opsd' if arm == 'opsd-none' else 'atesd-fixed' if arm.startswith('atesd-a') else arm
            cfg = make_config(name, c); cfg.train = replace(t, max_steps=max(1, math.ceil(half_steps * a.max_steps_factor)))
            entry_point(name)(refs, Run(str(out), spec), cfg, method=arm)
        return str(out / 'final')

    def score(adapter, split):
        probs = dev if split == 'dev' else test
        return evaluate_adapter(adapter, probs, Path(adapter).parent / f'eval-{split}', student=STUDENT, n_samples=a.eval_samples,
                                max_new_tokens=a.max_new_tokens, name=f'{Path(adapter).parent.name} ({split})')

    sel = DevSelection(sweep_from_args(a), train, score, seeds=a.test_seeds, dev_seeds=(0,))
    arms = a.methods
    runs = run_phase(a, sel, arms, log)
    if runs is None: return
    # privileged gain: base, stage-1 students, chosen arms' final students, on test references
    from reasondistill.toyworld2 import REFERENCE_TEMPLATE, reference_solution
    from reasondistill.models import render_prompt
    from reasondistill.eval.diagnostics import privileged_gain
    gain_probs = test[: max(8, len(test) // 2)]
    def gain(adapter):   # the model as trained (adapters on): does training keep its use of the reference?
        model, tok = load_model(ModelSpec(STUDENT, quant='4bit', adapter=adapter))
        refs = {p.id: reference_solution(p) for p in gain_probs}
        ex = [dict(prompt=render_prompt(tok, p.question), problem_id=p.id,
                   teacher_prompt=render_prompt(tok, REFERENCE_TEMPLATE.format(question=p.question, solution=refs[p.id]))) for p in gain_probs]
        return [e['gain'] for e in privileged_gain(model, tok, ex, refs, disable_adapter=False)['per_example']]
    from reasondistill.eval.metrics import hierarchical_bootstrap
    gains = {'base': hierarchical_bootstrap([gain(None)], bounds=None),
             'stage 1 (SFT)': hierarchical_bootstrap([gain(str(work / f'seed{s}' / 'stage1-sft' / 'final')) for s in a.test_seeds], bounds=None)}
    for arm in arms:
        gains[arm] = hierarchical_bootstrap([gain(train(arm, sel.chosen[arm], s)) for s in a.test_seeds], bounds=None)
    base = evaluate_adapter(None, test, work / 'base-eval-test', student=STUDENT, n_samples=a.eval_samples, max_new_tokens=a.max_new_tokens, name='base')
    s1 = [dict(score(stage1(s), 'test'), method='stage 1 (SFT)', seed=s) for s in a.test_seeds]
    agg = aggregate_results([*runs, *s1])
    verdicts = []
    for arm, bl, claim in (('opsd', 'sft', 'OPSD (self-teacher shown the reference) beats continued SFT at equal budget'),
                           ('atesd', 'sft', 'ATESD beats continued SFT at equal budget'),
                           ('atesd', 'opsd', "ATESD's adaptive reveal ratio beats the full reference (ratio 1, OPSD)"),
                           ('atesd', 'atesd-a0.5', "ATESD's adaptive reveal ratio beats a fixed ratio of 0.5"),
                           ('atesd', 'atesd-a0', "ATESD's adaptive reveal ratio beats a fixed ratio of 0 (no reference)"),
                           ('atesd', 'atesd-random', "ATESD's adaptive reveal ratio beats a random one")):
        if arm in arms and bl in arms:
            c = pair_ci(runs, arm, bl)
            ev = 'not measured' if c is None else f"{100 * c['mean']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] points"
            verdicts.append(dict(claim=claim, verdict=_verdict(c, 1), arm=arm, baseline=bl, metric='accuracy', ci=c,
                                 evidence=f'{arm} − {bl}, accuracy: {ev}', v1=v1_pair('onpolicy_toy', arm, bl)))   # v1 used the same arm names
    res = dict(config={k: v for k, v in vars(a).items() if not k.startswith('_') and k not in ('t_start', 'load_start')},
               data=dict(dstats, mean_trace_tokens=mean_tok, half_steps=half_steps, n_train_problems=len(train_probs)),
               selection=sel.record(), base=dict(accuracy=base['accuracy'], accuracy_ci=base['accuracy_ci']),
               aggregate=agg, privileged_gain=gains, runs=[*runs, *s1], verdicts=verdicts)
    f = lambda c, k=100: f"{k * c['mean']:.1f} [{k * c['lo']:.1f}, {k * c['hi']:.1f}]"
    lines = [f'# OPSD and ATESD on toy world v2{tiny_note(a)}', '',
             f"Student toy2:student (QLoRA NF4, r = 16); stage-1 data: {dstats['kept']} verified traces of {TEACHER}; budget "
             f"{a.token_budget} completion tokens (half stage 1). Stage-2 learning rate per arm chosen on dev (seed 0) from "
             f"{sel.sweep.grid['lr']}. Test: {len(test)} chain problems at levels {list(levels)}, {a.eval_samples} samples each "
             f"(T = 1), seeds {list(a.test_seeds)}. Intervals: 95% hierarchical bootstrap over seeds and problems.", '',
             {'table': 'results', 'metrics': ['accuracy', 'mean_tokens'], 'baseline': 'sft', 'methods': ['stage 1 (SFT)', *arms]}, '',
             {'table': 'dev', 'key': 'selection'}, '']
    lines += ['', '## Privileged gain on test references (nats/token; + = the reference in the prompt helps)', '',
              '| model | gain |', '|---|---:|'] + [f"| {k} | {v['mean']:+.2f} [{v['lo']:+.2f}, {v['hi']:+.2f}] |" for k, v in gains.items()]
    lines += ['', f"Base student (no training): accuracy {100 * base['accuracy']:.1f}%."]
    if verdicts:
        lines += ['', "## Verdicts on the seed papers' claims", '', "v1: the same claim on toy world v1's on-policy table (`onpolicy_toy.json`: "
                  "one fixed learning rate, 95% Student-t over 3 seeds), where every OPSD and ATESD run collapsed.", '',
                  '| claim | verdict | evidence | v1 |', '|---|---|---|---|']
        lines += [f"| {v['claim']} | {v['verdict']} | {v['evidence']} | {v1_text(v.get('v1'))} |" for v in verdicts]
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
