"""Render README.md from nbs/index.ipynb without Quarto (which cannot be installed offline).

    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 if README.md differs from what index.ipynb renders to

Markdown cells are copied, code cells become ```python blocks followed by their saved text outputs; cells
marked `#| hide`, `#| echo: false` or `#| include: false` are left out (their outputs too for `hide`).
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n'

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def _opts(src):
    opts, lines = {}, src.split('\n')
    while lines and lines[0].startswith('#|'):
        k, _, v = lines.pop(0)[2:].strip().partition(':'); opts[k.strip()] = v.strip() or True
    return opts, '\n'.join(lines).strip('\n')

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    out = []
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'markdown': out.append(src.strip('\n')); continue
        if c['cell_type'] != 'code': continue
        o, code = _opts(src)
        if 'hide' in o or o.get('include') == 'false': continue
        if o.get('echo') != 'false' and code: out.append(f'```python\n{code}\n```')
        for r in c.get('outputs', []):
            d = r.get('data', {})
            if 'text/markdown' in d: out.append(_src({'source': d['text/markdown']}).strip('\n'))
            elif 'text/plain' in d: out.append('```\n' + _src({'source': d['text/plain']}).rstrip('\n') + '\n```')
            elif r.get('output_type') == 'stream': out.append('```\n' + _src({'source': r['text']}).rstrip('\n') + '\n```')
    return HEADER + '\n\n'.join(out) + '\n'

def setup_command(which:str) -> str:
    "The README's set-up command for 'demo' or 'tests' (the ```sh block after **Run the demo** / **Run the tests**)."
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    marker = {'demo': '**Run the demo**', 'tests': '**Run the tests**'}[which]
    after = text.split(marker, 1)[1]
    block = after.split('```sh\n', 1)[1].split('```', 1)[0].strip()
    if '\n' in block: raise ValueError(f'the {which} set-up command must be one line')
    return block

def main(argv):
    if argv[:1] == ['--command']: print(setup_command(argv[1])); return 0
    text, readme = render(), ROOT / 'README.md'
    if '--check' in argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            print('README.md does not match nbs/index.ipynb: run `python tools/readme.py` and commit'); return 1
        print('README.md matches nbs/index.ipynb'); return 0
    readme.write_text(text, encoding='utf-8'); print('wrote README.md'); return 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
