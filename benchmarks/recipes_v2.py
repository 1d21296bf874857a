"""Student-aware data recipes (RSD, Gen-SSD, DASD, DeepDistill) against plain verified teacher traces on toy world v2,
with every arm's learning rate chosen on dev, and RSD's student-specific check on two student architectures.

    python benchmarks/recipes_v2.py [--seeds 3] [--steps 120] [--work runs/recipes_v2] [--out benchmarks/results/recipes_v2]
    python benchmarks/recipes_v2.py --phase dev --methods sft,rsd       # shards: the data side and dev runs (seed 0) first,
    python benchmarks/recipes_v2.py --phase test --only-seeds 1         # then test seeds, then a plain call aggregates
    python benchmarks/recipes_v2.py --tiny --work /tmp/rc2 --out /tmp/rc2/res   # smoke run (numbers meaningless)

Protocol (`reasondistill.eval.compare`; resumable: every stage and run in --work is reused):
1. Data side: `recipes_toy.data` on v2 — teacher toy2:teacher-small, student A = toy2:student (Qwen2), --train-per-level
   training chains per level (1-8). The teacher samples --samples traces per problem at T = 0.6 and T = 1.0; the student
   base answers without reasoning, so RSD's acceptor (`rsd`) and Gen-SSD's scorer run as a cold-started student (SFT on
   one verified trace of --coldstart-per-level problems per level); `rsd-base` accepts with the base itself. DASD
   selects one trace per problem per temperature by its DAS score, DeepDistill keeps stage I of its pass-rate grading.
   RSD's student-specific check uses student B = toy2:student-llama (Llama, the same tokenizer), cold-started the same
   way, as the acceptor of `rsd-other`. B is trained with LoRA on its unquantized base: its layers are 160 wide and
   bitsandbytes' CPU NF4 kernels need widths divisible by their 64-value block (on a GPU B would take NF4 like A).
2. Model side: every arm trains a QLoRA student (NF4, LoRA r = 16) for --steps steps of --batch-size sequences (DASD:
   half per stage) on its recipe's data: `sft` (plain verified T = 1.0 traces), `rsd`, `rsd-base`, `gen-ssd`, `dasd`,
   `deepdistill` on A; the check's arms `rsd-foreign` (A on B's RSD traces), `other-rsd` (B on its own), `other-rsd-foreign`
   (B on A's) and `other-sft` (B on plain traces).
3. Selection: every arm's learning rate from --sweep-lr, chosen on dev (seed 0; chains at --eval-levels,
   --dev-per-level per level, 2 samples); test touched once per arm and seed (--eval-per-level test chains per level,
   --eval-samples samples, T = 1). Intervals: hierarchical bootstrap over seeds and problems, paired on the same problems.
4. Verdicts: rsd, gen-ssd, dasd, deepdistill against sft; student-specific traces: rsd − rsd-foreign on A and
   other-rsd − other-rsd-foreign on B; each beside the v1 verdict (`recipes_toy.json`: one fixed learning rate,
   Student-t over seeds).
Writes --out.json, --out.md, --out_data.png and --out_by_level.png.
"""
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import (bench_parser, parse_args, start, tiny_note, add_sweep, sweep_from_args, write_report, add_phases,
                    phase_seeds, run_phase, verdict as _verdict, pair_ci, v1_pair)
import recipes_toy as R

MAIN = ('sft', 'rsd', 'rsd-base', 'gen-ssd', 'dasd', 'deepdistill')
CHECK = ('rsd-foreign', 'other-rsd', 'other-rsd-foreign', 'other-sft')
ARMS = MAIN + CHECK
STUDENT, OTHER, TEACHER = 'toy2:student', 'toy2:student-llama', 'toy2:teacher-small'
R.QUANT[OTHER] = 'none'   # B's layers are 160 wide: bitsandbytes' CPU NF4 path needs multiples of its 64-block; LoRA on the unquantized base
CLAIMS = [('rsd', 'sft', "RSD's student-aware traces beat plain teacher traces"),
          ('gen-ssd', 'sft', "Gen-SSD's student-scored traces beat plain teacher traces"),
          ('dasd', 'sft', "DASD's DAS-selected, temperature-scheduled traces beat plain teacher traces"),
          ('deepdistill', 'sft', "DeepDistill's pass-rate-selected traces beat plain teacher traces"),
          ('rsd', 'rsd-foreign', "RSD traces are student-specific: student A learns more from its own than from B's"),
          ('other-rsd', 'other-rsd-foreign', "RSD traces are student-specific: student B learns more from its own than from A's")]

