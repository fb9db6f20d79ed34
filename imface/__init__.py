"""imface: implicit-neural 3D morphable face models (ImFace, CVPR 2022)."""
from imface.errors import ImfaceError

__version__ = "0.1.0"
__all__ = ["ImfaceError", "__version__"]
