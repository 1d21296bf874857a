"GAR: slices and the slice reward against their definition, the discriminator's loss against BCE, separation, co-training, resume, CLI."
import contextlib, io, json, random, shutil, tempfile
import pytest
import torch
from reasondistill.methods.gar import (GARConfig, GARTrainer, trace_slices, slice_rewards, slice_features, SliceDiscriminator,
                                       discriminator_loss, discriminator_step, gar_examples, train_gar)
from reasondistill.methods.grpo import grpo_args, grpo_dataset, grpo_rewards
from reasondistill.models import load_model, ModelSpec, LoraSpec
from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace, apply_op
from reasondistill.train import TrainConfig, Run, default_student_spec

@pytest.fixture(scope='module')
def student():
    return load_model(ModelSpec('toy:student', lora=LoraSpec(r=4)), trainable=True)

def _ref_slices(text, min_chars):
    "From the definition: the non-empty lines without the think markers, greedily joined until min_chars; a short tail joins the last."
    lines = [l.strip() for l in text.split('\n') if l.strip() and l.strip() not in ('<think>', '</think>')]
    out, cur = [], []
    for l in lines:
        cur.append(l)
        if len('\n'.join(cur)) >= min_chars: out.append('\n'.join(cur)); cur = []
    if cur:
        if out: out[-1] += '\n' + '\n'.join(cur)
        else: out.append('\n'.join(cur))
    return out

def test_slices_match_the_definition():
    rng = random.Random(0)
    for p in toy_problems(4, levels=[1, 3, 6], split='train'):
        for style in ('concise', 'default', 'verbose'):
            text, _ = reference_trace(parse_toy_question(p.question), rng, style=style)
            for m in (0, 10, 25, 10_000):
                assert trace_slices(text, 'line', m) == _ref_slices(text, m), (text, m)
    assert trace_slices('') == [] and trace_slices('<think>\n</think>\n') == []
    assert trace_slices('<think>\nA b. C d.\n</think>\nThe answer is 1.', 'sentence') == ['A b.', 'C d.', 'The answer is 1.']

def test_slice_reward_aggregation():
    g = torch.Generator().manual_seed(0)
    counts = [3, 0, 1, 5, 2]
    s = torch.rand(sum(counts), generator=g)
    ref, i = [], 0
    for n in counts:
        ref.append(sum(s[i:i + n].tolist()) / n if n else 0.0); i += n
    assert slice_rewards(s, counts) == pytest.approx(ref, abs=1e-6)
    ref_b, i = [], 0
    for n in counts:
        ref_b.append(sum(float(x > 0.5) for x in s[i:i + n].tolist()) / n if n else 0.0); i += n
    assert slice_rewards(s, counts, binary=True) == pytest.approx(ref_b, abs=1e-6)
    with pytest.raises(ValueError, match='slices'): slice_rewards(s, [1])

def test_discriminator_loss_is_balanced_bce():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(9, generator=g, requires_grad=True)
    y = torch.tensor([1, 1, 0, 0, 0, 0, 0, 1, 0])
    pos = [-torch.log(torch.sigmoid(a)) for a, b in zip(z, y) if b == 1]
    neg = [-torch.log(1 - torch.sigmoid(a)) for a, b in zip(z, y) if b == 0]
    ref = 0.5 * sum(pos) / len(pos) + 0.5 * sum(neg) / len(neg)
    mine = discriminator_loss(z, y)
    assert mine.dtype == torch.float32 and torch.allclose(mine, ref, atol=1e-6)
    assert torch.allclose(torch.autograd.grad(mine, z)[0], torch.autograd.grad(ref, z)[0], atol=1e-6)
    w = torch.where(y == 1, 0.5 / 3, 0.5 / 6)                       # the same as a weighted BCE: each class weighs 1/2
    assert torch.allclose(mine, torch.nn.functional.binary_cross_entropy_with_logits(z, y.float(), weight=w, reduction='sum'), atol=1e-6)
    one = discriminator_loss(z[:2], y[:2])                           # only positives: their mean BCE
    assert torch.allclose(one, -torch.log(torch.sigmoid(z[:2])).mean(), atol=1e-6)

def _steps(problems, wrong, seed=0):
    rng, out = random.Random(seed), []
    for p in problems:
        tp = parse_toy_question(p.question); v = tp.start
        for o, b in tp.steps:
            r = apply_op(v, o, b)
            out.append((p.question, f'{v}{o}{b}={(r + rng.randint(1, 9)) % 10 if wrong else r}')); v = r
    return out

