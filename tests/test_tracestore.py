"""TraceStore's exactly-once guarantee under real SIGKILLs, and its recovery, locking and provenance checks.

The kill test runs `tracestore_worker.py` (a fake generation job) in a subprocess, kills it with SIGKILL at several
points, including in the middle of a line, re-runs it to completion and compares the store, byte for byte, with
the store of an uninterrupted run."""
import json, os, random, signal, subprocess, sys, time, warnings
from pathlib import Path
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from reasondistill.data import DataError, DataWarning
from reasondistill.tracestore import MetaMismatchError, StoreLockedError, TraceStore
import tracestore_worker as worker

N, K, SHARD_MAX = 10, 4, 7        # 40 traces in 6 shards
ALL_KEYS = [(f'p{i:03d}', j) for i in range(N) for j in range(K)]

def start(store, *args) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE/'tracestore_worker.py'), str(store), '--problems', str(N), '--samples', str(K),
           '--shard-max', str(SHARD_MAX), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def run_to_end(store, *args) -> list[dict]:
    proc = start(store, *args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [json.loads(l) for l in out.splitlines()]

def kill(proc) -> int:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return proc.returncode

def n_lines(store) -> int:
    "Complete lines on disk right now (the job may be writing)."
    return sum(p.read_bytes().count(b'\n') for p in Path(store).glob('traces-*.jsonl'))

def shard_bytes(store) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(store).glob('traces-*.jsonl'))}

def expected_records() -> list[dict]:
    return [worker.fake_trace(p, j).to_dict() for p in worker.make_problems(N) for j in range(K)]

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The store of an uninterrupted run."
    store = tmp_path_factory.mktemp('reference')/'traces'
    run_to_end(store, '--sleep', 0)
    return store

def test_reference_run(reference):
    with TraceStore(reference, readonly=True) as r:
        assert r.to_records() == expected_records()
        assert r.stats()['n_shards'] == -(-N * K // SHARD_MAX)
        assert r.recovered_torn_lines == 0 and r.duplicates_on_disk == 0

def test_kill_and_rerun_is_exactly_once(tmp_path, reference):
    rng, store, kill_points = random.Random(int(os.environ.get('RD_KILL_SEED', 7))), tmp_path/'traces', []
    # 1. SIGKILL once the job has stored a random number of lines, after a random extra delay, so that the kill
    #    lands in a sleep, a write, an fsync or a shard change
    for _ in range(4):
        target = n_lines(store) + rng.randint(1, 4)
        proc = start(store, '--batch', rng.randint(1, 4), '--sleep', 0.01)
        t0 = time.monotonic()
        while n_lines(store) < target and proc.poll() is None and time.monotonic() - t0 < 30: time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.01))
        assert kill(proc) == -signal.SIGKILL, 'the job ended before it was killed'
        kill_points.append(n_lines(store))
    # 2. a kill in the middle of a line: the job writes half of the next line, then SIGKILLs itself
    for step in (rng.randint(1, 3), SHARD_MAX):   # the second tear lands in another shard
        with TraceStore(store, readonly=True) as r: tear = min(len(r) + step, N * K - 1)
        proc = start(store, '--batch', 3, '--sleep', 0, '--tear-after', tear)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        last = sorted(Path(store).glob('traces-*.jsonl'))[-1].read_bytes()
        assert not last.endswith(b'\n')                       # a torn line really is on disk
        with TraceStore(store, readonly=True) as r:           # readers ignore it and leave it alone
            assert (len(r), r.recovered_torn_lines) == (tear, 1)
        assert sorted(Path(store).glob('traces-*.jsonl'))[-1].read_bytes() == last
        kill_points.append(f'{tear}+half a line')
    # 3. SIGKILL at random moments after the start: during start-up, the scan, the torn-line recovery or the writes
    for delay in (rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3)):
        proc = start(store, '--batch', 1, '--sleep', 0.002)
        time.sleep(delay)
        if kill(proc) == -signal.SIGKILL: kill_points.append(f'{delay:.2f}s')
    # 4. re-run to completion: exactly the uninterrupted run's store
    events = run_to_end(store, '--sleep', 0)
    assert len(set(map(str, kill_points))) >= 6, kill_points
    assert all(0 < p < N * K for p in kill_points[:4]), kill_points
    assert shard_bytes(store) == shard_bytes(reference)      # byte for byte: no loss, no duplicate, same order
    with TraceStore(store, readonly=True) as s:
        assert len(s) == N * K and s.duplicates_on_disk == 0 and s.recovered_torn_lines == 0
        assert s.keys() == ALL_KEYS and s.to_records() == expected_records()
    assert events[-1] == {'event': 'done', 'n': N * K}
    print('kill points (lines stored):', kill_points)

def test_rerun_reports_torn_line(tmp_path):
    store = tmp_path/'traces'
    proc = start(store, '--batch', 2, '--sleep', 0, '--tear-after', 5)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    events = run_to_end(store, '--sleep', 0)
    assert events[0] == {'event': 'open', 'n': 5, 'recovered_torn_lines': 1}

