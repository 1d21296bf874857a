"Token budgets (budget forcing, truncation, curves), vote@k, sample-budget curves and the Pareto front."
import importlib.util, itertools, math, random, sys
from pathlib import Path
import numpy as np
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reasondistill.eval.budgets import (think_length, budget_force, truncate_records, budget_curve, vote_at_k, majority_votes,
                                   default_ks, sample_budget_curves, pareto_front)
from reasondistill.eval.metrics import pass_at_k, maj_at_k

# --- vote@k -------------------------------------------------------------------------------------------------

def _brute_vote(answers, right, k):
    "Plurality vote (ties split) averaged over every ordered draw of k distinct samples."
    hits = []
    for draw in itertools.permutations(range(len(answers)), k):
        cnt = {}
        for i in draw:
            if answers[i] is not None: cnt[answers[i]] = cnt.get(answers[i], 0) + 1
        if not cnt: hits.append(0.0); continue
        top = max(cnt.values()); win = [a for a in cnt if cnt[a] == top]
        hits.append(sum(a in right for a in win) / len(win))
    return float(np.mean(hits))

@pytest.mark.parametrize('seed', range(20))
def test_vote_at_k_matches_brute_force(seed):
    r = random.Random(seed)
    n = r.randint(1, 6)
    answers = [r.choice(['1', '2', '3', None]) for _ in range(n)]
    V, ok, _ = majority_votes(answers, {'2'})
    for k in range(1, n + 1):
        assert vote_at_k(V, ok, k) == pytest.approx(_brute_vote(answers, {'2'}, k))

def test_vote_at_1_is_avg_and_hand_values():
    V, ok, cands = majority_votes(['a', 'b', 'a', None], lambda a: a == 'a')
    assert cands == ['a', 'b']
    assert vote_at_k(V, ok, 1) == pytest.approx(0.5)
    assert vote_at_k(V, ok, 4) == pytest.approx(1.0)
    # pairs: ab ab aa a- | ba b- | a-  -> 0.5, 0.5 (x2 via 'ab','ba'), 1, 1, 0, 1 ... computed by hand below
    pairs = list(itertools.combinations(range(4), 2))
    want = []
    for i, j in pairs:
        votes = [x for x in (['a', 'b', 'a', None][i], ['a', 'b', 'a', None][j]) if x]
        c = {x: votes.count(x) for x in votes}
        top = max(c.values()); win = [x for x in c if c[x] == top]
        want.append(sum(w == 'a' for w in win) / len(win))
    assert vote_at_k(V, ok, 2) == pytest.approx(np.mean(want))

def test_vote_at_k_is_metrics_maj_at_k():
    assert vote_at_k is maj_at_k                    # one definition, in eval.metrics (tested there against brute force)

def test_vote_monte_carlo_close_to_exact():
    r = random.Random(3)
    answers = [r.choice('abc') for _ in range(16)]
    V, ok, _ = majority_votes(answers, {'a'})
    exact = vote_at_k(V, ok, 5)
    assert math.comb(16, 5) <= 5000
    assert vote_at_k(V, ok, 5, max_exact=1) == pytest.approx(exact, abs=1e-12)   # one-hot votes: exact for any n
    soft = np.random.default_rng(3).dirichlet(np.ones(3), size=16)                # soft votes: Monte Carlo past max_exact
    exact = vote_at_k(soft, [True, False, False], 5)
    assert vote_at_k(soft, [True, False, False], 5, max_exact=1, n_sub=20000, seed=1) == pytest.approx(exact, abs=0.02)

def test_soft_votes_and_errors():
    Vs = np.array([[0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])
    assert vote_at_k(Vs, [False, True], 3) == pytest.approx(1.0)          # 1.4 vs 1.6
    assert vote_at_k(Vs, [False, True], 1) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match='1 <= k'): vote_at_k(Vs, [False, True], 4)
    with pytest.raises(ValueError, match='candidates'): vote_at_k(Vs, [True], 1)
    with pytest.raises(ValueError, match='matrix'): vote_at_k(np.ones(3), [True], 1)
    assert vote_at_k(np.zeros((2, 0)), [], 1) == 0.0

# --- sample-budget curves ---------------------------------------------------------------------------------------

def _records(n_prob=10, n=5, seed=0):
    r = random.Random(seed)
    out = []
    for i in range(n_prob):
        p = r.random()
        for j in range(n):
            a = '7' if r.random() < p else r.choice(['1', '2', None])
            out.append(dict(problem_id=f'p{i}', sample_idx=j, answer=a,
                            verdict='correct' if a == '7' else ('no_answer' if a is None else 'wrong')))
    return out

def test_sample_budget_curves_against_direct():
    recs = _records()
    cur = sample_budget_curves(recs, n_boot=100)
    assert cur['ks'] == default_ks(5) == [1, 2, 4, 5]
    for k in cur['ks']:
        per_pass, per_maj = [], []
        for i in range(10):
            rs = [r for r in recs if r['problem_id'] == f'p{i}']
            per_pass.append(pass_at_k(5, sum(r['verdict'] == 'correct' for r in rs), k))
            per_maj.append(_brute_vote([r['answer'] for r in rs], {'7'}, k))
        assert cur['pass@k'][str(k)]['mean'] == pytest.approx(np.mean(per_pass))
        assert cur['maj@k'][str(k)]['mean'] == pytest.approx(np.mean(per_maj))
        assert cur['pass@k'][str(k)]['lo'] <= cur['pass@k'][str(k)]['mean'] <= cur['pass@k'][str(k)]['hi']
    with pytest.raises(ValueError, match='same number of samples'): sample_budget_curves(recs[:-1])
    with pytest.raises(ValueError, match='duplicate'): sample_budget_curves(recs + recs[:1])

