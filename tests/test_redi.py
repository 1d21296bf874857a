"""REDI beyond the notebook: the loss inside the trainer against the definition on a real model (values and gradients),
the pair builder on a real TraceStore, the CLI (`reasondistill train --method redi`), and the benchmark's smoke run.

The reference is written from the paper's formula: log pi(y|x) from a full-logits forward pass in float64, summed over
the completion tokens and divided by their count, independently of `redi.completion_logps` and of TRL's fused head."""
import json, math, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from reasondistill.records import Trace
from reasondistill.methods.redi import redi_loss, preference_pairs, REDITrainer, pair_batch, completion_logps

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent

def _toy_traces(probs):
    out = []
    for p in probs:
        good = f'<think>\n{p.question.split(": ")[-1]}\n</think>\nThe answer is {p.answer}.'
        bad = good.replace(f'is {p.answer}.', f'is {(int(p.answer) + 1) % 10}.')
        out += [Trace(p.id, 0, 'toy:teacher', '', good, answer=p.answer, verdict='correct', finish_reason='stop'),
                Trace(p.id, 1, 'toy:teacher', '', bad + ' (sure)', verdict='wrong', finish_reason='stop')]
    return out

def _reference_loss(model, tok, pairs, alpha):
    "−mean_i [log pi(y_w)/|y_w|] + alpha·mean_i [log pi(y_l)/|y_l|], one sequence at a time, float64 log-softmax."
    tot = 0.0
    for p in pairs:
        for key, sign in (('chosen', -1.0), ('rejected', alpha)):
            eos = tok.eos_token
            pi = tok(p['prompt'])['input_ids']; ids = tok(p['prompt'] + p[key] + eos)['input_ids']
            n0 = next(i for i, (x, y) in enumerate(zip(pi, ids)) if x != y) if any(x != y for x, y in zip(pi, ids)) else len(pi)
            x = torch.tensor([ids])
            lp = torch.log_softmax(model(input_ids=x).logits[0].double(), -1)
            tok_lp = [lp[t - 1, ids[t]] for t in range(n0, len(ids))]
            tot = tot + sign * sum(tok_lp) / len(tok_lp)
    return tot / len(pairs)

@pytest.mark.parametrize('alpha', [0.0, 0.8, 1.0])
def test_trainer_loss_and_gradients_match_definition(tmp_path, alpha):
    "REDITrainer.compute_loss (TRL collator + fused head) equals the formula, and so do the LoRA gradients."
    import trl, datasets
    from reasondistill.models import load_model, load_tokenizer, ModelSpec, LoraSpec, render_prompt
    from reasondistill.toyworld import toy_problems
    from reasondistill.train import TrainConfig, training_kwargs
    from reasondistill.methods.redi import preference_config, pairs_dataset
    probs = toy_problems(1, [1, 3, 5], split='train')
    tok = load_tokenizer('toy:student')
    pairs, _ = preference_pairs(_toy_traces(probs), probs, tok)
    torch.manual_seed(0)
    model, tok = load_model(ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8)), trainable=True)
    with torch.no_grad():                                  # non-zero adapters so that the gradients are generic
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    tok.padding_side = 'right'
    args = preference_config(TrainConfig(max_steps=1, batch_size=len(pairs)), tmp_path)
    tr = REDITrainer(model=model, args=args, train_dataset=pairs_dataset(pairs), processing_class=tok, alpha=alpha)
    assert 'ref' not in model.peft_config                  # reference-free
    batch = next(iter(tr.get_train_dataloader()))
    params = [p for p in model.parameters() if p.requires_grad]
    got = tr.compute_loss(model, batch)
    g_got = torch.autograd.grad(got, params)
    ref = _reference_loss(model, tok, pairs, alpha)
    g_ref = torch.autograd.grad(ref, params)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    for a, b in zip(g_got, g_ref): torch.testing.assert_close(a.double(), b.double(), rtol=1e-4, atol=1e-6)
    if alpha == 0.0:                                       # alpha = 0: exactly the per-sequence-mean SFT loss on the positives
        sft = -sum(_reference_loss(model, tok, [dict(p, rejected=p['chosen'])], 0.0) for p in pairs) / len(pairs)
        assert got.item() == pytest.approx(-sft.item(), rel=1e-5)

