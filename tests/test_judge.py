"Judge protocol (prompt, verdict parsing, HTTP and HF backends, agreement) and soft scores from chain-of-thought."
import importlib.util, http.server, json, re, sys, threading
from pathlib import Path
import numpy as np
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reasondistill.eval.judge import (JUDGE_TEMPLATE, judge_prompt, parse_verdict, JudgeOutput, HFJudge, HTTPJudge, run_judge,
                                 cohen_kappa, agreement, load_equivalence_pairs, audit_judge, continuation_logprobs,
                                 reasoning_context, soft_votes, confidence_votes)

# --- parsing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text,want', [
    ('Verdict: EQUIVALENT', True), ('Verdict: NOT EQUIVALENT', False), ('VERDICT:not   equivalent', False),
    ('**Verdict**: Equivalent', True), ('Verdict – No', False), ('Verdict: Non-equivalent.', False),
    ('Verdict: correct', True), ('Verdict: incorrect', False), ('Verdict: different', False), ('Verdict: not the same', False),
    ('Verdict: EQUIVALENT\nWait, 0.5 is not 1/3.\nVerdict: NOT EQUIVALENT', False),
    ('<think>Verdict: NOT EQUIVALENT</think>\nVerdict: EQUIVALENT', True),
    ('<|begin_of_thought|>Verdict: no<|end_of_thought|>\nVerdict: yes', True),
    ('```json\n{"equivalent": false}\n```', False), ('{"correct":true}', True),
    ('\\boxed{\\text{Yes}}', True), ('\\boxed{NOT EQUIVALENT}', False),
    ('Same value.\n\nYES', True), ('Different.\n`no`', False),
    ('Verdict: nope', None), ('Verdict: equivalently', None), ('It is equivalent, I think, mostly.', None),
    ('<think>long thoughts, Verdict: EQUIVALENT', None), ('', None), ('   \n', None),
])
def test_parse_verdict(text, want):
    assert parse_verdict(text)[0] is want

def test_parse_verdict_details_and_type():
    assert parse_verdict('<think>x')[1] == 'thinking not closed'
    assert parse_verdict('hmm')[1] == 'no verdict found'
    assert parse_verdict('Verdict: yes')[1] == ''
    with pytest.raises(TypeError, match='must be a string'): parse_verdict(b'Verdict: yes')

def test_judge_prompt():
    p = judge_prompt('\\frac12', '0.5', problem='Half of 1?')
    assert 'Reference answer: \\frac12\n' in p and 'Candidate answer: 0.5\n' in p and 'Problem: Half of 1?\n' in p
    assert 'Problem' not in judge_prompt('1', '1') and p.rstrip().endswith('Verdict: NOT EQUIVALENT')
    with pytest.raises(ValueError, match='{gold}'): judge_prompt('1', '1', template='{pred}')

# --- agreement -----------------------------------------------------------------------------------------------------

def test_kappa_direct():
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    rng = np.random.default_rng(0)
    x, y = rng.random(200) < 0.3, rng.random(200) < 0.6
    po = np.mean(x == y); pe = x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean())
    assert cohen_kappa(x, y) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='equal-length'): cohen_kappa([True], [True, False])

def test_agreement_direct():
    pred = [True, True, False, None, False, True]
    ref = [True, False, False, True, None, True]
    ag = agreement(pred, ref, tokens=[10, 50, 20, 5, 5, 15], n_boot=100)
    assert (ag['n'], ag['n_covered']) == (6, 4) and ag['coverage'] == pytest.approx(4 / 6)
    assert ag['agreement']['mean'] == pytest.approx(3 / 4) and ag['strict_agreement'] == pytest.approx(3 / 6)
    assert ag['confusion'] == dict(tp=2, fp=1, fn=0, tn=1)
    assert ag['precision'] == pytest.approx(2 / 3) and ag['recall'] == 1.0 and ag['f1'] == pytest.approx(0.8)
    assert ag['tokens_vs_agreement_r'] == pytest.approx(np.corrcoef([10, 50, 20, 15], [1, 0, 1, 1])[0, 1])
    with pytest.raises(ValueError, match='True, False or None'): agreement([1], [True])
    with pytest.raises(ValueError, match='at least one'): agreement([], [])

