"""Tests for the on-policy family — `reasondistill.methods.onpolicy` (the rollout schedule), `gkd`, `opd`, `kepo`,
`opsd` and `atesd`; the notebooks hold the readable examples.

References are written from the definitions, independently of the modules: full [N, V] log-softmaxes in float64
under plain autograd, TRL's own GKD loss, a double loop for discounted advantages, exact expectations over the
vocabulary for the policy-gradient identity, and the models' own logits sliced by prompt length for OPSD."""
import json
import pytest
import torch
from reasondistill.signals import TeacherSignal
from reasondistill.divergences import token_logprobs, clipped_fkl
from reasondistill.registry import make_config
from reasondistill.methods.onpolicy import OnPolicyConfig, RolloutConfig, LossConfig, divergence_objective, rollout_batch
from reasondistill.methods.gkd import GKDConfig
from reasondistill.methods.opd import OPDConfig, opd_objective, discounted_returns
from reasondistill.methods.opsd import OPSDConfig, SelfTeacherConfig, OPSDTrainer, teacher_batch

torch.set_num_threads(1)

def batch(seed=0, B=3, T=9, H=8, V=31):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(B, T, H, dtype=torch.float64, generator=g).requires_grad_()
    W = (0.6 * torch.randn(V, H, dtype=torch.float64, generator=g)).requires_grad_()
    zt = 1.5 * torch.randn(B, T, V, dtype=torch.float64, generator=g)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[0, :3] = -100
    if B > 2: labels[1, 6:] = -100; labels[2, :1] = -100
    m = labels != -100
    seq = torch.arange(B)[:, None].expand(B, T)[m]
    return hs, W, zt, labels, m, seq, V

def grads(loss, *xs): return torch.autograd.grad(loss, xs)

