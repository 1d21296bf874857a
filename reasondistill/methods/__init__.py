"The distillation methods, one module per method; each loads on first use (`reasondistill.methods.X`). Written by hand."
import importlib

def __getattr__(name):
    try: return importlib.import_module(f'{__name__}.{name}')
    except ModuleNotFoundError as e:
        if e.name != f'{__name__}.{name}': raise
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None
