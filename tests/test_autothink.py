"AutoThink: the ellipsis prompt, mode detection, each stage's reward against the released reward manager, a toy run, the CLI."
import contextlib, io, json, math, random, re, statistics, tempfile
import pytest
import torch
from reasondistill.methods.autothink import (AutoThinkConfig, AutoThinkTrainer, ellipsis_prompt, think_mode, mode_shares,
                                             autothink_rewards, autothink_reward, train_autothink)
from reasondistill.train import TrainConfig

# ---- a reference written from the definition: the released code (verl main_ppo.RewardManager, deepscaler math_reward) ----
STAGE_SETTINGS = {1: dict(alpha=0.0, beta=0.0, rate=0.5), 2: dict(alpha=0.0, beta=0.0, rate=1.0), 3: dict(alpha=0.05, beta=0.05, rate=1.0)}

def _released_base(think, correct, formatted):
    "RewardMathFn: format error 0; think 1 / 0; no-think 2 / -1."
    if not formatted: return 0.0
    if correct: return 1.0 if think else 2.0
    return 0.0 if think else -1.0

def _released_reweight(rewards, lengths, indices, think_flags, is_correct_flags, alpha, beta, rate, slope=2.0):
    "RewardManager._reweight_rewards, line by line in plain Python: length z-scores per group, then batch balancing."
    rewards = list(rewards)
    for qid in set(indices):
        group = [i for i, idx in enumerate(indices) if idx == qid]
        pos = [i for i in group if is_correct_flags[i]]
        neg = [i for i in group if not is_correct_flags[i]]
        if len(pos) > 1:
            m, sd = statistics.mean(lengths[i] for i in pos), max(statistics.stdev([lengths[i] for i in pos]), 1e-6)
            for i in pos: rewards[i] += -1 + math.exp(-alpha * (lengths[i] - m) / sd)
        if len(neg) > 1:
            m, sd = statistics.mean(lengths[i] for i in neg), max(statistics.stdev([lengths[i] for i in neg]), 1e-6)
            for i in neg: rewards[i] += 1 - math.exp(-beta * (lengths[i] - m) / sd)
    n = len(rewards); think_rate = sum(think_flags) / n; no_think_rate = 1 - think_rate
    if think_rate > rate:
        f = max(0.0, min(1.0, (think_rate - rate) * slope))
        for i in range(n):
            if think_flags[i]: rewards[i] = (1 - f) * rewards[i] + f * (0.0 if is_correct_flags[i] else -1.0)
    if no_think_rate > rate:
        f = max(0.0, min(1.0, (no_think_rate - rate) * slope))
        for i in range(n):
            if not think_flags[i]: rewards[i] = (1 - f) * rewards[i] + f * (1.0 if is_correct_flags[i] else -2.0)
    return rewards

def _reference(stage, think, correct, formatted, lengths, groups):
    correct = [c and f for c, f in zip(correct, formatted)]
    base = [_released_base(t, c, f) for t, c, f in zip(think, correct, formatted)]
    return _released_reweight(base, lengths, groups, think, correct, **STAGE_SETTINGS[stage])

# ---------------------------------------------------------------------------------------------------------------------------

def test_config_validation():
    c = AutoThinkConfig()
    assert (c.stage, c.ellipsis, c.num_generations, c.temperature, c.balance_rate, c.balance_slope, c.length_alpha, c.length_beta) == \
           (1, '...', 8, 0.6, 0.5, 2.0, 0.05, 0.05)
    with pytest.raises(ValueError, match='stage'): AutoThinkConfig(stage=0)
    with pytest.raises(ValueError, match='one line'): AutoThinkConfig(ellipsis='a\nb')
    with pytest.raises(ValueError, match='think tag'): AutoThinkConfig(ellipsis='</think>')
    with pytest.raises(ValueError, match='balance_rate'): AutoThinkConfig(balance_rate=0)
    with pytest.raises(ValueError, match='replaces'): AutoThinkConfig(length_weight=1.0)
    with pytest.raises(ValueError, match='must divide'): AutoThinkConfig(train=TrainConfig(batch_size=4))   # G = 8

