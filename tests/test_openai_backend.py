"""The `openai` generation backend against a local OpenAI-schema server the tests start (`openai_backend.FakeServer`,
standard library only): traces through `generate_traces` and the CLI, chat and completion modes, streaming, `n`,
stop strings, log-probs, retries (429 with Retry-After, 5xx), timeouts, 401/404/connection-refused messages, the key
kept out of every file, and a CLI run SIGKILLed mid-flight and resumed that ends equal to an uninterrupted one."""
import contextlib, io, json, os, random, re, signal, socket, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest

pytest.importorskip('openai')
from reasondistill.cli import console, main
from reasondistill.data import parse_problems
from reasondistill.models import load_tokenizer, render_prompt
from reasondistill.openai_backend import EndpointError, FakeServer, OpenAIEndpoint, generate_openai, request_seed
from reasondistill.rollout import SamplingParams, generate
from reasondistill.toyworld import parse_toy_question, reference_trace
from reasondistill.traces import generate_traces
from reasondistill.tracestore import TraceStore

KEY = 'sk-test-9f8e7d6c5b4a3928'        # the server's key: it must never reach a file
ENV = 'RD_TEST_OPENAI_KEY'
MODEL = 'toy-teacher'

def wrong(seed) -> bool: return seed is not None and seed % 5 == 0

def teacher(prompt:str, seed):
    "A deterministic reasoning teacher: the toy reference trace drawn with `seed`, its reasoning apart; a wrong answer for 1 seed in 5."
    q = re.search(r'Compute left to right, mod 10: [^\n<]*', prompt)[0]
    tp = parse_toy_question(q)
    text, ans = reference_trace(tp, random.Random(seed), slip=0.0)
    if wrong(seed): text = text.replace(f'The answer is {ans}.', f'The answer is {(ans + 1) % 10}.')
    m = re.fullmatch(r'<think>\n(.*)\n</think>\n(.*)', text, re.S)
    return m[1], m[2]

@pytest.fixture(scope='module')
def server():
    with FakeServer(teacher, key=KEY, models=(MODEL,)) as s: yield s

@pytest.fixture
def srv(server, monkeypatch):
    server.faults, server.delay_s = [], 0.0
    server.log.clear()
    monkeypatch.setenv(ENV, KEY)
    return server

def endpoint(s, **kw): return OpenAIEndpoint(s.url, MODEL, api_key_env=ENV, **kw)

def stored(store) -> dict:
    with TraceStore(store, readonly=True) as st: recs = st.to_records()
    keys = [(r['problem_id'], r['sample_idx']) for r in recs]
    assert len(keys) == len(set(keys)), 'a trace is stored twice'
    return dict(zip(keys, recs))

def all_bytes(folder) -> bytes:
    return b''.join(p.read_bytes() for p in Path(folder).rglob('*') if p.is_file())

# --- Python: generate and generate_traces ---------------------------------------------------------------------------

def test_generate_traces_chat(srv, tmp_path):
    probs = parse_problems('toy:train:3:2,5')
    ep = endpoint(srv, concurrency=4, price_in=1.0, price_out=2.0)
    sp = SamplingParams(seed=2, max_new_tokens=200)
    stats = generate_traces(probs, ep, None, tmp_path / 'st', n_samples=3, params=sp, system='Be careful.')
    assert stats['generated'] == 18 and stats['usage']['completions'] == 18 and stats['usage']['requests'] == 18
    u = stats['usage']
    assert u['cost_usd'] == pytest.approx((u['prompt_tokens'] * 1.0 + u['completion_tokens'] * 2.0) / 1e6) and u['reasoning_tokens'] > 0
    recs = stored(tmp_path / 'st')
    assert len(recs) == 18
    for (pid, idx), r in recs.items():
        seed = request_seed(2, f'{pid}#{idx}', 0)
        assert r['verdict'] == ('wrong' if wrong(seed) else 'correct'), (pid, idx, r['completion'])
        assert r['completion'].startswith('<think>\n') and r['thinking'] and r['thinking'] in r['completion']
        assert r['model'] == MODEL and r['meta']['endpoint'] == srv.url and r['finish_reason'] == 'stop'
        assert r['prompt'].startswith('Compute left to right') and r['n_completion_tokens'] == len(r['completion'].split()) - 2
    assert Counter(r['verdict'] for r in recs.values())['correct'] >= 10
    with TraceStore(tmp_path / 'st', readonly=True) as st: assert st.meta['endpoint'] == ep.identity()
    bodies = [b for _, b in srv.log]
    assert all(b['messages'][0] == dict(role='system', content='Be careful.') and b['max_tokens'] == 200 for b in bodies)
    assert len({b['seed'] for b in bodies}) == 18
    n = len(srv.log)
    again = generate_traces(probs, ep, None, tmp_path / 'st', n_samples=3, params=sp, system='Be careful.')
    assert again['generated'] == 0 and len(srv.log) == n              # nothing asked twice

