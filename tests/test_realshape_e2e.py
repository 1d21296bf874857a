"""The real-shaped lane end to end (issue 13, point 3), through the command line as a user drives it: import a trace
dataset → SFT → token-level KD with the offline top-k cache (teacher and student are real-shaped stand-ins sharing
a byte-level BPE tokenizer, Qwen2 architecture, embedding padded beyond the tokenizer) → generation and math-verify
evaluation on MATH-style problems, with training sequences longer than 4,096 tokens.

The default run uses a trace the test writes (a MATH-style solution of ~5,100 tokens); where the shared data folder is
present, a second test imports real SkyThought traces matched to MATH-500 and evaluates on MATH-500 problems."""
import json
from pathlib import Path
import pytest
import torch

import realshape as rs
import reasondistill
from _cli import run_cli
from reasondistill.models import load_tokenizer, render_prompt, join_completion

torch.set_num_threads(2)
DATA = Path(reasondistill.core.package_dir()).parent.parent / 'shared' / 'data'
SKY, MATH500 = DATA / 'skyt1_correct5k_27b_math500_traces.jsonl', DATA / 'math500_test.jsonl'
MAX_LEN = 5_400


def _ok(args):
    code, out, err = run_cli(args)
    assert code == 0, f'{args}\n{out[-2000:]}\n{err[-2000:]}'
    return out


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e_models')
    return dict(student=rs.build_model(root / 'student', 'qwen2', hidden=64, layers=2, seed=0),
                teacher=rs.build_model(root / 'teacher', 'qwen2', hidden=96, layers=2, seed=1))


def _long_trace_file(path):
    "Two prompt/response rows: one MATH-style solution of ~5,100 stand-in tokens, one short; answers boxed."
    body = '\n'.join(rs.MATH_TEXT.splitlines() * 15)
    rows = [dict(prompt='What is 9 + 9?', response=f'<think>\n{body}\n</think>\nThe final answer is $\\boxed{{18}}$.', answer='18'),
            dict(prompt='What is 3 * 4?', response='<think>\n3 * 4 = 12\n</think>\nThe answer is $\\boxed{12}$.', answer='12')]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path


def _done(run):
    d = json.loads((Path(run) / 'train_done.json').read_text()); d.pop('config', None)
    return d


def test_import_sft_kd_eval_long_sequences(models, tmp_path):
    tok = load_tokenizer(models['student'])
    src = _long_trace_file(tmp_path / 'long.jsonl')
    out = _ok(['import', 'prompt-response', src, '--out', tmp_path / 'traces', '--verifier', 'math'])
    assert 'imported 2 traces' in out and '"correct": 2' in out, out
    probs = tmp_path / 'traces' / 'problems.jsonl'
    # the long example really is longer than 4,096 tokens once rendered with the chat template
    row = json.loads(src.read_text().splitlines()[0])
    prompt = render_prompt(tok, row['prompt'])
    n_tokens = len(tok(prompt + join_completion(prompt, row['response']), add_special_tokens=False).input_ids)
    assert 4_096 < n_tokens < MAX_LEN, n_tokens

    common = ['--student', models['student'], '--quant', 'none', '--problems', probs, '--traces', tmp_path / 'traces',
              '--max-steps', 2, '--batch-size', 1, '--lr', 1e-4, '--max-length', MAX_LEN]
    _ok(['train', '--method', 'sft', '--out', tmp_path / 'sft', *common])
    sft = _done(tmp_path / 'sft')
    assert (sft['global_step'], sft['n_examples'], sft['n_truncated']) == (2, 2, 0), sft
    assert sft['train_loss'] == sft['train_loss'] and sft['train_loss'] > 0          # finite, positive

    # a length that does not fit is counted, not hidden
    _ok(['train', '--method', 'sft', '--out', tmp_path / 'sft_short', *common[:-1], 1024])
    assert _done(tmp_path / 'sft_short')['n_truncated'] == 1

    # token-level KD from the bigger stand-in through the offline top-k cache, over the whole long sequence
    _ok(['train', '--method', 'kd-fkl', '--teacher', models['teacher'], '--cache', tmp_path / 'cache',
         '--out', tmp_path / 'kd', *common])
    kd = _done(tmp_path / 'kd')
    assert kd['global_step'] == 2 and kd['n_truncated'] == 0 and kd['loss_tokens'] > 4_096, kd
    assert 0 < kd['train_loss'] < 10, kd
    assert (tmp_path / 'kd' / 'final' / 'adapter_config.json').exists()

    # the KD student generates and is scored by the math verifier (random weights: accuracy ~0, the path is what counts)
    out = _ok(['eval', '--model', models['student'], '--adapter', tmp_path / 'kd' / 'final', '--problems', probs,
               '--verifier', 'math', '--n', 2, '--max-new-tokens', 32, '--out', tmp_path / 'eval'])
    assert 'truncated' in out
    s = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
    assert (s['n_problems'], s['n_samples']) == (2, 2), {k: s.get(k) for k in ('n_problems', 'n_samples')}
    samples = [json.loads(l) for f in (tmp_path / 'eval' / 'samples').glob('traces-*.jsonl') for l in f.read_text().splitlines()]
    assert len(samples) == 4 and {x['problem_id'] for x in samples} == {'prompt-response/1', 'prompt-response/2'}
    assert all(x['verdict'] in ('correct', 'wrong', 'no_answer') and x['n_completion_tokens'] <= 32 for x in samples)
    # the truncation rate is reported next to accuracy, and a run that always hits the limit is flagged
    assert s['truncation_rate'] == sum(x['finish_reason'] == 'length' for x in samples) / 4
    if s['truncation_rate'] >= 0.25: assert 'raise --max-new-tokens' in out, out


