"Markers shared with the notebook flags: `cuda`, `slow`, `net`, `unsloth`. Skipped unless the hardware is there or RD_RUN=<flags> asks for them."
import os, random, pytest

def _has_cuda():
    try: import torch
    except ImportError: return False
    return torch.cuda.is_available()

def pytest_configure(config):
    for m in ('cuda: needs a CUDA GPU', 'slow: takes more than ~30 s (set RD_RUN=slow)',
              'net: needs network/hub access (set RD_RUN=net)', 'unsloth: needs the unsloth extra (set RD_UNSLOTH=1)'):
        config.addinivalue_line('markers', m)

def pytest_collection_modifyitems(config, items):
    want = set(os.environ.get('RD_RUN', '').split())
    for item in items:
        if 'cuda' in item.keywords and not _has_cuda(): item.add_marker(pytest.mark.skip(reason='no CUDA device'))
        if 'unsloth' in item.keywords and os.environ.get('RD_UNSLOTH') != '1':
            item.add_marker(pytest.mark.skip(reason='set RD_UNSLOTH=1 (and install reasondistill[unsloth]) to run'))
        for flag in ('slow', 'net'):
            if flag in item.keywords and flag not in want: item.add_marker(pytest.mark.skip(reason=f'set RD_RUN={flag} to run'))

@pytest.fixture(scope='module')
def toy():
    "(student tokenizer, 6 toy training problems at levels 1/3/6, their prompt + reference-trace examples)."
    from reasondistill.models import load_tokenizer, render_prompt
    from reasondistill.toyworld import toy_problems, parse_toy_question, reference_trace
    tok = load_tokenizer('toy:student')
    rng = random.Random(0)
    probs = toy_problems(2, levels=[1, 3, 6], split='train')
    ex = [dict(prompt=render_prompt(tok, p.question), completion=reference_trace(parse_toy_question(p.question), rng)[0]) for p in probs]
    return tok, probs, ex
