"The command line run in-process, as the tests drive it: `run_cli(args)` -> (exit status, stdout, stderr)."
import contextlib, io
from reasondistill.cli import console

def run_cli(args) -> tuple:
    "Run `reasondistill ARGS` in this process (arguments may be paths or numbers); a user error exits with status 2."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: console([str(a) for a in args]); code = 0
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()
