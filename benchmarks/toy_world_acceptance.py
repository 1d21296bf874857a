"""Acceptance numbers of the shipped toy world, measured on the test split (n problems per level, 95% bootstrap CIs).

    python benchmarks/toy_world_acceptance.py [--n 200] [--out benchmarks/results/toy_world]

Checks (the acceptance targets of the toy world):
  teacher  >= 90% avg@4 at the medium level, <= 75% at the hardest level (T=1 sampling)
  sampled teacher traces (T=1) >= 10% wrong overall
  student base <= 30% at the medium level
  a student trained answer-only (QLoRA, generous budget) <= 50% at the medium level
plus behaviour: share of traces with 'wait' / 'check' and mean length, by style (default / concise / verbose).
"""
import json, sys, time
from pathlib import Path
from reasondistill.core import set_threads, write_json
from reasondistill.toyworld import toy_problems, LEVELS, MEDIUM_LEVEL, HARDEST_LEVEL, STYLE_SYSTEM
from reasondistill.models import load_model, load_tokenizer, ModelSpec, LoraSpec
from reasondistill.eval.evaluate import EvalConfig, evaluate
from reasondistill.tracestore import TraceStore
from reasondistill.traces import answer_only_examples
from reasondistill.methods.sft import SFTConfig, train_sft
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, write_report
from reasondistill.train import TrainConfig, Run
from reasondistill.eval.metrics import results_table

def behaviour(samples_dir):
    with TraceStore(samples_dir, readonly=True) as st: ts = list(st)
    n = len(ts)
    return dict(n=n, wait=sum('wait' in t.completion for t in ts) / n, check=sum('check' in t.completion for t in ts) / n,
                recheck_final=sum('\nso ' in t.completion for t in ts) / n,
                mean_tokens=sum(t.n_completion_tokens for t in ts) / n,
                wrong=sum(t.verdict != 'correct' for t in ts) / n)

def main():
    ap = bench_parser('toy_world', __doc__, groups=('run', 'work'), work='runs/acceptance'); ap.add_argument('--n', type=int, default=200)
    a = parse_args(ap, tiny=dict(n=4)); start(a)
    work, t0 = Path(a.work), time.perf_counter()
    test = toy_problems(a.n, LEVELS, split='test')
    ec = EvalConfig(n_samples=4, ks=(1, 2, 4), max_new_tokens=220, n_boot=2000)
    res = {}
    teacher, tok = load_model('toy:teacher')
    res['teacher'] = evaluate(teacher, tok, test, work / 'teacher', ec, name='teacher')
    style = {}
    mid = toy_problems(a.n, [MEDIUM_LEVEL, HARDEST_LEVEL], split='test')
    for s in ('concise', 'verbose'):
        evaluate(teacher, tok, mid, work / f'teacher-{s}', EvalConfig(**{**ec.__dict__, 'system': STYLE_SYSTEM[s]}), name=f'teacher ({s})')
        style[s] = behaviour(work / f'teacher-{s}' / 'samples')
    style['default'] = behaviour(work / 'teacher' / 'samples')
    base, btok = load_model(ModelSpec('toy:student', quant='4bit'))
    res['student base'] = evaluate(base, btok, test, work / 'student-base', ec, name='student base')
    # answer-only student with a generous budget: 500 problems per level, 3 epochs at the demo's learning rate
    ao_dir = work / 'answer-only'
    ex, _ = answer_only_examples(toy_problems(500, LEVELS, split='train'), btok)
    train_sft(ex, Run(str(ao_dir / 'train'), ModelSpec('toy:student', quant='4bit', lora=LoraSpec(r=16, alpha=32))),
              SFTConfig(TrainConfig(lr=6e-3, epochs=3, batch_size=32, max_length=256, save_steps=100)), method='answer-only')
    ao, aotok = load_model(ModelSpec('toy:student', quant='4bit', adapter=str(ao_dir / 'train' / 'final')))
    res['answer-only student'] = evaluate(ao, aotok, test, ao_dir / 'eval', ec, name='answer-only student')
    L = lambda name, lvl: res[name]['by_level'][str(lvl)]['avg@n']
    checks = {
        f'teacher >= 90% at L{MEDIUM_LEVEL}': (L('teacher', MEDIUM_LEVEL)['mean'] >= 0.90, L('teacher', MEDIUM_LEVEL)),
        f'teacher <= 75% at L{HARDEST_LEVEL}': (L('teacher', HARDEST_LEVEL)['mean'] <= 0.75, L('teacher', HARDEST_LEVEL)),
        'sampled teacher traces >= 10% wrong': (1 - res['teacher']['avg@n']['mean'] >= 0.10, 1 - res['teacher']['avg@n']['mean']),
        f'student base <= 30% at L{MEDIUM_LEVEL}': (L('student base', MEDIUM_LEVEL)['mean'] <= 0.30, L('student base', MEDIUM_LEVEL)),
        f'answer-only student <= 50% at L{MEDIUM_LEVEL}': (L('answer-only student', MEDIUM_LEVEL)['mean'] <= 0.50, L('answer-only student', MEDIUM_LEVEL)),
    }
    rows = [{'name': k, **v} for k, v in res.items()]
    table = results_table(rows, {f'L{l}': f'by_level/{l}/avg@n' for l in LEVELS} | {'all': 'avg@n', 'tokens': 'mean_tokens'})
    lines = ['# Toy world acceptance', '', f'{a.n} test problems per level, 4 samples each at T=1 (avg@4, 95% bootstrap CI over problems).', '',
             table, '', '## Checks', '']
    for k, (ok, v) in checks.items(): lines.append(f"- [{'x' if ok else ' '}] {k}: {json.dumps(v)}")
    lines += ['', '## Teacher behaviour by style (levels 4 and 8 for concise/verbose; all levels for default)', '',
              '| style | traces | with "wait" | with "check" | final re-check | mean tokens | wrong |', '|---|---:|---:|---:|---:|---:|---:|']
    for s, b in style.items():
        lines.append(f"| {s} | {b['n']} | {b['wait']:.1%} | {b['check']:.1%} | {b['recheck_final']:.1%} | {b['mean_tokens']:.1f} | {b['wrong']:.1%} |")
    lines += ['', f'Wall time: {time.perf_counter() - t0:.0f} s.']
    write_report(a, lines + [''], dict(summaries=res, checks={k: dict(ok=ok, value=v) for k, (ok, v) in checks.items()}, style=style))
    return 0 if all(ok for ok, _ in checks.values()) else 1

if __name__ == '__main__': sys.exit(main())
