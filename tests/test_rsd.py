"RSD: the per-token rule against a direct re-implementation, cached vs uncached decoding, the trace filter, and `reasondistill train --method rsd`."
import json, math, random
from collections import Counter
from pathlib import Path
import numpy as np
import pytest
import torch
from reasondistill.methods.rsd import RSDConfig, rsd_step, rsd_generate, select_rsd, RSD_SAMPLING
from reasondistill.records import Problem, Trace

# ---- RSD: the per-token rule ---------------------------------------------------------------------------------------

def rsd_reference_sample(pt:list, ps:list, cfg:RSDConfig, rng:random.Random) -> tuple:
    "The card's pseudo-code (authors' datagen.py) for one token, written directly over probability lists."
    T = cfg.temperature
    def tempered(p):
        w = [x ** (1 / T) if x > 0 else 0.0 for x in p]; z = sum(w); return [x / z for x in w]
    def topk(p, k): return sorted(range(len(p)), key=lambda i: (-p[i], i))[:k]
    ptt, pst = tempered(pt), tempered(ps)
    pool = topk(ptt, cfg.teacher_topk); s_top = set(topk(pst, cfg.student_topk))
    s_thr = ps if cfg.threshold_on == 'raw' else pst
    for _ in range(cfg.trials):
        y = rng.choices(pool, weights=[ptt[i] for i in pool])[0]
        if y in s_top and s_thr[y] >= cfg.threshold: return y, False
    fb = topk(pst, cfg.student_topk)
    return rng.choices(fb, weights=[pst[i] for i in fb])[0], True

def rsd_exact(pt, ps, cfg) -> np.ndarray:
    "Exact output distribution of the rule: accepted proposals with prob q_ok(y) * sum_i (1-Q)^i, else the fallback pool."
    T = cfg.temperature
    t = np.array(pt) ** (1 / T); t /= t.sum(); s = np.array(ps) ** (1 / T); s /= s.sum()
    pool = np.argsort(-t, kind='stable')[:cfg.teacher_topk]; stop = np.argsort(-s, kind='stable')[:cfg.student_topk]
    q = np.zeros(len(pt)); q[pool] = t[pool] / t[pool].sum()
    thr = np.array(ps) if cfg.threshold_on == 'raw' else s
    ok = np.zeros(len(pt), bool); ok[stop] = True; ok &= thr >= cfg.threshold
    Q = q[ok].sum(); acc = q * ok * sum((1 - Q) ** i for i in range(cfg.trials))
    f = np.zeros(len(pt)); f[stop] = s[stop] / s[stop].sum()
    return acc + (1 - Q) ** cfg.trials * f, (1 - Q) ** cfg.trials

CASES = [   # (teacher probs, student probs, config)
    ([0.5, 0.2, 0.15, 0.1, 0.05], [0.4, 0.005, 0.3, 0.2, 0.095], RSDConfig(teacher_topk=3, student_topk=3, trials=2)),
    ([0.6, 0.3, 0.05, 0.03, 0.02], [0.009, 0.011, 0.5, 0.3, 0.18], RSDConfig(teacher_topk=5, student_topk=5, trials=5, temperature=1.0)),
    ([0.25, 0.25, 0.25, 0.25, 0.0], [0.002, 0.003, 0.005, 0.6, 0.39], RSDConfig(teacher_topk=4, student_topk=2)),   # always fallback
    ([0.4, 0.3, 0.2, 0.05, 0.05], [0.05, 0.32, 0.3, 0.28, 0.05], RSDConfig(teacher_topk=3, student_topk=2, threshold=0.04, threshold_on='tempered')),
]