def test_features_and_a_few_updates_separate_right_from_wrong_steps(student):
    model, tok = student
    feats = lambda rows: slice_features(model, tok, [c for c, _ in rows], [[s] for _, s in rows])
    tr, ho = toy_problems(20, levels=[2, 3], split='train'), toy_problems(20, levels=[2, 3], split='dev')
    pos, neg = feats(_steps(tr, False)), feats(_steps(tr, True))
    hpos, hneg = feats(_steps(ho, False, 1)), feats(_steps(ho, True, 1))
    assert pos.shape == (100, 2 * 192 + 2) and pos.dtype == torch.float32
    q = 'Compute left to right, mod 10: 3-7*2'
    one = slice_features(model, tok, [q, q + '+1'], [['3-7=6 | *2', '6*2=2'], ['3-7=6 | *2+1']], batch_size=1)
    two = slice_features(model, tok, [q, q + '+1'], [['3-7=6 | *2', '6*2=2'], ['3-7=6 | *2+1']])       # padded batch
    assert one.shape == (3, 2 * 192 + 2) and torch.allclose(one, two, atol=1e-4)
    # the second slice is read after the first: the same as reading the whole chain, pooled over its tokens (from the definition)
    ids = tok(q + '\n', add_special_tokens=False)['input_ids'] + tok('3-7=6 | *2', add_special_tokens=False)['input_ids']
    ids += tok('\n', add_special_tokens=False)['input_ids']; a = len(ids)
    ids += tok('6*2=2', add_special_tokens=False)['input_ids']
    with torch.no_grad(), model.disable_adapter(): o = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    h, lp = o.hidden_states[-1][0], torch.log_softmax(o.logits[0].float(), -1)
    tl = torch.stack([lp[t - 1, ids[t]] for t in range(a, len(ids))])
    assert torch.allclose(one[1], torch.cat([h[a:].mean(0), h[-1], tl.mean()[None], tl.min()[None]]), atol=1e-4)
    # a window too short for the chain splits it; every slice still gets a feature vector
    assert slice_features(model, tok, [q], [['3-7=6 | *2', '6*2=2', 'The answer is 2.']], max_tokens=12).shape == (3, 2 * 192 + 2)
    torch.manual_seed(0)
    disc = SliceDiscriminator(pos.shape[1]); opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    first = discriminator_step(disc, opt, pos, neg)
    for _ in range(59): last = discriminator_step(disc, opt, pos, neg)
    disc.eval()
    with torch.no_grad():
        acc = torch.cat([disc(pos) > 0, disc(neg) <= 0]).float().mean().item()
        sp, sn = torch.sigmoid(disc(hpos)), torch.sigmoid(disc(hneg))
    assert last['loss'] < 0.5 * first['loss'] and acc >= 0.9
    assert (sp[:, None] > sn[None, :]).float().mean() > 0.65           # held-out problems: AUROC (0.77 measured)

def _trainer(student_spec, tmp, **kw):
    model, tok = load_model(student_spec, trainable=True)
    probs = toy_problems(2, levels=[2], split='train')
    ex, refs, ctx = gar_examples(probs)
    cfg = GARConfig(train=TrainConfig(batch_size=4, max_steps=1), num_generations=4, max_new_tokens=16, **kw)
    return GARTrainer(model=model, reward_funcs=grpo_rewards(cfg)[0], args=grpo_args(cfg, tmp), train_dataset=grpo_dataset(ex, tok),
                      processing_class=tok, gar=cfg, references=refs, contexts=ctx), probs, refs