def test_completion_logps_match_trl_fused_head():
    "The probe's log-probs (hidden states through the head) equal TRL's fused-head log-probs on the same batch."
    from trl.trainer.utils import add_fused_lm_head
    from reasondistill.models import load_model, render_prompt
    model, tok = load_model('toy:student')
    b = pair_batch(tok, [dict(prompt=render_prompt(tok, 'Compute left to right, mod 10: 2+3'), chosen='<think>\n2+3=5\n</think>\nThe answer is 5.',
                              rejected='<think>\n</think>\nThe answer is 1.')])
    lp, m = completion_logps(model, b)
    add_fused_lm_head(model)
    with torch.no_grad(): fused = model(input_ids=b['input_ids'], attention_mask=b['attention_mask'], labels=b['labels'], fused_lm_head=True).log_probs
    torch.testing.assert_close(lp, fused * m, atol=1e-5, rtol=1e-5)

def test_pairs_from_a_real_tracestore(tmp_path):
    "Teacher samples through generate_traces: every pair's chosen is verified correct and its rejected is not."
    from reasondistill.models import load_model, load_tokenizer
    from reasondistill.toyworld import toy_problems
    from reasondistill.traces import generate_traces
    from reasondistill.tracestore import TraceStore
    from reasondistill.rollout import SamplingParams
    probs = toy_problems(3, [7, 8], split='train')
    teacher, ttok = load_model('toy:teacher')
    generate_traces(probs, teacher, ttok, tmp_path / 'tr', n_samples=4, params=SamplingParams(temperature=1.0, max_new_tokens=256, seed=0))
    with TraceStore(tmp_path / 'tr', readonly=True) as st: traces = list(st)
    pairs, stats = preference_pairs(traces, probs, load_tokenizer('toy:student'))
    by = {(t.problem_id, t.sample_idx): t for t in traces}
    for p in pairs:
        assert by[(p['problem_id'], p['chosen_idx'])].verdict == 'correct'
        assert by[(p['problem_id'], p['rejected_idx'])].verdict != 'correct'
    assert stats['pairs'] + stats['problems_dropped'] == len(probs)
    assert stats['traces_seen'] == len(traces) == 24

def test_cli_train_redi(tmp_path):
    "`reasondistill train --method redi` builds stage 1, then stage 2; a given stage-1 adapter is reused."
    from reasondistill.cli import main
    from reasondistill.tracestore import TraceStore
    from reasondistill.toyworld import toy_problems
    probs = toy_problems(2, [1, 3, 6], split='train')
    with TraceStore(tmp_path / 'traces') as st: st.append(_toy_traces(probs))
    common = ['--traces', str(tmp_path / 'traces'), '--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2']
    main(['train', '--method', 'redi', '--out', str(tmp_path / 'r'), *common, '--set', 'alpha=1.0', 'max_steps=2', 'lr=0.01'])
    res = json.loads((tmp_path / 'r' / 'two_stage.json').read_text())
    assert res['pairs']['pairs'] == 6 and res['stage1']['global_step'] == 2 and res['stage2']['global_step'] == 2
    assert res['stage2']['alpha'] == 1.0 and res['stage2']['config']['lr'] == 0.01 and res['stage2']['method'] == 'redi'
    assert res['stage2']['config']['train']['lr'] == 0.01                           # the stage-2 run's own hyper-parameters
    assert res['stage1']['config']['train']['lr'] == 2e-3                           # stage 1: the CLI's --lr default
    assert res['stage2']['start_adapter'] == res['stage1']['final'] and res['final'] == res['stage2']['final']
    log = json.loads((tmp_path / 'r' / 'stage2' / 'train_log.json').read_text())
    assert any(e.get('learning_rate', 0) > 0.005 for e in log)                      # lr reached the stage-2 trainer
    main(['train', '--method', 'redi', '--out', str(tmp_path / 'r2'), *common, '--set', 'max_steps=1',
          f"sft_adapter={res['stage1']['final']}"])
    res2 = json.loads((tmp_path / 'r2' / 'two_stage.json').read_text())
    assert 'stage1' not in res2 and res2['stage2']['start_adapter'] == res['stage1']['final']
    assert res2['stage2']['config']['train']['lr'] == pytest.approx(2e-4)          # default stage-2 lr: stage-1 lr / 10
    with pytest.raises(FileNotFoundError, match='holds no adapter'):
        main(['train', '--method', 'redi', '--out', str(tmp_path / 'r3'), *common, '--set', f'sft_adapter={tmp_path}'])
    with pytest.raises(ValueError, match='alpha'):
        main(['train', '--method', 'redi', '--out', str(tmp_path / 'r4'), *common, '--set', 'alpha=2'])
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'redi', '--out', str(tmp_path / 'r5'), *common, '--set', 'redi.alpha=0.5'])

