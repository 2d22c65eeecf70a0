"""Named-entity recognition: the book's corpus, Naver NER 2018, KLUE-NER or a user's file.

The task only supplies what differs from the others: the corpus layouts, the BIO label set read
from the training data, sub-token alignment (``align.py``), seqeval metrics over whole sentences
(windows reassembled first) and a decoder that returns character spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from nlpbook.arguments import TrainArguments, option
from nlpbook.corpus import DataError, korpora_fetch, read_text_rows, require_files
from nlpbook.ner import align
from nlpbook.ner.formats import NERExample, read_ner_file
from nlpbook.tasks import IGNORE_INDEX, Features, Head, InputField, Split, Task, accuracy

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["NERTrainArguments", "NERTask", "TASK", "CORPORA", "corpus_files"]


# corpus name -> (format, train file, test file) under <downstream_corpus_root_dir>/<corpus name>/.
# Naver NER 2018 has no test file: every 10th sentence of train_data is held out (see read_corpus).
CORPORA: dict[str, tuple[str, str, str]] = {
    "ner": ("book", "train.txt", "val.txt"),
    "naver_changwon_ner": ("naver", "train_data", "train_data"),
    "klue-ner": ("klue", "klue-ner-v1.1_train.tsv", "klue-ner-v1.1_dev.tsv"),
}
NAVER_HELD_OUT = 10  # sentence k goes to the test split when k % 10 == 9


@dataclass
class NERTrainArguments(TrainArguments):
    """Arguments for named-entity recognition; defaults train on the book's NER corpus."""

    task: ClassVar[str] = "ner"
    corpora: ClassVar[tuple[str, ...]] = tuple(CORPORA)
    book_task_name: ClassVar[str] = "named-entity-recognition"

    ner_format: Literal["auto", "book", "naver", "klue", "conll"] = option(
        "format of --train_file/--test_file (downstream_corpus_name='custom'); 'auto' guesses it",
        default="auto",
    )
    repair_tags: bool = option(
        "read an I- tag that follows no entity of its type as B- (logged with its lines) "
        "instead of stopping with an error",
        default=False,
    )


def corpus_files(args: NERTrainArguments) -> list[Path]:
    fmt, train, test = CORPORA[args.downstream_corpus_name]
    folder = args.corpus_root / args.downstream_corpus_name
    return sorted({folder / train, folder / test})


