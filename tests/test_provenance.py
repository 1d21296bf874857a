"Provenance tracing: sentence spans, token-to-sentence mapping, geometric means, categories, shares and selection."
import importlib.util, math, sys
from pathlib import Path
import numpy as np
import pytest

if importlib.util.find_spec('reasondistill') is None:   # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reasondistill.eval.provenance import (CATEGORIES, TraceProvenance, sentence_spans, split_sentences, token_sentences,
                                      sentence_logprobs, classify, category_shares, dataset_shares, shares_by_position,
                                      divergence_scores, select_by_divergence, rank_sentences, score_traces,
                                      completion_logprobs)

P = np.log

# --- segmentation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text,unit,expected', [
    ('<think>\n1+2\n3*4=2 | +1\n</think>\nThe answer is 3.', 'sentence', ['1+2', '3*4=2 | +1', 'The answer is 3.']),
    ('First. Second!  Third? fourth.', 'sentence', ['First.', 'Second!', 'Third? fourth.']),   # lower case: no cut
    ('So $x = 1.5$. Then $$a.\nB$$ ok.', 'sentence', ['So $x = 1.5$.', 'Then $$a.\nB$$ ok.']),    # math kept whole
    ('a\nb\n\nc', 'line', ['a', 'b', 'c']),
    ('a\nb\n\nc', 'paragraph', ['a\nb', 'c']),
    ('\\begin{align} x &= 1. \\\\\n Y &= 2 \\end{align}. Done.', 'sentence', ['\\begin{align} x &= 1. \\\\\n Y &= 2 \\end{align}.', 'Done.']),
    ('<|begin_of_thought|>\n\nHmm. Ok.\n\n<|end_of_thought|>', 'sentence', ['Hmm.', 'Ok.']),
])
def test_split_sentences(text, unit, expected):
    assert split_sentences(text, unit) == expected
    for a, b in sentence_spans(text, unit): assert text[a:b] == text[a:b].strip() != ''

def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match='unit must be'): sentence_spans('x', unit='token')
    with pytest.raises(TypeError, match='must be a str'): sentence_spans(None)

# --- span mapping on hand-made examples -------------------------------------------------------------------------

def test_token_sentences_hand_made():
    text = 'Hi there. Bye now.\nEnd'
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ['Hi there.', 'Bye now.', 'End']
    offs = [(0, 2), (2, 8), (8, 9), (9, 13), (13, 17), (17, 18), (18, 19), (19, 22)]
    #        Hi     ' there' '.'   ' Bye'   ' now'   '.'     '\n'     End
    assert token_sentences(offs, spans, text).tolist() == [0, 0, 0, 1, 1, 1, 1, 2]
    assert token_sentences([(8, 13)], spans, text).tolist() == [0]     # '. Bye' straddles: its first character wins
    assert token_sentences([(9, 10)], spans, text).tolist() == [0]     # a lone space is trailing whitespace of sentence 0
    assert token_sentences([(5, 5)], spans, text).tolist() == [-1]     # empty (special) tokens belong to nothing

def test_token_sentences_markers_belong_to_nothing():
    text = '<think>\nA.\n</think>\nB.'
    spans = sentence_spans(text)
    assert token_sentences([(0, 7), (7, 8), (8, 10), (10, 11), (11, 19), (19, 20), (20, 22)], spans, text).tolist() == \
        [-1, -1, 0, 0, -1, -1, 1]

# --- geometric mean against a direct computation ----------------------------------------------------------------

def test_sentence_logprobs_is_log_geometric_mean():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 1, size=20)
    ix = rng.integers(-1, 4, size=20)
    g, n = sentence_logprobs(np.log(probs), ix, 5)
    for j in range(5):
        sel = probs[ix == j]
        assert n[j] == len(sel)
        if len(sel): assert math.isclose(math.exp(g[j]), math.prod(sel) ** (1 / len(sel)), rel_tol=1e-12)
        else: assert math.isnan(g[j])

# --- categories on synthetic probabilities ----------------------------------------------------------------------

def test_classify_ratio_rule():
    t = P([0.8, 0.1, 0.5, 0.5, 0.5]); s = P([0.1, 0.8, 0.5, 0.5, 0.5]); d = P([0.1, 0.1, 0.5, 0.9, 0.2])
    assert classify(t, s, d).tolist() == ['teacher', 'student', 'shared', 'shared', 'boosted']
    assert classify(t, s, P([0.1, 0.1, 0.5, 1.0 + 1e-9, 0.26])).tolist()[3:] == ['boosted', 'shared']
    assert classify(t, s).tolist() == ['teacher', 'student', 'shared', 'shared', 'shared']
    assert classify(t, s, d, delta=5.0).tolist() == ['shared'] * 5

