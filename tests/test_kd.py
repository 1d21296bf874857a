"""Test matrices and end-to-end checks for `reasondistill.signals` and `reasondistill.methods.kd` (the notebooks hold the
readable examples).

References are written from the definitions, independently of the modules: float64 softmax formulas over full
[N, V] tensors under autograd, the (k+1)-outcome bucket distributions built by hand, and central finite differences."""
import json, math, os, random, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from _reference import ref_div
from reasondistill.signals import TeacherSignal, tokenize_example, collate_tokenized, pack_ids, unpack_ids, id_bits
from reasondistill.divergences import kd_loss, chunked_ce
from reasondistill.methods.kd import kd_objective, KDConfig

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
CASES = [('fkl', {}), ('rkl', {}), ('tvd', {}), ('jsd', {'beta': 0.5}), ('jsd', {'beta': 0.9}), ('jsd', {'beta': 0.0}),
         ('skew_fkl', {'alpha': 0.1}), ('skew_rkl', {'alpha': 0.3})]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for n, kw in CASES]

def problem(seed=0, N=23, H=8, V=40, pad=5):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, H, dtype=torch.float64, generator=g).requires_grad_()
    W = (0.6 * torch.randn(V, H, dtype=torch.float64, generator=g)).requires_grad_()
    th = torch.randn(N, 6, dtype=torch.float64, generator=g)
    tW = 0.8 * torch.randn(V + pad, 6, dtype=torch.float64, generator=g)    # padding rows past the shared vocabulary
    return h, W, th, tW, V

def grads(loss, h, W): return torch.autograd.grad(loss, (h, W))

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
@pytest.mark.parametrize('tau,t2', [(1.0, False), (2.0, True), (0.7, False)])
def test_full_path_matches_definition(name, kw, tau, t2):
    h, W, th, tW, V = problem()
    sig = TeacherSignal('full', temperature=tau, vocab_size=V, hidden=th, head_weight=tW)
    got = kd_loss(h, W, sig, name, chunk_size=5, t2_scale=t2, **kw)
    p, q = torch.softmax(th @ tW[:V].T / tau, -1), torch.softmax(h @ W.T / tau, -1)
    ref = ref_div(name, p, q, **kw).mean() * (tau ** 2 if t2 else 1)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    for a, b in zip(grads(got, h, W), grads(ref, h, W)): torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)

@pytest.mark.parametrize('name,kw', CASES, ids=IDS)
@pytest.mark.parametrize('tail', ['bucket', 'renorm'])
def test_topk_path_matches_definition(name, kw, tail):
    h, W, th, tW, V = problem(1)
    tau, k = 1.5, 6
    full = TeacherSignal('full', temperature=tau, vocab_size=V, hidden=th, head_weight=tW)
    top = full.to_topk(k)
    got = kd_loss(h, W, top, name, tail=tail, chunk_size=4, **kw)
    p = torch.softmax(th @ tW[:V].T / tau, -1); q = torch.softmax(h @ W.T / tau, -1)
    ids = p.argsort(-1, descending=True)[:, :k]
    assert torch.equal(top.topk_ids, ids)
    pk, qk = p.gather(-1, ids), q.gather(-1, ids)
    if tail == 'bucket': P, Q = torch.cat([pk, 1 - pk.sum(-1, keepdim=True)], -1), torch.cat([qk, 1 - qk.sum(-1, keepdim=True)], -1)
    else: P, Q = pk / pk.sum(-1, keepdim=True), qk / qk.sum(-1, keepdim=True)
    ref = ref_div(name, P, Q, **kw).mean()
    assert got.item() == pytest.approx(ref.item(), rel=1e-8, abs=1e-12)
    for a, b in zip(grads(got, h, W), grads(ref, h, W)): torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-10)

@pytest.mark.parametrize('name', ['fkl', 'rkl', 'jsd'])
@pytest.mark.parametrize('kind', ['full', 'topk'])
def test_gradient_matches_finite_differences(name, kind):
    h, W, th, tW, V = problem(2, N=6, H=4, V=15)
    sig = TeacherSignal('full', temperature=1.3, vocab_size=V, hidden=th, head_weight=tW)
    if kind == 'topk': sig = sig.to_topk(4)
    f = lambda hh, ww: kd_loss(hh, ww, sig, name, chunk_size=4)
    gh, gw = grads(f(h, W), h, W)
    eps = 1e-6
    for x, g in ((h, gh), (W, gw)):
        for idx in [(0, 0), (3, 1), (x.shape[0] - 1, x.shape[1] - 1)]:
            with torch.no_grad():
                d = torch.zeros_like(x); d[idx] = eps
                hp, wp = (h + d, W) if x is h else (h, W + d)
                hm, wm = (h - d, W) if x is h else (h, W - d)
                fd = (f(hp, wp) - f(hm, wm)).item() / (2 * eps)
            assert g[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)

