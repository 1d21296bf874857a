"GRPO on TRL's GRPOTrainer: config checks, verifier rewards, the project rollout's seeding, a CLI run with resume, and TRL's options."
import contextlib, io, json, re, shutil
from pathlib import Path
import pytest
from reasondistill.methods.grpo import (GRPOMethodConfig, grpo_rewards, overlong_penalty, grpo_dataset, ProjectRollout, grpo_args)
from reasondistill.train import TrainConfig

def test_config_validation():
    with pytest.raises(ValueError, match='must divide'): GRPOMethodConfig(num_generations=3)       # 16 completions per step
    with pytest.raises(ValueError, match='>= 2'): GRPOMethodConfig(num_generations=1)
    with pytest.raises(ValueError, match='loss_type'): GRPOMethodConfig(loss_type='ppo')
    with pytest.raises(ValueError, match='scale_rewards'): GRPOMethodConfig(scale_rewards='std')
    with pytest.raises(ValueError, match='reward weight'): GRPOMethodConfig(correct_weight=0, format_weight=0)
    with pytest.raises(ValueError, match='delta'): GRPOMethodConfig(delta=0.5)
    assert GRPOMethodConfig(train=TrainConfig(batch_size=6), num_generations=3).num_generations == 3

def test_rewards_from_the_verifier():
    fs, ws = grpo_rewards(GRPOMethodConfig(length_weight=1.0, max_new_tokens=40, length_buffer=10))
    comps = ['<think>\n2*3=6\n</think>\nThe answer is 6.', '<think>\n</think>\nThe answer is 5.', '<think>\n2*3=6', 'no idea']
    gold = ['6'] * 4
    assert [f.__name__ for f in fs] == ['correct', 'format', 'length'] and ws == [1.0, 0.1, 1.0]
    assert fs[0](None, comps, answer=gold) == [1.0, 0.0, 0.0, 0.0]
    assert fs[1](None, comps, answer=gold) == [1.0, 1.0, 0.0, 0.0]
    assert [overlong_penalty(n, 40, 10) for n in (0, 30, 35, 40, 50)] == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert [f.__name__ for f in grpo_rewards(GRPOMethodConfig())[0]] == ['correct', 'format']     # length off by default
    math = grpo_rewards(GRPOMethodConfig(verifier='math'))[0][0]
    assert math(None, ['<think>\nok\n</think>\nThe answer is $\\frac{1}{2}$.'], answer=['0.5']) == [1.0]

def test_trl_options_reach_grpo_config(tmp_path):
    c = GRPOMethodConfig(train=TrainConfig(batch_size=8, max_steps=3), num_generations=8, loss_type='dr_grpo', scale_rewards='none',
                         mask_truncated_completions=True, epsilon_high=0.28, beta=0.01, max_new_tokens=77)
    a = grpo_args(c, tmp_path)
    assert (a.loss_type, a.scale_rewards, a.mask_truncated_completions, a.epsilon, a.epsilon_high, a.beta) == \
           ('dr_grpo', 'none', True, 0.2, 0.28, 0.01)
    assert (a.num_generations, a.max_completion_length, a.per_device_train_batch_size, a.max_steps, a.reward_weights) == (8, 77, 8, 3, [1.0, 0.1])
    assert grpo_args(GRPOMethodConfig(), tmp_path).epsilon_high == 0.2        # 0 means: the same as epsilon

def test_project_rollout_seeds_the_group():
    from reasondistill.models import load_model, ModelSpec
    from reasondistill.toyworld import toy_problems
    m, tok = load_model(ModelSpec('toy:student'))
    ds = grpo_dataset(toy_problems(1, levels=[2], split='train'), tok)
    class T:
        model, processing_class = m, tok
        class state: global_step = 3
    a = ProjectRollout(GRPOMethodConfig(max_new_tokens=16))([ds[0]['prompt']] * 6, T)
    assert len({tuple(c) for c in a['completion_ids']}) > 1                                      # different seeds in one group
    assert ProjectRollout(GRPOMethodConfig(max_new_tokens=16))([ds[0]['prompt']] * 6, T)['completion_ids'] == a['completion_ids']
    assert a['prompt_ids'][0] == tok(ds[0]['prompt'], add_special_tokens=False)['input_ids'] and tok.padding_side == 'left'
    with pytest.raises(ValueError, match='gold answer'): grpo_dataset([dict(question='q', answer='')], tok)

def _train(out, *extra):
    from reasondistill.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(['train', '--method', 'grpo', '--problems', 'toy:train:2:1,2', '--out', str(out), '--max-steps', '2', '--batch-size', '4',
              '--quant', 'none', '--lora-r', '4', '--set', 'num_generations=4', 'max_new_tokens=24', 'train.save_steps=1',
              'train.logging_steps=1', *extra])
    return buf.getvalue()

def test_cli_trains_logs_and_resumes(tmp_path):
    out = _train(tmp_path / 'g', 'loss_type="grpo"', 'scale_rewards="none"')
    assert re.search(r'grpo: trained 2 steps', out), out[-1500:]
    done = json.loads((tmp_path / 'g' / 'train_done.json').read_text())
    assert done['config']['loss_type'] == 'grpo' and done['config']['verifier'] == 'toy' and done['gen_sequences'] == 8
    assert 0 < done['gen_share'] < 1 and (Path(done['final']) / 'adapter_config.json').exists()
    log = [e for e in json.loads((tmp_path / 'g' / 'train_log.json').read_text()) if 'reward' in e]
    assert len(log) == 2 and all(k in log[0] for k in ('reward_std', 'rewards/correct/mean', 'rewards/format/mean',
                                                       'clip_ratio/region_mean', 'completions/mean_length', 'frac_reward_zero_std'))
    shutil.rmtree(tmp_path / 'g' / 'checkpoint-2'); (tmp_path / 'g' / 'train_done.json').unlink()
    assert 'trained 2 steps' in _train(tmp_path / 'g', 'loss_type="grpo"', 'scale_rewards="none"')
    assert json.loads((tmp_path / 'g' / 'train_done.json').read_text())['resumed_from'].endswith('checkpoint-1')

def test_trl_sampler_and_api(tmp_path):
    "rollout='trl' (TRL's own generate) trains too; the API takes dicts with a question and an answer."
    from reasondistill.methods.grpo import train_grpo
    from reasondistill.train import Run, default_student_spec
    cfg = GRPOMethodConfig(train=TrainConfig(max_steps=1, batch_size=4, logging_steps=1), num_generations=4, max_new_tokens=16, rollout='trl')
    data = [dict(question='What is 3+4 (mod 10)?', answer='7', id='a'), dict(question='What is 2*3 (mod 10)?', answer='6', id='b')]
    s = train_grpo(data, Run(str(tmp_path / 'r'), default_student_spec(quant='none', r=4)), cfg)
    assert s['global_step'] == 1 and 'gen_share' not in s and s['reward_first'] is not None