def test_lock_across_processes(tmp_path):
    store = tmp_path/'traces'
    proc = start(store, '--batch', 1, '--sleep', 0.5)           # a slow job that holds the lock
    assert json.loads(proc.stdout.readline())['event'] == 'open'
    with pytest.raises(StoreLockedError, match=f'pid {proc.pid}'): TraceStore(store, meta=worker.META)
    with TraceStore(store, readonly=True) as r: assert r.keys() == ALL_KEYS[:len(r)]   # readers need no lock
    assert kill(proc) == -signal.SIGKILL
    with TraceStore(store, meta=worker.META) as w:               # the kernel released the lock of the killed job
        with pytest.raises(StoreLockedError): TraceStore(store)  # ... and this store now holds it
    TraceStore(store).close()

# ---------------------------------------------------------------- in-process tests of the recovery rules

def traces(n_problems=5, k=3):
    return [worker.fake_trace(p, j) for p in worker.make_problems(n_problems) for j in range(k)]

def filled(path, n=15, shard_max=SHARD_MAX):
    with TraceStore(path, shard_max_records=shard_max, meta=worker.META) as s:
        assert s.append(traces()[:n]) == n
    return sorted(Path(path).glob('traces-*.jsonl'))

def line_of(t) -> bytes: return (json.dumps(t.to_dict(), ensure_ascii=False) + '\n').encode()

