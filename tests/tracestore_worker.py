"""A fake generation job for tests/test_tracestore.py: fills a TraceStore with deterministic traces for N problems x K
samples in small batches, as `reasondistill`'s generation stage does, so that the test can SIGKILL it anywhere.

    python tests/tracestore_worker.py STORE --problems 10 --samples 4 --batch 2 --sleep 0.01 [--tear-after M]

With --tear-after M the job stores M traces, then writes the first half of the next trace's line straight into the
last shard (what a kill in the middle of `write` leaves behind) and SIGKILLs itself.
Each batch is sent together with the previous one again, so the store's own de-duplication is exercised too.
Prints one JSON line when the store is open and one when the job is done."""
import argparse, hashlib, json, os, signal, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reasondistill.records import Problem, Trace
from reasondistill.tracestore import TraceStore

META = {'model': 'fake-teacher', 'sampling': {'temperature': 0.7, 'top_p': 0.95, 'max_new_tokens': 64}}

def make_problems(n:int) -> list[Problem]:
    return [Problem(f'p{i:03d}', f'What is {i} + {i * 3}?', str(4 * i), {'source': 'fake'}) for i in range(n)]

def fake_trace(p:Problem, j:int) -> Trace:
    "A trace that depends only on (problem, sample_idx), like a seeded sampler."
    h = hashlib.sha256(f'{p.id}#{j}'.encode()).hexdigest()
    ok = int(h[0], 16) % 3 != 0
    ans = p.answer if ok else str(int(p.answer) + 1)
    thinking = f'{p.question} Let me add: step {h[:12]}.\nNewlines, "quotes", ünïcödé and a \u2028 separator.'
    return Trace(p.id, j, META['model'], f'Question: {p.question}\nAnswer:', f'<think>{thinking}</think>The answer is {ans}.',
                 thinking=thinking, answer=ans, verdict='correct' if ok else 'wrong', n_prompt_tokens=12,
                 n_completion_tokens=20 + int(h[1:3], 16), finish_reason='stop' if ok else 'length',
                 sampling=META['sampling'], logprobs=[-int(c, 16) / 16 for c in h[:int(h[3], 16)]], meta={'h': h[:8]})

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('store'); ap.add_argument('--problems', type=int, default=10); ap.add_argument('--samples', type=int, default=4)
    ap.add_argument('--batch', type=int, default=2); ap.add_argument('--sleep', type=float, default=0.01)
    ap.add_argument('--shard-max', type=int, default=7); ap.add_argument('--tear-after', type=int, default=-1)
    a = ap.parse_args()
    with TraceStore(a.store, shard_max_records=a.shard_max, meta=META) as st:
        print(json.dumps({'event': 'open', 'n': len(st), 'recovered_torn_lines': st.recovered_torn_lines}), flush=True)
        todo, prev = st.missing(make_problems(a.problems), a.samples), []
        for b in range(0, len(todo), a.batch):
            batch = [fake_trace(p, j) for p, j in todo[b:b + a.batch]]
            k = a.tear_after - len(st)       # traces of this batch to store before the tear
            if 0 <= k < len(batch):
                st.append(prev + batch[:k])
                line = (json.dumps(batch[k].to_dict(), ensure_ascii=False) + '\n').encode()
                shards = sorted(Path(a.store).glob('traces-*.jsonl'))
                shard = shards[-1] if shards else Path(a.store)/'traces-00000.jsonl'
                with open(shard, 'ab') as f:
                    f.write(line[:len(line) // 2]); f.flush(); os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            st.append(prev + batch)      # re-sends the previous batch, as a retrying job might: append must drop it
            prev = batch
            if a.sleep: time.sleep(a.sleep)
        print(json.dumps({'event': 'done', 'n': len(st)}), flush=True)

if __name__ == '__main__': main()
