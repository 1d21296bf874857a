"""reasondistill: reasoning distillation on one GPU.

Importing the package is light: submodules and their main names load on first use, e.g.
`reasondistill.registry`, `reasondistill.methods.kd` or `reasondistill.get_method`.
(This file is written by hand; every other module is exported from the notebooks in nbs/.)"""
__version__ = "0.0.1"

import importlib

_SUBMODULES = ('core', 'records', 'data', 'tracestore', 'verify', 'toyworld', 'models', 'rollout', 'signals', 'divergences',
               'train', 'traces', 'registry', 'pipeline', 'cli', 'methods', 'eval')
_NAMES = {'get_method': 'registry', 'methods_table': 'registry', 'make_config': 'registry', 'entry_point': 'registry',
          'MethodSpec': 'registry', 'Problem': 'records', 'Trace': 'records', 'TraceStore': 'tracestore',
          'ModelSpec': 'models', 'LoraSpec': 'models', 'load_model': 'models', 'TrainConfig': 'train', 'Run': 'train',
          'apply_overrides': 'train', 'training_data': 'traces', 'generate_traces': 'traces', 'get_verifier': 'verify'}
__all__ = [*_SUBMODULES, *_NAMES]

def __getattr__(name):
    if name in _SUBMODULES: return importlib.import_module(f'{__name__}.{name}')
    if name in _NAMES: return getattr(importlib.import_module(f'{__name__}.{_NAMES[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

def __dir__(): return sorted([*globals(), *__all__])