def test_ellipsis_prompt_and_mode_detection():
    from reasondistill.models import load_tokenizer, render_prompt
    tok = load_tokenizer('toy:student')
    p = render_prompt(tok, 'Compute left to right, mod 10: 3+4')
    assert ellipsis_prompt(p) == p + '<think>\n...\n' and ellipsis_prompt(p, '') == p + '<think>\n'
    assert ellipsis_prompt('<｜Assistant｜><think>\n') == '<｜Assistant｜><think>\n...\n'          # the template opened it
    cases = {'</think>\n\nThe answer is 7.': 'no_think', '  </think>The answer is 7.': 'no_think',
             '<think>\n</think>\nThe answer is 7.': 'no_think',                               # the toy answer-only format
             '<think>\n...\n</think>\nThe answer is 7.': 'no_think', '...\n</think>\nx': 'no_think',
             '3+4=7\n</think>\nThe answer is 7.': 'think', 'Okay.\n</think>\nThe answer is 7.': 'think',
             '3+4=7': 'think', '': 'think', '....\n</think>': 'think'}
    assert {c: think_mode(c) for c in cases} == cases
    assert think_mode('...\n</think>\nx', ellipsis='') == 'think'
    assert mode_shares(list(cases)) == dict(think=0.5, no_think=0.5, unclosed=0.2, n=10)
    with pytest.raises(ValueError, match='at least one'): mode_shares([])

