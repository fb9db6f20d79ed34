"""``imface view``: an interactive 3D viewer in the browser for a trained model and its fits.

:class:`imface.viewer.server.Viewer` serves it (viser, on localhost by default); the latent
space and the face on screen are :mod:`imface.viewer.codes`, extraction off the UI thread
:mod:`imface.viewer.worker` (coarse while dragging, refined when the slider rests, cached by
code in :mod:`imface.viewer.cache`), colour modes :mod:`imface.viewer.colors`, the scene
:mod:`imface.viewer.scene`, the control panel :mod:`imface.viewer.gui`, training faces and the
folders it may read :mod:`imface.viewer.library`, fits :mod:`imface.viewer.fits`, downloads
:mod:`imface.viewer.export`.
"""
