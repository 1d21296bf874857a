"""Tests for `reasondistill.methods.curiosft` (CurioSFT); the notebook holds the readable examples.

References are written from the definitions, independently of the module: a brute-force grid search for the per-token
temperature, full [N, V] log-softmaxes in float64 under plain autograd for the loss, the EMA recurrence written out
from recorded student snapshots, and a deep copy of the model holding the reference adapters for the teacher pass."""
import copy, functools, json, warnings
import pytest
import torch
from reasondistill.signals import TeacherSignal
from reasondistill.registry import make_config
from reasondistill.methods.curiosft import CurioConfig, CurioTrainer, adaptive_tau, curiosft_loss, AdapterReference, REFERENCE_FILE
from reasondistill.eval.diagnostics import entropy_split

torch.set_num_threads(1)

def H(z):
    lp = torch.log_softmax(z, -1)
    return -(lp.exp() * lp).sum(-1)

def grid_tau(z, tau_min=1.1, tau_max=1.5, topk=512, floor=0.03, grid=40001):
    "Brute force: the grid tau whose top-k entropy is closest to H + 0.5 sigmoid(2 (H - 1.2)); tau_min where the full entropy <= floor."
    ts = torch.linspace(tau_min, tau_max, grid, dtype=torch.float64)
    v = torch.topk(z, min(topk, z.shape[-1]), -1).values
    h0 = H(v)
    target = h0 + 0.5 * torch.sigmoid(2 * (h0 - 1.2))
    t = ts[(H(v[:, None, :] / ts[None, :, None]) - target[:, None]).abs().argmin(1)]
    return torch.where(H(z) <= floor, torch.full_like(t, tau_min), t), target

@pytest.mark.parametrize('topk', [512, 8])
def test_adaptive_tau_matches_grid_search(topk):
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.05, 0.5, 1.0, 1.5, 2.5, 4.0, 8.0, 30.0, 200.0], dtype=torch.float64)[:, None]
    z = torch.randn(len(scales), 50, dtype=torch.float64, generator=g) * scales
    tau = adaptive_tau(z, topk=topk)
    want, target = grid_tau(z, topk=topk)
    torch.testing.assert_close(tau, want, atol=2e-5, rtol=0)
    v = torch.topk(z, min(topk, 50), -1).values
    got_h = H(v / tau[:, None])
    inside = (tau > 1.1) & (tau < 1.5)
    assert inside.sum() >= 3                                               # the scales cover the interior ...
    torch.testing.assert_close(got_h[inside], target[inside], atol=1e-5, rtol=0)
    hi, lo = tau == 1.5, tau == 1.1                                        # ... and both clamps, exactly
    assert hi.any() and lo.any()
    assert (H(v[hi] / 1.5) <= target[hi]).all() and (H(v[lo & (H(z) > 0.03)] / 1.1) >= target[lo & (H(z) > 0.03)]).all()
    assert not tau.requires_grad

def test_low_entropy_rule_uses_the_full_vocabulary_entropy():
    z = torch.zeros(2, 600, dtype=torch.float64)
    z[:, 0] = 12.0                                 # one dominant token: full entropy ~ 0.0045 * 600 -> above 0.03 ...
    z[1, 0] = 40.0                                 # ... and a row that is one-hot to machine precision
    full = H(z)
    assert full[0] > 0.03 and full[1] <= 0.03
    tau = adaptive_tau(z, topk=4)                  # over the top 4 both rows look near-deterministic
    assert tau[1].item() == 1.1
    assert tau[0].item() == 1.5                    # the top-4 target is out of reach: clamped at tau_max, not the floor
    assert adaptive_tau(z, topk=4, floor=-1.0)[1].item() == 1.5        # without the rule the one-hot row is clamped high
    with pytest.raises(ValueError, match='tau_min <= tau_max'): adaptive_tau(z, tau_min=2.0, tau_max=1.5)

def naive_loss(hs, W, zr, y, tau, sd_weight):
    v = zr.shape[-1]
    lp = torch.log_softmax(hs @ W[:v].T, -1).gather(-1, y[:, None]).squeeze(-1)
    lr = torch.log_softmax(zr / tau[:, None], -1).gather(-1, y[:, None]).squeeze(-1)
    return (-lp + sd_weight * 0.5 * (lp - lr) ** 2).sum()