@pytest.mark.parametrize('tail', ['half', 'no_newline', 'garbage', 'zeros'])
def test_torn_final_line_is_truncated_and_counted(tmp_path, tail):
    shards = filled(tmp_path/'s', n=9)
    last, size = shards[-1], shards[-1].stat().st_size
    whole = line_of(traces()[9])
    junk = {'half': whole[:len(whole) // 2], 'no_newline': whole[:-1], 'garbage': b'{"problem_id": \n',
            'zeros': b'\0' * 64}[tail]
    with open(last, 'ab') as f: f.write(junk)
    with TraceStore(tmp_path/'s', readonly=True) as r:
        assert (len(r), r.recovered_torn_lines) == (9, 1) and last.stat().st_size == size + len(junk)
    with TraceStore(tmp_path/'s', shard_max_records=SHARD_MAX, meta=worker.META) as w:
        assert (len(w), w.recovered_torn_lines) == (9, 1) and last.stat().st_size == size
        assert w.append(traces()) == 6
    with TraceStore(tmp_path/'s', readonly=True) as r:
        assert r.recovered_torn_lines == 0 and r.to_records() == [t.to_dict() for t in traces()]

def test_invalid_line_elsewhere_is_corruption(tmp_path):
    shards = filled(tmp_path/'s')                               # shards of 7, 7 and 1 lines
    lines = shards[1].read_bytes().split(b'\n')
    shards[1].write_bytes(b'\n'.join(lines[:2] + [lines[2][:40]] + lines[3:]))
    with pytest.raises(DataError, match=r'traces-00001\.jsonl:3: corrupt trace line'): TraceStore(tmp_path/'s', readonly=True)
    with pytest.raises(DataError, match=r'traces-00001\.jsonl:3'): TraceStore(tmp_path/'s')
    shards[1].write_bytes(b'\n'.join(lines))
    shards[0].write_bytes(shards[0].read_bytes()[:-1])           # the end of a shard that is not the last one
    with pytest.raises(DataError, match=r'traces-00000\.jsonl:7: corrupt trace line \(no trailing newline\)'):
        TraceStore(tmp_path/'s')
    shards[0].write_bytes(shards[0].read_bytes() + b'\n')
    assert len(TraceStore(tmp_path/'s', readonly=True)) == 15
    text = shards[2].read_text()                                 # a line that is valid JSON but not a trace
    shards[2].write_text(json.dumps({'problem_id': 'x', 'sample_idx': 0, 'unexpected': 1}) + '\n' + text)
    with pytest.raises(DataError, match=r"traces-00002\.jsonl:1: corrupt trace line \(unknown Trace fields \['unexpected'\]"):
        TraceStore(tmp_path/'s', readonly=True)
    shards[2].write_text(text)
    shards[1].unlink()
    with pytest.raises(DataError, match='traces-00001.jsonl: shard is missing'): TraceStore(tmp_path/'s', readonly=True)

def test_duplicates_on_disk_are_kept_once_and_reported(tmp_path):
    shards = filled(tmp_path/'s')
    first = traces()[3]
    changed = line_of(first).replace(b'The answer is', b'Changed: the answer is')
    with open(shards[-1], 'ab') as f: f.write(changed)
    with pytest.warns(DataWarning, match=r'1 duplicate trace lines on disk.*traces-00002\.jsonl:2'):
        s = TraceStore(tmp_path/'s', meta=worker.META)
    assert (s.duplicates_on_disk, len(s), s.stats()['duplicates_on_disk']) == (1, 15, 1)
    assert s.get(first.problem_id)[first.sample_idx] == first    # the first copy wins
    assert sum(t.key == first.key for t in s) == 1
    s.close()

def test_append_dedups_and_rolls_shards(tmp_path):
    ts = traces()
    with TraceStore(tmp_path/'s', shard_max_records=4, meta=worker.META) as s:
        assert s.append([ts[0], ts[0], ts[1], ts[0].to_dict()]) == 2  # repeats within a batch, dicts accepted
        assert s.append(ts[:6]) == 4 and s.append(ts[:6]) == 0
        assert s.append([]) == 0
        with pytest.raises(ValueError, match='sample_idx'): s.append([worker.Trace('p', -1, 'm', 'p', 'c')])
    assert [p.read_bytes().count(b'\n') for p in sorted((tmp_path/'s').glob('traces-*.jsonl'))] == [4, 2]
    with TraceStore(tmp_path/'s', shard_max_records=4) as s:          # reopen: appends continue in the last shard
        assert s.append(ts[6:9]) == 3
    assert [p.read_bytes().count(b'\n') for p in sorted((tmp_path/'s').glob('traces-*.jsonl'))] == [4, 4, 1]
    with TraceStore(tmp_path/'s', readonly=True) as r: assert r.keys() == [t.key for t in ts[:9]]

def test_meta_mismatch(tmp_path):
    filled(tmp_path/'s', n=3)
    other = {**worker.META, 'sampling': {**worker.META['sampling'], 'temperature': 1.0}}
    with pytest.raises(MetaMismatchError, match=r"sampling: stored .*'temperature': 0.7.*given .*'temperature': 1.0"):
        TraceStore(tmp_path/'s', meta=other)
    with pytest.raises(MetaMismatchError, match="model: stored 'fake-teacher', given 'other'"):
        TraceStore(tmp_path/'s', meta={**worker.META, 'model': 'other'}, readonly=True)
    TraceStore(tmp_path/'s', meta={**worker.META, '_host': 'node7'}).close()   # '_' keys are notes
    TraceStore(tmp_path/'s').close()                                          # no meta: no check
    with TraceStore(tmp_path/'s', meta=other, allow_meta_change=True) as s:
        assert s.meta['sampling']['temperature'] == 1.0 and s.meta['_previous_meta'] == [worker.META]
    with pytest.raises(MetaMismatchError): TraceStore(tmp_path/'s', meta=worker.META)
    (tmp_path/'s'/'meta.json').unlink()
    with pytest.raises(MetaMismatchError, match='holds 3 traces but no meta.json'): TraceStore(tmp_path/'s', meta=worker.META)

def test_missing(tmp_path):
    ps = worker.make_problems(3)
    with TraceStore(tmp_path/'s', meta=worker.META) as s:
        assert [(p.id, j) for p, j in s.missing(ps, 2)] == [(p.id, j) for p in ps for j in range(2)]
        s.append([worker.fake_trace(ps[0], 1), worker.fake_trace(ps[2], 0), worker.fake_trace(ps[2], 1)])
        todo = s.missing(ps, 2)
        assert [(p.id, j) for p, j in todo] == [('p000', 0), ('p001', 0), ('p001', 1)]
        assert todo[0][0] is ps[0]
        assert [(p.id, j) for p, j in s.missing(ps[2:], 3)] == [('p002', 2)]
        assert s.missing(ps, 0) == []
        with pytest.raises(ValueError, match="duplicate problem id 'p000'"): s.missing(ps + ps[:1], 2)

def test_an_invalid_complete_final_line_is_quarantined_not_deleted(tmp_path):
    import json, warnings
    from reasondistill.records import Trace
    from reasondistill.tracestore import TraceStore
    from reasondistill.data import DataWarning
    with TraceStore(tmp_path / 's') as st: st.append([Trace('p', i, 'm', 'Q', f'A{i}') for i in range(2)])
    shard = tmp_path / 's' / 'traces-00000.jsonl'
    bad = json.dumps(dict(Trace('p', 2, 'm', 'Q', 'A2').to_dict(), verdict='maybe')) + '\n'
    with open(shard, 'a') as f: f.write(bad)                       # complete, but its verdict is not a known one
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        with TraceStore(tmp_path / 's') as st: assert len(st) == 2 and st.quarantined == 1
    assert any(issubclass(x.category, DataWarning) and 'quarantine' in str(x.message) for x in w)
    q = [json.loads(l) for l in (tmp_path / 's' / 'quarantine.jsonl').read_text().splitlines()]
    assert len(q) == 1 and q[0]['raw'] == bad.rstrip('\n') and q[0]['line'] == 3 and 'verdict' in q[0]['reason']
    assert bad not in shard.read_text()
    with TraceStore(tmp_path / 's') as st: assert len(st) == 2 and st.quarantined == 0          # nothing left to quarantine
