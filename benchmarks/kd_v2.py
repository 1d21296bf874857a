"""SFT vs token-level KD (kd-fkl, kd-rkl, kd-jsd) on toy world v2 at an equal budget, with the learning rate of every arm
chosen on dev: does distilling the teacher's distribution beat training on its sampled traces?

    python benchmarks/kd_v2.py [--seeds 3] [--steps 120] [--work runs/kd_v2] [--out benchmarks/results/kd_v2]
    python benchmarks/kd_v2.py --phase dev --methods sft,kd-fkl        # shards: dev runs first (seed 0),
    python benchmarks/kd_v2.py --phase test --only-seeds 1             # then test seeds, then a plain call aggregates
    python benchmarks/kd_v2.py --tiny --work /tmp/kd2 --out /tmp/kd2/res  # smoke run (numbers meaningless)

Protocol (`reasondistill.eval.compare`; resumable: finished runs and evaluations in --work are reused):
1. Data. toy2:teacher-small samples --samples traces (T = 1) of --train-per-level training chains per level (1-8); the
   verified ones are every arm's training data. The same teacher's verified traces of --heldout-per-level dev chains
   per level are the held-out set of the fidelity metrics.
2. Training. From each seed a QLoRA student (toy2:student, NF4, LoRA r = 16) is trained by every arm for --steps optimizer
   steps of --batch-size sequences (the same sequences for every arm): `sft` (cross-entropy on the completion), `kd-fkl`,
   `kd-rkl`, `kd-jsd` (pure KD from the online teacher's full distribution at tau = --temperature, no CE term).
3. Selection. Every arm's learning rate from the declared sweep --sweep-lr, chosen on dev (chains at --eval-levels,
   --dev-per-level problems per level, 2 samples) with the runs of seed 0; test evaluated once per arm and seed.
4. Test: accuracy (avg@--eval-samples at T = 1) on --eval-per-level test chains per level; fidelity to the teacher on the
   held-out traces (top-1 agreement, KL(p_T || p_S) per token at tau = 1). Intervals: hierarchical bootstrap over seeds and
   problems for accuracy (paired with `sft`), Student-t over seeds for the fidelity metrics.
The v1 table (`kd_toy.json`, a fixed learning rate, Student-t over seeds) is quoted beside each verdict.
Writes --out.json, --out.md and --out_by_level.png.
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import (bench_parser, parse_args, start, tiny_note, add_sweep, sweep_from_args, write_report, add_phases,
                    phase_seeds, run_phase, verdict as _verdict)

ARMS = ('sft', 'kd-fkl', 'kd-rkl', 'kd-jsd')
STUDENT, TEACHER = 'toy2:student', 'toy2:teacher-small'
CLAIMS = {'kd-fkl': 'forward-KL KD beats SFT on the same traces', 'kd-rkl': 'reverse-KL KD beats SFT on the same traces',
          'kd-jsd': 'JSD KD beats SFT on the same traces'}

def parse():
    ap = bench_parser('kd_v2', __doc__, ARMS, seeds=3, train_per_level=24, samples=2, heldout_per_level=4, batch_size=16,
                      lr=3e-3, max_length=1024, eval_levels='2,4,6,8', eval_per_level=30, eval_samples=2, max_new_tokens=256)
    add_sweep(ap, lr='2e-3,6e-3')
    ap.add_argument('--steps', type=int, default=120, help='optimizer steps of every arm')
    ap.add_argument('--temperature', type=float, default=1.0, help='KD temperature tau')
    ap.add_argument('--dev-per-level', type=int, default=15, help='dev problems per level for the learning-rate choice')
    add_phases(ap)
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=1, samples=1, heldout_per_level=1, steps=2, batch_size=4,
                                 eval_levels='2,4', eval_per_level=2, eval_samples=1, max_new_tokens=64, dev_per_level=2,
                                 sweep_lr='3e-3'), known=ARMS)
    a.test_seeds = phase_seeds(a)
    return a

def v1_verdicts() -> dict:
    "Each claim's verdict on toy world v1 (`kd_toy.json`: a fixed learning rate, Student-t over seeds), if that record is here."
    f = Path(__file__).parent / 'results' / 'kd_toy.json'
    if not f.exists(): return {}
    d = json.loads(f.read_text()).get('paired_vs_sft') or {}
    return {m: dict(mean=d[m].get('mean'), lo=d[m].get('lo'), hi=d[m].get('hi'), verdict=_verdict(d[m])) for m in CLAIMS if m in d}

def main():
    a = parse()
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.eval.compare import (teacher_examples, evaluate_adapter, DevSelection, aggregate_results,
                                            paired_differences, plot_by_level)
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.registry import make_config, entry_point
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.signals import ModelTeacher, tokenize_example, collate_tokenized
    work, log = start(a)
    levels = a.eval_levels
    train_probs = toy2_problems(a.train_per_level, 'train', families=('chain',))
    held_probs = toy2_problems(a.heldout_per_level, 'dev', families=('chain',))
    dev = toy2_problems(a.dev_per_level, 'dev', families=('chain',), levels=levels)
    test = toy2_problems(a.eval_per_level, 'test', families=('chain',), levels=levels)
    ex, dstats = teacher_examples(train_probs, work / 'traces', a.samples, teacher=TEACHER, student=STUDENT, max_new_tokens=a.max_new_tokens)
    held, hstats = teacher_examples(held_probs, work / 'traces-heldout', a.samples, teacher=TEACHER, student=STUDENT,
                                    max_new_tokens=a.max_new_tokens)
    log(f"data: {dstats['kept']} verified training traces, {hstats['kept']} held-out traces")
    stok = load_tokenizer(STUDENT)
    hrows = [tokenize_example(stok, e['prompt'], e['completion'], a.max_length) for e in held]
    held_batches = [collate_tokenized(hrows[i:i + 16], stok.pad_token_id) for i in range(0, len(hrows), 16)]
    tsig = None

    def train(arm, hp, seed):
        out = work / f'seed{seed}' / f"{arm}-lr{hp['lr']:g}"
        if (out / 'final' / 'adapter_config.json').exists(): return str(out / 'final')
        t = TrainConfig(lr=hp['lr'], max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, logging_steps=10,
                        save_steps=10 ** 6, seed=seed)
        if arm == 'sft': train_sft(ex, Run(str(out), default_student_spec(STUDENT)), SFTConfig(t), method='sft')
        else:
            cfg = make_config(arm, {'temperature': a.temperature, 'fidelity.every': 0}); cfg.train = t
            entry_point(arm)(ex, Run(str(out), default_student_spec(STUDENT), teacher=TEACHER), cfg, method=arm)
        return str(out / 'final')

    def score(adapter, split):
        nonlocal tsig
        if split == 'dev':
            return evaluate_adapter(adapter, dev, Path(adapter).parent / 'eval-dev', student=STUDENT, n_samples=2,
                                    max_new_tokens=a.max_new_tokens, name=f'{Path(adapter).parent.name} (dev)')
        if tsig is None: tsig = ModelTeacher(load_model(TEACHER)[0], 'full', temperature=1.0, name=TEACHER)
        return evaluate_adapter(adapter, test, Path(adapter).parent / 'eval-test', student=STUDENT, n_samples=a.eval_samples,
                                max_new_tokens=a.max_new_tokens, name=f'{Path(adapter).parent.name} (test)', teacher=tsig,
                                heldout_batches=held_batches)

    sel = DevSelection(sweep_from_args(a), train, score, seeds=a.test_seeds, dev_seeds=(0,))
    arms = a.methods
    runs = run_phase(a, sel, arms, log)
    if runs is None: return
    base = evaluate_adapter(None, test, work / 'base-eval-test', student=STUDENT, n_samples=a.eval_samples,
                            max_new_tokens=a.max_new_tokens, name='base')
    agg = aggregate_results(runs, metrics=('accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens'))
    diffs = paired_differences(runs, 'sft') if 'sft' in agg else {}
    v1 = v1_verdicts()
    pts = lambda c: 'not measured' if not c else f"{100 * c['mean']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] points"
    verdicts = []
    for m in (m for m in arms if m in CLAIMS):
        c = {k: diffs[m].get(k) for k in ('mean', 'lo', 'hi', 'n_seeds', 'n_problems')} if m in diffs else None
        verdicts.append(dict(claim=CLAIMS[m], arm=m, baseline='sft', metric='accuracy', verdict=_verdict(c), ci=c, v1=v1.get(m),
                             evidence=f'{m} − sft, accuracy: {pts(c)} (v1: {(v1.get(m) or {}).get("verdict", "not run")}, {pts(v1.get(m))})'))
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_by_level(agg, path=png, title=f'Toy world v2: token-level KD vs SFT ({len(a.test_seeds)} seeds, 95% interval)')
    res = dict(config={k: v for k, v in vars(a).items() if not k.startswith('_') and k not in ('t_start', 'load_start')},
               data=dict(train=dstats, heldout=hstats, n_train_problems=len(train_probs)), selection=sel.record(),
               base=dict(accuracy=base['accuracy'], accuracy_ci=base['accuracy_ci']), aggregate=agg, paired_vs_sft=diffs,
               verdicts=verdicts, runs=runs)
    lines = [f'# Token-level KD vs SFT on toy world v2{tiny_note(a)}', '',
             f"Student {STUDENT} (QLoRA NF4, r = 16), teacher {TEACHER}; every arm {a.steps} steps x {a.batch_size} sequences of "
             f"the same {dstats['kept']} verified teacher traces; KD at tau = {a.temperature}, pure KD, online teacher (full "
             f"logits). Learning rate per arm chosen on dev (seed 0) from {sel.sweep.grid['lr']}. Test: {len(test)} chain "
             f"problems at levels {list(levels)}, {a.eval_samples} samples each (T = 1), seeds {list(a.test_seeds)}; fidelity on "
             f"{hstats['kept']} held-out teacher traces of dev problems. Intervals: 95% hierarchical bootstrap over seeds and "
             'problems for accuracy; Student-t over seeds for the fidelity columns.', '',
             {'table': 'results', 'metrics': ['accuracy', 'top1_agreement', 'heldout_kl', 'mean_tokens'], 'baseline': 'sft',
              'methods': list(arms)}, '',
             {'table': 'dev', 'key': 'selection'}, '',
             f"Base student (no training): accuracy {100 * base['accuracy']:.1f}%.", '', f'![accuracy by level]({png.name})', '',
             '## Verdicts (v2 here; v1 from `kd_toy.json`, a fixed learning rate)', '',
             '| claim | v2 verdict | v2: arm − sft, accuracy | v1 verdict | v1: arm − sft |', '|---|---|---|---|---|']
    lines += [f"| {v['claim']} | {v['verdict']} | {pts(v['ci'])} | {(v['v1'] or {}).get('verdict', 'not run')} | "
              f"{pts(v['v1'])} |" for v in verdicts]
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
