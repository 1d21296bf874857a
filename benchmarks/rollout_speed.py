"""CPU rollout speed: the HF backend with its dynamic KV cache, with the static one, and vLLM's CPU engine, side by side.

Where the time of a toy-world rollout goes (cProfile, greedy, full-length rows): the model's linear layers first, then
growing the dynamic KV cache by concatenation (`torch.cat` in `DynamicCache.update`, once per layer and step); the static cache (`cache_implementation='static'`, transformers' own) writes into a preallocated
buffer instead. This script measures, on the same machine and in one invocation (the arms alternate, so load drifts hit
both):

1. trace generation with the toy teacher: PROMPTS test prompts x N samples at T = 1, max 256 new tokens;
2. on-policy distillation (OPD, toy student <- toy teacher): STEPS optimizer steps, where the rollouts are the
   generation share of the step time.

Tokens are identical between the two HF arms (a check, reported). Where `vllm` imports (run the script in the vLLM
lane's environment, `.venv-vllm`: see .ci/run), trace generation also runs through vLLM's offline engine on the CPU
(`enforce_eager`, one process); its samples come from vLLM's own sampler, so only its speed is compared. The on-policy
trainer samples from the current LoRA student with the HF backend, so the on-policy arms are the two HF caches. Writes
benchmarks/results/rollout_speed.{md,json}.

    python benchmarks/rollout_speed.py [--reps 3 --prompts 32 --n 4 --steps 4 --threads 2]
    python benchmarks/rollout_speed.py --tiny
    # with the vLLM arm: in the vLLM lane's environment (.ci/run, RD_VLLM=1) plus `pip install trl datasets accelerate
    # matplotlib` (pinned to its torch and transformers), with VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 VLLM_HOST_IP=127.0.0.1
"""
import argparse, os, statistics, sys, tempfile, time
os.environ.setdefault("RD_PROGRESS", "0")
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ('dynamic', 'static')


def generation_arm(model, tok, prompts, n, kv_cache, max_new, engine=None):
    from reasondistill.rollout import generate, SamplingParams
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    if kv_cache == 'vllm': out = generate(engine, None, prompts, params, desc=None, batch_size=len(prompts) * n)
    else: out = generate(model, tok, prompts, params, desc=None, kv_cache=kv_cache)
    return time.perf_counter() - t0, time.process_time() - c0, [c.token_ids for o in out for c in o]


