"""Edit notebooks as text: convert `nbs/*.ipynb` to a percent-format script and back.

    python tools/nbtext.py out nbs/10_sft.ipynb /tmp/10_sft.py   # notebook -> text
    python tools/nbtext.py in  /tmp/10_sft.py nbs/10_sft.ipynb   # text -> notebook (outputs dropped)

The notebook stays the source of truth; the text form is a scratch copy for editors and reviews.
Cells are separated by `# %%` (code) and `# %% [markdown]` (markdown; each line prefixed by `# `).
"""
import hashlib, json, sys
from pathlib import Path

def nb_to_text(nb_path, out_path):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'markdown':
            parts.append('# %% [markdown]\n' + '\n'.join(('# ' + l) if l else '#' for l in src.split('\n')))
        elif c['cell_type'] == 'raw': parts.append('# %% [raw]\n' + '\n'.join('# ' + l for l in src.split('\n')))
        else: parts.append('# %%\n' + src)
    Path(out_path).write_text('\n\n'.join(parts) + '\n')

def _cell_id(kind, src, seen):
    "A stable id from the cell's content, so regenerating a notebook does not churn ids."
    h = hashlib.sha1(f'{kind}\0{src}'.encode()).hexdigest()
    i = 0
    while h[i:i + 8] in seen: i += 1
    seen.add(h[i:i + 8]); return h[i:i + 8]

def _cell(kind, lines):
    while lines and not lines[-1].strip(): lines.pop()
    if kind in ('markdown', 'raw'): lines = [l[2:] if l.startswith('# ') else l[1:] if l.startswith('#') else l for l in lines]
    src = '\n'.join(lines)
    lines = [l + '\n' for l in src.split('\n')]; lines[-1] = lines[-1][:-1]
    c = {'cell_type': kind, 'metadata': {}, 'source': lines}
    if kind == 'code': c.update(execution_count=None, outputs=[])
    return c

def text_to_nb(txt_path, nb_path):
    cells, kind, buf = [], None, []
    for line in Path(txt_path).read_text().split('\n'):
        if line.startswith('# %%'):
            if kind: cells.append(_cell(kind, buf))
            kind = 'markdown' if '[markdown]' in line else 'raw' if '[raw]' in line else 'code'; buf = []
        elif kind: buf.append(line)
    if kind: cells.append(_cell(kind, buf))
    seen = set()
    for c in cells: c['id'] = _cell_id(c['cell_type'], ''.join(c['source']), seen)
    nb = {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

if __name__ == '__main__':
    cmd, src, dst = sys.argv[1:4]
    {'out': nb_to_text, 'in': text_to_nb}[cmd](src, dst)
