"""The real-shaped lane, command line (issue 13, point 6): what a real run hit through `reasondistill` before the fixes.
Each test drives the CLI (or the code path it uses) with the random-weight stand-ins of `tests/realshape.py` and pins one
toy-only assumption: toy defaults applied to real models, missing options, the model's own generation_config, a second
BOS in SFT sequences, think tags lost in decoding, and an extra that does not exist."""
import contextlib, io, json, sys
from pathlib import Path
from unittest import mock
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realshape as rs
from reasondistill import cli
from reasondistill.models import load_model, load_tokenizer, render_prompt, ModelSpec, LoraSpec
from reasondistill.records import Trace
from reasondistill.tracestore import TraceStore

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "{name: folder}: Qwen2 (ChatML), Llama-3-style (BOS in template and post-processor), Qwen2 with special think tags."
    root = tmp_path_factory.mktemp('rscli')
    return dict(qwen2=rs.build_model(root / 'qwen2', 'qwen2'), llama=rs.build_model(root / 'llama', 'llama'),
                think=rs.build_model(root / 'think', 'qwen2', think_special=True))


def _math500(path, n=4):
    rows = [dict(problem=f'What is {i} + {i}?', answer=str(2 * i), unique_id=f'test/algebra/{i}.json', level=1 + i % 5,
                 subject='Algebra') for i in range(n)]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return f'math500:{path}'


def _traces(folder, problems, tok, completion):
    with TraceStore(folder, meta=dict(model='teacher')) as st:
        st.append([Trace(problem_id=p.id, sample_idx=0, model='teacher', prompt=render_prompt(tok, p.question),
                         completion=completion, answer=p.answer, verdict='correct', finish_reason='stop') for p in problems])
    return str(folder)


from _cli import run_cli as _console


class _Captured(Exception): pass


@pytest.fixture
def captured_train():
    "Replace the method's entry point: `train` builds everything (config, Run, data) and hands it over; nothing trains."
    got = {}
    def fake_entry(method):
        def fn(data, run, cfg, method=None):
            got.update(data=data, run=run, cfg=cfg); raise _Captured()
        return fn
    with mock.patch('reasondistill.registry.entry_point', fake_entry): yield got


# ---------------------------------------------------------------- 1. defaults that depend on the model

def test_train_defaults_follow_the_model(models, tmp_path, captured_train):
    "Before: a real student trained at lr 2e-3 with 256-token sequences and batch 16, silently. Now real values are "
    "resolved and recorded in run.json, the toy keeps its own, and cut training examples are announced on one line."
    from reasondistill.data import parse_problems
    spec = _math500(tmp_path / 'test.jsonl')
    tok = load_tokenizer(models['qwen2'])
    traces = _traces(tmp_path / 'tr', parse_problems(spec), tok, '<think>\n' + 'Let me add. ' * 200 + '\n</think>\nThe answer is 2.')
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(_Captured):
        cli.main(['train', '--method', 'sft', '--student', models['qwen2'], '--quant', 'none', '--problems', spec,
                  '--traces', traces, '--out', str(tmp_path / 'real')])
    tc = captured_train['cfg'].train
    assert (tc.lr, tc.max_length, tc.batch_size, tc.grad_accum) == (1e-4, 8192, 2, 8)   # 8192 = min(8192, the model's context)
    rec = json.loads((tmp_path / 'real' / 'run.json').read_text())['config']['train']
    assert (rec['lr'], rec['max_length'], rec['grad_accum']) == (1e-4, 8192, 8)
    assert 'warning' not in out.getvalue()                          # ~800-token traces fit 8192
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(_Captured):
        cli.main(['train', '--method', 'sft', '--student', models['qwen2'], '--quant', 'none', '--problems', spec,
                  '--traces', traces, '--out', str(tmp_path / 'short'), '--max-length', '256'])
    warn = [l for l in out.getvalue().splitlines() if l.startswith('warning:')]
    assert len(warn) == 1 and '4 of 4 training examples (100.0%)' in warn[0] and 'raise --max-length' in warn[0], out.getvalue()
    # the toy student keeps the toy values exactly
    a = cli.build_parser().parse_args(['train', '--problems', 'toy:train:1', '--out', str(tmp_path / 't')])
    cli.resolve_defaults(a, a.student, [], 'train')
    assert (a.lr, a.max_length, a.batch_size, a.grad_accum) == (2e-3, 256, 16, None)
    assert cli.train_overrides(a) == ['train.lr=0.002', 'train.epochs=2.0', 'train.max_steps=-1', 'train.batch_size=16',
                                      'train.max_length=256', 'train.seed=0']   # as before: no grad_accum override