@pytest.mark.parametrize('beta', [0.0, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize('tau', [1.0, 0.9, 2.0])
def test_gkd_loss_matches_trl(beta, tau):
    from trl.experimental.gkd import GKDTrainer
    hs, W, zt, labels, m, seq, V = batch(1)
    cfg = GKDConfig(rollout=RolloutConfig(temperature=tau), loss=LossConfig(beta=beta, chunk_size=4))
    got = divergence_objective(hs[m], W, labels[m], TeacherSignal('full', tau, V, logits=zt[m]), seq, cfg)[0] / m.sum()
    ref = GKDTrainer.generalized_jsd_loss(hs @ W.T, zt, labels, beta=beta, temperature=tau)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    for a, b in zip(grads(got, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)

def naive_opd(hs, W, zt, labels, discount, tau):
    total = 0
    for b in range(len(hs)):
        pos = (labels[b] != -100).nonzero().squeeze(1).tolist()
        ls, lt = torch.log_softmax(hs[b] @ W.T / tau, -1), torch.log_softmax(zt[b] / tau, -1)
        s = [ls[p, labels[b, p]] for p in pos]
        r = [(lt[p, labels[b, p]] - ls[p, labels[b, p]]).item() for p in pos]
        for i in range(len(pos)): total = total - sum(discount ** (j - i) * r[j] for j in range(i, len(pos))) * s[i]
    return total

@pytest.mark.parametrize('discount', [0.0, 0.37, 1.0])
@pytest.mark.parametrize('kind', ['full', 'topk', 'sampled'])
@pytest.mark.parametrize('tau', [1.0, 1.3])
def test_opd_loss_matches_naive(discount, kind, tau):
    hs, W, zt, labels, m, seq, V = batch(2)
    full = TeacherSignal('full', tau, V, logits=zt[m])
    sig = {'full': full, 'sampled': full.to_sampled(labels[m]),
           'topk': TeacherSignal('topk', tau, V, topk_ids=torch.zeros(int(m.sum()), 1, dtype=torch.long),
                                 topk_logp=torch.zeros(int(m.sum()), 1), log_tail=torch.zeros(int(m.sum())),
                                 token_logp=full.to_sampled(labels[m]).token_logp)}[kind]
    cfg = OPDConfig(loss=LossConfig(signal=kind, chunk_size=5), discount=discount, rollout=RolloutConfig(temperature=tau))
    got, met = opd_objective(hs[m], W, labels[m], sig, seq, cfg)
    ref = naive_opd(hs, W, zt, labels, discount, tau)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    for a, b in zip(grads(got, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)
    with torch.no_grad():
        s = torch.log_softmax(hs[m] @ W.T / tau, -1).gather(-1, labels[m][:, None]).squeeze(-1)
        t = torch.log_softmax(zt[m] / tau, -1).gather(-1, labels[m][:, None]).squeeze(-1)
    assert met['reverse_kl'] == pytest.approx((s - t).mean().item(), rel=1e-9)

def test_opd_expected_gradient_is_the_reverse_kl_gradient():
    "Exact expectation over the sampled token: E_{y~q}[-(log p(y) - log q(y)) grad log q(y)] = grad KL(q || p)."
    hs, W, zt, labels, m, seq, V = batch(3, B=1, T=5)
    h, t = hs[0].detach().requires_grad_(), zt[0]
    q = torch.softmax(h @ W.detach().T, -1).detach()
    cfg = OPDConfig()
    exp = 0
    for y in range(V):                                  # every position samples token y, weighted by q(y)
        toks = torch.full((len(h),), y)
        sig = TeacherSignal('full', 1.0, V, logits=t).to_sampled(toks)
        loss = opd_objective(h, W.detach(), toks, sig, torch.arange(len(h)), cfg)[0]  # each position its own sequence
        exp = exp + (grads(loss, h)[0] * q[:, y:y + 1])
    ls = torch.log_softmax(h @ W.detach().T, -1)
    rkl = (ls.exp() * (ls - torch.log_softmax(t, -1))).sum()
    torch.testing.assert_close(exp, grads(rkl, h)[0], rtol=1e-8, atol=1e-10)

def test_discounted_returns_and_token_logprobs():
    g = torch.Generator().manual_seed(4)
    r = torch.randn(11, dtype=torch.float64, generator=g)
    seq = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4])
    for gam in (0.0, 0.5, 1.0):
        want = torch.tensor([sum(gam ** (j - i) * r[j].item() for j in range(i, 11) if seq[j] == seq[i]) for i in range(11)], dtype=torch.float64)
        torch.testing.assert_close(discounted_returns(r, seq, gam), want)
    with pytest.raises(ValueError, match='discount'): discounted_returns(r, seq, 1.5)
    h = torch.randn(13, 5, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(17, 5, dtype=torch.float64, generator=g)
    y = torch.randint(0, 17, (13,), generator=g)
    got = token_logprobs(h, W, y, 0.8, chunk_size=4)
    ref = torch.log_softmax(h @ W.T / 0.8, -1).gather(-1, y[:, None]).squeeze(-1)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(grads(got.sum(), h)[0], grads(ref.sum(), h)[0])

@pytest.mark.parametrize('clip', [0.003, 0.05, 0.5])
def test_clipped_fkl_matches_definition(clip):
    hs, W, zt, labels, m, seq, V = batch(5)
    sig = TeacherSignal('full', 1.1, V, logits=zt[m])
    got = clipped_fkl(hs[m], W, sig, clip, 1.1, chunk_size=3)
    t, s = torch.log_softmax(zt[m] / 1.1, -1), torch.log_softmax(hs[m] @ W.T / 1.1, -1)
    ref = torch.clamp(t.exp() * (t - s), max=clip).sum()
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)
    for a, b in zip(grads(got, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    # the clipped objective also runs through OPSD's objective hook
    t = OPSDTrainer.__new__(OPSDTrainer); t.op = OPSDConfig(clip=clip, rollout=RolloutConfig(temperature=1.1))
    got2 = t.objective(hs[m], W, labels[m], sig, seq)[0]
    assert got2.item() == pytest.approx(ref.item(), rel=1e-10)

def test_configs_refuse_bad_settings():
    with pytest.raises(ValueError, match='lmbda'): RolloutConfig(lmbda=-0.1)
    with pytest.raises(ValueError, match='needs loss.signal'): OnPolicyConfig(loss=LossConfig(signal='sampled'))
    with pytest.raises(ValueError, match='divergence must be'): LossConfig(divergence='ppo')
    with pytest.raises(ValueError, match='> 0'): RolloutConfig(temperature=0)
    with pytest.raises(ValueError, match='objective must be'): OPDConfig(objective='ppo')
    assert make_config('gkd').rollout.lmbda == 0.5 and make_config('gkd').tau == 0.9
    assert make_config('opsd-jsd').tau == 1.1 and make_config('opsd').tau == 1.0
    with pytest.raises(ValueError, match='privileged'): SelfTeacherConfig(privileged='hint')

def test_teacher_batch_aligns_completions():
    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 10, 11, 0, 0]])
    labels = torch.tensor([[-100, -100, 7, 8, 9, -100], [-100, -100, -100, 11, -100, -100]])
    mask = labels[:, 1:] != -100
    b = teacher_batch(ids, mask, torch.tensor([1, 0]), [[1, 2, 3], [4]], pad_token_id=0)
    assert b['input_ids'].tolist() == [[4, 7, 8, 9], [1, 2, 3, 11]]
    assert b['mask'].tolist() == [[True, True, True], [False, False, True]]
    assert b['input_ids'][:, 1:][b['mask']].tolist() == ids[:, 1:][mask].tolist()   # the same tokens, in the same order


def test_rollout_batch_layout(toy):
    from reasondistill.models import load_model
    from reasondistill.rollout import SamplingParams
    tok, _, ex = toy
    model, _ = load_model('toy:student')
    prompts = [e['prompt'] for e in ex[:3]]
    b, st = rollout_batch(model, tok, prompts, SamplingParams(max_new_tokens=40, seed=3), max_length=60)
    for i, p in enumerate(prompts):
        pid = tok(p, add_special_tokens=False)['input_ids']
        n = int(b['attention_mask'][i].sum())
        assert b['input_ids'][i, :len(pid)].tolist() == pid and (b['labels'][i, :len(pid)] == -100).all()
        comp = b['labels'][i, len(pid):n].tolist()
        assert tok.decode(comp, skip_special_tokens=True) == st['texts'][i] and n <= 60
    assert st['tokens'] == int((b['labels'] != -100).sum()) and tok.padding_side == 'left'

def test_opsd_trainer_loss_equals_manual_computation(toy, tmp_path):
    "OPSDTrainer.compute_loss = clipped FKL between the student on its prompt and the base model on the teacher prompt, sliced by prompt length."
    import trl, datasets
    from reasondistill.models import load_model, ModelSpec, LoraSpec, render_prompt
    from reasondistill.signals import ModelTeacher, tokenize_example, collate_tokenized
    from reasondistill.train import tokenized_rows
    from reasondistill.traces import reference_examples
    from reasondistill.methods.opsd import opsd_examples
    tok, probs, ex = toy
    torch.manual_seed(0)
    model, stok = load_model(ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8)), trainable=True)
    with torch.no_grad():                                  # adapters away from zero: student != base teacher
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    stok.padding_side = 'right'
    cfg = make_config('opsd', {'self_teacher.template': 'short', 'clip': 0.02})
    oex = opsd_examples(reference_examples(probs, stok)[0], stok, cfg)
    args = trl.SFTConfig(output_dir=str(tmp_path), max_length=256, completion_only_loss=True, packing=False, report_to='none',
                         use_cpu=True, dataset_num_proc=None)
    tr = OPSDTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(tokenized_rows(stok, oex, 256)),
                            processing_class=stok, teacher=ModelTeacher(model, disable_adapter=True), onpolicy=cfg,
                            prompts=[e['prompt'] for e in oex], teacher_prompts=[e['teacher_prompt'] for e in oex])
    comps = [e['completion'] for e in ex[:3]]
    rows = [dict(tokenize_example(stok, oex[i]['prompt'], comps[i], 256), example_idx=i) for i in range(3)]
    inp = collate_tokenized(rows, stok.pad_token_id)
    loss = tr.compute_loss(model, dict(inp))
    total, n = 0.0, 0
    for i in range(3):
        ids = torch.tensor(rows[i]['input_ids']); P = rows[i]['completion_mask'].index(1); L = len(ids) - P
        tids = torch.tensor(stok(oex[i]['teacher_prompt'])['input_ids'] + ids[P:].tolist()); Pt = len(tids) - L
        with torch.no_grad():
            s = torch.log_softmax(model(input_ids=ids[None]).logits[0, P - 1:P - 1 + L].double(), -1)
            with model.disable_adapter(): t = torch.log_softmax(model(input_ids=tids[None]).logits[0, Pt - 1:Pt - 1 + L].double(), -1)
        total += torch.clamp(t.exp() * (t - s), max=0.02).sum().item(); n += L
    assert loss.item() == pytest.approx(total / n, rel=1e-4)
    assert total > 0

