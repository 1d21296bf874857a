"""The GPU lane: one command that measures, side by side on one GPU, what the project claims about GPU training and
generation, with random-weight models of real shapes (nothing is downloaded).

    python benchmarks/gpu_lane.py                      # full sizes, ~8 min on one H200-class GPU
    python benchmarks/gpu_lane.py --tiny --out /tmp/gl # every shape shrunk: runs on CPU in about a minute (CI smoke run)

Models (configs written here, random weights, seed 0): a Qwen2.5-1.5B-shaped student (hidden 1536, 28 layers, 12 heads /
2 KV heads, intermediate 8960, vocabulary 151,936, tied embeddings) and a Qwen2.5-7B-shaped teacher (hidden 3584, 28
layers, 28 / 4 heads, intermediate 18944). The project's choice: the teacher's vocabulary is the student's 151,936 rows,
not the 7B's padded 152,064, because TRL's GKD trainer refuses different vocabulary sizes and the comparison needs both
trainers on the same models (the project's own loss accepts a teacher head with extra rows). The tokenizer is a
word-level one built in memory with exactly one word per vocabulary row and a ChatML-like template; texts are random
words, so every sequence has the intended length.

Sections (each measurement runs in a fresh process, so peak memory is its own; each is skipped with a recorded reason
when a package or CUDA is missing, or when the time budget is spent):
- `sft`: QLoRA SFT (NF4 base, LoRA r = 16 on every linear layer, gradient checkpointing, batch 1) at 4,096 tokens:
  tokens/s (median step after a warm-up step) and peak GPU memory, for the project's `train_sft`, plain
  transformers `Trainer` + PEFT, and Unsloth (if importable). Targets: >= 1.0x Unsloth, >= 1.3x plain HF.
- `kd_loss`: JSD (beta 0.5) KD loss forward + backward into the student's hidden states (frozen LM head, the LoRA case),
  bf16 inputs, H = 1,536, V = 151,936, T = 4,096 and 16,384: the project's chunked loss, the naive full-logits loss, and
  Liger's fused linear JSD (if importable). Target: chunked peak <= 0.10x naive.
- `rollout`: sampling throughput (temperature 1) of the student in bf16: the project's HF `generate` vs vLLM (if
  importable), same prompts and budget; tokens/s counts the tokens actually generated.
- `onpolicy`: one on-policy distillation step (student samples with lmbda = 1, JSD beta 0.5 against the teacher, one
  optimizer step) of the project's `train_onpolicy` (its rollouts use the HF backend: the project has no vLLM backend
  yet) vs TRL's `GKDTrainer` on the same 4-bit LoRA student and bf16 teacher. Target: project <= 0.33x TRL.

Writes OUT.md and OUT.json (device, commit, versions, command, every measurement or its skip reason)."""
import json, os, platform, resource, statistics, subprocess, sys, time, traceback
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    'full': dict(student=dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                              intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True),
                 teacher=dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                              intermediate_size=18944, vocab_size=151936, tie_word_embeddings=False),
                 sft_seq=4096, sft_steps=4, kd_T=(4096, 16384), kd_H=1536, kd_V=151936, kd_reps=3,
                 roll_prompts=64, roll_prompt_len=128, roll_new=512, op_batch=4, op_prompt_len=128, op_new=256, op_steps=3),
    'tiny': dict(student=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=128, vocab_size=512, tie_word_embeddings=True),
                 teacher=dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                              intermediate_size=192, vocab_size=512, tie_word_embeddings=False),
                 sft_seq=64, sft_steps=2, kd_T=(128, 256), kd_H=64, kd_V=512, kd_reps=2,
                 roll_prompts=4, roll_prompt_len=8, roll_new=12, op_batch=2, op_prompt_len=8, op_new=8, op_steps=2),
}
COMMON_CFG = dict(max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, hidden_act='silu', bos_token_id=1,
                  eos_token_id=1, pad_token_id=0)
SPECIALS = ['<pad>', '<eos>', '<|im_start|>', '<|im_end|>', 'user', 'assistant', 'system']
TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
            "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
LORA = dict(r=16, alpha=32)
GOALS = dict(sft_vs_unsloth_min=1.0, sft_vs_hf_min=1.3, kd_mem_ratio_max=0.10, onpolicy_time_ratio_max=0.33)
# (section, variant, per-measurement time cap in seconds at full size) in the order they run
PLAN = [('kd_loss', 'chunked', 60), ('kd_loss', 'naive', 60), ('kd_loss', 'liger', 60),
        ('sft', 'project', 120), ('sft', 'hf_peft', 120), ('sft', 'unsloth', 150),
        ('onpolicy', 'project', 150), ('onpolicy', 'trl_gkd', 150),
        ('rollout', 'hf', 120), ('rollout', 'vllm', 180)]

