import os

# No progress bars in test output (the kernels nbval starts inherit this too).
os.environ.setdefault("MSNN_PROGRESS", "0")

# Tolerances keyed by dtype, in one place (STYLE.md).
TOL = {"float64": 1e-12, "float32": 1e-5}