def test_completion_mode_stream_and_logprobs_match_chat(srv, tmp_path):
    probs = parse_problems('toy:train:2:3')
    tok = load_tokenizer('toy:teacher')
    sp = SamplingParams(seed=4, logprobs=True)
    generate_traces(probs, endpoint(srv), None, tmp_path / 'chat', n_samples=2, params=sp)
    srv.log.clear()
    generate_traces(probs, endpoint(srv, mode='completion', stream=True), tok, tmp_path / 'comp', n_samples=2, params=sp)
    assert {b['prompt'] for _, b in srv.log} == {render_prompt(tok, p.question) for p in probs}
    assert all(path.endswith('/completions') and b['stream'] and b['logprobs'] == 1 for path, b in srv.log)
    chat, comp = stored(tmp_path / 'chat'), stored(tmp_path / 'comp')
    assert {k: r['completion'] for k, r in chat.items()} == {k: r['completion'] for k, r in comp.items()}
    assert all(len(r['logprobs']) == len(r['completion'].split()) for r in comp.values())
    with pytest.raises(ValueError, match='needs a tokenizer'): generate_traces(probs, endpoint(srv, mode='completion'), None, tmp_path / 'x', n_samples=1, system='s')

def test_chat_stream_equals_whole_responses(srv):
    qs = ['Compute left to right, mod 10: 3+4*2', 'Compute left to right, mod 10: 9-2']
    sp = SamplingParams(n=2, seed=5, logprobs=True)
    whole = generate(endpoint(srv), None, qs, sp, backend='openai', desc=None)
    streamed = generate(endpoint(srv, stream=True), None, qs, sp, backend='openai', desc=None)
    assert all(b['stream'] and b['stream_options'] == {'include_usage': True} for _, b in srv.log[-4:])
    for a, b in zip(sum(whole, []), sum(streamed, [])):
        assert (a.text, a.reasoning, a.n_tokens, a.finish_reason, a.logprobs) == (b.text, b.reasoning, b.n_tokens, b.finish_reason, b.logprobs)
        assert a.reasoning and a.text.startswith(f'<think>\n{a.reasoning}\n</think>\n')

def test_generate_n_per_request_stop_and_length(srv):
    prompt = 'Compute left to right, mod 10: 3+4*2'
    seen = []
    ep = endpoint(srv, n_per_request=True)
    [outs] = generate(ep, None, [prompt], SamplingParams(n=3, seed=1), backend='openai', desc=None, on_batch=seen.append)
    assert len(srv.log) == 1 and srv.log[0][1]['n'] == 3 and [len(b) for b in seen] == [3]
    assert all(c.tokens_estimated for c in outs) and sum(c.n_tokens for c in outs) == ep.usage.completion_tokens
    [[c]] = generate(endpoint(srv), None, [prompt], SamplingParams(stop=(' is',)), backend='openai', desc=None)
    assert c.finish_reason == 'stop' and c.text.endswith('</think>\nThe answer') and srv.log[-1][1]['stop'] == [' is']
    [[c]] = generate(endpoint(srv), None, [prompt], SamplingParams(max_new_tokens=2), backend='openai', desc=None)
    assert (c.finish_reason, c.n_tokens) == ('length', 2)
    seen.clear()
    outs = generate(endpoint(srv, concurrency=3), None, [prompt, prompt + '+1'], SamplingParams(n=2), backend='openai', desc=None,
                    keys=['a', 'b'], on_batch=seen.append)
    assert sorted((i, j) for b in seen for i, j, _ in b) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [[c.seed for c in o] for o in outs] == [[request_seed(0, k, j) for j in range(2)] for k in 'ab']
    with pytest.raises(ValueError, match="backend='openai'"): generate(endpoint(srv), None, [prompt], backend='hf')
    [[c]] = generate(endpoint(srv), None, [prompt], SamplingParams(max_new_tokens=2), desc=None)   # no backend: the endpoint's own
    assert (c.finish_reason, c.n_tokens) == ('length', 2)
    with pytest.raises(TypeError, match='OpenAIEndpoint'): generate(object(), None, [prompt], backend='openai')

# --- faults -----------------------------------------------------------------------------------------------------------

