"Matrix tests of `reasondistill.eval.metrics`: estimators against closed forms and brute force, interval coverage, summaries."
import itertools, json, math, subprocess, sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
import numpy as np
import pytest
from reasondistill.eval.metrics import (pass_at_k, avg_at_n, pass_at_k_mean, majority_vote, majority_votes, maj_at_k,
                                   maj_at_k_mean, bootstrap_ci,
                                   paired_bootstrap_diff, t_quantile, mean_ci_over_seeds, summarize, sort_levels,
                                   get_metric, results_table, hierarchical_bootstrap, hierarchical_bootstrap_diff)

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- pass@k

def test_pass_at_k_closed_form():
    for n in range(1, 31):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12), (n, c, k)

def test_pass_at_k_brute_force():
    "Fraction of all k-subsets of the n samples that contain at least one correct sample."
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(i < c for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)

@pytest.mark.parametrize('n,c,k', [(10_000, 5, 100), (2_000, 1, 1_000), (512, 37, 256), (1_000, 990, 5)])
def test_pass_at_k_large_n_is_exact(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-15)

@pytest.mark.parametrize('n,c,k,msg', [(4, 1, 5, 'at least k'), (4, 5, 1, 'c <= n'), (4, -1, 1, 'c <= n'),
                                       (4, 1, 0, 'k >= 1'), (0, 0, 1, 'n >= 1')])
def test_pass_at_k_rejects(n, c, k, msg):
    with pytest.raises(ValueError, match=msg): pass_at_k(n, c, k)

def test_pass_at_k_monotone_in_k_and_c():
    for n in (4, 16):
        for c in range(n + 1):
            ks = [pass_at_k(n, c, k) for k in range(1, n + 1)]
            assert all(a <= b + 1e-15 for a, b in zip(ks, ks[1:]))
        for k in range(1, n + 1):
            cs = [pass_at_k(n, c, k) for c in range(n + 1)]
            assert all(a <= b + 1e-15 for a, b in zip(cs, cs[1:]))

def test_avg_at_n_is_mean_pass_at_1():
    rng = np.random.default_rng(0)
    correct = [list(rng.random(rng.integers(1, 20)) < rng.random()) for _ in range(50)]
    assert avg_at_n(correct) == pytest.approx(pass_at_k_mean(correct, 1))
    assert avg_at_n(correct) == pytest.approx(np.mean([np.mean(c) for c in correct]))
    with pytest.raises(ValueError): avg_at_n([[True], []])

# ---------------------------------------------------------------- maj@k

def _maj_brute(votes, right, k):
    "maj@k from its definition: over every k-subset of the samples, the share of right answers among those with the most votes."
    V, hits = np.asarray(votes, dtype=float), []
    for sub in itertools.combinations(range(len(V)), k):
        tot = V[list(sub)].sum(0)
        top = tot.max() if tot.size else 0.0
        win = [j for j in range(len(tot)) if top > 0 and math.isclose(tot[j], top, rel_tol=1e-12)]
        hits.append(sum(right[j] for j in win) / len(win) if win else 0.0)
    return float(np.mean(hits))

def _answers_brute(answers, right, k):
    "The same for plain answers, with the plurality counted by hand."
    hits = []
    for sub in itertools.combinations(range(len(answers)), k):
        cnt = Counter(answers[i] for i in sub if answers[i] is not None)
        top = max(cnt.values(), default=0); win = [a for a in cnt if cnt[a] == top]
        hits.append(sum(a in right for a in win) / len(win) if win else 0.0)
    return float(np.mean(hits))

