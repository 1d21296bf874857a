"Answer extraction, verdicts and the verifier audit against the shared labelled data."
import importlib.util, sys, threading
from pathlib import Path
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import reasondistill.core
from reasondistill.records import VERDICTS
from reasondistill.verify import (split_thinking, extract_answer, Verdict, ToyVerifier, MathVerifier, get_verifier,
                                  compare_answers, answers_equivalent, audit_equivalence, audit_labelled_traces,
                                  find_answer, Extraction, RULES, STRICT_RULES, EXTRACTION_MODES, DEFAULT_MODE)

DATA = Path(reasondistill.core.package_dir()).parent.parent/'shared'/'data'
needs_data = pytest.mark.skipif(not (DATA/'answer_equivalence_pairs_mathverify.jsonl').exists(),
                                reason=f'shared data folder {DATA} not found')

SKY = ('<|begin_of_thought|>\n\nso 2+2=4\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n'
       'The sum is $\\boxed{4}$.\n\n<|end_of_solution|>')

@pytest.mark.parametrize('text,expected', [
    ('<think>a</think>b', ('a', 'b')),
    ('a</think>b', ('a', 'b')),                                  # opening tag in the prompt
    ('<think>a', ('a', '')),                                     # never closed
    ('plain', (None, 'plain')),
    ('', (None, '')),
    (SKY, ('so 2+2=4', 'The sum is $\\boxed{4}$.')),
    ('<|begin_of_thought|>\nstill', ('still', '')),
    ('<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>half a solut', ('x', 'half a solut')),
])
def test_split_thinking(text, expected):
    assert split_thinking(text) == expected

