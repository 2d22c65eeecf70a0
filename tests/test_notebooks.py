"""Execute every notebook in notebooks/ top to bottom, as CI does, on the tiny offline BERT.

The notebooks are not edited: a cell with CI's values goes in right after the cell tagged
``parameters`` (papermill's convention), and one last cell prints what the notebook left behind
(``predictions``, the resume step counts) as JSON, which the test checks. A cell that raises fails
the test with the cell's traceback; the executed copy is saved beside the run for reading.
"""

from __future__ import annotations

import ast
import json
import random
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_tsv
from tiny_bert import FILLER, NAMES, PLACES, toy_sentiment

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the dev extras")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the dev extras")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RESULT_MARKER = "NLPBOOK-NOTEBOOK-RESULT "
CELL_TIMEOUT_S = 300
# What a notebook may import from nlpbook: the package itself and the book's task modules.
PUBLIC_MODULES = {"nlpbook", "nlpbook.classification", "nlpbook.paircls", "nlpbook.ner", "nlpbook.logs"}

RESULT_CELL = f"""
import json as _json

print({RESULT_MARKER!r} + _json.dumps(
    {{
        "predictions": predictions,
        "steps_before": steps_before,
        "steps_after": steps_after,
        "demo": globals().get("demo_response"),
    }},
    ensure_ascii=False,
    default=str,
))
"""


# --- notebook plumbing ---------------------------------------------------------------------------
def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def parameters_index(notebook: Any) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def inject(notebook: Any, overrides: dict[str, Any]) -> Any:
    """Put CI's values right after the parameters cell and a result-printing cell at the end.

    Only names the parameters cell assigns may be overridden: a renamed parameter must fail here,
    not leave the notebook running on its Colab default (kcbert-base, the full corpus)."""
    index = parameters_index(notebook)
    tree = ast.parse(notebook.cells[index].source)
    assigned = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    unknown = sorted(set(overrides) - assigned)
    assert not unknown, f"the parameters cell does not define {unknown}"
    source = "# Injected by tests/test_notebooks.py\n" + "\n".join(
        f"{name} = {value!r}" for name, value in overrides.items()
    )
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, injected)
    notebook.cells.append(nbformat.v4.new_code_cell(RESULT_CELL.strip()))
    return notebook


def kernel_manager(spec_root: Path) -> Any:
    """A kernel running this very interpreter, whatever kernels are (or are not) registered."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = spec_root / "nlpbook-test"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "nlpbook test kernel",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return KernelManager(
        kernel_name="nlpbook-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)])
    )


def execute(path: Path, overrides: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run the notebook in ``workdir``; return the JSON its result cell printed, plus how many
    pictures the notebook drew."""
    notebook = inject(nbformat.read(path, as_version=4), overrides)
    client = nbclient.NotebookClient(
        notebook,
        km=kernel_manager(workdir / "kernels"),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    executed = workdir / f"{path.stem}.executed.ipynb"
    try:
        client.execute()
    finally:
        nbformat.write(notebook, executed)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    for output in notebook.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(RESULT_MARKER):
                return {**json.loads(line[len(RESULT_MARKER) :]), "images": images}
    raise AssertionError(f"the result cell printed nothing; see {executed}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- per-notebook data and checks ----------------------------------------------------------------
def classification_case(root: Path) -> dict[str, Any]:
    for split, n, seed in (("train", 192, 1), ("test", 48, 2)):
        rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(n, seed), start=1)]
        write_tsv(root / "nsmc" / f"ratings_{split}.txt", ["id", "document", "label"], rows)
    return {"downstream_corpus_name": "nsmc"}


def paircls_case(root: Path) -> dict[str, Any]:
    """KorNLI's layout; the label follows from the hypothesis's cue word, so it can be learnt."""
    rng = random.Random(3)
    rows = []
    for text, _ in toy_sentiment(240, seed=3):
        label = rng.choice(["entailment", "neutral", "contradiction"])
        cue = {"entailment": "최고", "contradiction": "최악"}.get(label, rng.choice(FILLER))
        rows.append((text, f"{rng.choice(FILLER)} {cue} {rng.choice(FILLER)}", label))
    header = ["sentence1", "sentence2", "gold_label"]
    write_tsv(root / "kornli" / "multinli.train.ko.tsv", header, rows[:100])
    write_tsv(root / "kornli" / "snli_1.0_train.ko.tsv", header, rows[100:192])
    write_tsv(root / "kornli" / "xnli.dev.ko.tsv", header, rows[192:])
    return {"downstream_corpus_name": "kornli"}


