"""nlpbook: fine-tune Korean BERT models (kcbert-base) on NSMC, KorNLI and NER."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="nlpbook",
    version="0.1.0",
    description="Fine-tune pretrained Korean BERT models on classification, NLI, NER and sentence similarity",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nlpbook", "nlpbook.*"]),
    package_data={"nlpbook": ["web/static/*"]},
    install_requires=[
        "torch>=2.2",
        "pytorch-lightning>=2.2,<3",
        "transformers>=4.46",
        "tokenizers>=0.19",
        "safetensors>=0.4",
        "Korpora>=0.2",
        "scikit-learn>=1.3",
        "scipy>=1.10",  # KorSTS's Pearson/Spearman (already a scikit-learn dependency; used directly)
        "seqeval>=1.2.2",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "tqdm>=4.60",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.6",
            "httpx>=0.27",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.29",
            "matplotlib>=3.8",
            "playwright>=1.44",
            "accelerate>=1.1",  # Hugging Face Trainer needs it (the benchmarks that compare with it)
        ],
        "notebook": ["matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["nlpbook=nlpbook.cli:main"]},
)
