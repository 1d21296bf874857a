"""The comparison protocol of `reasondistill.eval.compare` (issue 16, point 2): hyper-parameters chosen on dev and test
touched once, provenance in every result, hierarchical intervals in the tables, and splits that keep evaluation problems
out of training data."""
import json, random, subprocess
from pathlib import Path
import numpy as np
import pytest
from reasondistill.eval import compare
from reasondistill.eval.compare import (Sweep, DevSelection, SplitReuseError, DirtyTreeError, provenance, save_result,
                                        write_benchmark, render_benchmark, aggregate_results, paired_differences,
                                        results_markdown, collect_results)
from reasondistill.eval.metrics import hierarchical_bootstrap, hierarchical_bootstrap_diff

# ---------------------------------------------------------------- dev selection with fake callables (no training)

class Fake:
    "A training 'run' is its settings; its score on a split is a fixed function of arm, hp, seed and problem."
    def __init__(self, best):
        self.best, self.trained, self.scored = best, [], []
    def train(self, arm, hp, seed):
        self.trained.append((arm, tuple(sorted(hp.items())), seed))
        return dict(arm=arm, seed=seed, **hp)
    def score(self, run, split):
        self.scored.append((run['arm'], run['lr'], run['steps'], run['seed'], split))
        bias = {'dev': 0.0, 'test': -0.1}[split]          # test is another split: other numbers, the same optimum
        q = 0.7 - 30 * abs(run['lr'] - self.best[run['arm']]) + 0.0001 * run['steps'] + bias + 0.01 * run['seed']
        return [min(1.0, max(0.0, q + 0.05 * ((i % 7) - 3))) for i in range(30)]

def test_dev_selection_picks_the_dev_optimum_and_tests_once():
    f = Fake({'sft': 1e-3, 'kd': 3e-3})
    sweep = Sweep(lr=[1e-3, 3e-3, 1e-2], steps=[100, 200])
    sel = DevSelection(sweep, f.train, f.score, seeds=(0, 1, 2), dev_seeds=(0, 1))
    runs = sel.run(['sft', 'kd'])
    assert sel.chosen == {'sft': {'lr': 1e-3, 'steps': 200}, 'kd': {'lr': 3e-3, 'steps': 200}}
    assert len(f.trained) == len(set(f.trained)) == 2 * (6 * 2 + 1)   # every point on 2 dev seeds, the chosen one on seed 2
    tests = [s for s in f.scored if s[-1] == 'test']
    assert len(tests) == 6 and len(set(tests)) == 6                   # test: once per arm and seed, only the chosen point
    assert all((a, lr) in (('sft', 1e-3), ('kd', 3e-3)) for a, lr, *_ in tests)
    assert [(r['method'], r['seed']) for r in runs] == [(a, s) for a in ('sft', 'kd') for s in (0, 1, 2)]
    r0 = runs[0]
    assert r0['hp'] == {'lr': 1e-3, 'steps': 200} and len(r0['per_problem']['accuracy']) == 30
    assert r0['accuracy'] == pytest.approx(np.mean(f.score(dict(arm='sft', seed=0, lr=1e-3, steps=200), 'test')))
    rec = sel.record()
    assert rec['sweep'] == {'lr': [1e-3, 3e-3, 1e-2], 'steps': [100, 200]} and rec['dev_seeds'] == [0, 1]
    dev = rec['dev_scores']['kd']
    assert [d['hp'] for d in dev] == sweep.points() and len(dev[0]['per_seed']) == 2
    best = max(dev, key=lambda d: d['mean'])
    assert best['hp'] == sel.chosen['kd'] and best['lo'] <= best['mean'] <= best['hi']
    assert json.loads(json.dumps(rec)) == rec                          # goes into the result JSON as it is
    with pytest.raises(SplitReuseError, match="arm 'kd' seed 1"): sel.test('kd', 1)
    agg = aggregate_results(runs)                                      # the runs feed the hierarchical tables directly
    assert agg['kd']['metrics']['accuracy']['interval'] == 'hierarchical' and agg['kd']['n_problems'] == 30

def test_dev_selection_ties_loss_and_result_dicts():
    calls = []
    def train(arm, hp, seed): calls.append(hp['lr']); return hp['lr']
    flat = lambda run, split: [0.5] * 4                                 # every candidate ties: the first declared wins
    sel = DevSelection(Sweep(lr=[3e-3, 1e-3]), train, flat, seeds=(0,))
    assert sel.select('a') == {'lr': 3e-3}
    loss = lambda run, split: [run * 100] * 4                          # lower is better
    assert DevSelection(Sweep(lr=[3e-3, 1e-3]), train, loss, seeds=(0,), higher_is_better=False).select('a') == {'lr': 1e-3}
    as_result = lambda run, split: dict(accuracy=0.25, per_problem=dict(ids=['p0', 'p1'], levels=['1', '2'], accuracy=[0.0, 0.5]),
                                        mean_tokens=12.0)
    runs = DevSelection(Sweep(lr=[1e-3]), train, as_result, seeds=(0, 1)).run(['a'])
    assert runs[1]['per_problem']['ids'] == ['p0', 'p1'] and runs[1]['mean_tokens'] == 12.0 and runs[1]['hp'] == {'lr': 1e-3}

