"""ATESD's training-free check on the toy world (the premise of the paper's exposure schedule): on fixed student rollouts, does the self-teacher's
KL to the student, and their top-1 disagreement, rise monotonically with the reveal ratio of the reference?

    nice -n 19 python benchmarks/atesd_exposure.py [--problems-per-level 10] [--adapter runs/onpolicy_toy/seed0/stage1-sft/final]
    python benchmarks/atesd_exposure.py --tiny --out /tmp/atesd_exposure        # smoke run

Two students: the untrained toy student base (teacher = the base shown the exposed reference), and, when `--adapter`
exists, an SFT-trained student (teacher = the same model, live, shown the exposed reference) — the starting point of
the ATESD arm of benchmarks/onpolicy_toy.py. Problems: `--problems-per-level` training problems per level 1-8 with
their reasoner reference solutions (error-free concise traces). One student rollout per problem (the OPSD sampling:
T 1.1, top-p 0.95, top-k 20), scored by the teacher at each ratio. 95% bootstrap intervals over problems.
Writes `--out`.md, `--out`.json and `--out`.png.
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start

def main():
    ap = bench_parser('atesd_exposure', __doc__, groups=('run',))
    ap.add_argument('--problems-per-level', type=int, default=10)
    ap.add_argument('--ratios', default='0,0.25,0.5,0.75,1')
    ap.add_argument('--adapter', default='runs/onpolicy_toy/seed0/stage1-sft/final')
    ap.add_argument('--max-new-tokens', type=int, default=160)
    a = parse_args(ap, tiny=dict(problems_per_level=1, ratios='0,1', max_new_tokens=24))
    ratios = tuple(float(x) for x in a.ratios.split(','))
    from dataclasses import replace
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.train import default_student_spec
    from reasondistill.toyworld import toy_problems, LEVELS
    from reasondistill.traces import reference_examples
    from reasondistill.registry import make_config
    from reasondistill.eval.diagnostics import exposure_mismatch, is_monotone, plot_exposure_mismatch
    from reasondistill.eval.compare import write_benchmark
    _, log = start(a)
    t_start = a.t_start
    tok = load_tokenizer('toy:student')
    probs = toy_problems(a.problems_per_level, LEVELS, split='train')
    students = [('toy student base (teacher: base)', default_student_spec(), 'base')]
    if Path(a.adapter).exists(): students.append((f'SFT student (teacher: live), {a.adapter}', replace(default_student_spec(), lora=None, adapter=a.adapter), 'live'))
    results, rows = {}, []
    for label, spec, teacher in students:
        cfg = make_config('atesd', {'self_teacher.template': 'short', 'self_teacher.teacher': teacher})   # OPSD sampling: T 1.1, top-p 0.95, top-k 20
        ex, _ = reference_examples(probs, tok)
        model, _ = load_model(spec)
        r = exposure_mismatch(model, tok, ex, ratios, cfg, max_new_tokens=a.max_new_tokens)
        results[label] = r
        rows.append((label, r, is_monotone(r['kl']), is_monotone(r['disagreement'])))
        print(label, [round(x, 4) for x in r['kl']], [round(x, 4) for x in r['disagreement']], flush=True)
    png = Path(a.out + '.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_exposure_mismatch(results, png, title='ATESD cheap check on the toy world: mismatch vs reveal ratio')
    lines = ['# ATESD exposure check on the toy world' + (' (TINY smoke run)' if a.tiny else ''), '',
             f'{len(probs)} training problems ({a.problems_per_level} per level, levels 1-8), one student rollout each '
             f'(T 1.1, top-p 0.95, top-k 20, at most {a.max_new_tokens} tokens), scored by the self-teacher shown the first '
             f'floor(α·m) lines of the reference reasoning plus the answer. KL(p_T ‖ p_S) per token (dense, τ = 1) and top-1 '
             f'disagreement, 95% bootstrap intervals over problems.', '',
             '| student | ' + ' | '.join(f'KL at α={x:g}' for x in ratios) + ' | KL monotone | ' + ' | '.join(f'disagree at α={x:g} (%)' for x in ratios) + ' | disagreement monotone |',
             '|---|' + '---|' * (2 * len(ratios) + 2)]
    for label, r, mk, md in rows:
        kl = [f"{k:.3f} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in zip(r['kl'], r['kl_ci'])]
        ds = [f"{100 * k:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" for k, (lo, hi) in zip(r['disagreement'], r['disagreement_ci'])]
        lines.append(f"| {label} ({r['n_tokens']} tokens) | " + ' | '.join(kl) + f" | {'yes' if mk else 'no'} | " + ' | '.join(ds) + f" | {'yes' if md else 'no'} |")
    lines += ['', f'Plot: `{png.name}`.', '']
    write_benchmark(a.out, lines, dict(ratios=ratios, results={k: {kk: vv for kk, vv in v.items() if kk != 'per_example'} for k, v in results.items()},
                                       monotone={lab: dict(kl=mk, disagreement=md) for lab, _, mk, md in rows}), t_start)
    return 0

if __name__ == '__main__':
    sys.exit(main())