@pytest.mark.parametrize('chunk', [3, 5, 100])
@pytest.mark.parametrize('mode,sd_weight', [('adaptive', 1.0), ('adaptive', 0.3), ('fixed', 1.0)])
def test_loss_matches_naive_full_logits(chunk, mode, sd_weight):
    g = torch.Generator().manual_seed(chunk)
    N, Hd, V = 13, 7, 37
    hs = torch.randn(N, Hd, dtype=torch.float64, generator=g, requires_grad=True)
    W = (0.6 * torch.randn(V + 4, Hd, dtype=torch.float64, generator=g)).requires_grad_()  # head rows beyond the shared vocab
    zr = torch.randn(N, V, dtype=torch.float64, generator=g) * torch.linspace(0.3, 5, N, dtype=torch.float64)[:, None]
    y = torch.randint(0, V, (N,), generator=g)
    cfg = CurioConfig(chunk_size=chunk, sd_weight=sd_weight, tau_mode=mode, tau_topk=10)
    got, met = curiosft_loss(hs, W, y, TeacherSignal('full', 1.0, V, logits=zr), torch.zeros(N, dtype=torch.long), cfg)
    tau = grid_tau(zr, topk=10)[0] if mode == 'adaptive' else torch.full((N,), 1.3, dtype=torch.float64)
    ref = naive_loss(hs, W, zr, y, tau, sd_weight)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)             # tau to the grid's resolution
    for a, b in zip(torch.autograd.grad(got, (hs, W), retain_graph=True), torch.autograd.grad(ref, (hs, W))):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    exact = naive_loss(hs, W, zr, y, adaptive_tau(zr, topk=10) if mode == 'adaptive' else tau, sd_weight)
    assert got.item() == pytest.approx(exact.item(), rel=1e-12)
    for a, b in zip(torch.autograd.grad(got, (hs, W)), torch.autograd.grad(exact, (hs, W))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        lp = torch.log_softmax(hs @ W[:V].T, -1)
        assert met['nll'] == pytest.approx(-lp.gather(-1, y[:, None]).mean().item(), rel=1e-10)
        assert met['student_entropy'] == pytest.approx(H(hs @ W[:V].T).mean().item(), rel=1e-10)
        assert met['tau'] == pytest.approx(tau.mean().item(), abs=1e-4)

def test_reference_equal_to_student_at_tau_1_is_cross_entropy():
    g = torch.Generator().manual_seed(3)
    hs = torch.randn(9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    W = torch.randn(21, 5, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randint(0, 21, (9,), generator=g)
    sig = TeacherSignal('full', 1.0, 21, logits=(hs @ W.T).detach())
    got, met = curiosft_loss(hs, W, y, sig, None, CurioConfig(tau_mode='fixed', fixed_tau=1.0, chunk_size=4))
    ce = torch.nn.functional.cross_entropy(hs @ W.T, y, reduction='sum')
    assert got.item() == pytest.approx(ce.item(), rel=1e-12) and met['sd_term'] == pytest.approx(0, abs=1e-20)
    for a, b in zip(torch.autograd.grad(got, (hs, W)), torch.autograd.grad(ce, (hs, W))): torch.testing.assert_close(a, b)
    got, met = curiosft_loss(hs, W, y, sig, None, CurioConfig(chunk_size=4))      # tau >= 1.1: a positive term
    assert met['sd_term'] > 0 and got.item() > ce.item()

def test_configs_and_registry():
    c = make_config('curiosft')
    assert (c.sd_weight, c.tau_min, c.tau_max, c.tau_topk, c.bisect_iters, c.sync_every, c.sync_mix, c.reference) == \
           (1.0, 1.1, 1.5, 512, 20, 5, 0.99, 'ema')
    assert make_config('curiosft-fixed-tau').tau_mode == 'fixed' and make_config('curiosft-fixed-tau').fixed_tau == 1.3
    for kw, msg in [(dict(tau_mode='x'), 'tau_mode'), (dict(fixed_tau=0), 'fixed_tau'), (dict(tau_min=0), 'tau_min'),
                    (dict(reference='base'), 'reference must be'), (dict(sync_every=0), 'sync_every'),
                    (dict(sync_mix=1.5), 'sync_mix'), (dict(sd_weight=-1), 'sd_weight')]:
        with pytest.raises(ValueError, match=msg): CurioConfig(**kw)
    with pytest.raises(KeyError, match='unknown method'): make_config('curio')
    from reasondistill.registry import get_method
    m = get_method('curiosft')
    assert m.family == 'self-distillation' and '2602.02244' in m.url and m.notebook == 'methods/08_curiosft.ipynb'
    hs, W = torch.randn(3, 4), torch.randn(6, 4)
    with pytest.raises(ValueError, match='outside the shared vocabulary'):
        curiosft_loss(hs, W, torch.tensor([0, 1, 5]), TeacherSignal('full', 1.0, 5, logits=torch.randn(3, 5)), None, CurioConfig())

def test_ema_sync_arithmetic_and_swap(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)                      # frozen: not part of the reference
    ref = AdapterReference(model)
    assert ref.names == ['0.bias', '1.weight', '1.bias']
    ref.sync()                                                 # the first sync copies
    snap = {n: p.detach().clone() for n, p in model.named_parameters()}
    expect = {n: snap[n].clone() for n in ref.names}
    for k, mix in enumerate([0.99, 0.5, 0.99]):
        with torch.no_grad():
            for p in model.parameters(): p.add_(torch.randn_like(p))
        cur = dict(model.named_parameters())
        ref.sync(mix)
        for n in ref.names: expect[n] = (1 - mix) * expect[n] + mix * cur[n].detach()
    for n in ref.names: torch.testing.assert_close(ref.state[n], expect[n], rtol=0, atol=1e-6)
    assert ref.syncs == 4 and ref.nbytes == sum(t.numel() * 4 for t in expect.values())
    x = torch.randn(5, 3)
    objs = [p for p in model.parameters()]; vals = [p.detach().clone() for p in objs]
    with ref.swapped():
        out = model(x)
        manual = torch.nn.functional.linear(torch.nn.functional.linear(x, model[0].weight, expect['0.bias']), expect['1.weight'], expect['1.bias'])
        torch.testing.assert_close(out, manual)
    assert all(a is b for a, b in zip(objs, model.parameters())) and all(torch.equal(a, b) for a, b in zip(vals, objs))
    ref.save(tmp_path / 'r.pt')
    other = AdapterReference(model); other.load(tmp_path / 'r.pt')
    assert other.syncs == 4 and all(torch.equal(other.state[n], ref.state[n]) for n in ref.names)
    with pytest.raises(ValueError, match='mix'): ref.sync(0.0)
    model[0].weight.requires_grad_(True)
    with pytest.raises(ValueError, match='other parameters'): AdapterReference(model).load(tmp_path / 'r.pt')

def _trainer(model, tok, ex, tmp_path, cfg):
    import trl, datasets
    from reasondistill.signals import ModelTeacher
    from reasondistill.train import tokenized_rows
    args = trl.SFTConfig(output_dir=str(tmp_path), max_length=256, completion_only_loss=True, packing=False, report_to='none',
                         use_cpu=True, dataset_num_proc=None)
    return CurioTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(tokenized_rows(tok, ex, 256)),
                        processing_class=tok, teacher=ModelTeacher(model, kind='full', vocab_size=len(tok)), curio=cfg)

def test_reference_pass_leaves_student_gradients_untouched(toy, tmp_path):
    "compute_loss (student forward first, then the reference pass with swapped adapters) = a naive loss whose reference is a deep copy."
    from reasondistill.models import load_model, ModelSpec, LoraSpec
    from reasondistill.signals import tokenize_example, collate_tokenized
    tok, probs, ex = toy
    torch.manual_seed(0)
    model, stok = load_model(ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8)), trainable=True)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    stok.padding_side = 'right'
    twin = copy.deepcopy(model).eval()     # before the trainer exists (accelerate patches the model's forward in place)
    tr = _trainer(model, stok, ex, tmp_path, CurioConfig(chunk_size=7))
    tr.reference.sync(1.0)
    with torch.no_grad():                                      # the reference differs from the student
        for t in tr.reference.state.values(): t.add_(0.05 * torch.randn_like(t))
    rows = [dict(tokenize_example(stok, e['prompt'], e['completion'], 256), example_idx=i) for i, e in enumerate(ex[:3])]
    inp = collate_tokenized(rows, stok.pad_token_id)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    loss = tr.compute_loss(model, dict(inp))
    loss.backward()
    got = {n: p.grad.clone() for n, p in trainable.items()}
    assert all(torch.equal(before[n], p) for n, p in trainable.items())     # nothing was written into the student
    model.zero_grad()
    with torch.no_grad():
        for n, p in twin.named_parameters():
            if n in tr.reference.state: p.copy_(tr.reference.state[n])
    mask = inp['labels'][:, 1:] != -100
    y = inp['labels'][:, 1:][mask]
    logits = model(input_ids=inp['input_ids'], attention_mask=inp['attention_mask']).logits[:, :-1][mask].double()
    with torch.no_grad(): zr = twin(input_ids=inp['input_ids'], attention_mask=inp['attention_mask']).logits[:, :-1][mask].double()
    lp = torch.log_softmax(logits, -1).gather(-1, y[:, None]).squeeze(-1)
    lr = torch.log_softmax(zr / adaptive_tau(zr)[:, None], -1).gather(-1, y[:, None]).squeeze(-1)
    naive = (-lp + 0.5 * (lp - lr) ** 2).mean()
    naive.backward()
    assert loss.item() == pytest.approx(naive.item(), rel=1e-5)
    for n, p in trainable.items(): torch.testing.assert_close(got[n], p.grad.to(got[n].dtype), rtol=1e-4, atol=1e-6)
    assert (lp - lr).abs().max() > 1e-2                                    # the SD term is active