class NERTask(Task):
    name = "ner"
    arguments_class = NERTrainArguments
    head = Head("AutoModelForTokenClassification", "token_classification", per_token=True)
    input_fields = (InputField("text", "문장 (text)", "예: 이순신은 조선의 장군이다"),)
    metric_names = ("f1", "precision", "recall", "span_f1", "token_accuracy")

    # --- reading -----------------------------------------------------------------------------
    def read_file(self, path: Path, args: NERTrainArguments, split: Split) -> list[NERExample]:
        return read_ner_file(path, args.ner_format, args.repair_tags)

    def read_corpus(self, args: NERTrainArguments, split: Split) -> list[NERExample]:
        corpus = args.downstream_corpus_name
        fmt, train, test = CORPORA[corpus]
        folder = args.corpus_root / corpus
        paths = [folder / (train if split == "train" else test)]  # evaluate reads no training file
        download = (
            (lambda: korpora_fetch(corpus, args.corpus_root)) if corpus == "naver_changwon_ner" else None
        )
        require_files(paths, download, corpus, args.force_download)
        examples = read_ner_file(paths[0], fmt, args.repair_tags)  # type: ignore[arg-type]
        if corpus == "naver_changwon_ner":
            held_out = split == "test"
            examples = [
                e for k, e in enumerate(examples) if (k % NAVER_HELD_OUT == NAVER_HELD_OUT - 1) == held_out
            ]
        return examples

    # --- labels ------------------------------------------------------------------------------
    def label_names(self, train_examples: Sequence[NERExample]) -> list[str]:
        types = sorted({e.type for example in train_examples for e in example.entities or ()})
        if not types:
            where = (
                train_examples[0].row.path if train_examples and train_examples[0].row else "training data"
            )
            raise DataError(where, None, "no entities in the training data: nothing to learn")
        return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]

    def check_labels(self, examples: Sequence[NERExample], label_names: Sequence[str]) -> None:
        known = sorted({name[2:] for name in label_names if name != "O"})
        for example in examples:
            for entity in example.entities or ():
                if entity.type not in known:
                    path = example.row.path if example.row else "input"
                    raise DataError(
                        path,
                        entity.line,
                        f"entity type {entity.type!r} is not one of the model's types {known}",
                    )

    # --- encoding, scoring, decoding ---------------------------------------------------------
    def encode(
        self,
        examples: Sequence[NERExample],
        tokenizer: Any,
        label_names: Sequence[str] | None,
        args: Any,
    ) -> list[Features]:
        return align.encode(examples, tokenizer, label_names, args.max_seq_length)

    def train_metrics(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"train_token_accuracy": accuracy(outputs, batch["labels"])}

    def metrics(
        self,
        examples: Sequence[NERExample],
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        """Entity-level precision/recall/F1 (seqeval, micro and per type) over whole sentences,
        and the accuracy of sub-token tags at the positions the loss uses."""
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

        predictions = [row.argmax(-1) for row in outputs]
        by_example: dict[int, list[int]] = {}
        for position, feature in enumerate(features):
            by_example.setdefault(feature["example_index"], []).append(position)
        gold: list[list[str]] = []
        predicted: list[list[str]] = []
        spans = {"gold": 0, "predicted": 0, "matched": 0}
        for positions in by_example.values():
            merged = align.merge_windows(
                [features[p] for p in positions], [predictions[p] for p in positions]
            )
            tags = [label_names[int(v[i])] for _, _, i, v in merged]
            pairs = [
                (label_names[f["labels"][i]], tag)
                for (_, f, i, _), tag in zip(merged, tags, strict=True)
                if f["labels"][i] != IGNORE_INDEX
            ]
            if pairs:
                gold.append([g for g, _ in pairs])
                predicted.append([p for _, p in pairs])
            entities = features[positions[0]].get("entities")
            if entities is not None:
                found = set(align.spans_from_tags([offset for offset, *_ in merged], tags))
                truth = {(e.type, e.start, e.end) for e in entities}
                spans["gold"] += len(truth)
                spans["predicted"] += len(found)
                spans["matched"] += len(truth & found)
        tokens = sum(len(s) for s in gold)
        correct = sum(
            g == p for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)
        )
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
        return {
            "precision": float(precision_score(gold, predicted, zero_division=0)),
            "recall": float(recall_score(gold, predicted, zero_division=0)),
            "f1": float(f1_score(gold, predicted, zero_division=0)),
            "token_accuracy": correct / tokens if tokens else 0.0,
            # exact character spans, as predict returns them, against the annotated spans: lower
            # than "f1" by the entities whose boundary falls inside a sub-token (see align.py)
            "span_f1": _f1(spans["matched"], spans["predicted"], spans["gold"]),
            "per_type": {
                kind: {
                    "precision": float(scores["precision"]),
                    "recall": float(scores["recall"]),
                    "f1": float(scores["f1-score"]),
                    "support": int(scores["support"]),
                }
                for kind, scores in report.items()
                if not kind.endswith(" avg")
            },
            "sentences": len(gold),
        }

    def decode(
        self,
        example: NERExample,
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        merged = align.merge_windows(features, outputs)
        offsets = [offset for offset, *_ in merged]
        tags = [label_names[int(v[i].argmax())] for _, _, i, v in merged]
        entities = [
            {"type": kind, "start": start, "end": end, "word": example.text[start:end]}
            for kind, start, end in align.spans_from_tags(offsets, tags)
        ]
        return {"text": example.text, "entities": entities}

    def example_from_fields(self, values: dict[str, str]) -> NERExample:
        return NERExample(values["text"])

    def examples_from_file(self, path: str) -> list[NERExample]:
        """Sentences to tag: a .txt file with one sentence a line, or .jsonl/.json/.tsv with "text"."""
        return [NERExample(row.values["text"], row=row) for row in read_text_rows(path)]


def _f1(matched: int, predicted: int, gold: int) -> float:
    return 2 * matched / (predicted + gold) if predicted + gold else 0.0


TASK = NERTask()
