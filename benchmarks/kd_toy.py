"""SFT vs token-level KD (kd-fkl, kd-rkl, kd-jsd) on the toy world at the same budget, over seeds; and KD from the
offline top-k cache against dense KD (held-out KL within 2%).

    nice -n 19 python benchmarks/kd_toy.py [--seeds 3] [--train-per-level 40] [--steps 200] [--eval-per-level 50]
                                           [--work runs/kd_toy] [--out benchmarks/results/kd_toy]
    python benchmarks/kd_toy.py --tiny --work /tmp/kd --out /tmp/kd/res      # a smoke run: a few problems, 2 steps

Protocol (resumable: every stage skips what `--work` already holds).
1. Data. The shipped toy teacher samples `--samples` traces (T = 1) for `--train-per-level` training problems per level
   (levels 1-8); the verified ones, through the same recipe as the demo (`sft.sft_examples`), are the training data of
   every method. The same is done on `--heldout-per-level` dev-split problems: their verified traces are the held-out
   set of the fidelity metrics.
2. Training. From each seed, a QLoRA student (toy:student, NF4, LoRA r = 16) is trained by every method with the same
   budget: `--steps` optimizer steps of `--batch-size` sequences at learning rate `--lr` (cosine schedule). `sft`:
   `train_sft` (CE on the completion). `kd-fkl`, `kd-rkl`, `kd-jsd`: `train_kd` with the online teacher (full logits),
   tau = `--temperature`, pure KD (no CE term). `kd-fkl-cached`: kd-fkl from a top-k cache (k = `--topk`) captured once
   from the teacher at the same temperature over the training and held-out examples.
3. Evaluation. Each student samples `--eval-samples` completions (T = 1) per test problem at levels `--eval-levels`
   (`--eval-per-level` per level); accuracy = avg@n, overall and by level. Fidelity of every student (SFT included) to the
   teacher on the held-out traces: top-1 agreement and mean dense KL(p_T || p_S) per token at tau = 1.
4. Aggregation: mean and 95% hierarchical-bootstrap interval over seeds and test problems for accuracy, Student-t over seeds
   for the fidelity metrics (`compare.aggregate_results`), and the difference to SFT paired on seeds and problems. Dense vs cached: relative
   difference of the held-out KL of kd-fkl-cached against kd-fkl (mean over seeds; goal <= 2%).
Writes `--out`.json, `--out`.md and `--out`_by_level.png.
"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note

METHODS = ('sft', 'kd-fkl', 'kd-rkl', 'kd-jsd', 'kd-fkl-cached')
GOAL_CACHED_KL = 0.02

def parse():
    ap = bench_parser('kd_toy', __doc__, METHODS, seeds=3, train_per_level=40, samples=2, heldout_per_level=4, batch_size=16, lr=6e-3,
                      eval_per_level=50)
    ap.add_argument('--steps', type=int, default=200, help='optimizer steps of every method')
    ap.add_argument('--temperature', type=float, default=1.0, help='KD temperature tau')
    ap.add_argument('--topk', type=int, default=64, help='k of the offline top-k cache')
    return parse_args(ap, tiny=dict(seeds=1, train_per_level=1, samples=1, heldout_per_level=1, steps=2, batch_size=4,
                                    eval_levels='2,4', eval_per_level=2, eval_samples=1, max_new_tokens=96, topk=16), known=METHODS)

def data(a, work, log):
    "Teacher traces on training and dev problems -> (train examples, held-out examples, stats)."
    from reasondistill.eval.compare import teacher_examples
    from reasondistill.toyworld import toy_problems, LEVELS
    out, stats = {}, {}
    for name, split, n in (('train', 'train', a.train_per_level), ('heldout', 'dev', a.heldout_per_level)):
        probs = toy_problems(n, LEVELS, split=split)
        ex, s = teacher_examples(probs, work / f'traces-{name}', a.samples, max_new_tokens=a.max_new_tokens)
        out[name], stats[name] = ex, s
        log(f"{name}: {s['kept']} verified traces of {len(probs) * a.samples} ({len(probs)} problems)")
    return out['train'], out['heldout'], stats

def train(a, method, seed, train_ex, held_ex, work):
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.methods.kd import train_kd
    from reasondistill.registry import make_config
    tc = TrainConfig(lr=a.lr, max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                     save_steps=max(50, a.steps), seed=seed)
    out = str(work / f'seed{seed}' / method)
    if method == 'sft': return train_sft(train_ex, Run(out, default_student_spec()), SFTConfig(tc), method='sft')
    cfg = make_config(method.removesuffix('-cached'), {'temperature': a.temperature, 'topk': a.topk, 'fidelity.every': 0})
    cfg.train = tc
    cache = str(work / f'topk-k{a.topk}-t{a.temperature}') if method.endswith('-cached') else None
    return train_kd(train_ex, Run(out, default_student_spec(), teacher='toy:teacher', cache=cache), cfg, method=method, heldout=held_ex)

def main():
    a = parse()
    import torch
    from reasondistill.core import read_json
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.signals import tokenize_example, collate_tokenized
    from reasondistill.toyworld import toy_problems
    work, log = start(a)
    t_start, load0 = a.t_start, a.load_start
    train_ex, held_ex, data_stats = data(a, work, log)
    teacher, _ = load_model('toy:teacher'); stok = load_tokenizer('toy:student')
    hrows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in held_ex]
    held_batches = [collate_tokenized(hrows[i:i + 16], stok.pad_token_id) for i in range(0, len(hrows), 16)]
    test_probs = toy_problems(a.eval_per_level, a.eval_levels, split='test')
    from reasondistill.eval import compare
    from reasondistill.signals import ModelTeacher
    tsig = ModelTeacher(teacher, 'full', temperature=1.0, name='toy:teacher')
    runs = []
    for seed in range(a.seeds):
        for method in a.methods:
            rdir = work / f'seed{seed}' / method
            if (rdir / compare.RESULT_FILE).exists(): runs.append(read_json(rdir / compare.RESULT_FILE)); continue
            t0 = time.perf_counter(); summ = train(a, method, seed, train_ex, held_ex, work); t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            ev = compare.evaluate_adapter(summ['final'], test_probs, rdir / 'eval', n_samples=a.eval_samples,
                                          max_new_tokens=a.max_new_tokens, name=method, teacher=tsig, heldout_batches=held_batches)
            r = compare.save_result(rdir, method, seed, train_seconds=t_train, eval_seconds=time.perf_counter() - t0,
                                    train_loss=summ.get('train_loss'), fidelity_during_training=summ.get('fidelity'), **ev)
            runs.append(r)
            log(f"seed {seed} {method:14} acc {100 * r['accuracy']:5.1f}%  top-1 agreement {100 * r['top1_agreement']:5.1f}%  "
                f"held-out KL {r['heldout_kl']:.4f}  (train {t_train:.0f}s, eval {r['eval_seconds']:.0f}s)")
    runs = [r for r in runs if r['method'] in a.methods]
    agg = compare.aggregate_results(runs, metrics=('accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens'))
    diffs = compare.paired_differences(runs, 'sft') if 'sft' in agg else None
    cached = None
    if 'kd-fkl' in agg and 'kd-fkl-cached' in agg:
        dense = {r['seed']: r['heldout_kl'] for r in runs if r['method'] == 'kd-fkl'}
        rel = [(r['heldout_kl'] - dense[r['seed']]) / dense[r['seed']] for r in runs if r['method'] == 'kd-fkl-cached' and r['seed'] in dense]
        kd_, kc = agg['kd-fkl']['metrics']['heldout_kl']['mean'], agg['kd-fkl-cached']['metrics']['heldout_kl']['mean']
        cached = dict(dense_kl=kd_, cached_kl=kc, rel_diff=(kc - kd_) / kd_, rel_diff_per_seed=rel, goal=GOAL_CACHED_KL,
                      goal_met=abs((kc - kd_) / kd_) <= GOAL_CACHED_KL)
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    compare.plot_by_level(agg, path=png, title=f'Toy world: token-level KD vs SFT, {a.seeds} seed(s), 95% interval')
    load1 = os.getloadavg()
    train_s = {m: sum(r['train_seconds'] for r in runs if r['method'] == m) / agg[m]['n_seeds'] for m in agg}
    lines = ['# Token-level KD vs SFT on the toy world' + tiny_note(a), '',
             f"Same budget for every method: {a.steps} steps x {a.batch_size} sequences, lr {a.lr}, QLoRA r = 16 on toy:student; "
             f"KD at tau = {a.temperature}, pure KD (no CE), online teacher (full logits) or a top-{a.topk} cache. Data: "
             f"{len(train_ex)} verified teacher traces ({a.train_per_level} problems per level x {a.samples} samples); "
             f"held-out for fidelity: {len(held_ex)} verified teacher traces on dev problems. Test: {a.eval_per_level} problems "
             f"per level at levels {', '.join(map(str, a.eval_levels))}, {a.eval_samples} samples each (T = 1). Seeds: {a.seeds}.", '',
             compare.results_markdown(agg, diffs=diffs, baseline='sft', note=True), '',
             'Mean training time per run (s): ' + ', '.join(f'{m} {t:.0f}' for m, t in train_s.items()) + '.']
    if cached:
        lines += ['', f"Dense vs cached top-{a.topk} KD (kd-fkl): held-out KL {cached['dense_kl']:.4f} vs {cached['cached_kl']:.4f}, "
                  f"relative difference {100 * cached['rel_diff']:+.2f}% (per seed: "
                  f"{', '.join(f'{100 * x:+.2f}%' for x in cached['rel_diff_per_seed'])}); goal |diff| <= 2%: "
                  f"**{'met' if cached['goal_met'] else 'NOT met'}**."]
    lines += ['', f"Wall time of this invocation {time.time() - t_start:.0f} s (finished runs are reused); load average at start "
              f"{load0[0]:.2f}, at end {load1[0]:.2f}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads. "
              f"Plot: `{png.name}`.", '']
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()}, data=data_stats,
               aggregate=agg, paired_vs_sft=diffs, dense_vs_cached=cached, runs=runs, load_avg_start=load0)
    compare.write_benchmark(a.out, lines, res, t_start, strict=a.strict)
    return 0

if __name__ == '__main__':
    sys.exit(main())
