"""The package as users install it: a wheel built from the repository, installed non-editable into a fresh virtual
environment, must carry its toy assets and run `reasondistill methods`, a tiny `generate` and the first stages of
`reasondistill demo`. The editable install of the test environment would hide a missing package-data entry, so this builds the
wheel itself.

The fresh environment gets the wheel with `--no-deps`; its dependencies (torch, transformers, ...) come from the test
environment's site-packages through a `.pth` line, so the check needs no download. A `.pth` line adds a folder to the
path without processing that folder's own `.pth` files, so the test environment's editable finder does not leak in: the
test asserts that `reasondistill` is imported from the fresh environment."""
import json, os, shutil, subprocess, sys, sysconfig, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, f'{cmd}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}'
    return p


@pytest.fixture(scope='module')
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('wheel')
    # The build runs in a copy of the source tree: an in-tree build leaves build/lib behind, and setuptools would put
    # modules deleted since into the next wheel. --no-build-isolation: this environment's setuptools (offline).
    src = tmp / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', '.venv*', 'build', 'dist', '*.egg-info', 'runs',
                                                             '_docs', '_proc', '__pycache__', '.pytest_cache'))
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', tmp / 'dist', src],
         cwd=tmp)
    wheels = list((tmp / 'dist').glob('reasondistill-*.whl'))
    assert len(wheels) == 1, wheels
    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv])
    py = venv / 'bin' / 'python'
    _run([sys.executable, '-m', 'pip', '--python', py, 'install', '-q', '--no-deps', '--no-index', wheels[0]])
    site = Path(_run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    (site / '_deps_from_test_env.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(RD_PROGRESS='0', PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}")
    return dict(wheel=wheels[0], venv=venv, py=py, env=env, tmp=tmp)


def test_wheel_carries_the_toy_world(wheel_env):
    names = zipfile.ZipFile(wheel_env['wheel']).namelist()
    for who in ('teacher', 'student'):
        files = [n for n in names if n.startswith(f'reasondistill/assets/toy/{who}/')]
        assert any(n.endswith('.safetensors') for n in files), (who, files)
        assert any(n.endswith('tokenizer_config.json') or n.endswith('tokenizer.json') for n in files), (who, files)
    assert not any(n.startswith(('tests/', 'nbs/')) for n in names)
    assert any(n.endswith('entry_points.txt') for n in names)


def test_installed_package_is_the_wheel(wheel_env):
    out = _run([wheel_env['py'], '-c', 'import reasondistill; print(reasondistill.__file__)'], env=wheel_env['env'],
               cwd=wheel_env['tmp']).stdout.strip()
    assert Path(out).resolve().is_relative_to(wheel_env['venv'].resolve()), out


def test_wheel_cli_methods_and_generate(wheel_env):
    exe, env, tmp = wheel_env['venv'] / 'bin' / 'reasondistill', wheel_env['env'], wheel_env['tmp']
    out = _run([exe, 'methods'], env=env, cwd=tmp).stdout
    assert 'sft' in out and 'kd' in out and 'implemented' in out
    _run([exe, 'generate', '--problems', 'toy:test:1:2', '--out', tmp / 'gen', '--n', '1', '--max-new-tokens', '32'],
         env=env, cwd=tmp)
    rows = [json.loads(l) for f in (tmp / 'gen').rglob('*.jsonl') for l in f.read_text().splitlines() if l.strip()]
    assert len([r for r in rows if 'completion' in r]) == 1, rows


def test_wheel_runs_demo_first_stages(wheel_env):
    exe, env, tmp = wheel_env['venv'] / 'bin' / 'reasondistill', wheel_env['env'], wheel_env['tmp']
    out = _run([exe, 'demo', '--run-dir', 'demo', '--set', 'train_per_level=1', 'teacher_samples=1', '--stop-after', 'traces'],
               env=env, cwd=tmp).stdout
    assert '[1/5] problems: 8 train' in out and '[2/5] teacher traces: 8 on 8 problems' in out, out
    assert (tmp / 'demo' / 'traces').is_dir() and not (tmp / 'demo' / 'train').exists()