# --- HTTP backend against a local fake server -----------------------------------------------------------------------

class _Fake(http.server.BaseHTTPRequestHandler):
    script, seen = [], []
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        _Fake.seen.append((self.path, dict(self.headers), body))
        if _Fake.script:
            code, text = _Fake.script.pop(0)
            self.send_response(code); self.end_headers(); self.wfile.write(text.encode()); return
        msg = body['messages'][-1]['content']
        gold = re.search(r'Reference answer: (.*)\n', msg)[1]; pred = re.search(r'Candidate answer: (.*)\n', msg)[1]
        word = 'EQUIVALENT' if gold.replace(' ', '') == pred.replace(' ', '') else 'NOT EQUIVALENT'
        data = json.dumps(dict(choices=[dict(message=dict(content=f'Verdict: {word}', reasoning='r' * 7), finish_reason='stop')],
                               usage=dict(completion_tokens=11))).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(data))); self.end_headers(); self.wfile.write(data)

@pytest.fixture(scope='module')
def server():
    s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Fake)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{s.server_port}/v1'
    s.shutdown()

def test_http_judge_roundtrip(server):
    j = HTTPJudge(server + '/', 'judge-m', system='be strict', extra=dict(seed=3))
    out = j([judge_prompt('1/2', '1/2'), judge_prompt('1/2', '0.5')])
    assert [parse_verdict(o.text)[0] for o in out] == [True, False]
    assert out[0].n_tokens == 11 and out[0].text.startswith('<think>\nrrrrrrr\n</think>\n')
    path, headers, body = _Fake.seen[-1]
    assert path == '/v1/chat/completions' and 'Authorization' not in headers
    assert body['messages'][0] == dict(role='system', content='be strict') and body['seed'] == 3 and body['max_tokens'] == 2048

def test_http_judge_errors(server):
    j = HTTPJudge(server, 'm', api_key='secret', retries=1, backoff_s=0.01)
    _Fake.script = [(429, 'slow down'), (500, 'again')]
    with pytest.raises(RuntimeError, match='HTTP 500: again'): j(['Reference answer: 1\nCandidate answer: 1\n'])
    _Fake.script = [(502, 'x')]
    assert parse_verdict(j(['Reference answer: 1\nCandidate answer: 1\n'])[0].text)[0] is True
    assert {k.lower(): v for k, v in _Fake.seen[-1][1].items()}["authorization"] == "Bearer secret"
    _Fake.script = [(404, 'no such route')]
    with pytest.raises(RuntimeError, match='HTTP 404'): j(['x'])
    _Fake.script = [(200, 'not json')]
    with pytest.raises(ValueError, match='did not return JSON'): j(['x'])
    _Fake.script = [(200, '{"choices": []}')]
    with pytest.raises(ValueError, match='choices'): j(['x'])
    with pytest.raises(ConnectionError, match='cannot reach'): HTTPJudge('http://127.0.0.1:9', 'm', retries=0, timeout_s=2)(['x'])
    with pytest.raises(ValueError, match='http'): HTTPJudge('ftp://x', 'm')

def test_run_judge_and_audit(server, tmp_path):
    f = tmp_path/'pairs.jsonl'
    rows = [dict(gold='1/2', pred='1/2', equivalent=True), dict(gold='1/2', pred='0.5', equivalent=True),
            dict(gold='3', pred='4', equivalent=False), dict(gold='x+1', pred='1+x', equivalent=True)]
    f.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    au = audit_judge(HTTPJudge(server, 'm'), f, n_boot=50)
    assert [r['judge'] for r in au['records']] == [True, False, False, False]
    assert au['judge_vs_label']['agreement']['mean'] == pytest.approx(2 / 4)
    assert au['verifier_vs_label']['agreement']['mean'] == pytest.approx(1.0)      # math-verify gets all four
    assert au['judge_vs_verifier']['confusion'] == dict(tp=1, fp=0, fn=2, tn=1)
    assert au['judge_vs_label']['tokens_mean'] == 11
    with pytest.raises(ValueError, match='no `pred`'): run_judge(lambda ps: [], [dict(gold='1')])
    with pytest.raises(ValueError, match='0 replies for 1'): run_judge(lambda ps: [], [dict(gold='1', pred='1')])
    f.write_text('{"gold": "1", "equivalent": true}\n')
    with pytest.raises(ValueError, match=r'pairs.jsonl:1: missing `pred`'): load_equivalence_pairs(f)

