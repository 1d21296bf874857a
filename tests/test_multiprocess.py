"""Training with several processes (DDP over gloo on CPU): SFT and KD launched with the shipped
`configs/accelerate/ddp.yaml` (`accelerate launch --config_file ... --num_processes 2 --mixed_precision no`: Accelerate
starts torchrun; with no GPU the trainer's `use_cpu` makes it a gloo process group) must give the loss curve of one
process with the same global batch, and only rank 0 may write the run's files.

Why the curves can match exactly (up to float summation order):
- the same global batch: 1 process x 8 sequences vs 2 processes x 4 (`TrainConfig.batch_size` is per device);
- the same data order: the trainer's `seed`/`data_seed` and Accelerate's seedable sampler (`use_seedable_sampler=True`,
  the default) give every rank the same permutation, and `split_batches=False` hands rank r the per-device batches
  r, r + 2, ... of it, so step k sees items 8k .. 8k + 7 in both runs; 32 examples split evenly (with an uneven split
  Accelerate's `even_batches` repeats samples on the last step and the curves would differ there);
- the same normalisation: `average_tokens_across_devices=True` (the transformers default) divides each rank's summed
  loss by the global token count (`DistillTrainer.compute_loss` multiplies by the world size, as DDP averages gradients);
- the same initialisation: `set_seed` before the LoRA adapters are created, and DDP broadcasts rank 0's weights;
- no randomness in the step: LoRA dropout 0, no warm-up noise, fp32.
Measured on 2 CPU cores: largest relative difference 1.8e-7 (SFT) and 1.1e-7 (KD) over 6 steps; the test allows 1e-5."""
import json, os, socket, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5            # relative, per logged step

