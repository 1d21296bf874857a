"""Test matrices for `reasondistill.divergences` (the notebook holds the readable examples).

References are written from the definitions, independently of the module: NumPy float64 loops over the vocabulary
for values, plain softmax formulas under autograd for gradients, and central finite differences in float64."""
import math
import numpy as np
import pytest
import torch
from _reference import ref_div
from reasondistill.divergences import (DIVERGENCES, divergence, forward_kl, reverse_kl, generalized_jsd, skew_kl,
                                       skew_reverse_kl, tvd, tempered_log_softmax, sparse_divergence,
                                       chunked_kd_loss, naive_kd_loss)

torch.set_num_threads(1)
NAMES = list(DIVERGENCES)
# (name, kwargs) pairs covering the parameters of each divergence
CASES = [('fkl', {}), ('rkl', {}), ('tvd', {}), ('jsd', {'beta': 0.1}), ('jsd', {'beta': 0.5}), ('jsd', {'beta': 0.9}),
         ('jsd', {'beta': 0.0}), ('jsd', {'beta': 1.0}), ('skew_fkl', {'alpha': 0.1}), ('skew_fkl', {'alpha': 0.5}),
         ('skew_rkl', {'alpha': 0.1}), ('skew_rkl', {'alpha': 0.5})]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for n, kw in CASES]

def ref_np(name, t, s, beta=0.5, alpha=0.1):
    "One position, from the definition, with an explicit loop over the vocabulary (float64)."
    p, q = np.exp(t.astype(np.float64)), np.exp(s.astype(np.float64))
    def kl(a, b):
        tot = 0.0
        for v in range(len(a)):
            if a[v] > 0: tot += a[v] * (math.log(a[v]) - math.log(b[v]))
        return tot
    if name == 'fkl': return kl(p, q)
    if name == 'rkl': return kl(q, p)
    if name == 'jsd':
        if beta == 0: return kl(p, q)
        if beta == 1: return kl(q, p)
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if name == 'skew_fkl': return kl(p, alpha * p + (1 - alpha) * q)
    if name == 'skew_rkl': return kl(q, alpha * q + (1 - alpha) * p)
    if name == 'tvd': return 0.5 * sum(abs(p[v] - q[v]) for v in range(len(p)))

def ref_torch(name, z_t, z_s, tau=1.0, beta=0.5, alpha=0.1):
    "Plain-formula reference on probabilities (softmax of logits / tau), differentiable w.r.t. z_s."
    return ref_div(name, torch.softmax(z_t / tau, -1), torch.softmax(z_s / tau, -1), beta, alpha)

def logits(*shape, scale=2.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

# ---------------------------------------------------------------- values against the definition

@pytest.mark.parametrize('V', [5, 37, 1000])
@pytest.mark.parametrize('tau', [0.5, 1.0, 2.0])
@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_values_match_definition(name, kw, V, tau):
    z_t, z_s = logits(3, V, seed=V), logits(3, V, seed=V + 1)
    t, s = tempered_log_softmax(z_t, tau), tempered_log_softmax(z_s, tau)
    got = divergence(name, t, s, **kw)
    assert got.dtype == torch.float32 and got.shape == (3,)
    want = np.array([ref_np(name, t[i].numpy(), s[i].numpy(), **kw) for i in range(3)])
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)

def test_named_functions_are_the_dispatcher():
    t, s = logits(4, 11), logits(4, 11, seed=1)
    for fn, name in [(forward_kl, 'fkl'), (reverse_kl, 'rkl'), (generalized_jsd, 'jsd'), (skew_kl, 'skew_fkl'),
                     (skew_reverse_kl, 'skew_rkl'), (tvd, 'tvd')]:
        assert torch.equal(fn(t, s), divergence(name, t, s))

def test_leading_dims_and_logits_input():
    z_t, z_s = logits(2, 3, 17), logits(2, 3, 17, seed=1)
    for name in NAMES:
        got = divergence(name, z_t, z_s)                  # logits are accepted: re-normalised inside
        assert got.shape == (2, 3)
        torch.testing.assert_close(got, divergence(name, z_t.log_softmax(-1), z_s.log_softmax(-1)))

def test_unknown_and_out_of_range():
    t = logits(2, 5)
    with pytest.raises(KeyError, match='known'): divergence('kl', t, t)
    with pytest.raises(ValueError, match='beta'): generalized_jsd(t, t, -0.1)
    with pytest.raises(ValueError, match='alpha'): skew_kl(t, t, 1.5)
    with pytest.raises(TypeError): divergence('fkl', t, t, beta=0.5)

# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize('tau', [0.7, 1.0, 3.0])
@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_grad_matches_plain_formula(name, kw, tau):
    z_t, z_s = logits(4, 23, seed=5, dtype=torch.float64), logits(4, 23, seed=6, dtype=torch.float64)
    z1, z2 = z_s.clone().requires_grad_(), z_s.clone().requires_grad_()
    divergence(name, tempered_log_softmax(z_t, tau), tempered_log_softmax(z1, tau), **kw).sum().backward()
    ref_torch(name, z_t, z2, tau, **kw).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-7, atol=1e-10)

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_grad_finite_differences(name, kw):
    z_t = logits(2, 5, seed=7, dtype=torch.float64)
    z_s = logits(2, 5, seed=8, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: divergence(name, z_t, z, **kw), (z_s,), eps=1e-6, atol=1e-7)

# ---------------------------------------------------------------- properties

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_nonnegative_zero_at_equality(name, kw):
    z = logits(50, 200, scale=4.0, seed=9)
    d = divergence(name, z, logits(50, 200, scale=4.0, seed=10), **kw)
    assert (d >= 0).all()
    torch.testing.assert_close(divergence(name, z, z, **kw), torch.zeros(50), atol=1e-6, rtol=0)

@pytest.mark.parametrize('beta', [0.1, 0.5, 0.9])
def test_bf16_never_negative(beta):
    """Near-identical bf16 teacher and student (where rounding makes naive bf16 JSD negative, ms-swift #10156)."""
    t = logits(256, 1000, scale=3.0, seed=11).log_softmax(-1)
    s = t + 1e-3 * logits(256, 1000, scale=1.0, seed=12)
    for a, b in [(t, s), (s, t), (t, t)]:
        d = generalized_jsd(a.bfloat16(), b.bfloat16(), beta)
        assert d.dtype == torch.float32 and (d >= 0).all()
    for name in NAMES:
        assert (divergence(name, t.bfloat16(), s.bfloat16()) >= 0).all()

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_bf16_inputs_give_the_fp32_answer(name, kw):
    t, s = logits(64, 300, seed=13).log_softmax(-1), logits(64, 300, seed=14).log_softmax(-1)
    d16 = divergence(name, t.bfloat16(), s.bfloat16(), **kw)
    # computed in fp32: exactly the fp32 computation on the rounded inputs ...
    torch.testing.assert_close(d16, divergence(name, t.bfloat16().float(), s.bfloat16().float(), **kw), rtol=0, atol=0)
    # ... and within the inputs' own rounding (bf16 keeps 8 bits: ~0.4 % of each log-prob) of the fp32 answer
    d32 = divergence(name, t, s, **kw)
    assert ((d16 - d32).abs() <= 0.02 * d32 + 1e-4).all(), (d16 - d32).abs().max()

def test_jsd_endpoints_trl_convention():
    t, s = logits(8, 40, seed=15, dtype=torch.float64), logits(8, 40, seed=16, dtype=torch.float64)
    assert torch.equal(generalized_jsd(t, s, 0.0), forward_kl(t, s))
    assert torch.equal(generalized_jsd(t, s, 1.0), reverse_kl(t, s))
    # first order: JSD_b = b FKL + O(b^2) and JSD_{1-b} = b RKL + O(b^2): continuous *up to the factor b*,
    # with an error that shrinks linearly in b (its constant involves chi^2 and can be large)
    rel = lambda a, r: ((a - r) / r).abs().max().item()
    e_f = [rel(generalized_jsd(t, s, b) / b, forward_kl(t, s)) for b in (1e-5, 1e-6)]
    e_r = [rel(generalized_jsd(t, s, 1 - b) / b, reverse_kl(t, s)) for b in (1e-5, 1e-6)]
    for e in (e_f, e_r): assert e[1] < 1e-3 and e[1] < 0.15 * e[0], e
    for b in (1e-2, 1e-4):
        assert (generalized_jsd(t, s, b) < 2 * b * forward_kl(t, s)).all()          # ... and not continuous in value
        assert (generalized_jsd(t, s, 1 - b) < 2 * b * reverse_kl(t, s)).all()

