"""The training-memory estimate against its committed measurement (benchmarks/results/memory_estimate.json, written by
benchmarks/memory_estimate.py): recomputed with the current code, the estimate of every measured configuration stays
within a factor of the measured growth of a training step. A change to the formula that drifts from what a step
really allocates fails here; re-run the benchmark after changing it on purpose."""
import json
from pathlib import Path
import pytest
from reasondistill.memory import ModelShape, estimate_training_memory, GiB

RESULT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'results' / 'memory_estimate.json'


@pytest.mark.skipif(not RESULT.exists(), reason='no committed memory_estimate result in this checkout')
def test_estimate_tracks_the_committed_measurement():
    res = json.loads(RESULT.read_text())
    assert not res['config']['tiny'] and len(res['rows']) >= 6
    for r in res['rows']:
        shape = ModelShape(layers=4, hidden=r['hidden'], intermediate=2 * r['hidden'], heads=4, kv_heads=2,
                           head_dim=r['hidden'] // 4, vocab=r['vocab'], tied=True)
        e = estimate_training_memory(shape, r['T'], 1, quant='none', dtype='fp32', lora_r=16,
                                     gradient_checkpointing=r['checkpointing'], overhead=0)
        step = (e.total - e.parts['weights']) / GiB
        assert step == pytest.approx(r['estimated_gib'], rel=1e-6), (r, step)   # the committed file is the current formula's
        assert 0.6 <= r['measured_gib'] / step <= 1.6, r


def test_training_refuses_a_run_that_cannot_fit(tmp_path):
    "The fit check runs before any model loads: a tiny memory budget gives one clear error naming the estimate and the knobs."
    from _cli import run_cli
    base = ['train', '--method', 'answer-only', '--problems', 'toy:train:2:1-2', '--quant', 'none', '--max-steps', 1]
    code, _, msg = run_cli(base + ['--out', tmp_path / 'run', '--set', 'train.memory_budget_gb=0.01'])
    assert code == 2 and 'estimated to need' in msg and '0.0 GiB free' in msg and '--max-length' in msg, msg
    assert 'Traceback' not in msg and not (tmp_path / 'run' / 'run_config.json').exists()
    # the same run with the check off, or with room, trains
    for i, extra in enumerate((['train.memory_budget_gb=0.01', 'train.fit_check=false'], ['train.memory_budget_gb=8'])):
        code, _, err = run_cli(base + ['--out', tmp_path / f'ok{i}', '--set', *extra])
        assert code == 0 and (tmp_path / f'ok{i}' / 'train_done.json').exists(), err