@pytest.mark.parametrize('stage', [1, 2, 3])
def test_stage_rewards_match_the_released_code(stage):
    "Random batches (mode shares from collapsed to balanced, ties, groups with a single right or wrong answer) vs the transcription."
    rng = random.Random(stage)
    for trial in range(60):
        G, n_groups = rng.choice([2, 4, 8]), rng.randint(1, 5)
        p_think = rng.choice([0.0, 0.2, 0.5, 0.6, 0.9, 1.0])
        N = G * n_groups
        think = [rng.random() < p_think for _ in range(N)]
        formatted = [rng.random() < 0.85 for _ in range(N)]
        correct = [rng.random() < 0.5 for _ in range(N)]
        lengths = [rng.choice([5, 5, 12, 40, rng.randint(1, 300)]) for _ in range(N)]
        groups = [i // G for i in range(N)]
        mine, _ = autothink_rewards(think, correct, formatted, lengths, groups, stage=stage)
        ref = _reference(stage, think, correct, formatted, lengths, groups)
        assert mine.dtype == torch.float32
        assert torch.allclose(mine, torch.tensor(ref, dtype=torch.float32), atol=1e-5), (trial, mine.tolist(), ref)

COMPS = [  # (completion, gold, think, right, formatted): hand-labelled
    ('</think>\nThe answer is 7.', '7', False, True, True),
    ('</think>\nThe answer is 3.', '7', False, False, True),
    ('3+4=7\n</think>\nThe answer is 7.', '7', True, True, True),
    ('3+4=7\ncheck 3+4=7 ok\nso 3+4 gives 7\n</think>\nThe answer is 7.', '7', True, True, True),
    ('2*3=5\n</think>\nThe answer is 5.', '6', True, False, True),
    ('2*3=6\nThe answer is 6.', '6', True, False, False),                     # the think block never closed: a format error
    ('</think>\nI do not know.', '6', False, False, False),                    # no answer
    ('2*3=6 | +0\n6+0=6\n</think>\nThe answer is 6.', '6', True, True, True),
]

@pytest.mark.parametrize('stage', [1, 2, 3])
def test_reward_function_on_hand_made_completions(stage):
    "The TRL reward function reads modes, verdicts and lengths from the text; the reference takes the hand labels."
    cfg = AutoThinkConfig(train=TrainConfig(batch_size=8), num_generations=4, stage=stage)
    f = autothink_reward(cfg)
    prompts = ['p'] * 4 + ['q'] * 4
    ids = [[0] * (len(c) // 3) for c, *_ in COMPS]                                   # lengths in "tokens"
    logged = {}
    got = f(prompts, [c for c, *_ in COMPS], ids, answer=[g for _, g, *_ in COMPS], log_metric=logged.__setitem__)
    ref = _reference(stage, [t for *_, t, _, _ in COMPS], [r for *_, r, _ in COMPS], [x for *_, x in COMPS],
                     [len(i) for i in ids], [i // 4 for i in range(8)])
    assert got == pytest.approx(ref, abs=1e-5)
    assert logged['autothink/think_share'] == 5 / 8 and logged['autothink/accuracy'] == 4 / 8 and logged['autothink/unclosed_share'] == 1 / 8
    assert ('autothink/balance_think' in logged) == (stage == 1)
    if stage == 1: assert logged['autothink/balance_think'] == 0.25 and logged['autothink/balance_no_think'] == 0.0
    with pytest.raises(ValueError, match='group'): f(['p'] * 3 + ['q'] * 5, [c for c, *_ in COMPS], ids, answer=['7'] * 8)
    with pytest.raises(ValueError, match='whole groups'): f(['p'] * 6, [c for c, *_ in COMPS][:6], ids[:6], answer=['7'] * 6)

def test_think_tags_marked_special(tmp_path):
    "A tokenizer whose think tags are special tokens: TRL's text loses `</think>`; the reward decodes the ids and keeps it."
    from reasondistill.standins import build_tokenizer
    tok = build_tokenizer(tmp_path, template='r1', think_special=True)
    comps = ['</think>\nThe answer is 7.', '7\n</think>\nThe answer is 7.']
    ids = [tok(c, add_special_tokens=False)['input_ids'] for c in comps]
    trl_text = tok.batch_decode(ids, skip_special_tokens=True)                  # what TRL hands to reward functions
    assert '</think>' not in trl_text[0]
    f = autothink_reward(AutoThinkConfig(train=TrainConfig(batch_size=2), num_generations=2, stage=2), tok)
    assert f(['p', 'p'], trl_text, ids, answer=['7', '7']) == [2.0, 1.0]
    assert autothink_reward(AutoThinkConfig(train=TrainConfig(batch_size=2), num_generations=2, stage=2))(
        ['p', 'p'], trl_text, ids, answer=['7', '7']) == [0.0, 0.0]                # without the tokenizer: two format errors
    prompt = tok.apply_chat_template([{'role': 'user', 'content': 'q'}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith('<think>\n') and ellipsis_prompt(prompt) == prompt + '...\n'    # R1 template: only the ellipsis line

def test_toy_run_two_steps(tmp_path):
    "Two GRPO steps of stage 3 on the toy student: AutoThink's reward alone, the ellipsis prompts, the logged shares."
    from reasondistill.core import read_json
    from reasondistill.toyworld import toy_problems
    from reasondistill.train import Run, default_student_spec
    seen = {}
    class Spy(AutoThinkTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.update(names=self.reward_func_names, weights=self.reward_weights.tolist(), prompt=self.train_dataset[0]['prompt'])
    from reasondistill.methods.grpo import train_grpo
    cfg = AutoThinkConfig(train=TrainConfig(max_steps=2, batch_size=8, logging_steps=1, save_steps=50), num_generations=4,
                          max_new_tokens=16, stage=3, ellipsis='')
    s = train_grpo(toy_problems(2, levels=[1, 2], split='train'),
                   Run(str(tmp_path / 'a'), default_student_spec(quant='none', r=4)), cfg, 'autothink',
                   trainer_cls=Spy, trainer_kw=dict(autothink=cfg))
    assert s['global_step'] == 2 and seen['names'] == ['autothink'] and seen['weights'] == [1.0]
    assert seen['prompt'].endswith('<|im_start|>assistant\n<think>\n')
    log = [e for e in read_json(tmp_path / 'a' / 'train_log.json') if 'reward' in e]
    assert len(log) == 2 and all(0 <= e['autothink/think_share'] <= 1 and 'rewards/autothink/mean' in e for e in log)
    # the API: a finished run is served from its summary, with the first and last think share and accuracy added
    s2 = train_autothink(toy_problems(2, levels=[1], split='train'), Run(str(tmp_path / 'b'), default_student_spec(quant='none', r=4)),
                         AutoThinkConfig(train=TrainConfig(max_steps=1, batch_size=4, logging_steps=1), num_generations=2,
                                         max_new_tokens=8, ellipsis=''))
    assert s2['global_step'] == 1 and {'think_share_first', 'think_share_last', 'accuracy_first', 'accuracy_last'} <= set(s2)
    assert json.loads((tmp_path / 'b' / 'train_done.json').read_text())['think_share_last'] == s2['think_share_last']

def test_cli_trains_one_step(tmp_path):
    from reasondistill.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(['train', '--method', 'autothink', '--problems', 'toy:train:2:1-2', '--out', str(tmp_path / 'x'), '--student', 'toy:student',
              '--quant', 'none', '--max-steps', '1', '--batch-size', '4', '--lora-r', '4',
              '--set', 'num_generations=4', 'max_new_tokens=16', 'stage=2', 'ellipsis=""'])
    out = buf.getvalue()
    assert re.search(r'autothink: trained 1 steps', out), out[-1500:]
    done = json.loads((tmp_path / 'x' / 'train_done.json').read_text())
    assert done['method'] == 'autothink' and done['config']['stage'] == 2 and done['config']['ellipsis'] == '' and done['gen_sequences'] == 4