@pytest.mark.parametrize('seed', range(40))
def test_maj_at_k_matches_brute_force(seed):
    r = np.random.default_rng(seed)
    n = int(r.integers(1, 10))
    answers = [None if a == 'x' else str(a) for a in r.choice(['1', '2', '3', '4', 'x'], size=n, p=[.35, .25, .15, .1, .15])]
    right = set(r.choice(['1', '2', '3'], size=int(r.integers(0, 3)), replace=False))
    V, ok, cands = majority_votes(answers, right)
    for k in range(1, n + 1):
        want = _answers_brute(answers, right, k)
        assert maj_at_k(V, ok, k) == pytest.approx(want, abs=1e-12)
        assert _maj_brute(V, ok, k) == pytest.approx(want, abs=1e-12)
    assert maj_at_k(V, ok, 1) == pytest.approx(sum(a in right for a in answers) / n)      # maj@1 = share of right samples
    voted, is_right = majority_vote([(a, a in right) for a in answers])
    counts = Counter(a for a in answers if a is not None)
    if voted is not None and list(counts.values()).count(counts[voted]) == 1:
        assert maj_at_k(V, ok, n) == float(is_right)                                       # maj@n without a tie: the vote

@pytest.mark.parametrize('seed', range(10))
def test_maj_at_k_soft_votes_match_brute_force(seed):
    r = np.random.default_rng(seed)
    n, m = int(r.integers(1, 8)), int(r.integers(1, 4))
    V = r.dirichlet(np.ones(m), size=n) * (r.random((n, 1)) < 0.85)           # some samples do not vote
    ok = r.random(m) < 0.5
    for k in range(1, n + 1):
        assert maj_at_k(V, ok, k) == pytest.approx(_maj_brute(V, ok, k), abs=1e-12)

def test_maj_at_k_large_n_exact_and_monte_carlo():
    r = np.random.default_rng(0)
    answers = [str(a) if a < 4 else None for a in r.integers(0, 5, 64)]
    V, ok, _ = majority_votes(answers, {'0', '3'})
    for k in (16, 33, 64):
        draws = [r.choice(64, k, replace=False) for _ in range(3000)]
        mc = np.mean([_maj_brute(V[d], ok, k) for d in draws])                 # random subsets, scored by the definition
        assert maj_at_k(V, ok, k) == pytest.approx(mc, abs=0.03)
    soft = r.dirichlet(np.ones(3), size=16)                                     # soft votes: Monte Carlo past max_exact
    exact = maj_at_k(soft, [True, False, False], 5)
    assert math.comb(16, 5) <= 5000 and exact == pytest.approx(_maj_brute(soft, [True, False, False], 5))
    assert maj_at_k(soft, [True, False, False], 5, max_exact=1, n_sub=20000, seed=1) == pytest.approx(exact, abs=0.02)
    assert maj_at_k(np.ones((300, 1)), [True], 150) == pytest.approx(1.0)     # no overflow at large n

def test_maj_at_k_rejects():
    V, ok, _ = majority_votes(['a', 'b', 'a'], {'a'})
    with pytest.raises(ValueError, match='1 <= k'): maj_at_k(V, ok, 4)
    with pytest.raises(ValueError, match='candidates'): maj_at_k(V, ok[:1], 1)
    with pytest.raises(ValueError, match='matrix'): maj_at_k(np.ones(3), [True], 1)
    with pytest.raises(ValueError, match='non-negative'): maj_at_k(-V, ok, 1)
    assert maj_at_k(np.zeros((2, 0)), [], 1) == 0.0

def test_maj_at_k_mean_matches_reference():
    rng = np.random.default_rng(1)
    for _ in range(10):
        gold = 'a'
        probs = [[(a, a == gold) for a in rng.choice(['a', 'b', 'c', None], size=8, p=[.4, .25, .15, .2])] for _ in range(20)]
        for k in (1, 2, 3, 5, 8):
            want = np.mean([_answers_brute([a for a, _ in p], {gold}, k) for p in probs])
            assert maj_at_k_mean(probs, k) == pytest.approx(want, abs=1e-12)

