"""fpsolve: finite-element Fokker–Planck solver for SGD's anisotropic noise."""
from . import diffusion, landscapes

__version__ = "0.1.0"
__all__ = ["landscapes", "diffusion", "__version__"]
