"""On-policy and self-distillation methods against SFT and offline KD on the toy world, at equal training-token
budgets, over seeds, with accuracy-vs-training-tokens curves.

    nice -n 19 python benchmarks/onpolicy_toy.py [--seeds 3] [--token-budget 48000] [--work runs/onpolicy_toy]
                                                 [--out benchmarks/results/onpolicy_toy] [--only-seeds 0,2] [--threads 1]
    python benchmarks/onpolicy_toy.py --tiny --work /tmp/op --out /tmp/op/res     # smoke run: a few problems, tiny budget

Protocol (resumable: every stage skips what `--work` already holds; `--only-seeds` lets two processes share the seeds,
after a first call has made the data; a last call without it aggregates).
1. Data. The shipped toy teacher samples `--samples` traces (T = 1) for `--train-per-level` training problems per level
   (levels 1-8). The verified ones are the data of every offline objective; their problems (prompts and gold answers)
   are what the on-policy methods sample from; the first verified trace of each problem is the privileged reference of
   OPSD/ATESD. Held-out: verified teacher traces on `--heldout-per-level` dev problems, for fidelity metrics.
2. Stage 1 (shared by every arm of a seed): SFT of the QLoRA student (toy:student, NF4, LoRA r = 16) on half the
   budget, B/2 completion tokens. Real pipelines run on-policy distillation after SFT, and from the toy base (which
   answers without reasoning) OPD collapses and OPSD's self-teacher has nothing to offer (pilot, `nbs/14_onpolicy`).
3. Stage 2, every arm from the stage-1 adapter, on the other B/2 completion (loss) tokens: `sft` (continued), `kd`
   (`--kd-method`, default kd-rkl: the best offline KD of benchmarks/kd_toy.py), `gkd` (lambda 0.5, JSD 0.5, tau 0.9),
   `opd` (sampled-token reverse KL), `kepo` (gated GKD, lambda 1), `opsd` (clipped forward KL to the live student shown a
   verified trace), `atesd` (OPSD with the Beta-controller's reveal ratio), `tsd-kd`, `curiosft`. Offline arms run
   max_steps = (B/2) / (batch x mean completion tokens); on-policy arms stop at B/2 trained tokens
   (`OnPolicyConfig.token_budget`), at most `--max-steps-factor` times that step count. Constant lr after a 5% warm-up.
   Every arm also saves its adapter at B/4 stage-2 tokens, for the curves. Ablation arms (`--methods`, not run by
   default): `gkd-onpolicy` (lambda 1: KEPO's ungated baseline), `gkd-b0.9` (lambda 1, beta 0.9, T 1: TSD-KD's GKD
   baseline), `kepo-all` (the gated loss averaged over all rollout tokens), `kepo-steps` (KEPO for the
   offline arms' step count, i.e. as many rollouts as `gkd-onpolicy` makes, whatever it trains on), `atesd-random`, `atesd-a0` / `atesd-a0.5`
   (fixed reveal ratios: the card's sweep; `opsd` is ratio 1), `tsd-kd-released` (the released code's PL sign and EM
   rule), `curiosft-fixed-tau`. `--stage2-lr` changes the arms' learning rate only (a sensitivity check).
4. Evaluation: `--eval-samples` completions (T = 1) per test problem at `--eval-levels`; accuracy = avg@n, overall and
   by level, at 0 (base), B/2 (stage 1), 3B/4 and B tokens; fidelity (top-1 agreement, dense KL to the toy teacher)
   on the held-out traces at B.
5. Aggregation: mean and 95% hierarchical-bootstrap interval over seeds and test problems for accuracy (Student-t over seeds
   for the other metrics); difference to `sft` (continued SFT) paired on seeds and problems.
Writes `--out`.json, `--out`.md, `--out`_by_level.png and `--out`_curves.png.
"""
import math, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note

