"""Tests for `reasondistill.methods.tsdkd` (TSD-KD as an on-policy objective); the notebook holds the readable examples.

The reference is written from the paper's equations, independently of the module: full
[B, T, V] log-softmaxes in float64 under plain autograd, the generalized JSD written out (TRL convention), the opener by a
loop over each response (or the released code's single cut on the flattened vector), candidates ranked by Python sorting,
the Plackett–Luce sum with an explicit logsumexp over the tail (paper) or head (released code) of the ranking, and the
EM set from a quantile of the flattened entropies."""
import json, math
import pytest
import torch
from reasondistill.signals import TeacherSignal
from reasondistill.methods.onpolicy import OnPolicyConfig, RolloutConfig, LossConfig, divergence_objective
from reasondistill.methods.tsdkd import TSDKDConfig, TSDConfig, tsdkd_loss, pl_nll, opener_mask, em_mask, train_tsdkd
from reasondistill.registry import make_config

_ROLLOUT, _LOSS = ('lmbda', 'temperature'), ('beta', 'chunk_size')

def tcfg(**kw):
    "A TSDKDConfig from flat settings (rollout, loss and TSD-KD fields by name; loss_temperature -> loss.temperature)."
    r = {k: kw.pop(k) for k in _ROLLOUT if k in kw}
    l = {k: kw.pop(k) for k in _LOSS if k in kw}
    if 'loss_temperature' in kw: l['temperature'] = kw.pop('loss_temperature')
    return TSDKDConfig(rollout=RolloutConfig(**{'lmbda': 1.0, **r}), loss=LossConfig(**{'beta': 0.9, **l}), tsd=TSDConfig(**kw))

torch.set_num_threads(1)

def batch(seed=0, B=3, T=10, H=8, V=31):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(B, T, H, dtype=torch.float64, generator=g).requires_grad_()
    W = (0.6 * torch.randn(V, H, dtype=torch.float64, generator=g)).requires_grad_()
    zt = 1.5 * torch.randn(B, T, V, dtype=torch.float64, generator=g)
    m = torch.ones(B, T, dtype=torch.bool)
    m[0, :3] = False
    if B > 2: m[1, 6:] = False; m[2, :1] = False
    seq = torch.arange(B)[:, None].expand(B, T)[m]
    return hs, W, zt, m, seq, V

def grads(loss, *xs): return torch.autograd.grad(loss, xs)

def naive_tsdkd(hs, W, zt, m, cfg):
    "The paper's equations, summed scale: sum_t gate_t JSD_t + alpha N mean_{t in O} PL_t + N mean_{t in I} H_S(t)."
    tau, beta, T = cfg.tau, cfg.loss.beta, cfg.tsd
    s, t = torch.log_softmax(hs @ W.T / tau, -1), torch.log_softmax(zt / tau, -1)
    Hs, Ht = -(s.exp() * s).sum(-1), -(t.exp() * t).sum(-1)
    if beta == 0: jsd = (t.exp() * (t - s)).sum(-1)
    elif beta == 1: jsd = (s.exp() * (s - t)).sum(-1)
    else:
        mix = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log(1 - beta)]), 0)
        jsd = beta * (t.exp() * (t - mix)).sum(-1) + (1 - beta) * (s.exp() * (s - mix)).sum(-1)
    gate = torch.sigmoid((Hs - Ht) / T.gate_temperature).detach() if T.use_gate else torch.ones_like(Hs)
    N = int(m.sum())
    total = (gate * jsd)[m].sum() if T.use_direct else 0.0
    pos = [m[b].nonzero().squeeze(1).tolist() for b in range(len(hs))]
    opener = []
    if T.opener_rule == 'sequence':
        for b in range(len(hs)):
            tot, acc = Hs[b, pos[b]].sum().item(), 0.0
            for p in pos[b]:
                if acc / tot < T.opener_share: opener.append((b, p))
                acc += Hs[b, p].item()
    else:
        flat = [Hs[b, p].item() for b in range(len(hs)) for p in pos[b]]
        acc, cut = 0.0, 0
        for j, x in enumerate(flat):
            acc += x
            if acc / sum(flat) >= T.opener_share: cut = j; break
        opener = [(b, p) for b in range(len(hs)) for r, p in enumerate(pos[b]) if r < cut]
    if T.use_indirect and opener:
        pl = []
        for b, p in opener:
            z = hs[b, p] @ W.T / tau
            cand = sorted(range(len(z)), key=lambda x: -z[x].item())[:T.cand_k]
            zr = z[sorted(cand, key=lambda x: -zt[b, p, x].item())]
            k = len(zr)
            if T.pl_form == 'paper': pl.append(-sum(zr[j] - torch.logsumexp(zr[j:], 0) for j in range(k)))
            else: pl.append(-sum(zr[j] - torch.logsumexp(zr[:j + 1], 0) for j in range(k)))
        total = total + T.ind_weight * N * torch.stack(pl).mean()
    if T.use_em:
        flat = Hs[m]
        q = torch.quantile(flat.detach(), 1 - T.em_frac if T.em_rule == 'top' else T.em_frac)
        total = total + N * flat[flat >= q].mean()
    return total, len(opener)

