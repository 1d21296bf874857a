"Answer extraction, verdicts and the verifier audit against the shared labelled data."
import importlib.util, sys, threading
from pathlib import Path
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import reasondistill.core
from reasondistill.records import VERDICTS
from reasondistill.verify import (split_thinking, extract_answer, Verdict, ToyVerifier, MathVerifier, get_verifier,
                                  compare_answers, answers_equivalent, audit_equivalence, audit_labelled_traces)

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
    assert MathVerifier()('\\boxed{1}', '2') == Verdict('wrong', '1', '2', 'timeout')
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
# pairs 14/16 = 87.5%, Sky-T1 traces 413/500 = 82.6% (241/251 = 96.0% where we extract an answer).
# Thresholds sit a little below so that a regression fails.
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
def test_audit_labelled_traces():
    a = audit_labelled_traces(DATA/'skyt1_correct5k_27b_math500_traces.jsonl')
    assert a['n'] == 500
    assert a['agreement'] >= 0.80 and a['agreement_answered'] >= 0.94, {k: a[k] for k in ('agreement', 'counts')}

def test_toy_verifier_reads_a_typographic_minus():
    from reasondistill.verify import get_verifier
    v = get_verifier('toy')
    assert v('The answer is \u22123.', '-3').correct and v('The answer is -3.', '\u22123').correct
    assert not v('The answer is 3.', '-3').correct
