"Trace-dataset importers: every format's fixture rows round-trip through a TraceStore; real SkyThought traces agree with the verifier."
import contextlib, io, json, time
from collections import Counter
from pathlib import Path
import pytest
import reasondistill.core
from reasondistill.cli import console
from reasondistill.data import DataError, load_problem_file, save_problems
from reasondistill.importers import IMPORT_FORMATS, import_traces, import_summary, question_key, read_rows
from reasondistill.records import Problem
from reasondistill.tracestore import TraceStore
from reasondistill.verify import split_thinking

FIX = Path(__file__).resolve().parent / 'fixtures' / 'importers'
EXPECTED = json.loads((FIX / 'expected.json').read_text())
FORMATS = sorted(EXPECTED)
DATA = Path(reasondistill.core.package_dir()).parent.parent / 'shared' / 'data'
SKY = DATA / 'skyt1_correct5k_27b_math500_traces.jsonl'
MATH500 = DATA / 'math500_test.jsonl'

def fixture(fmt:str) -> Path: return FIX / f"{fmt.replace('-', '_')}.jsonl"

def stored(path) -> list:
    with TraceStore(path, readonly=True) as st: return list(st)

def test_every_format_has_a_fixture():
    assert set(FORMATS) == set(IMPORT_FORMATS) - {'bespoke'}
    assert IMPORT_FORMATS['bespoke'] is IMPORT_FORMATS['openthoughts']

@pytest.mark.parametrize('fmt', FORMATS)
def test_fixture_round_trip(fmt, tmp_path):
    "Import -> store -> read back: the same question, completion and think split, verdict and label, as written by hand."
    rep = import_traces(fmt, fixture(fmt), tmp_path / 'st', name='fx')
    want = EXPECTED[fmt]
    assert (rep['imported'], rep['rows_skipped'], rep['rows_unmatched']) == (len(want), 0, 0), import_summary(rep)
    traces = stored(tmp_path / 'st')
    assert len(traces) == len(want)
    probs = {p.id: p for p in load_problem_file(tmp_path / 'st' / 'problems.jsonl')[0]} if any(w['gold'] for w in want) else {}
    for t, w in zip(traces, want):
        assert question_key(t.prompt) == w['question']
        if w['gold'] is not None: assert (probs[t.problem_id].question, probs[t.problem_id].answer) == (w['question'], w['gold'])
        assert t.completion == w['completion'], (t.completion, w['completion'])
        assert t.thinking == w['thinking']
        assert split_thinking(t.completion) == (w['thinking'], w['final'])
        assert (t.verdict, t.meta.get('label'), t.meta.get('gold')) == (w['verdict'], w['label'], w['gold'])
        if 'model' in w: assert t.model == w['model']
    assert [t.sample_idx for t in traces if t.problem_id == traces[0].problem_id] == list(range(sum(t.problem_id == traces[0].problem_id for t in traces)))
    again = import_traces(fmt, fixture(fmt), tmp_path / 'st', name='fx')         # exactly once: a re-run imports nothing
    assert (again['imported'], again['already_there'], again['verdicts']) == (0, len(want), rep['verdicts'])
    assert [t.to_dict() for t in stored(tmp_path / 'st')] == [t.to_dict() for t in traces]

def test_labels_and_disagreements_are_reported(tmp_path):
    rep = import_traces('skythought', fixture('skythought'), tmp_path / 'st')
    lab = rep['labels']
    assert (lab['n_labelled'], lab['n_answered'], lab['agree_answered'], lab['agree']) == (3, 2, 1, 2)
    assert [(d['line'], d['label'], d['verdict'], d['harness_pred']) for d in rep['disagreements']] == [(3, False, 'correct', 'left')]
    assert lab['no_answer_by_reason'] == {'thinking not closed': 1}
    r1 = import_traces('openr1', fixture('openr1'), tmp_path / 'r1')
    t = [t for t in stored(tmp_path / 'r1') if t.sample_idx == 1][-1]
    assert (t.finish_reason, t.meta['is_reasoning_complete'], t.meta['markup']) == ('length', False, 'think')
    assert r1['labels']['agreement'] == 1.0