MAIN = ('sft', 'kd', 'gkd', 'opd', 'kepo', 'opsd', 'atesd', 'tsd-kd', 'curiosft')
ABLATIONS = ('gkd-onpolicy', 'gkd-b0.9', 'kepo-all', 'kepo-steps', 'atesd-random', 'atesd-a0', 'atesd-a0.5', 'tsd-kd-released', 'curiosft-fixed-tau')
ARMS = MAIN + ABLATIONS

def parse():
    ap = bench_parser('onpolicy_toy', __doc__, MAIN, seeds=3, train_per_level=20, samples=2, heldout_per_level=4, batch_size=8, lr=3e-3,
                      eval_levels='1,2,3,4', eval_per_level=25)
    ap.add_argument('--only-seeds', default='', help='run only these seeds (a shard; the aggregating call writes the results)')
    ap.add_argument('--token-budget', type=int, default=48_000, help='completion tokens per run (stage 1 + stage 2)')
    ap.add_argument('--max-steps-factor', type=float, default=6.0, help="on-policy arms' step cap, as a multiple of the offline arms' steps")
    ap.add_argument('--stage2-lr', type=float, default=None, help='learning rate of the stage-2 arms (default: --lr); a sensitivity check')
    ap.add_argument('--kd-method', default='kd-rkl', help='the offline KD arm (the best of benchmarks/kd_toy.py)')
    ap.add_argument('--rollout-tokens', type=int, default=192, help='rollout length cap')
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=1, samples=1, heldout_per_level=1, batch_size=4, token_budget=600,
                                 eval_levels='2,4', eval_per_level=2, eval_samples=1, max_new_tokens=96, rollout_tokens=32), known=ARMS)
    a.run_seeds = tuple(int(s) for s in a.only_seeds.split(',') if s) or tuple(range(a.seeds))
    return a

def data(a, work, log):
    "Teacher traces on training and dev problems -> (train examples with gold answers, held-out examples, problems, stats)."
    from reasondistill.eval.compare import teacher_examples
    from reasondistill.toyworld import toy_problems, LEVELS
    out, stats = {}, {}
    for name, split, n in (('train', 'train', a.train_per_level), ('heldout', 'dev', a.heldout_per_level)):
        probs = toy_problems(n, LEVELS, split=split)
        ex, s = teacher_examples(probs, work / f'traces-{name}', a.samples, max_new_tokens=a.max_new_tokens)
        gold = {p.id: str(p.answer) for p in probs}
        out[name], stats[name] = [dict(e, answer=gold[e['problem_id']]) for e in ex], s
        if name == 'train': out['problems'] = probs
        log(f"{name}: {s['kept']} verified traces of {len(probs) * a.samples} ({len(probs)} problems)")
    return out['train'], out['heldout'], out['problems'], stats

def _prompts(examples):
    "One prompt-only example per problem (with its gold answer)."
    seen, out = set(), []
    for e in examples:
        if e['problem_id'] not in seen: seen.add(e['problem_id']); out.append(dict(e, completion=''))
    return out

