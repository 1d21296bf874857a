"""Capture what `reasondistill demo` prints on a terminal into benchmarks/results/demo_transcript.txt.

    python tools/demo_transcript.py [RUN_DIR]     # default: a fresh temporary run folder

Runs the demo under `script` (a pseudo-terminal 110 columns wide, so progress bars draw as on a real terminal),
then writes each stage line and each progress bar at its last drawn state (bars are redrawn in place and cleared
when their stage ends; here they are kept, one line each). Library logs and warnings are in RUN_DIR/reasondistill.log.
"""
import re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def frames(text:str) -> list:
    "Terminal output -> lines: stage lines as printed, each progress bar at its last state."
    text = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', text)
    out, bar = [], None
    for seg in re.split(r'\r\n|\r|\n', text):
        s = seg.rstrip()
        m = re.match(r'\s*(.+?):\s+\d+%\|', s)
        if m:
            if bar and not bar.startswith(m.group(1)): out.append(bar)
            bar = s.strip(); continue
        if bar: out.append(bar); bar = None
        if s.strip(): out.append(s)
    if bar: out.append(bar)
    return out

if __name__ == '__main__':
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / 'demo'
    ts = Path(tempfile.mkdtemp()) / 'demo.typescript'
    exe = Path(sys.executable).parent / 'reasondistill'
    t0 = time.time()
    subprocess.run(['script', '-q', '-c', f'stty cols 110 rows 40; {exe} demo --run-dir {run}', str(ts)], check=True,
                   stdout=subprocess.DEVNULL)
    body = ts.read_text(errors='replace').split('\n', 1)[1].rsplit('Script done', 1)[0]
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = [f'$ reasondistill demo --run-dir {run.name}', f'# captured by tools/demo_transcript.py at commit {commit}, '
            f'{time.strftime("%Y-%m-%d")}, {time.time() - t0:.0f} s on this machine; progress bars shown at their last state', '']
    out = ROOT / 'benchmarks' / 'results' / 'demo_transcript.txt'
    out.write_text('\n'.join(head + frames(body)) + '\n')
    print(out.read_text())
