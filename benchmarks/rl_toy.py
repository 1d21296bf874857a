"""Reinforcement learning with verifiable rewards against distillation on toy world v2, at equal training-token budgets.

    python benchmarks/rl_toy.py [--seeds 3] [--token-budget 32000] [--work runs/rl_toy] [--methods grpo,sft-grpo,...]
    python benchmarks/rl_toy.py --phase dev --methods sft-grpo,sft-opd     # shards: dev runs (seed 0) first,
    python benchmarks/rl_toy.py --phase test --only-seeds 1                # then test seeds; a plain call aggregates
    python benchmarks/rl_toy.py --tiny --work /tmp/rl --out /tmp/rl/res     # smoke run (numbers meaningless)

Protocol (`reasondistill.eval.compare`; resumable: finished runs and evaluations in --work are reused):
1. Data: toy2:teacher-small samples --samples traces (T = 1) of --train-per-level training chains per level; the verified
   ones are the SFT data; the problems (gold answers, the world's reference solutions) are what RL and on-policy arms sample.
2. Budget B = --token-budget completion tokens per run. `sft`: all of B on SFT. `grpo`: all of B on GRPO from the base.
   Staged arms spend B/2 on SFT (shared per seed) and B/2 on their second stage: `sft-grpo`, `sft-opd` (on-policy
   distillation), `sft-opsd` (self-distillation with the reference), `sft-rlad`, `sft-grpo-kl` (GRPO + KL to the teacher),
   `sft-kepo` (KEPO: hinted exploration + gated JSD), `sft-autothink` (stage 1), `sft-gar` (slice discriminator); `curio-grpo`
   spends its first half on CurioSFT instead of SFT (CurioSFT's claim: GRPO gains more from its checkpoint), `curio1-grpo`
   the same with CurioSFT's reference synced every step instead of every 5 (added after a dev probe: at this budget a
   reference 5 steps stale holds the student in the base's answer-only mode, so `curio-grpo` never tests the claim);
   `sft-acereason` is AceReason's strictly on-policy GRPO with its length curriculum scaled to the toy (rollout caps of
   1/3, 2/3 and all of --rollout-tokens, one stage each; the test set holds chains only, so no second domain);
   `sft-gkd` and `sft-tsdkd` are GKD (lambda 0.5: half the micro-batches on the teacher's traces) and TSD-KD (on-policy)
   from the teacher, stopped at B/2 trained tokens like on-policy distillation; `sft-gkd-b0.9` is TSD-KD's own GKD
   baseline (on-policy, beta 0.9, T = 1); ablations: `sft-gkd-onpolicy` (GKD with lambda 1, the GKD paper's purely on-policy
   setting), `sft-kepo-all` (KEPO distilling on every rollout, the paper's gate ablation), `sft-tsdkd-released` (TSD-KD with
   the released code's PL sign, EM rule and opener cut); `sft-sft` is continued SFT: the second half on SFT from the shared
   start at its own dev-chosen learning rate (the baseline of every "beats continued SFT" claim; `sft` restarts nothing
   but runs the whole budget at one learning rate); `sft-curiosft` and `sft-curiosft-fixed` spend the second half on CurioSFT
   with the entropy-guided or a fixed tau = 1.3 (the paper's ablation); its entropy check is `curiosft_entropy_v2.py`;
   `sft-imitate-explore` is one explore + self-improve round from the shared SFT checkpoint (the imitation round):
   --num-generations rollouts per training problem at --rollout-tokens, the shortest verified one per problem joins the
   teacher traces, SFT continues from the checkpoint for the second half's steps, and the method's own stopping rule
   keeps the checkpoint instead when dev accuracy does not rise by 1 point (its rollouts are not trained tokens; its own rule
   scores dev at the rollout cap, --rollout-tokens, while this benchmark's dev scoring allows --max-new-tokens). RL stages
   run B/2 / (batch x mean trace tokens) optimizer steps (the same count as SFT's); on-policy distillation stops at B/2
   trained tokens. Each run saves its adapter at half of its last stage for the curves.
3. Selection: every arm's last-stage learning rate from --sweep-lr, chosen on dev (seed 0, --dev-per-level problems per
   level). Test touched once per arm and seed: accuracy (avg@--eval-samples at T = 1) on test A, and pass@k to
   k = --passk-n on test B (a disjoint test subset, --passk-problems problems, --passk-n samples each; unbiased estimator).
4. Tokens to target: the second-stage training tokens at which an arm's dev curve (B/2, mid, B) first reaches the
   target (linear interpolation; single-stage arms: their whole curve), the target being --target or, by default, the
   final dev accuracy of `sft-grpo` (mean over seeds): "reaches GRPO's accuracy with N times fewer tokens". Ratios
   `sft-opd` / `sft-grpo` and `sft-opsd` / `sft-grpo`: per seed (over the seeds where the shared stage-1 start is below
   the target), and on the seed-mean curves, where an arm that does not reach the target within its budget is
   censored (its ratio is at least B/2 over GRPO's tokens) — the verdict reads the latter (the project's goal is
   <= 0.25; OPSD's paper reports 4-8x) unless the fine curves (7.) are present, which replace it.
5. Accuracy vs capability by difficulty: accuracy (pass@1) and capability (pass@k at the largest k) per level.
6. pass@k claims (RL narrows, distillation widens) at the largest k and at the largest informative k: the largest k at
   which the base stays below pass@k = 0.99 on at least half of test B (toy answers are small integers, so at large k
   an answer-only model reaches them by guessing; this second reading was added after the first record saturated).
7. Fine curves (dev only): the --fine-arms (sft-grpo, sft-opd, sft-opsd) re-trained at their chosen learning rates from the
   same stage-1 checkpoints with --fine-points - 1 evenly spaced checkpoints, scored on --fine-dev-per-level dev problems
   per level; tokens-to-target ratios over sft-grpo on their seed-mean curves at GRPO's final accuracy (the claim's target)
   and at half of GRPO's gain, with a hierarchical bootstrap over seeds and dev problems (`ratio_interval`); the OPD/OPSD
   verdicts read these when present, and stay inconclusive when the interval of GRPO's own second-stage dev gain reaches
   zero (the target is then within noise of the shared start). Shards: `--fine-only --only-seeds N`.
Writes --out.json, --out.md and three figures: --out-passk.png (pass@k against k), --out-curves.png (dev accuracy
against training tokens) and --out-fine.png (the fine curves).
"""
import json, math, sys, time
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, start, tiny_note, add_sweep, sweep_from_args, write_report, add_phases, phase_seeds, run_phase
from common import verdict as _verdict, pair_ci, v1_pair, v1_text