@pytest.mark.parametrize('kind', ['json-list', 'json-dict', 'parquet', 'rows', 'hub'])
def test_sources(kind, tmp_path, monkeypatch):
    "A .json list or dict, a Parquet file, a list of dicts and a Hub name (its `load_dataset` call served from local rows) import alike."
    rows = [json.loads(l) for l in fixture('skythought').read_text().splitlines()]
    if kind == 'json-list': src = tmp_path / 'r.json'; src.write_text(json.dumps(rows))
    elif kind == 'json-dict': src = tmp_path / 'r.json'; src.write_text(json.dumps({str(r.pop('idx')): r for r in [dict(r) for r in rows]}))
    elif kind == 'parquet':
        import pyarrow as pa, pyarrow.parquet as pq
        src = tmp_path / 'r.parquet'; pq.write_table(pa.Table.from_pylist(rows), src)
    elif kind == 'rows': src = rows
    else:
        import datasets
        calls = []
        def fake(name, config=None, split=None, **kw):
            calls.append((name, config, split)); return datasets.Dataset.from_list(rows)
        monkeypatch.setattr(datasets, 'load_dataset', fake)
        src = 'someone/sky-evals:math500'
    rep = import_traces('skythought', src, tmp_path / 'st', split='test')
    if kind == 'hub': assert calls == [('someone/sky-evals', 'math500', 'test')] and rep['source'] == 'hf://datasets/someone/sky-evals:math500/test'
    base = import_traces('skythought', fixture('skythought'), tmp_path / 'base')
    strip = lambda ts: [(t.problem_id, t.sample_idx, t.completion, t.verdict, t.meta.get('label')) for t in ts]
    assert strip(stored(tmp_path / 'st')) == strip(stored(tmp_path / 'base'))

def test_problems_are_matched_by_question_or_id(tmp_path):
    probs = [Problem('bench/test/a/0042.json', 'What is 6 times 7?', '42'), Problem('bench/test/b/inv-0002', 'Divide fifteen by three.', '5')]
    spec = save_problems(probs, tmp_path / 'probs.jsonl')
    rep = import_traces('openr1', fixture('openr1'), tmp_path / 'st', problems=str(spec))
    assert rep['matched_by'] == {'question': 1, 'id': 1} and rep['problems'] == 2
    assert {t.problem_id for t in stored(tmp_path / 'st')} == {p.id for p in probs}
    assert [p.id for p in load_problem_file(tmp_path / 'st' / 'problems.jsonl')[0]] == [p.id for p in probs]
    rep = import_traces('openr1', fixture('openr1'), tmp_path / 'st2', problems=probs[:1])
    assert (rep['rows_unmatched'], rep['unmatched'][0]['line'], rep['imported']) == (1, 2, 2)
    with pytest.raises(ValueError, match='different meta'):                   # another problem set into the same store
        import_traces('openr1', fixture('openr1'), tmp_path / 'st2', problems=probs)

