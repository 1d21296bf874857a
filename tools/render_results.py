"""Re-render the results sections of notebooks from the committed benchmark records.

    python tools/render_results.py nbs/methods/04_gkd.ipynb ...   # (default: every notebook that shows a benchmark)
    python tools/render_results.py --all nbs/methods/00_methods.ipynb   # every cell (a page generated from results)

Runs, in one fresh IPython shell per notebook, only the cells that import or call `show_benchmark` /
`benchmark_results` (and cells marked `#| results`), after the notebook's import-only cells, and saves their outputs (tables, figures) into the notebook,
so the docs show the latest committed results without re-running the notebook's training examples.
Run it after a benchmark's results change; then `nbdev-clean`.
"""
import json, os, sys
from pathlib import Path
from execnb.shell import CaptureShell
from fastcore.nbio import read_nb, write_nb

ROOT = Path(__file__).resolve().parent.parent
KEYS = ('show_benchmark', 'benchmark_results', '#| results')

def wanted(cell) -> bool: return cell.cell_type == 'code' and any(k in cell.source for k in KEYS)

def imports_only(cell) -> bool:
    lines = [l for l in cell.source.splitlines() if l.strip() and not l.lstrip().startswith('#')]
    return cell.cell_type == 'code' and bool(lines) and all(l.startswith(('import ', 'from ')) for l in lines) and 'nbdev_export' not in cell.source

def render(path:Path, everything:bool=False) -> int:
    nb = read_nb(path)
    cells = [c for c in nb.cells if c.cell_type == 'code' and 'nbdev_export' not in c.source] if everything else [c for c in nb.cells if wanted(c)]
    if not cells: return 0
    os.chdir(path.parent)                               # cells read paths relative to their notebook
    sh = CaptureShell(path.parent)
    sh.run('import os; os.environ["IN_TEST"] = "1"')       # quiet progress bars
    for c in nb.cells:
        if not everything and imports_only(c) and not wanted(c): sh.run(c.source)
    for c in cells:
        sh.cell(c)
        errs = [o for o in c.get('outputs', []) if o.get('output_type') == 'error']
        if errs: raise RuntimeError(f"{path}: cell failed: {errs[0].get('ename')}: {errs[0].get('evalue')}")
    write_nb(nb, path)
    return len(cells)

if __name__ == '__main__':
    everything = '--all' in sys.argv
    paths = [Path(p) for p in sys.argv[1:] if p != '--all'] or sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if 'show_benchmark(' in p.read_text())
    for p in paths: print(p, render(p.resolve(), everything))
