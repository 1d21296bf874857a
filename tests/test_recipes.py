"The data-recipe family (rsd, gen-ssd, dasd, deepdistill): registry entries, and the benchmark's smoke run."
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def test_methods_registered():
    from reasondistill.registry import get_method, entry_point, make_config, method_help
    for name, mod, fn in (('rsd', 'rsd', 'train_rsd'), ('gen-ssd', 'gen_ssd', 'train_gen_ssd'), ('dasd', 'dasd', 'train_dasd'),
                          ('deepdistill', 'deepdistill', 'train_deepdistill')):
        m = get_method(name)
        assert m.status == 'implemented' and m.data == 'problems' and m.teacher == 'model'
        assert entry_point(name).__module__ == f'reasondistill.methods.{mod}' and entry_point(name).__name__ == fn
        assert hasattr(make_config(name), 'train') and 'train.lr' in method_help(name)

# ---- the benchmark --------------------------------------------------------------------------------------------------

def _run(args, timeout=900):
    env = {**os.environ, 'RD_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

@pytest.mark.slow   # ~30-50 s: the smoke run of a benchmark script (RD_RUN=slow); kept out of the 20-minute CI
def test_recipes_toy_benchmark_tiny(tmp_path):
    p = _run(['benchmarks/recipes_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'w'), '--out', str(tmp_path / 'r')])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / 'r.json').read_text())
    t = r['data']['table']
    assert {'plain T=1.0 (sft)', 'rsd', 'rsd-base', 'gen-ssd', 'dasd stage 2 (T=1.0)', 'deepdistill (stage I)'} <= set(t)
    assert 0 <= t['rsd']['fallback_rate'] <= 1 and 'teacher_tokens' in t['gen-ssd']
    ran = {x['method'] for x in r['runs']} | {m for _, m in r['skipped']}
    assert ran == {'sft', 'rsd', 'rsd-base', 'gen-ssd', 'dasd', 'deepdistill'}
    assert (tmp_path / 'r.md').exists() and (tmp_path / 'r_data.png').exists()
    p = _run(['benchmarks/recipes_toy.py', '--tiny', '--threads', '1', '--work', str(tmp_path / 'w'), '--out', str(tmp_path / 'r2')])
    assert p.returncode == 0 and ' acc ' not in p.stdout          # resumed: nothing trained or evaluated again
