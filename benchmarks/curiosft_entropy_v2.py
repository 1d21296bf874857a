"""CurioSFT's entropy claim on toy world v2, on the runs of benchmarks/rl_toy.py: does CurioSFT keep the student's
entropy higher than continued SFT at high-entropy positions (the reasoning forks) while low-entropy positions stay sharp,
and is the entropy-guided temperature more selective than a fixed one?

    nice -n 19 python benchmarks/curiosft_entropy_v2.py [--work runs/rl_toy] [--strict]
    python benchmarks/curiosft_entropy_v2.py --tiny --work /tmp/rl --bench-json /tmp/rl/res.json --out /tmp/rl/ent   # on a --tiny rl_toy run

For every seed of rl_toy's record: the shared stage-1 SFT adapter, `sft` (SFT for the whole budget at one learning rate),
`sft-sft` (continued SFT: the second half from the stage-1 adapter), `sft-curiosft` and `sft-curiosft-fixed` (CurioSFT with
the entropy-guided or a fixed tau = 1.3 for the second half), each at the learning rate rl_toy chose on dev; and the control,
`sft-sft-same-lr`: continued SFT trained exactly as rl_toy trains `sft-sft` but at CurioSFT's chosen learning rate (a
lower learning rate alone sharpens the student less, so only this control isolates CurioSFT's loss; dev-only runs, trained
here when missing, never scored on test). Per-position entropy (nats) of each model on the completion tokens of held-out verified teacher
traces (the teacher's samples on --heldout-per-level dev problems per level, never trained on), with the positions
split per seed into the top 20% and the rest as ranked by that seed's stage-1 model (the arms' common start), so that
every model is measured on the same positions. Per trace: the mean entropy at its high and at its low positions; a
model's selectivity against the control is log(high / high_control) − log(low / low_control) per trace (> 0: the entropy it keeps rises
relatively more at the forks than elsewhere). Intervals: 95% hierarchical bootstrap over seeds and traces (paired: the
same traces and draws for every model). pass@k is rl_toy's (its verdicts). Writes --out.md/.json and a histogram of
seed 0 (--out.png).
"""
import json, math, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note, write_report, verdict as _verdict

MODELS = ('stage1', 'sft', 'sft-sft', 'sft-sft-same-lr', 'sft-curiosft', 'sft-curiosft-fixed')
BASE = 'sft-sft-same-lr'   # continued SFT from the same start at CurioSFT's learning rate: the control that changes only the loss

def per_trace(profile:dict, high:list) -> tuple:
    "Per trace of an `entropy_profile`: (mean entropy at its high positions, at its low ones); NaN where it has none."
    acc = {}
    for e, ex, h in zip(profile['entropy'], profile['example'], high):
        s = acc.setdefault(ex, [0.0, 0, 0.0, 0]); i = 0 if h else 2
        s[i] += e; s[i + 1] += 1
    n = max(acc) + 1 if acc else 0
    get = lambda i, j: [acc[k][i] / acc[k][j] if k in acc and acc[k][j] else math.nan for k in range(n)]
    return get(0, 1), get(2, 3)

def high_positions(entropy:list, frac:float=0.2) -> list:
    "True at the `frac` share of positions with the largest entropy (ties: the earlier position first)."
    k = max(1, round(frac * len(entropy)))
    top = set(sorted(range(len(entropy)), key=lambda i: (-entropy[i], i))[:k])
    return [i in top for i in range(len(entropy))]

