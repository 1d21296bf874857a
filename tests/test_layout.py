"The architecture's rules, checked on the source tree: one CLI path, importable trainers, a light package, self-contained docs."
import ast, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / 'reasondistill'

def _modules(sub): return sorted((PKG / sub).glob('*.py'))

@pytest.mark.parametrize('path', _modules('methods') + _modules('eval'), ids=lambda p: f'{p.parent.name}/{p.name}')
def test_method_and_eval_modules_do_not_import_cli(path):
    tree = ast.parse(path.read_text())
    names = [n.module or '' for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
            [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in names if m == 'cli' or m.endswith('.cli') or m == 'reasondistill.cli'], f'{path.name} imports cli'

def test_no_cached_class_factories():
    "Trainer and callback classes are defined at module level, not built by `@functools.cache` factories."
    bad = []
    for path in PKG.rglob('*.py'):
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.FunctionDef) and any('cache' in ast.unparse(d) for d in n.decorator_list) \
               and any(isinstance(m, ast.ClassDef) for m in ast.walk(n)):
                bad.append(f'{path.relative_to(ROOT)}:{n.name}')
    assert not bad, bad

def test_nothing_links_outside_the_repository():
    pat = re.compile(r'shared/|UNVERIFIED|card §|methods_[a-z]+\.md')
    hits = [f'{p.relative_to(ROOT)}: {m.group(0)}' for d in ('nbs', 'reasondistill') for p in (ROOT / d).rglob('*')
            if p.suffix in ('.ipynb', '.py', '.md', '.yml') and '.ipynb_checkpoints' not in p.parts
            for m in [pat.search(p.read_text(errors='replace'))] if m]
    assert not hits, hits

def test_import_and_listing_are_light():
    code = ("import sys, reasondistill as r; r.get_method('kd-rkl'); r.methods_table(); "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == '[]', out

def test_lazy_attributes():
    import reasondistill as r
    assert r.methods.kd.KDTrainer.__name__ == 'KDTrainer' and r.eval.metrics.__name__ == 'reasondistill.eval.metrics'
    with pytest.raises(AttributeError): r.methods.no_such_method
    with pytest.raises(AttributeError): r.no_such_name

def test_registry_entries_resolve_and_notebooks_exist():
    from reasondistill.registry import METHODS, entry_point
    from reasondistill.registry import _resolve
    for name, spec in METHODS.items():
        if spec.notebook: assert (ROOT / 'nbs' / spec.notebook).exists(), f'{name}: {spec.notebook} missing'
        if spec.trainable:
            assert callable(entry_point(name)), name
            cfg = _resolve(spec.config)()
            assert hasattr(cfg, 'train'), f'{name}: its config has no train field'

def test_readme_lists_every_trainable_method():
    from reasondistill.registry import METHODS
    text = (ROOT / 'README.md').read_text()
    missing = [n for n, s in METHODS.items() if s.trainable and f'`{n}`' not in text]
    assert not missing, f'README (nbs/index.ipynb) does not list {missing}'

def test_config_type_hints_resolve():
    "Every config dataclass's field types resolve in its own module (what `show_doc` and `typing.get_type_hints` need)."
    import dataclasses, importlib, pkgutil, typing
    import reasondistill.methods
    bad = []
    for m in pkgutil.iter_modules(reasondistill.methods.__path__):
        mod = importlib.import_module(f'reasondistill.methods.{m.name}')
        for k, v in vars(mod).items():
            if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == mod.__name__:
                try: typing.get_type_hints(v.__init__, globalns=vars(mod))
                except NameError as e: bad.append(f'{mod.__name__}.{k}: {e}')
    assert not bad, bad