@pytest.mark.parametrize('pl_form', ['paper', 'released'])
@pytest.mark.parametrize('em_rule', ['top', 'released'])
@pytest.mark.parametrize('opener_rule', ['sequence', 'released'])
@pytest.mark.parametrize('chunk', [3, 7, 1000])
def test_matches_naive_reference(pl_form, em_rule, opener_rule, chunk):
    hs, W, zt, m, seq, V = batch(1)
    cfg = tcfg(pl_form=pl_form, em_rule=em_rule, opener_rule=opener_rule, chunk_size=chunk, opener_share=0.2, cand_k=6)
    got, met = tsdkd_loss(hs[m], W, None, TeacherSignal('full', 1.0, V, logits=zt[m]), seq, cfg)
    ref, n_open = naive_tsdkd(hs, W, zt, m, cfg)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(ref.item(), rel=1e-10)
    for a, b in zip(grads(got, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)
    assert met['kd_loss'] == pytest.approx(ref.item() / int(m.sum()), rel=1e-10)
    assert met['tsd_opener_share'] == pytest.approx(n_open / int(m.sum()))

@pytest.mark.parametrize('kw', [dict(beta=0.0, loss_temperature=1.7), dict(beta=1.0, gate_temperature=0.5),
                                dict(beta=0.5, temperature=0.8, cand_k=50, ind_weight=0.3, em_frac=0.25, opener_share=1.0),
                                dict(use_gate=False, use_em=False), dict(use_direct=False), dict(use_indirect=False)])
def test_matches_naive_reference_other_settings(kw):
    "Temperatures, betas at both ends, k beyond the vocabulary (clipped to V), c = 1 (every position an opener), switches."
    hs, W, zt, m, seq, V = batch(2)
    cfg = tcfg(chunk_size=4, **kw)
    got, met = tsdkd_loss(hs[m], W, None, TeacherSignal('full', cfg.tau, V, logits=zt[m]), seq, cfg)
    ref, _ = naive_tsdkd(hs, W, zt, m, cfg)
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)
    for a, b in zip(grads(got, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)
    assert ('tsd_indirect' in met) == cfg.tsd.use_indirect and ('tsd_em' in met) == cfg.tsd.use_em and ('tsd_gate' in met) == cfg.tsd.use_direct

def test_shared_vocabulary_and_teacher_hidden_signal():
    "A student head with extra rows (padding) is cut to the teacher's vocabulary; a hidden+head signal equals a logits one."
    hs, W, zt, m, seq, V = batch(3)
    g = torch.Generator().manual_seed(9)
    th, tw = torch.randn(int(m.sum()), 5, dtype=torch.float64, generator=g), torch.randn(V, 5, dtype=torch.float64, generator=g)
    Wbig = torch.cat([W, 5 + torch.randn(4, W.shape[1], dtype=torch.float64, generator=g)])   # 4 extra rows, large logits
    cfg = tcfg(chunk_size=5)
    a, _ = tsdkd_loss(hs[m], Wbig, None, TeacherSignal('full', 1.0, V, hidden=th, head_weight=tw), seq, cfg)
    b, _ = tsdkd_loss(hs[m], W, None, TeacherSignal('full', 1.0, V, logits=th @ tw.T), seq, cfg)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)

