"User errors on the command line: one line naming what is wrong, exit status 2, no traceback, nothing loaded or written first."
import contextlib, io, json
from pathlib import Path
import pytest
from reasondistill.cli import console

def run(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try: console(list(args)); code = 0
        except SystemExit as e: code = e.code
    return code, err.getvalue()

def make_bad_inputs(d:Path) -> Path:
    "The malformed files and stores the cases refer to as {d}."
    (d / 'empty.jsonl').write_text('')
    (d / 'afile').write_text('x')
    (d / 'adapter').mkdir()
    (d / 'badjson.jsonl').write_text('{"id":"a","question":"1+1","answer":"2"}\n{"id":"b","question":"2+2"\n')
    (d / 'notobj.jsonl').write_text('[1,2]\n')
    (d / 'noq.jsonl').write_text('{"id":"a","answer":"2"}\n')
    (d / 'emptyans.jsonl').write_text('{"id":"a","question":"q","answer":""}\n')
    (d / 'dup.jsonl').write_text('{"id":"a","question":"q","answer":"1"}\n{"id":"a","question":"q2","answer":"2"}\n')
    (d / 'nonutf8.jsonl').write_bytes(b'{"id":"a","question":"q\xff","answer":"1"}\n')
    import transformers as tf
    tf.MambaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1).save_pretrained(d / 'mamba')   # a config is enough: refused before loading
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    for name in ('corrupt', 'gap'):
        with TraceStore(d / name, shard_max_records=2) as st: st.append([Trace('toy/train/1/0', i, 'm', 'Q', f'A{i}') for i in range(5)])
    first = d / 'corrupt' / 'traces-00000.jsonl'
    first.write_text(first.read_text().replace('"A0"', '"A0', 1))                      # a damaged line inside a shard
    (d / 'gap' / 'traces-00001.jsonl').unlink()                                         # a shard lost between two others
    return d

@pytest.fixture(scope='module')
def files(tmp_path_factory): return make_bad_inputs(tmp_path_factory.mktemp('bad'))