def parse():
    ap = bench_parser('recipes_v2', __doc__, ARMS, seeds=3, batch_size=16, lr=6e-3, max_length=1024, eval_levels='2,4,6,8',
                      eval_per_level=30, eval_samples=2, max_new_tokens=256,
                      groups=('run', 'work', 'seeds', 'methods', 'train', 'eval'))
    add_sweep(ap, lr='2e-3,6e-3')
    ap.add_argument('--train-per-level', type=int, default=20, help='training chains per level (levels 1-8)')
    ap.add_argument('--samples', type=int, default=4, help='teacher samples per problem at each temperature (T = 0.6 and 1.0)')
    ap.add_argument('--rsd-samples', type=int, default=8, help='RSD traces per problem')
    ap.add_argument('--rsd-threshold', type=float, default=0.01, help="RSD's acceptance threshold p_th")
    ap.add_argument('--gen-k', type=int, default=4, help='Gen-SSD teacher candidates per chunk')
    ap.add_argument('--coldstart-per-level', type=int, default=8, help='cold start: problems per level with one verified trace each')
    ap.add_argument('--coldstart-steps', type=int, default=60, help='cold start: SFT steps (at --lr)')
    ap.add_argument('--steps', type=int, default=120, help='optimizer steps of every arm (DASD: half per stage)')
    ap.add_argument('--dev-per-level', type=int, default=15, help='dev chains per level for the learning-rate choice')
    add_phases(ap)
    a = parse_args(ap, known=ARMS, tiny=dict(
        seeds=1, train_per_level=1, samples=2, rsd_samples=2, coldstart_per_level=1, coldstart_steps=2, steps=2, batch_size=4,
        eval_levels='2,4', eval_per_level=2, eval_samples=1, max_new_tokens=96, dev_per_level=2, sweep_lr='3e-3'))
    a.teacher_name, a.student_name = TEACHER, STUDENT
    a.other_student, a.mixed_steps, a.mixed_triggers = OTHER, 0, 'truncated,wrong'   # recipes_toy's settings this benchmark fixes
    a.test_seeds = phase_seeds(a)
    return a

def v1_verdicts() -> dict:
    "Each claim's v1 verdict (`recipes_toy.json`: one fixed learning rate; Student-t over the seed-paired differences), if recorded."
    return {(arm, bl): w for arm, bl, _ in CLAIMS if (w := v1_pair('recipes_toy', arm, bl)) is not None}

def _data_key(arm:str) -> str:
    "The kept set an arm trains on (DASD: its stage-2 selection; the check's arms: `recipes_toy.CHECK`)."
    return 'dasd-T1.0' if arm == 'dasd' else R.CHECK[arm][0] if arm in R.CHECK else arm

