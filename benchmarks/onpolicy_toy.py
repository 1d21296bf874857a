"""SFT vs offline token-level KD vs on-policy distillation (GKD, OPD) vs on-policy self-distillation (OPSD) on the toy
world at equal training-token budgets, over seeds.

    nice -n 19 python benchmarks/onpolicy_toy.py [--seeds 3] [--train-per-level 40] [--token-budget 150000]
                                                 [--eval-per-level 50] [--work runs/onpolicy_toy] [--out benchmarks/results/onpolicy_toy]
    python benchmarks/onpolicy_toy.py --tiny --work /tmp/op --out /tmp/op/res     # smoke run: a few problems, tiny budget

Protocol (resumable: every stage skips what `--work` already holds).
1. Data. The shipped toy teacher samples `--samples` traces (T = 1) for `--train-per-level` training problems per level
   (levels 1-8); the verified ones (`sft.sft_examples`) are the data of `sft`, of offline KD (`--kd-method`, default
   kd-fkl) and of GKD's off-policy share; their problems' prompts are what the on-policy methods sample from; the first
   verified trace of each problem is OPSD's privileged reference solution. Held-out: verified teacher traces on
   `--heldout-per-level` dev problems, for the fidelity metrics.
2. Training, equal budgets. Every method trains on the same number of completion (loss) tokens, `--token-budget`.
   Offline methods (sft, KD) run max_steps = budget / (batch size x mean completion tokens of the data); the on-policy
   ones (gkd: lambda 0.5, JSD(0.5), tau 0.9; opd: sampled-token reverse KL; opsd: clipped forward KL to the
   self-teacher; sft+opd: SFT on half the budget, then OPD from that adapter on the rest) stop when they have trained on the budget (`OnPolicyConfig.token_budget`), at most
   `--max-steps-factor` times the offline step count. Constant learning rate `--lr` after a 5% warm-up for all, so that
   a budget stop does not cut a schedule short. QLoRA student (toy:student, NF4, LoRA r = 16), batch `--batch-size`.
   `base`: the untrained student, for reference.
3. Evaluation. `--eval-samples` completions (T = 1) per test problem at levels `--eval-levels`; accuracy = avg@n, overall
   and by level; fidelity (top-1 agreement, dense KL to the toy teacher) on the held-out traces; training seconds and,
   for on-policy methods, the share of step time spent generating.
4. Aggregation over seeds: mean and 95% Student-t interval (`compare.aggregate_results`); seed-paired difference to SFT.
Writes `--out`.json, `--out`.md and `--out`_by_level.png.
"""
import argparse, math, os, sys, time
from pathlib import Path

METHODS = ('base', 'sft', 'kd', 'gkd', 'opd', 'opsd', 'sft+opd')

def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--train-per-level', type=int, default=40)
    ap.add_argument('--samples', type=int, default=2); ap.add_argument('--heldout-per-level', type=int, default=4)
    ap.add_argument('--token-budget', type=int, default=150_000); ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--max-steps-factor', type=float, default=8.0); ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--kd-method', default='kd-fkl', help='the offline KD baseline (the best of benchmarks/kd_toy.py)')
    ap.add_argument('--max-length', type=int, default=256); ap.add_argument('--rollout-tokens', type=int, default=192)
    ap.add_argument('--eval-levels', default='2,4,6,8'); ap.add_argument('--eval-per-level', type=int, default=50)
    ap.add_argument('--eval-samples', type=int, default=2); ap.add_argument('--max-new-tokens', type=int, default=256)
    ap.add_argument('--methods', default=','.join(METHODS)); ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--work', default='runs/onpolicy_toy'); ap.add_argument('--out', default='benchmarks/results/onpolicy_toy')
    ap.add_argument('--tiny', action='store_true', help='smoke run: a few problems, a tiny budget, 1 seed (numbers meaningless)')
    a = ap.parse_args()
    if a.tiny:
        a.seeds, a.train_per_level, a.samples, a.heldout_per_level, a.batch_size, a.token_budget = 1, 1, 1, 1, 4, 300
        a.eval_levels, a.eval_per_level, a.eval_samples, a.max_new_tokens, a.rollout_tokens = '2,4', 2, 1, 96, 32
    a.eval_levels = tuple(int(x) for x in a.eval_levels.split(','))
    a.methods = tuple(m for m in a.methods.split(',') if m)
    unknown = set(a.methods) - set(METHODS)
    if unknown: ap.error(f'unknown methods {sorted(unknown)}; known: {METHODS}')
    return a

