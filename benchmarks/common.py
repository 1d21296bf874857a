"""What every benchmark script shares: one argument parser, the tiny (smoke) mode, and the run set-up.

    from common import bench_parser, parse_args, start
    ap = bench_parser('kd_toy', __doc__, methods=METHODS, seeds=3, train_per_level=40, lr=6e-3)   # defaults of this benchmark
    ap.add_argument('--topk', type=int, default=64)                                           # and its own options
    a = parse_args(ap, tiny=dict(seeds=1, train_per_level=1, steps=2), known=METHODS)
    work, log = start(a)

Groups of arguments (a benchmark takes the groups it uses): `run` (--threads, --out, --tiny), `work` (--work), `seeds`
(--seeds), `methods` (--methods), `data` (--train-per-level, --samples, --heldout-per-level), `train` (--batch-size, --lr,
--max-length), `eval` (--eval-levels, --eval-per-level, --eval-samples, --max-new-tokens). The defaults of a group can be
given per benchmark; `--tiny` replaces the values named in `tiny` (a few problems, a couple of steps, one seed: a smoke run
whose numbers are meaningless, which the tests run); `--strict` makes `compare.write_benchmark` refuse a dirty git tree.

The protocol every method benchmark follows (`reasondistill.eval.compare`): hyper-parameters from a sweep declared once for
all arms and chosen on the dev split (`compare.Sweep`, `compare.DevSelection`, `sweep_from_args` below), test evaluated
once; result files carry per-problem scores (`evaluate_adapter`), so tables get hierarchical intervals over seeds and
problems; `write_benchmark` records provenance and renders the .md from the JSON."""
import argparse, json, os, sys, time
from pathlib import Path

GROUPS = {
    'run': (('--threads', int, 0, 'torch intra-op threads (0: all cores)'),
            ('--out', str, None, 'output prefix: writes OUT.md, OUT.json and figures')),
    'work': (('--work', str, None, 'folder of the runs (resumable: finished runs are reused)'),),
    'seeds': (('--seeds', int, 3, 'training seeds'),),
    'methods': (('--methods', str, None, 'comma-separated methods to run'),),
    'data': (('--train-per-level', int, 40, 'training problems per level (levels 1-8)'),
             ('--samples', int, 2, 'teacher samples per training problem (T = 1)'),
             ('--heldout-per-level', int, 4, 'dev problems per level whose verified teacher traces are held out')),
    'train': (('--batch-size', int, 16, 'sequences per optimizer step'), ('--lr', float, 6e-3, 'learning rate'),
              ('--max-length', int, 256, 'longest training sequence')),
    'eval': (('--eval-levels', str, '2,4,6,8', 'test levels'), ('--eval-per-level', int, 50, 'test problems per level'),
             ('--eval-samples', int, 2, 'samples per test problem (T = 1)'), ('--max-new-tokens', int, 256, 'generation budget')),
}
_QUIET = []
DEFAULT_GROUPS = ('run', 'work', 'seeds', 'methods', 'data', 'train', 'eval')