def test_logits_signal_equals_hidden_signal_and_sum_reduction():
    h, W, th, tW, V = problem(3)
    a = TeacherSignal('full', temperature=2.0, vocab_size=V, hidden=th, head_weight=tW)
    b = TeacherSignal('full', temperature=2.0, vocab_size=V, logits=th @ tW.T)
    for name in ('fkl', 'rkl'):
        assert kd_loss(h, W, a, name).item() == pytest.approx(kd_loss(h, W, b, name).item(), rel=1e-10)
        assert kd_loss(h, W, a, name, reduction='sum').item() == pytest.approx(len(h) * kd_loss(h, W, a, name).item(), rel=1e-10)
        top = a.to_topk(5)
        assert kd_loss(h, W, top, name, t2_scale=True).item() == pytest.approx(4 * kd_loss(h, W, top, name).item(), rel=1e-10)
    with pytest.raises(ValueError, match='positions'): kd_loss(h[:-1], W, a)

def test_kd_objective_weights():
    h, W, th, tW, V = problem(4)
    sig = TeacherSignal('full', vocab_size=V, hidden=th, head_weight=tW)
    y = torch.randint(0, V, (len(h),), generator=torch.Generator().manual_seed(0))
    ce = torch.nn.functional.cross_entropy(h @ W.T, y, reduction='sum')
    kd = kd_loss(h, W, sig, 'rkl', reduction='sum')
    loss, m = kd_objective(h, W, y, sig, KDConfig(divergence='rkl', kd_weight=0.7, ce_weight=0.3))
    assert loss.item() == pytest.approx((0.7 * kd + 0.3 * ce).item(), rel=1e-10)
    assert m['ce_loss'] == pytest.approx(ce.item() / len(h)) and m['kd_loss'] == pytest.approx(kd.item() / len(h))
    with pytest.raises(ValueError, match='not both 0'): KDConfig(kd_weight=0, ce_weight=0)

@pytest.mark.parametrize('bits', [1, 5, 8, 9, 13, 16, 17, 18, 24])
def test_pack_ids_roundtrip(bits):
    g = np.random.default_rng(bits)
    ids = g.integers(0, 2 ** bits, size=(7, 11))
    buf = pack_ids(ids, bits)
    assert buf.dtype == np.uint8 and buf.shape == (7, math.ceil(11 * bits / 8))
    assert (unpack_ids(buf, 11, bits) == ids).all()
    with pytest.raises(ValueError): pack_ids(np.array([[2 ** bits]]), bits)
    assert id_bits(2 ** bits) == bits and id_bits(2 ** bits + 1) == bits + 1


def test_tokenisation_matches_trl_sft(toy, tmp_path):
    "`tokenize_example` builds exactly the input ids and labels TRL's SFTTrainer builds for a prompt-completion dataset."
    import trl, datasets
    from reasondistill.models import load_model
    tok, _, ex = toy
    model, _ = load_model('toy:student')
    args = trl.SFTConfig(output_dir=str(tmp_path), max_length=64, completion_only_loss=True, packing=False, report_to='none',
                         use_cpu=True, shuffle_dataset=False, dataset_num_proc=None)
    tr = trl.SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list([dict(prompt=e['prompt'], completion=e['completion']) for e in ex]),
                        processing_class=tok)
    got = tr.train_dataset
    assert len(got) == len(ex)
    for row, e in zip(got, ex):
        mine = tokenize_example(tok, e['prompt'], e['completion'], 64)
        assert row['input_ids'] == mine['input_ids']
        assert row['labels'] == [t if m else -100 for t, m in zip(mine['input_ids'], mine['completion_mask'])]

def test_chunked_ce_is_the_models_own_loss(toy):
    from reasondistill.models import load_model
    from reasondistill.signals import final_hidden, lm_head_weight
    tok, _, ex = toy
    model, _ = load_model('toy:student')
    b = collate_tokenized([tokenize_example(tok, e['prompt'], e['completion'], 256) for e in ex[:3]], tok.pad_token_id)
    with torch.no_grad():
        ref = model(**b).loss
        m = b['labels'][:, 1:] != -100
        h = final_hidden(model, b['input_ids'], b['attention_mask'])[:, :-1][m]
        ce = chunked_ce(h, lm_head_weight(model), b['labels'][:, 1:][m], chunk_size=16)
    assert ce.item() == pytest.approx(ref.item(), rel=1e-5)

def _store(path, probs, ex):
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    with TraceStore(path, meta=dict(model='toy:teacher')) as st:
        st.append([Trace(p.id, 0, 'toy:teacher', e['prompt'], e['completion'], verdict='correct', finish_reason='stop',
                         n_completion_tokens=len(e['completion'].split()), meta=dict(level=p.meta['level'])) for p, e in zip(probs, ex)])