def test_retries_then_success(srv):
    srv.faults = [dict(status=429, headers={'Retry-After': '0.3'}), dict(status=500), dict(status=502)]
    ep = endpoint(srv, backoff_s=0.01, max_retries=3)
    t0 = time.monotonic()
    [[c]] = generate(ep, None, ['Compute left to right, mod 10: 1+1'], backend='openai', desc=None)
    assert time.monotonic() - t0 >= 0.3                                 # Retry-After was waited for (a lower bound only)
    assert c.text.endswith('The answer is 2.') and (ep.usage.requests, ep.usage.retries) == (4, 3)

def test_rate_limit_spaces_request_starts(srv):
    ep = endpoint(srv, concurrency=5, requests_per_min=1200)          # one start every 0.05 s
    t0 = time.monotonic()
    generate(ep, None, ['Compute left to right, mod 10: 1+1'], SamplingParams(n=5), backend='openai', desc=None)
    assert time.monotonic() - t0 >= 0.2 and ep.usage.requests == 5      # 5 starts: at least 4 gaps (a lower bound only)
    with pytest.raises(ValueError, match='requests_per_min'): endpoint(srv, requests_per_min=0)

def test_retries_exhausted(srv):
    srv.faults = [dict(status=503, body={'error': {'message': 'overloaded'}})] * 3
    with pytest.raises(EndpointError, match=r'gave up after 3 tries; last: HTTP 503: overloaded'):
        generate(endpoint(srv, backoff_s=0.01, max_retries=2), None, ['Compute left to right, mod 10: 1+1'], backend='openai', desc=None)

def test_timeout(srv):
    srv.faults = [dict(delay_s=1.5)]                                    # one slow reply, then a normal one
    ep = endpoint(srv, timeout_s=0.3, backoff_s=0.01, max_retries=1)
    [[c]] = generate(ep, None, ['Compute left to right, mod 10: 2+2'], backend='openai', desc=None)
    assert c.text.endswith('The answer is 4.') and ep.usage.retries == 1
    srv.faults = [dict(delay_s=1.5)] * 2
    with pytest.raises(EndpointError, match=r'gave up after 2 tries; last: no response within 0.3 s'):
        generate(ep, None, ['Compute left to right, mod 10: 2+2'], backend='openai', desc=None)

