import os

# No progress bars in test output (the kernels nbval starts inherit this too).
os.environ.setdefault("MSNN_PROGRESS", "0")

# Tolerances keyed by dtype, in one place (STYLE.md).
TOL = {"float64": 1e-12, "float32": 1e-5}

# The papers' networks are tiny: one thread is as fast as two, and much faster when
# the machine is shared (threads waiting on each other).
import torch  # noqa: E402

torch.set_num_threads(1)
