"""Extractive question answering (the book's KorQuAD 1.0 chapter): ``nlpbook.qa.QATrainArguments``.

The pieces, one job each: ``squad.py`` reads SQuAD-layout files, ``windows.py`` encodes question +
context windows, ``decode.py`` picks answer spans, ``metrics.py`` scores them as KorQuAD does, and
``task.py`` plugs them into the shared core.
"""

from nlpbook.qa.squad import Answer, QAExample
from nlpbook.qa.task import TASK, QATask, QATrainArguments

__all__ = ["QATrainArguments", "QATask", "QAExample", "Answer", "TASK"]