def test_classify_threshold_rule_and_nan():
    t = P([0.9, 0.2, 0.2, 0.5]); s = P([0.2, 0.9, 0.2, 0.5]); d = P([0.5, 0.5, 0.9, 1.0])
    assert classify(t, s, d, rule='threshold').tolist() == ['teacher', 'student', 'unexplained', 'boosted']
    assert classify([np.nan, 0.0], [0.0, 0.0], [0.0, np.nan]).tolist() == ['unscored', 'unscored']
    with pytest.raises(ValueError, match='delta'): classify([0.0], [0.0], delta=-1)

def _tp(pid, gt, gs, gd=None):
    lp = dict(teacher=P(gt), student=P(gs)) | ({} if gd is None else dict(distilled=P(gd)))
    return TraceProvenance('x' * len(gt), [(i, i + 1) for i in range(len(gt))], lp, meta=dict(problem_id=pid))

def test_shares_and_selection():
    trs = [_tp('a', [0.9, 0.9], [0.1, 0.1], [0.9, 0.9]), _tp('a', [0.5, 0.5, 0.5], [0.5, 0.5, 0.1], [0.5, 0.1, 0.5]),
           _tp('b', [0.1, 0.5], [0.9, 0.5], [0.9, 0.5])]
    rows = category_shares(trs, distilled='distilled')
    assert [r['teacher'] for r in rows] == [1.0, 1 / 3, 0.0] and rows[1]['boosted'] == 1 / 3 and rows[2]['student'] == 0.5
    ds = dataset_shares(rows, n_boot=200)
    assert math.isclose(ds['teacher']['mean'], 3 / 7) and ds['n_problems'] == 2 and ds['n_sentences'] == 7
    assert math.isclose(sum(ds[k]['mean'] for k in CATEGORIES), 1.0)
    assert ds['teacher']['lo'] <= 3 / 7 <= ds['teacher']['hi']
    assert shares_by_position(trs, bins=1, distilled='distilled')['n'].tolist() == [7]
    sc = divergence_scores(trs)
    assert [r['teacher_share'] for r in sc] == [1.0, 1 / 3, 0.0]
    assert select_by_divergence(trs) == [0, 1, 2] and select_by_divergence(trs, largest=False) == [2, 1, 0]
    assert select_by_divergence(trs, per_problem=1) == [0, 2] and select_by_divergence(trs, k=1, by='max_gap') == [0]
    assert rank_sentences(trs, top=1, largest=False)[0]['trace'] == 2
    with pytest.raises(ValueError, match='no scored sentences'): dataset_shares([dict(n=0)])

# --- with the shipped toy models --------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def teacher():
    pytest.importorskip('torch'); pytest.importorskip('transformers')
    from reasondistill.models import load_model
    return load_model('toy:teacher', device='cpu')

def test_score_traces_matches_direct_forward_pass(teacher):
    import torch
    from reasondistill.models import render_prompt
    model, tok = teacher
    q = 'Compute left to right, mod 10: 3+4*2'
    comp = '<think>\n3+4*2\n3+4=7 | *2\n7*2=4\n</think>\nThe answer is 4.'
    prompt = render_prompt(tok, q)
    [tp] = score_traces([dict(question=q, completion=comp)], {'teacher': (model, tok)})
    assert tp.sentences == ['3+4*2', '3+4=7 | *2', '7*2=4', 'The answer is 4.']
    enc = tok(prompt + comp, return_offsets_mapping=True, add_special_tokens=False)
    with torch.no_grad(): lp = torch.log_softmax(model(torch.tensor([enc['input_ids']])).logits[0].double(), -1)
    L = len(prompt)
    for j, (a, b) in enumerate(tp.spans):     # here no token straddles two sentences: a sentence is its tokens + its newline
        toks = [t for t, (x, y) in enumerate(enc['offset_mapping']) if y > x and (a <= x - L < b or (x - L == b and comp[b] == '\n'))]
        direct = math.exp(np.mean([lp[t - 1, enc['input_ids'][t]].item() for t in toks]))
        assert math.isclose(direct, tp.prob('teacher')[j], rel_tol=1e-4) and tp.n_tokens['teacher'][j] == len(toks)
    with pytest.raises(ValueError, match='completions'): completion_logprobs(model, tok, [prompt], [])
