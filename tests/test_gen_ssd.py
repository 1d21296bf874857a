"Gen-SSD: its config, chunk perplexities, and `reasondistill train --method gen-ssd`."
import json, math
from collections import Counter
import numpy as np
import pytest
from reasondistill.methods.gen_ssd import GenSSDConfig, GENSSD_SAMPLING, chunk_ppls, gen_ssd_traces, select_gen_ssd

@pytest.fixture(scope='module')
def toy_pair():
    from reasondistill.models import load_model
    t, tok = load_model('toy:teacher'); s, _ = load_model('toy:student')
    return t, s, tok

def test_gen_ssd_config_and_chunks(toy_pair):
    with pytest.raises(ValueError, match='perplexity'): GenSSDConfig(tau=0.5)
    t, s, tok = toy_pair
    from reasondistill.eval.provenance import completion_logprobs
    from reasondistill.models import render_prompt
    p = render_prompt(tok, 'Compute left to right, mod 10: 1+2')
    comp = '<think>\n1+2=3\n</think>\nThe answer is 3.'
    [row] = chunk_ppls([dict(prompt=p, completion=comp)], s, tok)
    r = completion_logprobs(s, tok, [p], [comp])[0]
    # the chunk PPLs recombine to the trace's mean NLL (token-count weighted)
    ends = [i + 1 for i, ch in enumerate(comp) if ch == '\n']
    cnt = Counter(sum(a >= e for e in ends) for a, _ in r['offsets'])
    nll = sum(cnt[j] * math.log(x) for j, x in zip(sorted(cnt), row))
    assert abs(nll + float(np.sum(r['logp']))) < 1e-6

def test_select_gen_ssd_filter():
    from reasondistill.records import Trace
    mk = lambda pid, pruned, fin='stop', v='correct': Trace(pid, 0, 'm', 'p', 'c', verdict=v, finish_reason=fin, meta=dict(gen_ssd=dict(pruned=pruned)))
    kept, st = select_gen_ssd([mk('a', False), mk('b', True, None, 'no_answer'), mk('c', False, 'length'), mk('d', False, v='wrong')])
    assert [t.problem_id for t in kept] == ['a'] and st['yield_'] == 0.25
    assert st['dropped_by_reason'] == {'pruned': 1, 'truncated': 1, 'verdict wrong': 1}
    with pytest.raises(ValueError, match='Gen-SSD record'): select_gen_ssd([Trace('a', 0, 'm', 'p', 'c')])

def test_cli_train_gen_ssd(tmp_path):
    "`reasondistill train --method gen-ssd` calibrates tau, generates the traces, selects them and trains (one step)."
    from reasondistill.cli import main
    out = tmp_path / 'gen-ssd'
    main(['train', '--method', 'gen-ssd', '--problems', 'toy:train:1:2,5', '--out', str(out), '--max-steps', '1', '--batch-size', '2',
          '--set', 'max_new_tokens=96'])
    res = json.loads((out / 'recipe.json').read_text())
    assert (out / 'final' / 'adapter_config.json').exists() and res['train']['global_step'] == 1
    assert res['generation']['requested'] == 2 and res['config']['tau'] >= 1 and res['config']['calibrate_on'] == 64
    meta = json.loads((out / 'traces' / 'meta.json').read_text())
    assert set(meta['sampling']) == {'recipe', 'seed', *GENSSD_SAMPLING} and meta['sampling']['tau'] == res['config']['tau']