def test_jsd_symmetric_at_half_and_bounded():
    t, s = logits(8, 40, seed=17), logits(8, 40, seed=18)
    torch.testing.assert_close(generalized_jsd(t, s, 0.5), generalized_jsd(s, t, 0.5))
    assert (generalized_jsd(t, s, 0.5) <= math.log(2) + 1e-6).all()
    far = torch.tensor([[0.0, -1e9], [-1e9, 0.0]])
    torch.testing.assert_close(generalized_jsd(far[:1], far[1:], 0.5), torch.tensor([math.log(2)]))

def test_tvd_bounded():
    t, s = logits(20, 30, scale=10.0, seed=19), logits(20, 30, scale=10.0, seed=20)
    d = tvd(t, s)
    assert (d <= 1).all() and (d >= 0).all() and d.max() > 0.9
    torch.testing.assert_close(tvd(torch.tensor([[0.0, -1e9]]), torch.tensor([[-1e9, 0.0]])), torch.tensor([1.0]))

def test_skew_endpoints():
    t, s = logits(5, 12, seed=21), logits(5, 12, seed=22)
    assert torch.equal(skew_kl(t, s, 0.0), forward_kl(t, s))
    assert torch.equal(skew_reverse_kl(t, s, 0.0), reverse_kl(t, s))
    torch.testing.assert_close(skew_kl(t, s, 1.0), torch.zeros(5))
    # the skew caps the log-ratio: SKL_alpha <= -log(alpha)
    assert (skew_kl(t, -1e4 * torch.ones(5, 12).scatter(-1, torch.zeros(5, 1, dtype=torch.long), 0.0), 0.1) <= -math.log(0.1) + 1e-5).all()

def test_zero_probabilities():
    t = torch.tensor([[0.0, 0.0, -math.inf]])
    s = torch.zeros(1, 3)
    torch.testing.assert_close(forward_kl(t, s), torch.tensor([math.log(1.5)]))
    assert reverse_kl(t, s).item() > 1e30
    for name in NAMES: assert not torch.isnan(divergence(name, t, s)).any()
    z = torch.zeros(1, 3, requires_grad=True)
    forward_kl(t, z).sum().backward()
    assert torch.isfinite(z.grad).all()

