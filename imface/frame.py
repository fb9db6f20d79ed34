"""The canonical landmark frame that preprocessing aligns every scan to.

68 iBUG landmarks (0-based), in millimetres, in the model frame before scaling:
x to the subject's left as seen in a frontal image (image right), y up, z toward
the viewer, with the nose tip (iBUG 30) at (0, 0, 40) mm, so the frame's origin is
40 mm behind the nose tip (paper Sec. 3.5).

The numbers were derived once from the Basel Face Model 2009 mean shape (the 68
landmark vertices of 3DDFA's ``keypoints_sim.npy``); only these 68 points are
stored, never the mesh.
"""
from __future__ import annotations

import numpy as np

#: iBUG ids of the five landmarks the model uses: outer eye corners, nose tip, mouth corners.
FIVE_LANDMARK_IDS = (36, 45, 30, 48, 54)
NOSE_TIP_ID = 30
OUTER_EYE_IDS = (36, 45)
#: Where the nose tip lands in the model frame, millimetres.
NOSE_TIP_POSITION_MM = (0.0, 0.0, 40.0)
#: Radius of the crop sphere, millimetres; 1 model unit = this many mm.
CROP_RADIUS_MM = 100.0
MM_PER_UNIT = 100.0
#: Millimetres per unit of each unit an input may be given in: "model" (the model's own unit) and
#: the physical ones. The order is part of the contract: random draws over units follow it.
MM_PER_INPUT_UNIT: dict[str, float] = {"model": MM_PER_UNIT, "mm": 1.0, "cm": 10.0, "m": 1000.0}
#: The physical units of raw scans, in the order preprocessing tries them.
LENGTH_UNITS = ("mm", "cm", "m")

CANONICAL_LANDMARKS_MM = np.array([
    [-73.47, 26.53, -74.18],
    [-71.52, 6.76, -71.76],
    [-67.64, -11.25, -69.99],
    [-63.79, -27.50, -66.17],
    [-58.34, -44.98, -56.98],
    [-48.54, -58.98, -40.75],
    [-36.88, -67.37, -20.98],
    [-21.99, -74.38, -2.76],
    [0.02, -78.36, 4.34],
    [22.02, -74.13, -2.83],
    [36.82, -67.41, -21.02],
    [48.39, -59.21, -40.69],
    [58.10, -45.41, -56.91],
    [63.56, -28.01, -66.07],
    [67.26, -11.62, -70.02],
    [70.80, 6.49, -71.89],
    [72.68, 26.48, -74.02],
    [-57.40, 48.30, -11.47],
    [-49.12, 54.68, 0.51],
    [-38.55, 56.79, 8.85],
    [-28.40, 55.89, 13.96],
    [-19.23, 53.34, 16.39],
    [18.39, 53.57, 16.32],
    [27.60, 56.18, 13.80],
    [37.81, 57.14, 8.61],
    [48.56, 55.01, 0.34],
    [56.85, 48.46, -11.61],
    [-0.15, 34.33, 19.47],
    [-0.10, 22.28, 28.46],
    [0.00, 10.28, 37.79],
    [0.00, 0.00, 40.00],
    [-12.15, -8.96, 17.87],
    [-7.07, -10.01, 22.39],
    [-0.17, -11.36, 24.48],
    [6.67, -9.99, 22.35],
    [11.70, -8.90, 17.82],
    [-43.42, 33.93, -4.69],
    [-37.04, 37.78, 3.47],
    [-27.97, 37.90, 3.66],
    [-19.53, 33.60, 1.17],
    [-27.15, 31.50, 3.36],
    [-36.62, 31.02, 1.09],
    [18.47, 33.61, 0.85],
    [26.97, 38.01, 3.25],
    [36.27, 37.76, 3.23],
    [42.84, 33.82, -4.75],
    [35.88, 31.16, 1.01],
    [26.29, 31.48, 3.17],
    [-25.66, -33.23, 7.27],
    [-16.64, -27.28, 18.50],
    [-5.88, -23.39, 24.54],
    [-0.15, -24.51, 25.14],
    [5.56, -23.39, 24.52],
    [16.26, -27.29, 18.40],
    [24.71, -33.27, 7.06],
    [15.73, -37.42, 16.62],
    [8.03, -40.31, 20.92],
    [-0.12, -40.82, 21.92],
    [-8.22, -40.28, 21.09],
    [-15.83, -37.45, 16.79],
    [-23.13, -32.72, 8.02],
    [-7.56, -30.10, 19.44],
    [-0.26, -29.91, 21.23],
    [7.09, -30.16, 19.42],
    [23.05, -32.80, 7.65],
    [6.91, -32.51, 19.64],
    [-0.29, -32.87, 20.51],
    [-7.38, -32.43, 19.56],
])
CANONICAL_LANDMARKS_MM.setflags(write=False)
