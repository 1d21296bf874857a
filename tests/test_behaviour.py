"Reasoning-behaviour analysis (eval.behaviour) and Missing-Premise overthinking (eval.mip): keywords, lengths, switches, truncation, entropy, tables, MiP variants and abstention."
import importlib.util, math, re, sys
from pathlib import Path
import numpy as np
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reasondistill.records import Problem, Trace
from reasondistill.tracestore import TraceStore
from reasondistill.toyworld import QUESTION_PREFIX, LEVELS, parse_toy_question, toy_problems
from reasondistill.eval.behaviour import (HESITATION_KEYWORDS, MIP_KEYWORDS, keyword_counts, split_thoughts, behaviour_stats,
                                          token_entropy, forking_share, shared_data_dir, load_labelled_traces, as_records,
                                          outcome, behaviour_records, behaviour_table, table_markdown, ut_score,
                                          plot_behaviour, plot_length_vs_correctness)
from reasondistill.eval.mip import MIP_SUFFIX, MIP_ANSWER, missing_premise, abstention, mip_report, plot_mip

DATA = shared_data_dir()
SKY = DATA/'skyt1_correct5k_27b_math500_traces.jsonl'
needs_sky = pytest.mark.skipif(not SKY.exists(), reason=f'labelled traces {SKY} not found')

# --- keywords and switches -----------------------------------------------------------------------------------

@pytest.mark.parametrize('text,keyword,expected', [
    ('Wait, no. wait.', 'wait', 2),
    ('awaiting the waiter', 'wait', 0),          # no letter may touch the keyword
    ('WAIT!', 'wait', 1),
    ('Hmm. Hmmm.', 'hmm', 1),                    # the card's word boundary: 'hmmm' is another word
    ('Let me\ncheck again', 'let me check', 1),  # whitespace inside a phrase is flexible
    ('double-check, doublecheck', 'double-check', 1),
    ('checking rechecks check.', 'check', 1),    # the MiP repo's substring count would give 3
])
def test_keyword_word_boundaries(text, keyword, expected):
    assert keyword_counts(text, (keyword,))[0][keyword] == expected

def test_keyword_total_is_non_overlapping():
    counts, total = keyword_counts('But wait, maybe. Wait.')
    assert counts['but wait'] == 1 and counts['wait'] == 2 and counts['maybe'] == 1
    assert total == 3 and sum(counts.values()) == 4

def test_keyword_list_can_be_overridden():
    text = 'But it might check out, but maybe not.'
    s_default, s_mip = behaviour_stats(text), behaviour_stats(text, keywords=MIP_KEYWORDS)
    assert s_default['n_keywords'] == 1 and 'kw/but' not in s_default
    assert s_mip['n_keywords'] == 5 and s_mip['kw/but'] == 2 and s_mip['kw/might'] == 1

def test_split_thoughts_and_switches():
    text = '<think>Try A.\n\nAlternatively, B.\n- Another way: C.\nWe could alternatively D.</think>\nAnswer: 3'
    thoughts = split_thoughts(text)
    assert thoughts == ['Try A.', 'Alternatively, B.', '- Another way: C.\nWe could alternatively D.\n\nAnswer: 3']
    assert behaviour_stats(text)['n_switches'] == 2
    assert behaviour_stats(text, switch_markers=('we could',))['n_switches'] == 1

# --- per-completion statistics ---------------------------------------------------------------------------------

class WordTok:
    "A stand-in for a HF tokenizer: one token per whitespace-separated word."
    def __init__(self): self.calls = []
    def encode(self, text, add_special_tokens=True):
        self.calls.append(add_special_tokens)
        return text.split()

def test_lengths_parts_and_tokens():
    tok = WordTok()
    s = behaviour_stats('<think>a b c</think>\nThe answer is 2.', tokenizer=tok)
    assert (s['thinking_words'], s['final_words'], s['n_words']) == (3, 4, 7)
    assert (s['thinking_chars'], s['final_chars']) == (5, 16)
    assert s["n_tokens"] == 7 and s["thinking_tokens"] == 3 and s['final_tokens'] == 4   # '<think>a' and 'c</think>' are one word each
    assert tok.calls and not any(tok.calls)       # add_special_tokens=False
    assert behaviour_stats('no markers here')['thinking_words'] is None