def _store(path, probs, ex):
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    with TraceStore(path, meta=dict(model='toy:teacher')) as st:
        st.append([Trace(p.id, 0, 'toy:teacher', e['prompt'], e['completion'], verdict='correct', finish_reason='stop',
                         n_completion_tokens=len(e['completion'].split()), meta=dict(level=p.meta['level'])) for p, e in zip(probs, ex)])

def test_cli_train_gkd_opd_opsd(toy, tmp_path):
    from reasondistill.cli import main
    tok, probs, ex = toy
    _store(tmp_path / 'traces', probs, ex)
    common = ['--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2', '--lora-r', '4']
    main(['train', '--method', 'gkd', '--traces', str(tmp_path / 'traces'), '--out', str(tmp_path / 'gkd'), *common,
          '--set', 'rollout.max_new_tokens=24', 'rollout.lmbda=1.0', 'loss.beta=0.9', 'train.lr=0.001'])
    done = json.loads((tmp_path / 'gkd' / 'train_done.json').read_text())
    assert done['global_step'] == 2 and done['method'] == 'gkd' and done['config']['loss']['beta'] == 0.9
    assert done['rollouts']['on_policy'] == 2 and done['n_heldout'] == 1 and 'fidelity' in done
    main(['train', '--method', 'opd', '--out', str(tmp_path / 'opd'), *common, '--set', 'rollout.max_new_tokens=24', 'budget.tokens=1'])
    done = json.loads((tmp_path / 'opd' / 'train_done.json').read_text())
    assert done['config']['objective'] == 'sampled' and done['n_examples'] == 6 and done['rollouts']['gen_share'] > 0
    assert done['global_step'] == 1 and done['rollouts']['loss_tokens'] >= 1       # the token budget stopped it early
    main(['train', '--method', 'opsd', '--out', str(tmp_path / 'opsd'), *common, '--set', 'rollout.max_new_tokens=24', 'self_teacher.teacher=live'])
    done = json.loads((tmp_path / 'opsd' / 'train_done.json').read_text())
    assert done['teacher'] == 'self:live' and done['config']['self_teacher']['template'] == 'short' and done['global_step'] == 2
    with pytest.raises(ValueError, match='give traces'):
        main(['train', '--method', 'gkd', '--out', str(tmp_path / 'x'), *common])
    # a top-k teacher signal on student samples; and seq_kd: the off-policy batches sampled by the teacher
    main(['train', '--method', 'opd-full', '--out', str(tmp_path / 'topk'), *common, '--set', 'rollout.max_new_tokens=24', 'loss.signal=topk', 'loss.topk=8'])
    done = json.loads((tmp_path / 'topk' / 'train_done.json').read_text())
    assert done['config']['loss']['signal'] == 'topk' and done['config']['loss']['divergence'] == 'rkl' and done['global_step'] == 2
    main(['train', '--method', 'gkd', '--traces', str(tmp_path / 'traces'), '--out', str(tmp_path / 'seqkd'), *common,
          '--set', 'rollout.max_new_tokens=24', 'rollout.lmbda=0', 'rollout.seq_kd=true'])
    r = json.loads((tmp_path / 'seqkd' / 'train_done.json').read_text())['rollouts']
    assert r['on_policy'] == 0 and r['teacher_generated'] == 2 and r['gen_tokens'] > 0

