"""Real-shaped stand-in models for the real-model lane (issue 13, point 3), built on CPU without downloads.

A byte-level BPE tokenizer trained here with ChatML special tokens and `<think>`/`</think>`, saved as a
`PreTrainedTokenizerFast` with a Qwen-style chat template (variants: think tags special or not; an R1/QwQ-style
generation prompt that already opens `<think>`; a Llama-3-style tokenizer whose template *and* post-processor add
`<|begin_of_text|>`), and tiny random-weight Qwen2 / Qwen3 / Llama models whose embedding has more rows than the
tokenizer has ids (as real Qwen: 151,665 tokenizer ids in a 151,936-row embedding). Everything is saved with
`save_pretrained`, so `reasondistill.models.load_model(path)` loads it like a hub model.
"""
from __future__ import annotations
import random
from pathlib import Path

CHATML = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
THINK = ['<think>', '</think>']
LLAMA_SPECIAL = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']
BPE_VOCAB = 600                # BPE size before the added tokens: the tokenizer has ~600 ids
PADDED_VOCAB = 1024            # embedding rows of the scaled-down models (ids >= len(tokenizer) are padding)
QWEN_PADDED_VOCAB = 151_936    # real Qwen2.5/Qwen3 embedding rows

# Qwen2.5-style ChatML template (system, user, assistant turns; generation prompt opens the assistant turn)
QWEN_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
# R1-distill / QwQ style: the generation prompt already opens the thinking block
R1_TEMPLATE = QWEN_TEMPLATE.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")
# Llama-3 style: the template starts with the BOS token, and the tokenizer's post-processor adds it too
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")

TEMPLATES = dict(qwen=QWEN_TEMPLATE, r1=R1_TEMPLATE, llama3=LLAMA3_TEMPLATE)

MATH_TEXT = """Let x be a real number such that x^2 - 5x + 6 = 0. Then (x - 2)(x - 3) = 0, so x = 2 or x = 3.
The sum of the interior angles of a polygon with n sides is 180(n - 2) degrees.
Compute \\frac{1}{2} + \\frac{1}{3} = \\frac{5}{6}. The final answer is $\\boxed{\\frac{5}{6}}$.
If a triangle has sides 3, 4 and 5, it is a right triangle because 3^2 + 4^2 = 5^2.
How many positive divisors does 36 have? 36 = 2^2 \\cdot 3^2, so it has (2+1)(2+1) = 9 divisors.
Find the remainder when 2^{10} is divided by 7. Since 2^3 = 8 \\equiv 1 \\pmod 7, 2^{10} = 2 \\cdot (2^3)^3 \\equiv 2.
Wait, let me double-check the computation. Hmm, that gives 12, not 18. So the answer is 18.
Therefore, the probability is \\frac{3}{8}, and the expected value is \\sqrt{2} + \\pi.
**Final Answer:** 42. The answer is 7. Answer: 18. Okay, so I need to find the value of y.
"""


def _corpus(n:int=400, seed:int=0):
    from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace
    rng = random.Random(seed)
    for p in toy_problems(max(1, n // 8), split='train'):
        yield p.question
        yield reference_trace(parse_toy_question(p.question), rng)[0]
    for _ in range(20): yield from MATH_TEXT.splitlines()


def train_bpe(seed:int=0):
    "A byte-level BPE `tokenizers.Tokenizer` trained on toy traces and some math text, with ChatML tokens first."
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=CHATML, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(seed=seed), trainer)
    return tok


def build_tokenizer(out_dir, template:str='qwen', think_special:bool=False):
    "Save a `PreTrainedTokenizerFast` to `out_dir`: template 'qwen', 'r1' or 'llama3'; think tags special or not."
    import transformers as tf
    from tokenizers import AddedToken, processors
    tok = train_bpe()
    if template == 'llama3':
        tok.add_special_tokens(LLAMA_SPECIAL)
        bos = tok.token_to_id('<|begin_of_text|>')    # the post-processor adds BOS, as Llama-3's tokenizer.json does
        tok.post_processor = processors.TemplateProcessing(single='<|begin_of_text|> $A', pair='<|begin_of_text|> $A $B',
                                                           special_tokens=[('<|begin_of_text|>', bos)])
    tags = [AddedToken(t, special=think_special, normalized=False) for t in THINK]
    if think_special: tok.add_special_tokens(tags)
    else: tok.add_tokens(tags)
    kw = dict(eos_token='<|eot_id|>', bos_token='<|begin_of_text|>', pad_token='<|end_of_text|>') if template == 'llama3' \
         else dict(eos_token='<|im_end|>', pad_token='<|endoftext|>')
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=32768, **kw)
    fast.chat_template = TEMPLATES[template]
    fast.save_pretrained(out_dir)
    return fast


def model_config(arch:str, tokenizer, vocab_size:int=PADDED_VOCAB, hidden:int=64, layers:int=2):
    "A tiny config of a real architecture ('qwen2', 'qwen3', 'llama') whose embedding has `vocab_size` rows."
    import transformers as tf
    if vocab_size < len(tokenizer): raise ValueError(f'vocab_size {vocab_size} < tokenizer length {len(tokenizer)}')
    cls = dict(qwen2=tf.Qwen2Config, qwen3=tf.Qwen3Config, llama=tf.LlamaConfig)[arch]
    kw = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
              bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=arch != 'llama')
    if arch == 'qwen3': kw['head_dim'] = hidden // 4
    return cls(**kw)


def build_model(out_dir, arch:str='qwen2', template:str|None=None, think_special:bool=False,
                vocab_size:int=PADDED_VOCAB, seed:int=0, hidden:int=64, layers:int=2):
    "Save a random-weight `arch` model plus its tokenizer to `out_dir` (loadable by `load_model(str(out_dir))`)."
    import torch, transformers as tf
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    template = template or ('llama3' if arch == 'llama' else 'qwen')
    tok = build_tokenizer(out_dir, template, think_special)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(model_config(arch, tok, vocab_size, hidden, layers))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    return str(out_dir)
