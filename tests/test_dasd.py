"DASD: DAS and random selection on hand-made scores, the config and stage budgets, and `reasondistill train --method dasd`."
import json, math
import pytest
from reasondistill.methods.dasd import DASDConfig, das_select, random_select, stage_config, MixedPolicyConfig
from reasondistill.records import Trace

def _tr(pid, i, v='correct', fin='stop'): return Trace(pid, i, 'm', 'p', 'c', verdict=v, finish_reason=fin)

def test_das_and_random_select():
    tr = [_tr('a', 0), _tr('a', 1), _tr('a', 2, fin='length'), _tr('b', 0), _tr('b', 1, 'wrong'), _tr('c', 0, 'wrong')]
    sc = [dict(problem_id=t.problem_id, sample_idx=t.sample_idx, das=d) for t, d in zip(tr, [0.1, 0.4, 0.9, float('nan'), 0.8, 0.7])]
    kept, st = das_select(tr, sc)
    assert [t.key for t in kept] == [('a', 1), ('b', 0)] and st['eligible'] == 3      # truncated and wrong traces are not eligible
    assert [t.key for t in das_select(tr, sc, per_problem=None, budget=2)[0]] == [('a', 1), ('a', 0)]
    with pytest.raises(ValueError, match='no DAS score'): das_select(tr, sc[:1])
    r, _ = random_select(tr, 1, seed=3)
    assert sorted(t.problem_id for t in r) == ['a', 'b'] and r == random_select(tr, 1, seed=3)[0]

def test_dasd_config_and_stage_budgets():
    from reasondistill.registry import make_config
    c = make_config('dasd', ['stage_steps=[3, 5]', 'train.max_steps=7', 'mixed_triggers=["wrong"]', 'temperatures=[0.6, 1.0]'])
    assert c.stage_steps == (3, 5) and c.mixed_triggers == ('wrong',) and c.temperatures == (0.6, 1.0)
    assert [stage_config(c, i).train.max_steps for i in range(3)] == [3, 5, 7] and c.train.max_steps == 7
    assert c.delta == math.log(2) and c.n_samples == 4 and c.selection == 'das' and c.seed is None      # the old defaults
    with pytest.raises(ValueError, match='selection'): DASDConfig(selection='best')
    with pytest.raises(ValueError, match='stage_steps'): DASDConfig(stage_steps=(0,))
    with pytest.raises(ValueError, match='triggers'): MixedPolicyConfig(triggers=('bad',))

def test_cli_train_dasd(tmp_path):
    "`reasondistill train --method dasd` samples the schedule, selects per stage, trains stage 1 then stage 2 from its adapter."
    from reasondistill.cli import main
    out = tmp_path / 'dasd'
    main(['train', '--method', 'dasd', '--problems', 'toy:train:1:2,3,4', '--out', str(out), '--max-steps', '1', '--batch-size', '2',
          '--set', 'n_samples=2', 'max_new_tokens=96', 'selection="random"'])
    res = json.loads((out / 'dasd.json').read_text())
    assert [s['temperature'] for s in res['stages']] == [0.6, 1.0] and all(s['train']['global_step'] == 1 for s in res['stages'])
    assert res['final'] == str(out / 'stage2-T1.0' / 'final') and (out / 'traces' / 'T0.6' / 'meta.json').exists()
    assert res['global_step'] == 1 and res['train_loss'] == res['stages'][-1]['train']['train_loss']     # what the CLI prints
    cfg2 = json.loads((out / 'stage2-T1.0' / 'final' / 'adapter_config.json').read_text())
    assert cfg2['r'] == 16                                                          # stage 2 continues the stage-1 adapter
