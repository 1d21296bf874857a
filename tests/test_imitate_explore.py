"Imitate → explore → self-improve: the selection rule and the stopping rule against references, a resumed 2-round run, and the CLI."
import contextlib, io, json, random, re, shutil
from pathlib import Path
import pytest
from reasondistill.records import Problem, Trace
from reasondistill.methods import imitate_explore as ie
from reasondistill.methods.imitate_explore import (select_self_traces, stop_after, best_round, training_mix, dev_problems,
                                                   ImitateExploreConfig, train_imitate_explore)

def _trace(pid, idx, n, verdict='correct', rnd=1, text=None, fin='stop'):
    return Trace(pid, idx, 'student', 'p', text if text is not None else f'{pid}/{idx}/{rnd}', verdict=verdict,
                 n_completion_tokens=n, finish_reason=fin, meta=dict(round=rnd))

def _reference_select(traces, keep, per_problem):
    "From the definition: verified, finished traces; per problem the distinct completions ordered by length (then round, index), first k."
    out = []
    for pid in sorted({t.problem_id for t in traces}):
        ok = [t for t in traces if t.problem_id == pid and t.verdict == 'correct' and t.finish_reason != 'length']
        sign = 1 if keep == 'shortest' else -1
        ok.sort(key=lambda t: (sign * t.n_completion_tokens, t.meta['round'], t.sample_idx))
        best_of = {}                                    # each distinct completion once: its first occurrence in that order
        for t in ok: best_of.setdefault(t.completion, t)
        distinct = [t for t in ok if best_of[t.completion] is t]
        out += distinct if per_problem is None else distinct[:per_problem]
    return out

def test_selection_against_reference():
    rng = random.Random(0)
    for case in range(300):
        traces = [_trace(rng.choice('abcd'), i, rng.randint(1, 12), rng.choice(['correct', 'correct', 'wrong', None]),
                         rnd=rng.randint(1, 3), text=rng.choice(['x', 'y', None]), fin=rng.choice(['stop', 'stop', 'length']))
                  for i in range(rng.randint(0, 14))]
        for keep in ('shortest', 'longest'):
            for k in (1, 2, None):
                got, st = select_self_traces(rng.sample(traces, len(traces)), keep, k)
                ref = _reference_select(traces, keep, k)
                assert [t.key for t in got] == [t.key for t in ref] and [_r(t) for t in got] == [_r(t) for t in ref], (case, keep, k)
                assert st['kept'] == len(ref) and st['traces'] == len(traces)
        got = select_self_traces(traces, 'random', 2, seed=case)[0]     # random: eligible, distinct, capped at 2 per problem
        elig = [t for t in traces if t.verdict == 'correct' and t.finish_reason != 'length']
        assert all(any(t is u for u in elig) for t in got) and len({(t.problem_id, t.completion) for t in got}) == len(got)
        for pid in 'abcd':
            assert sum(t.problem_id == pid for t in got) == min(2, len({t.completion for t in elig if t.problem_id == pid}))
    with pytest.raises(ValueError, match='keep'): select_self_traces([], 'best')
    with pytest.raises(ValueError, match='per_problem'): select_self_traces([], 'shortest', 0)

def _r(t): return t.meta['round']

def test_selection_hand_made():
    tr = [_trace('a', 0, 9), _trace('a', 1, 5), _trace('a', 0, 5, rnd=2, text='a/1/1'), _trace('a', 1, 7, rnd=2),
          _trace('a', 2, 3, fin='length'), _trace('b', 0, 4, 'wrong'), _trace('c', 0, 8)]
    kept, st = select_self_traces(tr)
    assert [(t.problem_id, t.sample_idx, _r(t)) for t in kept] == [('a', 1, 1), ('c', 0, 1)]
    assert st['dropped_by_reason'] == {'truncated': 1, 'verdict wrong': 1, 'duplicate': 1, 'per-problem cap': 2}
    assert [t.n_completion_tokens for t in select_self_traces(tr, 'longest', 2)[0]] == [9, 7, 8]

def _reference_stop_round(acc, min_delta, patience):
    "Rounds run by a loop that stops once `patience` rounds in a row fail to beat the best so far by `min_delta`."
    best, last_improved = acc[0], 0
    for r in range(1, len(acc)):
        if acc[r] - best >= min_delta - 1e-9: best, last_improved = acc[r], r
        if r - last_improved >= patience: return r + 1
    return len(acc)

