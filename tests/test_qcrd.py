"""QCRD beyond the notebook: the CLI (`reasondistill train --method qcrd`) from a stage-1 adapter, and the registry entry."""
import json
from pathlib import Path
import pytest
import torch
from _labelled import labelled_traces

torch.set_num_threads(1)

def test_registry():
    from reasondistill.registry import get_method, make_config, entry_point
    from reasondistill.methods.qcrd import QCRDConfig, train_qcrd_two_stage
    m = get_method('qcrd')
    assert m.status == 'implemented' and m.url.startswith('https://arxiv.org/abs/') and m.paper and m.data == 'labelled'
    assert m.notebook == 'methods/13_qcrd.ipynb' and entry_point('qcrd') is train_qcrd_two_stage
    cfg = make_config('qcrd', ['rounds=3', 'train.lr=0.01'])
    assert isinstance(cfg, QCRDConfig) and cfg.rounds == 3 and cfg.train.lr == 0.01 and cfg.w_neg == 0.5
    with pytest.raises(ValueError, match='delta'): make_config('qcrd', ['delta=0'])

def test_cli_train_qcrd(tmp_path):
    from reasondistill.cli import main
    from reasondistill.tracestore import TraceStore
    from reasondistill.toyworld import toy_problems
    probs = toy_problems(2, [1, 3, 6], split='train')
    with TraceStore(tmp_path / 'traces') as st: st.append(labelled_traces(probs))
    common = ['--traces', str(tmp_path / 'traces'), '--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2']
    main(['train', '--method', 'sft', '--out', str(tmp_path / 'sft'), *common])
    adapter = str(tmp_path / 'sft' / 'final')
    main(['train', '--method', 'qcrd', '--out', str(tmp_path / 'qcrd'), *common, '--set', f'sft_adapter={adapter}', 'max_steps=2',
          'rounds=2', 'max_new_tokens=24', 'discriminator=false'])
    r = json.loads((tmp_path / 'qcrd' / 'two_stage.json').read_text())['stage2']
    assert r['global_step'] == 2 and [x['discriminator'] for x in r['rounds']] == [None, None]
    assert r['rounds'][0]['start_adapter'] == adapter and r['data']['problems'] == 6 and r['method'] == 'qcrd'
    assert r['config']['verifier'] == 'toy' and r['rounds'][0]['student_negatives']['sampled'] == 6
    assert Path(r['final'], 'adapter_config.json').exists()
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'qcrd', '--out', str(tmp_path / 'x'), *common, '--set', f'sft_adapter={adapter}', 'qcrd.nope=1'])