def test_ema_schedule_and_resume(toy, tmp_path):
    "Reference = EMA of the student snapshots at steps 0, 2, 4 (sync_every=2); checkpointed; a resumed run loads it from the checkpoint."
    from transformers import TrainerCallback
    from reasondistill.train import TrainConfig, Run
    from reasondistill.models import ModelSpec, LoraSpec
    from reasondistill.methods.curiosft import train_curiosft
    tok, probs, ex = toy
    spec = ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8))        # fp32 adapters: the EMA is exact to ~1e-7
    snaps = {}
    class Snap(TrainerCallback):
        def grab(self, state, model): snaps[state.global_step] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        def on_train_begin(self, args, state, control, model=None, **kw): self.grab(state, model)
        def on_step_end(self, args, state, control, model=None, **kw): self.grab(state, model)
    tc = TrainConfig(lr=2e-2, max_steps=5, batch_size=2, max_length=256, logging_steps=1, save_steps=3)
    cfg = CurioConfig(sync_every=2, sync_mix=0.5, chunk_size=16, train=tc)
    s = train_curiosft(ex, Run(str(tmp_path / 'a'), spec), cfg, callbacks=[Snap()])
    assert s['global_step'] == 5 and s['reference']['syncs'] == 3 and s['loss_tokens'] > 0
    ema = lambda steps: functools.reduce(lambda r, k: {n: 0.5 * r[n] + 0.5 * snaps[k][n] for n in r}, steps[1:], dict(snaps[steps[0]]))
    dist = lambda a, b: max((a[n] - b[n]).abs().max().item() for n in a)
    final = torch.load(tmp_path / 'a' / REFERENCE_FILE, weights_only=True)['state']
    assert dist(final, ema([0, 2, 4])) < 1e-6
    assert min(dist(final, ema(alt)) for alt in ([0, 1, 3], [0, 3, 5], [0, 4], [0, 1, 2, 3, 4])) > 1e-4    # the schedule is visible
    ck = torch.load(tmp_path / 'a' / 'checkpoint-3' / REFERENCE_FILE, weights_only=True)['state']   # saved with the checkpoint
    assert dist(ck, ema([0, 2])) < 1e-6
    log = json.loads((tmp_path / 'a' / 'train_log.json').read_text())
    assert all(1.1 <= e['tau'] <= 1.5 and e['sd_term'] >= 0 for e in log if 'tau' in e)

    class Crash(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 4: raise RuntimeError('simulated crash')
    for d, drop in (('b', False), ('c', True)):
        with pytest.raises(RuntimeError, match='simulated'):
            train_curiosft(ex, Run(str(tmp_path / d), spec), cfg, callbacks=[Crash()])
        if drop: (tmp_path / d / 'checkpoint-3' / REFERENCE_FILE).unlink()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            r = train_curiosft(ex, Run(str(tmp_path / d), spec), cfg)
        assert r['resumed_from'].endswith('checkpoint-3') and r['global_step'] == 5
        if drop:
            assert r['reference']['reinitialised_at'] == 3 and r['reference']['loaded_from'] is None
            assert any('re-initialised' in str(x.message) for x in w)
        else:
            assert r['reference']['loaded_from'].endswith(f'checkpoint-3/{REFERENCE_FILE}') and r['reference']['reinitialised_at'] is None
            assert r['reference']['syncs'] == 3                                   # 2 before the checkpoint, 1 after
            mine = torch.load(tmp_path / d / REFERENCE_FILE, weights_only=True)['state']
            assert dist(mine, final) < 1e-5                                        # the resumed run continues exactly

def test_entropy_profile_and_split(toy):
    from reasondistill.models import load_model
    from reasondistill.eval.diagnostics import entropy_profile, plot_entropy_profiles
    from reasondistill.signals import tokenize_example
    tok, probs, ex = toy
    model, _ = load_model('toy:student')
    p = entropy_profile(model, tok, ex[:3], batch_size=2, chunk_size=5)
    want = []
    for e in ex[:3]:
        r = tokenize_example(tok, e['prompt'], e['completion'])
        P = r['completion_mask'].index(1)
        with torch.no_grad(): lg = model(input_ids=torch.tensor([r['input_ids']])).logits[0].double()
        want += H(lg[P - 1:len(r['input_ids']) - 1]).tolist()
    assert p['n_tokens'] == len(want) and p['example'][0] == 0 and p['example'][-1] == 2
    torch.testing.assert_close(torch.tensor(p['entropy'], dtype=torch.float64), torch.tensor(want, dtype=torch.float64), rtol=1e-4, atol=1e-5)
    a = dict(entropy=[3.0, 0.1, 2.0, 0.2, 0.0], n_tokens=5)
    b = dict(entropy=[1.0, 1.0, 5.0, 0.5, 0.5], n_tokens=5)
    s = entropy_split({'a': a, 'b': b}, split_by='a', high_frac=0.4)
    assert s['a']['high'] == pytest.approx(2.5) and s['b']['high'] == pytest.approx(3.0) and s['b']['low'] == pytest.approx(2 / 3)
    assert s['a']['n_high'] == 2 and s['b']['mean'] == pytest.approx(1.6)
    fig = plot_entropy_profiles({'a': a, 'b': b}, split_by='a', high_frac=0.4)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match='different positions'): entropy_split({'a': a, 'c': dict(entropy=[1.0], n_tokens=1)})
    with pytest.raises(ValueError, match='no completion'): entropy_profile(model, tok, [dict(prompt='x', completion='')])