def test_eval_defaults_follow_the_model(models, tmp_path):
    "Before: a real model was evaluated with 256 new tokens, the toy verifier and 64 sequences per batch."
    from reasondistill.data import parse_problems
    spec = _math500(tmp_path / 'test.jsonl')
    a = cli.build_parser().parse_args(['eval', '--model', models['qwen2'], '--problems', spec, '--out', str(tmp_path / 'e')])
    cli.resolve_defaults(a, a.model, parse_problems(spec), 'eval')
    assert (a.max_new_tokens, a.verifier, a.batch_size) == (4096, 'math', 'auto')
    a = cli.build_parser().parse_args(['eval', '--problems', 'toy:test:1', '--out', str(tmp_path / 'e')])
    cli.resolve_defaults(a, a.model, parse_problems('toy:test:1'), 'eval')
    assert (a.max_new_tokens, a.verifier, a.batch_size) == (256, 'toy', 64)
    # a real eval run: the math verifier and an automatic batch size, recorded
    with contextlib.redirect_stdout(io.StringIO()) as out:
        cli.main(['eval', '--model', models['qwen2'], '--problems', spec, '--out', str(tmp_path / 'ev'), '--n', '1',
                  '--max-new-tokens', '8', '--limit', '2'])
    rj = json.loads((tmp_path / 'ev' / 'run.json').read_text())
    assert rj['verifier'] == 'math' and rj['limit'] == 2
    gen = json.loads((tmp_path / 'ev' / 'generation.json').read_text())
    assert isinstance(gen['batch_size'], int) and 1 <= gen['batch_size'] <= 64
    assert 'generation batch size' in out.getvalue()


# ---------------------------------------------------------------- 2. missing options

def test_train_options_reach_the_run(models, tmp_path, captured_train):
    "--dtype, --teacher-quant, --lora-alpha/-dropout/-targets, --grad-accum, --system and --prompt-suffix, --limit: "
    "before, argparse refused every one of them."
    from reasondistill.data import parse_problems
    spec = _math500(tmp_path / 'test.jsonl')
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(_Captured):
        cli.main(['train', '--method', 'gkd', '--student', models['qwen2'], '--teacher', models['qwen2'], '--quant', 'none',
                  '--problems', spec, '--out', str(tmp_path / 'g'), '--dtype', 'bf16', '--teacher-quant', '4bit',
                  '--lora-r', '4', '--lora-alpha', '16', '--lora-dropout', '0.1', '--lora-targets', 'q_proj,v_proj',
                  '--grad-accum', '3', '--system', 'Think first.', '--prompt-suffix', 'Put the answer in \\boxed{}.',
                  '--limit', '3'])
    run, cfg, data = captured_train['run'], captured_train['cfg'], captured_train['data']
    assert run.student.dtype == 'bf16' and run.student.backend == 'hf'
    assert run.student.lora == LoraSpec(r=4, alpha=16, dropout=0.1, targets=['q_proj', 'v_proj'])
    assert isinstance(run.teacher, ModelSpec) and (run.teacher.quant, run.teacher.dtype) == ('4bit', 'bf16')
    assert cfg.train.grad_accum == 3 and len(data) == 3
    tok = load_tokenizer(models['qwen2'])
    q = parse_problems(spec)[0].question
    assert data[0]['prompt'] == render_prompt(tok, q + '\nPut the answer in \\boxed{}.', 'Think first.')
    rj = json.loads((tmp_path / 'g' / 'run.json').read_text())
    assert (rj['dtype'], rj['teacher_quant'], rj['lora_alpha'], rj['lora_targets'], rj['system'], rj['limit']) == \
           ('bf16', '4bit', 16, 'q_proj,v_proj', 'Think first.', 3)