# ---------------------------------------------------------------------------------------------------------- helpers
class Skip(Exception):
    "A measurement that cannot run here (a missing package or CUDA): recorded with its reason."

def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None

def _cuda():
    import torch
    return torch.cuda.is_available()

def _sync():
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()

def _mem_reset():
    import torch
    if torch.cuda.is_available(): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(); return torch.cuda.memory_allocated()
    return 0

def _mem_peak(base=0) -> dict:
    "Peak memory since the last reset: CUDA allocator bytes on a GPU; on CPU the process's peak RSS (its whole life)."
    import torch
    if torch.cuda.is_available():
        return dict(peak_gb=torch.cuda.max_memory_allocated() / 2**30, peak_above_start_gb=(torch.cuda.max_memory_allocated() - base) / 2**30,
                    reserved_gb=torch.cuda.max_memory_reserved() / 2**30, memory='cuda max_memory_allocated')
    return dict(peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, memory='cpu peak RSS of the process')

def words(rng, n:int, V:int) -> str:
    "`n` random vocabulary words (one token each)."
    return ' '.join(f'w{rng.randrange(len(SPECIALS), V)}' for _ in range(n))

def make_tokenizer(V:int):
    "A word-level tokenizer with exactly `V` tokens (specials, then w7 .. w{V-1}) and a ChatML-like chat template."
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast
    vocab = {t: i for i, t in enumerate(SPECIALS)} | {f'w{i}': i for i in range(len(SPECIALS), V)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token='<pad>'))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix='##', cleanup=False)      # joins words with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token='<pad>', eos_token='<eos>', bos_token='<eos>')
    tok.chat_template = TEMPLATE
    assert len(tok) == V
    return tok

def word_tokenizer_loadable():
    """Let `AutoTokenizer` load the word-level tokenizer from a qwen2 folder: transformers 5 otherwise builds its
    byte-level `Qwen2Tokenizer` for every qwen2 folder, whatever `tokenizer_config.json` names (process-local change)."""
    from transformers.models.auto import tokenization_auto as ta
    getattr(ta, 'MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS', set()).discard('qwen2')

def model_config(shape:dict):
    from transformers import Qwen2Config
    return Qwen2Config(**COMMON_CFG, **shape)

def random_model(shape:dict, dtype, device='cpu', seed:int=0):
    "A Qwen2 causal LM of `shape` with random weights, built directly on `device`."
    import torch, transformers as tf
    torch.manual_seed(seed)
    with torch.device(device): m = tf.AutoModelForCausalLM.from_config(model_config(shape), dtype=dtype)
    return m.eval()

class StepTimes:
    "A trainer callback recording the wall time of every optimizer step (CUDA synchronised)."
    def __new__(cls):
        import transformers
        class _CB(transformers.TrainerCallback):
            def __init__(self): self.times, self.t0 = [], None
            def on_step_begin(self, args, state, control, **kw): _sync(); self.t0 = time.perf_counter()
            def on_step_end(self, args, state, control, **kw):
                _sync()
                if self.t0 is not None: self.times.append(time.perf_counter() - self.t0)
        return _CB()

def steady(times:list) -> float:
    "Median step time after the first (warm-up) step."
    return statistics.median(times[1:] or times)

def train_kw(cuda:bool) -> dict:
    return dict(bf16=cuda, fp16=False, use_cpu=not cuda, report_to='none', save_strategy='no', logging_steps=1,
                disable_tqdm=True, dataloader_num_workers=0, seed=0, learning_rate=1e-4, lr_scheduler_type='constant', warmup_steps=0)

# ---------------------------------------------------------------------------------------------------------- children
def child_prepare(a, S) -> dict:
    "Build the student (random weights, bf16 on a GPU, fp32 on CPU) and its tokenizer, and save them for the others."
    import torch
    out = Path(a.work) / 'student'
    if (out / 'config.json').exists() and (out / 'tokenizer.json').exists() and \
       all(json.loads((out / 'config.json').read_text()).get(k) == v for k, v in S['student'].items()):
        return dict(path=str(out), reused=True, **_device())
    dtype = torch.bfloat16 if _cuda() else torch.float32
    m = random_model(S['student'], dtype, 'cuda' if _cuda() else 'cpu')   # random initialisation is fast on a GPU
    m.save_pretrained(out); make_tokenizer(S['student']['vocab_size']).save_pretrained(out)
    make_tokenizer(S['student']['vocab_size']).save_pretrained(Path(a.work) / 'tokenizer')   # alone (no config.json): for vLLM's processes
    from reasondistill.models import load_tokenizer
    tok = load_tokenizer(str(out))
    ids = tok('w7 w8 w9', add_special_tokens=False)['input_ids']
    if ids != [7, 8, 9] or len(tok) != S['student']['vocab_size']:
        raise RuntimeError(f'the saved word-level tokenizer does not load back as written ({type(tok).__name__}: {ids}, {len(tok)} tokens)')
    n = sum(p.numel() for p in m.parameters())
    return dict(path=str(out), reused=False, student_params=n, **_device())