JOB = r'''
import json, os, random, sys
from pathlib import Path
method, out, bs, audit_dir = sys.argv[1], Path(sys.argv[2]).resolve(), int(sys.argv[3]), Path(sys.argv[4])
rank = int(os.environ.get('RANK', 0))
writes = []
def _under(p): return str(Path(os.fsdecode(p)).resolve()).startswith(str(out))
def hook(event, args):        # every file this process opens for writing, renames or removes under `out` (folders made are not counted)
    if event == 'open' and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        w = (isinstance(mode, str) and any(c in mode for c in 'wax+')) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if w and _under(args[0]): writes.append(os.fsdecode(args[0]))
    elif event in ('os.rename', 'os.remove', 'shutil.rmtree', 'os.truncate'):
        if isinstance(args[0], (str, bytes, os.PathLike)) and _under(args[0]): writes.append(f'{event} {os.fsdecode(args[0])}')
sys.addaudithook(hook)
import torch
torch.set_num_threads(1)
from reasondistill.models import load_tokenizer, render_prompt, ModelSpec, LoraSpec
from reasondistill.methods.sft import SFTConfig, train_sft
from reasondistill.methods.kd import KDConfig, train_kd
from reasondistill.train import TrainConfig, FidelityConfig, Run
from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace
tok = load_tokenizer('toy:student')
rng = random.Random(0)
ex = [dict(prompt=render_prompt(tok, p.question), completion=reference_trace(parse_toy_question(p.question), rng, slip=0)[0])
      for p in toy_problems(8, levels=[1, 2, 3, 4], split='train')]
tc = TrainConfig(lr=2e-3, max_steps=6, batch_size=bs, logging_steps=1, save_steps=3, max_length=160, seed=0, warmup_ratio=0.0)
student = ModelSpec('toy:student', quant='none', lora=LoraSpec(r=4, alpha=8))
if method == 'sft': res = train_sft(ex, Run(str(out), student), SFTConfig(tc))
else: res = train_kd(ex, Run(str(out), student, teacher='toy:teacher'), KDConfig(tc, fidelity=FidelityConfig(heldout=0)))
audit_dir.mkdir(parents=True, exist_ok=True)
(audit_dir / f'rank{rank}.json').write_text(json.dumps(dict(writes=sorted(set(writes)), global_step=res['global_step'],
                                                            train_loss=res['train_loss'], loss_tokens=res.get('loss_tokens'))))
'''

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _run(cmd, cwd):
    env = dict(os.environ, RD_PROGRESS='0', TOKENIZERS_PARALLELISM='false', OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

def _losses(out) -> list:
    return [(h['step'], h['loss']) for h in json.loads((Path(out) / 'train_log.json').read_text()) if 'loss' in h]

@pytest.fixture(scope='module', params=['sft', 'kd'])
def runs(request, tmp_path_factory):
    "The same job run by 1 process (batch 8) and by 2 processes (batch 4 each): {n: (output folder, {rank: audit})}."
    m, d = request.param, tmp_path_factory.mktemp(request.param)
    job = d / 'job.py'; job.write_text(JOB)
    _run([sys.executable, str(job), m, str(d / 'one'), '8', str(d / 'audit1')], ROOT)
    _run([sys.executable, '-m', 'accelerate.commands.launch', '--config_file', str(ROOT / 'configs/accelerate/ddp.yaml'),
          '--num_processes', '2', '--mixed_precision', 'no', '--main_process_port', str(_free_port()),
          str(job), m, str(d / 'two'), '4', str(d / 'audit2')], ROOT)
    audit = lambda a: {int(p.stem[4:]): json.loads(p.read_text()) for p in (d / a).glob('rank*.json')}
    return m, {1: (d / 'one', audit('audit1')), 2: (d / 'two', audit('audit2'))}

def test_accelerate_configs_load():
    "Every shipped launch config parses with Accelerate's own loader (the DDP one is also run above; FSDP/DeepSpeed are untested)."
    from accelerate.commands.config.config_args import load_config_from_file
    got = {p.stem: load_config_from_file(str(p)).distributed_type.value for p in (ROOT / 'configs/accelerate').glob('*.yaml')}
    assert got == {'ddp': 'MULTI_GPU', 'fsdp': 'FSDP', 'deepspeed_zero2': 'DEEPSPEED', 'deepspeed_zero3': 'DEEPSPEED'}

def test_two_processes_match_one(runs):
    m, r = runs
    assert sorted(r[2][1]) == [0, 1], 'both ranks must finish'
    one, two = _losses(r[1][0]), _losses(r[2][0])
    assert [s for s, _ in one] == [s for s, _ in two] == list(range(1, 7))
    rel = [abs(a - b) / abs(a) for (_, a), (_, b) in zip(one, two)]
    assert max(rel) < TOL, f'{m}: 2-process losses differ from 1-process by up to {max(rel):.2e} (relative): {one} vs {two}'
    assert one[0][1] != one[-1][1], 'the loss must move, or the comparison says nothing'
    for a in r[2][1].values(): assert a['train_loss'] == pytest.approx(r[1][1][0]['train_loss'], rel=TOL)

def test_rank1_writes_nothing_but_checkpoint_shards(runs):
    "The trainer's checkpoints are rank 0's (transformers' `should_save`); rank 1 may only create folders."
    m, r = runs
    assert r[2][1][0]['writes'], 'the audit must see rank 0 write (else it sees nothing)'
    ck = [w for w in r[2][1][1]['writes'] if '/checkpoint-' in w]
    assert not ck, f'{m}: rank 1 wrote checkpoint files {ck}'

def test_only_rank0_writes_final_files(runs):
    m, r = runs
    assert r[2][1][1]['writes'] == [], f'{m}: rank 1 wrote {r[2][1][1]["writes"]}'

def test_loss_tokens_are_global(runs):
    m, r = runs
    if m != 'kd': pytest.skip('SFT has no loss_tokens')
    assert r[2][1][0]['loss_tokens'] == r[1][1][0]['loss_tokens']


# --- trace generation by several workers ------------------------------------------------------------------------
# A `TraceStore` has one writer at a time by design (an exclusive lock held while it is open, and an index built when it
# is opened), so two workers cannot append to one store. The project's choice: worker `rank` of `world` generates the
# problems whose id hashes (crc32) to `rank` (`generate_traces(..., rank=, world=)`) into its own store, and the worker
# stores are merged into one afterwards with `TraceStore.append`, which skips keys already stored: a merge can be re-run
# (or killed and re-run) and each (problem, sample) is stored once. Each worker store is itself exactly-once under kills.

WORKER = r'''
import json, sys, torch
torch.set_num_threads(1)
from reasondistill.models import load_model
from reasondistill.toyworld import toy_problems
from reasondistill.traces import generate_traces
from reasondistill.rollout import SamplingParams
store, rank, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model, tok = load_model('toy:teacher')
probs = toy_problems(6, levels=[2, 4, 6], split='train')
st = generate_traces(probs, model, tok, store, n_samples=2, params=SamplingParams(max_new_tokens=120, seed=5), batch_size=2,
                     rank=rank, world=world)
print(json.dumps(st), flush=True)
'''

def _lines(store) -> int:
    return sum(p.read_bytes().count(b'\n') for p in Path(store).glob('traces-*.jsonl'))

def test_rank_out_of_range_is_refused(tmp_path):
    from reasondistill.traces import generate_traces
    with pytest.raises(ValueError, match='rank must lie in'): generate_traces([], None, None, tmp_path / 's', rank=2, world=2)
    assert not (tmp_path / 's').exists()

def test_two_workers_one_killed_then_merged_exactly_once(tmp_path):
    import signal, time, zlib
    from reasondistill.toyworld import toy_problems
    from reasondistill.tracestore import TraceStore
    probs = toy_problems(6, levels=[2, 4, 6], split='train')
    want = {(p.id, i) for p in probs for i in range(2)}
    share = {r: {k for k in want if zlib.crc32(k[0].encode()) % 2 == r} for r in (0, 1)}
    assert share[0] and share[1], 'both workers must have work'
    (tmp_path / 'worker.py').write_text(WORKER)
    env = dict(os.environ, RD_PROGRESS='0', OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    start = lambda r: subprocess.Popen([sys.executable, str(tmp_path / 'worker.py'), str(tmp_path / f'w{r}'), str(r), '2'],
                                       cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w0, w1 = start(0), start(1)                              # both run at once
    t0 = time.monotonic()
    while _lines(tmp_path / 'w1') < 2 and w1.poll() is None and time.monotonic() - t0 < 240: time.sleep(0.005)
    w1.send_signal(signal.SIGKILL); w1.wait(timeout=30)
    assert w1.returncode == -signal.SIGKILL, 'worker 1 finished before it was killed'
    at_kill = _lines(tmp_path / 'w1')
    assert 0 < at_kill < len(share[1]), f'the kill must land mid-way ({at_kill} of {len(share[1])} traces stored)'
    with TraceStore(tmp_path / 'w1', readonly=True) as st: before = {t.key: t.to_dict() for t in st}
    out0, err0 = w0.communicate(timeout=300)
    assert w0.returncode == 0, err0[-2000:]
    w1 = start(1); out1, err1 = w1.communicate(timeout=300)  # the restart generates only what is missing
    assert w1.returncode == 0, err1[-2000:]
    s1 = json.loads(out1.strip().splitlines()[-1])
    assert s1['already_done'] == len(before) and s1['generated'] == len(share[1]) - len(before)
    for r in (0, 1):
        with TraceStore(tmp_path / f'w{r}', readonly=True) as st:
            assert set(st.keys()) == share[r] and len(st) == _lines(tmp_path / f'w{r}') and st.duplicates_on_disk == 0
            if r == 1: assert all(st.get(k[0])[k[1]].to_dict() == d for k, d in before.items()), 'stored traces changed'
    for attempt in range(2):                                 # merge, then merge again: the second adds nothing
        with TraceStore(tmp_path / 'w0', readonly=True) as a, TraceStore(tmp_path / 'w1', readonly=True) as b, \
             TraceStore(tmp_path / 'all', meta=a.meta) as m:
            added = m.append(a) + m.append(b)
        assert added == (len(want) if attempt == 0 else 0)
    with TraceStore(tmp_path / 'all', readonly=True) as m:
        assert set(m.keys()) == want and len(m) == len(want) == _lines(tmp_path / 'all') and m.duplicates_on_disk == 0
