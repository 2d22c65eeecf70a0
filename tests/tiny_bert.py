"""A tiny BERT and WordPiece vocab built on the fly, saved like a hub model.

Tests, CI notebook runs and smoke runs load it through the same ``pretrained_model_name`` path a
user's ``beomi/kcbert-base`` takes (``from_pretrained`` on a folder). Run as a script to build one:
``python tests/tiny_bert.py OUT_DIR``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from pathlib import Path

POSITIVE = ["좋다", "최고", "재밌다", "감동", "추천", "훌륭하다", "명작", "사랑"]
NEGATIVE = ["별로", "최악", "지루", "실망", "아깝다", "짜증", "졸작", "엉망"]
FILLER = [
    "영화",
    "배우",
    "연기",
    "스토리",
    "정말",
    "너무",
    "그냥",
    "진짜",
    "오늘",
    "보고",
    "왔는데",
    "이번",
    "감독",
    "장면",
    "음악",
    "결말",
    "처음",
    "다시",
    "친구",
    "함께",
    "극장",
    "주인공",
]
NAMES = ["이순신", "세종", "김구", "안중근", "유관순"]
PLACES = ["서울", "부산", "조선", "한양", "제주"]


def toy_sentiment(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs whose label is decided by one cue word: learnable in a few steps."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["0", "1"])
        words = rng.sample(FILLER, rng.randint(1, 8))
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "1" else NEGATIVE))
        rows.append((" ".join(words), label))
    return rows


def toy_squad(articles: int, seed: int = 0, filler_words: int = 30) -> dict:
    """A SQuAD-layout corpus: each context hides "<name> 씨가 <place> 에서 태어났다" among filler words
    (long enough to need several windows at a small max_seq_length); two questions each, "who"
    (answer: the name) and "where" (the place). Names and places stand apart from their particles,
    so each answer is whole sub-tokens. Learnable in a few hundred tiny-BERT steps."""
    rng = random.Random(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(3):
            name, place = rng.choice(NAMES), rng.choice(PLACES)
            before = " ".join(rng.choices(FILLER, k=rng.randint(0, filler_words)))
            after = " ".join(rng.choices(FILLER, k=rng.randint(0, filler_words)))
            sentence = f"{name} 씨가 {place} 에서 태어났다"
            context = f"{before} {sentence} {after}".strip()
            at = context.index(sentence)
            qas = [
                {
                    "id": f"{a}-{p}-who",
                    "question": "누가 태어났나?",
                    "answers": [{"text": name, "answer_start": at}],
                },
                {
                    "id": f"{a}-{p}-where",
                    "question": "어디에서 태어났나?",
                    "answers": [{"text": place, "answer_start": at + len(name) + 4}],
                },
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    return {"version": "toy", "data": data}


def qa_corpus_text() -> list[str]:
    """The tiny BERT's texts plus the words of ``toy_squad``: a vocabulary for the QA tests."""
    texts = corpus_text() + [f"{n} 씨가 {p} 에서 태어났다" for n in NAMES for p in PLACES]
    return texts + ["누가 태어났나?", "어디에서 태어났나?"] * 5


def corpus_text() -> list[str]:
    texts = [text for text, _ in toy_sentiment(400)]
    texts += [f"{n}은 {p}에서 태어났다" for n in NAMES for p in PLACES]
    return texts


def build_tiny_bert(out_dir: str | Path, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wordpiece.train_from_iterator(list(texts or corpus_text()) * 2, vocab_size=600, min_frequency=1)
    vocab_file = out / "vocab.txt"
    vocab_file.write_text(
        "\n".join(sorted(wordpiece.get_vocab(), key=wordpiece.get_vocab().get)) + "\n", encoding="utf-8"
    )
    # vocab.txt + tokenizer_config.json is the layout of kcbert-base itself; AutoTokenizer turns it
    # into a fast tokenizer on any transformers version.
    (out / "tokenizer_config.json").write_text(
        '{"do_lower_case": false, "model_max_length": 128, "tokenizer_class": "BertTokenizer"}',
        encoding="utf-8",
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        initializer_range=0.1,
    )  # wider than BERT's 0.02: a 2-layer model learns in few steps
    BertForMaskedLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    print(build_tiny_bert(sys.argv[1] if len(sys.argv) > 1 else "tiny-bert"))