def test_default_ks():
    assert default_ks(1) == [1] and default_ks(8) == [1, 2, 4, 8] and default_ks(12) == [1, 2, 4, 8, 12]

# --- token budgets -----------------------------------------------------------------------------------------------

def test_truncate_records_direct():
    recs = [dict(problem_id='a', sample_idx=0, verdict='correct', answer='1', n_tokens=10),
            dict(problem_id='a', sample_idx=1, verdict='wrong', answer='2', n_tokens=30)]
    out = truncate_records(recs, [5, 10, 40])
    got = {(r['sample_idx'], r['budget']): r['verdict'] for r in out}
    assert got == {(0, 5): 'no_answer', (0, 10): 'correct', (0, 40): 'correct',
                   (1, 5): 'no_answer', (1, 10): 'no_answer', (1, 40): 'wrong'}
    curve = budget_curve(out, n_boot=50)
    assert [r['accuracy']['mean'] for r in curve] == [0.0, 0.5, 0.5]
    assert [r['no_answer_rate'] for r in curve] == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match='>= 0'): truncate_records(recs, [-1])

def test_budget_curve_ci_coverage():
    "95% percentile-bootstrap interval over problems: coverage of the population mean near 95%."
    rng, hits, reps = np.random.default_rng(7), 0, 150
    for rep in range(reps):
        p = rng.beta(2, 2, size=50)                        # population mean 0.5
        recs = [dict(problem_id=i, sample_idx=j, budget=0, verdict='correct' if rng.random() < p[i] else 'wrong')
                for i in range(50) for j in range(4)]
        a = budget_curve(recs, n_boot=300, seed=rep)[0]['accuracy']
        hits += a['lo'] <= 0.5 <= a['hi']
    assert 0.87 <= hits / reps <= 0.995, hits / reps

class CharTok:
    unk_token_id = -1
    def convert_tokens_to_ids(self, t): return ord(t) if len(t) == 1 else -1
    def convert_ids_to_tokens(self, i): return chr(i)
    def decode(self, ids, skip_special_tokens=False): return ''.join(map(chr, ids))

@pytest.mark.parametrize('text', ['<think>ab</think>c', '</think>', 'ab</think', 'x</think></think>', '', 'a</th</think>'])
def test_think_length_multi_token_tag(text):
    want = text.find('</think>') if '</think>' in text else None
    assert think_length(CharTok(), [ord(c) for c in text]) == want

def test_budget_force_on_toy_teacher():
    from reasondistill.models import load_model, render_prompt
    from reasondistill.rollout import generate, SamplingParams
    from reasondistill.toyworld import toy_problems
    m, tok = load_model('toy:teacher')
    probs = toy_problems(2, levels=(3, 6), split='dev')
    recs = budget_force(m, tok, probs, budgets=(0, 12, 200), answer_tokens=12)
    greedy = generate(m, tok, [render_prompt(tok, p.question) for p in probs], SamplingParams(temperature=0.0, max_new_tokens=230))
    for r in recs:
        g = greedy[[p.id for p in probs].index(r['problem_id'])][0]
        if r['budget'] == 200: assert not r['forced'] and r['completion'] == g.text
        else:
            assert r['forced'] and r['n_think_tokens'] == r['budget']
            assert r['completion'].startswith(('<think>' if r['budget'] == 0 else tok.decode(g.token_ids[:12])) + '\n</think>\n')
    curve = budget_curve(recs, n_boot=50)
    assert [r['budget'] for r in curve] == [0, 12, 200] and curve[-1]['forced_rate'] == 0.0

# --- Pareto front --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', range(10))
def test_pareto_front_brute_force(seed):
    r = random.Random(seed)
    m = r.randint(1, 15)
    x, y = [r.randint(0, 6) for _ in range(m)], [r.random() for _ in range(m)]
    front = pareto_front(x, y)
    nd = [i for i in range(m) if not any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i]) for j in range(m))]
    assert sorted({(x[i], y[i]) for i in front}) == sorted({(x[i], y[i]) for i in nd})
    assert [x[i] for i in front] == sorted(x[i] for i in front)
    with pytest.raises(ValueError, match='NaN'): pareto_front([1, float('nan')], [1, 2])

def test_budget_force_wait_on_toy_teacher():
    from reasondistill.eval.budgets import budget_force_wait
    from reasondistill.models import load_model
    from reasondistill.toyworld import toy_problems
    m, tok = load_model('toy:teacher')
    probs = toy_problems(2, levels=(2,), split='dev')          # short chains: they close far below the budget
    recs = budget_force_wait(m, tok, probs, budgets=(0, 120), wait='wait,', margin=8, max_waits=3)
    for r in recs:
        assert r['n_think_tokens'] <= r['budget']
        if r['budget'] == 120: assert r['waits'] == 3 and r['completion'].count('wait,') >= 3
        else: assert r['waits'] == 0 and r['forced'] and r['completion'].startswith('<think>\n</think>\n')
    same = budget_force_wait(m, tok, probs, budgets=(0, 120), max_waits=0)
    base = budget_force(m, tok, probs, budgets=(0, 120))
    key = lambda r: (r['problem_id'], r['budget'], r['verdict'], r['n_think_tokens'])
    assert sorted(map(key, same)) == sorted(map(key, base))
    with pytest.raises(ValueError, match='>= 0'): budget_force_wait(m, tok, probs, budgets=(8,), max_waits=-1)