def _store(path, probs, ex):
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    with TraceStore(path, meta=dict(model='toy:teacher')) as st:
        st.append([Trace(p.id, 0, 'toy:teacher', e['prompt'], e['completion'], verdict='correct', finish_reason='stop',
                         n_completion_tokens=len(e['completion'].split()), meta=dict(level=p.meta['level'])) for p, e in zip(probs, ex)])

def test_cli_train_curiosft(toy, tmp_path):
    from reasondistill.cli import main
    tok, probs, ex = toy
    _store(tmp_path / 'traces', probs, ex)
    common = ['--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '3', '--lora-r', '4']
    main(['train', '--method', 'curiosft', '--traces', str(tmp_path / 'traces'), '--out', str(tmp_path / 'c'), *common,
          '--set', 'sync_every=1', 'chunk_size=32', 'train.lr=0.001'])
    done = json.loads((tmp_path / 'c' / 'train_done.json').read_text())
    assert done['global_step'] == 2 and done['method'] == 'curiosft' and done['n_examples'] == 6 and done['quant'] == '4bit'
    assert done['config']['sync_every'] == 1 and done['reference']['syncs'] == 2 and done['teacher'] == 'self:ema'
    assert (tmp_path / 'c' / 'final' / 'adapter_config.json').exists()
    main(['train', '--method', 'curiosft-fixed-tau', '--traces', str(tmp_path / 'traces'), '--out', str(tmp_path / 'f'), *common,
          '--set', 'reference=live'])
    done = json.loads((tmp_path / 'f' / 'train_done.json').read_text())
    log = json.loads((tmp_path / 'f' / 'train_log.json').read_text())
    assert done['config']['tau_mode'] == 'fixed' and done['reference'] == {'kind': 'live'}
    assert all(e['tau'] == pytest.approx(1.3) for e in log if 'tau' in e)
    with pytest.raises(ValueError, match='--traces'): main(['train', '--method', 'curiosft', '--out', str(tmp_path / 'x'), *common])
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'curiosft', '--traces', str(tmp_path / 'traces'), '--out', str(tmp_path / 'y'), *common, '--set', 'alpha_sd=1'])
