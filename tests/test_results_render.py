"""Every committed benchmark report (benchmarks/results/NAME.md) is rendered from its JSON record (NAME.json): regenerate
each with `compare.render_benchmark` and fail on any difference, so no number in a report can drift from its record.

Legacy records (`LEGACY`: written before reports were rendered, so their JSON stores no `report`) keep the report their
script wrote, marked by a banner; the set can only shrink: a new record must store its report, and a re-run legacy
benchmark must leave the list. Exempt, because they have no JSON record: faults.md and unsloth_lane.md (written by their scripts as text) and
demo_transcript.txt (a terminal transcript). Any other report without a record fails `test_every_report_has_a_record`.
To refresh a report after changing the renderer (never by hand):
    python -c "import json, pathlib; from reasondistill.eval.compare import render_benchmark as r; \
    [j.with_suffix('.md').write_text(r(json.loads(j.read_text()), j.stem)) for j in pathlib.Path('benchmarks/results').glob('*.json')]"
"""
import json
from pathlib import Path
import pytest
from reasondistill.eval.compare import render_benchmark

RESULTS = Path(__file__).resolve().parents[1] / 'benchmarks' / 'results'
EXEMPT = {'faults.md', 'unsloth_lane.md'}            # reports without a JSON record (see the module docstring)
RECORDS = sorted(RESULTS.glob('*.json')) if RESULTS.exists() else []
LEGACY = {'atesd_exposure', 'curiosft_entropy', 'kd_memory', 'kd_toy', 'negatives_toy', 'negatives_toy_bf16',
          'negatives_toy_lr1e-3', 'onpolicy_toy', 'onpolicy_toy_lr1e-3', 'onpolicy_toy_lr3e-4', 'recipes_toy',
          'topk_cache_bytes', 'toy_world', 'verifier_audit'}
BANNER = '> Legacy report: written by its benchmark script before reports were rendered from their JSON record'

pytestmark = pytest.mark.skipif(not RECORDS, reason='no benchmarks/results in this checkout')

@pytest.mark.parametrize('record', RECORDS, ids=lambda p: p.stem)
def test_report_is_rendered_from_its_record(record):
    md = record.with_suffix('.md')
    assert md.exists(), f'{record.name} has no report: render it with compare.render_benchmark'
    data = json.loads(record.read_text())
    if 'report' not in data:
        assert record.stem in LEGACY, f'{record.name} stores no report: write it with compare.write_benchmark'
        assert BANNER in md.read_text(), f'{md.name} is a legacy report without its banner'
        return
    assert record.stem not in LEGACY, f'{record.name} now stores its report: remove it from LEGACY'
    expected = render_benchmark(data, record.stem)
    got = md.read_text()
    if got != expected:
        diff = next(i for i, (a, b) in enumerate(zip(got.splitlines() + [''], expected.splitlines() + [''])) if a != b)
        pytest.fail(f'{md.name} differs from the render of {record.name} at line {diff + 1}:\n'
                    f'  file:   {(got.splitlines() + [""])[diff]!r}\n  render: {(expected.splitlines() + [""])[diff]!r}')

def test_every_report_has_a_record():
    orphans = {p.name for p in RESULTS.glob('*.md') if not p.with_suffix('.json').exists()}
    assert orphans == EXEMPT, f'reports without a JSON record (not rendered, not exempt): {sorted(orphans - EXEMPT)}; ' \
                              f'exempt but gone or now recorded: {sorted(EXEMPT - orphans)}'
