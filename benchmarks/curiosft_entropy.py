"""CurioSFT's first claim checked on the runs of benchmarks/onpolicy_toy.py: does CurioSFT keep the
student's entropy higher at high-entropy positions than continued SFT, while low-entropy positions stay sharp, and does
it have a higher pass@k at a similar pass@1?

    nice -n 19 python benchmarks/curiosft_entropy.py [--work runs/onpolicy_toy] [--out benchmarks/results/curiosft_entropy]
    python benchmarks/curiosft_entropy.py --tiny --work /tmp/op --out /tmp/op/ent      # on a --tiny onpolicy_toy run

For every seed with finished `sft` and `curiosft` (and `curiosft-fixed-tau`, when present) runs: per-position entropy of
each trained student on the completion tokens of the held-out verified teacher traces (`eval.diagnostics.entropy_profile`),
split into the top 20% and the rest of the positions as ranked by the seed's shared stage-1 SFT model (the arms'
common start), so every model is measured on the same positions. Seed-level means, 95% Student-t intervals over
seeds and seed-paired differences to `sft`; pass@1 and pass@2 from the runs' evaluations. Writes `--out`.md/.json and a
histogram of seed 0 (`--out`.png).
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start

ARMS = ('sft', 'curiosft', 'curiosft-fixed-tau')

def main():
    ap = bench_parser('curiosft_entropy', __doc__, groups=('run', 'work'), work='runs/onpolicy_toy')
    ap.add_argument('--bench-json', default='benchmarks/results/onpolicy_toy.json', help="onpolicy_toy's JSON record (its config)")
    ap.add_argument('--max-length', type=int, default=256)
    a = parse_args(ap)
    from dataclasses import replace
    from reasondistill.core import read_json
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.train import default_student_spec
    from reasondistill.traces import sft_examples
    from reasondistill.tracestore import TraceStore
    from reasondistill.toyworld import toy_problems, LEVELS
    from reasondistill.eval.diagnostics import entropy_profile, entropy_split, plot_entropy_profiles
    from reasondistill.eval.compare import _ci, write_benchmark, evaluate_adapter
    work, log = start(a)
    t_start = a.t_start
    cfg = read_json(a.bench_json)['config']
    tok = load_tokenizer('toy:student')
    with TraceStore(work / 'traces-heldout', readonly=True) as st:
        held, _ = sft_examples(st, toy_problems(cfg['heldout_per_level'], LEVELS, split='dev'), tok)
    test_probs = toy_problems(cfg['eval_per_level'], cfg['eval_levels'], split='test')
    ks = tuple(k for k in (1, 2, 4, 8) if k <= cfg['eval_samples'])
    seeds = sorted(int(p.name[4:]) for p in work.glob('seed*') if all((p / m / 'result.json').exists() for m in ARMS[:2]))
    if not seeds: raise SystemExit(f'no seed under {work} has finished sft and curiosft runs')
    rows, seed0 = [], None
    for s in seeds:
        d = work / f'seed{s}'
        models = {'stage1': d / 'stage1-sft' / 'final', **{m: d / m / 'final' for m in ARMS if (d / m / 'result.json').exists()}}
        prof = {}
        for name, ad in models.items():
            m, _ = load_model(replace(default_student_spec(), lora=None, adapter=str(ad)))
            prof[name] = entropy_profile(m, tok, held, max_length=a.max_length)
        split = entropy_split(prof, split_by='stage1')
        # pass@k from the runs' stored evaluation samples (the EvalRun folders resume: nothing is generated again)
        res = {m: evaluate_adapter(str(models[m]), test_probs, d / m / 'eval', n_samples=cfg['eval_samples'], ks=ks,
                                   max_new_tokens=cfg['max_new_tokens'], name=m) for m in ARMS if m in prof}
        rows.append(dict(seed=s, split={k: {kk: vv for kk, vv in v.items() if kk != 'split_by'} for k, v in split.items()},
                         pass_at_k={m: {str(k): v for k, v in r['pass_at_k'].items()} for m, r in res.items()},
                         accuracy={m: r['accuracy'] for m, r in res.items()}))
        if seed0 is None: seed0 = prof
        print(s, {k: (round(v['high'], 3), round(v['low'], 4)) for k, v in split.items()}, flush=True)
    png = Path(a.out + '.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_entropy_profiles(seed0, split_by='stage1', path=png, title=f'Student entropy on held-out demonstrations, seed {seeds[0]}')
    names = ['stage1'] + [m for m in ARMS if all(m in r['accuracy'] for r in rows)]
    lines = ['# CurioSFT entropy check on the toy world' + (' (TINY smoke run: numbers are meaningless)' if a.tiny else ''), '',
             f'Runs of `benchmarks/onpolicy_toy.py` ({len(seeds)} seeds): continued SFT and CurioSFT trained from the same stage-1 '
             f'SFT adapter on the same token budget. Entropy (nats) of each student at the completion positions of {len(held)} '
             f'held-out verified teacher traces; "high" = the 20% of positions where the stage-1 model is most uncertain. '
             f'Means over seeds with 95% Student-t intervals; Δ vs sft is seed-paired.', '',
             f'| model | entropy, high positions | Δ vs sft | entropy, low positions | Δ vs sft | pass@1 (%) | pass@{ks[-1]} (%) |', '|---|---|---|---|---|---|---|']
    fmt = lambda c, d=3: f"{c['mean']:.{d}f} [{c['lo']:.{d}f}, {c['hi']:.{d}f}]" if c['n'] > 1 else f"{c['mean']:.{d}f}"
    summary = {}
    for n in names:
        hi, lo = [r['split'][n]['high'] for r in rows], [r['split'][n]['low'] for r in rows]
        dh = [r['split'][n]['high'] - r['split']['sft']['high'] for r in rows]
        dl = [r['split'][n]['low'] - r['split']['sft']['low'] for r in rows]
        p1 = [100 * r['pass_at_k'][n]['1'] for r in rows] if n != 'stage1' else None
        p2 = [100 * r['pass_at_k'][n][str(ks[-1])] for r in rows] if n != 'stage1' and len(ks) > 1 else None
        summary[n] = dict(high=_ci(hi), low=_ci(lo), d_high=_ci(dh), d_low=_ci(dl), pass1=_ci(p1) if p1 else None, pass2=_ci(p2) if p2 else None)
        c = summary[n]
        lines.append(f"| {n} | {fmt(c['high'])} | {'—' if n == 'sft' else fmt(c['d_high'])} | {fmt(c['low'], 4)} | "
                     f"{'—' if n == 'sft' else fmt(c['d_low'], 4)} | {fmt(c['pass1'], 1) if p1 else '—'} | {fmt(c['pass2'], 1) if p2 else '—'} |")
    lines += ['', f'Plot: `{png.name}` (seed {seeds[0]}).', '']
    write_benchmark(a.out, lines, dict(seeds=seeds, n_heldout=len(held), per_seed=rows, summary=summary), t_start)
    return 0

if __name__ == '__main__':
    sys.exit(main())