def _device() -> dict:
    import torch
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return dict(device=torch.cuda.get_device_name(0), device_memory_gb=p.total_memory / 2**30, cuda=torch.version.cuda)
    return dict(device=f'CPU: {_cpu_model()} ({os.cpu_count()} cores)', device_memory_gb=None, cuda=None)

def _cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or 'unknown'

def _sft_data(a, S, n:int):
    import random
    rng, V, T = random.Random(0), S['student']['vocab_size'], S['sft_seq']
    return [dict(prompt=words(rng, T // 16, V), completion=words(rng, T - T // 16, V)) for _ in range(n)]

def child_sft(a, S, variant) -> dict:
    import torch, datasets
    cuda, path, T, steps = _cuda(), Path(a.work) / 'student', S['sft_seq'], S['sft_steps']
    cb = StepTimes()
    if variant == 'unsloth':
        if not cuda: raise Skip('Unsloth needs a CUDA GPU')
        if not _importable('unsloth'): raise Skip('unsloth is not installed (pip install "reasondistill[unsloth]")')
    if variant == 'project':
        from reasondistill.models import ModelSpec, LoraSpec
        from reasondistill.train import TrainConfig, Run
        from reasondistill.methods.sft import SFTConfig, train_sft
        base = _mem_reset()
        tc = TrainConfig(lr=1e-4, max_steps=steps, batch_size=1, max_length=T, logging_steps=1, save_steps=10_000,
                         gradient_checkpointing=True, warmup_ratio=0.0, scheduler='constant')
        out = Path(a.work) / 'sft_project'
        import shutil; shutil.rmtree(out, ignore_errors=True)
        s = train_sft(_sft_data(a, S, steps), Run(str(out), ModelSpec(str(path), quant='4bit', lora=LoraSpec(**LORA))), SFTConfig(tc),
                      callbacks=[cb])
        tokens = T
    else:
        import transformers as tf, peft
        base = _mem_reset()
        tok = tf.AutoTokenizer.from_pretrained(path)
        if variant == 'unsloth':
            from unsloth import FastLanguageModel
            model, tok = FastLanguageModel.from_pretrained(model_name=str(path), max_seq_length=T, dtype=torch.bfloat16, load_in_4bit=True)
            model = FastLanguageModel.get_peft_model(model, r=LORA['r'], lora_alpha=LORA['alpha'], lora_dropout=0.0, bias='none',
                        target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
                        use_gradient_checkpointing='unsloth', random_state=0)
        else:
            dt = torch.bfloat16 if cuda else torch.float32
            q = tf.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dt)
            model = tf.AutoModelForCausalLM.from_pretrained(path, quantization_config=q, dtype=dt, device_map={'': 'cuda' if cuda else 'cpu'})
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
            model = peft.get_peft_model(model, peft.LoraConfig(r=LORA['r'], lora_alpha=LORA['alpha'], lora_dropout=0.0,
                                                               target_modules='all-linear', task_type='CAUSAL_LM'))
        rows = []
        for e in _sft_data(a, S, steps):
            p = tok(e['prompt'], add_special_tokens=False)['input_ids']; c = tok(e['completion'], add_special_tokens=False)['input_ids']
            ids = (p + c)[:T]
            rows.append(dict(input_ids=ids, attention_mask=[1] * len(ids), labels=[-100] * len(p) + ids[len(p):]))
        args = tf.TrainingArguments(output_dir=str(Path(a.work) / f'sft_{variant}'), per_device_train_batch_size=1, max_steps=steps,
                                    gradient_checkpointing=variant != 'unsloth', **train_kw(cuda))
        tr = tf.Trainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), data_collator=tf.default_data_collator,
                        callbacks=[cb])
        tr.train()
        tokens = len(rows[0]['input_ids'])
    st = steady(cb.times)
    return dict(tokens_per_step=tokens, step_s=st, tokens_per_s=tokens / st, step_times=cb.times, **_mem_peak(base))