def main():
    a = parse()
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.eval.compare import evaluate_adapter, DevSelection, aggregate_results, paired_differences, plot_by_level
    work, log = start(a)
    levels = a.eval_levels
    probs = toy2_problems(a.train_per_level, 'train', families=('chain',))
    dev = toy2_problems(a.dev_per_level, 'dev', families=('chain',), levels=levels)
    test = toy2_problems(a.eval_per_level, 'test', families=('chain',), levels=levels)
    probs, kept, dstats = R.data(a, work / 'data', log, probs=probs)
    tau, cold = dstats['table']['gen-ssd']['tau'], dstats['coldstart']['final']
    empty = [m for m in a.methods if not kept.get(_data_key(m))]
    arms = [m for m in a.methods if m not in empty]
    if empty: log(f'recipes that kept nothing (their arms are skipped): {empty}')

    def train(arm, hp, seed):
        key, who = R.CHECK.get(arm, (arm, 'A'))
        student = OTHER if who == 'B' else STUDENT
        out = work / f'seed{seed}' / f"{arm}-lr{hp['lr']:g}"
        done = out / 'final.json'
        if done.exists(): return json.loads(done.read_text())
        b = argparse.Namespace(**{**vars(a), 'lr': hp['lr']})
        summ, n_ex = R.train(b, arm, seed, probs, kept, work / 'data', student, key, cold, tau, out=out)
        r = dict(adapter=summ['final'], student=student, n_examples=n_ex, train_loss=summ.get('train_loss'))
        out.mkdir(parents=True, exist_ok=True); done.write_text(json.dumps(r))
        return r

    def score(run, split):
        d = Path(run['adapter']).parent
        if split == 'dev':
            return evaluate_adapter(run['adapter'], dev, d / 'eval-dev', student=run['student'], quant=R.quant(run['student']), n_samples=2,
                                    max_new_tokens=a.max_new_tokens, name=f'{d.name} (dev)')
        return evaluate_adapter(run['adapter'], test, d / 'eval-test', student=run['student'], quant=R.quant(run['student']), n_samples=a.eval_samples,
                                max_new_tokens=a.max_new_tokens, name=f'{d.name} (test)')

    sel = DevSelection(sweep_from_args(a), train, score, seeds=a.test_seeds, dev_seeds=(0,))
    runs = run_phase(a, sel, arms, log)
    if runs is None: return
    base = {s: evaluate_adapter(None, test, work / f'base-eval-test-{s.split(":")[1]}', student=s, quant=R.quant(s), n_samples=a.eval_samples,
                                max_new_tokens=a.max_new_tokens, name=f'{s} base')['accuracy'] for s in (STUDENT, OTHER)}
    agg = aggregate_results(runs, metrics=('accuracy', 'mean_tokens'))
    v1 = v1_verdicts()
    pts = lambda c: 'not measured' if not c else f"{100 * c['mean']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] points"
    verdicts = []
    for arm, bl, claim in CLAIMS:
        if arm not in arms or bl not in arms: continue
        d = pair_ci(runs, arm, bl)
        c = {k: d.get(k) for k in ('mean', 'lo', 'hi', 'n_seeds', 'n_problems')} if d else None
        o = v1.get((arm, bl))
        verdicts.append(dict(claim=claim, arm=arm, baseline=bl, metric='accuracy', verdict=_verdict(c), ci=c, v1=o,
                             evidence=f'{arm} − {bl}, accuracy: {pts(c)} (v1: {(o or {}).get("verdict", "not run")}, {pts(o)})'))
    diffs = paired_differences([r for r in runs if r['method'] in MAIN], 'sft') if 'sft' in arms else {}
    png = Path(a.out + '_by_level.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_by_level({k: v for k, v in agg.items() if k in MAIN}, path=png,
                  title=f'Toy world v2: SFT on each recipe\'s traces ({len(a.test_seeds)} seeds, 95% interval)')
    R.plot_data(dstats['table'], Path(a.out + '_data.png'))
    res = dict(config={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items() if not k.startswith('_') and k not in ('t_start', 'load_start')},
               data=dstats, skipped=empty, selection=sel.record(), base=base, aggregate=agg, paired_vs_sft=diffs, verdicts=verdicts, runs=runs)
    stem = Path(a.out).name
    lines = [f'# Student-aware data recipes on toy world v2{tiny_note(a)}', '',
             f"{dstats['n_problems']} training chains ({a.train_per_level} per level, levels 1-8); teacher {TEACHER}, student A "
             f"{STUDENT}, student B {OTHER} (RSD's student-specific check). Plain: {a.samples} teacher samples per problem at T = 0.6 "
             f"and T = 1.0. RSD: {a.rsd_samples} samples per problem, p_th = {a.rsd_threshold}, top-20 pools, 5 trials, T = 0.7; "
             f"`rsd-base` accepts with the student base, `rsd` with a cold-started student ({dstats['coldstart']['examples']} traces, "
             f"{a.coldstart_steps} steps). Gen-SSD: K = {a.gen_k}, one line per chunk, scorer = the cold-started student. DASD: DAS "
             f"(delta = log 2), one trace per problem per temperature. DeepDistill: stage I over {a.samples} T = 1.0 samples (grades "
             f"{dstats['grades']}).", '', *R.data_table_lines(dstats), f'![data side]({stem}_data.png)', '',
             '## Model side', '',
             f"Every arm {a.steps} steps x {a.batch_size} sequences, QLoRA r = 16 (DASD: {a.steps // 2} + {a.steps - a.steps // 2} "
             f"steps over its two stages); learning rate per arm chosen on dev (seed 0, {len(dev)} chains x 2 samples) from "
             f"{sel.sweep.grid['lr']}. Test: {len(test)} chains at levels {list(levels)}, {a.eval_samples} samples each (T = 1), "
             f"seeds {list(a.test_seeds)}. Base students (no training): A {100 * base[STUDENT]:.1f}%, B {100 * base[OTHER]:.1f}%.", '',
             {'table': 'results', 'metrics': ['accuracy', 'mean_tokens'], 'baseline': 'sft', 'methods': [m for m in MAIN if m in arms]}, '',
             'RSD\'s student-specific check (A = student, B = student-llama; `rsd-other` = RSD traces accepted by B\'s cold start):', '',
             {'table': 'results', 'metrics': ['accuracy', 'mean_tokens'], 'methods': [m for m in ('rsd', 'rsd-foreign', *CHECK[1:]) if m in arms]}, '',
             {'table': 'dev', 'key': 'selection'}, '', f'![accuracy by level]({png.name})', '']
    if empty: lines += [f"Skipped (the recipe kept nothing): {', '.join(empty)}.", '']
    lines += ['## Verdicts (v2 here; v1 from `recipes_toy.json`: one fixed learning rate, Student-t over seeds)', '',
              '| claim | v2 verdict | v2: arm − baseline, accuracy | v1 verdict | v1: arm − baseline |', '|---|---|---|---|---|']
    lines += [f"| {v['claim']} | {v['verdict']} | {pts(v['ci'])} | {(v['v1'] or {}).get('verdict', 'not run')} | {pts(v['v1'])} |"
              for v in verdicts]
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
