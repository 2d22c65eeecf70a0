"""Sentence similarity (KorSTS): ``from nlpbook.sts import STSTrainArguments``."""

from nlpbook.sts.task import TASK, STSTask, STSTrainArguments
from nlpbook.text import TextExample

__all__ = ["STSTrainArguments", "STSTask", "TextExample", "TASK"]