@pytest.mark.parametrize('text,finish,truncated', [
    ('<think>never closed', None, True),
    ('<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>half', None, True),
    ('<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>y<|end_of_solution|>', None, False),
    ('<think>x</think>done', None, False),
    ('<think>x</think>done', 'length', True),
    ('plain text', 'stop', False),
])
def test_truncation(text, finish, truncated):
    assert behaviour_stats(text, finish_reason=finish)['truncated'] is truncated

# --- token entropy ---------------------------------------------------------------------------------------------

def naive_entropy(row, tau=1.0):
    e = [math.exp(z / tau) for z in row if z != -math.inf]; Z = sum(e)
    return -sum(x / Z * math.log(x / Z) for x in e)

@pytest.mark.parametrize('shape,tau', [((1, 5), 1.0), ((7, 33), 1.0), ((7, 33), 0.6), ((2, 4, 17), 1.3)])
def test_entropy_matches_naive(shape, tau):
    z = np.random.default_rng(sum(shape)).normal(size=shape) * 4
    rows = z.reshape(-1, shape[-1])
    assert np.allclose(token_entropy(z, temperature=tau, per_token=True), [naive_entropy(r, tau) for r in rows], atol=1e-12)
    assert math.isclose(token_entropy(z, temperature=tau), np.mean([naive_entropy(r, tau) for r in rows]), abs_tol=1e-12)

def test_entropy_edge_cases():
    assert math.isclose(token_entropy(np.full((2, 1000), 3.0)), math.log(1000), abs_tol=1e-12)
    z = np.array([[1.0, -np.inf, 2.0, -np.inf]])
    assert math.isclose(token_entropy(z), naive_entropy(z[0]), abs_tol=1e-12)
    big = np.array([[1e4, 0.0, -1e4]])                     # no overflow
    assert 0 <= token_entropy(big) < 1e-12
    with pytest.raises(ValueError, match='temperature'): token_entropy(z, temperature=0)
    with pytest.raises(ValueError, match='finite'): token_entropy([[-np.inf, -np.inf]])
    with pytest.raises(ValueError, match='no positions'): token_entropy(z, mask=[False])

def test_entropy_torch():
    torch = pytest.importorskip('torch')
    z = np.random.default_rng(3).normal(size=(2, 5, 40)) * 2
    mask = np.random.default_rng(4).random((2, 5)) < 0.6
    want = np.mean([naive_entropy(r, 0.7) for r in z.reshape(-1, 40)[mask.ravel()]])
    got = token_entropy(torch.tensor(z, dtype=torch.float32), temperature=0.7, mask=torch.tensor(mask), chunk=3)
    assert math.isclose(got, want, abs_tol=1e-5)

def test_forking_share():
    rng = np.random.default_rng(0)
    seqs = [rng.exponential(size=1000), rng.exponential(size=1000) * 2]
    f = forking_share(seqs)
    assert abs(f['share'] - 0.2) < 0.002 and f['per_sequence'][1] > f['per_sequence'][0]
    fixed = forking_share([seqs[0]], threshold=f['threshold'])
    assert fixed['share'] == f['per_sequence'][0] and fixed['threshold'] == f['threshold']

# --- records and tables ----------------------------------------------------------------------------------------

def synth(n_problems=30, samples=2):
    out = []
    for i in range(n_problems):
        for j in range(samples):
            ok = (i + j) % 3 != 0
            body = ' '.join(['step'] * (20 + 5 * i)) + (' wait' * (i % 4))
            out.append(dict(problem_id=f'p{i}', sample_idx=j, level=f'L{1 + i % 3}', correct=ok,
                            completion=f'<think>{body}</think>\nThe answer is {i}.' if i % 5 else f'<think>{body}'))
    return out