def test_stopping_rule_on_fake_dev_sequences():
    def rounds_run(acc, **kw):
        for r in range(len(acc)):
            if stop_after(acc[:r + 1], **kw): return r + 1
        return len(acc)
    assert rounds_run([0.30, 0.36, 0.365, 0.50]) == 3                  # round 2 adds 0.005 < 0.01
    assert rounds_run([0.30, 0.36, 0.365, 0.50], patience=2) == 4
    assert rounds_run([0.30, 0.36, 0.37, 0.38]) == 4                    # exactly min_delta counts (up to rounding)
    assert rounds_run([0.5, 0.4]) == 2 and rounds_run([0.5, 0.4, 0.45, 0.6], patience=2) == 3
    assert rounds_run([0.2, 0.3, 0.4], min_delta=0.2) == 2
    rng = random.Random(1)
    for _ in range(500):
        acc = [rng.choice([0.1, 0.2, 0.25, 0.3, 0.31, 0.4]) for _ in range(rng.randint(1, 7))]
        d, p = rng.choice([0.0, 0.01, 0.05, 0.1]), rng.randint(1, 3)
        assert rounds_run(acc, min_delta=d, patience=p) == _reference_stop_round(acc, d, p), (acc, d, p)
    assert best_round([0.3, 0.5, 0.5, 0.4]) == 1 and best_round([0.7]) == 0
    with pytest.raises(ValueError, match='patience'): stop_after([0.1], patience=0)

def test_mix_config_and_dev_set():
    from reasondistill.models import load_tokenizer
    from reasondistill.toyworld import toy_problems
    tok = load_tokenizer('toy:student')
    probs = [Problem(p, f'q {p}', '1') for p in 'abc']
    teacher = [_trace('a', 0, 9, rnd=0, text='ta'), _trace('b', 0, 9, rnd=0, text='tb'), _trace('b', 1, 9, 'wrong', rnd=0)]
    own = [_trace('a', 3, 4, text='sa')]
    assert [training_mix(teacher, own, probs, tok, k)[1]['teacher'] for k in ('all', 'uncovered', 'none')] == [2, 1, 0]
    ex, st = training_mix(teacher, own, probs, tok)
    assert sorted(e['completion'] for e in ex) == ['sa', 'ta', 'tb'] and st['self'] == 1 and st['problems_covered'] == 2
    for bad, msg in (({'keep': 'best'}, 'keep'), ({'init': 'x'}, 'init'), ({'teacher_data': 'x'}, 'teacher_data'),
                     ({'n_rollouts': 0}, 'n_rollouts'), ({'rounds': -1}, 'rounds'), ({'per_problem': 0}, 'per_problem')):
        with pytest.raises(ValueError, match=msg): ImitateExploreConfig(**bad)
    train = toy_problems(1, [2, 5], 'train')
    dev = dev_problems(train)
    assert len(dev) == 20 and {p.meta['split'] for p in dev} == {'dev'} and {p.meta['level'] for p in dev} == {2, 5}
    with pytest.raises(ValueError, match='test split'): dev_problems(train, 'toy:test:2:2')
    with pytest.raises(ValueError, match='dev=SPEC'): dev_problems([Problem('x', 'q', '1')])
    with pytest.raises(ValueError, match='overlaps'): dev_problems(toy_problems(1, [2], 'dev'), 'toy:dev:1:2')