def test_majority_vote_cases():
    assert majority_vote([('x', False), ('y', True), ('y', True)]) == ('y', True)
    assert majority_vote([('y', True), ('x', False), ('x', False), ('y', True)]) == ('y', True)   # tie: first seen
    assert majority_vote([(None, False), ('x', False), (None, False)]) == ('x', False)          # None never wins
    assert majority_vote([]) == (None, False)
    with pytest.raises(ValueError, match='at least k'): maj_at_k_mean([[('x', True)]], 2)

# ---------------------------------------------------------------- intervals

@pytest.mark.parametrize('p,n', [(0.3, 100), (0.5, 50), (0.8, 200)])
def test_bootstrap_ci_coverage_bernoulli(p, n):
    "Nominal 95% percentile intervals cover the true rate in 90-98% of 300 synthetic benchmarks."
    rng = np.random.default_rng(int(p * 1000) + n)
    hits = 0
    for rep in range(300):
        _, lo, hi = bootstrap_ci(rng.random(n) < p, n_boot=500, seed=rep)
        hits += lo <= p <= hi
    assert 0.90 <= hits / 300 <= 0.98, hits / 300

def test_bootstrap_ci_narrower_confidence_is_narrower():
    x = np.random.default_rng(2).random(300) < 0.4
    _, lo95, hi95 = bootstrap_ci(x, alpha=0.05)
    _, lo80, hi80 = bootstrap_ci(x, alpha=0.20)
    assert lo95 < lo80 < hi80 < hi95

def test_bootstrap_ci_median_and_columns():
    x = np.random.default_rng(3).normal(size=(400, 3)) + [0, 1, 2]
    m, lo, hi = bootstrap_ci(x, stat=np.median)
    assert m.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo < m) and np.all(m < hi) and np.all(np.abs(m - [0, 1, 2]) < 0.2)
    m1, lo1, hi1 = bootstrap_ci(x[:, 1], stat=np.median)
    assert isinstance(m1, float) and (lo1, hi1) == pytest.approx((lo[1], hi[1]))   # same resamples per column

def test_bootstrap_ci_large_input_in_chunks():
    "Inputs resampled in several chunks still give intervals of the textbook width 2 * 1.96 * sd / sqrt(n)."
    x = np.random.default_rng(4).random((5_000, 4))
    m, lo, hi = bootstrap_ci(x, n_boot=400)
    assert np.allclose(m, x.mean(0)) and np.all(lo < m) and np.all(m < hi)
    assert np.allclose(hi - lo, 2 * 1.96 * x.std(0) / np.sqrt(len(x)), rtol=0.15)

def test_paired_diff_coverage():
    "The paired interval covers the true mean difference at about the nominal rate."
    rng = np.random.default_rng(5)
    truth = 0.03 - 0.03 ** 2 / 2     # E[clip(u + 0.03, 0, 1) - u] for u ~ U(0, 1)
    hits = 0
    for rep in range(300):
        base = rng.random(150)
        a = (rng.random(150) < np.clip(base + 0.03, 0, 1)).astype(float)
        b = (rng.random(150) < base).astype(float)
        _, lo, hi = paired_bootstrap_diff(a, b, n_boot=500, seed=rep)
        hits += lo <= truth <= hi
    assert 0.90 <= hits / 300 <= 0.98, hits / 300

T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

def test_t_quantile_table():
    for df, t in enumerate(T95, start=1): assert t_quantile(df) == pytest.approx(t, abs=6e-4), df
    for df, t in [(1, 6.314), (2, 2.920), (5, 2.015), (10, 1.812), (30, 1.697)]: assert t_quantile(df, 0.10) == pytest.approx(t, abs=6e-4)
    for df, t in [(1, 63.657), (2, 9.925), (5, 4.032), (10, 3.169), (30, 2.750)]: assert t_quantile(df, 0.01) == pytest.approx(t, abs=6e-4)

