"""Smoke runs (`--tiny`) of the benchmarks on toy world v2: each writes a record whose report renders from its JSON.
Slow (a minute or more each): RD_RUN=slow."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _run(script, tmp_path, *extra):
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    p = subprocess.run([sys.executable, f'benchmarks/{script}.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'w'),
                        '--out', str(tmp_path / 'r'), *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / 'r.json').read_text())
    assert res['config']['tiny'] is True and 'TINY' in (tmp_path / 'r.md').read_text()
    return res

@pytest.mark.slow
def test_toy_world_v2_tiny(tmp_path):
    res = _run('toy_world_v2', tmp_path)
    assert set(res['teachers']) == {'teacher-verbose', 'teacher-concise', 'teacher-small'}
    assert set(res['students']) == {'student', 'student-llama', 'v1 student'} and res['leaks']

@pytest.mark.slow
def test_selfdistill_v2_tiny(tmp_path):
    res = _run('selfdistill_v2', tmp_path)
    arms = {'sft', 'opsd', 'atesd', 'opsd-none', 'atesd-a0', 'atesd-a0.5', 'atesd-random'}
    assert {r['method'] for r in res['runs']} == arms | {'stage 1 (SFT)'}
    assert set(res['selection']['chosen']) == arms and 'base' in res['privileged_gain']
    assert {v['baseline'] for v in res['verdicts'] if v['arm'] == 'atesd'} == {'sft', 'opsd', 'atesd-a0.5', 'atesd-a0', 'atesd-random'}
    assert all(v['verdict'].split()[0] in ('holds', 'fails', 'inconclusive') and v['evidence'] for v in res['verdicts'])

@pytest.mark.slow
def test_rl_toy_tiny(tmp_path):
    res = _run('rl_toy', tmp_path)                 # every arm
    assert {r['method'] for r in res['runs']} == {'base', 'sft', 'grpo', 'sft-grpo', 'sft-opd', 'sft-opsd', 'sft-rlad',
                                                   'sft-grpo-kl', 'sft-kepo', 'sft-autothink', 'sft-gar', 'curio-grpo', 'sft-acereason',
                                                   'sft-imitate-explore', 'curio1-grpo', 'sft-gkd', 'sft-tsdkd', 'sft-gkd-b0.9',
                                                   'sft-kepo-all', 'sft-gkd-onpolicy', 'sft-tsdkd-released', 'sft-curiosft', 'sft-curiosft-fixed',
                                                   'sft-sft'}
    assert (tmp_path / 'r-passk.png').stat().st_size > 0 and (tmp_path / 'r-curves.png').stat().st_size > 0
    assert set(res['fine_curves']) == {'sft-grpo', 'sft-opd', 'sft-opsd'} and set(res['fine_ratio']) == {'sft-opd', 'sft-opsd'}
    assert all(len(c) >= 2 and c[0][0] == 0 for cs in res['fine_curves'].values() for c in cs) and (tmp_path / 'r-fine.png').stat().st_size > 0
    assert {v['baseline'] for v in res['verdicts'] if v['arm'] in ('sft-kepo', 'sft-gkd-onpolicy', 'sft-tsdkd')} >= {'sft-kepo-all', 'sft-gkd', 'sft-tsdkd-released'}
    assert sum(v['metric'] == 'tokens to target (ratio)' and 'fine curves' in v['evidence'] for v in res['verdicts']) == 2
    assert any(v['claim'].startswith('GRPO from a CurioSFT checkpoint') for v in res['verdicts'])
    assert any(v['arm'] == 'sft-imitate-explore' and v['baseline'] == 'sft' for v in res['verdicts'])
    assert set(res['imitate_explore']) == {str(s) for s in res['config']['test_seeds']} and all(len(v['dev_accuracy']) in (1, 2) for v in res['imitate_explore'].values())
    assert res['verdicts'] and all(v['verdict'].split()[0] in ('holds', 'fails', 'inconclusive') for v in res['verdicts'])
    cu = [v for v in res['verdicts'] if v['arm'] == 'sft-curiosft']
    assert {v['baseline'] for v in cu} == {'sft-sft', 'sft-curiosft-fixed'} and any(v['metric'].startswith('pass@') for v in cu)
    v1 = {(v['arm'], v['baseline']): v['v1'] for v in res['verdicts'] if v['metric'] == 'accuracy'}   # v1's verdict beside the claims v1's table ran, not elsewhere
    assert all(v['v1'] is None for v in res['verdicts'] if v['metric'] != 'accuracy')                 # v1 had no pass@k beyond 2, no token curves
    assert v1[('sft-curiosft', 'sft-sft')]['arm'] == 'curiosft' and v1[('sft-gkd', 'sft-sft')]['baseline'] == 'sft' and v1[('sft-gkd-onpolicy', 'sft-gkd')]['baseline'] == 'gkd'
    assert v1[('sft-rlad', 'sft-grpo')] is None and '| v1 |' in (tmp_path / 'r.md').read_text()
    # CurioSFT's entropy check reads this record and its runs; its control (continued SFT at CurioSFT's lr) is trained when missing
    import shutil
    shutil.rmtree(tmp_path / 'w' / 'seed0' / f"sft-sft-lr{res['selection']['chosen']['sft-curiosft']['lr']:g}")
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    p = subprocess.run([sys.executable, 'benchmarks/curiosft_entropy_v2.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'w'),
                        '--bench-json', str(tmp_path / 'r.json'), '--out', str(tmp_path / 'e')], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    e = json.loads((tmp_path / 'e.json').read_text())
    assert set(e['summary']) == {'stage1', 'sft', 'sft-sft', 'sft-sft-same-lr', 'sft-curiosft', 'sft-curiosft-fixed'} and e['n_kept'] >= 1
    assert e['summary']['sft-sft-same-lr']['selectivity'] is None and [v['metric'] for v in e['verdicts']] == ['entropy at high positions (nats)', 'selectivity', 'selectivity']
    assert (tmp_path / 'e.png').stat().st_size > 0 and 'control trained' in p.stdout

def test_curiosft_entropy_v2_helpers():
    "The entropy check's position split and per-trace means, by hand."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import curiosft_entropy_v2 as C
    assert C.high_positions([0.1, 0.9, 0.5, 0.9, 0.2], 0.4) == [False, True, False, True, False]
    assert C.high_positions([0.3, 0.3, 0.3], 0.2) == [True, False, False]         # at least one; ties: the earlier position
    prof = dict(entropy=[1.0, 3.0, 0.2, 0.4, 2.0], example=[0, 0, 0, 1, 1])
    h, l = C.per_trace(prof, [False, True, False, False, True])
    assert h == [3.0, 2.0] and l == [0.6, 0.4]
    h, l = C.per_trace(prof, [False] * 5)
    assert all(x != x for x in h) and l == pytest.approx([4.2 / 3, 1.2])       # no high positions: NaN; every position is low

@pytest.mark.slow
def test_kd_v2_tiny(tmp_path):
    res = _run('kd_v2', tmp_path)
    assert {r['method'] for r in res['runs']} == {'sft', 'kd-fkl', 'kd-rkl', 'kd-jsd'}
    assert set(res['selection']['chosen']) == {'sft', 'kd-fkl', 'kd-rkl', 'kd-jsd'}
    assert [v['arm'] for v in res['verdicts']] == ['kd-fkl', 'kd-rkl', 'kd-jsd'] and all('top1_agreement' in r for r in res['runs'])

@pytest.mark.slow
def test_negatives_v2_tiny(tmp_path):
    res = _run('negatives_v2', tmp_path)
    arms = {'sft-cont', 'redi-a0.5', 'redi-a0.8', 'redi-a1.0', 'dpo', 'simpo', 'qcrd'}
    assert {r['method'] for r in res['runs']} == arms | {'sft-start'} and set(res['selection']['chosen']) == arms
    assert [v['arm'] for v in res['verdicts']] == ['redi-a0.8', 'redi-a1.0', 'dpo', 'simpo', 'qcrd']
    assert all(v['verdict'].split()[0] in ('holds', 'fails', 'inconclusive') and v['evidence'] for v in res['verdicts'])
    assert res['data']['pair_stats']['pairs'] > 0 and set(res['probe_curves']) == arms
    assert all(r['pass_at_2'] is not None for r in res['runs']) and (tmp_path / 'r_by_level.png').stat().st_size > 0

def test_rl_toy_tokens_to_target():
    "The tokens-to-target ratio of rl_toy, checked by hand: interpolation, seed-mean curves, censoring, the undefined case."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import rl_toy
    grpo = [[(0, .2), (8000, .25), (16000, .3)], [(0, .2), (8000, .2), (16000, .28)]]     # seed mean: .2, .225, .29
    opd = [[(0, .2), (4000, .3), (8000, .3), (16000, .3)], [(0, .2), (8000, .3), (16000, .3)]]   # 4000 is not in every seed
    assert rl_toy.mean_curve(opd) == [(0, .2), (8000, .3), (16000, .3)]
    assert abs(rl_toy.tokens_to_target([(0, .2), (8000, .3)], .25) - 4000) < 1e-6 and rl_toy.tokens_to_target([(0, .2), (8000, .22)], .25) is None
    r = rl_toy.censored_ratio(opd, grpo, .29, 16000)      # GRPO reaches .29 at its last point; OPD at 8000 * .9 = 7200
    assert abs(r['grpo_tokens'] - 16000) < 1e-2 and abs(r['arm_tokens'] - 7200) < 1e-2
    assert abs(r['ratio'] - .45) < 1e-6 and r['lower_bound'] is None and r['verdict'] == 'fails'
    fast = rl_toy.censored_ratio([[(0, .2), (2000, .4), (16000, .4)]], grpo, .29, 16000)
    assert abs(fast['ratio'] - 2000 * .45 / 16000) < 1e-6 and fast['verdict'] == 'holds'
    never = rl_toy.censored_ratio([[(0, .2), (16000, .21)]], grpo, .29, 16000)   # censored: at least 16000 / 16000
    assert never['ratio'] is None and abs(never['lower_bound'] - 1) < 1e-6 and never['verdict'] == 'fails'
    assert rl_toy.censored_ratio(opd, [[(0, .3), (16000, .3)]], .29, 16000)['verdict'].startswith('inconclusive')

def test_rl_toy_ratio_interval():
    "The fine-curve ratio with its bootstrap interval: identical problems give a degenerate interval at the point value; a censored arm an infinite upper bound."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import rl_toy
    same = lambda c, n=5: [(t, [x] * n) for t, x in c]          # every dev problem scores the same: resampling changes nothing
    pp = {'sft-grpo': [same([(0, .2), (8000, .25), (16000, .3)])] * 2, 'sft-opd': [same([(0, .2), (4000, .4), (16000, .4)])] * 2}
    r = rl_toy.ratio_interval(pp, 'sft-opd', 16000, 1.0, n_boot=50)
    assert abs(r['target'] - .3) < 1e-9 and abs(r['point']['ratio'] - 2000 / 16000) < 1e-6     # .3 at 4000 * (.1 / .2) tokens
    assert abs(r['lo'] - r['point']['ratio']) < 1e-9 and abs(r['hi'] - r['point']['ratio']) < 1e-9 and r['verdict'] == 'holds'
    h = rl_toy.ratio_interval(pp, 'sft-opd', 16000, 0.5, n_boot=50)                          # target .25: GRPO at 8000, OPD at 1000
    assert abs(h['target'] - .25) < 1e-9 and abs(h['point']['ratio'] - 1000 / 8000) < 1e-6
    pp['sft-opsd'] = [same([(0, .2), (16000, .21)])] * 2
    c = rl_toy.ratio_interval(pp, 'sft-opsd', 16000, 1.0, n_boot=50)
    assert c['point']['ratio'] is None and c['hi'] == float('inf') and c['censored_share'] == 1 and c['verdict'] == 'fails'
    assert rl_toy._ratio_text(c).startswith('> 1.00 (censored) [∞, ∞]')
    mixed = {'sft-grpo': [[(0, [.2, .2]), (16000, [.3, .3])]], 'sft-opd': [[(0, [.2, .2]), (4000, [.5, .2]), (16000, [.5, .2])]]}
    m = rl_toy.ratio_interval(mixed, 'sft-opd', 16000, 1.0, n_boot=400)   # problem 1 alone: never; problem 0 alone: early
    assert m['lo'] < .25 and m['hi'] == float('inf') and 0 < m['censored_share'] < 1 and m['verdict'] == 'inconclusive'
    assert abs(r['grpo_gain']['lo'] - .1) < 1e-9 and abs(r['grpo_gain']['hi'] - .1) < 1e-9
    flat = {'sft-grpo': [[(0, [.2, .3]), (16000, [.3, .2])]], 'sft-opd': [[(0, [.2, .3]), (4000, [.5, .5]), (16000, [.5, .5])]]}
    f = rl_toy.ratio_interval(flat, 'sft-opd', 16000, 1.0, n_boot=400)   # GRPO's gain is 0 on average, -.1 or +.1 per problem draw
    assert f['grpo_gain']['lo'] < 0 < f['grpo_gain']['hi'] and f['verdict'].startswith('inconclusive (GRPO does not gain')

@pytest.mark.slow
def test_recipes_v2_tiny(tmp_path):
    res = _run('recipes_v2', tmp_path)
    ran = {r['method'] for r in res['runs']} | set(res['skipped'])
    assert ran == {'sft', 'rsd', 'rsd-base', 'gen-ssd', 'dasd', 'deepdistill', 'rsd-foreign', 'other-rsd', 'other-rsd-foreign', 'other-sft'}
    assert set(res['selection']['chosen']) == {r['method'] for r in res['runs']}
    assert {'rsd', 'rsd-other (acceptor B)', 'gen-ssd'} <= set(res['data']['table']) and set(res['base']) == {'toy2:student', 'toy2:student-llama'}
    assert all(v['verdict'].split()[0] in ('holds', 'fails', 'inconclusive') and v['evidence'] for v in res['verdicts'])
    assert (tmp_path / 'r_data.png').stat().st_size > 0 and (tmp_path / 'r_by_level.png').stat().st_size > 0

def test_rl_toy_informative_k():
    "The largest k at which the base has not saturated on at least half of the problems (by hand from pass@k's formula)."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    import rl_toy
    ks = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    # 0 and 1 correct of 256 never saturate before k = 256; 5 of 256 reaches 1 - (1/2)^5 ~ 0.97 at k = 128, > 0.99 at 256
    assert rl_toy.informative_k([0, 1, 5, 100], 256, ks) == 128
    assert rl_toy.informative_k([10] * 4, 256, ks) == 64        # 1 - (1 - 10/256)^k crosses 0.99 between k = 64 and 128
    assert rl_toy.informative_k([256] * 3, 256, ks) is None     # solved by every sample: saturated at k = 1

def test_common_verdict_and_v1_pair():
    "The claim verdict (direction, non-inferiority margin) by hand, and v1's paired verdicts against the v1 benchmark's own record."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from common import verdict, v1_pair, v1_text
    assert verdict(dict(lo=0.01, hi=0.05)) == 'holds' and verdict(dict(lo=-0.05, hi=-0.01)) == 'fails'
    assert verdict(dict(lo=-0.01, hi=0.05)) == 'inconclusive' and verdict(dict(lo=-0.05, hi=-0.01), -1) == 'holds'
    assert verdict(dict(lo=-0.04, hi=0.02), 1, 0.05) == 'holds'           # within the 5-point margin: non-inferior
    assert verdict(dict(lo=-0.09, hi=-0.06), 1, 0.05) == 'fails' and verdict(dict(lo=-0.07, hi=0.02), 1, 0.05) == 'inconclusive'
    assert verdict(None).startswith('inconclusive (not measured)')
    rec = json.loads((ROOT / 'benchmarks' / 'results' / 'onpolicy_toy.json').read_text())
    for arm in ('curiosft', 'gkd', 'opsd'):   # the v1 script's own seed-paired Student-t against continued SFT
        w, ref = v1_pair('onpolicy_toy', arm, 'sft'), rec['paired_vs_sft'][arm]
        assert w['n_seeds'] == ref['n'] and all(abs(w[k] - ref[k]) < 1e-9 for k in ('mean', 'lo', 'hi'))
    assert v1_pair('onpolicy_toy', 'opsd', 'sft')['verdict'] == 'fails'     # every v1 OPSD run collapsed
    assert v1_pair('onpolicy_toy', 'no-such-arm', 'sft') is None and v1_pair('no_such_record', 'gkd', 'sft') is None
    assert v1_text(None) == 'not run on v1' and v1_text(v1_pair('onpolicy_toy', 'gkd', 'sft')).startswith('inconclusive, +3.3 [')