def test_direct_only_is_gate_weighted_jsd_and_ungated_is_gkd():
    from reasondistill.divergences import generalized_jsd
    hs, W, zt, m, seq, V = batch(4)
    sig = TeacherSignal('full', 1.0, V, logits=zt[m])
    direct, met = tsdkd_loss(hs[m], W, None, sig, seq, tcfg(use_indirect=False, use_em=False, chunk_size=4))
    s, t = torch.log_softmax(hs[m] @ W.T, -1), torch.log_softmax(zt[m], -1)
    ent = lambda x: -(x.exp() * x).sum(-1)
    ref = (torch.sigmoid(ent(s) - ent(t)).detach() * generalized_jsd(t, s, 0.9)).sum()
    assert direct.item() == pytest.approx(ref.item(), rel=1e-10)
    for a, b in zip(grads(direct, hs, W), grads(ref, hs, W)): torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)
    assert met['tsd_direct'] < met['tsd_jsd'] and 0 < met['tsd_gate'] < 1
    plain, _ = tsdkd_loss(hs[m], W, None, sig, seq, tcfg(use_gate=False, use_indirect=False, use_em=False, chunk_size=4))
    gkd, _ = divergence_objective(hs[m], W, None, sig, seq, OnPolicyConfig(loss=LossConfig(beta=0.9, chunk_size=4)))
    assert plain.item() == pytest.approx(gkd.item(), rel=1e-10) and plain.item() > direct.item()

def test_pl_sign_convention():
    "Card §5 analytic check, four equal scores: standard PL dL/dz = -0.75 (best) ... +1.08 (worst); released mirrors it."
    z = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    gp, = grads(pl_nll(z, 'paper').sum(), z)
    gr, = grads(pl_nll(z, 'released').sum(), z)
    torch.testing.assert_close(gp[0], torch.tensor([-0.75, -5 / 12, 1 / 12, 13 / 12], dtype=torch.float64))
    torch.testing.assert_close(gr[0], gp[0].flip(0))
    # a descent step under standard PL raises the teacher's favourite candidate and lowers its least preferred
    assert gp[0, 0] < 0 < gp[0, -1] and gr[0, 0] > 0 > gr[0, -1]
    # and the standard PL NLL is lowest when the student's scores agree with the ranking (it is a likelihood)
    up, down = torch.tensor([[3., 2., 1., 0.]]), torch.tensor([[0., 1., 2., 3.]])
    assert pl_nll(up) < pl_nll(torch.zeros(1, 4)) < pl_nll(down)
    assert pl_nll(torch.zeros(1, 4)).item() == pytest.approx(math.log(24))       # uniform: log k!

def test_pl_sign_through_the_objective():
    "The same signs through tsdkd_loss: identity LM head, so the gradient wrt h is the gradient wrt the student logits."
    V = 6
    h = torch.tensor([[0., 0., 0., 0., -9., -9.]], dtype=torch.float64, requires_grad=True)   # four tied candidates
    W = torch.eye(V, dtype=torch.float64)
    zt = torch.tensor([[1., 4., 2., 3., 0., 0.]], dtype=torch.float64)                          # teacher: 1 > 3 > 2 > 0
    sig = TeacherSignal('full', 1.0, V, logits=zt)
    for form, best, worst in (('paper', -0.75, 13 / 12), ('released', 13 / 12, -0.75)):
        cfg = tcfg(cand_k=4, pl_form=form, use_direct=False, use_em=False, ind_weight=1.0)
        loss, met = tsdkd_loss(h, W, None, sig, torch.zeros(1, dtype=torch.long), cfg)
        g, = grads(loss, h)
        assert g[0, 1].item() == pytest.approx(best) and g[0, 0].item() == pytest.approx(worst)
        assert g[0, 4:].abs().max() < 1e-12 and met['tsd_opener_share'] == 1.0