def test_two_rounds_resume_without_redoing_finished_rounds(tmp_path, monkeypatch):
    from reasondistill.models import ModelSpec, LoraSpec
    from reasondistill.train import Run, TrainConfig
    from reasondistill.toyworld import toy_problems
    probs = toy_problems(1, [1, 2], 'train')
    cfg = ImitateExploreConfig(rounds=2, n_samples=2, n_rollouts=2, max_new_tokens=64, dev='toy:dev:2:1,2', dev_samples=1, patience=3,
                               train=TrainConfig(max_steps=1, batch_size=2, max_length=192))
    run = Run(str(tmp_path / 'ie'), ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8)), teacher='toy:teacher')
    calls = []
    real_sft, real_gen = ie.train_sft, ie.generate_traces
    monkeypatch.setattr(ie, 'train_sft', lambda ex, r, *a, **k: calls.append(('sft', Path(r.output_dir).parent.name)) or real_sft(ex, r, *a, **k))
    monkeypatch.setattr(ie, 'generate_traces', lambda ps, m, t, store, *a, **k: calls.append(('gen', Path(store).name, Path(store).parent.name)) or real_gen(ps, m, t, store, *a, **k))
    s = train_imitate_explore(probs, run, cfg)
    assert [r['round'] for r in s['rounds']] == [0, 1, 2] and s['stopped'] == 'rounds' and len(s['dev_accuracy']) == 3
    assert calls == [('gen', 'teacher-traces', 'ie'), ('sft', 'round0'), ('gen', 'explore', 'round1'), ('sft', 'round1'),
                     ('gen', 'explore', 'round2'), ('sft', 'round2')]
    assert all(r['global_step'] == 1 for r in s['rounds']) and s['final'] == s['rounds'][s['best_round']]['final']
    for r in s['rounds'][1:]:
        assert r['explore']['requested'] == len(probs) * 2 and r['data']['self'] == r['selection']['kept'] <= len(probs)
    assert s['rounds'][2]['selection']['traces'] == 2 * len(probs) * 2       # accumulated: rounds 1 and 2
    # the run stops between rounds: the summary and round 2 are gone; rounds 0 and 1 are read, not redone
    before = {k: (tmp_path / 'ie' / f'round{k}' / 'round.json').read_text() for k in (0, 1)}
    (tmp_path / 'ie' / 'imitate_explore.json').unlink(); shutil.rmtree(tmp_path / 'ie' / 'round2')
    calls.clear()
    again = train_imitate_explore(probs, run, cfg)
    assert calls == [('gen', 'explore', 'round2'), ('sft', 'round2')]                # no teacher sampling, rounds 0-1 untouched
    assert {k: (tmp_path / 'ie' / f'round{k}' / 'round.json').read_text() for k in (0, 1)} == before
    assert again['dev_accuracy'][:2] == s['dev_accuracy'][:2] and len(again['rounds']) == 3
    calls.clear()
    assert train_imitate_explore(probs, run, cfg) == again and calls == []       # finished: the saved summary
    with pytest.raises(ValueError, match='teacher'): train_imitate_explore(probs, Run(str(tmp_path / 'x'), run.student), cfg)

def test_cli_train_imitate_explore(tmp_path):
    "`reasondistill train --method imitate-explore`: teacher traces, the imitation round and one explore round (one step each)."
    from reasondistill.cli import main
    out = tmp_path / 'x'
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(['train', '--method', 'imitate-explore', '--problems', 'toy:train:2:1-2', '--out', str(out), '--student', 'toy:student',
              '--quant', 'none', '--max-steps', '1', '--batch-size', '2', '--lora-r', '4', '--max-length', '192',
              '--set', 'rounds=1', 'n_samples=2', 'n_rollouts=2', 'max_new_tokens=64', 'dev="toy:dev:2:1-2"', 'dev_samples=1'])
    m = re.search(r'trained (\d+) steps.*adapters in (\S+)', buf.getvalue())
    assert m and int(m.group(1)) == 1 and (Path(m.group(2)) / 'adapter_config.json').exists(), buf.getvalue()[-2000:]
    res = json.loads((out / 'imitate_explore.json').read_text())
    assert res['config']['verifier'] == 'toy' and 1 <= len(res['rounds']) <= 2 and res['dev_problems'] == 4
    assert (out / 'teacher-traces' / 'meta.json').exists() and (out / 'round0' / 'dev' / 'summary.json').exists()
    assert m.group(2) == res['final']
    # teacher traces from an existing store (read only), imitation round only
    out2 = tmp_path / 'y'
    with contextlib.redirect_stdout(io.StringIO()):
        main(['train', '--method', 'imitate-explore', '--problems', 'toy:train:2:1-2', '--out', str(out2), '--student', 'toy:student',
              '--quant', 'none', '--max-steps', '1', '--batch-size', '2', '--lora-r', '4', '--max-length', '192', '--traces', str(out / 'teacher-traces'),
              '--set', 'rounds=0', 'n_samples=2', 'max_new_tokens=64', 'dev="toy:dev:2:1-2"', 'dev_samples=1'])
    res2 = json.loads((out2 / 'imitate_explore.json').read_text())
    assert not (out2 / 'teacher-traces').exists() and res2['rounds'][0]['data'] == res['rounds'][0]['data'] and len(res2['rounds']) == 1
