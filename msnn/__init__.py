"""msnn: multi-stage neural networks to machine precision.

A reproduction of Wang & Lai, "Multi-stage neural networks: Function approximator
of machine precision" (J. Comput. Phys. 2024) and Ng, Wang & Lai,
"Spectrum-informed multistage neural network" (2024).
"""
from .claims import Claim, ClaimTable
from .networks import StageNetwork, kappa_from_hat, xavier_std
from .regression import (
    Float32Warning,
    MultistageRegressor,
    SparseDataWarning,
    StageRecord,
    choose_kappa_hat,
)
from .spectrum import dominant_frequency, dominant_frequency_2d, dominant_frequency_scattered
from .training import TrainHistory, train

__version__ = "0.1.0"

__all__ = [
    "Claim",
    "ClaimTable",
    "Float32Warning",
    "MultistageRegressor",
    "SparseDataWarning",
    "StageNetwork",
    "StageRecord",
    "TrainHistory",
    "choose_kappa_hat",
    "dominant_frequency",
    "dominant_frequency_2d",
    "dominant_frequency_scattered",
    "kappa_from_hat",
    "train",
    "xavier_std",
]
