"""Edit notebooks as text: convert `nbs/**/*.ipynb` to a percent-format script and back.

    python tools/nbtext.py out nbs/methods/01_sft.ipynb /tmp/sft.py   # notebook -> text
    python tools/nbtext.py in  /tmp/sft.py nbs/methods/01_sft.ipynb   # text -> notebook

The notebook stays the source of truth; the text form is a scratch copy for editors and reviews.
Cells are separated by `# %%` (code), `# %% [markdown]` (markdown; each line prefixed by `# `) and `# %% [raw]`.
`out` writes each cell's id after the marker (`# %% id=1a2b3c4d`); `in` keeps the saved outputs of a code cell
whose id and source are unchanged (results tables and figures saved for the docs), and drops the outputs of
cells that changed. Cells without an id get a stable id from their content.
"""
import hashlib, json, re, sys
from pathlib import Path

def nb_to_text(nb_path, out_path):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        tag = f" id={c['id']}" if c.get('id') else ''
        if c['cell_type'] == 'markdown':
            parts.append(f'# %% [markdown]{tag}\n' + '\n'.join(('# ' + l) if l else '#' for l in src.split('\n')))
        elif c['cell_type'] == 'raw': parts.append(f'# %% [raw]{tag}\n' + '\n'.join('# ' + l for l in src.split('\n')))
        else: parts.append(f'# %%{tag}\n' + src)
    Path(out_path).write_text('\n\n'.join(parts) + '\n')

def _cell_id(kind, src, seen):
    "A stable id from the cell's content, so regenerating a notebook does not churn ids."
    h = hashlib.sha1(f'{kind}\0{src}'.encode()).hexdigest()
    i = 0
    while h[i:i + 8] in seen: i += 1
    seen.add(h[i:i + 8]); return h[i:i + 8]

def _cell(kind, lines, cid):
    while lines and not lines[-1].strip(): lines.pop()
    if kind in ('markdown', 'raw'): lines = [l[2:] if l.startswith('# ') else l[1:] if l.startswith('#') else l for l in lines]
    src = '\n'.join(lines)
    lines = [l + '\n' for l in src.split('\n')]; lines[-1] = lines[-1][:-1]
    c = {'cell_type': kind, 'metadata': {}, 'source': lines}
    if kind == 'code': c.update(execution_count=None, outputs=[])
    return c, cid

_MARK = re.compile(r'^# %%(?: \[(markdown|raw)\])?(?: id=([0-9a-zA-Z_-]+))?\s*$')

def text_to_nb(txt_path, nb_path):
    old = {}
    if Path(nb_path).exists():
        for c in json.loads(Path(nb_path).read_text())['cells']:
            if c.get('id'): old[c['id']] = c
    cells, kind, cid, buf = [], None, None, []
    for line in Path(txt_path).read_text().split('\n'):
        m = _MARK.match(line)
        if m:
            if kind: cells.append(_cell(kind, buf, cid))
            kind, cid, buf = m.group(1) or 'code', m.group(2), []
        elif kind: buf.append(line)
    if kind: cells.append(_cell(kind, buf, cid))
    seen, out = set(), []
    for c, cid in cells:
        if cid and cid not in seen: seen.add(cid)
        else: cid = _cell_id(c['cell_type'], ''.join(c['source']), seen)
        c['id'] = cid
        o = old.get(cid)
        if c['cell_type'] == 'code' and o is not None and ''.join(o['source']) == ''.join(c['source']):
            c['outputs'] = o.get('outputs', [])
        out.append(c)
    nb = {'cells': out, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    Path(nb_path).parent.mkdir(parents=True, exist_ok=True)
    Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

if __name__ == '__main__':
    cmd, src, dst = sys.argv[1:4]
    {'out': nb_to_text, 'in': text_to_nb}[cmd](src, dst)