def test_opener_is_per_sequence():
    "Two responses with different entropy profiles get different opener lengths; the code's rule gives both one cut."
    ent = torch.tensor([1.] * 10 + [5., .1, .1, .1, .1] + [.1, .1, .1, .1, 5.])
    sq = torch.tensor([0] * 10 + [1] * 5 + [2] * 5)
    op = opener_mask(ent, sq, 0.15)
    lengths = [int(op[sq == i].sum()) for i in range(3)]
    assert lengths == [2, 1, 5]   # flat: 2 (shares before: 0, .1); front-loaded: 1; back-loaded: all (the crossing one included)
    rel = opener_mask(ent, sq, 0.15, 'released')      # flattened cumulative share reaches .15 at index 3 (4 / 20.8)
    assert [int(rel[sq == i].sum()) for i in range(3)] == [3, 3, 3]
    # openers are prefixes of each sequence, and every sequence has at least its first position
    for i in range(3): assert op[sq == i].tolist() == sorted(op[sq == i].tolist(), reverse=True) and op[sq == i][0]
    # through the objective: sequences of the same batch get different opener shares
    hs, W, zt, m, seq, V = batch(5, B=2, T=12)
    with torch.no_grad():
        hs[0] *= 0.05; hs[0, 2:] *= 40     # sequence 0: near-uniform student only at its first positions
    cfg = tcfg(opener_share=0.3, use_direct=False, use_em=False)
    s = torch.log_softmax(hs[m] @ W.T, -1)
    o = opener_mask(-(s.exp() * s).sum(-1), seq, 0.3)
    n0, n1 = int(o[seq == 0].sum()), int(o[seq == 1].sum())
    assert n0 != n1
    _, met = tsdkd_loss(hs[m], W, None, TeacherSignal('full', 1.0, V, logits=zt[m]), seq, cfg)
    assert met['tsd_opener_share'] == pytest.approx((n0 + n1) / int(m.sum()))

