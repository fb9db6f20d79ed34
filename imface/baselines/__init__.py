"""Classical 3DMM baselines over registered meshes: linear PCA, bilinear (Tucker) and FLAME-like,
with regularised non-rigid ICP fitting to scans (paper Table 1 comparisons)."""
from imface.baselines.bilinear import BilinearModel, build_bilinear
from imface.baselines.fitting import BaselineFitSettings, FitResult, MorphableModel, fit_to_points, fit_to_vertices
from imface.baselines.flame_like import FlameLikeModel, build_flame_like
from imface.baselines.io import (
    BuiltBaselines, build_baselines, fit_baseline, load_model, load_training_meshes, save_model,
)
from imface.baselines.pca import PCAModel, build_pca

__all__ = [
    "BaselineFitSettings", "BilinearModel", "BuiltBaselines", "FitResult", "FlameLikeModel", "MorphableModel", "PCAModel",
    "build_baselines", "build_bilinear", "build_flame_like", "build_pca", "fit_baseline", "fit_to_points",
    "fit_to_vertices", "load_model", "load_training_meshes", "save_model",
]
