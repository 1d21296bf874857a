"""Acceptance numbers of toy world v2, measured once on the test split (the build's probes and choices used dev only).

    python benchmarks/toy_world_v2.py [--per-level 40] [--samples 2] [--out benchmarks/results/toy_world_v2]

Targets (issue "toy world v2"), each with a 95% bootstrap interval over problems (paired where two conditions share them):
  privileged gain of each student base >= +0.5 nats/token on reference solutions of held-out problems
  teachers differ: mean trace length ratio (most verbose / most concise) >= 2; accuracy profiles by level differ
  the tool lifts a teacher by >= 20 points on tool problems (same teacher, tool channel on vs off)
  the abstaining teacher abstains on >= 70% of unanswerable and <= 5% of answerable problems
  no evaluation problem is posed by any training generator (counted over generated documents)
  a verbose teacher trace plus a reference solution fits the 1,024-token context
"""
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note, write_report
from reasondistill.toyworld2 import (TEACHERS, STUDENTS, FAMILIES, UNKNOWN, CONTEXT_LEN2, REFERENCE_TEMPLATE, toy2_problems,
                                     generate_with_tools, reference_solution, generator_leaks, load_toy2_model)
from reasondistill.toyworld import LEVELS
from reasondistill.models import render_prompt, load_model
from reasondistill.rollout import generate, SamplingParams
from reasondistill.verify import ToyVerifier
from reasondistill.eval.metrics import bootstrap_ci, paired_bootstrap_diff

def ci(x, **kw):
    m, lo, hi = bootstrap_ci(np.asarray(x, dtype=float), n_boot=2000, **kw)
    return dict(mean=float(m), lo=float(lo), hi=float(hi), n=len(x))

def ci_rate(x):   # a rate: the interval stays in [0, 1]
    c = ci(x); c['lo'], c['hi'] = max(0.0, c['lo']), min(1.0, c['hi']); return c

def diff(a, b):
    m, lo, hi = paired_bootstrap_diff(np.asarray(a, float), np.asarray(b, float), n_boot=2000)
    return dict(mean=float(m), lo=float(lo), hi=float(hi), n=len(a))

def sample(model, tok, problems, n, tools, max_new=400):
    "Per problem: [(correct, n_tokens, answer)] of `n` samples at T=1, through the tool channel or without it."
    prompts = [render_prompt(tok, p.question) for p in problems]
    sp = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new, seed=0)
    comps = (generate_with_tools(model, tok, prompts, sp, desc=None) if tools else generate(model, tok, prompts, sp, desc=None))
    v = ToyVerifier()
    return [[(v(c.text, p.answer).correct, c.n_tokens, v(c.text, p.answer).answer) for c in cs] for cs, p in zip(comps, problems)]

def privileged_gain(model, tok, problems):
    "Per problem: mean over reference tokens of log p(ref | question + ref) - log p(ref | question) (`diagnostics.privileged_gain`)."
    from reasondistill.eval.diagnostics import privileged_gain as gain
    refs = {p.id: reference_solution(p) for p in problems}
    ex = [dict(prompt=render_prompt(tok, p.question), problem_id=p.id,
               teacher_prompt=render_prompt(tok, REFERENCE_TEMPLATE.format(question=p.question, solution=refs[p.id]))) for p in problems]
    g = gain(model, tok, ex, refs, batch_size=32, disable_adapter=False)
    return [e['gain'] for e in g['per_example']], \
           [len(tok(e['teacher_prompt'] + refs[e['problem_id']], add_special_tokens=False)['input_ids']) for e in ex]

