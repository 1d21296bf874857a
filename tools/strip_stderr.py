"Drop stderr streams (library warnings, progress bars) from executed notebooks, keeping their real outputs: python tools/strip_stderr.py NB..."
import json, sys
for path in sys.argv[1:]:
    nb = json.load(open(path, encoding='utf-8'))
    for c in nb['cells']:
        if c['cell_type'] == 'code':
            c['outputs'] = [o for o in c.get('outputs', []) if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
    json.dump(nb, open(path, 'w', encoding='utf-8'), indent=1, ensure_ascii=False)