def test_outcome_and_as_records():
    assert [outcome(r) for r in ({'verdict': 'no_answer', 'correct': True}, {'correct': False}, {})] == ['no_answer', 'wrong', 'unlabelled']
    recs = as_records([dict(completion='x', meta={'level': 3}, n_completion_tokens=7)])
    assert recs[0]['level'] == 3 and recs[0]['n_tokens'] == 7
    with pytest.raises(ValueError, match='TraceStore'): as_records([dict(problem_id='a', verdict='correct')])
    with pytest.raises(TypeError): as_records(['text'])

def test_table_means_match_numpy():
    recs = behaviour_records(synth())
    rows = behaviour_table(recs, group_by='level', metrics=('n_words', 'n_keywords_per_1k_words', 'truncated'), n_boot=400)
    for r in rows:
        sel = [x for x in recs if (r['group'] == 'all' or x['level'] == r['group']) and r['outcome'] in ('all', x['outcome'])]
        assert r['n'] == len(sel) and r['n_problems'] == len({x['problem_id'] for x in sel})
        assert math.isclose(r['n_words']['mean'], np.mean([x['n_words'] for x in sel]))
        assert math.isclose(r['truncated']['mean'], np.mean([x['truncated'] for x in sel]))
        assert math.isclose(r['n_keywords_per_1k_words']['mean'], 1000 * sum(x['n_keywords'] for x in sel) / sum(x['n_words'] for x in sel))
        assert r['n_words']['lo'] <= r['n_words']['mean'] <= r['n_words']['hi']
    assert [r['group'] for r in rows if r['outcome'] == 'all'] == ['all', 'L1', 'L2', 'L3']
    md = table_markdown(rows, ('n_words',))
    assert md.count('\n') == len(rows) + 1 and '| L3 | wrong |' in md and '| L2 | wrong |' not in md

def test_table_missing_values_and_unknown_metric():
    recs = [dict(completion='<think>a b</think>c'), dict(completion='no markers at all')]
    row = behaviour_table(recs, metrics=('thinking_words', 'n_tokens', 'n_words'), n_boot=50)[0]
    assert row['thinking_words'] == dict(mean=2.0, lo=2.0, hi=2.0, n=1)
    assert row['n_tokens'] == dict(mean=None, lo=None, hi=None, n=0)
    with pytest.raises(ValueError, match='unknown metric'): behaviour_table(recs, metrics=('words',))

def test_bootstrap_resamples_problems():
    one = [r for r in synth() if r['sample_idx'] == 0]
    width = lambda rs: (lambda d: d['hi'] - d['lo'])(behaviour_table(rs, metrics=('n_words',), by_outcome=False, n_boot=2000)[0]['n_words'])
    dup = one + [dict(r, sample_idx=1) for r in one]
    indep = [dict(r, problem_id=f"{r['problem_id']}/{r['sample_idx']}") for r in dup]
    assert math.isclose(width(dup), width(one), rel_tol=0.02)
    assert 0.6 < width(indep) / width(one) < 0.8      # about 1/sqrt(2) if the copies were independent

def test_tracestore_and_list_agree(tmp_path):
    recs = synth(10)
    traces = [Trace(problem_id=r['problem_id'], sample_idx=r['sample_idx'], model='m', prompt='q', completion=r['completion'],
                    verdict='correct' if r['correct'] else 'wrong', n_completion_tokens=len(r['completion']) // 4,
                    meta={'level': r['level']}) for r in recs]
    with TraceStore(tmp_path/'run'/'samples') as st: st.append(traces)
    want = behaviour_table(recs, group_by='level', n_boot=200)
    with TraceStore(tmp_path/'run'/'samples', readonly=True) as st: got = behaviour_table(st, group_by='level', n_boot=200)
    assert got == behaviour_table(tmp_path/'run', group_by='level', n_boot=200)      # an EvalRun folder
    assert [(r['group'], r['outcome'], r['n'], r['n_words']) for r in got] == [(r['group'], r['outcome'], r['n'], r['n_words']) for r in want]
    tok = behaviour_table(traces, metrics=('n_tokens',), by_outcome=False, n_boot=50)[0]['n_tokens']
    assert math.isclose(tok['mean'], np.mean([t.n_completion_tokens for t in traces]))