def test_t_quantile_matches_scipy():
    stats = pytest.importorskip('scipy.stats')
    for df in (1, 2, 3, 7, 29, 200):
        for a in (0.01, 0.05, 0.2):
            assert t_quantile(df, a) == pytest.approx(stats.t.ppf(1 - a / 2, df), rel=1e-9)

@pytest.mark.parametrize('m', [2, 3, 5])
def test_mean_ci_over_seeds_coverage(m):
    "t-intervals over m normal seed results cover the true mean 95% of the time (exact for normal data)."
    rng = np.random.default_rng(m)
    x = rng.normal(0.6, 0.02, size=(4000, m))
    hits = np.mean([lo <= 0.6 <= hi for _, lo, hi in map(mean_ci_over_seeds, x)])
    assert 0.935 <= hits <= 0.965, hits

# ---------------------------------------------------------------- hierarchical bootstrap (seeds x problems)

def _hb_reference(V, n_boot, alpha, seed):
    "The definition, written out: per replicate, the mean over every drawn (seed, problem) pair, one at a time."
    V = [list(map(float, row)) for row in V]
    S, P = len(V), len(V[0])
    rng = np.random.default_rng(seed)                                   # the same draws: seeds [n_boot, S], then problems [n_boot, P]
    si, pi = rng.integers(0, S, size=(n_boot, S)), rng.integers(0, P, size=(n_boot, P))
    boots = []
    for b in range(n_boot):
        total = 0.0
        for i in si[b]:
            for j in pi[b]: total += V[i][j]
        boots.append(total / (S * P))
    boots.sort()
    q = lambda a: float(np.quantile(boots, a))                          # numpy's default (linear) quantile, as the library
    return sum(map(sum, V)) / (S * P), q(alpha / 2), q(1 - alpha / 2)

@pytest.mark.parametrize('S,P,seed', [(3, 17, 0), (1, 9, 1), (4, 1, 2), (2, 30, 3)])
def test_hierarchical_bootstrap_matches_reference(S, P, seed):
    V = np.random.default_rng(seed).random((S, P))
    m, lo, hi = _hb_reference(V, 300, 0.05, seed)
    r = hierarchical_bootstrap(V, n_boot=300, seed=seed, bounds=None)
    assert (r['mean'], r['lo'], r['hi']) == pytest.approx((m, lo, hi), abs=1e-12)
    assert (r['n_seeds'], r['n_problems'], r['n_boot'], r['interval']) == (S, P, 300, 'hierarchical')
    d = hierarchical_bootstrap_diff(V, V * 0.5, n_boot=300, seed=seed, bounds=None)   # paired: the same draws on a - b
    assert (d['mean'], d['lo'], d['hi']) == pytest.approx(_hb_reference(V * 0.5, 300, 0.05, seed), abs=1e-12)

def _crossed(rng, S, P, seed_half_width, n_samples=2, shift=0.0):
    "One simulated experiment: problems q ~ U(0.1, 0.9), seed offsets u ~ U(-w, w), n Bernoulli samples per cell."
    q, u = rng.uniform(0.1, 0.9, P), rng.uniform(-seed_half_width, seed_half_width, S)
    return q, rng.binomial(n_samples, np.clip(q[None, :] + u[:, None] + shift, 0, 1)) / n_samples

def test_hierarchical_bootstrap_coverage_toy_regime():
    """Nominal 95% covers the population mean (0.5) at about 95% in the toy benchmarks' regime: 3 seeds x 200 problems,
    2 samples each, seed offsets of about 2 points (sd)."""
    rng, hits = np.random.default_rng(11), 0
    for e in range(300):
        _, V = _crossed(rng, 3, 200, 0.035)
        r = hierarchical_bootstrap(V, n_boot=400, seed=e)
        hits += r['lo'] <= 0.5 <= r['hi']
    assert 0.91 <= hits / 300 <= 0.99, hits / 300

