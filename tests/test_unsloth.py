"""The Unsloth lane (`RD_UNSLOTH=1`, after `pip install -e ".[unsloth]"`): the toy student loads through
`unsloth.FastLanguageModel` with LoRA adapters and trains a few SFT steps with the same trainer as the HF path."""
import pytest

pytestmark = pytest.mark.unsloth

def test_unsloth_backend_trains(tmp_path):
    from reasondistill.models import ModelSpec, LoraSpec, load_model, load_tokenizer, render_prompt
    from reasondistill.methods.sft import SFTConfig, train_sft
    from reasondistill.train import TrainConfig, Run
    from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace
    import random
    model, tok = load_model(ModelSpec('toy:student', backend='unsloth', lora=LoraSpec(r=8)), trainable=True)
    assert any(p.requires_grad for p in model.parameters())
    rng = random.Random(0)
    ex = [dict(prompt=render_prompt(tok, p.question), completion=reference_trace(parse_toy_question(p.question), rng, slip=0)[0])
          for p in toy_problems(4, levels=[1, 2], split='train')]
    res = train_sft(ex, Run(str(tmp_path / 'u'), ModelSpec('toy:student', backend='unsloth', lora=LoraSpec(r=8))),
                    SFTConfig(TrainConfig(max_steps=4, batch_size=4, max_length=128, save_steps=2)))
    assert res['global_step'] == 4
