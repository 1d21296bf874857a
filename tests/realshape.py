"""Real-shaped stand-in models for the real-model lane (issue 13, point 3): the builders live in the package
(`reasondistill.standins`, from nbs/core/10_standins.ipynb) so the tutorials can use them; the tests keep importing
them as `import realshape as rs`."""
from reasondistill.standins import *
from reasondistill.standins import _corpus
