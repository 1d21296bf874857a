"""DPO / SimPO beyond the notebook: the CLI (`reasondistill train --method dpo|simpo`) from one stage-1 adapter, and the
registry entries."""
import json
from pathlib import Path
import pytest
import torch
from _labelled import labelled_traces

torch.set_num_threads(1)

def test_registry():
    "dpo and simpo are presets of one config and one entry; their papers are linked."
    from reasondistill.registry import get_method, make_config, entry_point
    from reasondistill.methods.prefs import PrefConfig, train_preference_two_stage
    for name, beta in (('dpo', 0.1), ('simpo', 2.0)):
        m = get_method(name)
        assert m.status == 'implemented' and m.url.startswith('https://arxiv.org/abs/') and m.paper and m.data == 'labelled'
        assert m.notebook == 'methods/12_prefs.ipynb' and entry_point(name) is train_preference_two_stage
        cfg = make_config(name)
        assert isinstance(cfg, PrefConfig) and cfg.loss == name and cfg.beta_ == beta
    assert make_config('simpo', ['beta=1.5']).beta_ == 1.5
    with pytest.raises(ValueError, match='loss must be'): make_config('dpo', ['loss="ipo"'])

def test_cli_train_baselines(tmp_path):
    from reasondistill.cli import main
    from reasondistill.tracestore import TraceStore
    from reasondistill.toyworld import toy_problems
    probs = toy_problems(2, [1, 3, 6], split='train')
    with TraceStore(tmp_path / 'traces') as st: st.append(labelled_traces(probs))
    common = ['--traces', str(tmp_path / 'traces'), '--problems', 'toy:train:2:1,3,6', '--max-steps', '2', '--batch-size', '2']
    main(['train', '--method', 'sft', '--out', str(tmp_path / 'sft'), *common])
    adapter = str(tmp_path / 'sft' / 'final')
    main(['train', '--method', 'dpo', '--out', str(tmp_path / 'dpo'), *common, '--set', f'sft_adapter={adapter}', 'max_steps=2', 'beta=0.05'])
    main(['train', '--method', 'simpo', '--out', str(tmp_path / 'simpo'), *common, '--set', f'sft_adapter={adapter}', 'max_steps=1'])
    r = {m: json.loads((tmp_path / m / 'two_stage.json').read_text())['stage2'] for m in ('dpo', 'simpo')}
    assert r['dpo']['beta'] == 0.05 and r['dpo']['global_step'] == 2 and r['dpo']['start_adapter'] == adapter
    assert r['simpo']['beta'] == 2.0 and r['simpo']['global_step'] == 1 and r['simpo']['method'] == 'simpo'
    for m in ('dpo', 'simpo'): assert Path(r[m]['final'], 'adapter_config.json').exists(), m
    with pytest.raises(ValueError, match='unknown config key'):
        main(['train', '--method', 'dpo', '--out', str(tmp_path / 'x'), *common, '--set', f'sft_adapter={adapter}', 'dpo.beta=1'])