CASES = [   # (id, args with {d} for the fixture folder, text the one-line message must contain)
    ('n-zero', ['eval', '--n', '0', '--problems', 'toy:test:1', '--out', '{d}/o'], '--n: must be >= 1'),
    ('n-negative', ['generate', '--n', '-1', '--problems', 'toy:test:1', '--out', '{d}/o'], '--n: must be >= 1'),
    ('n-not-a-number', ['eval', '--n', 'x', '--problems', 'toy:test:1', '--out', '{d}/o'], 'expected a whole number'),
    ('temperature-negative', ['eval', '--temperature', '-1', '--problems', 'toy:test:1', '--out', '{d}/o'], 'must be >= 0'),
    ('top-p-zero', ['generate', '--top-p', '0', '--problems', 'toy:test:1', '--out', '{d}/o'], 'must lie in (0, 1]'),
    ('max-new-tokens-zero', ['eval', '--max-new-tokens', '0', '--problems', 'toy:test:1', '--out', '{d}/o'], 'must be >= 1'),
    ('generate-batch-size-zero', ['generate', '--batch-size', '0', '--problems', 'toy:test:1', '--out', '{d}/o'], '--batch-size: must be >= 1'),
    ('problems-empty-spec', ['eval', '--problems', '', '--out', '{d}/o'], 'problem spec is empty'),
    ('problems-zero', ['eval', '--problems', 'toy:train:0', '--out', '{d}/o'], 'at least 1'),
    ('toy-level-9', ['eval', '--problems', 'toy:train:2:9', '--out', '{d}/o'], 'must lie in 1-8'),
    ('toy-level-100', ['generate', '--problems', 'toy:test:1:100', '--out', '{d}/o'], 'must lie in 1-8'),
    ('toy-bad-split', ['eval', '--problems', 'toy:nope:1', '--out', '{d}/o'], 'split must be one of'),
    ('problem-file-missing', ['eval', '--problems', '{d}/nope.jsonl', '--out', '{d}/o'], 'nope.jsonl'),
    ('problem-file-empty', ['eval', '--problems', '{d}/empty.jsonl', '--out', '{d}/o'], 'no problems'),
    ('problems-a-folder', ['eval', '--problems', '{d}', '--out', '{d}/o'], 'is a folder'),
    ('out-is-a-file', ['eval', '--problems', 'toy:test:1', '--out', '{d}/afile'], 'is a file'),
    ('model-path-missing', ['eval', '--model', './no/such/model', '--problems', 'toy:test:1', '--out', '{d}/o'], 'no such folder'),
    ('adapter-missing', ['eval', '--adapter', '{d}/nope', '--problems', 'toy:test:1', '--out', '{d}/o'], 'no LoRA adapter'),
    ('adapter-not-an-adapter', ['eval', '--adapter', '{d}/adapter', '--problems', 'toy:test:1', '--out', '{d}/o'], 'no LoRA adapter'),
    ('method-unknown', ['train', '--method', 'kd-rlk', '--problems', 'toy:train:1', '--out', '{d}/o'], 'kd-rkl'),
    ('method-planned', ['train', '--method', 'agent-distill', '--problems', 'toy:train:1', '--out', '{d}/o'], 'planned'),
    ('traces-missing', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--out', '{d}/o'], '--traces'),
    ('traces-a-file', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}/afile', '--out', '{d}/o'], 'is a file'),
    ('set-unknown-key', ['train', '--method', 'kd-rkl', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'nope=1'], 'unknown config key'),
    ('set-bad-type', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'train.lr="abc"'], 'train.lr'),
    ('set-bad-value', ['train', '--method', 'kd-rkl', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'divergence="kl"'], 'divergence'),
    ('lr-negative', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--lr', '-1'], 'lr must be > 0'),
    ('max-length-negative', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--max-length', '-5'], 'must be >= 1'),
    ('save-steps-zero', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'train.save_steps=0'], 'save_steps'),
    ('batch-size-zero', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--batch-size', '0'], 'must be >= 1'),
    ('lora-r-zero', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--lora-r', '0'], 'must be >= 1'),
    ('demo-set-unknown', ['demo', '--run-dir', '{d}/demo', '--set', 'nope=1'], 'unknown config key'),
    ('build-toy-no-out', ['build-toy'], 'give --out'),
    ('build-toy-v2-unknown-model', ['build-toy', '--world', 'v2', '--models', 'teacher-huge', '--out', '{d}/t2'], 'unknown v2 models'),
    ('build-toy-v1-models', ['build-toy', '--models', 'student', '--out', '{d}/t1'], '--world v2'),
    ('toy2-family-unknown', ['eval', '--problems', 'toy2:test:1:code', '--out', '{d}/o'], 'unknown toy2 families'),
    ('toy2-model-unknown', ['eval', '--model', 'toy2:teacher', '--problems', 'toy2:test:1', '--out', '{d}/o'], 'unknown toy model'),
    ('toy-levels-not-numbers', ['eval', '--problems', 'toy:train:1:x', '--out', '{d}/o'], 'toy levels must be integers'),
    ('toy-spec-short', ['eval', '--problems', 'toy:train', '--out', '{d}/o'], 'toy problem spec'),
    ('verifier-unknown', ['eval', '--verifier', 'nope', '--problems', 'toy:test:1', '--out', '{d}/o'], 'invalid choice'),
    ('quant-unknown', ['train', '--quant', '8bit', '--problems', 'toy:train:1', '--out', '{d}/o'], 'invalid choice'),
    ('per-problem-zero', ['train', '--per-problem', '0', '--problems', 'toy:train:1', '--out', '{d}/o'], 'must be >= 1'),
    ('epochs-negative', ['train', '--epochs', '-1', '--problems', 'toy:train:1', '--out', '{d}/o'], 'must be >= 0'),
    ('methods-unknown', ['methods', 'nope'], 'unknown method'),
    ('set-without-equals', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'lr'], 'must look like key=value'),
    ('set-out-of-range', ['train', '--method', 'gkd', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--set', 'rollout.lmbda=2'], 'lmbda'),
    ('plot-no-summaries', ['plot', '{d}/nothing-here', '--out', '{d}/plots'], 'no EvalRun summaries'),
    # malformed problem files: the loader names the file and line
    ('file-bad-json', ['eval', '--problems', '{d}/badjson.jsonl', '--out', '{d}/o'], 'badjson.jsonl:2: malformed JSON'),
    ('file-not-an-object', ['eval', '--problems', '{d}/notobj.jsonl', '--out', '{d}/o'], 'notobj.jsonl:1: expected a JSON object'),
    ('file-missing-question', ['eval', '--problems', '{d}/noq.jsonl', '--out', '{d}/o'], "missing field 'question'"),
    ('file-empty-answer', ['eval', '--problems', '{d}/emptyans.jsonl', '--out', '{d}/o'], "field 'answer' is empty"),
    ('file-duplicate-id', ['eval', '--problems', '{d}/dup.jsonl', '--out', '{d}/o'], 'duplicate problem id'),
    ('file-not-utf8', ['eval', '--problems', '{d}/nonutf8.jsonl', '--out', '{d}/o'], 'not valid UTF-8'),
    ('benchmark-wrong-schema', ['eval', '--problems', 'math500:{d}/badjson.jsonl', '--out', '{d}/o'], "missing field 'unique_id'"),
    ('benchmark-unknown', ['eval', '--problems', 'nosuchbench:{d}/badjson.jsonl', '--out', '{d}/o'], 'nosuchbench'),
    # trace stores given to train
    ('traces-not-a-store', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}/nostore', '--out', '{d}/o'], 'nostore'),
    ('traces-corrupt-line', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}/corrupt', '--out', '{d}/o'], 'corrupt trace line'),
    ('traces-missing-shard', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}/gap', '--out', '{d}/o'], 'shard is missing'),
    # trace-dataset imports: checked before anything is imported; a bad row names its file and line
    ('import-format-unknown', ['import', 'sharegpt', '{d}/badjson.jsonl', '--out', '{d}/o'], 'openthoughts'),
    ('import-file-missing', ['import', 'openr1', '{d}/nope.jsonl', '--out', '{d}/o'], 'no such file'),
    ('import-path-a-folder', ['import', 'openr1', '{d}', '--out', '{d}/o'], 'is a folder'),
    ('import-limit-zero', ['import', 'openr1', '{d}/badjson.jsonl', '--out', '{d}/o', '--limit', '0'], 'must be >= 1'),
    ('import-row-wrong-format', ['import', 'openr1', '{d}/badjson.jsonl', '--out', '{d}/o'], "badjson.jsonl:1: missing field 'generations'"),
    # options for real models (issue 13, point 6)
    ('dtype-unknown', ['eval', '--dtype', 'int8', '--problems', 'toy:test:1', '--out', '{d}/o'], 'invalid choice'),
    ('teacher-quant-without-teacher', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--teacher-quant', '4bit'], 'no teacher'),
    ('lora-dropout-one', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--lora-dropout', '1'], 'must lie in [0, 1)'),
    ('lora-targets-all-linear-mamba', ['train', '--method', 'gkd', '--student', '{d}/mamba', '--problems', 'toy:train:1', '--out', '{d}/o'], '--lora-targets in_proj'),
    ('grad-accum-zero', ['train', '--method', 'sft', '--problems', 'toy:train:1', '--traces', '{d}', '--out', '{d}/o', '--grad-accum', '0'], 'must be >= 1'),
    ('batch-size-not-auto', ['eval', '--batch-size', 'most', '--problems', 'toy:test:1', '--out', '{d}/o'], 'expected a whole number'),
    ('limit-zero', ['eval', '--limit', '0', '--problems', 'toy:test:1', '--out', '{d}/o'], 'must be >= 1'),
    ('benchmark-split-unknown', ['eval', '--problems', 'math500:{d}/badjson.jsonl@train', '--out', '{d}/o'], "no 'train' split"),
    ('split-on-a-problem-file', ['eval', '--problems', '{d}/dup.jsonl@train', '--out', '{d}/o'], '@<split> goes with a benchmark'),
    ('merge-no-adapter', ['merge', '{d}/adapter', '--out', '{d}/o'], 'no trained LoRA adapter'),
    ('vllm-option-without-vllm-backend', ['generate', '--tensor-parallel-size', '2', '--problems', 'toy:test:1', '--out', '{d}/o'], 'go with --backend vllm'),
    ('vllm-with-bnb-quant', ['generate', '--backend', 'vllm', '--quant', '4bit', '--problems', 'toy:test:1', '--out', '{d}/o'], 'with --backend vllm give a model vLLM can load'),
]

@pytest.mark.parametrize('args,expect', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line(args, expect, files):
    code, err = run([a.format(d=files) for a in args])
    assert code == 2, (code, err[-1500:])
    assert 'Traceback' not in err and expect in err, err[-1500:]
    assert not (files / 'o' / 'train_done.json').exists() and not (files / 'o' / 'summary.json').exists()

def test_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match='at least 1'): console(['eval', '--problems', 'toy:train:0', '--out', str(files / 'o'), '--debug'])

def test_a_run_folder_answers_for_one_configuration(tmp_path):
    "A rerun with the same settings resumes; other settings are refused (naming what differs) unless --overwrite."
    with contextlib.redirect_stdout(io.StringIO()):
        console(['generate', '--problems', 'toy:train:2:2', '--out', str(tmp_path / 'tr'), '--n', '1', '--max-new-tokens', '160'])
    base = ['train', '--method', 'sft', '--problems', 'toy:train:2:2', '--traces', str(tmp_path / 'tr'), '--out', str(tmp_path / 'run'),
            '--max-steps', '1', '--batch-size', '2', '--lora-r', '4']
    assert run(base)[0] == 0
    done = json.loads((tmp_path / 'run' / 'train_done.json').read_text())
    assert run(base)[0] == 0 and json.loads((tmp_path / 'run' / 'train_done.json').read_text()) == done    # resumed: nothing retrained
    code, err = run(base + ['--lr', '1e-3'])
    assert code == 2 and 'another configuration' in err and 'config.train.lr' in err, err
    code, err = run(base[:-2] + ['--lora-r', '8'])
    assert code == 2 and 'lora_r' in err, err
    assert run(base + ['--lr', '1e-3', '--overwrite'])[0] == 0
    assert json.loads((tmp_path / 'run' / 'train_done.json').read_text())['config']['train']['lr'] == 1e-3
    # an evaluation folder made for the base model does not answer for an adapter
    ev = ['eval', '--problems', 'toy:test:1:2', '--out', str(tmp_path / 'ev'), '--n', '1', '--max-new-tokens', '64']
    assert run(ev)[0] == 0
    code, err = run(ev + ['--adapter', str(tmp_path / 'run' / 'final')])
    assert code == 2 and 'adapter' in err, err
    # the trace store may grow (more problems, more samples), but not with another sampling setup
    assert run(['generate', '--problems', 'toy:train:3:2', '--out', str(tmp_path / 'tr'), '--n', '2', '--max-new-tokens', '160'])[0] == 0
    code, err = run(['generate', '--problems', 'toy:train:2:2', '--out', str(tmp_path / 'tr'), '--n', '1', '--max-new-tokens', '160',
                     '--temperature', '0.5'])
    assert code == 2 and 'temperature' in err, err

def test_python_entry_refuses_a_finished_run_of_another_configuration(tmp_path):
    import random
    from reasondistill.core import RunMismatchError
    from reasondistill.train import Run, TrainConfig, default_student_spec
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace
    tok, rng = load_tokenizer('toy:student'), random.Random(0)
    ex = [dict(prompt=render_prompt(tok, p.question), completion=reference_trace(parse_toy_question(p.question), rng)[0])
          for p in toy_problems(2, levels=[2], split='train')]
    run, cfg = Run(str(tmp_path / 'r'), default_student_spec(r=4)), SFTConfig(train=TrainConfig(max_steps=1, batch_size=2, max_length=128))
    s = train_sft(ex, run, cfg)
    assert train_sft(ex, run, cfg) == s                                             # the same: the saved summary
    with pytest.raises(RunMismatchError, match='config.train.lr'):
        train_sft(ex, run, SFTConfig(train=TrainConfig(max_steps=1, batch_size=2, max_length=128, lr=5e-3)))
    with pytest.raises(RunMismatchError, match='method'): train_sft(ex, run, cfg, method='answer-only')
    # an unfinished run (checkpoints, no summary) of another configuration is not resumed either
    (tmp_path / 'r' / 'train_done.json').unlink()
    assert any((tmp_path / 'r').glob('checkpoint-*')) or (tmp_path / 'r' / 'final').exists()
    with pytest.raises(RunMismatchError, match='config.train.lr'):
        train_sft(ex, run, SFTConfig(train=TrainConfig(max_steps=1, batch_size=2, max_length=128, lr=5e-3)))

def test_python_wrappers_refuse_a_folder_with_work_of_another_configuration(tmp_path):
    "The two-stage and data-recipe wrappers claim their folder before their own summary is read or any stage resumed."
    from reasondistill.core import RunMismatchError
    from reasondistill.train import Run, TrainConfig, claim_run
    from reasondistill.methods.dasd import DASDConfig, train_dasd
    from reasondistill.methods.rsd import RSDConfig, train_rsd
    from reasondistill.methods.deepdistill import DeepDistillConfig, train_deepdistill
    from reasondistill.methods.redi import REDIConfig, train_redi_two_stage
    from reasondistill.traces import LabelledTraces
    cases = [(lambda r, c: train_dasd([], r, c), DASDConfig), (lambda r, c: train_rsd([], r, c), RSDConfig),
             (lambda r, c: train_deepdistill([], r, c), DeepDistillConfig),
             (lambda r, c: train_redi_two_stage(LabelledTraces([], []), r, c), REDIConfig)]
    names = ('dasd', 'rsd', 'deepdistill', 'redi')
    files = ('dasd_config.json', 'recipe_config.json', 'deepdistill_config.json', 'two_stage_config.json')
    for i, ((fn, Cfg), name, file) in enumerate(zip(cases, names, files)):
        out = tmp_path / str(i); out.mkdir()
        (out / 'two_stage.json').write_text('{"final": "x"}'); (out / 'recipe.json').write_text('{"final": "x"}')
        (out / 'dasd.json').write_text('{"final": "x"}'); (out / 'deepdistill.json').write_text('{"final": "x"}')
        run = Run(str(out), teacher='toy:teacher')
        claim_run(run, Cfg(train=TrainConfig(lr=1e-3)), name, file)                 # what the finished run recorded
        assert fn(run, Cfg(train=TrainConfig(lr=1e-3))) == {'final': 'x'}          # the same run: its summary
        with pytest.raises(RunMismatchError, match='train.lr'): fn(run, Cfg(train=TrainConfig(lr=2e-3)))
    # a call refused on bad input writes nothing: the corrected call is not blocked by a claim
    with pytest.raises(ValueError, match='needs a teacher'): train_dasd([], Run(str(tmp_path / 'new')), DASDConfig())
    assert not (tmp_path / 'new').exists()

def test_eval_uses_the_sampling_settings_it_records(tmp_path):
    "--top-p reaches the evaluation (it was once only in the fingerprint) and --batch-size sets the store's flush unit."
    code, err = run(['eval', '--problems', 'toy:test:1:2', '--n', '2', '--max-new-tokens', '8', '--top-p', '0.5', '--batch-size', '1',
                     '--out', str(tmp_path / 'e')])
    assert code == 0, err
    cfg = json.loads((tmp_path / 'e' / 'eval.json').read_text())['config']
    assert (cfg['top_p'], cfg['batch_size']) == (0.5, 1)
