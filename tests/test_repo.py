"""Repository discipline, checked on a copy of the working tree so nothing here is modified:
notebooks are clean, the package is what `nbdev-export` makes of them, README.md is what `nbs/index.ipynb`
renders to, and nbdev's docs processing (everything before Quarto: show_doc, doc links, every import cell)
runs without error."""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def _git_files():
    r = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True)
    if r.returncode: pytest.skip('not a git checkout')
    return [f for f in r.stdout.decode().split('\0') if f and (ROOT / f).is_file()]

@pytest.fixture(scope='module')
def copy(tmp_path_factory):
    dst = tmp_path_factory.mktemp('repo')
    for f in _git_files():
        (dst / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, dst / f)
    subprocess.run(['git', 'init', '-q'], cwd=dst, check=True)
    subprocess.run(['git', 'add', '-A'], cwd=dst, check=True)
    subprocess.run(['git', '-c', 'user.email=ci@local', '-c', 'user.name=ci', 'commit', '-qm', 'snapshot'], cwd=dst, check=True)
    return dst

def _changed(d): return subprocess.run(['git', 'status', '--porcelain'], cwd=d, capture_output=True, text=True).stdout.strip()

def test_notebooks_are_clean(copy):
    subprocess.run([str(BIN / 'nbdev-clean')], cwd=copy, check=True, capture_output=True)
    assert not _changed(copy), f'notebooks are not clean; run nbdev-clean:\n{_changed(copy)}'

def test_package_matches_notebooks(copy):
    subprocess.run([str(BIN / 'nbdev-export')], cwd=copy, check=True, capture_output=True)
    assert not _changed(copy), f'reasondistill/ is out of sync with nbs/; run nbdev-export:\n{_changed(copy)}'

def test_readme_matches_index(copy):
    r = subprocess.run([sys.executable, 'tools/readme.py', '--check'], cwd=copy, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_docs_processing(copy):
    env = {**os.environ, 'PYTHONPATH': str(copy)}
    r = subprocess.run([sys.executable, 'tools/docs_check.py'], cwd=copy, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    assert (copy / '_proc' / 'index.ipynb').exists() or any((copy / '_proc').rglob('index.ipynb'))

def test_sidebar_lists_every_notebook(copy):
    r = subprocess.run([sys.executable, 'tools/sidebar.py', '--check'], cwd=copy, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (copy / 'nbs' / 'sidebar.yml').read_text()
    for nb in (copy / 'nbs').rglob('*.ipynb'):
        if '.ipynb_checkpoints' in nb.parts: continue
        assert str(nb.relative_to(copy / 'nbs')) in text, f'{nb} is not in the sidebar'
    for title in ('Core', 'Data and traces', 'Methods', 'Evaluation and analysis', 'Tutorials'): assert f'section: {title}' in text
