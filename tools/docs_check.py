"""Offline docs check: everything `nbdev-docs` does before it calls Quarto (sidebar, _modidx, show_doc
execution, doc links), so CI catches every Python error the real docs build would hit. Quarto itself cannot be
installed offline; the site is rendered where it can be (see README)."""
import sys, time
from nbdev.config import get_config
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.doclinks import _build_modidx
from nbdev.serve import proc_nbs

def main():
    t = time.perf_counter()
    cfg = get_config()
    refresh_quarto_yml(); _build_modidx(); nbdev_sidebar.__wrapped__()
    cache = proc_nbs(cfg.nbs_path, n_workers=0, force=True)
    n = len(list(cache.rglob('*.ipynb')))
    print(f'docs processing: {n} notebooks into {cache.name}/ in {time.perf_counter() - t:.1f}s (Quarto render not run)')

if __name__ == '__main__': sys.exit(main())
