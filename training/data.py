"""Training data: the exported HF dataset, read memory-mapped through `datasets`, tokenized with labels.

The dataset never becomes Python objects as a whole: `load_dataset` converts the Parquet shards to a
memory-mapped Arrow cache, and tokenization runs as a batched ``Dataset.map`` whose output is again
an Arrow cache file.

Labels come from the chat template's ``{% generation %}`` markers (assistant-only loss): a token is
trained (label = its id) only if the template rendered it inside the trained assistant turn; every
prompt token gets -100, and the collators pad labels with -100.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from warehouse import hub, lake
from warehouse.errors import UserError

IGNORE_INDEX = -100
ROW_KEY = ("problem_id", "run_id", "sample_idx")  # unique per exported row


def export_path(configured: str | None) -> Path:
    from training.config import resolve_path

    return resolve_path(configured) if configured else hub.default_export_dir()


def data_files(export_dir: Path, config_name: str) -> list[Path]:
    files = hub.config_files(export_dir, config_name)
    if not files:
        known = sorted(p.name for p in (export_dir / "data").glob("*")) if (export_dir / "data").exists() else []
        hint = f" (configs here: {', '.join(known)})" if known else "; run `reasonlite export` first"
        raise UserError(f"{export_dir}: data.config {config_name!r}: no shards under data/{config_name}/{hint}")
    return files


def load_conversations(export_dir: Path, config_name: str, max_rows: int | None = None):
    """The config's train split as a memory-mapped `datasets.Dataset` with its `messages` column."""
    import datasets

    data_files(export_dir, config_name)  # a clear error before datasets' own
    cache = lake.scratch_dir() / "hf_datasets"
    dataset = datasets.load_dataset(str(export_dir), config_name, split="train", cache_dir=str(cache))
    for column in ("messages", *ROW_KEY):
        if column not in dataset.column_names:
            raise UserError(f"{export_dir}: config {config_name}: no `{column}` column")
    # The shards' row order depends on how curate segmented the strata (an incremental build appends
    # segments): the key order makes the trainer's seeded shuffle, and max_rows, depend on the rows alone.
    # The texts are not rewritten: rows already in key order (a full curate) stay a plain slice; others
    # get an indices mapping, 8 bytes a row (100K rows: sort 0.07 s; a map over the mapping reads rows
    # by take(), ~10 us a row more than in file order, small beside tokenizing).
    with warnings.catch_warnings():  # datasets' own call into pyarrow's sort, not something to act on
        warnings.filterwarnings("ignore", "Specifying null_placement in SortOptions", FutureWarning)
        dataset = dataset.sort(list(ROW_KEY))
    if max_rows is not None and max_rows < len(dataset):
        dataset = dataset.select(range(max_rows))
    return dataset.select_columns(["messages"])


def encode(messages_batch: list[list[dict]], tokenizer, chat_template: str) -> dict[str, list]:
    """Token ids and labels (-100 outside the trained assistant turn) for a batch of conversations."""
    encoded = tokenizer.apply_chat_template(
        messages_batch,
        chat_template=chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    labels = [
        [tok if keep else IGNORE_INDEX for tok, keep in zip(ids, mask, strict=True)]
        for ids, mask in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True)
    ]
    return {"input_ids": [list(ids) for ids in encoded["input_ids"]], "labels": labels}


def _encode_batch(batch, tokenizer, chat_template, max_length):
    out = encode(batch["messages"], tokenizer, chat_template)
    out["length"] = [len(ids) for ids in out["input_ids"]]
    if max_length is not None:
        out["input_ids"] = [ids[:max_length] for ids in out["input_ids"]]
        out["labels"] = [lab[:max_length] for lab in out["labels"]]
    out["trained_tokens"] = [sum(1 for t in lab if t != IGNORE_INDEX) for lab in out["labels"]]
    return out


def tokenize(dataset, tokenizer, chat_template: str, max_length: int | None, overlong: str, num_proc=None):
    """Tokenize, truncate (or drop) to ``max_length``; returns (dataset, stats).

    Rows left with no trained token (a prompt alone filling ``max_length``) are dropped: they add no loss.
    """
    tokenized = dataset.map(
        _encode_batch,
        batched=True,
        batch_size=256,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, "chat_template": chat_template, "max_length": max_length},
        desc="Tokenizing with the chat template",
    )
    # Stats from the Arrow columns (no Python lists): the map output has no indices mapping yet.
    lengths = tokenized.data.column("length").to_numpy()
    trained = tokenized.data.column("trained_tokens").to_numpy()
    kept_lengths = np.minimum(lengths, max_length) if max_length else lengths
    keep = trained > 0
    if overlong == "drop" and max_length:
        keep &= lengths <= max_length
    stats: dict[str, Any] = {
        "rows": int(len(lengths)),
        "overlong_policy": overlong,
        "overlong_rows": int((lengths > max_length).sum()) if max_length else 0,
        "max_tokens": int(lengths.max()) if len(lengths) else 0,
        "dropped_rows": int((~keep).sum()),
        "train_rows": int(keep.sum()),
        "train_tokens": int(kept_lengths[keep].sum()),
        "trained_tokens": int(trained[keep].sum()),
    }
    if not keep.all():
        tokenized = tokenized.select(np.flatnonzero(keep))
    return tokenized.remove_columns(["length", "trained_tokens"]), stats
