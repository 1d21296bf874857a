"Every trainable method of the registry trains from the one CLI path, with its preset, on the toy world (one step)."
import contextlib, io, re
from pathlib import Path
import pytest
from reasondistill.cli import main
from reasondistill.registry import METHODS, make_config
from reasondistill.train import config_fields

TRAINABLE = sorted(n for n, s in METHODS.items() if s.trainable)
PROBLEMS = 'toy:train:2:1,3,7'          # levels where the toy teacher is right and where it errs (negatives)
SMALL = {'rollout.max_new_tokens': 32, 'max_new_tokens': 64, 'n_samples': 2, 'max_steps': 1, 'rounds': 1,
         'fidelity.heldout': 2, 'probe_pairs': 0, 'num_generations': 2}
# DeepDistill keeps only problems the teacher sometimes solves: levels and a length where its two samples disagree
OWN = {'deepdistill': ('toy:train:2:3,5', ['max_new_tokens=96']),
       'kepo-explore': (PROBLEMS, ['num_enhanced=1']),            # one hinted rollout fits a group of two
       'acereason': (PROBLEMS, ['stages=chain:32,chain:64'])}    # v1 toy problems are all chains (no tool domain)

@pytest.fixture(scope='module')
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli') / 'traces'
    with contextlib.redirect_stdout(io.StringIO()):
        main(['generate', '--model', 'toy:teacher', '--problems', PROBLEMS, '--out', str(d), '--n', '2', '--max-new-tokens', '200'])
    return d

@pytest.mark.parametrize('name', TRAINABLE)
def test_method_trains_from_the_cli(name, traces, tmp_path):
    spec = METHODS[name]
    keys = {k for k, *_ in config_fields(make_config(name))}
    problems, extra = OWN.get(name, (PROBLEMS, []))
    sets = [f'{k}={v}' for k, v in SMALL.items() if k in keys and not any(e.startswith(k + '=') for e in extra)] + extra
    args = ['train', '--method', name, '--problems', problems, '--out', str(tmp_path / 'run'), '--max-steps', '1',
            '--batch-size', '2', '--max-length', '192', '--lora-r', '4']
    if spec.data in ('traces', 'prompts', 'references', 'labelled', 'answers'): args += ['--traces', str(traces)]
    if spec.teacher == 'model': args += ['--teacher', 'toy:teacher']
    if sets: args += ['--set', *sets]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): main(args)
    out = buf.getvalue()
    m = re.search(r'trained (\d+) steps.*adapters in (\S+)', out)
    assert m, out[-2000:]
    assert int(m.group(1)) >= 1 and (Path(m.group(2)) / 'adapter_config.json').exists(), out[-2000:]
    assert (tmp_path / 'run' / 'reasondistill.log').exists()
