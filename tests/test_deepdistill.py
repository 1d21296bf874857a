"DeepDistill: pass rate and CV against direct computation, grading and selection, and `reasondistill train --method deepdistill`."
import json, math
from collections import Counter
import numpy as np
import pytest
from reasondistill.methods.deepdistill import (verify_scores, pass_rate, coefficient_of_variation, difficulty_label, grade_problems,
                                               deepdistill_select, DeepDistillConfig)
from reasondistill.records import Problem, Trace

def test_deepdistill_statistics_against_direct_computation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9)); s = list(rng.choice([0.0, 0.5, 0.995, 1.0], size=n))
        assert pass_rate(s) == pytest.approx(np.mean(np.array(s) > 0.99))
        if np.mean(s) > 0: assert coefficient_of_variation(s) == pytest.approx(np.std(s, ddof=0) / np.mean(s))
        else: assert math.isnan(coefficient_of_variation(s))
    for k in range(1, 5):   # binary scores: CV = sqrt((1 - p) / p)
        p = k / 4; assert coefficient_of_variation([1.0] * k + [0.0] * (4 - k)) == pytest.approx(math.sqrt((1 - p) / p))

def test_grade_and_select():
    probs = [Problem(f'q{i}', 'x', '1', meta=dict(level=i)) for i in range(5)]
    pat = {'q0': 'cccc', 'q1': 'ccwc', 'q2': 'wwww', 'q3': 'cwww', 'q4': 'cwcw'}
    tr = [Trace(pid, i, 'm', 'p', 'c', verdict='correct' if ch == 'c' else 'wrong', finish_reason='stop')
          for pid, pt in pat.items() for i, ch in enumerate(pt)]
    tr.append(Trace('q3', 4, 'm', 'p', 'c', verdict='correct', finish_reason='stop'))   # a 5th sample, ignored with n=4
    assert verify_scores(tr, 4)['q3'] == [1.0, 0.0, 0.0, 0.0]
    graded, counts = grade_problems(probs, tr, n=4)
    assert counts == {'stable': 1, 'unstable': 3, 'unsolved': 1}
    g = {p.id: p.meta for p in graded}
    assert g['q1']['difficulty'] == 'unstable' and g['q1']['level'] == 1 and g['q1']['deepdistill']['pass_rate'] == 0.75
    assert g['q3']['deepdistill']['cv'] == pytest.approx(math.sqrt(3))
    kept, _ = deepdistill_select(tr, graded, 'I')
    assert Counter(t.problem_id for t in kept) == {'q1': 3, 'q3': 2, 'q4': 2}   # every passing response of unstable queries
    kept2, _ = deepdistill_select(tr, graded, 'II', budget=2)
    assert [t.problem_id for t in kept2] == ['q3', 'q4']                     # highest CV first, one response each
    assert grade_problems(probs, tr, n=4, cv_threshold=0.6)[1] == {'stable': 2, 'unstable': 2, 'unsolved': 1}
    with pytest.raises(ValueError, match="stage"): deepdistill_select(tr, graded, 'III')

def test_deepdistill_config():
    from reasondistill.registry import make_config
    c = make_config('deepdistill', ['stage="II"', 'budget=3'])
    assert c.stage == 'II' and c.budget == 3 and c.n_samples == 4 and c.cv_threshold == 0.0 and c.train.seed == 0
    with pytest.raises(ValueError, match='stage'): DeepDistillConfig(stage='III')
    with pytest.raises(ValueError, match='keep_stable'): DeepDistillConfig(keep_stable=2.0)

def test_cli_train_deepdistill(tmp_path):
    "`reasondistill train --method deepdistill` samples the teacher, grades, writes the graded problems and trains (one step)."
    from reasondistill.cli import main
    out = tmp_path / 'deepdistill'
    main(['train', '--method', 'deepdistill', '--problems', 'toy:train:2:3,5', '--out', str(out), '--max-steps', '1', '--batch-size', '2',
          '--set', 'n_samples=2', 'max_new_tokens=96'])
    res = json.loads((out / 'deepdistill.json').read_text())
    assert (out / 'final' / 'adapter_config.json').exists() and res['train']['global_step'] == 1 and res['final'] == str(out / 'final')
    lines = (out / 'graded_problems.jsonl').read_text().splitlines()
    assert len(lines) == 4 and all('difficulty' in json.loads(l)['meta'] for l in lines)
    # grading an existing store (read only): the same traces, the same selection
    out2 = tmp_path / 'again'
    main(['train', '--method', 'deepdistill', '--problems', 'toy:train:2:3,5', '--out', str(out2), '--max-steps', '1', '--batch-size', '2',
          '--traces', str(out / 'traces'), '--set', 'n_samples=2'])   # --traces: the store to grade
    res2 = json.loads((out2 / 'deepdistill.json').read_text())
    assert res2['grades'] == res['grades'] and res2['selection'] == res['selection'] and not (out2 / 'traces').exists()
