"""The pretrained model a run starts from: a hub name or a local folder, checked before it loads.

What a user meets here in the first hour, and what they read instead of a traceback:

- a hub name without a network: ``HF_HUB_OFFLINE`` set, or no connection. huggingface_hub retries
  an unreachable host for ~24 s (five retries, each warning printed twice; measured with
  huggingface_hub 2.4) before transformers raises ``OSError``; a TCP probe of the hub's host (3 s at
  most) finds that out first, only the local cache is tried, and the error names
  ``pretrained_model_name`` with a local folder and the README's offline section;
- a folder with a config and a tokenizer but no weights (the shared kcbert-base folder): the error
  says so and names ``random_init``;
- transformers' load report, which lists the new head as MISSING on every fine-tuning run, is
  replaced by a warning only when weights of the encoder itself are missing.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nlpbook.console import quiet_transformers
from nlpbook.errors import ArgumentError, spell
from nlpbook.first_token import read_first_token_only
from nlpbook.tasks import Task

__all__ = ["load_pretrained", "check_model_folder", "hub_reachable", "TOKENIZER_FILES", "WEIGHT_FILES"]

logger = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
OFFLINE_SECTION = "README: 'Offline: a local model folder and a local corpus'"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
PROBE_TIMEOUT_S = 3.0


def load_pretrained(args: Any, task: Task, label_names: list[str]) -> tuple[Any, Any]:
    """Tokenizer and model from a hub name or a local folder: the path a user's kcbert-base takes."""
    from transformers import AutoConfig, AutoTokenizer

    name = args.pretrained_model_name
    local = check_model_folder(name, args.random_init)
    source: dict[str, Any] = {}
    if not local and not _offline_by_setting() and not hub_reachable():
        source["local_files_only"] = True  # the hub's cache may still hold it; no retries
    try:
        config = AutoConfig.from_pretrained(name, **source)
    except OSError as error:
        raise ArgumentError(_hub_message(name, error, bool(source))) from None
    _check_encoder(name, config)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and args.max_seq_length > limit:
        raise ArgumentError(
            f"{spell('max_seq_length', args.max_seq_length)} is longer than {name}'s "
            f"max_position_embeddings={limit}"
        )
    tokenizer = AutoTokenizer.from_pretrained(name, **source)
    if not getattr(tokenizer, "is_fast", False):
        raise ArgumentError(
            f"{name}: nlpbook needs a fast (Rust) tokenizer; tokenizer.json or vocab.txt is missing"
        )
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size and len(tokenizer) > vocab_size:
        raise ArgumentError(
            f"{name}: the tokenizer has {len(tokenizer)} tokens but the model's embeddings hold only "
            f"{vocab_size}; the tokenizer files belong to another model"
        )
    config.update(task.head_config(label_names))
    model_class = task.head.model_class()
    if args.random_init:
        return tokenizer, _for_training(model_class.from_config(config))
    with quiet_transformers(downloads=not local):
        model, info = model_class.from_pretrained(name, config=config, output_loading_info=True, **source)
    _warn_missing_encoder_weights(name, model, info.get("missing_keys", ()))
    return tokenizer, _for_training(model)


def computing_less(model: Any) -> Any:
    """The model computing only what its head reads, for training and prediction alike: the
    [CLS]-only last layer of a sentence classifier (``first_token``) and encoder layers that skip
    padded rows (``skip_padding``). Same function and parameters; other models are unchanged."""
    from nlpbook.skip_padding import skip_padding

    return skip_padding(read_first_token_only(model))


def _for_training(model: Any) -> Any:
    """``computing_less(model)`` with dropout masks drawn 16 bits at a time on the CPU (``cpu_dropout``)."""
    from nlpbook.cpu_dropout import use_cpu_dropout

    return use_cpu_dropout(computing_less(model))


