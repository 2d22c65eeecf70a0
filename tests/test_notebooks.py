"""Execute every notebook in notebooks/ top to bottom, as CI does, on the tiny offline BERT.

The notebooks are not edited: a cell with CI's values goes in right after the cell tagged
``parameters`` (papermill's convention), and one last cell prints what the notebook left behind
(``predictions``, the resume step counts) as JSON, which the test checks. A cell that raises fails
the test with the cell's traceback; the executed copy is saved beside the run for reading.
"""

from __future__ import annotations

import ast
import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from notebook_cases import CASES, SHOWN
from test_first_hour import NOISE

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the dev extras")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the dev extras")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
README = NOTEBOOKS.parent / "README.md"
OWNER_PLACEHOLDER = "YOUR_GITHUB_OWNER"
RESULT_MARKER = "NLPBOOK-NOTEBOOK-RESULT "
CELL_TIMEOUT_S = 300
# What a notebook may import from nlpbook: the package itself and the book's task modules.
PUBLIC_MODULES = {
    "nlpbook",
    "nlpbook.classification",
    "nlpbook.paircls",
    "nlpbook.ner",
    "nlpbook.qa",
    "nlpbook.sts",
    "nlpbook.logs",
}

RESULT_CELL = f"""
import json as _json

print({RESULT_MARKER!r} + _json.dumps(
    {{
        "predictions": predictions,
        "steps_before": steps_before,
        "steps_after": steps_after,
        "demo": globals().get("demo_response"),
        "evaluation_kept": (__import__("pathlib").Path(export_dir) / "evaluation.json").is_file(),
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
    manager = kernel_manager(workdir / "kernels")
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    executed = workdir / f"{path.stem}.executed.ipynb"
    try:
        client.execute()
    finally:
        nbformat.write(notebook, executed)
        # A kernel manager passed in is not the client's to stop: without this the kernel (and the
        # web demo thread in it) outlived the test, a process per notebook still using the CPU.
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    streams = "".join(output.get("text", "") for output in outputs if output.get("output_type") == "stream")
    for output in notebook.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(RESULT_MARKER):
                return {**json.loads(line[len(RESULT_MARKER) :]), "images": images, "streams": streams}
    raise AssertionError(f"the result cell printed nothing; see {executed}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def install_cell(notebook: Any) -> Any:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    cells = [cell for cell in code if re.search(r"^\s*%pip install", cell.source, re.MULTILINE)]
    assert len(cells) == 1, "expected one install cell"
    return cells[0]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_install_cell_uses_the_github_owner_parameter(path: Path) -> None:
    """The owner is one parameter: the install cell reads it, and stops in one line while it is
    still the placeholder (no one can know where this repository will be published)."""
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = nbformat.read(path, as_version=4)
    parameters = notebook.cells[parameters_index(notebook)].source
    assert f'GITHUB_OWNER = "{OWNER_PLACEHOLDER}"' in parameters
    cell = install_cell(notebook)
    assert "git+https://github.com/{GITHUB_OWNER}/nlpbook" in cell.source
    assert "github.com/ORG" not in cell.source
    code = TransformerManager().transform_cell(cell.source)
    magics: list[str] = []
    shell = type("Shell", (), {"run_line_magic": lambda self, name, line: magics.append(f"{name} {line}")})()
    namespace: dict[str, Any] = {
        "INSTALL": True,
        "GITHUB_OWNER": OWNER_PLACEHOLDER,
        "get_ipython": lambda: shell,
    }
    with pytest.raises(Exception, match="set GITHUB_OWNER in the Parameters cell") as stopped:
        exec(code, namespace)
    assert stopped.value._render_traceback_() == [f"NotSetUp: {stopped.value}"]  # one line, no traceback
    assert magics == []
    exec(code, {**namespace, "GITHUB_OWNER": "someone"})
    assert magics == [
        'pip install --quiet "nlpbook[notebook] @ git+https://github.com/{GITHUB_OWNER}/nlpbook"'
    ]


def test_every_link_names_one_owner() -> None:
    """Markdown cannot read a variable: the Colab badges and install lines in the README, the docs
    and the notebooks spell the owner out, all as the notebooks' GITHUB_OWNER placeholder, so
    publishing means replacing one string everywhere."""
    texts = [README.read_text(encoding="utf-8")]
    texts += [path.read_text(encoding="utf-8") for path in sorted((README.parent / "docs").glob("*.md"))]
    texts += [
        "".join(cell.source for cell in nbformat.read(path, as_version=4).cells) for path in notebook_paths()
    ]
    owners = {owner for text in texts for owner in re.findall(r"github(?:\.com)?/([\w{}-]+)/nlpbook", text)}
    assert owners == {OWNER_PLACEHOLDER, "{GITHUB_OWNER}"}
    badges = re.findall(
        r"colab\.research\.google\.com/github/[^/]+/nlpbook/blob/main/notebooks/(\w+)\.ipynb", texts[0]
    )
    assert sorted(badges) == sorted(path.stem for path in notebook_paths())  # README links every notebook


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
    assert result["evaluation_kept"], "the resume cell left the export without evaluation.json"
    assert result["images"] >= 1, "the evaluate section drew no picture"
    for shown in [*SHOWN.get(path.stem, []), "nlpbook: trained 2 epoch(s)", "nlpbook: trained 3 epoch(s)"]:
        assert shown in result["streams"], f"{shown!r} not in the notebook's output"
    for noise in NOISE:
        assert noise not in result["streams"], f"{noise!r} in the notebook's output"
