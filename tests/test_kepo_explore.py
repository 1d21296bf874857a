"""KEPO's exploration (`kepo-explore`): the hinted replacement only touches groups where every rollout fails, the gated
term is zero without a passing rollout, and the method trains from the CLI with and without its teacher."""
import json
from types import SimpleNamespace
import pytest
import torch
from reasondistill.methods.kepo_explore import KEPOExploreConfig, HintedRollout, HINT_TEMPLATES, hint_prompt
from reasondistill.models import load_tokenizer, render_prompt, decode_completion
from reasondistill.rollout import Completion
from reasondistill.toyworld import toy_problems, reference_solutions
from reasondistill.train import TrainConfig
from tests._cli import run_cli

def _fake(right_for):
    "A sampler answering `right_for(prompt, prompt index, sample index)` (None: a wrong answer)."
    def gen(model, tok, prompts, params, **kw):
        out = []
        for i, pr in enumerate(prompts):
            cs = []
            for j in range(params.n):
                ans = right_for(pr, i, j)
                text = f'<think>\n</think>\nThe answer is {ans if ans is not None else "none"}.'
                cs.append(Completion(text, tok(text, add_special_tokens=False)['input_ids'], 0, 'stop'))
            out.append(cs)
        return out
    return gen

def test_groups_with_a_success_are_left_alone_and_failed_ones_get_at_most_k():
    tok = load_tokenizer('toy:student')
    probs = toy_problems(3, levels=[2], split='train'); refs = reference_solutions(probs)
    gold = {render_prompt(tok, p.question): p.answer for p in probs}
    table = {render_prompt(tok, p.question): dict(question=p.question, answer=p.answer, reference=refs[p.id]) for p in probs}
    def right(pr, i, j):   # the third rollout of problem 0 is right; a hinted prompt: its first sample only
        if 'Partial solution' in pr: return next(p.answer for p in probs if p.question in pr) if j == 0 else None
        return gold[pr] if i == 2 else None
    cfg = KEPOExploreConfig(num_generations=4, num_enhanced=3, max_attempts=2, train=TrainConfig(batch_size=4))
    prompts = [render_prompt(tok, p.question) for p in probs for _ in range(4)]
    roll = HintedRollout(cfg, table, HINT_TEMPLATES['toy'], generate_fn=_fake(right))
    out = roll(prompts, SimpleNamespace(model=None, processing_class=tok, state=SimpleNamespace(global_step=0)))
    ok = [f'is {a}.' in decode_completion(tok, c) for a, c in zip([p.answer for p in probs for _ in range(4)], out['completion_ids'])]
    assert ok[:4] == [False, False, True, False]              # a group with a success: untouched
    assert ok[4:8] == [False, False, True, True] and ok[8:] == [False, False, True, True]   # 2 attempts x 1 success each
    assert roll.stats == dict(groups=3, failed_groups=2, rescued_groups=2, replaced=4, hinted_samples=2 * 2 * 3)

def test_hint_reveals_a_prefix_of_the_reference():
    tok = load_tokenizer('toy:student')
    ref = '<think>\na\nb\nc\nd\n</think>\nThe answer is 1.'
    hp = hint_prompt(tok, 'Q?', ref, 0.5, HINT_TEMPLATES['toy'])
    assert 'Partial solution:\na\nb<|im_end|>' in hp and 'c' not in hp.split('Partial solution:')[1]
    assert 'a<|im_end|>' in hint_prompt(tok, 'Q?', ref, 0.1, HINT_TEMPLATES['toy'])   # at least one line

def test_cli_trains_kepo_explore(tmp_path, gate=1.0):
    args = ['train', '--method', 'kepo-explore', '--problems', 'toy:train:2:2-3', '--out', str(tmp_path / 'x'), '--student', 'toy:student',
            '--quant', 'none', '--max-steps', '1', '--batch-size', '8', '--lora-r', '4',
            '--set', 'num_generations=4', 'max_new_tokens=24', f'gate_weight={gate}', 'max_attempts=1', 'train.logging_steps=1']
    if gate: args[args.index('--student'):args.index('--student')] = ['--teacher', 'toy:teacher']
    code, out, err = run_cli(args)
    assert code == 0, err
    done = json.loads((tmp_path / 'x' / 'train_done.json').read_text())
    assert done['method'] == 'kepo-explore' and done['config']['gate_weight'] == gate
    assert done['kepo_groups'] == 2 and done['kepo_failed_groups'] <= 2
    log = json.loads((tmp_path / 'x' / 'train_log.json').read_text())
    assert any('kepo/gated_jsd' in e for e in log) == bool(gate)

def test_the_gate_needs_a_teacher(tmp_path):
    from reasondistill.methods.kepo_explore import train_kepo_explore
    from reasondistill.train import Run, default_student_spec
    with pytest.raises(ValueError, match='needs a teacher'):
        train_kepo_explore(toy_problems(1, levels=[2], split='train'), Run(str(tmp_path / 'y'), default_student_spec()), KEPOExploreConfig())