def child_kd_loss(a, S, variant, T:int) -> dict:
    import torch
    cuda = _cuda()
    if variant == 'liger':
        if not cuda: raise Skip("Liger's fused loss runs Triton kernels: needs a CUDA GPU")
        if not _importable('liger_kernel'): raise Skip('liger-kernel is not installed')
    from reasondistill.divergences import chunked_kd_loss, naive_kd_loss
    dev, dt = ('cuda', torch.bfloat16) if cuda else ('cpu', torch.float32)
    H, V = S['kd_H'], S['kd_V']
    g = torch.Generator(device=dev).manual_seed(0)
    h = torch.randn(T, H, device=dev, dtype=dt, generator=g).requires_grad_()
    W = (torch.randn(V, H, device=dev, dtype=dt, generator=g) * (2 / H ** 0.5))          # frozen head (the LoRA case)
    th = torch.randn(T, H, device=dev, dtype=dt, generator=g)
    tW = torch.randn(V, H, device=dev, dtype=dt, generator=g) * (2 / H ** 0.5)
    if variant == 'chunked': fn = lambda: chunked_kd_loss(h, W, th, tW, name='jsd', beta=0.5, chunk_size=128)
    elif variant == 'naive': fn = lambda: naive_kd_loss(h, W, th, tW, name='jsd', beta=0.5)
    else:
        from liger_kernel.transformers.fused_linear_jsd import LigerFusedLinearJSD
        lj = LigerFusedLinearJSD(jsd_beta=0.5, temperature=1.0)
        fn = lambda: lj(h, W, th, tW)
    times, base, vals = [], _mem_reset(), []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for _ in range(S['kd_reps']):
            h.grad = None
            _sync(); t0 = time.perf_counter()
            loss = fn(); loss.backward()
            _sync(); times.append(time.perf_counter() - t0)
            vals.append(float(loss.detach())); del loss
    except torch.OutOfMemoryError as e:
        return dict(T=T, H=H, V=V, oom=True, error=str(e).splitlines()[0], **_mem_peak(base))
    mem = _mem_peak(base)
    if not cuda: mem['peak_above_start_gb'] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 2**20
    return dict(T=T, H=H, V=V, dtype=str(dt), time_s=steady(times), times_s=times, loss=vals[-1], grad_h_norm=float(h.grad.float().norm()), **mem)

def _prompts(S, n:int, L:int):
    import random
    rng = random.Random(1)
    return [words(rng, L, S['student']['vocab_size']) for _ in range(n)]

def child_rollout(a, S, variant) -> dict:
    import torch
    cuda, path, N = _cuda(), Path(a.work) / 'student', S['roll_new']
    if variant == 'vllm':
        if not cuda: raise Skip('vLLM is benchmarked on a CUDA GPU only')
        if not _importable('vllm'): raise Skip('vllm is not installed')
    from reasondistill.models import load_tokenizer, render_prompt
    tok = load_tokenizer(str(path))
    prompts = [render_prompt(tok, q) for q in _prompts(S, S['roll_prompts'], S['roll_prompt_len'])]
    base = _mem_reset()
    if variant == 'hf':
        from reasondistill.models import load_model, ModelSpec
        from reasondistill.rollout import generate, SamplingParams
        model, tok = load_model(ModelSpec(str(path), dtype='bf16' if cuda else 'fp32'))
        sp = SamplingParams(temperature=1.0, max_new_tokens=N, seed=0)
        generate(model, tok, prompts[:2], SamplingParams(temperature=1.0, max_new_tokens=4, seed=0), desc=None)   # warm-up
        _sync(); t0 = time.perf_counter()
        outs = generate(model, tok, prompts, sp, batch_size=len(prompts), desc=None)
        _sync(); secs = time.perf_counter() - t0
        n = sum(len(o[0].token_ids) for o in outs)
    else:
        from vllm import LLM, SamplingParams as VSP
        llm = LLM(model=str(path), tokenizer=str(Path(a.work) / 'tokenizer'), dtype='bfloat16', seed=0, gpu_memory_utilization=0.6,
                  max_model_len=S['roll_prompt_len'] + N + 64, enable_prefix_caching=False)
        llm.generate(prompts[:2], VSP(temperature=1.0, max_tokens=4), use_tqdm=False)
        t0 = time.perf_counter()
        outs = llm.generate(prompts, VSP(temperature=1.0, max_tokens=N, seed=0), use_tqdm=False)
        secs = time.perf_counter() - t0
        n = sum(len(o.outputs[0].token_ids) for o in outs)
    return dict(prompts=len(prompts), max_new_tokens=N, generated_tokens=n, seconds=secs, tokens_per_s=n / secs, **_mem_peak(base))

