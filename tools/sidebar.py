"""Write nbs/sidebar.yml: the docs sidebar, one section per notebook folder, with readable section titles.

    python tools/sidebar.py          # write nbs/sidebar.yml
    python tools/sidebar.py --check  # exit 1 if nbs/sidebar.yml differs (a notebook was added, moved or removed)

nbdev's own sidebar names sections after folders ('core', 'eval'); `custom_sidebar = true` in pyproject.toml makes
the docs use this file instead.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
SECTIONS = (('core', 'Core'), ('data', 'Data and traces'), ('methods', 'Methods'), ('eval', 'Evaluation and analysis'),
            ('tutorials', 'Tutorials'))

def render() -> str:
    lines = ['website:', '  sidebar:', '    contents:', '    - index.ipynb']
    known = {d for d, _ in SECTIONS}
    stray = [p.name for p in NBS.iterdir() if p.is_dir() and not p.name.startswith(('.', '_')) and p.name not in known
             and any(p.glob('*.ipynb'))]
    if stray: raise SystemExit(f'notebook folders without a sidebar section: {stray} (add them to SECTIONS in tools/sidebar.py)')
    for d, title in SECTIONS:
        nbs = sorted(p.name for p in (NBS / d).glob('*.ipynb'))
        if not nbs: continue
        lines += [f'    - section: {title}', '      contents:'] + [f'      - {d}/{n}' for n in nbs]
    return '\n'.join(lines) + '\n'

if __name__ == '__main__':
    text, path = render(), NBS / 'sidebar.yml'
    if '--check' in sys.argv:
        if not path.exists() or path.read_text() != text: sys.exit('nbs/sidebar.yml is out of date: run python tools/sidebar.py')
    else: path.write_text(text)