def data(a, work, log):
    "Teacher traces on training and dev problems -> (train examples, held-out examples, stats)."
    from reasondistill.compare import teacher_examples
    from reasondistill.toyworld import toy_problems, LEVELS
    out, stats = {}, {}
    for name, split, n in (('train', 'train', a.train_per_level), ('heldout', 'dev', a.heldout_per_level)):
        probs = toy_problems(n, LEVELS, split=split)
        ex, s = teacher_examples(probs, work / f'traces-{name}', a.samples, max_new_tokens=a.max_new_tokens)
        out[name], stats[name] = ex, s
        if name == 'train': out['problems'] = probs
        log(f"{name}: {s['kept']} verified traces of {len(probs) * a.samples} ({len(probs)} problems)")
    return out['train'], out['heldout'], out['problems'], stats

def train(a, method, seed, train_ex, held_ex, probs, offline_steps, mean_tok, work):
    from dataclasses import replace
    from reasondistill.train import TrainConfig
    from reasondistill.sft import SFTRun, train_sft, default_student_spec
    from reasondistill.kd import KDRun, kd_config_for, train_kd
    from reasondistill.models import load_tokenizer
    from reasondistill.onpolicy import OnPolicyRun, onpolicy_config_for, train_onpolicy
    from reasondistill.selfdistill import OPSDRun, opsd_config_for, opsd_examples, train_opsd
    tc = TrainConfig(lr=a.lr, max_steps=offline_steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                     save_steps=10 ** 6, seed=seed, scheduler='constant_with_warmup')
    on_tc = replace(tc, max_steps=max(1, math.ceil(offline_steps * a.max_steps_factor)))
    out = str(work / f'seed{seed}' / method)
    common = dict(token_budget=a.token_budget, max_new_tokens=a.rollout_tokens, fidelity_every=0)
    if method == 'sft': return train_sft(train_ex, SFTRun(default_student_spec(), tc, out), method='sft')
    if method == 'sft+opd':          # half the budget SFT, then OPD from that adapter on the other half
        half = train_sft(train_ex, SFTRun(default_student_spec(), replace(tc, max_steps=max(1, offline_steps // 2)), out + '/stage1-sft'), method='sft')
        spec = replace(default_student_spec(), lora=None, adapter=half['final'])
        s2 = train_onpolicy(_prompts(train_ex), OnPolicyRun(spec, on_tc, out, teacher='toy:teacher',
                            op=onpolicy_config_for('opd', **dict(common, token_budget=max(1, int(a.token_budget - half['global_step'] * a.batch_size * mean_tok))))),
                            method='sft+opd')
        s2['rollouts'] = dict(s2['rollouts'], loss_tokens=s2['rollouts']['loss_tokens'] + half['global_step'] * a.batch_size * mean_tok)
        return s2
    if method == 'kd':
        kd = kd_config_for(a.kd_method, fidelity_every=0)
        return train_kd(train_ex, KDRun(default_student_spec(), tc, out, teacher='toy:teacher', kd=kd), method=a.kd_method, heldout=held_ex)
    if method in ('gkd', 'opd'):
        ex = train_ex if method == 'gkd' else _prompts(train_ex)
        return train_onpolicy(ex, OnPolicyRun(default_student_spec(), on_tc, out, teacher='toy:teacher',
                                              op=onpolicy_config_for(method, **common)), method=method, heldout=held_ex if method == 'gkd' else None)
    cfg = opsd_config_for('opsd', template='short', **{k: v for k, v in common.items() if k != 'fidelity_every'})
    sols = {}
    for e in train_ex: sols.setdefault(e['problem_id'], e['completion'])
    ex = opsd_examples([p for p in probs if p.id in sols], load_tokenizer('toy:student'), cfg, sols)
    return train_opsd(ex, OPSDRun(default_student_spec(), on_tc, out, cfg), method='opsd')

def _prompts(examples):
    "One prompt-only example per problem."
    seen, out = set(), []
    for e in examples:
        if e['problem_id'] not in seen: seen.add(e['problem_id']); out.append(dict(e, completion=''))
    return out

def main():
    a = parse()
    import torch
    from reasondistill.core import set_threads, read_json
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.signals import tokenize_example, collate_tokenized, ModelTeacher
    from reasondistill.toyworld import toy_problems
    from reasondistill import compare
    set_threads(a.threads or None)
    work, t_start, load0 = Path(a.work), time.time(), os.getloadavg()
    work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(f'[{time.time() - t_start:6.0f}s] {m}', flush=True)
    train_ex, held_ex, probs, data_stats = data(a, work, log)
    stok = load_tokenizer('toy:student')
    rows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in train_ex]
    mean_tok = sum(sum(r['completion_mask']) for r in rows) / len(rows)
    offline_steps = max(1, round(a.token_budget / (a.batch_size * mean_tok)))
    log(f'budget {a.token_budget} completion tokens: {offline_steps} offline steps ({mean_tok:.1f} tokens per trace)')
    teacher, _ = load_model('toy:teacher')
    hrows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in held_ex]
    held_batches = [collate_tokenized(hrows[i:i + 16], stok.pad_token_id) for i in range(0, len(hrows), 16)]
    test_probs = toy_problems(a.eval_per_level, a.eval_levels, split='test')
    tsig = ModelTeacher(teacher, 'full', temperature=1.0, name='toy:teacher')
    runs = []
    for seed in range(a.seeds):
        for method in a.methods:
            rdir = work / f'seed{seed}' / method
            if (rdir / compare.RESULT_FILE).exists(): runs.append(read_json(rdir / compare.RESULT_FILE)); continue
            t0 = time.perf_counter()
            summ = train(a, method, seed, train_ex, held_ex, probs, offline_steps, mean_tok, work) if method != 'base' else dict(final=None, global_step=0)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            ev = compare.evaluate_adapter(summ['final'], test_probs, rdir / 'eval', n_samples=a.eval_samples,
                                          max_new_tokens=a.max_new_tokens, name=method, teacher=tsig, heldout_batches=held_batches)
            ro = summ.get('rollouts') or {}
            tokens = ro.get('loss_tokens', summ['global_step'] * a.batch_size * mean_tok)
            if method == 'base': ev['train_tokens_note'] = 'untrained student base'
            r = compare.save_result(rdir, method, seed, train_seconds=t_train, eval_seconds=time.perf_counter() - t0,
                                    train_loss=summ.get('train_loss'), steps=summ['global_step'], train_tokens=tokens,
                                    gen_share=ro.get('gen_share'), mean_rollout_tokens=ro.get('mean_gen_tokens'), **ev)
            runs.append(r)
            log(f"seed {seed} {method:5} acc {100 * r['accuracy']:5.1f}%  held-out KL {r['heldout_kl']:.4f}  steps {r['steps']}  "
                f"tokens {tokens:.0f}  (train {t_train:.0f}s, eval {r['eval_seconds']:.0f}s)")
    runs = [r for r in runs if r['method'] in a.methods]
    agg = compare.aggregate_results(runs, metrics=('accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens', 'steps',
                                                   'train_tokens', 'train_seconds', 'gen_share'))
    diffs = compare.paired_differences(runs, 'sft') if 'sft' in agg else None
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    compare.plot_by_level(agg, path=png, title=f'Toy world: on-policy distillation vs SFT/KD, {a.seeds} seed(s), 95% t-interval')
    load1 = os.getloadavg()
    lines = ['# On-policy distillation vs SFT and offline KD on the toy world' + (' (TINY smoke run: numbers are meaningless)' if a.tiny else ''), '',
             f"Equal training-token budget: {a.token_budget} completion tokens per run (offline methods: {offline_steps} steps x "
             f"{a.batch_size} sequences of {mean_tok:.1f} tokens on average; on-policy methods: until the budget, at most "
             f"{math.ceil(offline_steps * a.max_steps_factor)} steps). Constant lr {a.lr} after warm-up, QLoRA r = 16 on toy:student. "
             f"kd = {a.kd_method}; gkd: lambda 0.5, JSD(0.5), tau 0.9; opd: sampled-token reverse KL; opsd: clipped forward KL to the "
             f"student's base shown a verified teacher trace. Rollouts at most {a.rollout_tokens} tokens. Data: {len(train_ex)} verified "
             f"teacher traces ({a.train_per_level} problems per level x {a.samples} samples); held-out for fidelity: {len(held_ex)} "
             f"traces on dev problems. Test: {a.eval_per_level} problems per level at levels {', '.join(map(str, a.eval_levels))}, "
             f"{a.eval_samples} samples each (T = 1). Seeds: {a.seeds}; 95% Student-t intervals; Δ vs sft is seed-paired.", '',
             compare.results_markdown(agg, diffs=diffs, baseline='sft'), '',
             f"Wall time of this invocation {time.time() - t_start:.0f} s (finished runs are reused); load average at start "
             f"{load0[0]:.2f}, at end {load1[0]:.2f}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads. Plot: `{png.name}`.", '']
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()}, data=data_stats,
               offline_steps=offline_steps, mean_trace_tokens=mean_tok, aggregate=agg, paired_vs_sft=diffs, runs=runs, load_avg_start=load0)
    compare.write_benchmark(a.out, lines, res, t_start)
    return 0

if __name__ == '__main__':
    sys.exit(main())
