"""Document classification (the book's NSMC sentiment chapter)."""

from nlpbook.classification.task import TASK, ClassificationTrainArguments, TextExample

__all__ = ["ClassificationTrainArguments", "TextExample", "TASK"]