def main():
    ap = bench_parser('curiosft_entropy_v2', __doc__, groups=('run', 'work'), work='runs/rl_toy')
    ap.add_argument('--bench-json', default='benchmarks/results/rl_toy.json', help="rl_toy's JSON record (its config and chosen learning rates)")
    ap.add_argument('--heldout-per-level', type=int, default=6, help='dev problems per level whose teacher traces are the held-out set')
    ap.add_argument('--high-frac', type=float, default=0.2, help='share of positions called high-entropy')
    a = parse_args(ap, tiny=dict(heldout_per_level=1))
    from dataclasses import replace
    from reasondistill.core import read_json
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.train import default_student_spec
    from reasondistill.toyworld2 import toy2_problems
    from reasondistill.eval.compare import teacher_examples
    from reasondistill.eval.diagnostics import entropy_profile, plot_entropy_profiles
    from reasondistill.eval.metrics import hierarchical_bootstrap
    from reasondistill.train import Run
    from rl_toy import train_config   # the continued-SFT stage exactly as rl_toy trains it
    from reasondistill.registry import make_config, entry_point
    work, log = start(a)
    rec = read_json(a.bench_json)
    cfg, chosen = rec['config'], rec['selection']['chosen']
    missing = [m for m in MODELS[1:] if m not in chosen and m != BASE]
    if missing: raise SystemExit(f'{a.bench_json} has no dev choice for {missing}: run benchmarks/rl_toy.py with these arms first')
    student, teacher = 'toy2:student', 'toy2:teacher-small'
    tok = load_tokenizer(student)
    held_probs = toy2_problems(a.heldout_per_level, 'dev', families=('chain',))
    held, hstats = teacher_examples(held_probs, work / 'traces-heldout', 1, teacher=teacher, student=student,
                                    max_new_tokens=cfg['max_new_tokens'])
    if not held: raise SystemExit('the teacher verified none of the held-out problems: raise --heldout-per-level')
    seeds = sorted(r['seed'] for r in rec['runs'] if r['method'] == 'sft-curiosft')
    lr_c = chosen['sft-curiosft']['lr']
    path = lambda s, m: work / f'seed{s}' / ('stage1-sft' if m == 'stage1' else f'sft-sft-lr{lr_c:g}' if m == BASE else
                                             f"{m}-lr{chosen[m]['lr']:g}") / 'final'
    train_ex = []
    for s in seeds:   # the control: rl_toy's continued-SFT stage (its TrainConfig, data and start) at CurioSFT's learning rate
        if (path(s, BASE) / 'adapter_config.json').exists(): continue
        if not train_ex:
            probs = toy2_problems(cfg['train_per_level'], 'train', families=('chain',))
            train_ex, _ = teacher_examples(probs, work / 'traces', cfg['samples'], teacher=teacher, student=student, max_new_tokens=cfg['max_new_tokens'])
        c = make_config('sft', {})
        c.train = train_config(lr_c, s, rec['data']['steps_half'], cfg['batch_size'], cfg['max_length'])
        spec = replace(default_student_spec(student), lora=None, adapter=str(path(s, 'stage1')))
        entry_point('sft')(train_ex, Run(str(path(s, BASE).parent), spec), c, method='sft-sft')
        log(f'seed {s}: control trained ({path(s, BASE).parent.name})')
    absent = [str(path(s, m)) for s in seeds for m in MODELS if not (path(s, m) / 'adapter_config.json').exists()]
    if absent: raise SystemExit(f'missing adapters (run rl_toy first): {absent[:3]}')
    log(f'{len(held)} held-out verified traces ({hstats["kept"]} kept of {len(held_probs)} problems); seeds {seeds}')
    hi, lo, means, seed0 = {m: [] for m in MODELS}, {m: [] for m in MODELS}, {m: [] for m in MODELS}, None
    for s in seeds:
        prof = {}
        for m in MODELS:
            model, _ = load_model(replace(default_student_spec(student), lora=None, adapter=str(path(s, m))))
            prof[m] = entropy_profile(model, tok, held, max_length=cfg['max_length'])
        high = high_positions(prof['stage1']['entropy'], a.high_frac)
        for m in MODELS:
            h, l = per_trace(prof[m], high)
            hi[m].append(h); lo[m].append(l); means[m].append(prof[m]['mean'])
        if seed0 is None: seed0 = prof
        log(f"seed {s}: " + ', '.join(f"{m} {sum(x for x in hi[m][-1] if x == x) / sum(x == x for x in hi[m][-1]):.3f}" for m in MODELS))
    # traces with high and low positions in every seed (the paired bootstrap needs the same traces for every seed)
    keep = [j for j in range(len(held)) if all(hi[m][i][j] > 0 and lo[m][i][j] > 0 for m in MODELS for i in range(len(seeds)))]   # NaN > 0 is False
    if not keep: raise SystemExit('no held-out trace has both high and low positions in every seed: raise --heldout-per-level')
    sub = lambda v: [[row[j] for j in keep] for row in v]
    ci = lambda v: hierarchical_bootstrap(sub(v), bounds=None)
    diff = lambda x, y: [[p - q for p, q in zip(r, t)] for r, t in zip(x, y)]
    def sel(m, against=BASE):   # per trace: log(high_m / high_against) − log(low_m / low_against)
        return [[math.log(hm / ha) - math.log(lm / la) for hm, ha, lm, la in zip(*rows)]
                for rows in zip(hi[m], hi[against], lo[m], lo[against])]
    summary = {m: dict(high=ci(hi[m]), low=ci(lo[m]), d_high=ci(diff(hi[m], hi[BASE])), d_low=ci(diff(lo[m], lo[BASE])),
                       selectivity=ci(sel(m)) if m != BASE else None) for m in MODELS}
    adaptive_vs_fixed = ci(diff(sel('sft-curiosft'), sel('sft-curiosft-fixed')))
    num = lambda c, d=3: f"{c['mean']:+.{d}f} [{c['lo']:+.{d}f}, {c['hi']:+.{d}f}]"
    cu = summary['sft-curiosft']
    verdicts = [
        dict(claim='CurioSFT keeps a higher entropy than continued SFT (same start and learning rate) at high-entropy positions', arm='sft-curiosft', baseline=BASE,
             metric='entropy at high positions (nats)', ci=cu['d_high'], verdict=_verdict(cu['d_high'], 1),
             evidence=f"sft-curiosft − {BASE} at high positions: {num(cu['d_high'])} nats"),
        dict(claim="CurioSFT's entropy rise is selective: relatively larger at high- than at low-entropy positions (selectivity > 0)", arm='sft-curiosft',
             baseline=BASE, metric='selectivity', ci=cu['selectivity'], verdict=_verdict(cu['selectivity'], 1),
             evidence=f"selectivity of sft-curiosft against {BASE}: {num(cu['selectivity'])}; at low positions Δ {num(cu['d_low'], 4)} nats"),
        dict(claim="the entropy-guided temperature is more selective than a fixed tau = 1.3 (the mechanism behind the paper's ablation)",
             arm='sft-curiosft', baseline='sft-curiosft-fixed', metric='selectivity', ci=adaptive_vs_fixed,
             verdict=_verdict(adaptive_vs_fixed, 1), evidence=f"selectivity, sft-curiosft − sft-curiosft-fixed: {num(adaptive_vs_fixed)}")]
    png = Path(a.out + '.png'); png.parent.mkdir(parents=True, exist_ok=True)
    plot_entropy_profiles(seed0, split_by='stage1', high_frac=a.high_frac, path=png,
                          title=f'Student entropy on held-out teacher traces (toy world v2), seed {seeds[0]}')
    lines = [f'# CurioSFT entropy check on toy world v2{tiny_note(a)}', '',
             f"Runs of `benchmarks/rl_toy.py` ({len(seeds)} seeds; its record's learning rates: "
             + ', '.join(f"{m} {chosen[m]['lr']:g}" for m in MODELS[1:] if m != BASE) + '). Entropy (nats) of each model at the completion '
             f"positions of {len(keep)} held-out verified teacher traces on dev problems ({len(held)} verified; kept: those with "
             f"high and low positions in every seed); \"high\" = the {a.high_frac:.0%} of positions where the seed's stage-1 model "
             f'is most uncertain. Means over traces and seeds; 95% hierarchical bootstrap over seeds and traces; Δ and selectivity are '
             f'paired against the control {BASE} (continued SFT from the same start at lr {lr_c:g}, CurioSFT\'s).', '',
             f'| model | entropy, high positions | Δ vs {BASE} | entropy, low positions | Δ vs {BASE} | selectivity vs {BASE} |',
             '|---|---|---|---|---|---|']
    fmt = lambda c, d=3: f"{c['mean']:.{d}f} [{c['lo']:.{d}f}, {c['hi']:.{d}f}]"
    for m in MODELS:
        c = summary[m]
        lines.append(f"| {m} | {fmt(c['high'])} | {'—' if m == BASE else num(c['d_high'])} | {fmt(c['low'], 4)} | "
                     f"{'—' if m == BASE else num(c['d_low'], 4)} | {'—' if c['selectivity'] is None else num(c['selectivity'])} |")
    lines += ['', "## Verdicts on CurioSFT's entropy claim", '', '| claim | verdict | evidence |', '|---|---|---|']
    lines += [f"| {v['claim']} | {v['verdict']} | {v['evidence']} |" for v in verdicts]
    lines += ['', f'![entropy histograms]({png.name})', '',
              'pass@k and accuracy of these arms, with their verdicts, are in `rl_toy.md`.', '']
    res = dict(seeds=seeds, n_heldout=len(held), n_kept=len(keep), heldout=dict(problems=len(held_probs), **hstats),
               chosen={m: chosen[m] for m in MODELS[1:] if m != BASE}, control=dict(name=BASE, lr=lr_c), summary=summary, adaptive_vs_fixed=adaptive_vs_fixed, verdicts=verdicts,
               mean_entropy={m: v for m, v in means.items()}, bench_json=a.bench_json)
    write_report(a, lines, res, a.t_start)
    return 0

if __name__ == '__main__':
    sys.exit(main())