def child_onpolicy(a, S, variant) -> dict:
    import torch, datasets, transformers as tf, peft
    cuda, path = _cuda(), Path(a.work) / 'student'
    B, N, steps = S['op_batch'], S['op_new'], S['op_steps']
    from reasondistill.models import load_tokenizer, render_prompt
    tok = load_tokenizer(str(path))
    qs = _prompts(S, B * steps, S['op_prompt_len'])
    base = _mem_reset()
    teacher = random_model(S['teacher'], torch.bfloat16 if cuda else torch.float32, 'cuda' if cuda else 'cpu', seed=1)
    for p in teacher.parameters(): p.requires_grad_(False)
    cb = StepTimes()
    out = Path(a.work) / f'onpolicy_{variant}'
    import shutil; shutil.rmtree(out, ignore_errors=True)
    if variant == 'project':
        from reasondistill.models import ModelSpec, LoraSpec
        from reasondistill.train import TrainConfig, Run
        from reasondistill.signals import ModelTeacher
        from reasondistill.methods.onpolicy import OnPolicyConfig, RolloutConfig, LossConfig, train_onpolicy
        cfg = OnPolicyConfig(TrainConfig(lr=1e-4, max_steps=steps, batch_size=B, max_length=S['op_prompt_len'] + N + 16,
                                         logging_steps=1, save_steps=10_000, gradient_checkpointing=True, warmup_ratio=0.0,
                                         scheduler='constant'),
                             rollout=RolloutConfig(lmbda=1.0, temperature=1.0, max_new_tokens=N, batch_size=B),
                             loss=LossConfig(divergence='jsd', beta=0.5))
        ex = [dict(prompt=render_prompt(tok, q), completion='') for q in qs]
        s = train_onpolicy(ex, Run(str(out), ModelSpec(str(path), quant='4bit', lora=LoraSpec(**LORA))), cfg, callbacks=[cb],
                           teacher_fn=lambda p: ModelTeacher(teacher, kind='full', temperature=1.0, vocab_size=len(p.tokenizer),
                                                             name='random Qwen2.5-7B shape'))
        g = s.get('rollouts') or {}
        extra = dict(gen_share=g.get('gen_share'), mean_gen_tokens=g.get('mean_gen_tokens'), rollouts='HF generate (project backend)')
    else:
        try: from trl.experimental.gkd import GKDConfig, GKDTrainer
        except ImportError as e: raise Skip(f"TRL's GKD trainer is not importable ({e})")
        dt = torch.bfloat16 if cuda else torch.float32
        if cuda:
            q = tf.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dt)
            model = tf.AutoModelForCausalLM.from_pretrained(path, quantization_config=q, dtype=dt, device_map={'': 'cuda'})
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        else:   # on CPU, bitsandbytes repacks 4-bit weights for inference when TRL calls eval() to sample; training then fails
            model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=dt)
        model = peft.get_peft_model(model, peft.LoraConfig(r=LORA['r'], lora_alpha=LORA['alpha'], lora_dropout=0.0,
                                                           target_modules='all-linear', task_type='CAUSAL_LM'))
        ds = datasets.Dataset.from_list([dict(messages=[dict(role='user', content=x), dict(role='assistant', content='w7')]) for x in qs])
        args = GKDConfig(output_dir=str(out), per_device_train_batch_size=B, max_steps=steps, lmbda=1.0, beta=0.5, temperature=1.0,
                         max_new_tokens=N, max_length=S['op_prompt_len'] + N + 16, gradient_checkpointing=cuda, **train_kw(cuda))
        tr = GKDTrainer(model=model, teacher_model=teacher, args=args, train_dataset=ds, processing_class=tok, callbacks=[cb])
        tr.train()
        extra = dict(rollouts='HF generate (TRL)', student='NF4 + LoRA' if cuda else 'fp32 + LoRA (CPU: see the code)')
    st = steady(cb.times)
    return dict(batch=B, max_new_tokens=N, step_s=st, step_times=cb.times, **extra, **_mem_peak(base))