def check_model_folder(name: str, random_init: bool = False) -> bool:
    """True for a usable local folder, False for a hub name; ``ArgumentError`` for a folder that
    cannot work, before transformers reads it.

    Without its vocabulary, transformers quietly builds an empty tokenizer that turns every word
    into [UNK]: training would run and learn nothing.
    """
    folder = Path(name).expanduser()
    what = f"{spell('pretrained_model_name')} {name}"
    if not folder.is_dir():
        if folder.exists():
            raise ArgumentError(f"{what} is a file; expected a folder (or a hub name)")
        if name.startswith(("/", ".", "~")) or name.count("/") > 1:
            raise ArgumentError(f"{what}: folder not found")
        return False  # a hub name such as beomi/kcbert-base
    if not (folder / "config.json").is_file():
        raise ArgumentError(f"{what}: config.json not found in the folder")
    if not any((folder / file).is_file() for file in TOKENIZER_FILES):
        raise ArgumentError(
            f"{what}: no tokenizer in the folder (expected one of "
            f"{', '.join(TOKENIZER_FILES)}); save the tokenizer there with tokenizer.save_pretrained"
        )
    if not random_init and not any((folder / file).is_file() for file in WEIGHT_FILES):
        raise ArgumentError(
            f"{what} has a config and a tokenizer but no weights ({WEIGHT_FILES[0]} or "
            f"{WEIGHT_FILES[2]}): put the model's weights there, or pass {spell('random_init', True)} "
            "to start from random weights (checks the pipeline; accuracy will be poor)"
        )
    return True


def _offline_by_setting() -> bool:
    """HF_HUB_OFFLINE: transformers already fails at once, without retries."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Can a TCP connection reach the hub's host? One connection, about 0.1 s when online.

    Behind a proxy a direct connection proves nothing, so the probe is skipped there and the
    libraries' own retries apply.
    """
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError as error:
        logger.debug("the hub at %s is not reachable: %s", constants.ENDPOINT, error)
        return False
    return True


def _hub_message(name: str, error: OSError, unreachable: bool) -> str:
    if unreachable or _offline_by_setting() or "couldn't connect" in str(error):
        why = "HF_HUB_OFFLINE is set" if _offline_by_setting() else "no connection to the hub"
        return (
            f"could not download {name} from the Hugging Face hub ({why}): to train offline, pass "
            f"{spell('pretrained_model_name', 'path/to/folder')} with a folder that holds the model "
            f"({OFFLINE_SECTION})"
        )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{spell('pretrained_model_name')} {name}: {first_line}"


def _check_encoder(name: str, config: Any) -> None:
    """Every task head here sits on a bidirectional encoder (BERT, RoBERTa, ELECTRA, ...).

    GPT-style decoders and T5/BART encoder-decoders have classification heads in transformers,
    but they need other inputs (no [CLS], no token_type_ids, a pad token GPT-2 lacks) and would
    fail mid-training or train badly; the models that have a masked-LM head are the encoders.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    kind = getattr(config, "model_type", "unknown")
    if getattr(config, "is_encoder_decoder", False) or kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ArgumentError(
            f"{spell('pretrained_model_name')} {name} is a {kind!r} model, not a BERT-style encoder; "
            "nlpbook fine-tunes encoders such as bert (beomi/kcbert-base), roberta, electra or xlm-roberta"
        )


def _warn_missing_encoder_weights(name: str, model: Any, missing: Any) -> None:
    """The new head (and BERT's pooler, which a masked-LM checkpoint does not hold) starts random
    by design; any other missing weight means the checkpoint is not the encoder it claims to be."""
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    encoder = [key for key in missing if key.startswith(prefix) and ".pooler." not in key]
    if encoder:
        logger.warning(
            "%s: %d weight(s) of the encoder are not in the checkpoint and start from random values "
            "(%s%s): is it the model you meant?",
            name,
            len(encoder),
            ", ".join(encoder[:3]),
            ", ..." if len(encoder) > 3 else "",
        )
