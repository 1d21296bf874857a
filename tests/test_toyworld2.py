"""Toy world v2: no evaluation problem in any training generator, the shipped models and their recorded checksums, the
tool channel through the shipped teacher, and the `toy2:` names on the CLI."""
import json
from pathlib import Path
import pytest
from reasondistill import toyworld2 as w
from tests._cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / 'benchmarks' / 'results' / 'toy2_build' / 'build_report.json'

def test_no_evaluation_problem_in_any_training_generator():
    "Every v2 generator (three teachers, the student bases) and v1's teacher corpus, which every v2 model starts from."
    leaks = w.generator_leaks(800)
    assert set(leaks) == {*w.TEACHERS, 'student', 'v1-teacher'}
    assert leaks == {k: 0 for k in leaks}

def test_the_leak_check_finds_v1_students_drills():
    "The same check on v1's student corpus (which drills held-out level-1 facts; v2 does not start from it) finds leaks."
    assert w.generator_leaks(500, kinds=('v1-student',))['v1-student'] > 0

def test_every_split_disjoint_across_families_and_levels():
    test, dev, train = (w.toy2_problems(10**4 if s != 'train' else 60, s, families=('chain', 'var', 'unanswerable')) +
                        w.toy2_problems(200, s, families=('tool',)) for s in ('test', 'dev', 'train'))
    q = lambda ps: {p.question for p in ps}
    assert not q(test) & q(dev) and not q(train) & (q(test) | q(dev))
    held = w.held_out_keys()
    # every held-out problem, posed in a training document, would be caught by the leak check
    assert all(any(w.is_held_out(k, held) for k in w.posed_problems(f'<|im_start|>user\n{p.question}<|im_end|>')) for p in test + dev)

@pytest.mark.skipif(not BUILD.exists(), reason='no committed v2 build report')
def test_shipped_models_match_the_build_report():
    rep = json.loads(BUILD.read_text())
    assert set(rep['models']) == set(w.V2_MODELS)
    for name, m in rep['models'].items():
        assert w.weights_sha256(w.toy2_asset_dir() / name) == m['sha256'], name
        cfg = json.loads((w.toy2_asset_dir() / name / 'config.json').read_text())
        assert cfg['max_position_embeddings'] == w.CONTEXT_LEN2 and cfg['architectures'] == [m['arch']]

def test_tool_channel_runs_the_calls_of_the_shipped_teacher():
    "Every result in a sampled trace is the calculator's answer to the call before it; tokens of results are not the model's."
    from reasondistill.models import render_prompt
    from reasondistill.rollout import SamplingParams
    import re
    model, tok = w.load_toy2_model('teacher-concise')
    ps = w.toy2_problems(6, 'dev', families=('tool',))
    outs = w.generate_with_tools(model, tok, [render_prompt(tok, p.question) for p in ps], SamplingParams(n=2, max_new_tokens=120), desc=None)
    pairs = [(c, r) for cs in outs for c0 in cs for c, r in re.findall(r'<calc>(.*?)</calc>\n<result>(.*?)</result>', c0.text)]
    assert pairs and all(w.calculator(c) == r for c, r in pairs)
    assert sum(c.tool_calls for cs in outs for c in cs) == len(pairs)
    assert all(len(tok.decode(c.token_ids)) < len(c.text) for cs in outs for c in cs if c.tool_calls)
    for c in (c for cs in outs for c in cs):   # the segments: the model's tokens in order, and the whole text
        assert [t for ids, m in c.segments if m for t in ids] == list(c.token_ids)
        assert tok.decode([t for ids, _ in c.segments for t in ids], skip_special_tokens=True) == c.text
        assert sum(not m for _, m in c.segments) == c.tool_calls

def test_cli_evaluates_a_v2_model_on_v2_problems(tmp_path):
    "`eval` on toy2 names: the toy verifier, v2 defaults, and the calculator run on tool problems (--tools auto)."
    import re
    from reasondistill.tracestore import TraceStore
    code, out, err = run_cli(['eval', '--model', 'toy2:teacher-concise', '--problems', 'toy2:test:2:chain,tool', '--limit', '20',
                              '--n', '1', '--out', str(tmp_path / 'e')])
    assert code == 0, err
    run = json.loads((tmp_path / 'e' / 'run.json').read_text())
    assert run['tools'] == 'calc' and run['max_new_tokens'] == 512 and run['verifier'] == 'toy'
    with TraceStore(tmp_path / 'e' / 'samples', readonly=True) as st: ts = list(st)
    assert len(ts) == 20 and all(t.sampling['tools'] == 'calc' for t in ts)
    calls = [(c, r) for t in ts for c, r in re.findall(r'<calc>(.*?)</calc>\n<result>(.*?)</result>', t.completion)]
    assert calls and all(w.calculator(c) == r for c, r in calls)
    code, out, err = run_cli(['eval', '--model', 'toy2:teacher-concise', '--problems', 'toy2:test:1:tool', '--tools', 'none',
                              '--n', '1', '--out', str(tmp_path / 'e2')])
    assert code == 0, err
    with TraceStore(tmp_path / 'e2' / 'samples', readonly=True) as st: assert all('tools' not in t.sampling for t in st)

def test_grpo_rollouts_run_the_tool_and_mask_its_results():
    "GRPO's project rollouts with `tools='calc'`: the completion holds the model's tokens and the results, env_mask 0 exactly on the results."
    from types import SimpleNamespace
    from reasondistill.methods.grpo import GRPOMethodConfig, ProjectRollout
    from reasondistill.models import render_prompt
    from reasondistill.train import TrainConfig
    model, tok = w.load_toy2_model('teacher-concise')
    ps = w.toy2_problems(4, 'dev', families=('tool',))
    roll = ProjectRollout(GRPOMethodConfig(tools='calc', num_generations=2, max_new_tokens=96, train=TrainConfig(batch_size=2)))
    out = roll([render_prompt(tok, p.question) for p in ps], SimpleNamespace(model=model, processing_class=tok, state=SimpleNamespace(global_step=0)))
    masked = [tok.decode([t for t, m in zip(c, e) if not m]) for c, e in zip(out['completion_ids'], out['env_mask'])]
    assert any(masked) and all(len(c) == len(e) for c, e in zip(out['completion_ids'], out['env_mask']))
    import re
    for c, e, mtext in zip(out['completion_ids'], out['env_mask'], masked):
        full = tok.decode(c)
        assert mtext == ''.join(re.findall(r'\n<result>[^<]*</result>\n', full))   # the masked tokens are exactly the results

def test_cli_trains_acereason_stages(tmp_path):
    code, out, err = run_cli(['train', '--method', 'acereason', '--student', 'toy2:student', '--problems', 'toy2:train:2:chain,tool',
                              '--quant', 'none', '--lora-r', '4', '--out', str(tmp_path / 'a'), '--max-steps', '2', '--batch-size', '4',
                              '--set', 'num_generations=2', 'stages=chain:16,tool:24', 'train.logging_steps=1'])
    assert code == 0, err
    done = json.loads((tmp_path / 'a' / 'train_done.json').read_text())
    assert [(s['domain'], s['max_new_tokens'], s['steps']) for s in done['stages']] == [('chain', 16, 1), ('tool', 24, 1)]
    assert (tmp_path / 'a' / 'final' / 'adapter_config.json').exists()
    run2 = json.loads((tmp_path / 'a' / 'stage2-tool-24' / 'train_done.json').read_text())
    assert run2['config']['tools'] == 'calc' and run2['config']['max_new_tokens'] == 24
