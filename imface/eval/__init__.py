"""Evaluation helpers: every reconstruction is cropped like its ground truth before it is scored."""
from imface.eval.crop import crop_like_ground_truth

__all__ = ["crop_like_ground_truth"]
