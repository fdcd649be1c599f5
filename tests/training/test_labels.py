"""Labels, chat template and padding-free batching on real examples (no training: seconds)."""

from __future__ import annotations

import random

import pytest
import torch

from tests.training.sft_data import example
from training import data as train_data
from training.config import DEFAULT_CHAT_TEMPLATE

TEMPLATE = DEFAULT_CHAT_TEMPLATE.read_text()


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def conversations(n: int, stratum: str = "short_cot") -> list[list[dict]]:
    rng = random.Random(1)
    return [example(i, stratum, rng)["messages"] for i in range(n)]


def test_labels_mask_every_prompt_token_and_train_the_assistant_turn(tokenizer):
    messages = conversations(1)[0]
    encoded = train_data.encode([messages], tokenizer, TEMPLATE)
    ids, labels = encoded["input_ids"][0], encoded["labels"][0]
    assert len(ids) == len(labels)
    trained = [i for i, lab in enumerate(labels) if lab != -100]
    # The trained tokens are one contiguous span at the end: the assistant turn; all before it is -100.
    assert trained == list(range(trained[0], trained[-1] + 1))
    prompt_text = tokenizer.decode(ids[: trained[0]])
    assert prompt_text == f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"
    assert all(lab == -100 for lab in labels[: trained[0]])
    # Labels equal the ids where set, and they decode to the whole assistant turn, <think> and stop token kept.
    assert all(labels[i] == ids[i] for i in trained)
    assert tokenizer.decode([labels[i] for i in trained]) == messages[1]["content"] + "<|im_end|>"
    assert messages[1]["content"].startswith("<think>\n")
    # Only the trailing newline after <|im_end|> is outside the turn.
    assert tokenizer.decode(ids[trained[-1] + 1 :]) == "\n"


def test_template_keeps_think_of_trained_turn_only(tokenizer):
    first, second = conversations(2)
    history = [first[0], first[1], second[0], second[1]]
    text = tokenizer.apply_chat_template(history, chat_template=TEMPLATE, tokenize=False)
    # History turn: reasoning dropped (as Qwen3 does); trained turn: reasoning kept verbatim.
    assert text.count("<think>") == 1
    assert second[1]["content"] in text
    assert first[1]["content"].split("</think>\n\n")[1] in text
    encoded = train_data.encode([history], tokenizer, TEMPLATE)
    trained = [t for t in encoded["labels"][0] if t != -100]
    assert tokenizer.decode(trained) == second[1]["content"] + "<|im_end|>"
    # The generation prompt is exactly the text before the trained turn.
    prompt = tokenizer.apply_chat_template(history[:3], chat_template=TEMPLATE, tokenize=False,
                                           add_generation_prompt=True)
    assert text.startswith(prompt) and text[len(prompt):].startswith("<think>\n")


def test_padded_and_padding_free_collation(tokenizer):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    encoded = train_data.encode(conversations(3, "long_cot"), tokenizer, TEMPLATE)
    examples = [{"input_ids": i, "labels": lab} for i, lab in zip(encoded["input_ids"], encoded["labels"], strict=True)]
    lengths = [len(e["input_ids"]) for e in examples]
    assert len(set(lengths)) > 1  # the test needs unequal lengths to have padding at all

    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    assert padded["input_ids"].shape == (3, max(lengths))
    for row, length in enumerate(lengths):
        # Every padding position has label -100; real positions keep the example's labels.
        assert (padded["labels"][row, length:] == -100).all()
        assert (padded["attention_mask"][row, length:] == 0).all()
        assert padded["labels"][row, :length].tolist() == examples[row]["labels"]

    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(examples)
    assert flat["input_ids"].shape == (1, sum(lengths))  # no padding at all
    assert "attention_mask" not in flat
    starts = [0, lengths[0], lengths[0] + lengths[1]]
    positions = flat["position_ids"][0].tolist()
    assert [positions[s] for s in starts] == [0, 0, 0]
    assert positions[starts[1] - 1] == lengths[0] - 1
    # Labels survive flattening; the first token of each sequence is masked (it is a prompt token anyway).
    assert flat["labels"][0].tolist() == [lab for e in examples for lab in e["labels"]]


def test_padding_free_batch_has_no_cross_sample_attention(tokenizer, tiny_qwen3_dir):
    """Measured: the logits of a flattened batch equal those of each sequence run alone."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    encoded = train_data.encode(conversations(3), tokenizer, TEMPLATE)
    examples = [{"input_ids": i, "labels": lab} for i, lab in zip(encoded["input_ids"], encoded["labels"], strict=True)]
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(examples)
    with torch.no_grad():
        # The batch as SFTTrainer.compute_loss feeds it (it forces use_cache=False; with a cache,
        # transformers skips the packed-sequence mask).
        inputs = {k: v for k, v in flat.items() if k != "labels"}
        packed = model(**inputs, use_cache=False).logits[0]
        offset = 0
        for ids in encoded["input_ids"]:
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(packed[offset : offset + len(ids)], alone, atol=1e-4, rtol=1e-4)
            offset += len(ids)
        # And the check can fail: without restarting positions the later sequences see the earlier ones.
        leaky = model(input_ids=flat["input_ids"], use_cache=False).logits[0]
        second = slice(len(encoded["input_ids"][0]), len(encoded["input_ids"][0]) + len(encoded["input_ids"][1]))
        assert not torch.allclose(leaky[second], packed[second], atol=1e-4)


def test_tokenize_truncates_or_drops_overlong_rows(tokenizer):
    import datasets

    rows = conversations(6, "long_cot")
    dataset = datasets.Dataset.from_dict({"messages": rows})
    full = train_data.encode(rows, tokenizer, TEMPLATE)
    limit = sorted(len(i) for i in full["input_ids"])[2]  # half the rows are longer
    truncated, stats = train_data.tokenize(dataset, tokenizer, TEMPLATE, limit, "truncate")
    assert len(truncated) == 6 and max(len(i) for i in truncated["input_ids"]) == limit
    assert stats["overlong_rows"] == sum(len(i) > limit for i in full["input_ids"])
    dropped, stats = train_data.tokenize(dataset, tokenizer, TEMPLATE, limit, "drop")
    assert len(dropped) == 6 - stats["overlong_rows"] and stats["dropped_rows"] == stats["overlong_rows"]
    # A limit inside the prompt leaves nothing to train on: such rows are dropped, not trained as all -100.
    prompt_only, stats = train_data.tokenize(dataset, tokenizer, TEMPLATE, 5, "truncate")
    assert len(prompt_only) == 0 and stats["dropped_rows"] == 6