def test_option_errors_are_one_line(models, tmp_path):
    "Unsloth missing, all-linear on a Mamba student, a teacher quantisation without a teacher: one line, status 2, "
    "before any model loads (before: an argparse error, or a PEFT traceback after loading)."
    import transformers as tf
    mamba = tmp_path / 'mamba'
    tf.MambaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1).save_pretrained(mamba)
    cases = [(['train', '--method', 'sft', '--student', models['qwen2'], '--backend', 'unsloth'], 'unsloth is not installed'),
             (['train', '--method', 'gkd', '--student', str(mamba)], '--lora-targets in_proj,x_proj,dt_proj'),
             (['train', '--method', 'gkd', '--student', str(mamba), '--lora-targets', 'in_proj,out_proj'], 'cannot take LoRA on out_proj'),
             (['train', '--method', 'sft', '--student', models['qwen2'], '--traces', str(tmp_path), '--teacher-quant', '4bit'], 'no teacher'),
             (['eval', '--model', models['qwen2'], '--batch-size', 'big'], "expected a whole number"),
             (['train', '--method', 'sft', '--lora-dropout', '1'], 'must lie in [0, 1)')]
    for argv, msg in cases:
        if 'unsloth' in argv and __import__('importlib').util.find_spec('unsloth'): continue   # the GPU lane has it
        code, _, err = _console(argv + ['--problems', 'toy:train:1', '--out', str(tmp_path / 'x')])
        assert code == 2 and msg in err and 'Traceback' not in err, (argv, err)
        assert len([l for l in err.splitlines() if 'error' in l]) == 1, err
    assert not (tmp_path / 'x' / 'run.json').exists()