@pytest.mark.skipif(not SKY.exists() or not MATH500.exists(), reason=f'shared data folder {DATA} not found')
def test_skythought_to_math500(models, tmp_path):
    "Real SkyThought traces (matched to MATH-500) → SFT of the stand-in at 8,192 tokens → evaluation on MATH-500."
    m500 = tmp_path / 'math500_head.jsonl'
    m500.write_text(''.join(MATH500.read_text().splitlines(keepends=True)[:4]))
    out = _ok(['import', 'skythought', SKY, '--out', tmp_path / 'traces', '--problems', f'math500:{MATH500}',
               '--verifier', 'math', '--limit', 6])
    assert 'imported 6 traces' in out, out
    _ok(['train', '--method', 'sft', '--student', models['student'], '--quant', 'none', '--problems',
         tmp_path / 'traces' / 'problems.jsonl', '--traces', tmp_path / 'traces', '--max-steps', 1, '--batch-size', 1,
         '--lr', 1e-4, '--max-length', 8192, '--out', tmp_path / 'sft'])
    sft = _done(tmp_path / 'sft')
    assert sft['global_step'] == 1 and sft['n_examples'] >= 1, sft
    _ok(['eval', '--model', models['student'], '--adapter', tmp_path / 'sft' / 'final', '--problems', f'math500:{m500}',
         '--verifier', 'math', '--n', 1, '--max-new-tokens', 16, '--out', tmp_path / 'eval'])
    s = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
    assert (s['n_problems'], s['n_samples']) == (4, 1), s


@pytest.mark.slow
def test_kd_topk_cache_at_16k_tokens(models, tmp_path):
    "The top-k cache and the chunked KD loss over a 16,384-token trace (about 20 s on 2 quiet cores; RD_RUN=slow)."
    body = '\n'.join(rs.MATH_TEXT.splitlines() * 48)
    row = dict(prompt='What is 9 + 9?', response=f'<think>\n{body}\n</think>\nThe final answer is $\\boxed{{18}}$.', answer='18')
    (tmp_path / 'long16.jsonl').write_text(json.dumps(row) + '\n')
    _ok(['import', 'prompt-response', tmp_path / 'long16.jsonl', '--out', tmp_path / 'traces', '--verifier', 'math'])
    _ok(['train', '--method', 'kd-fkl', '--student', models['student'], '--quant', 'none', '--teacher', models['teacher'],
         '--cache', tmp_path / 'cache', '--problems', tmp_path / 'traces' / 'problems.jsonl', '--traces', tmp_path / 'traces',
         '--max-steps', 1, '--batch-size', 1, '--lr', 1e-4, '--max-length', 16_500, '--out', tmp_path / 'kd'])
    kd = _done(tmp_path / 'kd')
    assert kd['n_truncated'] == 0 and kd['loss_tokens'] > 16_000 and 0 < kd['train_loss'] < 10, kd