def onpolicy_arm(kv_cache, steps, root):
    import reasondistill.rollout as ro
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.toyworld import toy_problems
    from reasondistill.train import TrainConfig, Run, default_student_spec
    from reasondistill.methods.opd import OPDConfig, train_opd
    from reasondistill.methods.onpolicy import RolloutConfig
    old, ro.DEFAULT_KV_CACHE = ro.DEFAULT_KV_CACHE, 'dynamic' if kv_cache == 'vllm' else kv_cache
    try:
        tok = load_tokenizer('toy:student')
        ex = [dict(prompt=render_prompt(tok, p.question), completion='') for p in toy_problems(4, split='train')]
        cfg = OPDConfig(train=TrainConfig(lr=1e-3, max_steps=steps, batch_size=8, max_length=256, logging_steps=1,
                                          save_steps=10_000),
                        rollout=RolloutConfig(lmbda=1.0, engine='vllm' if kv_cache == 'vllm' else 'hf'))
        out = Path(tempfile.mkdtemp(dir=root))
        t0 = time.perf_counter()
        s = train_opd(ex, Run(out, student=default_student_spec(quant='none'), teacher='toy:teacher'), cfg)
        r = s['rollouts']
        return dict(seconds=time.perf_counter() - t0, gen_seconds=r['gen_seconds'], step_seconds=r['step_seconds'],
                    gen_share=r['gen_share'], gen_tokens=r['gen_tokens'], engine_start_seconds=r.get('engine_start_seconds', 0.0))
    finally:
        ro.DEFAULT_KV_CACHE = old


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=3); ap.add_argument('--prompts', type=int, default=32)
    ap.add_argument('--n', type=int, default=4); ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--max-new-tokens', type=int, default=256); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--tiny', action='store_true', help='a smoke run (CI)')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks/results/rollout_speed'))
    ap.add_argument('--strict', action='store_true', help='refuse to write results from a dirty git tree')
    a = ap.parse_args(argv)
    if a.tiny: a.reps, a.prompts, a.n, a.steps, a.max_new_tokens = 1, 4, 2, 1, 32
    import torch
    torch.set_num_threads(a.threads)
    from reasondistill.models import load_model, render_prompt
    from reasondistill.toyworld import toy_problems
    from reasondistill.eval.compare import write_benchmark
    t_start = time.time()
    model, tok = load_model('toy:teacher', device='cpu')
    prompts = [render_prompt(tok, p.question) for p in toy_problems(max(1, a.prompts // 8 + 1), split='test')][:a.prompts]
    generation_arm(model, tok, prompts[:2], 1, 'dynamic', 8)        # warm-up
    engine, garms = None, ARMS
    try:
        import vllm  # noqa: F401
        from reasondistill.vllm_backend import load_engine
        engine = load_engine('toy:teacher', dtype='float32', enforce_eager=True, distributed_executor_backend='uni')
        garms = ARMS + ('vllm',)
        generation_arm(None, None, prompts[:2], 1, 'vllm', 8, engine)  # warm-up
    except ImportError: pass
    gen = {k: [] for k in garms}; cpu = {k: [] for k in garms}; tokens = {}
    for rep in range(a.reps):
        for arm in (garms if rep % 2 == 0 else garms[::-1]):
            secs, cs, ids = generation_arm(model, tok, prompts, a.n, arm, a.max_new_tokens, engine)
            gen[arm].append(secs); cpu[arm].append(cs); tokens[arm] = ids
            print(f'generation rep {rep} {arm:8} {secs:6.1f} s wall, {cs:6.1f} s CPU  {sum(map(len, ids)) / secs:7.0f} tok/s', flush=True)
    same = sum(x == y for x, y in zip(tokens['dynamic'], tokens['static'])) / len(tokens['dynamic'])
    n_tok = {k: sum(map(len, v)) for k, v in tokens.items()}
    if engine is not None: engine.close()        # its worker threads would compete with the training steps below
    oarms = garms                                   # the on-policy arms: vLLM rollouts too, where it is installed
    onp = {k: [] for k in oarms}
    with tempfile.TemporaryDirectory() as root:
        for rep in range(a.reps):
            for arm in (oarms if rep % 2 == 0 else oarms[::-1]):
                r = onpolicy_arm(arm, a.steps, root); onp[arm].append(r)
                print(f"on-policy rep {rep} {arm:8} step {r['step_seconds']:6.1f} s  generation {r['gen_seconds']:6.1f} s "
                      f"(share {r['gen_share']:.2f})", flush=True)
    med = {k: statistics.median(v) for k, v in gen.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    tps = {k: n_tok[k] / med[k] for k in garms}
    o = {k: dict(step=statistics.median(r['step_seconds'] for r in v), gen=statistics.median(r['gen_seconds'] for r in v),
                 share=statistics.median(r['gen_share'] for r in v)) for k, v in onp.items()}
    rows = dict(generation=dict(seconds=gen, cpu_seconds=cpu, median=med, cpu_median=cmed, tokens=n_tok, tokens_per_s=tps,
                                identical_share=same, speedup=med['dynamic'] / med['static'],
                                cpu_speedup=cmed['dynamic'] / cmed['static']),
                onpolicy=dict(runs=onp, median=o, step_speedup=o['dynamic']['step'] / o['static']['step'],
                              gen_speedup=o['dynamic']['gen'] / o['static']['gen']))
    lines = ['# CPU rollout speed: dynamic vs static KV cache (HF backend)', '',
             f"Toy teacher, {len(prompts)} test prompts x {a.n} samples, T = 1, at most {a.max_new_tokens} new tokens; "
             f"{a.reps} repetitions per arm, alternating; {a.threads} torch threads. Medians.", '',
             '| arm | generation (s, wall) | generation (s, CPU) | tokens/s | on-policy step (s) | of which generation (s) | generation share |',
             '|---|---|---|---|---|---|---|']
    lines += [f"| {k} | {med[k]:.1f} | {cmed[k]:.1f} | {tps[k]:.0f} | {o[k]['step']:.1f} | {o[k]['gen']:.1f} | {o[k]['share']:.2f} |" for k in ARMS]
    if engine is not None:
        rows['generation']['vllm_speedup_tokens_per_s'] = tps['vllm'] / tps['dynamic']
        lines += [f"| vllm (CPU engine) | {med['vllm']:.1f} | {cmed['vllm']:.1f} | {tps['vllm']:.0f} | {o['vllm']['step']:.1f} | "
                  f"{o['vllm']['gen']:.1f} | {o['vllm']['share']:.2f} |"]
    lines += ['', f"Time of the dynamic cache divided by time of the static one (above 1: static is faster): trace generation "
              f"{rows['generation']['speedup']:.2f} in wall time and {rows['generation']['cpu_speedup']:.2f} in CPU time; "
              f"on-policy steps {rows['onpolicy']['step_speedup']:.2f}, their generation part {rows['onpolicy']['gen_speedup']:.2f}. "
              f"Identical completions between the arms: {same:.1%} (same seeds; the caches differ only in how attention "
              "skips unused positions, so a rare token can flip where two logits nearly tie)."]
    if engine is not None:
        lines += ['', f"vLLM's CPU engine over the HF backend (dynamic cache), in tokens per second: "
                  f"{rows['generation']['vllm_speedup_tokens_per_s']:.2f}x ({n_tok['vllm']} vs {n_tok['dynamic']} tokens: "
                  "its sampler draws other samples, so the token counts differ). Its CPU time is the calling process's "
                  "only, so compare wall time. Its on-policy row samples the rollouts through the engine with the student's "
                  "adapter saved and loaded at every step (counted as rollout time); the engine's start, once per run, is "
                  f"left out (median {statistics.median(r['engine_start_seconds'] for r in onp['vllm']):.1f} s)."]
    else: lines += ['', 'vLLM is not installed in this environment, so its arm did not run.']
    write_benchmark(a.out, lines, dict(config=vars(a), results=rows), t_start=t_start, strict=a.strict)


if __name__ == '__main__':
    main()