def bench_parser(name:str, doc:str|None=None, methods=(), groups=DEFAULT_GROUPS, **defaults) -> argparse.ArgumentParser:
    "The argument parser of benchmark `name`: the shared groups with this benchmark's defaults (`--out benchmarks/results/NAME`)."
    ap = argparse.ArgumentParser(prog=f'benchmarks/{name}.py', description=(doc or '').split('\n\n')[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    base = dict(out=f'benchmarks/results/{name}', work=f'runs/{name}', methods=','.join(methods))
    unknown = set(defaults) - {flag[2:].replace('-', '_') for g in groups for flag, *_ in GROUPS[g]}
    if unknown: raise ValueError(f'no shared argument {sorted(unknown)} in groups {groups}: add it with ap.add_argument')
    for g in groups:
        for flag, typ, default, help in GROUPS[g]:
            key = flag[2:].replace('-', '_')
            ap.add_argument(flag, type=typ, default=defaults.get(key, base.get(key, default)), help=help)
    ap.add_argument('--tiny', action='store_true', help='smoke run: a few problems, a couple of steps, one seed (numbers meaningless)')
    ap.add_argument('--strict', action='store_true', help='refuse to write results from a git tree with uncommitted changes '
                    '(committed tables are made this way; without it a dirty tree is flagged in the JSON and the report)')
    ap.add_argument('--verbose', action='store_true', help='also show library logs and warnings (always in WORK/benchmark.log)')
    return ap

def parse_args(ap:argparse.ArgumentParser, argv=None, tiny:dict|None=None, known=None) -> argparse.Namespace:
    "Parse, apply the tiny overrides, and turn `eval_levels` and `methods` into tuples (checking methods against `known`)."
    a = ap.parse_args(argv)
    if a.tiny:
        for k, v in (tiny or {}).items(): setattr(a, k, v)
    if isinstance(getattr(a, 'eval_levels', None), str): a.eval_levels = tuple(int(x) for x in a.eval_levels.split(','))
    if isinstance(getattr(a, 'methods', None), str):
        a.methods = tuple(m for m in a.methods.split(',') if m)
        unknown = set(a.methods) - set(known or a.methods)
        if unknown: ap.error(f'unknown methods {sorted(unknown)}; known: {tuple(known)}')
    return a

def start(a:argparse.Namespace) -> tuple:
    """Set the threads, make the work folder, route library logs and warnings to WORK/benchmark.log (`core.quiet_output`),
    and return `(work folder or None, log function)`; records the start time."""
    from reasondistill.core import set_threads, quiet_output
    set_threads(a.threads or None)
    a.t_start, a.load_start = time.time(), os.getloadavg()
    work = Path(a.work) if getattr(a, 'work', None) else None
    if work is not None: work.mkdir(parents=True, exist_ok=True)
    q = quiet_output(work / 'benchmark.log' if work is not None else None, verbose=getattr(a, 'verbose', False))
    q.__enter__(); _QUIET.append(q)           # for the rest of the process
    log = lambda m: print(f'[{time.time() - a.t_start:6.0f}s] {m}', flush=True)
    return work, log

def tiny_note(a) -> str:
    "The report-title suffix of a smoke run."
    return ' (TINY smoke run: numbers are meaningless)' if getattr(a, 'tiny', False) else ''

def add_sweep(ap:argparse.ArgumentParser, **defaults) -> argparse.ArgumentParser:
    """Add `--sweep-NAME` options (comma-separated values) for the hyper-parameters a benchmark chooses on dev, e.g.
    `add_sweep(ap, lr='3e-4,1e-3,3e-3', steps='100,200')`; `sweep_from_args(a)` turns them into a `compare.Sweep`."""
    for k, v in defaults.items():
        ap.add_argument(f"--sweep-{k.replace('_', '-')}", type=str, default=v,
                        help=f'values of {k} tried by every arm and chosen on dev (comma-separated)')
    ap.set_defaults(_sweep_names=tuple(defaults))
    return ap

def sweep_from_args(a:argparse.Namespace):
    "The declared `compare.Sweep` of the `--sweep-*` options (numbers parsed as int when they look like one, else float)."
    from reasondistill.eval.compare import Sweep
    num = lambda x: int(x) if x.strip().lstrip('-').isdigit() else float(x)
    return Sweep(**{k: [num(x) for x in getattr(a, f'sweep_{k}').split(',') if x.strip()] for k in getattr(a, '_sweep_names', ())})

def add_phases(ap:argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `--phase` and `--only-seeds`, so that a benchmark choosing hyper-parameters on dev (`compare.DevSelection`) can run
    as shards: `--phase dev` (the dev sweep of seed 0), `--phase test --only-seeds N` (test runs of seed N), then a plain
    call that reuses the finished runs and writes the results. `phase_seeds(a)` gives the test seeds of this call."""
    ap.add_argument('--phase', choices=['all', 'dev', 'test'], default='all', help='dev: only the seed-0 sweep runs; test: only --only-seeds')
    ap.add_argument('--only-seeds', default='', help='test seeds this call runs (a shard; the aggregating call writes the results)')
    return ap

def phase_seeds(a:argparse.Namespace) -> tuple:
    "The test seeds of this call: `--only-seeds` of a shard, else range(--seeds)."
    return tuple(int(s) for s in a.only_seeds.split(',') if s.strip()) or tuple(range(a.seeds))

def run_phase(a:argparse.Namespace, sel, arms, log):
    "Run the phase this call asks for with `sel` (a `DevSelection`): the test runs of every arm, or None for a dev call or a test shard."
    if a.phase == 'dev':
        for arm in arms: sel.select(arm)
        log(f'dev phase done: {sel.chosen}'); return None
    runs = sel.run(arms)
    if a.phase == 'test' and a.only_seeds: log('test shard done'); return None
    return runs

def verdict(ci:dict|None, direction:int=1, margin:float=0.0) -> str:
    """A claim's verdict from the interval of its paired difference: 'holds' when it excludes 0 on the claimed side
    (`direction` +1: above 0, -1: below), 'fails' when it excludes 0 on the other side, 'inconclusive' otherwise.
    `margin` > 0 reads a non-inferiority claim ("matches or beats"): 0 moves to -margin on the claimed side."""
    if not ci or ci.get('lo') is None or ci['lo'] != ci['lo']: return 'inconclusive (not measured)'
    lo, hi = sorted((direction * ci['lo'] + margin, direction * ci['hi'] + margin))
    return 'holds' if lo > 0 else 'fails' if hi < 0 else 'inconclusive'

def pair_ci(runs:list, arm:str, baseline:str, metric:str='accuracy') -> dict|None:
    "The paired interval of `arm` − `baseline` (`compare.paired_differences`) over the runs of these two arms only."
    from reasondistill.eval.compare import paired_differences
    return paired_differences([r for r in runs if r['method'] in (arm, baseline)], baseline, metric).get(arm)

def v1_pair(record:str, arm:str, baseline:str, direction:int=1, margin:float=0.0) -> dict|None:
    """`arm` − `baseline` accuracy on a toy world v1 record (`results/RECORD.json`): the seed-paired differences of its runs
    with v1's Student-t interval over seeds, and the verdict `verdict` reads from it; None when the record or either arm
    is not there (the claim was not run on v1). Quoted beside a v2 verdict, never mixed into it."""
    f = Path(__file__).parent / 'results' / f'{record}.json'
    if not f.exists(): return None
    from reasondistill.eval.metrics import mean_ci_over_seeds
    acc = {}
    for r in json.loads(f.read_text()).get('runs') or []:
        if r.get('accuracy') is not None: acc.setdefault(r['method'], {})[r['seed']] = r['accuracy']
    seeds = sorted(set(acc.get(arm, {})) & set(acc.get(baseline, {})))
    if len(seeds) < 2: return None
    m, lo, hi = mean_ci_over_seeds([acc[arm][s] - acc[baseline][s] for s in seeds])
    return dict(record=record, arm=arm, baseline=baseline, mean=m, lo=lo, hi=hi, n_seeds=len(seeds),
                verdict=verdict(dict(lo=lo, hi=hi), direction, margin))

def v1_text(w:dict|None) -> str:
    "A `v1_pair` as 'verdict, mean [lo, hi] points', or 'not run on v1'."
    if not w: return 'not run on v1'
    return f"{w['verdict']}, {100 * w['mean']:+.1f} [{100 * w['lo']:+.1f}, {100 * w['hi']:+.1f}] points ({w['arm']} − {w['baseline']})"

def write_report(a:argparse.Namespace, lines:list, result:dict, t_start:float|None=None) -> dict:
    """Write OUT.json (with provenance) and OUT.md rendered from it (`compare.write_benchmark`; `--strict` refuses a dirty
    tree). Imported here, at the end of a run, so that measurements made before it do not pay for the import."""
    from reasondistill.eval.compare import write_benchmark
    return write_benchmark(a.out, lines, result, t_start, strict=getattr(a, 'strict', False))