def test_hierarchical_bootstrap_coverage_many_seeds():
    "With 10 seeds and large seed offsets (sd about 6 points) the interval still covers at about the nominal rate."
    rng, hits = np.random.default_rng(12), 0
    for e in range(300):
        _, V = _crossed(rng, 10, 50, 0.1)
        r = hierarchical_bootstrap(V, n_boot=400, seed=e)
        hits += r['lo'] <= 0.5 <= r['hi']
    assert 0.91 <= hits / 300 <= 0.99, hits / 300

def test_hierarchical_bootstrap_diff_coverage_is_conservative():
    """Paired, with each arm's own seed offsets and a true difference of +5 points: the interval covers at least at the
    nominal rate (the pigeonhole bootstrap counts the per-cell noise more than once, so it errs wide, not narrow)."""
    rng, hits = np.random.default_rng(13), 0
    for e in range(300):
        q, A = _crossed(rng, 3, 200, 0.035)
        u = rng.uniform(-0.035, 0.035, 3)
        B = rng.binomial(2, q[None, :] + u[:, None] + 0.05) / 2          # q + u + 0.05 stays inside [0, 1]
        d = hierarchical_bootstrap_diff(B, A, n_boot=400, seed=e)
        hits += d['lo'] <= 0.05 <= d['hi']
    assert hits / 300 >= 0.93, hits / 300

def test_hierarchical_bootstrap_properties():
    rng = np.random.default_rng(14)
    for _ in range(50):                                                  # a rate's interval never leaves [0, 1]
        V = rng.binomial(1, rng.uniform(0, 0.05), size=(3, int(rng.integers(1, 30)))).astype(float)
        r = hierarchical_bootstrap(V, n_boot=200)
        assert 0.0 <= r['lo'] <= r['mean'] <= r['hi'] <= 1.0
    for _ in range(20):                                                  # differences stay inside [-1, 1]
        a, b = rng.integers(0, 2, (2, 5)).astype(float), rng.integers(0, 2, (2, 5)).astype(float)
        d = hierarchical_bootstrap_diff(a, b, n_boot=200)
        assert -1.0 <= d['lo'] <= d['mean'] <= d['hi'] <= 1.0
    q = rng.uniform(0.1, 0.9, 3200); u = np.array([-0.01, 0.0, 0.01])
    V = rng.binomial(2, q[None, :] + u[:, None]) / 2
    widths = [(lambda r: r['hi'] - r['lo'])(hierarchical_bootstrap(V[:, :P])) for P in (50, 200, 800, 3200)]
    assert all(a > b for a, b in zip(widths, widths[1:])), widths       # more problems: narrower
    assert widths[0] / widths[2] == pytest.approx(4, rel=0.3)           # about 1/sqrt(P) while problems dominate
    one = hierarchical_bootstrap(V[:1, :200])                          # one seed: an interval over problems only
    assert one['n_seeds'] == 1 and one['lo'] < one['mean'] < one['hi']
    _, lo, hi = bootstrap_ci(V[0, :200])
    assert (one['hi'] - one['lo']) == pytest.approx(hi - lo, rel=0.2)
    const = hierarchical_bootstrap([[0.25] * 7] * 3)                    # nothing varies: a zero-width interval
    assert const['lo'] == const['mean'] == const['hi'] == 0.25
    assert hierarchical_bootstrap(V[:, :50], seed=3) == hierarchical_bootstrap(V[:, :50], seed=3)
    assert hierarchical_bootstrap(V[:, :50], seed=3) != hierarchical_bootstrap(V[:, :50], seed=4)
    assert hierarchical_bootstrap([0.5, 1.0])['n_seeds'] == 1            # a flat list is one seed

@pytest.mark.parametrize('bad,msg', [([[1, 0], [1]], 'same problems'), ([[1, np.nan]], 'missing'), ([], 'non-empty'),
                                     ([[[1]]], 'matrix')])