def test_slice_reward_scores_then_updates(tmp_path):
    "The reward is the mean sigmoid score of the slices under the discriminator *before* this batch's update; the update follows."
    tr, probs, refs = _trainer(ModelSpec('toy:student', lora=LoraSpec(r=4)), tmp_path, disc_warmup_steps=0, disc_steps=3)
    assert [f.__name__ for f in tr.reward_funcs] == ['correct', 'format', 'slice'] and tr.reward_weights.tolist() == pytest.approx([1.0, 0.1, 0.5])
    comps = [refs[probs[0].id], '<think>\n1+1=3\n2*2=5\n</think>\nThe answer is 9.', '', 'The answer is 0.']
    pids, gold = [probs[0].id] * 4, [probs[0].answer] * 4
    sl = [trace_slices(c) for c in comps]
    x = slice_features(tr.model, tr.processing_class, [probs[0].question] * len(sl), sl)
    before = {k: v.clone() for k, v in tr.disc.state_dict().items()}
    tr.disc.eval()
    with torch.no_grad(): expect = slice_rewards(torch.sigmoid(tr.disc(x)), [len(s) for s in sl])
    logged = {}
    r = tr._slice_reward(prompts=None, completions=comps, answer=gold, problem_id=pids, log_metric=lambda k, v: logged.setdefault(k, []).append(v))
    assert r == pytest.approx(expect, abs=1e-6) and r[2] == 0.0
    assert len(logged['gar/disc_loss']) == 3 and tr.batches == 1                    # three steps on the failed rollouts' slices
    assert any(not torch.equal(before[k], v) for k, v in tr.disc.state_dict().items())
    assert 'gar/slice_score_correct' in logged and 'gar/slice_score_wrong' in logged

def test_config_validation():
    with pytest.raises(ValueError, match='slice_unit'): GARConfig(slice_unit='word')
    with pytest.raises(ValueError, match='disc_features'): GARConfig(disc_features='attention')
    with pytest.raises(ValueError, match='slice_weight'): GARConfig(slice_weight=-1)
    with pytest.raises(ValueError, match='must divide'): GARConfig(num_generations=3)          # GRPO's checks still apply
    with pytest.raises(ValueError, match='reference'): train_gar([dict(question='q', answer='1', id='a')],
                                                                 Run(tempfile.mkdtemp(), default_student_spec(quant='none', r=4)))

def test_cotraining_run_saves_and_resumes_the_discriminator(tmp_path):
    cfg = GARConfig(train=TrainConfig(max_steps=2, batch_size=8, logging_steps=1, save_steps=1, warmup_ratio=0.0),
                    num_generations=4, max_new_tokens=24, disc_warmup_steps=5, disc_steps=2)
    run = Run(str(tmp_path / 'g'), default_student_spec(quant='none', r=4))
    s = train_gar(toy_problems(2, levels=[1, 2], split='train'), run, cfg)
    assert s['global_step'] == 2 and s['gen_sequences'] == 16 and 0 < s['gen_share'] < 1
    log = [e for e in json.loads((tmp_path / 'g' / 'train_log.json').read_text()) if 'reward' in e]
    assert len(log) == 2 and all(k in e for e in log for k in ('rewards/slice/mean', 'rewards/correct/mean', 'gar/slices', 'gar/disc_loss'))
    d1 = torch.load(tmp_path / 'g' / 'checkpoint-1' / 'discriminator.pt', weights_only=True)
    d2 = torch.load(tmp_path / 'g' / 'discriminator.pt', weights_only=True)
    assert (d1['batches'], d2['batches']) == (1, 2)
    assert any(not torch.equal(d1['disc'][k], d2['disc'][k]) for k in d1['disc'])      # the discriminator kept training
    shutil.rmtree(tmp_path / 'g' / 'checkpoint-2'); (tmp_path / 'g' / 'train_done.json').unlink()
    s = train_gar(toy_problems(2, levels=[1, 2], split='train'), run, cfg)
    assert s['resumed_from'].endswith('checkpoint-1')
    assert torch.load(tmp_path / 'g' / 'discriminator.pt', weights_only=True)['batches'] == 2   # restored at 1, one more batch

def test_cli_trains_gar(tmp_path):
    from reasondistill.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(['train', '--method', 'gar', '--problems', 'toy:train:2:1-2', '--out', str(tmp_path / 'x'), '--student', 'toy:student',
              '--quant', 'none', '--max-steps', '1', '--batch-size', '4', '--lora-r', '4',
              '--set', 'num_generations=4', 'max_new_tokens=16', 'slice_weight=0.3', 'train.logging_steps=1'])
    out = buf.getvalue()
    assert 'gar: trained 1 steps' in out and '"with_reference": 4' in out, out[-1500:]
    done = json.loads((tmp_path / 'x' / 'train_done.json').read_text())
    assert done['method'] == 'gar' and done['config']['slice_weight'] == 0.3 and done['config']['verifier'] == 'toy'
    assert (tmp_path / 'x' / 'discriminator.pt').exists()