def _step_saver(steps, out):
    "A callback saving the adapter as OUT/tokens-N at the given {global step: N}."
    from transformers import TrainerCallback
    class StepSaver(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            n = steps.get(state.global_step)
            if n is not None and not (Path(out) / f'tokens-{n}').exists(): model.save_pretrained(Path(out) / f'tokens-{n}')
    return StepSaver()

def stage1(a, seed, train_ex, half_steps, work):
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    tc = TrainConfig(lr=a.lr, max_steps=half_steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                     save_steps=10 ** 6, seed=seed, scheduler='constant_with_warmup')
    return train_sft(train_ex, Run(str(work / f'seed{seed}' / 'stage1-sft'), default_student_spec()), SFTConfig(tc), method='sft')

def _references(probs, train_ex):
    "Reference examples of the problems that have a verified teacher trace (the first one is the reference)."
    from reasondistill.models import load_tokenizer, render_prompt
    tok, sols = load_tokenizer('toy:student'), {}
    for e in train_ex: sols.setdefault(e['problem_id'], e['completion'])
    return [dict(prompt=render_prompt(tok, p.question), completion='', question=p.question, answer=p.answer, reference=sols[p.id],
                 problem_id=p.id, level=p.meta.get('level'), source=p.meta.get('source')) for p in probs if p.id in sols]

def stage2(a, method, seed, start, train_ex, held_ex, probs, half_steps, half_tokens, work):
    "Train one arm from the stage-1 adapter on B/2 tokens; returns (summary, {stage-2 tokens: adapter dir} of the mid point)."
    from dataclasses import replace
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.registry import make_config, entry_point
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.methods.kd import train_kd
    tc = TrainConfig(lr=a.stage2_lr or a.lr, max_steps=half_steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                     save_steps=10 ** 6, seed=seed, scheduler='constant_with_warmup')
    on_tc = replace(tc, max_steps=max(1, math.ceil(half_steps * a.max_steps_factor)))
    out = work / f'seed{seed}' / method
    spec = replace(default_student_spec(), lora=None, adapter=start)
    mid = half_tokens // 2
    budget = {'budget.tokens': half_tokens, 'budget.save_at': [mid]}
    common = {**budget, 'rollout.max_new_tokens': a.rollout_tokens, 'fidelity.every': 0}
    def cfg_of(name, overrides, train):
        c = make_config(name, overrides); c.train = train; return c
    if method in ('sft', 'kd'):
        cbs = [_step_saver({max(1, half_steps // 2): mid}, out)]
        if method == 'sft': s = train_sft(train_ex, Run(str(out), spec), SFTConfig(tc), method='sft', callbacks=cbs)
        else: s = train_kd(train_ex, Run(str(out), spec, teacher='toy:teacher'), cfg_of(a.kd_method, {'fidelity.every': 0}, tc),
                           method=a.kd_method, heldout=held_ex, callbacks=cbs)
        return s, out / f'tokens-{mid}'
    if method in ('gkd', 'gkd-onpolicy', 'gkd-b0.9', 'opd', 'kepo', 'kepo-all', 'kepo-steps'):
        name = 'kepo-gate' if method.startswith('kepo') else 'gkd-onpolicy' if method == 'gkd-b0.9' else method
        ex = train_ex if method == 'gkd' else _prompts(train_ex)
        extra = {'gate.norm': 'all'} if method == 'kepo-all' else {'loss.beta': 0.9, 'rollout.temperature': 1.0} if method == 'gkd-b0.9' else {}
        if method == 'kepo-steps': cfg = cfg_of(name, {**common, **extra, 'budget.tokens': 0}, tc)   # equal steps/rollouts, not equal trained tokens
        else: cfg = cfg_of(name, {**common, **extra}, on_tc)   # gkd-b0.9: TSD-KD's GKD baseline (beta 0.9, T = 1, lambda 1)
        s = entry_point(name)(ex, Run(str(out), spec, teacher='toy:teacher'), cfg, method=method, heldout=held_ex if method == 'gkd' else None)
        return s, out / f'tokens-{mid}'
    if method.startswith('tsd-kd'):
        s = entry_point(method)(_prompts(train_ex), Run(str(out), spec, teacher='toy:teacher'), cfg_of(method, common, on_tc), method=method)
        return s, out / f'tokens-{mid}'
    if method.startswith('curiosft'):
        s = entry_point(method)(train_ex, Run(str(out), spec), cfg_of(method, budget, on_tc), method=method)
        return s, out / f'tokens-{mid}'
    # opsd / atesd: the live student (the stage-1 SFT model as it trains) is the self-teacher, shown a verified trace
    refs = _references(probs, train_ex)
    c = {k: v for k, v in common.items() if k != 'fidelity.every'} | {'self_teacher.template': 'short', 'self_teacher.teacher': 'live'}
    if method.startswith('atesd-a'): name, c = 'atesd-fixed', {**c, 'exposure.reveal': float(method[len('atesd-a'):])}
    else: name = method
    s = entry_point(name)(refs, Run(str(out), spec), cfg_of(name, c, on_tc), method=method)
    return s, out / f'tokens-{mid}'

def main():
    a = parse()
    import torch
    from reasondistill.core import read_json
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.signals import tokenize_example, collate_tokenized, ModelTeacher
    from reasondistill.toyworld import toy_problems
    from reasondistill.eval import compare
    work, log = start(a)
    t_start, load0 = a.t_start, a.load_start
    train_ex, held_ex, probs, data_stats = data(a, work, log)
    stok = load_tokenizer('toy:student')
    rows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in train_ex]
    mean_tok = sum(sum(r['completion_mask']) for r in rows) / len(rows)
    half_tokens = a.token_budget // 2
    half_steps = max(1, round(half_tokens / (a.batch_size * mean_tok)))
    log(f'budget {a.token_budget} completion tokens: stage 1 and offline stage-2 arms {half_steps} steps each '
        f'({mean_tok:.1f} tokens per trace); on-policy arms stop at {half_tokens} stage-2 tokens')
    teacher, _ = load_model('toy:teacher')
    hrows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in held_ex]
    held_batches = [collate_tokenized(hrows[i:i + 16], stok.pad_token_id) for i in range(0, len(hrows), 16)]
    test_probs = toy_problems(a.eval_per_level, a.eval_levels, split='test')
    tsig = ModelTeacher(teacher, 'full', temperature=1.0, name='toy:teacher')
    ev_kw = dict(n_samples=a.eval_samples, max_new_tokens=a.max_new_tokens)
    def evaluate(adapter, d, name, fid=False):
        return compare.evaluate_adapter(adapter, test_probs, d, name=name, **ev_kw,
                                        **(dict(teacher=tsig, heldout_batches=held_batches) if fid else {}))
    base = evaluate(None, work / 'base-eval', 'base', fid=True)
    log(f"base student: acc {100 * base['accuracy']:.1f}%")
    for seed in a.run_seeds:
        t0 = time.perf_counter()
        s1 = stage1(a, seed, train_ex, half_steps, work)
        t1 = time.perf_counter() - t0
        ev1 = evaluate(s1['final'], work / f'seed{seed}' / 'stage1-sft' / 'eval', 'stage1', fid=True)
        log(f"seed {seed} stage 1 (SFT, {half_steps} steps): acc {100 * ev1['accuracy']:.1f}%")
        stage1_tokens = s1['global_step'] * a.batch_size * mean_tok
        for method in a.methods:
            rdir = work / f'seed{seed}' / method
            if (rdir / compare.RESULT_FILE).exists(): continue
            t0 = time.perf_counter()
            summ, mid_dir = stage2(a, method, seed, s1['final'], train_ex, held_ex, probs, half_steps, half_tokens, work)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            ev = evaluate(summ['final'], rdir / 'eval', method, fid=True)
            ro = summ.get('rollouts') or {}
            tokens = summ['global_step'] * a.batch_size * mean_tok if method in ('sft', 'kd') else summ['loss_tokens']   # offline: an estimate
            mid = evaluate(str(mid_dir), rdir / 'eval-mid', method + '@mid') if mid_dir.exists() else None
            curve = [dict(point='base', tokens=0, accuracy=base['accuracy']), dict(point='stage1', tokens=stage1_tokens, accuracy=ev1['accuracy'])]
            if mid: curve.append(dict(point='mid', tokens=stage1_tokens + half_tokens // 2, accuracy=mid['accuracy']))
            curve.append(dict(point='final', tokens=stage1_tokens + tokens, accuracy=ev['accuracy']))
            r = compare.save_result(rdir, method, seed, train_seconds=t_train + t1, stage2_seconds=t_train,
                                    eval_seconds=time.perf_counter() - t0, train_loss=summ.get('train_loss'), steps=summ['global_step'],
                                    train_tokens=stage1_tokens + tokens, stage2_tokens=tokens, gen_share=ro.get('gen_share'),
                                    mean_rollout_tokens=ro.get('mean_gen_tokens'), gated_out=ro.get('gated_out'),
                                    stage1_accuracy=ev1['accuracy'], curve=curve, **ev)
            log(f"seed {seed} {method:8} acc {100 * r['accuracy']:5.1f}%  (stage 1 {100 * ev1['accuracy']:.1f}%)  held-out KL "
                f"{r['heldout_kl']:.4f}  steps {r['steps']}  stage-2 tokens {tokens:.0f}  (train {t_train:.0f}s, eval {r['eval_seconds']:.0f}s)")
    runs = sorted((r for r in compare.collect_results(work) if r['method'] in a.methods), key=lambda r: (ARMS.index(r['method']), r['seed']))
    if a.only_seeds: return 0                                      # a shard: the aggregating call writes the results
    agg = compare.aggregate_results(runs, metrics=('accuracy', 'stage1_accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens',
                                                   'steps', 'stage2_tokens', 'stage2_seconds', 'gen_share'))
    diffs = compare.paired_differences(runs, 'sft') if 'sft' in agg else None
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    compare.plot_by_level(agg, path=png, title=f'Toy world: on-policy and self-distillation vs SFT/KD, {a.seeds} seed(s), 95% interval')
    cpng = Path(a.out + '_curves.png')
    compare.plot_token_curves(runs, [m for m in MAIN if m in a.methods], path=cpng,
                              title='Toy world: accuracy vs training tokens (stage-1 SFT shared, arms from B/2)')
    load1 = os.getloadavg()
    lines = ['# On-policy and self-distillation vs SFT and offline KD on the toy world' + tiny_note(a), '',
             f"Equal training-token budget B = {a.token_budget} completion tokens per run. Stage 1 (shared by the arms of a seed): "
             f"SFT on B/2 ({half_steps} steps x {a.batch_size} sequences of {mean_tok:.1f} tokens on average). Stage 2, every arm from "
             f"that adapter on B/2 more: offline arms {half_steps} steps; on-policy arms until {half_tokens} trained tokens (at most "
             f"{math.ceil(half_steps * a.max_steps_factor)} steps). Constant lr {a.lr} after warm-up (stage 2: {a.stage2_lr or a.lr}), QLoRA r = 16 on toy:student. "
             f"kd = {a.kd_method}; gkd: lambda 0.5, JSD(0.5), tau 0.9; opd: sampled-token reverse KL; kepo: GKD (lambda 1) on "
             f"verified rollouts only; opsd: clipped forward KL to the live student shown a verified teacher trace; atesd: OPSD "
             f"with the Beta-controller reveal ratio; tsd-kd and curiosft at their cards' defaults. Rollouts at most {a.rollout_tokens} "
             f"tokens. Data: {len(train_ex)} verified teacher traces ({a.train_per_level} problems per level x {a.samples} samples); "
             f"held-out for fidelity: {len(held_ex)} traces on dev problems. Test: {a.eval_per_level} problems per level at levels "
             f"{', '.join(map(str, a.eval_levels))}, {a.eval_samples} samples each (T = 1). Untrained base: {100 * base['accuracy']:.1f}%. "
             f"Seeds: {a.seeds}; Δ vs sft (continued SFT) is paired.", '',
             compare.results_markdown(agg, metrics=('accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens', 'stage2_tokens', 'gen_share'),
                                      diffs=diffs, baseline='sft', note=True), '',
             f"Wall time of this invocation {time.time() - t_start:.0f} s (finished runs are reused); load average at start "
             f"{load0[0]:.2f}, at end {load1[0]:.2f}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads. "
             f"Plots: `{png.name}`, `{cpng.name}`.", '']
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()}, data=data_stats,
               half_steps=half_steps, mean_trace_tokens=mean_tok, base=base, aggregate=agg, paired_vs_sft=diffs, runs=runs,
               load_avg_start=load0)
    compare.write_benchmark(a.out, lines, res, t_start, strict=a.strict)
    return 0

if __name__ == '__main__':
    sys.exit(main())