def test_hierarchical_bootstrap_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg): hierarchical_bootstrap(bad)
    with pytest.raises(ValueError, match='same seeds'): hierarchical_bootstrap_diff([[1, 0]], [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match='n_boot'): hierarchical_bootstrap([[1.0]], n_boot=0)

# ---------------------------------------------------------------- summaries

def _synthetic(n_problems=120, n=8, levels=(1, 2, 3), seed=0, ragged=False):
    rng = np.random.default_rng(seed)
    recs = []
    for p in range(n_problems):
        lvl = levels[p % len(levels)] if levels else None
        q = rng.random() ** (lvl if isinstance(lvl, int) else 1)
        for i in range(n - (p % 3 if ragged else 0)):
            v = 'correct' if rng.random() < q else ('no_answer' if rng.random() < 0.2 else 'wrong')
            recs.append(dict(problem_id=f'p{p}', sample_idx=i, level=lvl, verdict=v,
                             answer=None if v == 'no_answer' else ('42' if v == 'correct' else str(rng.integers(3))),
                             n_tokens=int(rng.integers(20, 800)), finish_reason='length' if v == 'no_answer' else 'stop'))
    return recs

def _per_problem(recs):
    probs = {}
    for r in sorted(recs, key=lambda r: r['sample_idx']): probs.setdefault(r['problem_id'], []).append(r)
    return list(probs.values())

def test_summarize_matches_estimators():
    recs = _synthetic()
    s = summarize(recs, n_boot=300)
    probs = _per_problem(recs)
    correct = [[r['verdict'] == 'correct' for r in p] for p in probs]
    pairs = [[(r['answer'], r['verdict'] == 'correct') for r in p] for p in probs]
    assert s['avg@n']['mean'] == pytest.approx(avg_at_n(correct))
    assert list(s['pass@k']) == list(s['maj@k']) == ['1', '2', '4', '8']
    for k in (1, 2, 4, 8):
        assert s['pass@k'][str(k)]['mean'] == pytest.approx(pass_at_k_mean(correct, k))
        assert s['maj@k'][str(k)]['mean'] == pytest.approx(maj_at_k_mean(pairs, k))
    assert s['no_answer_rate'] == pytest.approx(np.mean([r['verdict'] == 'no_answer' for r in recs]))
    assert s['truncation_rate'] == pytest.approx(np.mean([r['finish_reason'] == 'length' for r in recs]))
    assert s['median_tokens'] == pytest.approx(np.median([r['n_tokens'] for r in recs]))
    _, lo, hi = bootstrap_ci([np.mean(c) for c in correct], n_boot=300)
    assert (s['avg@n']['lo'], s['avg@n']['hi']) == pytest.approx((lo, hi))

def test_summarize_levels_and_schema():
    recs = _synthetic(levels=(10, 2, 1))
    s = summarize(recs, ks=(1, 4, 16), n_boot=200)
    assert list(s['by_level']) == ['1', '2', '10']
    assert sum(b['n_problems'] for b in s['by_level'].values()) == s['n_problems'] == 120
    keys = {'n_problems', 'n_samples', 'ragged', 'avg@n', 'pass@k', 'maj@k', 'no_answer_rate', 'truncation_rate',
            'mean_tokens', 'median_tokens', 'mean_tokens_correct', 'mean_tokens_wrong'}
    assert set(s) == keys | {'by_level'} and all(set(b) == keys for b in s['by_level'].values())
    assert list(s['pass@k']) == ['1', '4']                           # 16 > n_samples
    assert s['by_level']['1']['avg@n']['mean'] > s['by_level']['10']['avg@n']['mean']   # harder levels are harder
    assert json.loads(json.dumps(s, allow_nan=False)) == s
    for blk in [s['avg@n'], *s['pass@k'].values(), *s['maj@k'].values()]:
        assert 0 <= blk['lo'] <= blk['mean'] <= blk['hi'] <= 1
    assert summarize(recs, n_boot=200, seed=7) == summarize(recs, n_boot=200, seed=7)
    assert summarize(recs, n_boot=200, seed=7)['avg@n'] != summarize(recs, n_boot=200, seed=8)['avg@n']

def test_summarize_mixed_missing_levels_and_ragged():
    recs = _synthetic(n_problems=30, levels=None, ragged=True) + _synthetic(n_problems=6, levels=('L10', 'L9'), seed=1)
    recs = [dict(r, problem_id=f"{r['problem_id']}-{r['level']}") for r in recs]
    s = summarize(recs, n_boot=100)
    assert list(s['by_level']) == ['L9', 'L10', 'None'] and s['by_level']['None']['n_problems'] == 30
    assert s['ragged'] and s['n_samples'] == 6 and list(s['pass@k']) == ['1', '2', '4']
    assert not s['by_level']['L9']['ragged'] and s['by_level']['L9']['n_samples'] == 8

def test_summarize_token_stats_and_optional_keys():
    recs = [dict(problem_id='a', sample_idx=0, verdict='correct'),
            dict(problem_id='a', sample_idx=1, verdict='wrong', n_tokens=50),
            dict(problem_id='b', sample_idx=0, verdict='no_answer', n_tokens=100, finish_reason='length'),
            dict(problem_id='b', sample_idx=1, verdict='no_answer', n_tokens=None)]
    s = summarize(recs, n_boot=50)
    assert 'by_level' not in s and s['n_samples'] == 2
    assert (s['mean_tokens'], s['median_tokens'], s['mean_tokens_correct'], s['mean_tokens_wrong']) == (75.0, 75.0, None, 50.0)
    assert s['maj@k']['1']['mean'] == 0.0      # no answers were given
    assert (s['no_answer_rate'], s['truncation_rate']) == (0.5, 0.25)

@pytest.mark.parametrize('bad,msg', [({'sample_idx': 0, 'verdict': 'correct'}, 'problem_id'),
                                     ({'problem_id': 'a', 'sample_idx': 0, 'verdict': None}, 'verdict'),
                                     ({'problem_id': 'a', 'sample_idx': 1, 'verdict': 'wrong', 'level': 3}, 'levels')])
def test_summarize_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg): summarize([{'problem_id': 'a', 'sample_idx': 0, 'verdict': 'correct'}, bad])
    with pytest.raises(ValueError): summarize([])