ARMS = ('sft', 'grpo', 'sft-grpo', 'sft-opd', 'sft-opsd', 'sft-rlad', 'sft-grpo-kl', 'sft-kepo', 'sft-autothink', 'sft-gar', 'curio-grpo', 'sft-acereason', 'sft-imitate-explore',
        'curio1-grpo', 'sft-gkd', 'sft-tsdkd', 'sft-gkd-b0.9', 'sft-kepo-all', 'sft-gkd-onpolicy', 'sft-tsdkd-released',
        'sft-curiosft', 'sft-curiosft-fixed', 'sft-sft')
STUDENT, TEACHER = 'toy2:student', 'toy2:teacher-small'
SECOND = {'sft-grpo': 'grpo', 'sft-opd': 'opd', 'sft-opsd': 'opsd', 'sft-rlad': 'rlad', 'sft-grpo-kl': 'grpo-kl-teacher',
          'sft-kepo': 'kepo-explore', 'sft-autothink': 'autothink', 'sft-gar': 'gar',
          'curio-grpo': 'grpo', 'curio1-grpo': 'grpo', 'sft-acereason': 'acereason', 'sft-imitate-explore': 'imitate-explore',
          'sft-gkd': 'gkd', 'sft-tsdkd': 'tsd-kd', 'sft-gkd-b0.9': 'gkd', 'sft-kepo-all': 'kepo-explore', 'sft-gkd-onpolicy': 'gkd',
          'sft-tsdkd-released': 'tsd-kd', 'sft-curiosft': 'curiosft', 'sft-curiosft-fixed': 'curiosft-fixed-tau', 'sft-sft': 'sft'}
V1 = {'sft': 'sft', 'sft-sft': 'sft', 'sft-gkd': 'gkd', 'sft-tsdkd': 'tsd-kd', 'sft-gkd-b0.9': 'gkd-b0.9', 'sft-kepo': 'kepo', 'sft-kepo-all': 'kepo-all',
      'sft-tsdkd-released': 'tsd-kd-released', 'sft-gkd-onpolicy': 'gkd-onpolicy', 'sft-curiosft': 'curiosft',
      'sft-curiosft-fixed': 'curiosft-fixed-tau'}   # this benchmark's arms as named in v1's on-policy table (`onpolicy_toy.json`)
OFFLINE = ('sft', 'curiosft', 'curiosft-fixed-tau')   # second stages that train on the teacher's traces (no rollouts)
STAGE1 = {'curio-grpo': 'stage1-curiosft', 'curio1-grpo': 'stage1-curiosft-sync1'}   # arms whose first stage is not the shared SFT run
CURIO = {'stage1-curiosft': {}, 'stage1-curiosft-sync1': {'sync_every': 1}}           # their CurioSFT settings

def parse():
    ap = bench_parser('rl_toy', __doc__, ARMS, seeds=3, train_per_level=24, samples=2, batch_size=16, lr=3e-3, max_length=1024,
                      eval_levels='2,4,6,8', eval_per_level=25, eval_samples=4, max_new_tokens=256)
    add_sweep(ap, lr='1e-3,3e-3')
    ap.add_argument('--token-budget', type=int, default=32_000, help='completion tokens per run')
    ap.add_argument('--num-generations', type=int, default=8, help='GRPO group size')
    ap.add_argument('--rollout-tokens', type=int, default=192, help='rollout length cap')
    ap.add_argument('--dev-per-level', type=int, default=15, help='dev problems per level (selection and curves)')
    ap.add_argument('--passk-problems', type=int, default=12, help='test-B problems for pass@k (disjoint from test A)')
    ap.add_argument('--passk-n', type=int, default=256, help='samples per test-B problem (the largest k)')
    ap.add_argument('--target', type=float, default=0.0, help="dev accuracy whose training-token cost is compared (0: sft-grpo's final)")
    ap.add_argument('--fine-arms', default='sft-grpo,sft-opd,sft-opsd', help='arms re-trained (dev only) with --fine-points checkpoints for the tokens-to-target ratios')
    ap.add_argument('--fine-points', type=int, default=8, help='checkpoints per second stage of the fine curves')
    ap.add_argument('--fine-dev-per-level', type=int, default=40, help='dev problems per level scoring the fine curves')
    ap.add_argument('--fine-only', action='store_true', help="only the fine curves of --only-seeds (a shard; the arms' dev choice must exist)")
    add_phases(ap)
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=1, samples=1, batch_size=4, token_budget=400, eval_levels='2,4',
                                 eval_per_level=2, eval_samples=2, max_new_tokens=48, rollout_tokens=32, dev_per_level=2,
                                 passk_problems=2, passk_n=4, num_generations=2, sweep_lr='3e-3', fine_points=2, fine_dev_per_level=2), known=ARMS)
    a.test_seeds = phase_seeds(a)
    return a

def train_config(lr:float, seed:int, steps:int, batch_size:int, max_length:int):
    "Every stage's `TrainConfig` in this benchmark (constant lr after warm-up; no intermediate checkpoints)."
    from reasondistill.train import TrainConfig
    return TrainConfig(lr=lr, max_steps=steps, batch_size=batch_size, max_length=max_length, logging_steps=5,
                       save_steps=10 ** 6, seed=seed, scheduler='constant_with_warmup')

def _done(out) -> bool: return (Path(out) / 'final' / 'adapter_config.json').exists()

