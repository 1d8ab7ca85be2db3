"""anogen: unsupervised anomaly detection with deep generative models.

>>> import anogen
>>> det = anogen.create("algan", image_size=32, channels=1, epochs=30)
>>> det.fit(train_images)                 # doctest: +SKIP
>>> scores = det.decision_function(test)  # doctest: +SKIP  (N,), higher = more anomalous
"""

from anogen._util import __version__
from anogen._registry import available, create, register
from anogen.detector import Detector, NotFittedError, TrainingDiverged, load
from anogen.data.transforms import InputError
import anogen.detectors  # noqa: F401  (importing the package registers every method file)

__all__ = [
    "Detector", "InputError", "NotFittedError", "TrainingDiverged", "available", "create", "load", "register",
    "__version__",
]
