"""`benchmarks/rollout_speed.py --tiny` runs (the smoke run of the CPU rollout benchmark) and writes a record whose report
renders from it; the committed full result, when present, has both arms and the same completions in each."""
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'rollout_speed.py'), '--tiny', '--out', str(tmp_path / 'rs')],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / 'rs.json').read_text())
    g = res['results']['generation']
    assert set(g['median']) == {'dynamic', 'static'} and g['tokens']['dynamic'] > 0
    assert g['identical_share'] == 1.0                 # same seeds, same logits: the cache does not change the samples
    from reasondistill.eval.compare import render_benchmark
    assert (tmp_path / 'rs.md').read_text() == render_benchmark(res, 'rs')


def test_committed_result():
    f = ROOT / 'benchmarks' / 'results' / 'rollout_speed.json'
    if not f.exists(): pytest.skip('no committed rollout_speed result')
    res = json.loads(f.read_text())
    assert not res['config']['tiny'] and res['config']['reps'] >= 3
    o = res['results']['onpolicy']['median']
    assert all(0 < o[k]['share'] < 1 for k in ('dynamic', 'static'))