def test_clear_errors(srv, monkeypatch):
    q = ['Compute left to right, mod 10: 2+2']
    monkeypatch.setenv(ENV, 'sk-wrong-key-123')
    with pytest.raises(EndpointError, match=f'HTTP 401 unauthorized: the key in \\${ENV} was refused') as e:
        generate(endpoint(srv), None, q, backend='openai', desc=None)
    assert 'sk-wrong-key-123' not in str(e.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(EndpointError, match=f'\\${ENV} is not set'): generate(endpoint(srv), None, q, backend='openai', desc=None)
    assert generate_openai(endpoint(srv), q, api_key=KEY, desc=None)[0][0].text.endswith('The answer is 4.')   # a key given in code
    monkeypatch.setenv(ENV, KEY)
    with pytest.raises(EndpointError, match="HTTP 404: the server does not serve model 'gpt-9'"):
        generate(OpenAIEndpoint(srv.url, 'gpt-9', api_key_env=ENV), None, q, backend='openai', desc=None)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    with pytest.raises(EndpointError, match=f'cannot connect to http://127.0.0.1:{port}/v1: .*is the server running'):
        generate(OpenAIEndpoint(f'http://127.0.0.1:{port}/v1', MODEL), None, q, backend='openai', desc=None)
    srv.faults = [dict(status=400, body={'error': {'message': 'prompt is too long'}})]
    with pytest.raises(EndpointError, match='HTTP 400: prompt is too long'): generate(endpoint(srv), None, q, backend='openai', desc=None)

# --- the command line -------------------------------------------------------------------------------------------------

SPEC = 'toy:train:4:2,5'               # 8 problems
N = 3                                  # x 3 samples = 24 traces

def cli_args(s, out, *more):
    return ['generate', '--backend', 'openai', '--base-url', s.url, '--model', MODEL, '--api-key-env', ENV, '--problems', SPEC,
            '--n', str(N), '--seed', '7', '--max-new-tokens', '200', '--out', str(out), *more]

def run_console(argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: console(argv)
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()

def test_cli_generate(srv, tmp_path):
    code, out, err = run_console(cli_args(srv, tmp_path / 'run', '--concurrency', '4', '--price-in', '1', '--price-out', '2'))
    assert code == 0, err
    assert f'generated {8 * N} traces (0 already there)' in out and f'{8 * N} requests (0 retried)' in out and 'about $' in out
    run = json.loads((tmp_path / 'run' / 'run.json').read_text())
    assert run['backend'] == 'openai' and run['endpoint']['base_url'] == srv.url and run['endpoint']['model'] == MODEL
    assert run['endpoint']['mode'] == 'chat'
    assert (tmp_path / 'run' / 'reasondistill.log').exists() and (tmp_path / 'run' / 'meta.json').exists()
    assert KEY.encode() not in all_bytes(tmp_path / 'run')
    recs = stored(tmp_path / 'run')
    assert len(recs) == 8 * N and {r['verdict'] for r in recs.values()} >= {'correct', 'wrong'}
    code, out, _ = run_console(cli_args(srv, tmp_path / 'run', '--concurrency', '2'))       # speed settings may change on resume
    assert code == 0 and f'generated 0 traces ({8 * N} already there)' in out
    code, _, err = run_console(cli_args(srv, tmp_path / 'run', '--mode', 'completion'))
    assert code == 2 and 'another configuration' in err and 'endpoint' in err

def test_cli_errors(srv, tmp_path, monkeypatch):
    cases = [(['generate', '--backend', 'openai', '--problems', SPEC, '--out', str(tmp_path / 'a')], '--base-url'),
             (['generate', '--backend', 'hf', '--base-url', srv.url, '--problems', SPEC, '--out', str(tmp_path / 'b')], 'go with --backend openai'),
             (cli_args(srv, tmp_path / 'c', '--quant', '4bit'), '--adapter and --quant'),
             (cli_args(srv, tmp_path / 'd', '--tokenizer', 'toy:teacher'), 'completion-mode'),
             (cli_args(srv, tmp_path / 'e')[:4] + ['ftp://x'] + cli_args(srv, tmp_path / 'e')[5:], 'http://')]
    for argv, msg in cases:
        code, _, err = run_console(argv)
        assert code == 2 and msg in err and 'Traceback' not in err and len(err.strip().splitlines()) == 2, (argv, err)
    monkeypatch.setenv(ENV, 'sk-bad')
    code, _, err = run_console(cli_args(srv, tmp_path / 'f'))
    assert code == 2 and 'HTTP 401' in err and 'sk-bad' not in err and KEY not in err
    assert not (tmp_path / 'f' / 'traces-00000.jsonl').exists() or not stored(tmp_path / 'f')

# --- kill and resume ----------------------------------------------------------------------------------------------------

def n_lines(store) -> int:
    return sum(p.read_bytes().count(b'\n') for p in Path(store).glob('traces-*.jsonl'))

def test_cli_killed_and_resumed_equals_uninterrupted(srv, tmp_path):
    code, _, err = run_console(cli_args(srv, tmp_path / 'straight', '--concurrency', '4'))
    assert code == 0, err
    seed_of = {(p.id, i): request_seed(7, f'{p.id}#{i}', 0) for p in parse_problems(SPEC) for i in range(N)}
    key_of = {s: k for k, s in seed_of.items()}
    start = len(srv.log)
    srv.delay_s = 0.08                                                 # a slow server: requests are in flight when the kill comes
    run = tmp_path / 'killed'
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'RD_PROGRESS': '0'}
    log = []
    for target in (3, 10, 17):
        proc = subprocess.Popen([sys.executable, '-c', 'from reasondistill.cli import console; console()',
                                 *cli_args(srv, run, '--concurrency', '3')], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while n_lines(run) < target and proc.poll() is None and time.monotonic() - t0 < 60: time.sleep(0.002)
        proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f'the run ended before it was killed: {proc.stderr.read()[-1000:]}'
        proc.stderr.close()
        log.append(len(stored(run)))
    assert 0 < log[-1] < 8 * N, log
    assert KEY.encode() not in all_bytes(run)
    before, first = set(stored(run)), len(srv.log)
    code, _, err = run_console(cli_args(srv, run, '--concurrency', '3'))
    assert code == 0, err
    asked = Counter(key_of[b['seed']] for _, b in srv.log[first:])
    lost = {key_of[b['seed']] for _, b in srv.log[start:first]} - before     # asked by a killed run, in flight at its kill
    assert lost and lost <= set(asked), (lost, log)
    assert set(asked) == set(seed_of) - before and set(asked.values()) == {1}, (asked, log)   # the missing ones, each once
    got, ref = stored(run), stored(tmp_path / 'straight')
    assert len(ref) == 8 * N and got.keys() == ref.keys()
    diff = [k for k in ref if got[k] != ref[k]]
    assert not diff, f'{len(diff)} traces differ from the uninterrupted run, e.g. {diff[:3]}; kills left {log} traces'