def test_cli_method_help(capsys):
    "`reasondistill train --method redi --help` lists the config: stage 1 (`train.*`) and the stage-2 fields with their docs."
    from reasondistill.cli import main
    main(['train', '--method', 'redi', '--help'])
    out = capsys.readouterr().out
    for key in ('train.lr', 'alpha', 'sft_adapter', 'probe_pairs', 'max_completion_tokens', 'per_problem'): assert f'    {key} ' in out, key
    assert 'weight of the negative term' in out and 'stage-1 lr / 10' in out

def test_config_validation():
    from reasondistill.methods.redi import REDIConfig
    from reasondistill.registry import make_config
    assert make_config('redi', ['alpha=0.5', 'train.lr=0.01']).alpha == 0.5
    for bad, msg in ((dict(alpha=-0.1), 'alpha'), (dict(lr=-1.0), 'lr'), (dict(max_steps=-1, epochs=0), 'epochs'),
                     (dict(probe_pairs=-1), 'probe'), (dict(per_problem=0), 'per_problem')):
        with pytest.raises(ValueError, match=msg): REDIConfig(**bad)

def _run(args, timeout=900):
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

@pytest.mark.slow   # ~30-50 s: the smoke run of a benchmark script (RD_RUN=slow); kept out of the 20-minute CI
def test_negatives_toy_benchmark_tiny(tmp_path):
    "The benchmark's smoke run writes every method's result and the report; a rerun trains nothing again."
    p = _run(['benchmarks/negatives_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'work'), '--out', str(tmp_path / 'neg')])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / 'neg.json').read_text())
    from importlib.util import spec_from_file_location, module_from_spec
    assert set(r['aggregate']) == {'sft-start', 'sft-cont', 'redi-a0.5', 'redi-a0.8', 'redi-a1.0', 'dpo', 'simpo', 'qcrd',
                                   'redi-a0.8-hi', 'redi-a1.0-hi', 'qcrd-nodisc', 'qcrd-pos'}
    assert {'probe/chosen_logps', 'probe/rejected_logps'} <= set(r['probe_curves']['redi-a1.0-hi'])
    assert set(r['pass_at_k_vs_sft_start']) == {'1', '2'} and 'redi-a0.8' in r['pass_at_k_vs_sft_start']['2']
    for ext in ('.md', '_by_level.png', '_pass_at_k.png', '_logps.png'): assert (tmp_path / f'neg{ext}').exists(), ext
    p = _run(['benchmarks/negatives_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'work'), '--out', str(tmp_path / 'neg2')])
    assert p.returncode == 0 and ' acc ' not in p.stdout.split('# Learning')[0]