def _saver(step_to_name:dict, out):
    from transformers import TrainerCallback
    class Saver(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            n = step_to_name.get(state.global_step)
            if n is not None and not (Path(out) / n).exists(): model.save_pretrained(Path(out) / n)
    return Saver()

def _gen_share(run_dir) -> float|None:
    """Share of training-step time spent generating rollouts: every trainer's summary carries it as `gen_share`; runs
    written before the on-policy and staged trainers did (this record's) hold it under `rollouts` or per stage."""
    f = Path(run_dir) / 'train_done.json'
    if not f.exists(): return None
    sm = json.loads(f.read_text())
    if sm.get('gen_share') is not None: return sm['gen_share']
    if (sm.get('rollouts') or {}).get('gen_share') is not None: return sm['rollouts']['gen_share']
    st = [x['gen_share'] for x in sm.get('stages') or [] if x.get('gen_share') is not None]
    return sum(st) / len(st) if st else None

def tokens_to_target(curve:list, target:float):
    "First training-token count at which the curve [(tokens, accuracy), ...] reaches `target` (linear interpolation); None if never."
    for (t0, a0), (t1, a1) in zip(curve, curve[1:]):
        if a0 >= target: return t0
        if a1 >= target: return t0 + (t1 - t0) * (target - a0) / (a1 - a0)
    return curve[-1][0] if curve and curve[-1][1] >= target else None

def mean_curve(curves:list) -> list:
    "The seeds' mean of curves [(tokens, accuracy), ...] at the token counts every seed's curve has."
    common = sorted(set.intersection(*[{t for t, _ in c} for c in curves])) if curves else []
    return [(t, sum(dict(c)[t] for c in curves) / len(curves)) for t in common]

def censored_ratio(arm_curves:list, grpo_curves:list, target:float, budget:float) -> dict:
    """Second-stage tokens to `target` of an arm over GRPO's, on the seed-mean dev curves. An arm that does not reach the
    target within its `budget` is censored: its ratio is then a lower bound, budget / GRPO's tokens. Undefined when GRPO
    never reaches the target or starts at it."""
    eps = 1e-9   # the default target is the mean of GRPO's final points: reached at its last point up to rounding
    ta, tg = tokens_to_target(mean_curve(arm_curves), target - eps), tokens_to_target(mean_curve(grpo_curves), target - eps)
    r = dict(arm_tokens=ta, grpo_tokens=tg, ratio=None, lower_bound=None)
    if not tg: return dict(r, verdict='inconclusive (not measurable: GRPO never reaches the target, or starts at it)')
    if ta is None:
        r['lower_bound'] = budget / tg
        return dict(r, verdict='fails' if r['lower_bound'] > 0.25 else 'inconclusive (censored below 0.25)')
    r['ratio'] = ta / tg
    return dict(r, verdict='holds' if r['ratio'] <= 0.25 else 'fails')

def ratio_interval(pp:dict, arm:str, budget:float, frac:float=1.0, n_boot:int=2000, seed:int=0) -> dict:
    """Tokens-to-target of `arm` over `sft-grpo`'s on the seed-mean curves, with a 95% hierarchical bootstrap interval over seeds
    and dev problems (the same draws for both arms, whose seed-s runs start from the same checkpoint). `pp[a]`: per seed, the
    curve [(second-stage tokens, [per-problem dev accuracy]), ...]. The target is GRPO's start plus `frac` of its mean gain (1:
    its final accuracy). A replicate in which the arm never reaches the target is censored (ratio > budget / GRPO's tokens):
    it counts as infinitely slow, so an upper bound of inf means "not bounded within the budget"."""
    from reasondistill.eval.metrics import hierarchical_draws
    def curves(a, seeds, probs):
        return [[(t, sum(x[j] for j in probs) / len(probs)) for t, x in pp[a][s]] for s in seeds]
    def one(seeds, probs):
        g, o = curves('sft-grpo', seeds, probs), curves(arm, seeds, probs)
        mg = mean_curve(g)
        gain = mg[-1][1] - mg[0][1]
        return mg[0][1] + frac * gain, gain, censored_ratio(o, g, mg[0][1] + frac * gain, budget)
    ns, npb = len(pp['sft-grpo']), len(pp['sft-grpo'][0][0][1])
    target, gain, point = one(range(ns), range(npb))
    vals, gains = [], []
    for si, pi in zip(*hierarchical_draws(ns, npb, n_boot, seed)):   # the project's draws of seeds and problems
        _, g, r = one(si, pi)
        gains.append(g)
        vals.append(r['ratio'] if r['ratio'] is not None else math.inf if r['lower_bound'] is not None else math.nan)
    v, gs = sorted(x for x in vals if x == x), sorted(gains)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))] if xs else None
    lo, hi = q(v, 0.025), q(v, 0.975)
    g_ci = dict(mean=gain, lo=q(gs, 0.025), hi=q(gs, 0.975), n_seeds=ns, n_problems=npb)
    # a ratio to a target is only meaningful when GRPO gains: when its gain's interval reaches 0, the target is its start
    verdict = ('inconclusive (not measurable)' if lo is None else
               'inconclusive (GRPO does not gain on dev: the target is within noise of the shared start)' if g_ci['lo'] <= 0 else
               'holds' if hi <= 0.25 else 'fails' if lo > 0.25 else 'inconclusive')
    return dict(frac=frac, target=target, point=point, lo=lo, hi=hi, verdict=verdict, n_boot=len(v), n_seeds=ns, n_problems=npb,
                censored_share=sum(x == math.inf for x in v) / max(1, len(v)), grpo_gain=g_ci)

def _ratio_text(r:dict) -> str:
    "ratio [lo, hi] of a `ratio_interval`, or its censored form."
    p = r['point']
    num = lambda x: 'n/a' if x is None else '∞' if x == math.inf else f'{x:.2f}'
    pt = f"{p['ratio']:.2f}" if p.get('ratio') is not None else f"> {p['lower_bound']:.2f} (censored)" if p.get('lower_bound') is not None else 'not measurable'
    return f"{pt} [{num(r['lo'])}, {num(r['hi'])}]"

def _tokens(x) -> str: return 'did not reach it' if x is None else f'reached it at {x:.0f} tokens'

def informative_k(correct:list, n:int, ks) -> int|None:
    """The largest k of `ks` at which the base has not saturated: pass@k < 0.99 on at least half of the problems (`correct`:
    the base's correct samples of n per problem). Above it, pass@k on a small answer space measures guessing."""
    from reasondistill.eval.metrics import pass_at_k
    ok = [k for k in ks if k <= n and sum(pass_at_k(n, c, k) < 0.99 for c in correct) >= len(correct) / 2]
    return max(ok) if ok else None

def _fmt(c:dict|None, scale:float=100, unit:str='points') -> str:
    "mean [lo, hi] unit (seeds x problems) of an interval, or 'not measured'."
    if not c or c.get('mean') is None: return 'not measured'
    num = lambda x: 'n/a' if x is None or x != x else f'{scale * x:+.1f}'
    n = f"{c.get('n_seeds', c.get('n', '?'))} seeds" + (f" x {c['n_problems']} problems" if c.get('n_problems') else '')
    return f"{num(c['mean'])} [{num(c.get('lo'))}, {num(c.get('hi'))}] {unit} ({n})"