def test_sort_levels():
    assert sort_levels([3, 1, None, 12, 2]) == ['1', '2', '3', '12', 'None']
    assert sort_levels(['hard', 'easy', 'Level 11', 'Level 3']) == ['Level 3', 'Level 11', 'easy', 'hard']

# ---------------------------------------------------------------- tables and imports

def test_results_table_plain_alignment():
    s = summarize(_synthetic(n_problems=30), n_boot=100)
    rows = [{'name': 'teacher', **s}, {'name': 'a-much-longer-name', **s}]
    lines = results_table(rows, {'acc': 'avg@n', 'p@8': 'pass@8', 'L3': 'by_level/3/avg@n', 'x': 'nope'}, fmt='plain').splitlines()
    assert len({len(l) for l in lines[:2]}) == 1 and lines[0].split() == ['name', 'acc', 'p@8', 'L3', 'x']
    assert lines[2].endswith(' -') and lines[3].startswith('a-much-longer-name')
    assert get_metric(s, 'by_level/3/avg@n') == get_metric(s, 'avg@n', level='3') == s['by_level']['3']['avg@n']

def test_imports_stay_light():
    "`reasondistill.eval.metrics` needs only numpy; `reasondistill.eval.plots` imports matplotlib only when it draws."
    code = ("import sys, reasondistill.eval.metrics, reasondistill.eval.plots; "
            "heavy = [m for m in ('matplotlib', 'scipy', 'torch', 'pandas') if m in sys.modules]; assert not heavy, heavy")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
