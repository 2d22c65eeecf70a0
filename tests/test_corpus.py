"""Bad data fails before training starts, naming the file, the line and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_tsv

import nlpbook
from nlpbook.classification import TASK, ClassificationTrainArguments
from nlpbook.corpus import DataError, read_table

GOOD_TRAIN = "text\tlabel\n좋은 영화\tpos\n나쁜 영화\tneg\n"


def run(tmp_path: Path, train: str, test: str = GOOD_TRAIN, **kw) -> DataError:
    (tmp_path / "train.tsv").write_bytes(train.encode("utf-8") if isinstance(train, str) else train)
    (tmp_path / "test.tsv").write_text(test, encoding="utf-8")
    args = ClassificationTrainArguments(
        pretrained_model_name=str(tmp_path / "no-model-needed"),  # data is checked before the model loads
        downstream_model_dir=str(tmp_path / "out"),
        train_file=str(tmp_path / "train.tsv"),
        test_file=str(tmp_path / "test.tsv"),
        **kw,
    )
    with pytest.raises(DataError) as error:
        nlpbook.train(args)
    assert not (tmp_path / "out" / "last.ckpt").exists()
    return error.value


@pytest.mark.parametrize(
    ("train", "line", "expected"),
    [
        (
            "text\tlabel\n좋은 영화\tpos\n나쁜 영화\n",
            3,
            "expected 2 tab-separated columns (text, label), found 1",
        ),
        ("text\tlabel\n좋은 영화\tpos\t추가\n", 2, "expected 2 tab-separated columns"),
        ("document\tlabel\n좋은 영화\tpos\n", 1, "header is missing column(s) ['text']"),
        ("text\tlabel\n좋은 영화\tpos\n   \tneg\n", 3, "column 'text' is empty"),
        ("text\tlabel\n좋은 영화\t\n", 2, "column 'label' is empty"),
        ("", None, "file is empty"),
        ("text\tlabel\n좋은 영화\tpos\n".encode() + "나쁜\tneg\n".encode("cp949"), 3, "not valid UTF-8"),
    ],
)
def test_bad_training_file(tmp_path, train, line, expected):
    error = run(tmp_path, train)
    assert error.path.endswith("train.tsv") and error.line == line
    assert expected in str(error)


def test_unknown_label_in_the_test_file(tmp_path):
    error = run(tmp_path, GOOD_TRAIN, "text\tlabel\n좋은 영화\tpos\n그저 그런 영화\tneutral\n")
    assert error.path.endswith("test.tsv") and error.line == 3
    assert "label 'neutral' is not one of the model's labels ['neg', 'pos']" in str(error)


def test_missing_file_is_named(tmp_path):
    (tmp_path / "test.tsv").write_text(GOOD_TRAIN, encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv: file not found"):
        nlpbook.train(
            ClassificationTrainArguments(
                downstream_model_dir=str(tmp_path / "o"),
                train_file=str(tmp_path / "train.tsv"),
                test_file=str(tmp_path / "test.tsv"),
            )
        )


def test_bom_crlf_csv_and_jsonl_simply_work(tmp_path):
    (tmp_path / "a.tsv").write_bytes('\ufefftext\tlabel\r\n좋은 "영화"\tpos\r\n'.encode())
    (tmp_path / "a.csv").write_text('text,label\n"좋은, 영화",pos\n', encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "좋은 영화", "label": "pos"}\n', encoding="utf-8")
    assert read_table(tmp_path / "a.tsv", ["text", "label"])[0].values["text"] == '좋은 "영화"'
    assert read_table(tmp_path / "a.csv", ["text", "label"])[0].values["text"] == "좋은, 영화"
    assert read_table(tmp_path / "a.jsonl", ["text", "label"])[0].line == 1


def test_nsmc_missing_offline_gives_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("Korpora.Korpora.fetch", offline)
    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(tmp_path), downstream_model_dir=str(tmp_path / "o")
    )
    with pytest.raises(DataError, match="download of 'nsmc' failed .*Offline"):
        nlpbook.train(args)


def test_real_nsmc_reads_offline(shared_data, monkeypatch):
    monkeypatch.setattr("Korpora.Korpora.fetch", lambda *a, **k: pytest.fail("went online"))
    from nlpbook.classification import TASK

    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(shared_data / "korpora"), downstream_model_dir="unused"
    )
    test = TASK.read(args, "test")
    assert len(test) == 25_000 - 2  # the two empty reviews are left out, with a warning
    assert {e.label for e in test} == {"negative", "positive"}


NSMC_HEADER = ["id", "document", "label"]


def _nsmc_folder(root: Path, rows: list[tuple[str, ...]] = (("1", "좋다", "1"), ("2", "싫다", "0"))) -> Path:
    for split in ("train", "test"):
        write_tsv(root / "nsmc" / f"ratings_{split}.txt", NSMC_HEADER, list(rows))
    return root / "nsmc"


def test_force_download_fetches_the_corpus_once_per_training_run(tmp_path, monkeypatch):
    folder = _nsmc_folder(tmp_path / "korpora")
    calls = []

    def fetch(corpus_name, root_dir, force_download=False):
        calls.append((corpus_name, force_download))
        _nsmc_folder(folder.parent, [("1", "새 리뷰", "1"), ("2", "별로", "0")])  # other reviews than before

    monkeypatch.setattr("Korpora.Korpora.fetch", fetch)
    args = ClassificationTrainArguments(
        pretrained_model_name=str(tmp_path / "no-model"),  # stops right after the data is read
        downstream_corpus_root_dir=str(tmp_path / "korpora"),
        downstream_model_dir=str(tmp_path / "out"),
        force_download=True,
    )
    with pytest.raises(nlpbook.ArgumentError, match="folder not found"):
        nlpbook.train(args)
    assert calls == [("nsmc", True)]
    assert "새 리뷰" in (folder / "ratings_test.txt").read_text("utf-8")


def test_force_download_offline_keeps_the_local_files(tmp_path, monkeypatch):
    folder = _nsmc_folder(tmp_path / "korpora")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("Korpora.Korpora.fetch", offline)
    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(tmp_path / "korpora"),
        downstream_model_dir=str(tmp_path / "out"),
        force_download=True,
    )
    with pytest.raises(
        DataError, match="force_download: the download of 'nsmc' failed .*without force_download"
    ):
        nlpbook.train(args)
    assert (folder / "ratings_train.txt").read_text("utf-8").count("\n") == 3  # not deleted


def test_a_score_column_is_refused_as_classes_with_a_hint(tmp_path):
    """KorSTS's score read as classes would be 205 labels ('0', '0.00', '3.8', ...)."""
    train = "text\tlabel\n" + "".join(
        f"문장 {i}\t{score}\n" for i, score in enumerate(["0", "0.00", "3.8", "5"])
    )
    error = run(tmp_path, train)
    assert error.line == 4 and "that is a score, not classes" in str(error)
    assert "nlpbook train sts" in str(error)


def test_integer_spellings_of_one_label_are_one_class(tmp_path, caplog):
    (tmp_path / "train.tsv").write_text("text\tlabel\n가\t1\n나\t1.0\n다\t0\n라\t0.0\n", encoding="utf-8")
    args = ClassificationTrainArguments(downstream_model_dir="x", train_file=str(tmp_path / "train.tsv"))
    with caplog.at_level("WARNING"):
        examples = TASK.read(args, "train")
    assert TASK.label_names(examples) == ["0", "1"]
    assert "2 label(s) spelled as numbers in another way were normalised" in caplog.text
    assert "'1.0' -> '1' at line 3" in caplog.text


def test_true_beside_numbers_is_ambiguous(tmp_path):
    error = run(tmp_path, "text\tlabel\n가\t1\n나\t0\n다\ttrue\n")
    assert error.line == 4 and "mixes true/false with numbers" in str(error)
