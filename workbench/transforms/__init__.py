"""Image → model input, and model output → answer, shared by training and by uploads.

``mr`` scales MR and picture intensities and sizes them (``Preprocess``), ``ct`` windows
Hounsfield units into channels (``CTPreprocess``), ``mask`` cleans predicted masks. The data
loaders (:mod:`workbench.data`), the tasks, the OOD scorer and the renderer import these, never
one another, so that what a model saw in training is what it sees in the app.
"""
