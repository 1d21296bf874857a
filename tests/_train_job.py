"A small QLoRA SFT job for the resume test: `python _train_job.py OUT_DIR [SLEEP_PER_STEP]`."
import sys, time, random
from pathlib import Path
from transformers import TrainerCallback
from reasondistill.models import load_tokenizer, render_prompt
from reasondistill.methods.sft import SFTConfig, train_sft
from reasondistill.train import TrainConfig, Run, default_student_spec
from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace

class Slow(TrainerCallback):
    "Make steps slow enough for the parent test to kill the job between checkpoints."
    def __init__(self, s): self.s = s
    def on_step_end(self, args, state, control, **kw): time.sleep(self.s)

out, pause = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
tok = load_tokenizer('toy:student')
rng = random.Random(0)
ex = [dict(prompt=render_prompt(tok, p.question), completion=reference_trace(parse_toy_question(p.question), rng, slip=0)[0])
      for p in toy_problems(8, levels=[1, 2, 3, 4], split='train')]
cfg = TrainConfig(lr=2e-3, max_steps=12, batch_size=4, save_steps=4, save_total_limit=5, logging_steps=1, max_length=128, seed=0)
res = train_sft(ex, Run(out, default_student_spec(r=4)), SFTConfig(cfg), callbacks=[Slow(pause)] if pause else None)
print('RESULT', res['global_step'], res['resumed_from'])
