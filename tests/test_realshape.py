"""The real-shaped lane (issue 13, point 3): tiny random-weight Qwen2 / Qwen3 / Llama models with a byte-level BPE
tokenizer, ChatML or Llama-3 templates and an embedding padded beyond the tokenizer (built by `tests/realshape.py`),
run through the same code paths as the toy models. Each test here pins a toy-only assumption that a real model breaks."""
import sys
from pathlib import Path
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realshape as rs
from reasondistill.models import load_model, load_tokenizer, render_prompt
from reasondistill.rollout import generate, SamplingParams

torch.set_num_threads(1)
ARCHS = ('qwen2', 'qwen3', 'llama')
QUESTIONS = ['What is 2+3?', 'Compute 7*8 mod 5.']


@pytest.fixture(scope='module')
def realshape(tmp_path_factory):
    "{arch: model folder}: tiny random-weight models, tokenizer ~530 ids in a 1,024-row embedding."
    root = tmp_path_factory.mktemp('realshape')
    return {arch: rs.build_model(root / arch, arch) for arch in ARCHS}


def test_fixture_shapes(realshape):
    for arch, path in realshape.items():
        model, tok = load_model(path, device='cpu')
        assert model.config.model_type == arch and model.config.vocab_size == rs.PADDED_VOCAB > len(tok) > 500
        assert model.get_output_embeddings().weight.shape[0] == rs.PADDED_VOCAB   # padded head rows, as real Qwen
        assert not path.startswith('toy:') and tok.chat_template and tok.eos_token_id is not None
        assert render_prompt(tok, 'q').endswith('assistant\n' if arch != 'llama' else '<|end_header_id|>\n\n')


@pytest.mark.parametrize('arch', ARCHS)
def test_generate_never_emits_padded_ids(realshape, arch):
    "Ids >= len(tokenizer) are embedding padding: an untrained (or barely trained) head gives them mass, and before the "
    "fix `generate` sampled them (~40% of tokens here), which crashed the on-policy teacher signal. Greedy and sampled."
    model, tok = load_model(realshape[arch], device='cpu')
    prompts = [render_prompt(tok, q) for q in QUESTIONS]
    for temp in (0.0, 1.0, 1.5):
        out = generate(model, tok, prompts, SamplingParams(n=2, temperature=temp, max_new_tokens=24, logprobs=True), desc=None)
        ids = [t for o in out for c in o for t in c.token_ids]
        assert ids and max(ids) < len(tok), (arch, temp, max(ids))
        assert all(lp > -1e30 for o in out for c in o for lp in c.logprobs)    # log-probs of emitted tokens stay finite


@pytest.mark.parametrize('method', ['gkd', 'opd'])
def test_onpolicy_step_with_padded_vocab(realshape, tmp_path, method):
    "One on-policy step (GKD with lmbda = 1: full JSD; OPD: the sampled-token signal), teacher and student both fixture "
    "Qwen2 models: before the fix the student's rollouts held padded ids, and OPD's teacher signal over len(tokenizer) "
    "ids failed with `index out of bounds`."
    from reasondistill.train import TrainConfig, FidelityConfig, Run
    from reasondistill.models import ModelSpec, LoraSpec
    from reasondistill.methods.gkd import GKDConfig, train_gkd
    from reasondistill.methods.opd import OPDConfig, train_opd
    tok = load_tokenizer(realshape['qwen2'])
    ex = [dict(prompt=render_prompt(tok, q), completion='') for q in QUESTIONS]
    Config, train = dict(gkd=(GKDConfig, train_gkd), opd=(OPDConfig, train_opd))[method]
    cfg = Config(train=TrainConfig(lr=1e-3, max_steps=1, batch_size=2, max_length=64, logging_steps=1, save_steps=10),
                    fidelity=FidelityConfig(heldout=0))
    cfg.rollout.lmbda, cfg.rollout.max_new_tokens = 1.0, 16
    run = Run(str(tmp_path / method), ModelSpec(realshape['qwen2'], lora=LoraSpec(r=4, alpha=8)), teacher=realshape['qwen2'])
    s = train(ex, run, cfg)
    assert s['global_step'] == 1


def test_tokenize_example_one_bos_llama3(realshape):
    "A Llama-3-style tokenizer adds <|begin_of_text|> in its chat template and again in its post-processor; KD/SFT "
    "tokenisation of a rendered prompt must keep exactly one (before the fix: two), and agree with `generate`'s encoding."
    from reasondistill.signals import tokenize_example
    tok = load_tokenizer(realshape['llama'])
    bos = tok.bos_token_id
    assert tok('x')['input_ids'][0] == bos                     # the post-processor does add BOS to raw text
    prompt = render_prompt(tok, 'What is 2+3?')
    assert prompt.startswith('<|begin_of_text|>')              # and the template writes it too
    r = tokenize_example(tok, prompt, '<think>\n2+3=5\n</think>\nThe answer is 5.')
    assert r['input_ids'].count(bos) == 1 and r['input_ids'][0] == bos
    n_prompt = r['completion_mask'].index(1)
    assert r['input_ids'][:n_prompt] == tok(prompt, add_special_tokens=False)['input_ids']   # what generate() feeds the model
    assert r['input_ids'][-1] == tok.eos_token_id and tok.decode(r['input_ids'][n_prompt:], skip_special_tokens=False).startswith('<think>')
    q = load_tokenizer(realshape['qwen2'])                      # a ChatML tokenizer without BOS is unchanged
    r = tokenize_example(q, render_prompt(q, 'q'), 'a')
    assert r['input_ids'] == q(render_prompt(q, 'q') + 'a' + q.eos_token)['input_ids']


