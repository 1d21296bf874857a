"""The README's main job, end to end: `reasondistill demo` from the command line in a fresh run directory, then
the checks the project promises about its result, then a re-run that resumes instead of repeating work."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

def _demo(run_dir):
    return subprocess.run([sys.executable, '-c', 'from reasondistill.cli import main; main()', 'demo', '--run-dir', str(run_dir)],
                          capture_output=True, text=True, env={**os.environ, 'RD_PROGRESS': '0'}, timeout=1200)

def test_demo_end_to_end(tmp_path):
    p = _demo(tmp_path / 'demo')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    man = json.loads((tmp_path / 'demo' / 'manifest.json').read_text())
    head = man['stages']['demo']['headline']
    # the distilled student is at least 20 points above its base at the medium level, with a CI excluding zero
    assert head['mean'] >= 0.20 and head['lo'] > 0, head
    assert 'Distilled minus student base' in p.stdout and '| model |' in p.stdout
    for f in ('accuracy_by_level.png', 'pass_at_k.png', 'trace_lengths.png', 'training_loss.png'):
        assert (tmp_path / 'demo' / 'plots' / f).stat().st_size > 1000
    # a re-run resumes: nothing is sampled or trained again and the results are identical
    again = _demo(tmp_path / 'demo')
    assert again.returncode == 0, again.stderr[-3000:]
    man2 = json.loads((tmp_path / 'demo' / 'manifest.json').read_text())
    assert man2['stages']['demo']['headline'] == head
    assert sum(man2['stages']['demo']['seconds'].values()) < sum(man['stages']['demo']['seconds'].values()) / 3