@pytest.mark.skipif(not __import__('importlib').util.find_spec('trl'), reason='trl not installed')
@pytest.mark.parametrize('beta', [0.0, 0.3, 0.9, 1.0])
def test_matches_trl_gkd(beta):
    """Pins the convention against TRL's own GKD loss (reduction='sum' sums over positions and vocabulary)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from trl.experimental.gkd.gkd_trainer import GKDTrainer
    z_s, z_t = logits(2, 3, 50, seed=23), logits(2, 3, 50, seed=24)
    want = GKDTrainer.generalized_jsd_loss(z_s, z_t, beta=beta, temperature=0.9, reduction='sum')
    got = generalized_jsd(tempered_log_softmax(z_t, 0.9), tempered_log_softmax(z_s, 0.9), beta).sum()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

# ---------------------------------------------------------------- sparse teachers

def bucketed(lp, ids):
    "Coarsen dense log-probs to (top-k ids..., everything else), by hand (NumPy, float64)."
    lp = lp.double().numpy(); out = []
    for row, k in zip(lp, ids.numpy()):
        rest = [v for v in range(len(row)) if v not in set(k)]
        out.append([row[i] for i in k] + [np.log(sum(np.exp(row[v]) for v in rest)) if rest else -np.inf])
    return torch.tensor(out)

@pytest.mark.parametrize('k', [1, 4, 20])
@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_sparse_bucket_is_dense_on_buckets(name, kw, k):
    V = 37
    t, s = logits(6, V, seed=25).log_softmax(-1), logits(6, V, seed=26).log_softmax(-1)
    top = t.topk(k, -1)
    got = sparse_divergence(name, top.indices, top.values, s, **kw)
    want = np.array([ref_np(name, a, b, **kw) for a, b in zip(bucketed(t, top.indices).numpy(), bucketed(s, top.indices).numpy())])
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)
    assert (got <= divergence(name, t, s, **kw) + 1e-5).all()        # data-processing inequality
    # an explicit tail mass equal to the implied one changes nothing
    torch.testing.assert_close(sparse_divergence(name, top.indices, top.values, s, tail_mass=1 - top.values.exp().sum(-1), **kw), got)

@pytest.mark.parametrize('tail', ['bucket', 'renorm'])
@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_sparse_full_k_is_dense(name, kw, tail):
    V = 29
    t, s = logits(5, V, seed=27).log_softmax(-1), logits(5, V, seed=28).log_softmax(-1)
    ids = torch.stack([torch.randperm(V, generator=torch.Generator().manual_seed(i)) for i in range(5)])
    got = sparse_divergence(name, ids, t.gather(-1, ids), s, tail=tail, **kw)
    torch.testing.assert_close(got, divergence(name, t, s, **kw), rtol=1e-5, atol=1e-6)
    z = s.clone().requires_grad_()
    sparse_divergence(name, ids, t.gather(-1, ids), z, tail=tail, **kw).sum().backward()
    z2 = s.clone().requires_grad_()
    divergence(name, t, z2, **kw).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad, rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_sparse_renorm_definition(name, kw):
    t, s = logits(4, 31, seed=29).log_softmax(-1), logits(4, 31, seed=30).log_softmax(-1)
    top = t.topk(6, -1)
    got = sparse_divergence(name, top.indices, top.values, s, tail='renorm', **kw)
    tk, sk = top.values.log_softmax(-1), s.gather(-1, top.indices).log_softmax(-1)
    want = np.array([ref_np(name, a, b, **kw) for a, b in zip(tk.numpy(), sk.numpy())])
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-4, atol=2e-6)

def test_sparse_grad_finite_differences():
    t = logits(2, 9, seed=31, dtype=torch.float64).log_softmax(-1)
    top = t.topk(3, -1)
    z = logits(2, 9, seed=32, dtype=torch.float64).requires_grad_()
    for name, kw in CASES:
        for tail in ('bucket', 'renorm'):
            assert torch.autograd.gradcheck(lambda z: sparse_divergence(name, top.indices, top.values, z, tail=tail, **kw),
                                            (z,), eps=1e-6, atol=1e-7)

def test_sparse_bad_tail():
    t = logits(2, 9).log_softmax(-1); top = t.topk(3, -1)
    with pytest.raises(ValueError, match='tail'): sparse_divergence('fkl', top.indices, top.values, t, tail='uniform')

# ---------------------------------------------------------------- chunked loss == naive loss

def kd_inputs(N=37, H=8, V=101, Vt=101, Ht=12, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, sc=1.0: (sc * torch.randn(*s, generator=g, dtype=torch.float64)).to(dtype)
    return r(N, H), r(V, H, sc=0.5), r(N, Ht), r(Vt, Ht, sc=0.5)

def loss_and_grads(fn, h, W, th=None, tW=None, **kw):
    h, W = h.clone().requires_grad_(), W.clone().requires_grad_()
    loss = fn(h, W, th, tW, **kw)
    gh, gW = torch.autograd.grad(loss, (h, W))
    return loss.detach(), gh, gW

def assert_same(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(a, b): torch.testing.assert_close(x, y, rtol=rtol, atol=atol)

MASKS = {'all': lambda N: torch.ones(N), 'holes': lambda N: (torch.arange(N) % 3 != 1).float(),
         'weights': lambda N: torch.linspace(0, 2, N), 'none': lambda N: None}

@pytest.mark.parametrize('chunk', [1, 5, 16, 64])
@pytest.mark.parametrize('mask', list(MASKS))
@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_chunked_equals_naive(name, kw, mask, chunk):
    h, W, th, tW = kd_inputs(seed=chunk)
    m = MASKS[mask](len(h))
    want = loss_and_grads(naive_kd_loss, h, W, th, tW, mask=m, name=name, temperature=1.5, **kw)
    got = loss_and_grads(chunked_kd_loss, h, W, th, tW, mask=m, name=name, temperature=1.5, chunk_size=chunk, **kw)
    assert_same(got, want)

@pytest.mark.parametrize('reduction', ['mean', 'sum'])
@pytest.mark.parametrize('t2', [False, True])
@pytest.mark.parametrize('tau', [0.5, 2.0])
@pytest.mark.parametrize('name', ['fkl', 'jsd', 'skew_rkl'])
def test_chunked_reduction_temperature(name, tau, t2, reduction):
    h, W, th, tW = kd_inputs(seed=3)
    m = MASKS['holes'](len(h))
    args = dict(mask=m, name=name, temperature=tau, reduction=reduction, t2_scale=t2)
    want = loss_and_grads(naive_kd_loss, h, W, th, tW, **args)
    got = loss_and_grads(chunked_kd_loss, h, W, th, tW, chunk_size=8, **args)
    assert_same(got, want)
    # the reductions mean what they say
    per_tok = divergence(name, tempered_log_softmax(th @ tW.T, tau), tempered_log_softmax(h @ W.T, tau))
    tot = (per_tok * m).sum() * (tau ** 2 if t2 else 1)
    torch.testing.assert_close(got[0], tot / m.sum() if reduction == 'mean' else tot, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('Vs,Vt', [(101, 109), (109, 101)])
@pytest.mark.parametrize('name', ['fkl', 'rkl', 'jsd', 'tvd'])
def test_vocab_mismatch_uses_shared_ids(name, Vs, Vt):
    h, W, th, tW = kd_inputs(V=Vs, Vt=Vt, seed=4)
    v = min(Vs, Vt)
    got = loss_and_grads(chunked_kd_loss, h, W, th, tW, name=name, chunk_size=10)
    want = loss_and_grads(naive_kd_loss, h, W, th, tW, name=name)
    assert_same(got, want)
    # = the same loss with both heads cut to the shared ids; student rows past them get no gradient
    cut = loss_and_grads(naive_kd_loss, h, W[:v], th, tW[:v], name=name)
    assert_same(got[:2], cut[:2])
    torch.testing.assert_close(got[2][:v], cut[2], rtol=1e-5, atol=1e-6)
    assert (got[2][v:] == 0).all()

@pytest.mark.parametrize('as_logp', [False, True])
@pytest.mark.parametrize('name', ['fkl', 'rkl', 'jsd'])
def test_teacher_callable(name, as_logp):
    h, W, th, tW = kd_inputs(V=101, Vt=109, seed=5)
    zt = th @ tW.T
    cache = (zt.log_softmax(-1) if as_logp else zt).bfloat16().float()
    calls = []
    def teacher_fn(rows): calls.append(rows.clone()); return cache[rows]
    m = MASKS['holes'](len(h))
    got = loss_and_grads(chunked_kd_loss, h, W, teacher_fn=teacher_fn, mask=m, name=name, chunk_size=6, temperature=2.0)
    want = loss_and_grads(naive_kd_loss, h, W, teacher_fn=lambda rows: cache[rows], mask=m, name=name, temperature=2.0)
    assert_same(got, want)
    asked = torch.cat(calls)
    assert torch.equal(asked, m.nonzero().squeeze(1)) and max(len(c) for c in calls) <= 6   # only masked rows, in chunks

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_teacher_with_zero_probabilities(name, kw):
    """A top-k teacher cache given densely with -inf outside the top-k (the 'renorm' treatment, densely)."""
    h, W, th, tW = kd_inputs(seed=12)
    zt = th @ tW.T
    top = zt.topk(10, -1)
    cache = torch.full_like(zt, -torch.inf).scatter(-1, top.indices, top.values)
    fn = lambda rows: cache[rows]
    got = loss_and_grads(chunked_kd_loss, h, W, teacher_fn=fn, name=name, chunk_size=6, **kw)
    want = loss_and_grads(naive_kd_loss, h, W, teacher_fn=fn, name=name, **kw)
    if name == 'rkl' or (name == 'jsd' and kw['beta'] == 1.0):
        # reverse KL against a teacher with zero mass where the student has some is (effectively) infinite
        assert got[0] > 1e30 and want[0] > 1e30
        return
    for x in got: assert torch.isfinite(x).all()
    assert_same(got, want)

def test_frozen_head_and_frozen_hidden():
    h, W, th, tW = kd_inputs(seed=6)
    for need_h, need_W in [(True, False), (False, True)]:
        hh, WW = h.clone().requires_grad_(need_h), W.clone().requires_grad_(need_W)
        loss = chunked_kd_loss(hh, WW, th, tW, name='jsd', chunk_size=7)
        loss.backward()
        ref = loss_and_grads(naive_kd_loss, h, W, th, tW, name='jsd')
        if need_h: torch.testing.assert_close(hh.grad, ref[1]); assert WW.grad is None
        else: torch.testing.assert_close(WW.grad, ref[2]); assert hh.grad is None

def test_leading_dims_and_upstream_grad():
    h, W, th, tW = kd_inputs(N=24, seed=7)
    h3, th3, m3 = h.view(2, 12, -1), th.view(2, 12, -1), MASKS['holes'](24).view(2, 12)
    got = loss_and_grads(lambda *a, **k: 3.0 * chunked_kd_loss(*a, **k), h3, W, th3, tW, mask=m3, chunk_size=5)
    want = loss_and_grads(lambda *a, **k: 3.0 * naive_kd_loss(*a, **k), h, W, th, tW, mask=m3.reshape(-1))
    assert got[1].shape == (2, 12, h.shape[-1])
    assert_same((got[0], got[1].reshape(24, -1), got[2]), want)

def test_chunked_no_grad_and_empty_mask():
    h, W, th, tW = kd_inputs(seed=8)
    with torch.no_grad(): v = chunked_kd_loss(h, W, th, tW, name='rkl', chunk_size=9)
    assert not v.requires_grad
    torch.testing.assert_close(v, naive_kd_loss(h, W, th, tW, name='rkl'))
    hh = h.clone().requires_grad_()
    loss = chunked_kd_loss(hh, W, th, tW, mask=torch.zeros(len(h)))
    loss.backward()
    assert loss.item() == 0 and (hh.grad == 0).all()

def test_chunked_second_backward_raises():
    h, W, th, tW = kd_inputs(seed=9)
    hh = h.clone().requires_grad_()
    loss = chunked_kd_loss(hh, W, th, tW)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='one backward'): loss.backward()

def test_chunked_bad_arguments():
    h, W, th, tW = kd_inputs()
    with pytest.raises(ValueError, match='teacher'): chunked_kd_loss(h, W)
    with pytest.raises(ValueError, match='teacher'): chunked_kd_loss(h, W, th, tW, teacher_fn=lambda r: th[r] @ tW.T)
    with pytest.raises(ValueError, match='chunk_size'): chunked_kd_loss(h, W, th, tW, chunk_size=0)
    with pytest.raises(ValueError, match='reduction'): chunked_kd_loss(h, W, th, tW, reduction='none')
    with pytest.raises(ValueError, match='tokens'): chunked_kd_loss(h, W, th[:-1], tW)
    with pytest.raises(KeyError, match='known'): chunked_kd_loss(h, W, th, tW, name='kl')

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
def test_chunked_finite_differences(name, kw):
    """The hand-written backward of the chunked loss against central differences in float64."""
    h, W, th, tW = kd_inputs(N=7, H=3, V=11, Vt=11, Ht=4, seed=10, dtype=torch.float64)
    m = torch.tensor([1, 0, 1, 1, 0.5, 1, 1], dtype=torch.float64)
    f = lambda h, W: chunked_kd_loss(h, W, th, tW, mask=m, name=name, chunk_size=3, temperature=1.3, **kw)
    _, gh, gW = loss_and_grads(lambda h, W, *_, **__: f(h, W), h, W, th, tW)
    eps = 1e-6
    with torch.no_grad():
        for x, g in ((h, gh), (W, gW)):
            for idx in [(0, 0), (2, 1), (x.shape[0] - 1, x.shape[1] - 1), (3, 2)]:
                xp, xm = x.clone(), x.clone()
                xp[idx] += eps; xm[idx] -= eps
                fd = ((f(xp, W) - f(xm, W)) if x is h else (f(h, xp) - f(h, xm))) / (2 * eps)
                assert abs(fd.item() - g[idx].item()) <= 1e-6 + 1e-5 * abs(fd.item()), (idx, fd.item(), g[idx].item())

@pytest.mark.parametrize('name', ['fkl', 'jsd', 'tvd'])
def test_chunked_bf16(name):
    h, W, th, tW = kd_inputs(seed=11)
    b = [x.bfloat16() for x in (h, W, th, tW)]
    got = loss_and_grads(chunked_kd_loss, *b, name=name, chunk_size=8)
    assert got[0].dtype == torch.float32 and got[1].dtype == torch.bfloat16 and got[2].dtype == torch.bfloat16
    # same as the naive loss on the same bf16 tensors (bf16 matmuls, fp32 divergence) ...
    nb = loss_and_grads(naive_kd_loss, *b, name=name)
    torch.testing.assert_close(got[0], nb[0], rtol=1e-4, atol=1e-6)
    for g, r in zip(got[1:], nb[1:]):
        torch.testing.assert_close(g.float(), r.float(), rtol=2e-2, atol=1e-2 * r.abs().max().item())
    if name == 'tvd': return   # TVD's gradient has sign(q - p): bf16 logits flip it where q ~ p
    # ... and close to the fp32 answer on the same (rounded) inputs
    ref = loss_and_grads(naive_kd_loss, *[x.float() for x in b], name=name)
    torch.testing.assert_close(got[0], ref[0], rtol=2e-2, atol=1e-3)
    for g, r in zip(got[1:], ref[1:]):
        torch.testing.assert_close(g.float(), r, rtol=5e-2, atol=2e-2 * r.abs().max().item())
