"""msnn: multi-stage neural networks to machine precision.

A reproduction of Wang & Lai, "Multi-stage neural networks: Function approximator
of machine precision" (J. Comput. Phys. 2024) and Ng, Wang & Lai,
"Spectrum-informed multistage neural network" (2024).
"""
from .burgers import BurgersSolution, exact_profile, train_burgers
from .book.claims import Claim, ClaimTable
from .ensemble import EnsembleFit, fit_ensemble
from .multistage_pinn import MultistagePINN, PINNStageRecord
from .networks import FourierFeatureNetwork, StageNetwork, kappa_from_hat, xavier_std
from .pinn import (
    RAR,
    PINNProblem,
    StagedSolution,
    algorithm2,
    algorithm3,
    estimate_next_stage,
    gamma_bound,
    grad,
    laplacian,
    train_pinn,
)
from .regression import (
    Float32Warning,
    MultistageRegressor,
    SparseDataWarning,
    StageRecord,
    choose_kappa_hat,
)
from .si import SIMultistageRegressor, SINetwork, spectral_modes
from .spectrum import dominant_frequency, dominant_frequency_2d, dominant_frequency_scattered
from .training import TrainHistory, train
from .turbulence import decaying_turbulence, power_spectrum

__version__ = "0.1.0"

__all__ = [
    "BurgersSolution",
    "Claim",
    "ClaimTable",
    "EnsembleFit",
    "FourierFeatureNetwork",
    "Float32Warning",
    "MultistagePINN",
    "MultistageRegressor",
    "PINNProblem",
    "PINNStageRecord",
    "RAR",
    "SIMultistageRegressor",
    "SINetwork",
    "SparseDataWarning",
    "StageNetwork",
    "StageRecord",
    "StagedSolution",
    "TrainHistory",
    "algorithm2",
    "algorithm3",
    "choose_kappa_hat",
    "decaying_turbulence",
    "dominant_frequency",
    "dominant_frequency_2d",
    "dominant_frequency_scattered",
    "estimate_next_stage",
    "exact_profile",
    "fit_ensemble",
    "gamma_bound",
    "grad",
    "kappa_from_hat",
    "laplacian",
    "power_spectrum",
    "spectral_modes",
    "train",
    "train_burgers",
    "train_pinn",
    "xavier_std",
]