def test_cli_train_kepo_gate_and_atesd(toy, tmp_path):
    from reasondistill.cli import main
    common = ['--problems', 'toy:train:2:1,3', '--max-steps', '2', '--batch-size', '2', '--lora-r', '4']
    main(['train', '--method', 'kepo-gate', '--out', str(tmp_path / 'kepo'), *common, '--set', 'rollout.max_new_tokens=24', 'budget.save_at=[1]'])
    done = json.loads((tmp_path / 'kepo' / 'train_done.json').read_text())
    assert done['config']['gate']['norm'] == 'kept' and done['config']['gate']['verifier'] == 'toy' and done['global_step'] == 2
    r = done['rollouts']
    assert r['gen_sequences'] == 4 and 0 <= r['gated_out'] <= 4
    assert (tmp_path / 'kepo' / 'tokens-1').exists() == (r['loss_tokens'] >= 1)      # the milestone adapter, once reached
    main(['train', '--method', 'atesd', '--out', str(tmp_path / 'atesd'), *common, '--set', 'rollout.max_new_tokens=24', 'self_teacher.teacher=live',
          'exposure.hold=1', 'exposure.lookahead=1', 'exposure.ctrl_batch=1', 'exposure.probe=2'])
    done = json.loads((tmp_path / 'atesd' / 'train_done.json').read_text())
    assert done['method'] == 'atesd' and done['controller_updates'] == 2 and len(done['exposure_history']) == 2
    assert done['final_policy']['a'] >= 1 and done['final_policy']['b'] >= 1
    main(['train', '--method', 'atesd-fixed', '--out', str(tmp_path / 'fixed'), *common, '--set', 'rollout.max_new_tokens=24', 'exposure.reveal=0.25', 'exposure.probe=2'])
    done = json.loads((tmp_path / 'fixed' / 'train_done.json').read_text())
    assert {h['ratio'] for h in done['exposure_history']} == {0.25} and done['final_policy'] is None

