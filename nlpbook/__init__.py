"""nlpbook: fine-tune pretrained Korean BERT models with PyTorch Lightning and transformers.

from nlpbook.classification import ClassificationTrainArguments
args = ClassificationTrainArguments(downstream_model_dir="runs/nsmc", ...)
export_dir = nlpbook.train(args)
nlpbook.evaluate(args)
nlpbook.predict(export_dir, ["재미있는 영화였다"])
nlpbook.serve(export_dir, port=8000)  # web demo + JSON API
"""

import logging

from nlpbook.arguments import ArgumentError, TrainArguments
from nlpbook.commands import evaluate, train
from nlpbook.corpus import DataError
from nlpbook.export import ExportError
from nlpbook.predictor import Predictor, predict
from nlpbook.serve import serve

__all__ = [
    "train",
    "evaluate",
    "predict",
    "serve",
    "Predictor",
    "TrainArguments",
    "ArgumentError",
    "DataError",
    "ExportError",
]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