def run_child(a):
    "In a child process: run the measurements named by --child (SECTION VARIANT ARG, several joined by '+') and print one RESULT line each."
    S = SHAPES['tiny' if a.tiny else 'full']
    secs, variants, args = (x.split('+') for x in a.child)
    import torch
    if 'unsloth' in variants and torch.cuda.is_available() and _importable('unsloth'): import unsloth   # before transformers, as it asks
    from reasondistill.core import quiet_output, set_threads
    quiet_output(Path(a.work) / 'children.log').__enter__()
    set_threads(a.threads or None)
    word_tokenizer_loadable()
    for sec, variant, arg in zip(secs, variants, args):
        torch.manual_seed(0)
        try:
            if sec == 'prepare': r = child_prepare(a, S)
            elif sec == 'sft': r = child_sft(a, S, variant)
            elif sec == 'kd_loss': r = child_kd_loss(a, S, variant, int(arg))
            elif sec == 'rollout': r = child_rollout(a, S, variant)
            elif sec == 'onpolicy': r = child_onpolicy(a, S, variant)
            else: raise ValueError(f'unknown section {sec}')
            out = dict(status='ok', **r)
        except Skip as e: out = dict(status='skipped', reason=str(e))
        except Exception as e: out = dict(status='failed', error=f'{type(e).__name__}: {e}'[:2000], traceback=traceback.format_exc()[-4000:])
        print('RESULT ' + json.dumps(dict(out, key=[sec, variant, arg]), default=str), flush=True)

# ---------------------------------------------------------------------------------------------------------- parent
def _versions() -> dict:
    from importlib.metadata import version, PackageNotFoundError
    out = {'python': platform.python_version()}
    for p in ('reasondistill', 'torch', 'transformers', 'trl', 'peft', 'accelerate', 'bitsandbytes', 'datasets', 'vllm',
              'unsloth', 'liger-kernel', 'triton'):
        try: out[p] = version(p)
        except PackageNotFoundError: out[p] = None
    return out