def test_split_and_limit_of_local_files(tmp_path):
    "Before: `gsm8k:train.jsonl` got *test* ids (gsm8k/test/0), so traces of training problems looked like test ones."
    from reasondistill.data import parse_problems
    rows = [dict(question=f'Tom has {i} apples and buys 2 more. How many?', answer=f'{i} + 2 = {i + 2}\n#### {i + 2}') for i in range(5)]
    (tmp_path / 'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    assert [p.id for p in parse_problems(f'gsm8k:{tmp_path}/train.jsonl', limit=2)] == ['gsm8k/train/0', 'gsm8k/train/1']
    assert parse_problems(f'gsm8k:{tmp_path}/train.jsonl@test')[0].id == 'gsm8k/test/0'
    a = cli.build_parser().parse_args(['generate', '--problems', 'x', '--out', 'y', '--limit', '2'])
    assert a.limit == 2


def test_hub_problems_by_name(tmp_path, monkeypatch):
    "`gsm8k@train` loads the benchmark by name through `datasets.load_dataset`: here from a local dataset folder standing "
    "in for the Hub repository (no download)."
    from reasondistill import data
    from reasondistill.data import parse_problems
    d = tmp_path / 'gsm8k_hub'; d.mkdir()
    for split, n in (('train', 3), ('test', 2)):
        (d / f'{split}.jsonl').write_text(''.join(json.dumps(dict(question=f'{split} q{i}?', answer=f'x\n#### {i}')) + '\n'
                                                  for i in range(n)))
    name, _, splits, parse = data.HUB_SOURCES['gsm8k']
    monkeypatch.setitem(data.HUB_SOURCES, 'gsm8k', (str(d), None, splits, parse))
    ps = parse_problems('gsm8k@train')
    assert [p.id for p in ps] == ['gsm8k/train/0', 'gsm8k/train/1', 'gsm8k/train/2'] and ps[0].question == 'train q0?'
    assert [p.id for p in parse_problems('gsm8k', limit=1)] == ['gsm8k/test/0']
    with pytest.raises(ValueError, match="no 'validation' split"): parse_problems('gsm8k@validation')


def test_batch_size_estimate_on_standin_configs(models):
    "KV-cache bytes per sequence = layers x kv heads x head dim x 2 x dtype bytes x tokens (+ a step's logits); the "
    "batch is the budget over that, clamped to [1, 64]. Before: a fixed 64 sequences whatever the model and length."
    from reasondistill.models import kv_cache_bytes, auto_batch_size
    import transformers as tf
    for name in ('qwen2', 'llama'):
        c = tf.AutoConfig.from_pretrained(models[name])
        per_token = c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 2 * 2
        assert kv_cache_bytes(c, 4096, torch.bfloat16) == per_token * 4096 + 8 * c.vocab_size
        per_seq = kv_cache_bytes(c, 4096, torch.bfloat16)
        assert auto_batch_size(c, 4096, torch.bfloat16, free_bytes=10 * per_seq) == 10
        assert auto_batch_size(c, 4096, torch.bfloat16, free_bytes=per_seq // 2) == 1
        assert auto_batch_size(c, 4096, torch.bfloat16, free_bytes=1000 * per_seq) == 64
    qwen3 = tf.Qwen3Config(num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_size=4096,
                           vocab_size=151936)       # Qwen3-8B's shape: 144 KiB of cache per bf16 token
    assert kv_cache_bytes(qwen3, 1, torch.bfloat16) - 8 * 151936 == 36 * 8 * 128 * 2 * 2
    assert auto_batch_size(qwen3, 512 + 4096, torch.bfloat16, free_bytes=20 << 30) == 31


def test_merge_and_push(models, tmp_path):
    "`reasondistill merge RUN --out DIR --push-to-hub REPO` (before: no such command): the merged model computes what "
    "base + adapter did, keeps the model's own generation_config, and uploads only through the (mocked) push call."
    import transformers as tf
    from reasondistill.methods.sft import train_sft, SFTConfig
    from reasondistill.train import Run, TrainConfig
    base = Path(rs.build_model(tmp_path / 'base', 'qwen2'))
    gc = tf.GenerationConfig.from_pretrained(base); gc.repetition_penalty = 1.05; gc.save_pretrained(base)
    tok = load_tokenizer(str(base))
    ex = [dict(prompt=render_prompt(tok, 'What is 1+1?'), completion='<think>\n1+1=2\n</think>\nThe answer is 2.')] * 4
    train_sft(ex, Run(str(tmp_path / 'run'), ModelSpec(str(base), lora=LoraSpec(r=2, alpha=4))),
              SFTConfig(TrainConfig(lr=1e-2, max_steps=2, batch_size=2, max_length=64, logging_steps=1, save_steps=10)))
    pushed = []
    with mock.patch.object(tf.PreTrainedModel, 'push_to_hub', lambda self, repo, **kw: pushed.append(('model', repo, kw))), \
         mock.patch.object(tf.PreTrainedTokenizerBase, 'push_to_hub', lambda self, repo, **kw: pushed.append(('tok', repo, kw))):
        code, out, err = _console(['merge', str(tmp_path / 'run'), '--out', str(tmp_path / 'merged'), '--base', str(base),
                                   '--push-to-hub', 'me/student', '--private'])
    assert code == 0, err
    assert [(k, r) for k, r, _ in pushed] == [('model', 'me/student'), ('tok', 'me/student')] and pushed[0][2]['private']
    merged, mtok = load_model(str(tmp_path / 'merged'), device='cpu')
    ref, _ = load_model(ModelSpec(str(base), adapter=str(tmp_path / 'run' / 'final')), device='cpu')
    ids = mtok(render_prompt(mtok, 'What is 1+1?'), return_tensors='pt', add_special_tokens=False)
    with torch.no_grad(): assert torch.allclose(merged(**ids).logits, ref(**ids).logits, atol=1e-4)
    assert tf.GenerationConfig.from_pretrained(tmp_path / 'merged').repetition_penalty == 1.05
    code, _, err = _console(['merge', str(tmp_path / 'merged'), '--out', str(tmp_path / 'm2')])
    assert code == 2 and 'no trained LoRA adapter' in err


# ---------------------------------------------------------------- 3. the model's own generation_config

def test_model_generation_config_is_neutralised_and_recorded(tmp_path):
    "A stand-in whose generation_config sets repetition_penalty (a real Qwen: 1.05; 2.0 here so that it shows): before, "
    "HF generate applied it silently and nothing recorded it. Now the traces follow SamplingParams alone, and the store's "
    "meta and generation.json name what the model asked for."
    import transformers as tf
    from reasondistill.data import parse_problems
    plain = rs.build_model(tmp_path / 'plain', 'qwen2')
    pen = rs.build_model(tmp_path / 'pen', 'qwen2')
    gc = tf.GenerationConfig.from_pretrained(pen); gc.repetition_penalty = 2.0; gc.save_pretrained(pen)
    spec = _math500(tmp_path / 'test.jsonl', n=2)
    for name, path in (('plain', plain), ('pen', pen)):
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(['generate', '--model', path, '--problems', spec, '--out', str(tmp_path / f'tr-{name}'), '--n', '1',
                      '--temperature', '0', '--max-new-tokens', '24'])
    def texts(d):
        with TraceStore(d, readonly=True) as st: return {t.problem_id: t.completion for t in st}, st.meta
    (a, meta_a), (b, meta_b) = texts(tmp_path / 'tr-plain'), texts(tmp_path / 'tr-pen')
    assert a == b                                                   # greedy, same weights: only SamplingParams count
    assert 'model_generation_config' not in meta_a
    assert meta_b['model_generation_config'] == {'repetition_penalty': 2.0, 'applied': False}
    gen = json.loads((tmp_path / 'tr-pen' / 'generation.json').read_text())
    assert gen['model_generation_config'] == {'repetition_penalty': 2.0} and gen['sampling']['temperature'] == 0


# ---------------------------------------------------------------- 4. one BOS in SFT sequences

def test_sft_sequences_have_one_bos_llama3(models, tmp_path):
    "TRL tokenised the rendered prompt with the tokenizer's special tokens: with a Llama-3-style tokenizer (BOS in the "
    "template and in the post-processor) every SFT sequence began with two BOS. Checked on the batches the trainer sees."
    import transformers as tf
    from reasondistill.methods.sft import train_sft, SFTConfig
    from reasondistill.train import Run, TrainConfig
    tok = load_tokenizer(models['llama'])
    ex = [dict(prompt=render_prompt(tok, f'What is {i}+1?'), completion=f'<think>\n{i}+1={i + 1}\n</think>\nThe answer is {i + 1}.')
          for i in range(4)]
    seen = []
    class Peek(tf.TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            for batch in train_dataloader: seen.extend(batch['input_ids'].tolist())
    train_sft(ex, Run(str(tmp_path / 'sft'), ModelSpec(models['llama'], lora=LoraSpec(r=2, alpha=4))),
              SFTConfig(TrainConfig(max_steps=1, batch_size=4, max_length=128, logging_steps=1, save_steps=10)), callbacks=[Peek()])
    assert len(seen) == 4
    for ids in seen:
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1, ids[:4]


# ---------------------------------------------------------------- 5. think tags that are special tokens

def test_budget_forcing_keeps_special_think_tags(models, monkeypatch):
    "`decode(skip_special_tokens=True)` dropped `<think>` where the tokenizer marks it special: a budget-forced "
    "completion then lacked its opening tag. The generator is replaced by one that writes a fixed thinking."
    from reasondistill.eval import budgets
    from reasondistill.rollout import Completion
    from reasondistill.records import Problem
    tok = load_tokenizer(models['think'])
    assert tok.convert_tokens_to_ids('<think>') in tok.all_special_ids or \
           tok.added_tokens_decoder[tok.convert_tokens_to_ids('<think>')].special
    think = tok('<think>\nFirst add the numbers. Then check the sum again carefully.', add_special_tokens=False)['input_ids']
    def fake_generate(model, tokenizer, prompts, sp, **kw):
        ids = think[:sp.max_new_tokens]
        return [[Completion(text=tokenizer.decode(ids), token_ids=ids, n_prompt_tokens=1, finish_reason='length')] for _ in prompts]
    monkeypatch.setattr(budgets, 'generate', fake_generate)
    p = Problem('q1', 'What is 2+2?', '4')
    recs = budgets.budget_force_wait(None, tok, [p], [6], think_open=None)
    assert recs[0]['completion'].startswith('<think>\nF'), recs[0]['completion'][:40]
    recs = budgets.budget_force(None, tok, [p], [6])
    assert recs[0]['completion'].startswith('<think>\nF'), recs[0]['completion'][:40]


def test_no_decode_drops_think_tags_in_methods():
    "The methods that decode generated ids themselves use `models.decode_completion` (special tokens removed, think tags "
    "kept), as `rollout.generate` does."
    import inspect
    from reasondistill.methods import dasd, gen_ssd, rsd
    from reasondistill.eval import budgets
    for mod in (dasd, gen_ssd, rsd, budgets):
        src = inspect.getsource(mod)
        assert 'skip_special_tokens=True' not in src and 'decode_completion(' in src, mod.__name__


# ---------------------------------------------------------------- 6. the extras the error messages name

def test_require_names_extras_that_exist():
    "`core.require` tells the user which extra to install: every extra it can name must exist in pyproject.toml "
    "(before: `vllm` mapped to an extra `[vllm]` that pyproject did not define)."
    import tomllib
    from reasondistill import core
    extras = set(tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['optional-dependencies'])
    missing = {m: e for m, e in core._EXTRA_OF.items() if e not in extras}
    assert not missing, f'extras named by core.require but absent from pyproject.toml: {missing}'
    if __import__('importlib').util.find_spec('vllm') is None:
        with pytest.raises(ImportError, match=r"pip install 'reasondistill\[vllm\]'"): core.require('vllm', 'the vllm backend')