def claims(runs:list, base:dict, ratio:dict|None, fine_ratio:dict|None=None) -> list:
    "Each seed-paper claim this benchmark can test, with its verdict and the interval behind it."
    from reasondistill.eval.compare import paired_differences
    from reasondistill.eval.metrics import hierarchical_bootstrap
    by = {}
    for r in runs: by.setdefault(r['method'], []).append(r)
    kmax = max((int(k) for r in runs for k in (r.get('pass_at_k') or {})), default=None)
    out = []
    def passk_diff(arm, k=None, against=None):   # per-problem pass@k (default: the largest k) of the arm minus the base's (one
        # untrained model) or, with `against`, minus that arm's run of the same seed; over seeds and problems
        if arm not in by or kmax is None or (against is not None and against not in by): return None
        from reasondistill.eval.metrics import pass_at_k
        pk = lambda r: [pass_at_k(r['passk_n'], c, k or kmax) for c in r['passk_correct']]
        ref = {r['seed']: r for r in by[against]} if against else None
        d = [[x - y for x, y in zip(pk(r), pk(ref[r['seed']] if ref else base))] for r in by[arm] if ref is None or r['seed'] in ref]
        c = hierarchical_bootstrap(d, bounds=(-1.0, 1.0))
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in c.items() if k in ('mean', 'lo', 'hi', 'n_seeds', 'n_problems')}
    for arm, direction, claim in (('grpo', -1, 'RL narrows the pass@k boundary (pass@k at the largest k below the base\'s)'),
                                  ('sft', 1, 'distillation widens it (pass@k at the largest k above the base\'s)')):
        c = passk_diff(arm)
        out.append(dict(claim=claim, verdict=_verdict(c, direction), arm=arm, baseline='base', metric=f'pass@{kmax}', ci=c,
                        evidence=f'{arm} − base, pass@{kmax}: {_fmt(c)}'))
    ki = informative_k(base['passk_correct'], base['passk_n'], sorted(int(k) for k in base['pass_at_k'])) if 'passk_correct' in base else None
    for arm, direction, claim in (('grpo', -1, 'RL narrows the pass@k boundary, at the largest informative k'),
                                  ('sft', 1, 'distillation widens it, at the largest informative k')):
        c = passk_diff(arm, ki) if ki else None
        out.append(dict(claim=claim, verdict=_verdict(c, direction), arm=arm, baseline='base', metric=f'pass@{ki}', ci=c, informative_k=ki,
                        evidence=f'{arm} − base, pass@{ki} (the largest k at which the base is below 0.99 on at least half of the '
                                 f'test-B problems; above it pass@k measures guessing): {_fmt(c)}'))
    diffs = paired_differences(runs, 'sft-grpo') if 'sft-grpo' in by else {}
    for arm, claim in (('sft-rlad', 'RLAD beats GRPO at equal budget'), ('sft-kepo', 'KEPO beats GRPO at equal budget'),
                       ('sft-grpo-kl', 'GRPO + KL to the teacher beats GRPO'), ('sft-opd', 'on-policy distillation beats GRPO'),
                       ('sft-opsd', 'OPSD beats GRPO'), ('sft-gar', 'the slice discriminator\'s dense rewards beat GRPO'),
                       ('curio-grpo', 'GRPO from a CurioSFT checkpoint ends above GRPO from an SFT checkpoint'),
                       ('curio1-grpo', 'GRPO from a CurioSFT checkpoint (reference synced every step) ends above GRPO from an SFT checkpoint'),
                       ('sft-acereason', 'AceReason\'s length curriculum beats GRPO at equal budget')):
        c = diffs.get(arm)
        out.append(dict(claim=claim, verdict=_verdict(c, 1), arm=arm, baseline='sft-grpo', metric='accuracy', ci=c,
                        evidence=f'{arm} − sft-grpo, accuracy: {_fmt(c)}'))
    cont = 'sft-sft' if 'sft-sft' in by else 'sft'   # continued SFT: the shared start plus SFT at its own dev-chosen lr (records before it: sft)
    for arm, bl, claim in (('sft-gkd', cont, 'GKD (JSD on a mix of teacher traces and student samples) beats continued SFT at equal budget'),
                           ('sft-tsdkd', cont, 'TSD-KD beats continued SFT at equal budget'),
                           ('sft-tsdkd', 'sft-gkd', 'TSD-KD beats GKD at equal budget'),
                           ('sft-tsdkd', 'sft-gkd-b0.9', "TSD-KD beats its paper's GKD baseline (on-policy, beta 0.9, T 1) at equal budget"),
                           ('sft-kepo', 'sft-kepo-all', "KEPO's gate: distilling only on verified rollouts beats distilling on all of them (the paper's ablation)"),
                           ('sft-tsdkd', 'sft-tsdkd-released', "TSD-KD as written (standard PL, top-entropy EM, per-sequence opener) beats its released code's rules (the project's check)"),
                           ('sft-curiosft', cont, 'CurioSFT beats continued SFT at equal budget (its paper: +2.5 points in-distribution)'),
                           ('sft-curiosft', 'sft-curiosft-fixed', "CurioSFT's entropy-guided temperature beats a fixed tau = 1.3 (the paper's ablation)")):
        if arm in by and bl in by:
            c = pair_ci(runs, arm, bl)
            out.append(dict(claim=claim, verdict=_verdict(c, 1), arm=arm, baseline=bl, metric='accuracy', ci=c,
                            evidence=f'{arm} − {bl}, accuracy: {_fmt(c)}'))
    if 'sft-gkd-onpolicy' in by and 'sft-gkd' in by:   # GKD's paper: purely on-policy matched or beat mixtures (non-inferiority; margin 5 points, the project's choice)
        c = pair_ci(runs, 'sft-gkd-onpolicy', 'sft-gkd')
        out.append(dict(claim='purely on-policy GKD (lambda 1) matches or beats the lambda 0.5 mixture (margin 5 points)', verdict=_verdict(c, 1, 0.05),
                        arm='sft-gkd-onpolicy', baseline='sft-gkd', metric='accuracy', ci=c, evidence=f'sft-gkd-onpolicy − sft-gkd, accuracy: {_fmt(c)}'))
    if 'sft-curiosft' in by and cont in by:   # CurioSFT: higher pass@k at similar pass@1 (margin 5 points, the project's choice)
        p1 = pair_ci(runs, 'sft-curiosft', cont)
        for k in dict.fromkeys(x for x in (ki, kmax) if x):
            c = passk_diff('sft-curiosft', k, against=cont)
            wide, similar = _verdict(c, 1), _verdict(p1, 1, 0.05)
            v = 'holds' if wide == 'holds' and similar == 'holds' else 'fails' if wide == 'fails' or similar == 'fails' else 'inconclusive'
            out.append(dict(claim=f"CurioSFT keeps a higher pass@{k} than continued SFT at a similar pass@1 (not worse by 5 points)"
                                  + (' (the largest informative k)' if k == ki else ' (the largest k)'), verdict=v,
                            arm='sft-curiosft', baseline=cont, metric=f'pass@{k}, accuracy', ci={f'pass@{k}': c, 'accuracy': p1},
                            evidence=f"sft-curiosft − {cont}, pass@{k} (test B): {_fmt(c)}; accuracy (test A): {_fmt(p1)}"))
    if 'sft-imitate-explore' in by and 'sft' in by:   # STILL-2: self-improvement on verified own rollouts beats imitation alone
        c = paired_differences(runs, 'sft').get('sft-imitate-explore')
        out.append(dict(claim='exploring and self-improving beats imitation alone (SFT on the teacher traces for the whole budget)',
                        verdict=_verdict(c, 1), arm='sft-imitate-explore', baseline='sft', metric='accuracy', ci=c,
                        evidence=f'sft-imitate-explore − sft, accuracy: {_fmt(c)}'))
    if 'sft-autothink' in by and 'sft-grpo' in by:   # shorter answers without losing accuracy (margin: 5 points, the project's choice)
        t = paired_differences(runs, 'sft-grpo', 'mean_tokens').get('sft-autothink')
        c = diffs.get('sft-autothink')
        short, worse = _verdict(t, -1), c is not None and c['hi'] < -0.05
        v = 'holds' if short == 'holds' and c is not None and c['lo'] > -0.05 else 'fails' if short == 'fails' or worse else 'inconclusive'
        out.append(dict(claim='AutoThink shortens answers without losing accuracy (against GRPO; margin 5 points)', verdict=v,
                        arm='sft-autothink', baseline='sft-grpo', metric='mean_tokens, accuracy', ci=dict(mean_tokens=t, accuracy=c),
                        evidence=f'sft-autothink − sft-grpo, mean tokens: {_fmt(t, 1, "tokens")}; accuracy: {_fmt(c)}'))
    for arm, rr in (('sft-opd', ratio), ('sft-opsd', (ratio or {}).get('opsd'))):
        fr = (fine_ratio or {}).get(arm)
        if fr:   # the fine curves: a point ratio (or its censored bound) with an interval over seeds and dev problems
            f1, f5 = fr['1.0'], fr['0.5']
            out.append(dict(claim=f"{arm[4:].upper()} reaches GRPO's final dev accuracy with <= 1/4 of GRPO's second-stage tokens (OPSD's paper: 4-8x)",
                            verdict=f1['verdict'], arm=arm, baseline='sft-grpo', metric='tokens to target (ratio)', ci=dict(lo=f1['lo'], hi=f1['hi']),
                            evidence=f"fine curves ({f1['n_seeds']} seeds x {f1['n_problems']} dev problems, 95% bootstrap over both); GRPO's "
                                     f"second-stage gain on dev {_fmt(f1['grpo_gain'])}; target {100 * f1['target']:.1f}% (GRPO's final): "
                                     f"ratio {_ratio_text(f1)}; at half of GRPO's gain ({100 * f5['target']:.1f}%): {_ratio_text(f5)}"))
            continue
        m = (rr or {}).get('mean_curve') or {}
        t = lambda x: 'not reached' if x is None else f'{x:.0f}'
        tgt = 'not set' if (ratio or {}).get('target') is None else f"{100 * ratio['target']:.1f}%"
        what = (f"ratio {m['ratio']:.2f}" if m.get('ratio') is not None else f"ratio > {m['lower_bound']:.2f} (not reached within the budget)"
                if m.get('lower_bound') is not None else 'not measurable')
        out.append(dict(claim=f"{arm[4:].upper()} reaches GRPO's final dev accuracy with <= 1/4 of GRPO's second-stage tokens (OPSD's paper: 4-8x)",
                        verdict=m.get('verdict', 'inconclusive (not measured)'), arm=arm, baseline='sft-grpo', metric='tokens to target (ratio)', ci=None,
                        evidence=f"seed-mean dev curves, target {tgt}: {arm} {t(m.get('arm_tokens'))}, "
                                 f"sft-grpo {t(m.get('grpo_tokens'))} second-stage tokens; {what}. Per seed: {[None if x is None else round(x) for x in (rr or {}).get('arm') or []]} "
                                 f"vs {[None if x is None else round(x) for x in (rr or {}).get('grpo') or []]}"))
    for c in out:   # v1's verdict beside each claim that v1's on-policy table ran (accuracy claims; v1 had no RL and k <= 2)
        arm, bl = V1.get(c['arm']), V1.get(c['baseline'])
        margin = 0.05 if c['arm'] == 'sft-gkd-onpolicy' else 0.0   # the non-inferiority claim keeps its margin
        c['v1'] = v1_pair('onpolicy_toy', arm, bl, 1, margin) if c['metric'] == 'accuracy' and arm and bl else None
    return out

