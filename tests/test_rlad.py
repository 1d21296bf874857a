"RLAD / TRRD: the loss against its definition, alpha = 1 against TRL's own GRPO loss (exactly), teacher log-probs, a CLI run."
import contextlib, io, json, tempfile
import pytest
import torch
import trl
from reasondistill.methods.rlad import RLADConfig, RLADTrainer, rlad_anchor, teacher_token_logps
from reasondistill.methods.grpo import grpo_args, grpo_dataset, grpo_rewards
from reasondistill.models import load_model, ModelSpec, LoraSpec
from reasondistill.signals import ModelTeacher
from reasondistill.toyworld import toy_problems
from reasondistill.train import TrainConfig

@pytest.fixture(scope='module')
def student():
    return load_model(ModelSpec('toy:student', lora=LoraSpec(r=4)), trainable=True)

def _trainer(student, **kw):
    model, tok = load_model(ModelSpec('toy:student', lora=LoraSpec(r=4)), trainable=True)   # fresh: TRL adds a 'ref' adapter when beta > 0
    cfg = RLADConfig(train=TrainConfig(batch_size=4, max_steps=1), num_generations=2, max_new_tokens=8, **kw)
    tr = RLADTrainer(model=model, reward_funcs=grpo_rewards(cfg)[0], args=grpo_args(cfg, tempfile.mkdtemp()),
                     train_dataset=grpo_dataset(toy_problems(2, levels=[1], split='train'), tok), processing_class=tok,
                     alpha=cfg.alpha, kl_target=cfg.kl_target)
    tr.current_gradient_accumulation_steps = 1
    return tr

