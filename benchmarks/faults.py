"""The fault table: every malformed-input case of tests/test_cli_errors.py, run through the installed command's
handler, with its outcome class and the one line it prints; writes benchmarks/results/faults.md.

    python benchmarks/faults.py

Outcome classes: `error` (one line naming what is wrong, exit status 2, no traceback, nothing written), `traceback`
(a Python traceback: a defect), `accepted` (exit 0: silent acceptance of a bad input, a defect).
"""
import contextlib, io, subprocess, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tests'))
from test_cli_errors import CASES, make_bad_inputs  # noqa: E402  the cases live with their test
from reasondistill.cli import console               # noqa: E402

def outcome(args) -> tuple:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: console(list(args)); code = 0
        except SystemExit as e: code = e.code
        except BaseException as e: return 'traceback', f'{type(e).__name__}: {e}'
    lines = [l for l in err.getvalue().splitlines() if l.strip() and not l.startswith(('usage:', ' ', '(run with'))]
    if code == 0: return 'accepted', ''
    if 'Traceback' in err.getvalue(): return 'traceback', lines[-1] if lines else ''
    return ('error' if code == 2 else f'exit {code}'), lines[-1] if lines else ''

if __name__ == '__main__':
    t0, d = time.time(), Path(tempfile.mkdtemp())
    make_bad_inputs(d)
    rows = [(cid, *outcome([a.format(d=d) for a in args])) for cid, args, _ in CASES]
    counts = {k: sum(r[1] == k for r in rows) for k in sorted({r[1] for r in rows})}
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    md = ['# Fault table: malformed command-line inputs', '',
          f'Command: `python benchmarks/faults.py` at commit {commit}, {time.strftime("%Y-%m-%d")}; {len(rows)} cases '
          f'({", ".join(f"{v} {k}" for k, v in counts.items())}), {time.time() - t0:.0f} s. The same cases are asserted by '
          '`tests/test_cli_errors.py` (exit status 2, one line, no traceback, nothing written). Folder paths are shown as `D/`.', '',
          '| case | outcome | message |', '|---|---|---|']
    md += [f"| {cid} | {o} | {m.replace(str(d), 'D').replace('|', '/')} |" for cid, o, m in rows]
    out = ROOT / 'benchmarks' / 'results' / 'faults.md'
    out.write_text('\n'.join(md) + '\n'); print('\n'.join(md))