def test_opener_and_em_edge_cases():
    assert opener_mask(torch.zeros(4), torch.zeros(4, dtype=torch.long), 0.5).tolist() == [True, True, False, False]  # zero entropy: uniform
    assert opener_mask(torch.ones(5), torch.zeros(5, dtype=torch.long), 1.0).all()
    with pytest.raises(ValueError, match='contiguously'): opener_mask(torch.ones(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match='opener share'): opener_mask(torch.ones(4), torch.zeros(4, dtype=torch.long), 0)
    e = torch.arange(40.)
    assert em_mask(e, 0.1).sum() == 4 and em_mask(e, 0.1)[-4:].all()
    assert em_mask(e, 0.1, 'released').sum() == 36 and not em_mask(e, 0.1, 'released')[:4].any()
    h, W = torch.zeros(0, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    loss, met = tsdkd_loss(h, W, None, TeacherSignal('full', 1.0, 5, logits=torch.zeros(0, 5)), torch.zeros(0, dtype=torch.long), TSDKDConfig())
    assert loss.item() == 0 and met == {} and loss.requires_grad

def test_config_validation():
    with pytest.raises(ValueError, match="signal='full'"): TSDKDConfig(loss=LossConfig(signal='topk'))
    with pytest.raises(ValueError, match='cand_k'): tcfg(cand_k=1)
    with pytest.raises(ValueError, match='cand_k'): tcfg(cand_k=2.5)
    with pytest.raises(ValueError, match='opener_share'): tcfg(opener_share=0)
    with pytest.raises(ValueError, match='opener_share'): tcfg(opener_share=1.5)
    with pytest.raises(ValueError, match='ind_weight'): tcfg(ind_weight=-0.1)
    with pytest.raises(ValueError, match='em_frac'): tcfg(em_frac=1.0)
    with pytest.raises(ValueError, match='pl_form'): tcfg(pl_form='standard')
    with pytest.raises(ValueError, match='em_rule'): tcfg(em_rule='bottom')
    with pytest.raises(ValueError, match='opener_rule'): tcfg(opener_rule='batch')
    with pytest.raises(ValueError, match='gate_temperature'): tcfg(gate_temperature=0)
    with pytest.raises(ValueError, match='switched off'): tcfg(use_direct=False, use_indirect=False, use_em=False)
    with pytest.raises(ValueError, match='lmbda'): tcfg(lmbda=2)                       # the parent's checks still run
    with pytest.raises(KeyError, match='unknown method'): make_config('tsd')
    c = make_config('tsd-kd'); T = c.tsd
    assert (c.rollout.lmbda, c.loss.beta, c.rollout.temperature, c.rollout.top_k, T.cand_k, T.opener_share, T.ind_weight, T.em_frac) == (1.0, 0.9, 1.0, 0, 10, 0.1, 0.1, 0.1)
    assert (T.pl_form, T.em_rule, T.opener_rule, c.tau) == ('paper', 'top', 'sequence', 1.0)
    r = make_config('tsd-kd-released').tsd
    assert (r.pl_form, r.em_rule, r.opener_rule) == ('released', 'released', 'sequence')
    hs, W, zt, m, seq, V = batch(0)
    sig = TeacherSignal('full', 1.0, V, logits=zt[m])
    with pytest.raises(TypeError, match='TSDKDConfig'): tsdkd_loss(hs[m], W, None, sig, seq, OnPolicyConfig())
    with pytest.raises(ValueError, match='full teacher signal'): tsdkd_loss(hs[m], W, None, sig.to_topk(4), seq, TSDKDConfig())
    with pytest.raises(ValueError, match='positions'): tsdkd_loss(hs[m][:-1], W, None, sig, seq, TSDKDConfig())

def test_registry():
    from reasondistill.registry import get_method, entry_point
    for name in ('tsd-kd', 'tsd-kd-released'):
        m = get_method(name)
        assert m.notebook == 'methods/07_tsdkd.ipynb' and m.status == 'implemented' and m.family == 'on-policy'
        assert m.url == 'https://arxiv.org/abs/2603.13260' and entry_point(name) is train_tsdkd
    assert 'released' in get_method('tsd-kd-released').title

def test_train_tsdkd_refuses_other_configs(tmp_path):
    from reasondistill.train import Run
    with pytest.raises(TypeError, match='TSDKDConfig'):
        train_tsdkd([dict(prompt='x', completion='')], Run(str(tmp_path / 'x'), teacher='toy:teacher'), OnPolicyConfig())

def test_cli_train_tsdkd(toy, tmp_path):
    "`reasondistill train --method tsd-kd|tsd-kd-released` on the toy world, prompts only, tiny."
    from reasondistill.cli import main
    common = ['--problems', 'toy:train:2:1,3', '--batch-size', '2', '--lora-r', '4']
    main(['train', '--method', 'tsd-kd', '--out', str(tmp_path / 'tsd'), '--max-steps', '2', *common,
          '--set', 'rollout.max_new_tokens=16', 'tsd.cand_k=5', 'train.lr=0.001'])
    done = json.loads((tmp_path / 'tsd' / 'train_done.json').read_text())
    assert done['global_step'] == 2 and done['method'] == 'tsd-kd' and 'toy:teacher' in done['teacher']
    op = done['config']['tsd']
    assert op['cand_k'] == 5 and op['pl_form'] == 'paper' and done['rollouts']['on_policy'] == 2
    log = json.loads((tmp_path / 'tsd' / 'train_log.json').read_text())
    e = [x for x in log if 'tsd_indirect' in x]
    assert len(e) == 2 and all(x['tsd_indirect'] > 0 and 0 < x['tsd_gate'] < 1 and x['tsd_em_count'] >= 1 for x in e)
    main(['train', '--method', 'tsd-kd-released', '--out', str(tmp_path / 'rel'), '--max-steps', '1', *common,
          '--set', 'rollout.max_new_tokens=16', 'tsd.opener_rule=released', 'tsd.use_em=false'])
    done = json.loads((tmp_path / 'rel' / 'train_done.json').read_text())
    op = done['config']['tsd']
    assert done['global_step'] == 1 and (op['pl_form'], op['em_rule'], op['opener_rule'], op['use_em']) == ('released', 'released', 'released', False)
    with pytest.raises(ValueError, match='pl_form'):
        main(['train', '--method', 'tsd-kd', '--out', str(tmp_path / 'bad'), '--max-steps', '1', *common, '--set', 'tsd.pl_form=x'])
