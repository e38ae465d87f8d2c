"""msnn: multi-stage neural networks to machine precision.

A reproduction of Wang & Lai, "Multi-stage neural networks: Function approximator
of machine precision" (J. Comput. Phys. 2024) and Ng, Wang & Lai,
"Spectrum-informed multistage neural network" (2024).

The package namespace holds the public concepts: the multi-stage drivers, the stage
network, the PINN problem and its derivatives, the frequency estimate, the training
loop and the errors and warnings they raise. Everything else is importable from its
module (``msnn.phases``, ``msnn.pinn``, ``msnn.networks``, ``msnn.problems``, ...); the
book's machinery is ``msnn.book``.
"""
from ._common import Float32Warning, NotFittedError, SparseDataWarning, StageWarning
from .burgers import BurgersSolution, train_burgers
from .ensemble import fit_ensemble
from .multistage_burgers import MultistageBurgers
from .multistage_pinn import MultistagePINN
from .networks import StageNetwork
from .pinn import RAR, PINNProblem, StagedSolution, grad, laplacian
from .regression import MultistageRegressor
from .si import SIMultistageRegressor
from .spectrum import dominant_frequency, dominant_frequency_2d
from .training import train

# Kept for the imports of the rendered chapters 5-7 (``from msnn.pinn import algorithm2, ...``):
# the training names of msnn.pinn_training stay reachable as msnn.pinn.<name>. Linked here, by
# the package, so that msnn.pinn itself never imports msnn.pinn_training (which imports it);
# this goes when those chapters are executed again with the new imports.
from . import pinn as _pinn, pinn_training as _pinn_training  # noqa: E402

for _name in _pinn_training.__all__:
    setattr(_pinn, _name, getattr(_pinn_training, _name))
del _name

__version__ = "0.1.0"

__all__ = [
    "BurgersSolution",
    "Float32Warning",
    "MultistageBurgers",
    "MultistagePINN",
    "MultistageRegressor",
    "NotFittedError",
    "PINNProblem",
    "RAR",
    "SIMultistageRegressor",
    "SparseDataWarning",
    "StageWarning",
    "StageNetwork",
    "StagedSolution",
    "dominant_frequency",
    "dominant_frequency_2d",
    "fit_ensemble",
    "grad",
    "laplacian",
    "train",
    "train_burgers",
]