@pytest.mark.parametrize('case', range(len(CASES)))
def test_rsd_step_matches_the_direct_reimplementation(case):
    pt, ps, cfg = CASES[case]
    exact, p_fb = rsd_exact(pt, ps, cfg)
    N = 20000
    tl = torch.tensor([pt] * N).clamp_min(1e-30).log(); sl = torch.tensor([ps] * N).clamp_min(1e-30).log()
    tok, fb, lt, ls = rsd_step(tl, sl, cfg, torch.Generator().manual_seed(case))
    emp = np.bincount(tok.numpy(), minlength=len(pt)) / N
    rng = random.Random(case)
    ref = [rsd_reference_sample(pt, ps, cfg, rng) for _ in range(N)]
    ref_emp = np.bincount([y for y, _ in ref], minlength=len(pt)) / N
    tol = 4 * math.sqrt(0.25 / N)   # 4 sigma of a proportion
    assert np.abs(emp - exact).max() < tol, (emp, exact)
    assert np.abs(ref_emp - exact).max() < tol, (ref_emp, exact)   # the reference itself follows the exact law
    assert abs(fb.float().mean().item() - p_fb) < tol and abs(np.mean([f for _, f in ref]) - p_fb) < tol
    np.testing.assert_allclose(lt.exp().numpy(), np.array(pt)[tok.numpy()], rtol=1e-4, atol=1e-12)   # raw probabilities recorded
    np.testing.assert_allclose(ls.exp().numpy(), np.array(ps)[tok.numpy()], rtol=1e-4, atol=1e-12)

def test_rsd_step_accept_fallback_and_threshold_edge():
    lg = lambda rows: torch.tensor(rows).clamp_min(1e-30).log()
    T = lg([[0.9, 0.05, 0.05]] * 4)                            # teacher top-1 pool: always proposes token 0
    S = lg([[0.01, 0.5, 0.49],                                  # exactly at the threshold: accepted
            [0.0099, 0.5, 0.4901],                              # just below: 5 rejections, fallback
            [0.2, 0.5, 0.3],                                    # p_S = 20% but outside the student's top-2: rejected
            [0.6, 0.2, 0.2]])                                   # clearly accepted
    tok, fb, _, _ = rsd_step(T[:2], S[:2], RSDConfig(teacher_topk=1, student_topk=3), torch.Generator().manual_seed(0))
    assert fb.tolist() == [False, True] and tok[0] == 0 and tok[1] in (1, 2)
    tok, fb, _, _ = rsd_step(T[2:], S[2:], RSDConfig(teacher_topk=1, student_topk=2), torch.Generator().manual_seed(0))
    assert fb.tolist() == [True, False] and tok[0] in (1, 2) and tok[1] == 0   # fallback draws come from the student's top-2
    # threshold 0 accepts any proposal inside the student's top-k
    tok, fb, _, _ = rsd_step(T, S, RSDConfig(teacher_topk=1, student_topk=3, threshold=0.0), torch.Generator().manual_seed(0))
    assert not fb.any() and (tok == 0).all()
    # threshold_on='tempered': the threshold applies to the T = 0.7 student distribution, which sharpens small probabilities
    tok, fb, _, _ = rsd_step(T[:1], lg([[0.02, 0.9, 0.08]]), RSDConfig(teacher_topk=1, threshold=0.01, threshold_on='tempered'),
                             torch.Generator().manual_seed(0))
    t02 = (0.02 ** (1 / 0.7)) / sum(x ** (1 / 0.7) for x in (0.02, 0.9, 0.08))
    assert t02 < 0.01 and fb.item()                               # raw 2% passes, tempered 0.45% does not
    with pytest.raises(ValueError, match='threshold_on'): RSDConfig(threshold_on='x')

# ---- RSD: decoding --------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def toy_pair():
    from reasondistill.models import load_model
    t, tok = load_model('toy:teacher'); s, _ = load_model('toy:student')
    return t, s, tok

def test_rsd_kv_cache_decoding_equals_full_recomputation(toy_pair):
    from reasondistill.toyworld import toy_problems
    from reasondistill.models import render_prompt
    t, s, tok = toy_pair
    probs = toy_problems(1, [1, 3, 6, 8], split='dev')          # different prompt lengths: left padding is exercised
    prompts = [render_prompt(tok, p.question) for p in probs]
    for cfg in (RSDConfig(max_new_tokens=48), RSDConfig(max_new_tokens=48, threshold=1e-5, temperature=1.0)):
        a = rsd_generate(t, s, tok, prompts, cfg, n=2, seed=11, use_cache=True, batch_size=8)
        b = rsd_generate(t, s, tok, prompts, cfg, n=2, seed=11, use_cache=False, batch_size=8)
        for ca, cb in zip(a, b):
            for x, y in zip(ca, cb):
                assert x.token_ids == y.token_ids and x.fallback == y.fallback
                np.testing.assert_allclose(x.logp_student, y.logp_student, atol=1e-4)
                np.testing.assert_allclose(x.logp_teacher, y.logp_teacher, atol=1e-4)
    # unbatched decoding of one prompt gives the same record as the full forward pass of the student over it
    from reasondistill.eval.provenance import completion_logprobs
    c = rsd_generate(t, s, tok, prompts[-1:], RSDConfig(max_new_tokens=60, threshold=1e-5, temperature=1.0), n=1, seed=2)[0][0]
    ids = c.token_ids[:-1] if c.finish_reason == 'stop' else c.token_ids
    r = completion_logprobs(s, tok, prompts[-1:], [tok.decode(ids)])[0]
    np.testing.assert_allclose(r['logp'], c.logp_student[:len(r['logp'])], atol=1e-3)