def ner_case(root: Path) -> dict[str, Any]:
    """KLUE-NER's layout: one character and its BIO tag a line, ``##`` lines, blank between."""
    rng = random.Random(4)
    folder = root / "klue-ner"
    folder.mkdir(parents=True)
    for name, count in (("klue-ner-v1.1_train.tsv", 160), ("klue-ner-v1.1_dev.tsv", 40)):
        blocks = []
        for index in range(count):
            person, place = rng.choice(NAMES), rng.choice(PLACES)
            parts = [(person, "PS"), ("은 ", None), (place, "LC"), (f"에서 {rng.choice(FILLER)}", None)]
            annotated = "".join(f"<{text}:{kind}>" if kind else text for text, kind in parts)
            lines = [f"## toy_{index}\t{annotated}"]
            for text, kind in parts:
                for position, char in enumerate(text):
                    tag = f"{'B' if position == 0 else 'I'}-{kind}" if kind else "O"
                    lines.append(f"{char}\t{tag}")
            blocks.append("\n".join(lines))
        (folder / name).write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return {"downstream_corpus_name": "klue-ner"}


def check_labelled(predictions: list[dict[str, Any]]) -> None:
    for prediction in predictions:
        probabilities = prediction["probabilities"]
        assert prediction["label"] in probabilities
        assert abs(sum(probabilities.values()) - 1) < 1e-4
        assert probabilities[prediction["label"]] == max(probabilities.values())


def check_entities(predictions: list[dict[str, Any]]) -> None:
    for prediction in predictions:
        assert isinstance(prediction["entities"], list)
        for entity in prediction["entities"]:
            assert prediction["text"][entity["start"] : entity["end"]] == entity["word"]
            assert entity["type"]
    assert any(prediction["entities"] for prediction in predictions), "no entity found in any sentence"


CASES: dict[str, tuple[Callable[[Path], dict[str, Any]], Callable[[list[dict[str, Any]]], None]]] = {
    "classification": (classification_case, check_labelled),
    "paircls": (paircls_case, check_labelled),
    "ner": (ner_case, check_entities),
}


def test_every_notebook_has_a_case() -> None:
    names = [path.stem for path in notebook_paths()]
    assert "classification" in names
    assert sorted(CASES) == sorted(names), "add a case to CASES for each notebook (and no others)"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_is_committed_clean(path: Path) -> None:
    """Outputs cleared, one parameters cell, and only the public API imported."""
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = nbformat.read(path, as_version=4)
    parameters_index(notebook)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear outputs"
        source = TransformerManager().transform_cell(cell.source)  # %pip, !ls -> plain Python
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nlpbook"):
                assert node.module in PUBLIC_MODULES, f"{path.name} imports internal {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("nlpbook"):
                        assert alias.name in PUBLIC_MODULES, f"{path.name} imports internal {alias.name}"


def test_injection_goes_after_parameters_and_refuses_unknown_names() -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# title"),
            nbformat.v4.new_code_cell("epochs = 3", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(epochs)"),
        ]
    )
    injected = inject(notebook, {"epochs": 1})
    assert injected.cells[2].source.endswith("epochs = 1")
    assert injected.cells[3].source == "print(epochs)"
    with pytest.raises(AssertionError, match="does not define"):
        inject(nbformat.v4.new_notebook(cells=[notebook.cells[1]]), {"epoch": 1})


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_data, check_predictions = CASES[path.stem]
    corpus_root = tmp_path / "Korpora"
    overrides = {
        "IN_COLAB": False,
        "INSTALL": False,
        "USE_DRIVE": False,
        "RUN_DEMO": True,
        "pretrained_model_name": str(tiny_bert),
        "downstream_corpus_root_dir": str(corpus_root),
        "downstream_model_dir": str(tmp_path / "run"),
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "max_seq_length": 64,
        "max_train_samples": None,
        "max_eval_samples": None,
        "accelerator": "cpu",
        "tpu_cores": 0,
        "precision": None,
        "save_every_n_steps": 5,
        "extra_epochs": 1,
        "demo_port": free_port(),
        **make_data(corpus_root),
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits this: nothing may go online
    result = execute(path, overrides, tmp_path)

    predictions = result["predictions"]
    assert isinstance(predictions, list) and predictions, "the predict cell left no predictions"
    check_predictions(predictions)
    assert result["demo"], "the web demo answered nothing"
    check_predictions([result["demo"]])
    assert result["steps_after"] > result["steps_before"], "resume did not continue training"
    assert result["images"] >= 1, "the evaluate section drew no picture"
