"""`benchmarks/gpu_lane.py --tiny`: every shape shrunk, the whole script runs (on CPU here: the measurements that need
CUDA or a missing package are skipped with a recorded reason) and writes its Markdown and JSON reports."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {'sft': {'project', 'hf_peft', 'unsloth'}, 'kd_loss': {'chunked@T=128', 'naive@T=128', 'liger@T=128',
            'chunked@T=256', 'naive@T=256', 'liger@T=256'}, 'rollout': {'hf', 'vllm'}, 'onpolicy': {'project', 'trl_gkd'}}

@pytest.mark.slow   # ~30-50 s: the smoke run of a benchmark script (RD_RUN=slow); kept out of the 20-minute CI
def test_tiny_run_writes_reports(tmp_path):
    out = tmp_path / 'res' / 'gpu_lane'
    p = subprocess.run([sys.executable, 'benchmarks/gpu_lane.py', '--tiny', '--out', str(out), '--work', str(tmp_path / 'work')],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, 'RD_PROGRESS': '0'})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    d = json.loads(out.with_suffix('.json').read_text())
    m = d['meta']
    assert m['tiny'] is True and m['device']['device'] and m['command'].startswith('python benchmarks/gpu_lane.py --tiny')
    assert len(m['commit']['commit']) == 40 and isinstance(m['commit']['dirty'], bool)
    assert m['versions']['torch'] and m['versions']['transformers'] and m['versions']['trl']
    assert {k: set(v) for k, v in d['sections'].items()} == SECTIONS
    for sec, rows in d['sections'].items():
        for name, r in rows.items():
            assert r['status'] in ('ok', 'skipped'), f'{sec}/{name}: {r}'
            if r['status'] == 'skipped': assert r['reason'], f'{sec}/{name} skipped without a reason'
    needs_gpu = {('sft', 'unsloth'), ('kd_loss', 'liger@T=128'), ('kd_loss', 'liger@T=256'), ('rollout', 'vllm')}
    for sec, rows in d['sections'].items():                    # everything that needs neither CUDA nor an optional package ran
        for name, r in rows.items():
            if (sec, name) not in needs_gpu: assert r['status'] == 'ok', (sec, name, r)
    s = d['sections']
    assert s['sft']['project']['tokens_per_s'] > 0 and s['sft']['hf_peft']['tokens_per_s'] > 0
    assert s['kd_loss']['chunked@T=256']['loss'] == pytest.approx(s['kd_loss']['naive@T=256']['loss'], rel=1e-4)
    assert s['rollout']['hf']['generated_tokens'] > 0 and s['onpolicy']['project']['step_s'] > 0 and s['onpolicy']['trl_gkd']['step_s'] > 0
    assert 0 < s['onpolicy']['project']['gen_share'] < 1
    md = out.with_suffix('.md').read_text()
    assert 'TINY smoke run' in md and m['device']['device'] in md and m['commit']['commit'] in md
    for title in ('## QLoRA SFT', '## KD loss', '## Rollouts', '## One on-policy distillation step', '## Not measured'): assert title in md
