"""Real generation under SIGKILL: `reasondistill generate` and `reasondistill eval` are killed at random points
(between batches, in the middle of an append, while loading), re-run, and must end with exactly the traces of an
uninterrupted run — every (problem, sample) once, token for token the same — although the killed runs used other
batch sizes. Set RD_KILL_SEED to draw other kill points."""
import json, os, random, signal, subprocess, sys, time
from pathlib import Path
import pytest
from reasondistill.tracestore import TraceStore

SPEC, N = 'toy:train:6:2,4,6', 2           # 18 problems x 2 samples = 36 traces
TOTAL = 18 * N
BASE = ['--problems', SPEC, '--n', str(N), '--max-new-tokens', '120', '--seed', '5']

def cli(*args) -> list:
    return [sys.executable, '-c', 'from reasondistill.cli import console; console()', *map(str, args)]

def run_to_end(args) -> str:
    p = subprocess.run(cli(*args), capture_output=True, text=True, timeout=300, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout

def n_lines(store) -> int:
    return sum(p.read_bytes().count(b'\n') for p in Path(store).glob('traces-*.jsonl'))

def records(store) -> dict:
    "Every stored trace by (problem, sample), with the fields a sample determines."
    with TraceStore(store, readonly=True) as st:
        recs = st.to_records()
    keys = [(r['problem_id'], r['sample_idx']) for r in recs]
    assert len(keys) == len(set(keys)), 'a trace is stored twice'
    return {k: r for k, r in zip(keys, recs)}

def kill_at_random(args, store, rng, kills:int) -> list:
    "SIGKILL `kills` runs: each once a random number of new lines is on disk (often mid-append), or while loading."
    log = []
    for i in range(kills):
        before = n_lines(store)
        if before >= TOTAL - 2: break
        batch = rng.choice([2, 3, 5])
        proc = subprocess.Popen(cli(*args, '--batch-size', batch), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 5 == 4:                                   # now and then during start-up, before any trace
            time.sleep(rng.uniform(0.5, 2.0)); target = None
        else:
            target, t0 = before + rng.randint(1, 3), time.monotonic()
            while n_lines(store) < target and proc.poll() is None and time.monotonic() - t0 < 120: time.sleep(0.001)
            time.sleep(rng.choice([0, 0, rng.uniform(0, 0.05)]))
        proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, 'the run finished before it was killed'
        got = records(store) if (Path(store) / 'meta.json').exists() else {}
        log.append(dict(batch=batch, target=target, lines=n_lines(store), stored=len(got)))
    return log

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp('straight')
    run_to_end(['generate', *BASE, '--out', d / 'gen', '--batch-size', 8])
    run_to_end(['eval', *BASE, '--out', d / 'eval', '--batch-size', 8])
    return d

def test_generate_killed_ten_times_equals_uninterrupted(tmp_path, reference):
    rng = random.Random(int(os.environ.get('RD_KILL_SEED', 11)))
    args = ['generate', *BASE, '--out', tmp_path / 'gen']
    log = kill_at_random(args, tmp_path / 'gen', rng, kills=10)
    assert len(log) >= 10, log
    assert 0 < log[-1]['stored'] < TOTAL, log             # the kills left a partial store
    run_to_end([*args, '--batch-size', 4])
    got, ref = records(tmp_path / 'gen'), records(reference / 'gen')
    assert len(ref) == TOTAL and got.keys() == ref.keys()
    diff = [k for k in ref if got[k] != ref[k]]
    assert not diff, f'{len(diff)} of {TOTAL} traces differ from the uninterrupted run, e.g. {diff[:3]}; kills: {log}'

def test_eval_killed_equals_uninterrupted(tmp_path, reference):
    rng = random.Random(int(os.environ.get('RD_KILL_SEED', 11)) + 1)
    args = ['eval', *BASE, '--out', tmp_path / 'eval']
    log = kill_at_random(args, tmp_path / 'eval' / 'samples', rng, kills=3)
    assert log and log[-1]['stored'] < TOTAL, log
    run_to_end([*args, '--batch-size', 3])
    assert records(tmp_path / 'eval' / 'samples') == records(reference / 'eval' / 'samples')
    drop = lambda s: {k: v for k, v in s.items() if k != 'generation'}    # throughput differs, the scores may not
    got = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
    ref = json.loads((reference / 'eval' / 'summary.json').read_text())
    assert drop(got) == drop(ref)