def _batch(B=4, P=3, C=6, V=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    cm = torch.ones(B, C, dtype=torch.long); cm[1, 4:] = 0; cm[3, 2:] = 0
    old = -torch.rand(B, C, generator=g) * 3
    b = dict(prompt_ids=torch.randint(5, V, (B, P), generator=g), prompt_mask=torch.ones(B, P, dtype=torch.long),
             completion_ids=torch.randint(5, V, (B, C), generator=g), completion_mask=cm, advantages=torch.randn(B, generator=g),
             num_items_in_batch=cm.sum(), old_per_token_logps=old, teacher_per_token_logps=old + torch.randn(B, C, generator=g),
             ref_per_token_logps=old + 0.3 * torch.randn(B, C, generator=g))
    return b, (old + 0.2 * torch.randn(B, C, generator=g)).requires_grad_()

def _use(tr, logp): tr._get_per_token_logps_and_entropies = lambda *a, **k: (logp, torch.zeros_like(logp), None)

def _reference(logp, b, alpha, eps_low, eps_high, loss_type, max_len, beta=0.0, kl_to='reference', kl_corr=False):
    "min(r A, clip(r, 1-eps, 1+eps_high) A) with r = pi / (pi_old^alpha pi_T^(1-alpha)), token by token, then the normaliser."
    B, C = logp.shape
    seq, total, n = [], 0.0, 0
    for i in range(B):
        s, k = 0.0, 0
        for t in range(C):
            if not b['completion_mask'][i, t]: continue
            lp, lo, lt, a = logp[i, t], b['old_per_token_logps'][i, t], b['teacher_per_token_logps'][i, t], b['advantages'][i]
            r = torch.exp(lp) / (torch.exp(lo) ** alpha * torch.exp(lt) ** (1 - alpha))
            term = -torch.min(r * a, torch.clamp(r, 1 - eps_low, 1 + eps_high) * a)
            if beta:
                lr = (b['teacher_per_token_logps'] if kl_to == 'teacher' else b['ref_per_token_logps'])[i, t] - lp
                term = term + beta * (torch.exp(lr) - lr - 1) * (torch.exp(lp - lo) if kl_corr else 1)
            s, k = s + term, k + 1
        seq.append(s / max(k, 1)); total, n = total + s, n + k
    if loss_type == 'grpo': return sum(seq) / B
    if loss_type in ('dapo', 'bnpo'): return total / n
    return total / (B * max_len)

@pytest.mark.parametrize('loss_type', ['dapo', 'grpo', 'dr_grpo', 'bnpo'])
@pytest.mark.parametrize('alpha', [0.0, 0.5, 0.9])
def test_loss_matches_the_definition(student, alpha, loss_type):
    tr = _trainer(student, alpha=alpha, loss_type=loss_type)
    b, logp = _batch(seed=int(alpha * 10))
    _use(tr, logp)
    mine = tr._compute_loss(tr.model, b)
    ref = _reference(logp, b, alpha, 0.2, 0.2, loss_type, 8)
    assert torch.allclose(mine, ref, atol=1e-6), (mine, ref)
    assert torch.allclose(torch.autograd.grad(mine, logp)[0], torch.autograd.grad(ref, logp)[0], atol=1e-6)

@pytest.mark.parametrize('kw', [dict(beta=0.1, kl_is_correction=False), dict(beta=0.1, kl_target='teacher', kl_is_correction=False),
                                dict(epsilon_high=0.28), dict(epsilon=0.1)])
def test_loss_with_kl_and_clip_options(student, kw):
    tr = _trainer(student, alpha=0.5, **kw)
    b, logp = _batch(seed=3)
    _use(tr, logp)
    mine = tr._compute_loss(tr.model, b)
    eps = kw.get('epsilon', 0.2)
    ref = _reference(logp, b, 0.5, eps, kw.get('epsilon_high') or eps, 'dapo', 8, kw.get('beta', 0.0), kw.get('kl_target', 'reference'))
    assert torch.allclose(mine, ref, atol=1e-6), (mine, ref)
    assert torch.allclose(torch.autograd.grad(mine, logp)[0], torch.autograd.grad(ref, logp)[0], atol=1e-6)
    assert 'rlad/teacher_prefers_frac' in tr._metrics['train']

@pytest.mark.parametrize('loss_type,kw', [('dapo', {}), ('grpo', {}), ('dr_grpo', {}), ('bnpo', {}), ('dapo', dict(beta=0.1)),
                                          ('grpo', dict(beta=0.1, epsilon_high=0.28))])
def test_alpha_one_is_exactly_grpo(student, loss_type, kw):
    "alpha = 1 with the teacher's log-probs in the batch gives TRL's own GRPO loss bit for bit (random log-probs)."
    tr = _trainer(student, alpha=1.0, loss_type=loss_type, **kw)
    b, logp = _batch(seed=5)
    _use(tr, logp)
    rlad = tr._compute_loss(tr.model, b)
    grpo = trl.GRPOTrainer._compute_loss(tr, tr.model, {k: v for k, v in b.items() if k != 'teacher_per_token_logps'})
    assert torch.equal(rlad, grpo), (rlad.item(), grpo.item())
    assert torch.equal(torch.autograd.grad(rlad, logp)[0], torch.autograd.grad(grpo, logp)[0])
    assert not torch.equal(rlad, _trainer(student, alpha=0.5, loss_type=loss_type, kl_is_correction=False, **kw)._compute_loss(tr.model, b))

def test_alpha_one_is_exactly_grpo_through_the_model(student):
    "The same with the LoRA student's real forward pass: loss and every adapter gradient are equal."
    tr = _trainer(student, alpha=1.0)
    b, _ = _batch(V=len(student[1]))
    params = [p for p in tr.model.parameters() if p.requires_grad]
    rlad = tr._compute_loss(tr.model, b)
    g1 = torch.autograd.grad(rlad, params)
    grpo = trl.GRPOTrainer._compute_loss(tr, tr.model, {k: v for k, v in b.items() if k != 'teacher_per_token_logps'})
    g2 = torch.autograd.grad(grpo, params)
    assert torch.equal(rlad, grpo) and all(torch.equal(x, y) for x, y in zip(g1, g2))

def test_anchor_and_teacher_logps():
    o, t = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(rlad_anchor(o, t, 1.0), o) and torch.equal(rlad_anchor(o, t, 0.0), t)
    tm, tok = load_model('toy:teacher')
    g = torch.Generator().manual_seed(0)
    pid, cid = torch.randint(5, len(tok), (2, 4), generator=g), torch.randint(5, len(tok), (2, 5), generator=g)
    pm = torch.ones(2, 4, dtype=torch.long); pm[0, :2] = 0
    cm = torch.ones(2, 5, dtype=torch.long); cm[1, 2:] = 0
    tl = teacher_token_logps(ModelTeacher(tm, kind='sampled'), pid, pm, cid, cm)
    with torch.no_grad(): lg = tm(input_ids=torch.cat([pid, cid], 1), attention_mask=torch.cat([pm, cm], 1)).logits[:, 3:-1]
    assert torch.allclose(tl, torch.log_softmax(lg, -1).gather(-1, cid[..., None]).squeeze(-1) * cm, atol=1e-5)

def test_config_validation():
    with pytest.raises(ValueError, match='alpha'): RLADConfig(alpha=-0.1)
    with pytest.raises(ValueError, match='beta > 0'): RLADConfig(kl_target='teacher')
    with pytest.raises(ValueError, match='kl_is_correction'): RLADConfig(beta=0.1)
    assert not RLADConfig(alpha=1.0).needs_teacher and RLADConfig(alpha=1.0, beta=0.1, kl_target='teacher').needs_teacher

def test_cli_trains_rlad(tmp_path):
    from reasondistill.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(['train', '--method', 'rlad', '--problems', 'toy:train:2:1,2', '--out', str(tmp_path / 'r'), '--max-steps', '2',
              '--batch-size', '8', '--quant', 'none', '--lora-r', '4', '--teacher', 'toy:teacher',
              '--set', 'num_generations=4', 'max_new_tokens=24', 'delta=2.0', 'train.logging_steps=1'])
    assert 'rlad: trained 2 steps' in buf.getvalue(), buf.getvalue()[-1500:]
    log = [e for e in json.loads((tmp_path / 'r' / 'train_log.json').read_text()) if 'reward' in e]
    assert len(log) == 2 and all('rlad/teacher_minus_old_logp' in e and 'clip_ratio/low_mean' in e for e in log)
    done = json.loads((tmp_path / 'r' / 'train_done.json').read_text())
    assert done['method'] == 'rlad' and done['config']['alpha'] == 0.5 and done['config']['delta'] == 2.0