@pytest.fixture(scope='module')
def think_variants(tmp_path_factory):
    "{name: tokenizer}: ChatML with plain think tags, ChatML with special think tags, R1-style (prompt opens <think>)."
    root = tmp_path_factory.mktemp('think')
    for name, kw in dict(plain=dict(template='qwen'), special=dict(template='qwen', think_special=True),
                         r1=dict(template='r1', think_special=True)).items():
        rs.build_tokenizer(root / name, **kw)
    return {name: load_tokenizer(str(root / name)) for name in ('plain', 'special', 'r1')}


TRACE = '<think>\n2+3=5\n</think>\nThe answer is 5.'
R1_TRACE = '2+3=5\n</think>\nThe answer is 5.'     # an R1-style completion: the prompt opened the block


def test_think_tags_once_in_training_tokens(think_variants):
    "Whatever the template opens and whatever the trace starts with, SFT/KD tokens hold exactly one <think> and one "
    "</think> (before the fix: the R1 template gave `<think>\\n<think>`, and an R1-style trace under ChatML had no opening tag)."
    from reasondistill.signals import tokenize_example
    from reasondistill.models import prompt_opens_thinking
    for name, tok in think_variants.items():
        prompt = render_prompt(tok, 'What is 2+3?')
        assert prompt_opens_thinking(prompt) == (name == 'r1'), name
        o, c = tok.convert_tokens_to_ids('<think>'), tok.convert_tokens_to_ids('</think>')
        for trace in (TRACE, R1_TRACE):
            r = tokenize_example(tok, prompt, trace)
            assert r['input_ids'].count(o) == 1 and r['input_ids'].count(c) == 1, (name, trace, tok.decode(r['input_ids']))
            n = r['completion_mask'].index(1)
            assert r['input_ids'][:n] == tok(prompt, add_special_tokens=False)['input_ids']    # the prompt generate() sees
            assert (o in r['input_ids'][:n]) == (name == 'r1')                                 # who opened the block


def test_special_think_tags_survive_decoding(think_variants):
    "`decode(skip_special_tokens=True)` drops special think tags; completions decode with them kept, other specials dropped."
    from reasondistill.models import decode_completion
    from reasondistill.verify import split_thinking
    for name, tok in think_variants.items():
        ids = tok(TRACE + tok.eos_token, add_special_tokens=False)['input_ids']
        if name != 'plain': assert '<think>' not in tok.decode(ids, skip_special_tokens=True)     # the trap
        assert decode_completion(tok, ids) == TRACE, name
        assert split_thinking(decode_completion(tok, ids)) == ('2+3=5', 'The answer is 5.')
    assert split_thinking(R1_TRACE) == ('2+3=5', 'The answer is 5.')       # a completion that only closes the block


def test_generate_keeps_special_think_tags(tmp_path):
    "A Llama fixture with special think tags, its head rigged so greedy decoding emits only <think>/</think>: before the "
    "fix `generate` returned empty texts (both tags skipped as special)."
    path = rs.build_model(tmp_path / 'm', 'llama', template='qwen', think_special=True)
    model, tok = load_model(path, device='cpu')
    o, c = tok.convert_tokens_to_ids('<think>'), tok.convert_tokens_to_ids('</think>')
    with torch.no_grad():        # logits: 0 everywhere except +h0 for <think> and -h0 for </think>
        model.model.norm.weight.zero_(); model.model.norm.weight[0] = 1
        w = model.get_output_embeddings().weight; w[:, 0] = 0; w[o, 0], w[c, 0] = 1.0, -1.0
    out = generate(model, tok, [render_prompt(tok, q) for q in QUESTIONS], SamplingParams(temperature=0, max_new_tokens=6), desc=None)
    for (comp,) in out:
        assert set(comp.token_ids) <= {o, c}
        assert comp.text and comp.text == tok.decode(comp.token_ids, skip_special_tokens=False)


def test_real_qwen_padding(tmp_path):
    "The real Qwen2.5/Qwen3 embedding size (151,936 rows; here ~99.7% of them padding): sampled and greedy rollouts "
    "stay inside the tokenizer."
    path = rs.build_model(tmp_path / 'q', 'qwen3', vocab_size=rs.QWEN_PADDED_VOCAB)
    model, tok = load_model(path, device='cpu')
    assert model.get_output_embeddings().weight.shape[0] == 151_936
    for temp in (0.0, 1.0):
        out = generate(model, tok, [render_prompt(tok, QUESTIONS[0])], SamplingParams(n=2, temperature=temp, max_new_tokens=12), desc=None)
        assert max(t for c in out[0] for t in c.token_ids) < len(tok)
