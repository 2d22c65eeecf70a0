"""Named-entity recognition (the book's NER chapter): ``from nlpbook.ner import NERTrainArguments``."""

from nlpbook.ner.formats import Entity, NERExample, read_ner_file
from nlpbook.ner.task import TASK, NERTrainArguments

__all__ = ["NERTrainArguments", "NERExample", "Entity", "read_ner_file", "TASK"]