# --- soft scores ------------------------------------------------------------------------------------------------------

def test_soft_and_confidence_votes():
    l = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))
    assert np.allclose(soft_votes(l), [[0.25, 0.75], [0.5, 0.5]])
    assert np.allclose(confidence_votes(l, ['a', None], ['a', 'b']), [[0.25, 0], [0, 0]])
    assert reasoning_context('<think>\n1\n</think>\nThe answer is 1.') == '<think>\n1\n</think>\n'
    assert reasoning_context('<think>\n1+') == '<think>\n1+\n</think>\n'

def test_continuation_logprobs_and_hf_judge():
    import torch
    from reasondistill.models import load_model
    from reasondistill.rollout import SamplingParams
    m, tok = load_model('toy:teacher')
    ctx = ['<|im_start|>user\nCompute left to right, mod 10: 4*2<|im_end|>\n<|im_start|>assistant\n<think>\n4*2=8\n</think>\nThe answer is'] * 3
    cont = [' 8.', ' 9.', ' 8. The answer is 8.']
    got, joined = continuation_logprobs(m, tok, ctx, cont), continuation_logprobs(m, tok, ctx, cont, share_prefix=False, batch_size=2)
    for c, x, g, h in zip(ctx, cont, got, joined):
        a, b = tok(c, add_special_tokens=False)['input_ids'], tok(x, add_special_tokens=False)['input_ids']
        with torch.no_grad(): lp = torch.log_softmax(m(input_ids=torch.tensor([a + b])).logits[0].float(), -1)
        want = sum(lp[len(a) - 1 + t, b[t]].item() for t in range(len(b)))
        assert g == pytest.approx(want, abs=1e-4) and h == pytest.approx(want, abs=1e-4)
    assert got[0] > got[1]
    j = HFJudge(m, tok, SamplingParams(temperature=0.0, max_new_tokens=16))
    res = run_judge(j, [dict(gold='1', pred='1')], template='Reference answer: {gold}\nCandidate answer: {pred}\nVerdict:')
    assert res[0]['judge_tokens'] <= 16 and res[0]['judge'] in (True, False, None) and isinstance(res[0]['judge_text'], str)

# --- discrimination metrics and long prompts --------------------------------------------------------------------------

def test_auroc_and_calibration_direct():
    from reasondistill.eval.judge import auroc, calibration
    rng = np.random.default_rng(1)
    s, y = rng.integers(0, 4, 40) / 3, rng.random(40) < 0.4
    want = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in s[y] for b in s[~y]])
    assert auroc(s, y) == pytest.approx(want)
    assert auroc([0.2, 0.2, 0.2], [True, False, True]) == pytest.approx(0.5) and auroc([0.5], [False]) is None
    cal = calibration([0.0, 0.49, 0.5, 1.0], [0, 1, 1, 1], bins=2)
    assert [b['n'] for b in cal['bins']] == [2, 2]
    assert cal['ece'] == pytest.approx((2 * abs(0.245 - 0.5) + 2 * abs(0.75 - 1.0)) / 4)
    with pytest.raises(ValueError, match='bins'): calibration([0.5], [1], bins=0)

def test_hf_judge_skips_prompts_that_do_not_fit():
    from reasondistill.models import load_model
    from reasondistill.rollout import SamplingParams
    m, tok = load_model('toy:teacher')
    items = [dict(gold='1', pred='9' * 400), dict(gold='2', pred='2')]
    t = 'Reference answer: {gold}\nCandidate answer: {pred}\nVerdict:'
    with pytest.raises(ValueError, match='does not fit'): run_judge(HFJudge(m, tok, SamplingParams(temperature=0.0, max_new_tokens=4)), items, template=t)
    res = run_judge(HFJudge(m, tok, SamplingParams(temperature=0.0, max_new_tokens=4), skip_too_long=True), items, template=t)
    assert res[0]['judge'] is None and res[0]['judge_detail'] == 'prompt too long for the judge' and res[0]['judge_finish'] == 'prompt_too_long'
    assert res[1]['judge_tokens'] > 0