def main():
    ap = bench_parser('toy_world_v2', __doc__, groups=('run', 'work'), work='runs/toy_world_v2')
    ap.add_argument('--per-level', type=int, default=40, help='test problems per (family, level)')
    ap.add_argument('--samples', type=int, default=2, help='samples per problem at T=1')
    ap.add_argument('--leak-docs', type=int, default=4000, help='documents drawn from each training generator for the leak count')
    a = parse_args(ap, tiny=dict(per_level=2, samples=1, leak_docs=50)); work, log = start(a)
    n, S = a.per_level, a.samples
    chain = toy2_problems(n, 'test', families=('chain',))
    tool = toy2_problems(n, 'test', families=('tool',))
    var = toy2_problems(n, 'test', families=('var',))
    unans = toy2_problems(n, 'test', families=('unanswerable',))
    res = dict(config=dict(per_level=n, samples=S, tiny=a.tiny, context=CONTEXT_LEN2,
                           n_problems={'chain': len(chain), 'tool': len(tool), 'var': len(var), 'unanswerable': len(unans)}),
               teachers={}, students={})
    for name in TEACHERS:
        log(f'{name}: sampling'); model, tok = load_toy2_model(name)
        ch = sample(model, tok, chain, S, tools=True)
        on, off = sample(model, tok, tool, S, tools=True), sample(model, tok, tool, S, tools=False)
        va, un = sample(model, tok, var, S, tools=True), sample(model, tok, unans, S, tools=True)
        acc = lambda rows: [float(np.mean([c for c, _, _ in r])) for r in rows]
        abst = lambda rows: [float(np.mean([x == UNKNOWN for _, _, x in r])) for r in rows]
        by_level = {str(l): ci_rate(acc([r for r, p in zip(ch, chain) if p.meta['level'] == l])) for l in LEVELS}
        res['teachers'][name] = dict(
            chain_accuracy=ci_rate(acc(ch)), by_level=by_level,
            chain_tokens=ci([float(np.mean([t for _, t, _ in r])) for r in ch]),
            chain_tokens_per_problem=[float(np.mean([t for _, t, _ in r])) for r in ch],
            tool_on=ci_rate(acc(on)), tool_off=ci_rate(acc(off)), tool_lift=diff(acc(on), acc(off)),
            var_accuracy=ci_rate(acc(va)), unanswerable_abstain=ci_rate(abst(un)), answerable_abstain=ci_rate(abst(va) + abst(ch)),
            unanswerable_tokens=ci([float(np.mean([t for _, t, _ in r])) for r in un]))
    T = res['teachers']
    lens = {k: np.array(v.pop('chain_tokens_per_problem')) for k, v in T.items()}
    hi, lo = max(lens, key=lambda k: lens[k].mean()), min(lens, key=lambda k: lens[k].mean())
    idx = np.random.default_rng(0).integers(0, len(chain), (2000, len(chain)))    # the same problems for both teachers
    boots = lens[hi][idx].mean(1) / lens[lo][idx].mean(1)
    res['length_ratio'] = dict(most=hi, least=lo, mean=float(lens[hi].mean() / lens[lo].mean()),
                               lo=float(np.quantile(boots, 0.025)), hi=float(np.quantile(boots, 0.975)), n=len(chain))
    for name in (*STUDENTS, 'v1 student'):   # v1's student base for comparison: it never saw a reference in a prompt
        log(f'{name}: privileged gain')
        model, tok = load_model('toy:student') if name == 'v1 student' else load_toy2_model(name)
        g, lengths = privileged_gain(model, tok, chain)
        ch = sample(model, tok, chain, S, tools=True)
        res['students'][name] = dict(privileged_gain=ci(g), chain_accuracy=ci_rate([float(np.mean([c for c, _, _ in r])) for r in ch]),
                                     unanswerable_abstain=ci_rate([float(np.mean([x == UNKNOWN for _, _, x in r]))
                                                                   for r in sample(model, tok, unans, S, tools=True)]))
    # the longest privileged-teacher input: the verbose teacher's trace after a prompt holding the reference
    model, tok = load_toy2_model('teacher-verbose')
    hard = [p for p in chain if p.meta['level'] == max(LEVELS)]
    traces = [c[0].text for c in generate(model, tok, [render_prompt(tok, p.question) for p in hard],
                                           SamplingParams(temperature=1.0, max_new_tokens=800, seed=1), desc=None)]
    sizes = [len(tok(render_prompt(tok, REFERENCE_TEMPLATE.format(question=p.question, solution=reference_solution(p))) + t,
                     add_special_tokens=False)['input_ids']) for p, t in zip(hard, traces)]
    res['context'] = dict(max_tokens=max(sizes), mean_tokens=float(np.mean(sizes)), fits=sum(s <= CONTEXT_LEN2 for s in sizes), n=len(sizes))
    log('leak count'); res['leaks'] = generator_leaks(a.leak_docs)
    abstainer = max(T, key=lambda k: T[k]['unanswerable_abstain']['mean'])
    best_tool = max(T, key=lambda k: T[k]['tool_lift']['mean'])
    checks = {f'{s}: privileged gain >= 0.5 nats/token': res['students'][s]['privileged_gain']['lo'] >= 0.5 for s in STUDENTS}
    checks.update({
        'trace length ratio >= 2 (lower bound)': res['length_ratio']['lo'] >= 2,
        f'tool lift >= 20 points ({best_tool}, lower bound)': T[best_tool]['tool_lift']['lo'] >= 0.20,
        f'{abstainer} abstains on >= 70% of unanswerable (lower bound)': T[abstainer]['unanswerable_abstain']['lo'] >= 0.70,
        f'{abstainer} abstains on <= 5% of answerable (upper bound)': T[abstainer]['answerable_abstain']['hi'] <= 0.05,
        'no evaluation problem in any training generator': sum(res['leaks'].values()) == 0,
        'verbose trace + reference fit the context': res['context']['fits'] == res['context']['n']})
    res['checks'] = checks
    f = lambda c, pct=False: (f"{100*c['mean']:.1f} [{100*c['lo']:.1f}, {100*c['hi']:.1f}]" if pct else f"{c['mean']:.2f} [{c['lo']:.2f}, {c['hi']:.2f}]")
    lines = [f'# Toy world v2 acceptance{tiny_note(a)}', '',
             f"Test split only, measured once. Problems: {res['config']['n_problems']}; {S} samples each at T=1, through the tool "
             'channel unless "off". Intervals: 95% percentile bootstrap over problems (paired for differences); rates clipped to [0, 100].', '',
             '## Teachers', '', '| teacher | chain acc % | mean chain tokens | tool on % | tool off % | tool lift (points) | var acc % | abstains, unanswerable % | abstains, answerable % |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for k, t in T.items():
        lines.append(f"| {k} | {f(t['chain_accuracy'], 1)} | {f(t['chain_tokens'])} | {f(t['tool_on'], 1)} | {f(t['tool_off'], 1)} | "
                     f"{f(t['tool_lift'], 1)} | {f(t['var_accuracy'], 1)} | {f(t['unanswerable_abstain'], 1)} | {f(t['answerable_abstain'], 1)} |")
    lines += ['', '### Chain accuracy by level (%)', '', '| teacher | ' + ' | '.join(f'L{l}' for l in LEVELS) + ' |',
              '|---|' + '---:|' * len(LEVELS)]
    lines += [f"| {k} | " + ' | '.join(f(t['by_level'][str(l)], 1) for l in LEVELS) + ' |' for k, t in T.items()]
    r = res['length_ratio']
    lines += ['', f"Mean trace length ratio, {r['most']} / {r['least']}: {r['mean']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}].", '',
              '## Student bases', '', '| student | privileged gain (nats/token) | chain acc % | abstains, unanswerable % |', '|---|---:|---:|---:|']
    lines += [f"| {k} | {f(s['privileged_gain'])} | {f(s['chain_accuracy'], 1)} | {f(s['unanswerable_abstain'], 1)} |" for k, s in res['students'].items()]
    c = res['context']
    lines += ['', f"Context: reference prompt + verbose teacher trace at level {max(LEVELS)}: max {c['max_tokens']} tokens, "
              f"mean {c['mean_tokens']:.0f}; {c['fits']}/{c['n']} within {CONTEXT_LEN2}.", '',
              f"Training documents posing an evaluation problem (of {a.leak_docs} per generator): {res['leaks']}", '', '## Checks', '']
    lines += [f"- [{'x' if ok else ' '}] {k}" for k, ok in checks.items()]
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
