"""Wall time of `reasondistill demo` on this machine, run as a user would (a fresh run directory, a fresh process),
and the headline it prints. Writes benchmarks/results/demo.md and demo.json.

    python benchmarks/demo_walltime.py [--run-dir runs/demo-bench] [--keep]

Goal: the demo completes in <= 6 minutes on 2 CPU cores, and the distilled student is >= 20 points
above the student base at the medium level with a 95% paired bootstrap CI that excludes zero.
"""
import json, os, shutil, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from common import bench_parser, parse_args, write_report

def main():
    ap = bench_parser('demo', __doc__, groups=('run',)); ap.add_argument('--run-dir', default='runs/demo-bench')
    ap.add_argument('--keep', action='store_true', help='resume an existing run folder instead of starting afresh')
    a = parse_args(ap)
    rd = Path(a.run_dir)
    if rd.exists() and not a.keep: shutil.rmtree(rd)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', 'from reasondistill.cli import main; main()', 'demo', '--run-dir', str(rd)], capture_output=True, text=True,
                       env={**os.environ, 'RD_PROGRESS': '0'})
    wall = time.perf_counter() - t0
    if p.returncode: print(p.stdout[-3000:], p.stderr[-3000:]); return p.returncode
    man = json.loads((rd / 'manifest.json').read_text())
    head = man['stages']['demo']['headline']
    ok_time, ok_gain = wall <= 360, head['mean'] >= 0.20 and head['lo'] > 0
    results = (rd / 'results.md').read_text()
    lines = [f'# `reasondistill demo` benchmark', '',
             f"Wall time: **{wall:.0f} s** (goal <= 360 s: {'met' if ok_time else 'NOT met'}); load average at start {load:.2f}; "
             f"{man['hardware'].get('cpus')} CPUs, torch threads {man['hardware'].get('torch_threads')}.", '',
             f"Stage times (s): " + ', '.join(f'{k} {v:.0f}' for k, v in man['stages']['demo']['seconds'].items()), '',
             f"Headline: distilled minus student base at the medium level = {100 * head['mean']:+.1f} points, 95% paired bootstrap CI "
             f"[{100 * head['lo']:+.1f}, {100 * head['hi']:+.1f}] over {head['n_problems']} problems "
             f"(goal >= +20 with the CI excluding zero: {'met' if ok_gain else 'NOT met'}).", '',
             '## Results table printed by the demo', '', results.split('\n', 2)[2].strip(), '',
             f"git {man.get('git')}; versions: " + ', '.join(f'{k} {v}' for k, v in man['versions'].items() if v)]
    write_report(a, lines + [''], dict(wall_s=wall, load_at_start=load, stages=man['stages']['demo'], ok_time=ok_time, ok_gain=ok_gain))
    return 0 if ok_time and ok_gain else 1

if __name__ == '__main__': sys.exit(main())
