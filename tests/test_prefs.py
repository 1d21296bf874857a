"""DPO / SimPO / QCRD beyond the notebook: the CLI (`reasondistill train --method dpo|simpo|qcrd`) from one stage-1 adapter,
and the registry entries."""
import json
from pathlib import Path
import pytest
import torch
from reasondistill.records import Trace

torch.set_num_threads(1)

def _traces(probs):
    out = []
    for p in probs:
        good = f'<think>\n{p.question.split(": ")[-1]}\n</think>\nThe answer is {p.answer}.'
        bad = str((int(p.answer) + 1) % 10)
        out += [Trace(p.id, 0, 't', '', good, answer=p.answer, verdict='correct', finish_reason='stop'),
                Trace(p.id, 1, 't', '', good.replace(f'is {p.answer}.', f'is {bad}.'), answer=bad, verdict='wrong', finish_reason='stop'),
                Trace(p.id, 2, 't', '', good + ' ', answer=p.answer, verdict='correct', finish_reason='stop')]
    return out

def test_registry():
    from reasondistill.registry import load_methods, get_method
    load_methods()
    for name, mod in (('redi', 'reasondistill.methods.redi'), ('dpo', 'reasondistill.methods.prefs'), ('simpo', 'reasondistill.methods.prefs'), ('qcrd', 'reasondistill.methods.prefs')):
        m = get_method(name)
        assert m.module == mod and m.status == 'implemented' and m.url.startswith('https://arxiv.org/abs/') and m.paper

def test_cli_train_baselines(tmp_path):
    from reasondistill.cli import main
    from reasondistill.tracestore import TraceStore
    from reasondistill.toyworld import toy_problems
    probs = toy_problems(2, [1, 3, 6], split='train')
    with TraceStore(tmp_path / 'traces') as st: st.append(_traces(probs))
    common = ['--traces', str(tmp_path / 'traces'), '--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2']
    main(['train', '--method', 'sft', '--out', str(tmp_path / 'sft'), *common])
    adapter = str(tmp_path / 'sft' / 'final')
    main(['train', '--method', 'dpo', '--out', str(tmp_path / 'dpo'), *common, f'dpo.sft_adapter={adapter}', 'dpo.max_steps=2', 'dpo.beta=0.05'])
    main(['train', '--method', 'simpo', '--out', str(tmp_path / 'simpo'), *common, f'simpo.sft_adapter={adapter}', 'simpo.max_steps=1'])
    main(['train', '--method', 'qcrd', '--out', str(tmp_path / 'qcrd'), *common, f'qcrd.sft_adapter={adapter}', 'qcrd.max_steps=2',
          'qcrd.rounds=2', 'qcrd.max_new_tokens=24', 'qcrd.discriminator=false'])
    r = {m: json.loads((tmp_path / m / 'two_stage.json').read_text())['stage2'] for m in ('dpo', 'simpo', 'qcrd')}
    assert r['dpo']['beta'] == 0.05 and r['dpo']['global_step'] == 2 and r['dpo']['start_adapter'] == adapter
    assert r['simpo']['beta'] == 2.0 and r['simpo']['global_step'] == 1
    assert r['qcrd']['global_step'] == 2 and [x['discriminator'] for x in r['qcrd']['rounds']] == [None, None]
    assert r['qcrd']['rounds'][0]['start_adapter'] == adapter and r['qcrd']['data']['problems'] == 6
    for m in ('dpo', 'simpo', 'qcrd'): assert Path(r[m]['final'], 'adapter_config.json').exists(), m
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'qcrd', '--out', str(tmp_path / 'x'), *common, f'qcrd.sft_adapter={adapter}', 'qcrd.nope=1'])