def test_dev_selection_rejects():
    with pytest.raises(ValueError, match='empty'): Sweep(lr=[])
    with pytest.raises(ValueError, match='must be a list'): Sweep(lr=1e-3)
    with pytest.raises(ValueError, match='repeat'): Sweep(lr=[1e-3, 1e-3])
    with pytest.raises(ValueError, match='at least one'): Sweep()
    with pytest.raises(TypeError, match='Sweep'): DevSelection({'lr': [1e-3]}, None, None)
    sel = DevSelection(Sweep(lr=[1e-3]), lambda a, h, s: 0, lambda r, s: [1.0])
    with pytest.raises(RuntimeError, match='select'): sel.test('a', 0)
    with pytest.raises(ValueError, match='at least one problem'): DevSelection(Sweep(lr=[1]), lambda a, h, s: 0, lambda r, s: []).select('a')
    assert len(Sweep(lr=[1, 2], steps=[10, 20, 30])) == 6 and Sweep(lr=[1, 2], steps=[5]).points()[1] == {'lr': 2, 'steps': 5}

# ---------------------------------------------------------------- provenance

def _git(repo, *args):
    subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args], cwd=repo, check=True, capture_output=True)

@pytest.fixture
def repo(tmp_path):
    "A tiny git checkout with one commit."
    r = tmp_path / 'repo'; r.mkdir()
    (r / 'a.txt').write_text('a\n')
    _git(r, 'init', '-q'); _git(r, 'add', 'a.txt'); _git(r, 'commit', '-q', '-m', 'one')
    return r

def test_provenance_records_and_strict(repo, monkeypatch):
    p = provenance(path=repo)
    assert len(p['git_commit']) == 40 and p['git_dirty'] is False
    assert {'torch', 'transformers', 'trl', 'peft', 'reasondistill', 'python'} <= set(p['versions'])
    assert p['versions']['python'] and p['argv'] and p['date'].endswith('+00:00')
    assert p['machine']['cpus'] >= 1 and p['machine']['device'].startswith(('cpu', 'cuda'))
    assert provenance(strict=True, path=repo)['git_dirty'] is False    # clean: strict passes
    (repo / 'a.txt').write_text('changed\n')
    assert provenance(path=repo)['git_dirty'] is True                   # dirty: flagged ...
    with pytest.raises(DirtyTreeError, match='uncommitted changes'): provenance(strict=True, path=repo)   # ... or refused
    with pytest.raises(DirtyTreeError, match='not in a git checkout'): provenance(strict=True, path=repo.parent)
    assert provenance(path=repo.parent)['git_commit'] is None

def test_results_carry_provenance_and_strict_writes_nothing(repo, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, 'package_dir', lambda: repo)
    monkeypatch.setattr('sys.argv', ['benchmarks/x.py', '--tiny'])
    r = save_result(tmp_path / 'run', 'sft', 0, accuracy=0.5)
    assert r['provenance']['git_dirty'] is False and r['provenance']['argv'] == ['benchmarks/x.py', '--tiny']
    assert json.loads((tmp_path / 'run' / 'result.json').read_text())['provenance'] == r['provenance']
    assert collect_results(tmp_path)[0]['method'] == 'sft'
    (repo / 'a.txt').write_text('changed\n')
    rec = write_benchmark(str(tmp_path / 'b'), ['# B', '', 'text'], dict(runs=[r]))
    md = (tmp_path / 'b.md').read_text()
    assert rec['provenance']['git_dirty'] and 'dirty tree' in md.splitlines()[2] and '`python benchmarks/x.py --tiny`' in md
    with pytest.raises(DirtyTreeError): save_result(tmp_path / 'run2', 'sft', 1, strict=True, accuracy=0.5)
    with pytest.raises(DirtyTreeError): write_benchmark(str(tmp_path / 'c'), ['# C'], {}, strict=True)
    assert not (tmp_path / 'run2').exists() and not list(tmp_path.glob('c.*'))   # refused before writing anything

# ---------------------------------------------------------------- tables from per-problem runs

def _runs(effects, seeds=3, P=40, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.2, 0.8, P)
    out = []
    for s in range(seeds):
        for m, d in effects.items():
            acc = (rng.binomial(2, np.clip(q + d, 0, 1)) / 2).tolist()
            out.append(dict(method=m, seed=s, accuracy=float(np.mean(acc)), heldout_kl=0.1 + 0.01 * s,
                            per_problem=dict(ids=[f'p{i}' for i in range(P)], levels=[str(1 + i % 2) for i in range(P)], accuracy=acc)))
    return out

