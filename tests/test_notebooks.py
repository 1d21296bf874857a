"Run the project's notebooks under pytest (same selection and flags as `nbdev-test`), so one pytest run reports everything."
import os, time, pytest
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import test_nb as run_nb  # aliased: pytest would otherwise collect nbdev's `test_nb` as a test

cfg = get_config()
# cells flagged with these are skipped; RD_RUN='slow' (or 'slow cuda', ...) runs those flags too
FLAGS = [f for f in str(cfg.tst_flags or '').split() if f not in os.environ.get('RD_RUN', '').split()]
NBS = [p for p in sorted(nbglob(cfg.nbs_path, as_path=True)) if not (p.parent/'.notest').exists()]
BUDGET_S = 30   # per-notebook test budget on 2 CPU cores; reported, not asserted (timings belong in benchmarks)

@pytest.mark.parametrize('nb', NBS, ids=[str(p.relative_to(cfg.nbs_path)) for p in NBS])
def test_notebook(nb, record_property):
    os.environ['IN_TEST'] = '1'
    t = time.perf_counter()
    ok, secs = run_nb(nb, skip_flags=FLAGS, basepath=cfg.config_path)
    record_property('seconds', round(time.perf_counter() - t, 1))
    assert ok, f'{nb.name} failed; traceback is on stderr'