def test_ut_score():
    assert math.isclose(ut_score([([100], [True]), ([10, 90], [True, False]), ([50, 50], [False, False])]), (0 + 0.9 + 0) / 3)
    with pytest.raises(ValueError): ut_score([])

# --- Missing premise -------------------------------------------------------------------------------------------

def test_toy_mip_is_ill_posed_everywhere():
    made = 0
    for p in toy_problems(25, levels=LEVELS):
        v = missing_premise(p, seed=7)
        tp = parse_toy_question(p.question)
        if v is None:                                   # only when every number's value is irrelevant (e.g. '...*0*0')
            for k in range(tp.level + 1):
                masked = p.question[len(QUESTION_PREFIX):][:2 * k] + '?' + p.question[len(QUESTION_PREFIX):][2 * k + 1:]
                assert len({parse_toy_question(masked.replace('?', str(d))).answer for d in range(10)}) == 1
            continue
        made += 1
        expr = v.question[len(QUESTION_PREFIX):]
        assert v.id == p.id + MIP_SUFFIX and v.answer == MIP_ANSWER and expr.count('?') == 1
        assert expr.replace('?', v.meta['mip']['removed']) == parse_toy_question(p.question).expression
        assert len({parse_toy_question(expr.replace('?', str(d))).answer for d in range(10)}) == v.meta['mip']['n_possible_answers'] > 1
    assert made >= 195
    p = Problem('t', QUESTION_PREFIX + '1+2+3+4+5', '5')           # every number matters: the seed picks among all five
    assert {missing_premise(p, seed=s).meta['mip']['position'] for s in range(40)} == {0, 1, 2, 3, 4}

def test_math_mip_keeps_the_question():
    p = Problem('x', 'A box holds 12 pens. Tom buys two boxes. He gives away 5 pens. How many pens does Tom have left?', '19')
    v = missing_premise(p)
    assert v.question.endswith('How many pens does Tom have left?') and v.meta['mip']['removed'] in p.question
    assert len(v.question) < len(p.question) and v.meta['mip']['n_candidates'] == 3
    assert missing_premise(Problem('y', 'Compute $\\dbinom{8}{4}$.', '70')) is None
    assert missing_premise(Problem('z', 'The sky is blue. What is $2+2$?', '4')) is None     # no numeric premise
    assert missing_premise(Problem('a', 'Let $x=3$. [asy]draw((0,0)--(1,1));[/asy] Find $x$.', '3')) is None
    with pytest.raises(ValueError, match='toy-world'): missing_premise(p, position=1)
    with pytest.raises(TypeError): missing_premise('What is 2+2?')

@pytest.mark.skipif(not (DATA/'gsm8k_test.jsonl').exists(), reason='GSM8K not in the shared data')
def test_gsm8k_mip_yield():
    from reasondistill.data import load_gsm8k
    probs, _ = load_gsm8k(DATA/'gsm8k_test.jsonl', limit=300)
    vs = [v for v in map(missing_premise, probs) if v is not None]
    assert len(vs) >= 280
    for v in vs:
        orig = next(p for p in probs if p.id + MIP_SUFFIX == v.id)
        last = re.split(r'(?<=[.!?])\s+', orig.question.strip())[-1]
        assert v.meta['mip']['removed'] in orig.question and len(v.question) < len(orig.question)
        assert v.question.endswith(last) and v.meta['mip']['removed'] not in v.question   # the question itself is kept

# --- abstention and the MiP report -----------------------------------------------------------------------------

@pytest.mark.parametrize('text,expected', [
    ('The problem does not say how many apples there are, so the answer cannot be determined.', True),
    ('<think>hmm</think>\nThere is not enough information to answer.', True),
    ('$\\boxed{\\text{insufficient information}}$', True),
    ('<think>the rate is missing</think>\nSo the answer is $\\boxed{12}$.', False),
    ('The missing angle is 40 degrees, so the answer is 40.', False),
    ('<think>cannot be determined', False),
    ('Everything is given. The answer is 4.', False),
])
def test_abstention(text, expected):
    assert abstention(text) is expected