def main():
    a = parse()
    from reasondistill.toyworld2 import toy2_problems, reference_solution
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.eval.compare import teacher_examples, evaluate_adapter, DevSelection, aggregate_results
    from reasondistill.eval.metrics import pass_at_k
    from reasondistill.train import Run, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.registry import make_config, entry_point
    work, log = start(a)
    levels, tok = a.eval_levels, load_tokenizer(STUDENT)
    train_probs = toy2_problems(a.train_per_level, 'train', families=('chain',))
    dev = toy2_problems(a.dev_per_level, 'dev', families=('chain',), levels=levels)
    test_all = toy2_problems(a.eval_per_level + math.ceil(a.passk_problems / len(levels)), 'test', families=('chain',), levels=levels)
    test_a = [p for p in test_all if int(p.id.rsplit('/', 1)[1]) < a.eval_per_level]
    test_b = [p for p in test_all if p not in test_a][:a.passk_problems]
    ex, dstats = teacher_examples(train_probs, work / 'traces', a.samples, teacher=TEACHER, student=STUDENT, max_new_tokens=a.max_new_tokens)
    gold = {p.id: p.answer for p in train_probs}
    ex = [dict(e, answer=gold[e['problem_id']]) for e in ex]
    refs = [dict(prompt=render_prompt(tok, p.question), completion='', question=p.question, answer=p.answer, reference=reference_solution(p),
                 problem_id=p.id, id=p.id, level=p.meta['level'], source=p.meta['source']) for p in train_probs]
    mean_tok = sum(len(tok(e['completion'], add_special_tokens=False)['input_ids']) for e in ex) / max(1, len(ex))
    half = a.token_budget // 2
    steps_half = max(2, round(half / (a.batch_size * mean_tok)))
    log(f"data: {dstats['kept']} verified traces; {mean_tok:.1f} tokens each; {steps_half} steps per half budget")

    def tc(lr, seed, steps): return train_config(lr, seed, steps, a.batch_size, a.max_length)

    def sft(seed, steps, lr, name):
        out = work / f'seed{seed}' / name
        if not _done(out):
            train_sft(ex, Run(str(out), default_student_spec(STUDENT)), SFTConfig(tc(lr, seed, steps)), method='sft',
                      callbacks=[_saver({steps // 2: 'mid'}, out)])
        return out

    def curio(seed, steps, lr, name):
        out = work / f'seed{seed}' / name
        if not _done(out):
            cfg = make_config('curiosft', CURIO[name]); cfg.train = tc(lr, seed, steps)
            entry_point('curiosft')(ex, Run(str(out), default_student_spec(STUDENT)), cfg, method='curiosft',
                                    callbacks=[_saver({steps // 2: 'mid'}, out)])
        return out

    def second(arm, seed, lr, start_adapter, fine=0):
        "The arm's last stage from `start_adapter`; `fine` > 0: a dev-only copy saving `fine` - 1 evenly spaced checkpoints."
        out = work / f'seed{seed}' / f"{arm}-lr{lr:g}{'-fine' if fine else ''}"
        if _done(out): return out
        name = SECOND.get(arm, arm)
        if name == 'imitate-explore': return imitate_explore(arm, seed, lr, start_adapter, out)
        spec = default_student_spec(STUDENT) if start_adapter is None else replace(default_student_spec(STUDENT), lora=None, adapter=str(start_adapter))
        teacher = TEACHER if name in ('opd', 'rlad', 'grpo-kl-teacher', 'kepo-explore', 'gkd', 'tsd-kd') else None
        steps = steps_half * (2 if start_adapter is None else 1)
        c = {}
        if name in ('opd', 'opsd', 'gkd', 'tsd-kd'):
            saves = [half * k // fine for k in range(1, fine)] if fine else [half // 2]
            c = {'budget.tokens': half, 'rollout.max_new_tokens': a.rollout_tokens, 'budget.save_at': saves}   # OUT/tokens-N
            if arm == 'sft-gkd-b0.9': c |= {'rollout.lmbda': 1.0, 'loss.beta': 0.9, 'rollout.temperature': 1.0}   # TSD-KD's own baseline
            if arm == 'sft-gkd-onpolicy': c |= {'rollout.lmbda': 1.0}                                             # GKD's purely on-policy setting
            if arm == 'sft-tsdkd-released': c |= {'tsd.pl_form': 'released', 'tsd.em_rule': 'released', 'tsd.opener_rule': 'released'}
            if name == 'opsd': c |= {'self_teacher.template': 'short', 'self_teacher.teacher': 'live'}
            steps *= 6
        elif name in OFFLINE: c = {}
        else:
            c = {'num_generations': a.num_generations, 'max_new_tokens': a.rollout_tokens}
            if name == 'kepo-explore': c['num_enhanced'] = min(2, a.num_generations - 1)   # KEPO's 2, within a group
            if arm == 'sft-kepo-all': c['gate'] = 'all'                                       # the paper's gate ablation: distil on every rollout
            if name == 'acereason':
                r = a.rollout_tokens
                c = {'num_generations': a.num_generations, 'stages': f'chain:{r // 3},chain:{2 * r // 3},chain:{r}'}
        cfg = make_config(name, c); cfg.train = tc(lr, seed, steps)
        data = refs if name in ('opd', 'opsd', 'kepo-explore', 'gar') else train_probs
        if name == 'opd': data = [dict(r, completion='') for r in refs]
        if name in ('gkd', 'tsd-kd', *OFFLINE): data = ex      # GKD's off-policy half, continued SFT and CurioSFT train on the teacher's traces
        at = {max(1, round(steps * k / fine)) for k in range(1, fine)} if fine and name not in ('opd', 'opsd', 'gkd', 'tsd-kd') else ()
        cbs = [_saver({n: f'step-{n}' for n in at} if fine else {max(1, steps // 2): 'mid'}, out)]   # on-policy fine copies: OUT/tokens-N
        entry_point(name)(data, Run(str(out), spec, teacher=teacher), cfg, method=arm, callbacks=cbs)
        return out

    def imitate_explore(arm, seed, lr, start_adapter, out):
        "One explore + self-improve round from the shared SFT checkpoint; `out/final` holds the adapters the method returns."
        import shutil
        cfg = make_config('imitate-explore', {'rounds': 1, 'init': 'previous', 'imitation': str(start_adapter), 'traces': str(work / 'traces'),
                                              'n_rollouts': a.num_generations, 'max_new_tokens': a.rollout_tokens, 'dev_samples': 2,
                                              'dev': f"toy2:dev:{a.dev_per_level}:chain:{','.join(map(str, levels))}"})
        cfg.train = tc(lr, seed, steps_half)
        res = entry_point('imitate-explore')(train_probs, Run(str(out / 'run'), default_student_spec(STUDENT), teacher=TEACHER), cfg, method=arm)
        shutil.copytree(res['final'], out / 'final.tmp', dirs_exist_ok=True); (out / 'final.tmp').rename(out / 'final')
        return out

    def train(arm, hp, seed):
        if arm == 'sft': return str(sft(seed, 2 * steps_half, hp['lr'], f"sft-lr{hp['lr']:g}") / 'final')
        first = curio if arm in STAGE1 else sft
        stage1 = None if arm == 'grpo' else first(seed, steps_half, a.lr, STAGE1.get(arm, 'stage1-sft')) / 'final'
        return str(second(arm, seed, hp['lr'], stage1) / 'final')

    def score(adapter, split):
        "Dev: accuracy on dev. Test: accuracy on test A and pass@k on test B (the adapter's evaluations live beside it)."
        d = Path(adapter) if adapter else work / 'base'
        tag = d.parent.name + '/' + d.name if adapter else 'base'
        if split == 'dev':
            return evaluate_adapter(adapter, dev, d.parent / f'eval-dev-{d.name}' if adapter else d / 'eval-dev', student=STUDENT,
                                    n_samples=2, max_new_tokens=a.max_new_tokens, name=f'{tag} (dev)')
        e = d.parent if adapter else d
        r = evaluate_adapter(adapter, test_a, e / 'eval-test', student=STUDENT, n_samples=a.eval_samples,
                             max_new_tokens=a.max_new_tokens, name=f'{tag} (test A)')
        ks = tuple(k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if k <= a.passk_n)
        b = evaluate_adapter(adapter, test_b, e / 'eval-passk', student=STUDENT, n_samples=a.passk_n, ks=ks,
                             max_new_tokens=a.max_new_tokens, name=f'{tag} (test B)')
        n, kmax = a.passk_n, ks[-1]
        pp = [pass_at_k(n, round(x * n), kmax) for x in b['per_problem']['accuracy']]
        lv = b['per_problem']['levels']
        by_level = {l: sum(v for v, m in zip(pp, lv) if m == l) / lv.count(l) for l in dict.fromkeys(lv)}
        return dict(r, pass_at_k=b['pass_at_k'], passk_per_problem=pp, capability_by_level=by_level, passk_accuracy_by_level=b['by_level'],
                    passk_n=n, passk_correct=[round(x * n) for x in b['per_problem']['accuracy']])

    sel = DevSelection(sweep_from_args(a), train, score, seeds=a.test_seeds, dev_seeds=(0,))
    arms = a.methods
    fdev = toy2_problems(a.fine_dev_per_level, 'dev', families=('chain',), levels=levels)
    fine_arms = [x for x in a.fine_arms.split(',') if x in arms] if 'sft-grpo' in a.fine_arms.split(',') else []

    def fscore(adapter) -> list:
        "Per-problem dev accuracy on the fine-curve dev set (--fine-dev-per-level problems per level, 2 samples)."
        d = Path(adapter)
        r = evaluate_adapter(str(d), fdev, d.parent / f'eval-fdev-{d.name}', student=STUDENT, n_samples=2,
                             max_new_tokens=a.max_new_tokens, name=f'{d.parent.name}/{d.name} (fine dev)')
        return r['per_problem']['accuracy']

    def fine_curve(arm, s) -> list:
        "[(second-stage tokens, per-problem dev accuracy), ...] of a dev-only copy of the arm's last stage with --fine-points checkpoints."
        if arm in STAGE1 or arm in ('sft', 'grpo'): raise ValueError(f'fine curves are for arms after the shared SFT stage, not {arm}')
        s1 = sft(s, steps_half, a.lr, 'stage1-sft') / 'final'   # the arms' shared stage 1 (trained only if missing)
        run = second(arm, s, sel.chosen[arm]['lr'], s1, fine=a.fine_points)
        ck = [(half * int(d.name[5:]) / steps_half, d) for d in run.glob('step-*')] + [(int(d.name[7:]), d) for d in run.glob('tokens-*')]
        return [(0, fscore(s1)), *[(t, fscore(d)) for t, d in sorted(ck) if t < half], (half, fscore(run / 'final'))]

    if a.fine_only:
        for arm in fine_arms:
            sel.select(arm)
            for s in a.test_seeds: fine_curve(arm, s)
        log(f'fine curves done: {fine_arms}, seeds {list(a.test_seeds)}'); return
    def curve(arm, s, base_dev):
        "Dev accuracy along a run: (0, base), the stage-1 mid point and end, the last stage's mid point and end."
        run = Path(train(arm, sel.chosen[arm], s)).parent
        pts = [(0, base_dev)]
        if arm not in ('sft', 'grpo'):
            s1 = work / f'seed{s}' / STAGE1.get(arm, 'stage1-sft')
            pts += [(half / 2, score(str(s1 / 'mid'), 'dev')['accuracy']), (half, score(str(s1 / 'final'), 'dev')['accuracy'])]
            off = half
        else: off = 0
        span = a.token_budget - off
        mid = next((m for m in (run / 'mid', run / f'tokens-{half // 2}') if (m / 'adapter_config.json').exists()), None)
        if mid is not None: pts.append((off + span / 2, score(str(mid), 'dev')['accuracy']))   # absent when a run stopped sooner
        pts.append((a.token_budget, score(str(run / 'final'), 'dev')['accuracy']))
        return pts

    runs = run_phase(a, sel, arms, log)
    if runs is None:
        if a.phase == 'test' and a.only_seeds:   # a test shard also scores its seeds' checkpoints on dev (the curves' points)
            for arm in arms:
                for s in a.test_seeds: curve(arm, s, None)
            log("this shard's curve points are scored")
        return
    b_run = dict(score(None, 'test'), method='base', seed=0)   # the base: no training, one evaluation
    base_dev = score(None, 'dev')['accuracy']
    curves = {arm: [curve(arm, s, base_dev) for s in a.test_seeds] for arm in arms}   # dev accuracy against training tokens
    finals = [c[-1][1] for c in curves.get('sft-grpo', [])]
    target = a.target if a.target > 0 else (sum(finals) / len(finals) if finals else None)
    stage2 = lambda arm, c: c if arm in ('sft', 'grpo') else [(t - half, x) for t, x in c if t >= half]
    ttt = {arm: [None if target is None else tokens_to_target(stage2(arm, c), target) for c in cs] for arm, cs in curves.items()}
    ratios = {}
    for arm in ('sft-opd', 'sft-opsd'):
        if arm not in ttt or 'sft-grpo' not in ttt or target is None: continue
        keep = [i for i, c in enumerate(curves['sft-grpo']) if stage2('sft-grpo', c)[0][1] < target]   # stage-1 start below the target
        o, g = [ttt[arm][i] for i in keep], [ttt['sft-grpo'][i] for i in keep]
        ok = all(x is not None for x in o + g) and g and sum(g) > 0
        ratios[arm] = dict(arm=o, grpo=g, seeds=keep, ratio=(sum(o) / len(o)) / (sum(g) / len(g)) if ok else None,
                           note='per seed: mean second-stage tokens to reach the target on dev over the seeds whose stage-1 start is below it; '
                                'None when an arm never reached it in one of them, or no seed qualifies',
                           mean_curve=censored_ratio([stage2(arm, c) for c in curves[arm]], [stage2('sft-grpo', c) for c in curves['sft-grpo']],
                                                     target, half))
    ratio = dict(ratios.get('sft-opd', {}), target=target, opsd=ratios.get('sft-opsd'))
    fine = {arm: [fine_curve(arm, s) for s in a.test_seeds] for arm in fine_arms}   # dev-only re-runs with --fine-points checkpoints
    fine_ratio = {arm: {str(f): ratio_interval(fine, arm, half, f) for f in (0.5, 1.0)} for arm in fine if arm != 'sft-grpo'}
    fine_mean = {arm: [[(t, sum(x) / len(x)) for t, x in c] for c in cs] for arm, cs in fine.items()}
    gen = {}
    for arm in arms:
        for s in a.test_seeds:
            g = _gen_share(Path(train(arm, sel.chosen[arm], s)).parent)
            if g is not None: gen.setdefault(arm, []).append(g)
    verdicts = claims(runs, b_run, ratio, fine_ratio)
    ie = {}   # what the imitate-explore arm's stopping rule did, per seed
    for s in a.test_seeds if 'sft-imitate-explore' in arms else ():
        f = Path(train('sft-imitate-explore', sel.chosen['sft-imitate-explore'], s)).parent / 'run' / 'imitate_explore.json'
        if f.exists():
            r = json.loads(f.read_text()); r1 = r['rounds'][1] if len(r['rounds']) > 1 else {}
            ie[str(s)] = dict(best_round=r['best_round'], dev_accuracy=r['dev_accuracy'], self_traces_kept=(r1.get('selection') or {}).get('kept'),
                              problems_with_a_verified_rollout=(r1.get('selection') or {}).get('problems'), training_problems=len(train_probs))
    res = dict(target=target, config={k: v for k, v in vars(a).items() if not k.startswith('_') and k not in ('t_start', 'load_start')},
               data=dict(dstats, mean_trace_tokens=mean_tok, steps_half=steps_half), selection=sel.record(),
               aggregate=aggregate_results([*runs, b_run], metrics=('accuracy', 'mean_tokens')), runs=[*runs, b_run], curves=curves, tokens_to_target=ttt, opd_over_grpo=ratio, gen_share=gen, verdicts=verdicts,
               imitate_explore=ie, fine_curves=fine_mean, fine_ratio=fine_ratio,
               fine=dict(arms=fine_arms, points=a.fine_points, dev_problems=len(fdev), dev_samples=2))
    from reasondistill.eval.compare import plot_pass_curves, plot_token_curves
    stem = Path(a.out).name
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    shown = ['base', *[m for m in ('sft', 'grpo', 'sft-grpo', 'sft-opd', 'sft-rlad', 'sft-kepo', 'curio-grpo') if m in arms]]   # a readable subset
    plot_pass_curves(aggregate_results([r for r in [*runs, b_run] if r['method'] in shown]), path=f'{a.out}-passk.png',
                     title=f'pass@k, test B ({len(test_b)} x {a.passk_n} samples)')
    plot_token_curves([dict(method=arm, seed=i, curve=[dict(tokens=t, accuracy=x, point=t) for t, x in c])
                       for arm, cs in curves.items() for i, c in enumerate(cs)], methods=list(arms), path=f'{a.out}-curves.png',
                      title=f'dev accuracy against training tokens ({len(a.test_seeds)} seeds)')
    if fine_mean:
        from reasondistill.eval.plots import save_figure
        fig = plot_token_curves([dict(method=arm, seed=i, curve=[dict(tokens=t, accuracy=x, point=t) for t, x in c])
                                 for arm, cs in fine_mean.items() for i, c in enumerate(cs)], methods=list(fine_mean),
                                title=f'fine dev curves: accuracy against second-stage tokens ({len(fdev)} dev problems)')
        for f, r in next(iter(fine_ratio.values()), {}).items():   # the targets (GRPO's final, half its gain): dotted lines
            fig.axes[0].axhline(100 * r['target'], color='grey', ls=':', lw=0.8)
        save_figure(fig, f'{a.out}-fine.png')
    lines = [f'# RL with verifiable rewards vs distillation on toy world v2{tiny_note(a)}', '',
             f"Student {STUDENT} (QLoRA NF4, r = 16), teacher {TEACHER}; budget {a.token_budget} completion tokens per run; "
             f"seeds {list(a.test_seeds)}; test A: {len(test_a)} problems x {a.eval_samples} samples; test B (pass@k): "
             f"{len(test_b)} problems x {a.passk_n} samples. Intervals: 95% hierarchical bootstrap over seeds and problems.", '',
             {'table': 'results', 'metrics': ['accuracy', 'mean_tokens'], 'baseline': 'sft', 'methods': ['base', *arms]}, '',
             {'table': 'dev', 'key': 'selection'}, '',
             f"Second-stage tokens to reach {'the target' if target is None else f'{100 * target:.1f}%'} dev accuracy "
             f"({'--target' if a.target > 0 else 'the final dev accuracy of sft-grpo, mean over seeds'}; per seed; None: not reached): " +
             '; '.join(f"{k}: {[None if x is None else round(x) for x in v]}" for k, v in ttt.items()), '',
             'Tokens-to-target ratios against sft-grpo, per seed (mean over the seeds whose stage-1 start is below the target): ' + '; '.join(
                 f"{k}: {'not measurable' if v.get('ratio') is None else round(v['ratio'], 3)} (seeds {v.get('seeds')})" for k, v in ratios.items()),
             '', 'On the seed-mean dev curves (an arm that never reaches the target within its second-stage budget is censored: '
             'its ratio is at least budget / GRPO\'s tokens): ' + '; '.join(
                 f"{k} {_tokens(v['mean_curve']['arm_tokens'])}, sft-grpo {_tokens(v['mean_curve']['grpo_tokens'])}: ratio "
                 f"{'> ' + format(v['mean_curve']['lower_bound'], '.2f') if v['mean_curve']['lower_bound'] is not None else 'not measurable' if v['mean_curve']['ratio'] is None else format(v['mean_curve']['ratio'], '.2f')}"
                 for k, v in ratios.items()), '',
             *([f"Fine curves (dev only, never scored on test): {', '.join(fine)} re-trained at their chosen learning rates from the same stage-1 "
                f"checkpoints with {a.fine_points - 1} evenly spaced checkpoints each, scored on {len(fdev)} dev problems x 2 samples. "
                "Second-stage tokens to reach a target, over sft-grpo's, on the seed-mean curves (95% hierarchical bootstrap over seeds and "
                "dev problems; a replicate that never reaches the target is censored and counts as infinitely slow): " + '; '.join(
                    f"{k}: GRPO's final ({100 * v['1.0']['target']:.1f}%) {_ratio_text(v['1.0'])}, half of GRPO's gain "
                    f"({100 * v['0.5']['target']:.1f}%) {_ratio_text(v['0.5'])}" for k, v in fine_ratio.items()) +
                f". GRPO's second-stage gain on this dev set (final − start, same bootstrap): {_fmt(next(iter(fine_ratio.values()))['1.0']['grpo_gain'])}; "
                "the ratios' verdicts are inconclusive whenever that interval reaches zero (the target is then within noise of the start).", '',
                f'![fine dev curves]({Path(a.out).name}-fine.png)', ''] if fine_ratio else []),
             'Generation share of step time: ' + '; '.join(f"{k}: {sum(v) / len(v):.2f}" for k, v in gen.items()), '',
             *(['sft-imitate-explore, per seed (round 0 = the shared SFT checkpoint; round 1 = explore + self-improve): ' + '; '.join(
                 f"seed {s}: dev {[round(100 * x, 1) for x in v['dev_accuracy']]}%, kept round {v['best_round']}, "
                 f"{v['self_traces_kept']} own verified traces on {v['training_problems']} training problems" for s, v in ie.items()), ''] if ie else []),
             f'![pass@k against k]({stem}-passk.png)', '', 'pass@k figure: base, sft, grpo, sft-grpo, sft-opd, sft-rlad, sft-kepo, curio-grpo '
             '(bands: interval over seeds; the base is one model); the JSON holds every arm\'s pass@k.', '', f'![dev accuracy against training tokens]({stem}-curves.png)', '',
             '## Accuracy vs capability by difficulty (test B: pass@1 and pass@k at the largest k, by level, mean over seeds)', '',
             '| arm | ' + ' | '.join(f'L{l}' for l in levels) + ' |', '|---|' + '---:|' * len(levels)]
    for arm in ['base', *arms]:
        rs = [r for r in [*runs, b_run] if r['method'] == arm]
        cell = lambda l: (f"{100 * sum(r['passk_accuracy_by_level'].get(str(l), 0) for r in rs) / len(rs):.0f} / "
                          f"{100 * sum(r['capability_by_level'].get(str(l), 0) for r in rs) / len(rs):.0f}")
        lines.append(f'| {arm} | ' + ' | '.join(cell(l) for l in levels) + ' |')
    lines += ['', '## Verdicts on the seed papers\' claims', '', "v1: the same claim on toy world v1's on-policy table (`onpolicy_toy.json`: "
              'one fixed learning rate, continued SFT from the same start, 95% Student-t over 3 seeds); v1 had no RL arm and two samples per problem.', '',
              '| claim | verdict | evidence | v1 |', '|---|---|---|---|']
    lines += [f"| {v['claim']} | {v['verdict']} | {v['evidence']} | {v1_text(v.get('v1'))} |" for v in verdicts]
    write_report(a, lines, res, a.t_start)

if __name__ == '__main__':
    main()