def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match='known formats: openthoughts, bespoke, openr1, s1k, skythought, am, prompt-response'):
        import_traces('sharegpt', fixture('openr1'), tmp_path / 'x')
    bad = tmp_path / 'bad.jsonl'
    good = fixture('openr1').read_text().splitlines()[0]
    bad.write_text(good + '\n' + json.dumps({'problem': 'q', 'generations': ['a', 'b'], 'correctness_math_verify': [True]}) + '\n{"problem": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'correctness_math_verify' has 1 entries for 2 generations"):
        import_traces('openr1', bad, tmp_path / 'st')
    rep = import_traces('openr1', bad, tmp_path / 'st2', on_error='skip')
    assert [(s['line'], s['reason'].split(' (')[0]) for s in rep['skipped']] == [(2, "field 'correctness_math_verify' has 1 entries for 2 generations"), (3, 'malformed JSON')]
    assert rep['imported'] == 2
    with pytest.raises(DataError, match="openr1.jsonl:1: missing field 'response'"): import_traces('prompt-response', fixture('openr1'), tmp_path / 'pr')
    assert not (tmp_path / 'pr').exists()                                      # nothing created for a file that fails on its first row
    with pytest.raises(FileNotFoundError, match='no such file'): read_rows(tmp_path / 'nope.jsonl')
    with pytest.raises(ValueError, match='is a folder'): read_rows(tmp_path)

def test_a_crashed_import_resumes_exactly_once(tmp_path):
    "A verifier that dies after a few traces stands in for a crash; the re-run fills in the rest, nothing twice."
    from reasondistill.verify import get_verifier
    real, calls = get_verifier('math'), []
    class Dies:
        kind = 'math'
        def __call__(self, completion, gold):
            calls.append(1)
            if len(calls) == 3: raise KeyboardInterrupt
            return real(completion, gold)
    with pytest.raises(KeyboardInterrupt): import_traces('openr1', fixture('openr1'), tmp_path / 'st', verifier=Dies(), batch_size=1)
    assert len(stored(tmp_path / 'st')) == 2
    rep = import_traces('openr1', fixture('openr1'), tmp_path / 'st')
    assert (rep['imported'], rep['already_there']) == (2, 2)
    whole = import_traces('openr1', fixture('openr1'), tmp_path / 'whole')
    assert [t.to_dict() for t in stored(tmp_path / 'st')] == [t.to_dict() for t in stored(tmp_path / 'whole')] and whole['imported'] == 4

from _cli import run_cli as _cli

def test_cli_import(tmp_path):
    code, out, err = _cli(['import', 'openr1', fixture('openr1'), '--out', tmp_path / 'run', '--limit', '1'])
    assert code == 0, err
    assert 'imported 2 traces (0 already there)' in out
    code, out, err = _cli(['import', 'openr1', fixture('openr1'), '--out', tmp_path / 'run'])
    assert code == 0 and 'imported 2 traces (2 already there)' in out and 'dataset labels vs verifier: 3/3' in out, (out, err)
    report = json.loads((tmp_path / 'run' / 'import_report.json').read_text())
    assert report['imported'] == 2 and report['labels']['n_labelled'] == 4
    assert len(stored(tmp_path / 'run')) == 4 and (tmp_path / 'run' / 'problems.jsonl').exists()
    code, out, err = _cli(['import', 'openr1', fixture('openr1'), '--out', tmp_path / 'run', '--verifier', 'toy'])
    assert code == 2 and 'another configuration' in err and 'verifier' in err, err
    code, out, err = _cli(['import', 'skythought', fixture('openr1'), '--out', tmp_path / 'run2'])
    assert code == 2 and "openr1.jsonl:1: no model outputs" in err and 'Traceback' not in err, err
    assert not (tmp_path / 'run2' / 'run.json').exists()

@pytest.mark.skipif(not SKY.exists() or not MATH500.exists(), reason=f'shared data folder {DATA} not found')
def test_skythought_traces_agree_with_the_verifier(tmp_path):
    "The 500 real SkyThought MATH-500 traces: the harness's labels agree with the project's verifier on >= 95% of the answered rows."
    t0 = time.perf_counter()
    rep = import_traces('skythought', SKY, tmp_path / 'st', problems=f'math500:{MATH500}')
    lab = rep['labels']
    print('\n' + import_summary(rep))
    print(f"counts: {lab['counts']}; no answer: {lab['no_answer_by_reason']}; {time.perf_counter() - t0:.1f} s")
    for d in rep['disagreements']:
        if d['verdict'] != 'no_answer':
            print(f"  line {d['line']}: label {d['label']}, ours {d['verdict']} ({d['answer']!r} vs gold {d['gold']!r}), harness extracted {d['harness_pred'][:60]!r}")
    assert (rep['rows'], rep['imported'], rep['matched_by'], rep['problems']) == (500, 500, {'question': 500}, 500)
    assert lab['n_labelled'] == 500 and sum(t.meta['label'] for t in stored(tmp_path / 'st')) == 300
    assert lab['n_answered'] >= 240 and lab['agreement_answered'] >= 0.95, lab
    with TraceStore(tmp_path / 'st', readonly=True) as st:
        assert all(('<|begin_of_thought|>' not in t.completion and '<|begin_of_solution|>' not in t.completion) for t in st)
        markup = Counter((t.meta['markup'], t.completion.startswith('<think>\n')) for t in st)
    print(f'markup: {dict(markup)}')                  # about 200 outputs ignore the Sky-T1 format: no markup, kept as they are
    assert set(markup) <= {('sky-t1', True), ('none', False)} and markup[('sky-t1', True)] >= 250