def test_mip_report_numbers():
    wp = [dict(problem_id=f'q{i}', completion=' '.join(['w'] * 50), verdict='correct' if i < 15 else 'wrong') for i in range(20)]
    mp = [dict(problem_id=f'q{i}{MIP_SUFFIX}', completion=' '.join(['m'] * 150) + ('\n\nIt cannot be determined.' if i < 5 else ''),
               finish_reason='length' if i >= 18 else 'stop') for i in range(20)]
    rep = mip_report(wp, mp, n_boot=300)
    assert rep['length_unit'] == 'words' and rep['n_paired'] == 20 and rep['n_problems'] == 20
    assert math.isclose(rep['length_mip']['mean'], 150 + 5 * 4 / 20) and rep['length_wellposed']['mean'] == 50
    assert math.isclose(rep['blowup']['mean'], (150 + 1) / 50)
    assert rep['abstain_mip']['mean'] == 0.25 and rep['abstain_wellposed']['mean'] == 0.0
    assert rep['accuracy_wellposed']['mean'] == 0.75 and math.isclose(rep['truncated_mip']['mean'], 0.1)
    assert rep['abstain_mip']['lo'] < 0.25 < rep['abstain_mip']['hi']
    with pytest.raises(ValueError, match='MiP'): mip_report(wp, [])

# --- plots -----------------------------------------------------------------------------------------------------

def test_plots(tmp_path):
    pytest.importorskip('matplotlib')
    recs = synth()
    rows = behaviour_table(recs, n_boot=100)
    fig = plot_behaviour({'a': rows, 'b': rows}, metrics=('n_words', 'truncated'), path=tmp_path/'b.svg')
    assert (tmp_path/'b.svg').exists() and (tmp_path/'b.png').exists()
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 6
    heights = [p.get_height() for p in fig.axes[1].patches[:3]]
    assert np.allclose(heights, [next(r for r in rows if r['outcome'] == o)['truncated']['mean'] for o in ('all', 'correct', 'wrong')])
    fig = plot_length_vs_correctness({'a': recs, 'b': recs[:20]}, n_boot=100)
    assert len(fig.axes) == 2 and len(fig.axes[0].get_xticks()) == 4
    assert len(plot_length_vs_correctness({'a': recs}, group_by=None).axes) == 1
    rep = mip_report(recs, [dict(r, problem_id=r['problem_id'] + MIP_SUFFIX) for r in recs], n_boot=50)
    assert len(plot_mip({'a': rep}).axes[0].patches) == 2
    with pytest.raises(ValueError): plot_behaviour({})

# --- the real labelled traces ----------------------------------------------------------------------------------

def test_shared_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv('RD_SHARED_DATA', str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.delenv('RD_SHARED_DATA')
    assert shared_data_dir().name == 'data' and shared_data_dir().parent.name == 'shared'

@needs_sky
def test_skyt1_traces():
    raw = load_labelled_traces(SKY)
    assert len(raw) == 500 and sum(r['correct'] for r in raw) == 300 and len(load_labelled_traces(SKY, limit=7)) == 7
    recs = behaviour_records(raw)
    assert sum(r['unclosed_thinking'] for r in recs) == 94 and sum(r['unclosed_solution'] for r in recs) == 16
    assert sum(r['has_thinking'] for r in recs) == 290
    rows = behaviour_table(recs, metrics=('n_words', 'n_keywords_per_1k_words', 'n_switches', 'truncated'), n_boot=500)
    c, w = (next(r for r in rows if r['outcome'] == o) for o in ('correct', 'wrong'))
    for m in ('n_words', 'n_keywords_per_1k_words', 'n_switches', 'truncated'):
        assert w[m]['lo'] > c[m]['hi'], m                  # wrong answers: longer, more hesitant, more switches, more truncated
    assert 1.9 < w['n_words']['mean'] / c['n_words']['mean'] < 2.2
    assert sum(abstention(r['completion']) for r in raw) <= 5   # few false abstentions on well-posed questions