def _commit() -> dict:
    git = lambda *c: subprocess.run(['git', *c], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return dict(commit=git('rev-parse', 'HEAD') or None, dirty=bool(git('status', '--porcelain', '--untracked-files=no')))

def _spawn(a, items:list, timeout) -> list:
    "Run the measurements `items` [(section, variant, arg)] in one fresh process; one result dict each."
    cmd = [sys.executable, __file__, '--child', *('+'.join(str(x[i]) for x in items) for i in range(3)),
           '--work', a.work, '--threads', str(a.threads)] + (['--tiny'] if a.tiny else [])
    env = {**os.environ, 'RD_PROGRESS': '0', 'TOKENIZERS_PARALLELISM': 'false', 'PYTHONWARNINGS': 'ignore'}
    t0 = time.time()
    try: p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        p = subprocess.CompletedProcess(cmd, None, (e.stdout or b'').decode() if isinstance(e.stdout, bytes) else (e.stdout or ''), '')
    got = {}
    for l in p.stdout.splitlines():
        if l.startswith('RESULT '):
            r = json.loads(l[7:]); got[tuple(r.pop('key'))] = r
    out = []
    for it in items:
        k = tuple(str(x) for x in it)
        if k in got: r = got[k]
        elif p.returncode is None: r = dict(status='timeout', reason=f'stopped after {timeout:.0f} s (time cap)')
        else: r = dict(status='failed', error=f'exit status {p.returncode}, no result', stderr=(p.stderr or '')[-3000:])
        r['wall_s'] = time.time() - t0
        out.append(r)
    return out

def _fmt(x, f='{:.3g}'): return '–' if x is None else f.format(x)

def report(a, res:dict, meta:dict) -> list:
    S = SHAPES['tiny' if a.tiny else 'full']
    gpu = meta['device']['cuda'] is not None
    mem_unit = 'peak GPU memory (GiB, allocated)' if gpu else 'peak RSS (GiB, CPU)'
    L = [f"# GPU lane{' (TINY smoke run on ' + ('GPU' if gpu else 'CPU') + ': shapes shrunk, numbers meaningless)' if a.tiny else ''}", '',
         f"Device: **{meta['device']['device']}**. Commit {meta['commit']['commit']}{' (with uncommitted changes)' if meta['commit']['dirty'] else ''}, "
         f"{meta['date']}. Command: `{meta['command']}`. Wall time {meta['wall_s']:.0f} s of a {a.budget_s:.0f} s budget.", '',
         'Versions: ' + ', '.join(f'{k} {v}' for k, v in meta['versions'].items() if v) + '; not installed: ' +
         (', '.join(k for k, v in meta['versions'].items() if not v) or 'none') + '.', '',
         f"Student: Qwen2.5-1.5B shape {S['student']}; teacher: Qwen2.5-7B shape {S['teacher']}; random weights, word-level "
         'tokenizer with one token per vocabulary row (see the script\'s docstring).', '']
    def row(first:list, r, cols:list) -> str:
        "A table row: the measured columns, or the status and its reason in the first of them."
        if r is None: vals = ['not run'] + [''] * (len(cols) - 1)
        elif r.get('status') != 'ok': vals = [f"{r.get('status')}: {(r.get('reason') or r.get('error', ''))[:120]}"] + [''] * (len(cols) - 1)
        elif r.get('oom'): vals = ['out of memory'] + [''] * (len(cols) - 1)
        else: vals = [_fmt(r.get(k), f) for k, f in cols]
        return '| ' + ' | '.join(list(first) + vals) + ' |'
    sft = {v: res.get(('sft', v, 'na')) for v in ('project', 'hf_peft', 'unsloth')}
    L += [f"## QLoRA SFT at {S['sft_seq']:,} tokens (batch 1, LoRA r {LORA['r']}, gradient checkpointing)", '',
          f'| trainer | tokens/s | step (s) | {mem_unit} |', '|---|---|---|---|']
    for v, r in sft.items(): L.append(row([v], r, [('tokens_per_s', '{:,.0f}'), ('step_s', '{:.3g}'), ('peak_gb', '{:.3g}')]))
    ok = lambda r: r is not None and r.get('status') == 'ok' and not r.get('oom')
    ratios = {}
    for other, goal in (('unsloth', GOALS['sft_vs_unsloth_min']), ('hf_peft', GOALS['sft_vs_hf_min'])):
        if ok(sft['project']) and ok(sft[other]):
            ratios[f'sft_project_vs_{other}'] = x = sft['project']['tokens_per_s'] / sft[other]['tokens_per_s']
            L.append(f"\nProject / {other} tokens/s: **{x:.2f}x** (target >= {goal}x: {'met' if x >= goal else 'NOT met'}).")
    L += ['', f"## KD loss (JSD beta 0.5), H = {S['kd_H']:,}, V = {S['kd_V']:,}, forward + backward, frozen LM head", '',
          f'| T | variant | time (s) | {mem_unit} | above inputs (GiB) | loss |', '|---|---|---|---|---|---|']
    for T in S['kd_T']:
        for v in ('chunked', 'naive', 'liger'):
            r = res.get(('kd_loss', v, str(T)))
            L.append(row([f'{T:,}', v], r, [('time_s', '{:.3g}'), ('peak_gb', '{:.3g}'), ('peak_above_start_gb', '{:.3g}'), ('loss', '{:.5g}')]))
        c, n = res.get(('kd_loss', 'chunked', str(T))), res.get(('kd_loss', 'naive', str(T)))
        if ok(c) and ok(n) and n.get('peak_above_start_gb'):
            ratios[f'kd_mem_ratio_T{T}'] = x = c['peak_above_start_gb'] / n['peak_above_start_gb']
            L.append(f"| {T:,} | chunked / naive | {c['time_s'] / n['time_s']:.2f}x | | **{x:.3f}x** (target <= {GOALS['kd_mem_ratio_max']}: "
                     f"{'met' if x <= GOALS['kd_mem_ratio_max'] else 'NOT met'}) | |")
        elif ok(c) and n is not None and n.get('oom'):
            L.append(f'| {T:,} | chunked / naive | | | naive ran out of memory | |')
    L += ['', f"## Rollouts: {S['roll_prompts']} prompts of {S['roll_prompt_len']} words, up to {S['roll_new']} new tokens, temperature 1", '',
          f'| backend | generated tokens | seconds | tokens/s | {mem_unit} |', '|---|---|---|---|---|']
    for v in ('hf', 'vllm'):
        r = res.get(('rollout', v, 'na'))
        L.append(row([v], r, [('generated_tokens', '{:,}'), ('seconds', '{:.3g}'), ('tokens_per_s', '{:,.0f}'), ('peak_gb', '{:.3g}')]))
    L += ['', f"## One on-policy distillation step: batch {S['op_batch']}, {S['op_new']} new tokens, lmbda 1, JSD beta 0.5", '',
          f'| trainer | step (s, median after the first) | generation share | {mem_unit} |', '|---|---|---|---|']
    op = {v: res.get(('onpolicy', v, 'na')) for v in ('project', 'trl_gkd')}
    for v, r in op.items(): L.append(row([v], r, [('step_s', '{:.3g}'), ('gen_share', '{:.0%}'), ('peak_gb', '{:.3g}')]))
    if ok(op['project']) and ok(op['trl_gkd']):
        ratios['onpolicy_project_vs_trl'] = x = op['project']['step_s'] / op['trl_gkd']['step_s']
        L.append(f"\nProject / TRL step time: **{x:.2f}x** (target <= {GOALS['onpolicy_time_ratio_max']}x: "
                 f"{'met' if x <= GOALS['onpolicy_time_ratio_max'] else 'NOT met'}). The project's rollouts use HF generate.")
    skipped = [f"{s}/{v}{'/T=' + t if t != 'na' else ''}: {r.get('reason') or r.get('error', '')[:200]}" for (s, v, t), r in res.items()
               if r.get('status') != 'ok']
    L += ['', '## Not measured', ''] + ([f'- {x}' for x in skipped] or ['- nothing: every measurement ran'])
    meta['ratios'] = ratios
    return L

def main():
    ap = bench_parser('gpu_lane', __doc__, groups=('run', 'work'))
    ap.add_argument('--budget-s', type=float, default=480, help='total time budget; later measurements are skipped once it is spent')
    ap.add_argument('--only', type=str, default='', help='comma-separated sections to run (sft, kd_loss, rollout, onpolicy)')
    ap.add_argument('--child', nargs=3, metavar=('SECTION', 'VARIANT', 'ARG'), help=argparse_suppress())
    a = parse_args(ap)
    if a.tiny and a.out == 'benchmarks/results/gpu_lane': a.out = 'runs/gpu_lane_tiny/gpu_lane'   # a smoke run never replaces the results
    if a.tiny and a.work == 'runs/gpu_lane': a.work = 'runs/gpu_lane_tiny'
    if a.child: return run_child(a)
    only = {s for s in a.only.split(',') if s}
    unknown = only - {s for s, *_ in PLAN}
    if unknown: ap.error(f'unknown sections {sorted(unknown)}; known: sft, kd_loss, rollout, onpolicy')
    S = SHAPES['tiny' if a.tiny else 'full']
    Path(a.work).mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    left = lambda: a.budget_s - (time.time() - t_start)
    log = lambda m: print(f'[{time.time() - t_start:5.0f}s] {m}', flush=True)
    log('building the random-weight student ...')
    prep = _spawn(a, [('prepare', 'na', 'na')], max(left(), 1))[0]
    if prep.get('status') != 'ok': print(json.dumps(prep, indent=1)[:4000]); return 1
    items = [(sec, variant, str(T), cap) for sec, variant, cap in PLAN if not only or sec in only
             for T in (S['kd_T'] if sec == 'kd_loss' else ('na',))]
    # a fresh process per trainer or backend (its own peak memory; the KD loss resets the peak between lengths); a tiny run
    # shares one per section (start-up dominates it)
    by = (lambda it: it[0]) if a.tiny else (lambda it: it[:2])
    groups = [[it for it in items if by(it) == g] for g in dict.fromkeys(by(it) for it in items)]
    res = {}
    for grp in groups:
        if left() < 5:
            for sec, variant, T, _ in grp: res[sec, variant, T] = dict(status='skipped', reason='time budget spent')
            continue
        cap = grp[0][3] if not a.tiny else 120
        for (sec, variant, T, _), r in zip(grp, _spawn(a, [it[:3] for it in grp], min(cap, left()))):
            res[sec, variant, T] = r
            what = (r.get('reason') or r.get('error', '')[:160]) if r['status'] != 'ok' else \
                ', '.join(f'{k}={r[k]:.4g}' for k in ('tokens_per_s', 'time_s', 'step_s', 'peak_gb') if isinstance(r.get(k), (int, float)))
            log(f"{sec}/{variant}{'/T=' + T if T != 'na' else ''}: {r['status']} {what}")
    meta = dict(device={k: prep.get(k) for k in ('device', 'device_memory_gb', 'cuda')}, commit=_commit(), versions=_versions(),
                command='python ' + ' '.join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                wall_s=time.time() - t_start, budget_s=a.budget_s, tiny=a.tiny, shapes=S, lora=LORA, goals=GOALS)
    lines = report(a, res, meta)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + '.md').write_text('\n'.join(lines) + '\n')
    sections = {}
    for (s, v, t), r in res.items(): sections.setdefault(s, {})[v + (f'@T={t}' if t != 'na' else '')] = {k: x for k, x in r.items() if k != 'traceback'}
    Path(a.out + '.json').write_text(json.dumps(dict(meta=meta, sections=sections), indent=1, default=str) + '\n')
    log(f'wrote {a.out}.md and {a.out}.json')
    return 0

def argparse_suppress():
    import argparse
    return argparse.SUPPRESS

if __name__ == '__main__': sys.exit(main())
