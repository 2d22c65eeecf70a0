"""Extractive question answering (KorQuAD 1.0): task-independent pieces.

``squad`` reads SQuAD-layout files, ``windows`` encodes question + context into overlapping
windows, ``decode`` turns start/end logits back into a character span, and ``metrics`` scores
answers as KorQuAD 1.0's official script does. The task module (registry, Lightning plumbing)
builds on these; nothing here registers a task.
"""