def test_cli_train_kd_online_cached_and_self(toy, tmp_path, capsys):
    from reasondistill.cli import main
    tok, probs, ex = toy
    _store(tmp_path / 'traces', probs, ex)
    common = ['--traces', str(tmp_path / 'traces'), '--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2']
    main(['train', '--method', 'kd-rkl', '--out', str(tmp_path / 'rkl'), *common, '--set', 'temperature=2.0', 'ce_weight=0.5', 'train.lr=0.001'])
    done = json.loads((tmp_path / 'rkl' / 'train_done.json').read_text())
    assert done['global_step'] == 2 and done['method'] == 'kd-rkl' and done['teacher'] == 'toy:teacher'
    c = done['config']
    assert c['divergence'] == 'rkl' and c['temperature'] == 2.0 and c['ce_weight'] == 0.5 and c['train']['lr'] == 0.001
    assert done['n_heldout'] == 1 and done['fidelity']['kl_kind'] == 'dense'      # a fifth of 6 examples held out
    log = json.loads((tmp_path / 'rkl' / 'train_log.json').read_text())
    assert any('ce_loss' in e and 'kd_loss' in e for e in log)
    main(['train', '--method', 'kd-tvd', '--cache', str(tmp_path / 'cache'), '--out', str(tmp_path / 'tvd'), *common, '--set', 'topk=8'])
    done = json.loads((tmp_path / 'tvd' / 'train_done.json').read_text())
    assert done['teacher'].startswith('cache:') and (tmp_path / 'cache' / 'meta.json').exists()
    main(['train', '--method', 'kd-jsd', '--teacher', 'self', '--out', str(tmp_path / 'self'), *common])
    assert json.loads((tmp_path / 'self' / 'train_done.json').read_text())['teacher'] == 'self'
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'kd-fkl', '--out', str(tmp_path / 'x'), *common, '--set', 'nope=1'])

def _run(args, timeout=600):
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

def test_topk_cache_bytes_benchmark(tmp_path):
    p = _run(['benchmarks/topk_cache_bytes.py', '--examples', '16', '--out', str(tmp_path / 'bytes')])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    r = json.loads((tmp_path / 'bytes.json').read_text())
    assert r['target_id_bits'] == 18 and r['scaled_bytes_per_token']['by_field']['ids'] == pytest.approx(144)
    assert r['ratio'] <= 0.001 < r['int32_ids_ratio']

def test_kd_toy_benchmark_tiny(tmp_path):
    p = _run(['benchmarks/kd_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'work'), '--out', str(tmp_path / 'kd')])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / 'kd.json').read_text())
    assert set(r['aggregate']) == {'sft', 'kd-fkl', 'kd-rkl', 'kd-jsd', 'kd-fkl-cached'}
    assert {'dense_kl', 'cached_kl', 'rel_diff', 'goal_met'} <= set(r['dense_vs_cached'])
    assert (tmp_path / 'kd.md').exists() and (tmp_path / 'kd_by_level.png').exists()
    # re-running resumes: every run's result is read back, nothing is trained again
    p = _run(['benchmarks/kd_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'work'), '--out', str(tmp_path / 'kd2')])
    assert p.returncode == 0 and 'train ' not in p.stdout.split('# Token-level')[0]

def test_trainer_evaluate_reports_the_objective(toy, tmp_path):
    "KDTrainer.evaluate gives the KD objective; on one batch it equals the fidelity KL, computed by another code path."
    import trl, datasets
    from reasondistill.models import load_model, ModelSpec, LoraSpec
    from reasondistill.signals import ModelTeacher
    from reasondistill.methods.kd import KDTrainer
    from reasondistill.eval.fidelity import fidelity
    tok, _, ex = toy
    teacher, _ = load_model('toy:teacher')
    student, stok = load_model(ModelSpec('toy:student', lora=LoraSpec(r=4, alpha=8)), trainable=True)
    stok.padding_side = 'right'
    rows = [dict(tokenize_example(stok, e['prompt'], e['completion'], 256), example_idx=i) for i, e in enumerate(ex)]
    ds = datasets.Dataset.from_list(rows)
    args = trl.SFTConfig(output_dir=str(tmp_path), max_length=256, completion_only_loss=True, packing=False, report_to='none',
                         use_cpu=True, per_device_eval_batch_size=len(rows), dataset_num_proc=None)
    src = ModelTeacher(teacher, temperature=1.0)
    tr = KDTrainer(model=student, args=args, train_dataset=ds, eval_dataset=ds, processing_class=stok, teacher=src,
                          kd=KDConfig(divergence='fkl'))
    ev = tr.evaluate()
    f = fidelity(student, src, [collate_tokenized(rows, stok.pad_token_id)])
    assert ev['eval_loss'] == pytest.approx(f['kl'], rel=1e-4)
    assert ev['eval_kd_loss'] == pytest.approx(f['kl'], rel=1e-4)