def test_rsd_needs_a_shared_vocabulary(toy_pair):
    from reasondistill.methods.rsd import check_shared_vocab
    class Fake:
        def get_vocab(self): return {'a': 0, 'b': 1}
    with pytest.raises(ValueError, match='share the vocabulary'): check_shared_vocab(toy_pair[2], Fake())
    check_shared_vocab(toy_pair[2], toy_pair[2])

def test_select_rsd_filter():
    def mk(i, v, n, fr, pid='a', comp='<think>\nx\n</think>\nThe answer is 1.', fin='stop'):
        return Trace(pid, i, 'm', 'p', comp, verdict=v, n_completion_tokens=n, finish_reason=fin, meta=dict(rsd=dict(fallback_rate=fr)))
    tr = [mk(0, 'correct', 30, 0.1), mk(1, 'correct', 20, 0.51), mk(2, 'correct', 25, 0.5), mk(3, 'correct', 25, 0.0),
          mk(4, 'correct', 5, 0.0, fin='length'), mk(5, 'correct', 4, 0.0, comp='no think close'), mk(0, 'wrong', 5, 0.0, 'b')]
    kept, st = select_rsd(tr)
    assert [(t.problem_id, t.sample_idx) for t in kept] == [('a', 2)]          # shortest, tie -> lowest sample_idx
    assert st['dropped_by_reason'] == {'fallback > max': 1, 'truncated': 1, 'thinking not closed once': 1, 'verdict wrong': 1}
    assert select_rsd(tr, max_fallback=0.6)[0][0].sample_idx == 1

def test_rsd_config_fields_and_cli_keys():
    from reasondistill.registry import make_config
    cfg = make_config('rsd', ['threshold=0.05', 'train.lr=0.001', 'student_adapter="x"'])
    assert cfg.threshold == 0.05 and cfg.train.lr == 0.001 and cfg.student_adapter == 'x' and cfg.seed is None
    assert set(RSD_SAMPLING) <= set(vars(cfg)) and cfg.n_samples == 16 and cfg.max_fallback == 0.5      # the old defaults
    with pytest.raises(ValueError, match='n_samples'): make_config('rsd', ['n_samples=0'])
    with pytest.raises(ValueError, match='unknown config key'): make_config('rsd', ['rsd.threshold=0.1'])

def test_cli_train_rsd(tmp_path, capsys):
    "`reasondistill train --method rsd` generates the RSD traces, selects them and trains (one step); a rerun resumes."
    from reasondistill.cli import main
    out = tmp_path / 'rsd'
    args = ['train', '--method', 'rsd', '--problems', 'toy:train:1:2,3', '--out', str(out), '--max-steps', '1', '--batch-size', '2',
            '--set', 'n_samples=3', 'max_new_tokens=64']
    main(args)
    res = json.loads((out / 'recipe.json').read_text())
    assert res['generation']['requested'] == 6 and res['generation']['generated'] == 6 and res['train']['global_step'] == 1
    assert res['config']['n_samples'] == 3 and res['config']['verifier'] == 'toy' and res['final'] == str(out / 'final')
    meta = json.loads((out / 'traces' / 'meta.json').read_text())
    assert meta['model'] == 'rsd(toy:teacher->toy:student)' and set(meta['sampling']) == {'recipe', 'seed', *RSD_SAMPLING}
    assert (out / 'final' / 'adapter_config.json').exists()
    main(args)                                                                  # resumed: nothing generated or trained again
    assert json.loads((out / 'recipe.json').read_text()) == res