def test_problem_specs_take_level_ranges():
    from reasondistill.data import parse_problems
    lv = lambda spec: sorted({p.meta['level'] for p in parse_problems(spec)})
    assert lv('toy:train:1:1-8') == list(range(1, 9)) and lv('toy:dev:1:1,4-5') == [1, 4, 5] and lv('toy:test:1:3') == [3]
    with pytest.raises(ValueError, match='ranges like 1-8'): parse_problems('toy:test:1:a-b')

def test_resumed_run_makes_the_same_draws(toy, tmp_path):
    "The on-policy draws and rollout seeds depend on (seed, step, micro-batch) only: a run resumed from a checkpoint repeats them."
    from transformers import TrainerCallback
    from reasondistill.train import TrainConfig, FidelityConfig, Run, default_student_spec
    from reasondistill.methods.gkd import train_gkd
    tok, probs, ex = toy
    tc = TrainConfig(lr=5e-3, max_steps=5, batch_size=2, max_length=256, logging_steps=1, save_steps=2, grad_accum=2)
    op = GKDConfig(train=tc, fidelity=FidelityConfig(heldout=0)); op.rollout.max_new_tokens = 16
    class Crash(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 3: raise RuntimeError('simulated crash')
    draws = lambda d: [(e['step'], e['on_policy']) for e in json.loads((tmp_path / d / 'train_log.json').read_text()) if 'on_policy' in e]
    run = lambda d: Run(str(tmp_path / d), default_student_spec(r=4), teacher='toy:teacher')
    train_gkd(ex, run('a'), op)
    with pytest.raises(RuntimeError, match='simulated'): train_gkd(ex, run('b'), op, callbacks=[Crash()])
    s = train_gkd(ex, run('b'), op)
    assert s['resumed_from'].endswith('checkpoint-2') and draws('a') == draws('b')
    assert 0 < sum(x for _, x in draws('a')) < 5                      # lmbda = 0.5 with 2 micro-batches per step: a mix

@pytest.mark.slow   # ~30-50 s: the smoke run of a benchmark script (RD_RUN=slow); kept out of the 20-minute CI
def test_onpolicy_toy_benchmark_tiny(tmp_path):
    import os, subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(root)}
    run = lambda out: subprocess.run([sys.executable, 'benchmarks/onpolicy_toy.py', '--tiny', '--threads', '1', '--work',
                                      str(tmp_path / 'work'), '--out', str(tmp_path / out)], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    p = run('op')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / 'op.json').read_text())
    assert set(r['aggregate']) == {'sft', 'kd', 'gkd', 'opd', 'kepo', 'opsd', 'atesd', 'tsd-kd', 'curiosft'}
    on = [x for x in r['runs'] if x['method'] in ('gkd', 'opd', 'kepo', 'opsd', 'atesd', 'tsd-kd')]
    assert len(on) == 6 and all(0 < x['gen_share'] < 1 for x in on)
    assert all(x['stage2_tokens'] > 0 for x in on if x['method'] != 'kepo')       # kepo's gate may drop every tiny rollout
    assert all(len(x['curve']) in (3, 4) and x['curve'][0]['tokens'] == 0 for x in r['runs'])
    assert (tmp_path / 'op.md').exists() and (tmp_path / 'op_by_level.png').exists() and (tmp_path / 'op_curves.png').exists()
    p = run('op2')                                       # re-running resumes: nothing is trained again
    assert p.returncode == 0 and 'seed 0 stage 1' in p.stdout and not any(f'seed 0 {m:8} acc' in p.stdout for m in r['aggregate'])
    # CurioSFT's entropy check on those runs
    p = subprocess.run([sys.executable, 'benchmarks/curiosft_entropy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'work'),
                        '--bench-json', str(tmp_path / 'op.json'), '--out', str(tmp_path / 'ent')], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    e = json.loads((tmp_path / 'ent.json').read_text())
    assert e['seeds'] == [0] and set(e['summary']) == {'stage1', 'sft', 'curiosft'} and e['summary']['sft']['d_high']['mean'] == 0

def test_atesd_exposure_benchmark_tiny(tmp_path):
    import os, subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(root)}
    p = subprocess.run([sys.executable, 'benchmarks/atesd_exposure.py', '--tiny', '--threads', '1', '--adapter', str(tmp_path / 'none'),
                        '--out', str(tmp_path / 'ex')], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / 'ex.json').read_text())
    (lab, res), = r['results'].items()
    assert res['ratios'] == [0.0, 1.0] and len(res['kl']) == 2 and all(k >= 0 for k in res['kl'])
    assert (tmp_path / 'ex.png').exists() and set(r['monotone'][lab]) == {'kl', 'disagreement'}