def test_tables_use_hierarchical_intervals():
    runs = _runs({'sft': 0.0, 'kd': 0.15})
    agg = aggregate_results(runs)
    A = np.array([r['per_problem']['accuracy'] for r in runs if r['method'] == 'kd'])
    B = np.array([r['per_problem']['accuracy'] for r in runs if r['method'] == 'sft'])
    assert agg['kd']['metrics']['accuracy'] == dict(hierarchical_bootstrap(A), n=3)
    assert agg['kd']['metrics']['heldout_kl']['interval'] == 't'           # no per-problem values: t over seeds
    assert agg['kd']['by_level']['2'] == dict(hierarchical_bootstrap(A[:, 1::2]), n=3)
    d = paired_differences(runs, 'sft')['kd']
    assert d == dict(hierarchical_bootstrap_diff(A, B), n=3) and d['lo'] < d['mean'] < d['hi']
    md = results_markdown(agg, diffs={'kd': d}, baseline='sft', note=True)
    assert '3 seeds × 40 test problems' in md and 'Student-t over seeds for the other columns' in md
    for g in agg.values():                                                 # never below 0 for a rate
        assert all(c['lo'] >= 0 for c in [g['metrics']['accuracy'], *g['by_level'].values()])
    mixed = runs[:2] + [dict(runs[2], per_problem=None)] + runs[3:]      # a run without per-problem values: t for that method
    magg = aggregate_results(mixed)
    assert magg['sft']['metrics']['accuracy']['interval'] == 't' and magg['kd']['metrics']['accuracy']['interval'] == 'hierarchical'
    assert 'lack per-problem values, sft: Student-t' in results_markdown(magg, note=True)
    other = [dict(r, per_problem=dict(r['per_problem'], ids=[f'x{i}' for i in range(40)])) if r['method'] == 'kd' else r for r in runs]
    with pytest.raises(ValueError, match='other problems'): paired_differences(other, 'sft')

def test_rendered_report_is_a_function_of_the_json(tmp_path):
    runs = _runs({'sft': 0.0, 'kd': 0.1}, P=20)
    rec = write_benchmark(str(tmp_path / 'r'), ['# R', '', {'table': 'results', 'methods': ['kd', 'sft'], 'baseline': 'sft',
                                                            'metrics': ['accuracy', 'heldout_kl']}, '', 'done', ''], dict(runs=runs))
    md = (tmp_path / 'r.md').read_text()
    again = json.loads((tmp_path / 'r.json').read_text())
    assert again['report'] == rec['report'] and again['report'][2]['table'] == 'results'    # the report is stored, blocks and all
    assert render_benchmark(again, 'r') == md == render_benchmark(again, 'r')
    rows = [l for l in md.splitlines() if l.startswith('| kd') or l.startswith('| sft')]
    assert rows[0].startswith('| kd | 3 |') and rows[1].startswith('| sft | 3 |')
    again['runs'][0]['per_problem']['accuracy'][0] = 1 - again['runs'][0]['per_problem']['accuracy'][0]
    assert render_benchmark(again, 'r') != md                              # the table is computed from the runs
    with pytest.raises(ValueError, match='unknown report block'): render_benchmark(dict(report=[{'table': 'nope'}]))

# ---------------------------------------------------------------- splits

def _questions(n, lvl, split):
    from reasondistill.toyworld import toy_problems
    return {p.question for p in toy_problems(n, [lvl], split=split)}

def test_train_never_holds_reserved_dev_or_test_problems():
    "Every level: the reserved dev and test problems never occur in `toy_problems(..., 'train')` nor in the toy corpus stream."
    from reasondistill import toyworld as tw
    corpus = object.__new__(tw.ToyCorpus); corpus.rng = random.Random(0); corpus.held_out = tw._held_out_expressions()
    for lvl in tw.LEVELS:
        held = _questions(tw._held_out_n(lvl), lvl, 'test') | _questions(tw._held_out_n(lvl), lvl, 'dev')
        assert not held & _questions(300, lvl, 'train'), lvl
        assert not held & {corpus.problem(lvl).question for _ in range(2000)}, lvl
    for lvl in range(3, 9):        # from level 3 up the reserve (500) covers what the benchmarks evaluate: disjoint outright
        assert not _questions(200, lvl, 'test') & _questions(200, lvl, 'dev'), lvl

@pytest.mark.xfail(strict=True, reason='issue 16 point 1 (toy world v2): at levels 1-2 only the first 20 (L1) / 500 (L2) '
                   'test and dev problems are reserved, dev is not drawn apart from test, and level 1 has 300 questions')
def test_dev_and_test_disjoint_from_each_other_and_from_train_at_low_levels():
    for lvl in (1, 2):
        test, dev = _questions(200, lvl, 'test'), _questions(200, lvl, 'dev')
        assert not test & dev, (lvl, len(test & dev))
        assert not test & _questions(200, lvl, 'train'), lvl