@pytest.mark.parametrize('text,expected', [
    ('so $\\boxed{\\frac{1}{2}}$', '\\frac{1}{2}'),                                 # nested braces
    ('\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}', '\\left(3, \\frac{\\pi}{2}\\right)'),
    ('\\boxed{1} then \\boxed{2}', '2'),                                         # last boxed wins
    ('$\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}$', '-2, 1'),                  # one answer list
    ('\\boxed{1},\\boxed{2},\\boxed{3}', '1, 2, 3'),
    ('\\[\\boxed{4}\\]\n\n\\[\\boxed{4}\\]', '4'),                                 # repeated box
    ('\\boxed{255}$. Final Answer: The final answer is $10,455$. I hope it is correct.', '10,455'),
    ('The final answer is $\\boxed{7}$. So the answer is 7 apples.', '7'),
    ('\\boxed{\\boxed{5}}', '\\boxed{5}'),                                       # last top-level boxed
    ('\\fbox{7}', '7'),
    ('\\boxed{\\{1, 2\\}}', '\\{1, 2\\}'),                                        # escaped braces do not count
    ('\\boxed{3} and then \\boxed{\\frac{1', '3'),                               # truncated boxed ignored
    ('Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72', '72'),                 # GSM8K
    ('#### 1,234', '1,234'),
    ('The answer is 7.', '7'),
    ('</think>The answer is 7.', '7'),
    ('the final answer is $\\frac{3}{4}$.', '\\frac{3}{4}'),
    ('Final Answer: The final answer is $28\\%$. I hope it is correct.', '28\\%'),
    ('The answer is **12**.', '12'),
    ('the answer is: \\(5\\)', '5'),
    ('The answer is 3. So our answer is correct.', '3'),
    ('so the answer is correct.', None),                                          # not an answer
    ('\\boxed{2}. Also, the answer is 3.', '2'),                                 # boxed has priority
    ('<think>the answer is 4', None),                                            # unclosed think: no answer
    ('<think>\\boxed{4}</think>Hmm.', None),                                     # thinking is not searched
    ('<|begin_of_thought|>\\boxed{4}', None),
    (SKY, '4'),
    ('Therefore the count is 9.', None),                                         # no last-number fallback
    ('', None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected

@pytest.mark.parametrize('completion,gold,verdict,answer', [
    ('<think>3+4=7</think>The answer is 7.', '7', 'correct', '7'),
    ('<think>3+4=8</think>The answer is 8.', '7', 'wrong', '8'),
    ('</think>The answer is 07.', '7', 'correct', '07'),
    ('</think>The answer is 17.', '7', 'wrong', '17'),                           # no modular arithmetic
    ('<think>3+4 is', '7', 'no_answer', None),
    ('</think>I give up.', '7', 'no_answer', None),
    ('</think>The answer is seven.', '7', 'wrong', 'seven'),
])
def test_toy_verifier(completion, gold, verdict, answer):
    v = ToyVerifier()(completion, gold)
    assert (v.verdict, v.answer, v.gold) == (verdict, answer, '7')
    assert v.verdict in VERDICTS

@pytest.mark.parametrize('completion,gold,verdict', [
    ('so $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$', '\\left( 3, \\frac{\\pi}{2} \\right)', 'correct'),
    ('... #### 72', '#### 72', 'correct'),
    ('The answer is 1234.', '1,234', 'correct'),
    ('The answer is 1,234.', '1234', 'correct'),
    ('\\boxed{0.5}', '\\frac{1}{2}', 'correct'),
    ('\\boxed{\\frac{1}{3}}', '\\frac{1}{2}', 'wrong'),
    ('\\boxed{18.90}', '\\$18.90', 'correct'),
    ('\\boxed{3, 5}', '5, 3', 'correct'),
    ('\\boxed{[-2, 7]}', '[-2,7]', 'correct'),
    ('\\boxed{(-2, 7)}', '[-2,7]', 'wrong'),
    ('the answer is 9 customers', '9', 'correct'),
    ('<think>\\boxed{5}', '5', 'no_answer'),
])
def test_math_verifier(completion, gold, verdict):
    assert MathVerifier()(completion, gold).verdict == verdict

def test_math_verifier_timeout_and_errors(monkeypatch):
    import math_verify
    from math_verify.errors import TimeoutException
    def times_out(*a, **k): raise TimeoutException('Operation timed out!')
    monkeypatch.setattr(math_verify, 'verify', times_out)
    assert MathVerifier()('\\boxed{1}', '2') == Verdict('wrong', '1', '2', 'timeout', 'boxed', 'strict')
    def fails(*a, **k): raise RuntimeError('boom')
    monkeypatch.setattr(math_verify, 'parse', fails)
    assert MathVerifier()('\\boxed{1}', '2').detail == 'error: RuntimeError: boom'

def test_math_verifier_in_threads():
    "math-verify's signal-based timeout fails outside the main thread; ours drops the timeout there instead."
    out = []
    t = threading.Thread(target=lambda: out.append(MathVerifier()('\\boxed{\\frac{1}{2}}', '0.5')))
    t.start(); t.join()
    assert out[0].verdict == 'correct'

def test_equivalence_gold_first():
    assert answers_equivalent('k=1', '1')
    assert not answers_equivalent('x \\in [-2,7]', '-2 \\le x \\le 7')
    assert answers_equivalent('x \\in [-2,7]', '-2 \\le x \\le 7', allow_set_relation_comp=True)
    assert compare_answers('1', '<think>\\boxed{1}') == (False, 'thinking not closed')

def test_get_verifier():
    assert isinstance(get_verifier('toy'), ToyVerifier) and isinstance(get_verifier('math'), MathVerifier)
    with pytest.raises(ValueError, match='math.*toy'): get_verifier('code')

def test_import_is_light():
    "reasondistill.verify must import without math_verify or torch."
    import subprocess
    code = ('import sys, reasondistill.verify; '
            'bad = [m for m in ("math_verify", "torch", "sympy") if m in sys.modules]; sys.exit(bool(bad))')
    root = Path(reasondistill.core.package_dir()).parent
    assert subprocess.run([sys.executable, '-c', code], cwd=root).returncode == 0

# Measured with benchmarks/verifier_audit.py (math-verify 0.9.0): mathverify pairs 263/268 = 98.1%, MATH-grader
# pairs 14/16 = 87.5%; Sky-T1 traces, strict: 413/500 = 82.6% (246/256 = 96.1% where we extract an answer),
# flexible: 477/500 = 95.4% (383/398 = 96.2%). Thresholds sit a little below so that a regression fails.
@needs_data
def test_audit_mathverify_pairs():
    a = audit_equivalence(DATA/'answer_equivalence_pairs_mathverify.jsonl')
    assert a['n'] == 268
    assert a['agreement'] >= 0.97, [(d['gold'], d['pred']) for d in a['disagreements']]

@needs_data
def test_audit_hendrycks_pairs():
    a = audit_equivalence(DATA/'answer_equivalence_pairs_hendrycks.jsonl')
    assert a['n'] == 16
    assert a['agreement'] >= 0.8125, [(d['gold'], d['pred']) for d in a['disagreements']]

@needs_data
@pytest.mark.parametrize('mode,agreement,answered,n_answered', [('strict', 0.80, 0.95, 250), ('flexible', 0.94, 0.95, 345)])
def test_audit_labelled_traces(mode, agreement, answered, n_answered):
    a = audit_labelled_traces(DATA/'skyt1_correct5k_27b_math500_traces.jsonl', mode=mode)
    assert a['n'] == 500 and a['mode'] == mode
    summary = {k: a[k] for k in ('agreement', 'agreement_answered', 'n_answered', 'counts', 'by_rule')}
    assert a['agreement'] >= agreement and a['agreement_answered'] >= answered and a['n_answered'] >= n_answered, summary
    assert a['no_answer'].get('thinking not closed') == 94                  # flexible does not read unfinished thinking either
    assert ('last_number' in a['by_rule']) == (mode == 'flexible')
    assert sum(b['n'] for b in a['by_rule'].values()) == a['n_answered']

def test_toy_verifier_reads_a_typographic_minus():
    from reasondistill.verify import get_verifier
    v = get_verifier('toy')
    assert v('The answer is \u22123.', '-3').correct and v('The answer is -3.', '\u22123').correct
    assert not v('The answer is 3.', '-3').correct

# ---------------------------------------------------------------- answer conventions, modes and recorded rules

@pytest.mark.parametrize('text,answer,rule', [
    ('so $\\boxed{18}$ dollars', '18', 'boxed'),
    ('\\boxed{2} first, then \\boxed{18}', '18', 'boxed'),                                   # the last box
    ('The final answer is $18$.', '18', 'final_answer'),
    ('The final answer is: 18', '18', 'final_answer'),
    ('**Final answer:** 18', '18', 'final_answer'),
    ('**Final Answer**: $18$', '18', 'final_answer'),
    ('Final answer: 18 dollars', '18 dollars', 'final_answer'),
    ('### Final Answer\n\n18', '18', 'final_answer'),
    ('The final answer to the question is 18.', '18', 'final_answer'),
    ('x = \\boxed{3}, so the total is 18. The final answer is $18$. I hope it is correct.', '18', 'final_answer'),   # Minerva after a box
    ('#### 18', '18', 'hashes'),
    ('9 * 2 = <<9*2=18>>18\n#### 18', '18', 'hashes'),
    ('The answer is 18.', '18', 'answer_is'),
    ('So the answer is: **18**', '18', 'answer_is'),
    ('Answer: 18', '18', 'answer_label'),
    ('**Answer:** 18', '18', 'answer_label'),
    ('A: 18', '18', 'answer_label'),
    ('She has 16 eggs.\nA: 18 dollars', '18 dollars', 'answer_label'),
    ('The answer is 17.\nWait, recount: 16 + 2.\nAnswer: 18', '18', 'answer_label'),          # one tier: the last wins
    ('Answer: 17. Hmm, no: the answer is 18.', '18', 'answer_is'),
    ('**Final answer:** 18\n\nThe answer is 17.', '18', 'final_answer'),                      # final answer outranks
    ('<think>maybe 17</think>The answer is 18.', '18', 'answer_is'),
    ('maybe 17\n</think>\n\n**Answer:** 18', '18', 'answer_label'),                           # R1 style: no opening tag
])
def test_conventions_strict(text, answer, rule):
    "Each answer convention is found in strict mode, the rule that found it is reported, and flexible mode agrees."
    assert find_answer(text, 'strict') == Extraction(answer, rule, '')
    assert find_answer(text, 'flexible') == Extraction(answer, rule, '')

@pytest.mark.parametrize('text,flexible', [
    ('Answer: see above.', None),                                   # a label without an answer
    ('Answer: see above. She makes 18 dollars.', '18'),
    ('So the answer is correct.', None),
    ('The answer is definitely right: 9 * 2 = 18', '18'),
    ('A: Janet has 16 eggs. She eats 3 and bakes with 4', '4'),     # 'A:' that starts the reasoning
    ('Part A: 16 eggs.', '16'),                                     # 'A:' only at the start of a line
    ('She has 16 eggs and then she', None),                         # flexible: a text cut off mid-sentence
    ('#### Step 1: eggs\n16 - 7 = 9 are left.', '9'),             # a Markdown heading is not a GSM8K answer
    ('Next we find the final answer\n\nFirst, 9 * 2 = 18.', '18'),   # 'final answer' in prose is not a heading
    ('Question: Janet has 16 eggs and eats 3. How many are left?', None),   # a restated question, no answer
    ('Q: Janet has 16 eggs and eats 3.\n\nHow many are left?', None),
    ('I am not sure how many.', None),
    ('<think>16 - 3 = 13 so the answer is 13', None),               # unfinished thinking: never read
    ('<think>\\boxed{13}</think>', None),                           # answers in the thinking do not count
    ('The finalanswer is 3', '3'),                                  # a typo is not a marker
])
def test_near_misses(text, flexible):
    "Text that must not count as an explicit answer; flexible mode reads only its last number outside questions."
    assert find_answer(text, 'strict').answer is None
    got = find_answer(text, 'flexible')
    assert got.answer == flexible and got.rule == ('last_number' if flexible else '')

def test_new_question_ends_the_answer():
    "A base model that answers and then writes the next few-shot question: the answer before the question counts."
    t = 'The answer is 18.\n\nQuestion: Tom has 3 apples and buys 4 more. How many now?\nAnswer: 7'
    assert find_answer(t) == find_answer(t, 'flexible') == Extraction('18', 'answer_is')
    t = 'She makes 18 dollars.\n\nQuestion: Tom has 3 apples and buys 4 more.\nAnswer: 7'
    assert find_answer(t) == Extraction('7', 'answer_label')          # strict: nothing answered before the question
    assert find_answer(t, 'flexible') == Extraction('18', 'last_number')
    assert find_answer('Question: Tom has 3 apples and buys 4.\nAnswer: 7') == Extraction('7', 'answer_label')

@pytest.mark.parametrize('text,strict_detail,flexible', [
    ('<think>9 * 2 = 18', 'thinking not closed', Extraction(None, '', 'thinking not closed')),
    ('<|begin_of_thought|>9 * 2 = 18', 'thinking not closed', Extraction(None, '', 'thinking not closed')),
    ('<think>ok</think>', 'no answer in final part', Extraction(None, '', 'no answer in final part')),
    ('<think>ok</think>She makes 18.', 'no answer in final part', Extraction('18', 'last_number', '')),
    ('<|begin_of_thought|>ok<|end_of_thought|><|begin_of_solution|>First, 9 * 2 = 1', 'no answer in final part',
     Extraction(None, '', 'solution not closed')),
    ('<|begin_of_thought|>ok<|end_of_thought|><|begin_of_solution|>So 18.<|end_of_solution|>', 'no answer in final part',
     Extraction('18', 'last_number', '')),
])
def test_thinking_aware(text, strict_detail, flexible):
    "Only the part after a closed think block is read; an unclosed block is `no_answer` with the reason, in both modes."
    assert find_answer(text) == Extraction(None, '', strict_detail)
    assert find_answer(text, 'flexible') == flexible
    v = MathVerifier(mode='flexible')(text, '18')
    assert v.verdict == ('correct' if flexible.answer else 'no_answer') and v.detail == flexible.detail

def test_last_number_forms():
    f = lambda t: find_answer(t, 'flexible').answer
    assert f('It costs $1,250.50 in total.') == '1,250.50'
    assert f('The temperature is -3 degrees.') == '-3'
    assert f('Each gets \\frac{3}{4} of it.') == '3/4' and f('Each gets 3/4 of it.') == '3/4'
    assert f('x^2 is the area, side 5') == '5' and f('a_1 = 4 and x^2') == '4'        # no exponents or indices
    assert f('Tickets 9 * 2 = <<9*2=18>>18 dollars, is that right? Yes it is 18') == '18'

def test_modes_are_checked():
    with pytest.raises(ValueError, match='extraction mode'): find_answer('x', 'lenient')
    with pytest.raises(ValueError, match='extraction mode'): MathVerifier(mode='lenient')
    with pytest.raises(ValueError, match='extraction mode'): get_verifier('math:lenient')
    assert DEFAULT_MODE == 'strict' and EXTRACTION_MODES == ('strict', 'flexible')
    assert extract_answer('She makes 18.') is None and extract_answer('She makes 18.', 'flexible') == '18'

@pytest.mark.parametrize('kind,cls,mode', [('toy', ToyVerifier, 'strict'), ('math', MathVerifier, 'strict'),
                                           ('math:flexible', MathVerifier, 'flexible'), ('toy:flexible', ToyVerifier, 'flexible'),
                                           ('math:strict', MathVerifier, 'strict')])
def test_verifier_kinds_name_the_mode(kind, cls, mode):
    v = get_verifier(kind)
    assert isinstance(v, cls) and v.mode == mode
    assert get_verifier(v.kind).mode == mode and v.kind == (kind.split(':')[0] if mode == DEFAULT_MODE else kind)
    with pytest.raises(ValueError, match='names mode'): get_verifier(f"{kind.split(':')[0]}:{mode}", mode='strict' if mode == 'flexible' else 'flexible')

@pytest.mark.parametrize('verifier', [ToyVerifier(), MathVerifier(), ToyVerifier('flexible'), MathVerifier(mode='flexible')])
def test_verdict_records_rule_and_mode(verifier):
    v = verifier('<think>3+4</think>The answer is 7.', '7')
    assert (v.verdict, v.answer, v.rule, v.mode) == ('correct', '7', 'answer_is', verifier.mode)
    v = verifier('<think>3+4</think>It is 7.', '7')
    if verifier.mode == 'strict': assert (v.verdict, v.rule, v.detail) == ('no_answer', '', 'no answer in final part')
    else: assert (v.verdict, v.answer, v.rule) == ('correct', '7', 'last_number')
    v = verifier('<think>3+4 is', '7')
    assert (v.verdict, v.rule, v.mode, v.detail) == ('no_answer', '', verifier.mode, 'thinking not closed')
    assert v.rule in RULES + ('',)

def test_toy_format_unchanged():
    "The toy world's own format gives the same verdicts as before modes existed, in both modes."
    for mode in EXTRACTION_MODES:
        toy = ToyVerifier(mode)
        for text, gold, verdict in [('<think>3+4=7</think>The answer is 7.', '7', 'correct'),
                                    ('<think>3+4=8</think>The answer is 8.', '7', 'wrong'),
                                    ('</think>The answer is 17.', '7', 'wrong'), ('<think>3+4=', '7', 'no_answer')]:
            assert toy(text, gold).verdict == verdict

def test_old_verdict_records_load():
    "Verdicts saved as dicts before `rule`/`mode` existed load (with both empty); unknown fields are refused."
    old = {'verdict': 'wrong', 'answer': '3', 'gold': '4', 'detail': ''}
    v = Verdict.from_dict(old)
    assert (v.verdict, v.answer, v.rule, v.mode) == ('wrong', '3', '', '') and Verdict('wrong', '3', '4') == v
    new = MathVerifier(mode='flexible')('She makes 18.', '18')
    assert Verdict.from_dict(new.to_dict()) == new and new.to_dict()['rule'] == 'last_number'
    with pytest.raises(ValueError, match='unknown Verdict fields'): Verdict.from_dict(dict(old, score=1.0))
    with pytest.raises(ValueError, match='rule'): Verdict('wrong', '3', '4', rule='guess')

def test_old_stored_traces_load(tmp_path):
    "A trace store written before rules existed (Trace keeps `verdict` and `answer`) still loads and re-verifies alike."
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    old = dict(problem_id='p0', sample_idx=0, model='toy', prompt='3+4?', completion='<think>3+4=7</think>The answer is 7.',
               thinking='3+4=7', answer='7', verdict='correct', n_prompt_tokens=3, n_completion_tokens=9, finish_reason='stop',
               sampling={}, logprobs=None, meta={})
    with TraceStore(tmp_path / 'st') as st: st.append([Trace.from_dict(old)])
    with TraceStore(tmp_path / 'st', readonly=True) as st: (t,) = list(st)
    assert t.to_dict() == old
    v = get_verifier('toy')(t.completion, '7')
    assert (v.verdict, v.answer) == (t.verdict, t.answer) and v.rule == 'answer_is'

FIXTURES = Path(__file__).parent / 'fixtures' / 'verify' / 'gsm8k_style.jsonl'

def _fixture_rows():
    import json
    return [json.loads(l) for l in FIXTURES.read_text().splitlines() if l.strip()]

@pytest.mark.parametrize('mode', EXTRACTION_MODES)
def test_gsm8k_style_fixtures(mode):
    "Hand-labelled GSM8K-style completions (the project's own): verdict, answer and rule per mode."
    rows = _fixture_rows()
    assert len(rows) >= 30 and len({r['id'] for r in rows}) == len(rows)
    v = MathVerifier(mode=mode)
    got = {r['id']: [*(lambda x: (x.verdict, x.answer, x.rule))(v(r['completion'], r['gold']))] for r in rows}
    assert got == {r['id']: r['expected'][mode] for r in rows}
    if mode == 'strict': assert {r['expected']['strict'][2] for r in rows} >= set(STRICT_RULES)   # every strict rule is covered
