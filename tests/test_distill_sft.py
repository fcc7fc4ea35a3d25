"""Student fine-tuning (prunelens.distill.sft) on a tiny random student with smollm2's tokenizer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import write_chains

from prunelens.datasets import get_benchmark, load_examples
from prunelens.distill import sft
from prunelens.distill.evaluate import Evaluation
from prunelens.core.settings import build_config
from prunelens.distill.sft import TrainConfig, train_student, training_rows
from prunelens.core.errors import BadRecordError, PrunelensError

ROWS = [
    {"id": "a", "question": "Tom has 3 apples and buys 4 more. How many?", "reasoning": "3 + 4 = 7 apples.",
     "answer": "7", "method": "greedy", "keep": 0.5, "student_tokens": 6},
    {"id": "b", "question": "A box holds 6 pens. How many pens are in 2 boxes?",
     "reasoning": "Each box holds 6 pens, so 2 boxes hold 2 * 6 = 12 pens.", "answer": "12"},
]  # fmt: skip
FAST = dict(batch_size=2, learning_rate=3e-3, warmup_ratio=0.0, dev_limit=1, dev_max_new_tokens=2, threads=1)


def config(tmp_path: Path, student: Path, **overrides) -> TrainConfig:
    chains = write_chains(tmp_path / "chains.jsonl", ROWS)
    return build_config(TrainConfig, {"chains": chains, "student": str(student), "out": tmp_path / "out", **FAST,
                                      **overrides})  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One full fine-tuning of 6 steps on the two rows (both in every batch)."""
    folder = tmp_path_factory.mktemp("sft")
    cfg = config(folder, tiny_model_dir, steps=6)
    return cfg, train_student(cfg, log=lambda line: None)


def test_training_lowers_the_loss_and_writes_a_plain_best_model(trained):
    from transformers import AutoModelForCausalLM

    cfg, summary = trained
    assert len(summary.loss) == 6
    assert summary.loss[-1] < summary.loss[0] - 0.5
    assert [point["step"] for point in summary.dev] == [6]  # eval_every 0: after the last step only
    assert summary.best_step == 6 and summary.rows == 2 and summary.left_out == []
    saved = json.loads((cfg.out / "train.json").read_text())
    assert saved["loss"] == summary.loss and saved["settings"]["steps"] == 6
    assert (cfg.out / "dev" / "step-6" / "predictions.jsonl").exists()
    model = AutoModelForCausalLM.from_pretrained(cfg.out / "model")
    assert model.num_parameters() == summary.trainable_parameters and model.config.use_cache


def test_a_finished_training_is_returned_and_other_settings_are_refused(trained, monkeypatch):
    cfg, summary = trained

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(sft, "build_trainer", no_training)
    assert train_student(cfg, log=lambda line: None) == summary
    with pytest.raises(PrunelensError, match="other settings: steps"):
        train_student(replace(cfg, steps=7), log=lambda line: None)


@pytest.mark.parametrize("layout", ["chat", "chat+bos", "plain"])
def test_the_prompt_is_masked_and_the_eos_is_learned(tmp_path, tiny_model_dir, layout):
    from prunelens.datasets.chains import load_chains
    from prunelens.models import load_model
    from prunelens.datasets.tokenize import tokenize_chain

    rows = ROWS + [{"id": "c", "question": "What is 2 + 2?", "reasoning": "\n\n2 + 2 = 4.", "answer": "4"}]
    cfg = TrainConfig(chains=write_chains(tmp_path / "chains.jsonl", rows), student=str(tiny_model_dir),
                      out=tmp_path / "out", **{**FAST, "batch_size": 3}, steps=1)  # fmt: skip
    loaded = load_model(cfg.student)
    tokenizer = loaded.tokenizer
    tokenizer.add_bos_token = layout == "chat+bos"  # a tokenizer adding a BOS: the pruning prompt decides
    if layout == "plain":  # no chat template: "Question: …\nAnswer: ", whose trailing space a reasoning could absorb
        tokenizer.chat_template = None
    bench = get_benchmark("gsm8k")
    examples = load_chains(cfg.chains)
    training, _ = training_rows(tokenizer, bench, examples, cfg.max_length)
    batch = next(iter(sft.build_trainer(cfg, loaded, training).get_train_dataloader()))
    sequences = {}
    for ids, labels, mask in zip(*(batch[key].tolist() for key in ("input_ids", "labels", "attention_mask"))):
        length = sum(mask)
        sequences[tuple(ids[:length])] = (labels, length)
    assert len(sequences) == 3 and batch["input_ids"].shape[1] > min(n for _, n in sequences.values())  # padding
    for example in examples:
        chain = tokenize_chain(tokenizer, bench, example, None)  # the ids pruning scored
        ids = chain.prompt_ids + chain.reasoning_ids + chain.answer_ids + [tokenizer.eos_token_id]
        labels, length = sequences[tuple(ids)]
        prompt_len = len(chain.prompt_ids)
        assert labels[:prompt_len] == [-100] * prompt_len
        assert labels[prompt_len:length] == ids[prompt_len:]  # reasoning, answer and EOS
        assert labels[length:] == [-100] * (len(labels) - length)  # padding


def test_lora_trains_only_adapters_and_saves_a_merged_plain_model(tmp_path, tiny_model_dir):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = config(tmp_path, tiny_model_dir, steps=2, lora=True, lora_r=4)
    summary = train_student(cfg, log=lambda line: None)
    shape = AutoConfig.from_pretrained(tiny_model_dir)
    hidden, inner, kv = shape.hidden_size, shape.intermediate_size, shape.num_key_value_heads * shape.head_dim
    per_layer = 4 * ((hidden + hidden) + (hidden + kv) * 2 + (hidden + hidden)) + 4 * 2 * (hidden + inner) + 4 * (
        inner + hidden)  # fmt: skip  # r x (in + out) for q, k, v, o, gate, up, down
    assert summary.trainable_parameters == shape.num_hidden_layers * per_layer
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(cfg.out / "model").state_dict()
    assert merged.keys() == base.keys()  # no adapter weights left
    changed = {name for name in base if not torch.equal(base[name], merged[name])}
    assert changed and all(name.split(".")[-2] in sft.LORA_TARGETS for name in changed)


def test_the_best_dev_step_is_kept(tmp_path, tiny_model_dir, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    # (accuracy, answer log-likelihood) per step: accuracy first, log-likelihood breaks ties, an exact tie keeps
    # the earlier step
    scripted = {1: (0.0, -1.0), 2: (0.5, -5.0), 3: (0.5, -4.0), 4: (0.5, -4.0)}
    weights = {}

    def fake_evaluate(loaded, bench, examples, out_dir, *, batch_size, max_new_tokens, log):
        step = int(Path(out_dir).name.removeprefix("step-"))
        weights[step] = loaded.model.model.embed_tokens.weight.detach().clone()
        accuracy, logprob = scripted[step]
        return Evaluation(1, int(accuracy), accuracy, 0.0, 1.0, 3.0, logprob, 1.0)

    monkeypatch.setattr(sft, "evaluate", fake_evaluate)
    summary = train_student(config(tmp_path, tiny_model_dir, steps=4, eval_every=1), log=lambda line: None)
    assert [(p["step"], p["accuracy"], p["mean_answer_logprob"]) for p in summary.dev] == [
        (step, *scripted[step]) for step in range(1, 5)]  # fmt: skip
    assert summary.best_step == 3
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model").model.embed_tokens.weight
    assert torch.equal(saved, weights[3]) and not torch.equal(saved, weights[4])


def test_bad_chains_and_overlong_rows(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    bad = write_chains(tmp_path / "bad.jsonl", [ROWS[0], {"id": "c", "question": "q?", "reasoning": "r"}])
    with pytest.raises(BadRecordError, match="record 'c': missing 'answer'"):
        train_student(TrainConfig(chains=bad, out=tmp_path / "out-bad"), log=lambda line: None)
    dev_id = load_examples("gsm8k", "dev")[0].id
    leaked = write_chains(tmp_path / "leaked.jsonl", [{**ROWS[0], "id": dev_id}])
    with pytest.raises(PrunelensError, match=f"training chains are dev questions .*{dev_id}"):
        train_student(TrainConfig(chains=leaked, out=tmp_path / "out-leak"), log=lambda line: None)

    tokenizer, bench = AutoTokenizer.from_pretrained(tiny_model_dir), get_benchmark("gsm8k")
    from prunelens.datasets.chains import load_chains

    examples = load_chains(write_chains(tmp_path / "chains.jsonl", ROWS))
    lengths = [len(r["input_ids"]) for r in training_rows(tokenizer, bench, examples, 1000)[0]]
    rows, left_out = training_rows(tokenizer, bench, examples, lengths[0], log=lambda line: None)
    assert left_out == ["b"] and len(rows) == 1 and lengths[1] > lengths[0]
    with pytest.raises(PrunelensError, match="no training row fits"):
        training_rows(tokenizer, bench, examples, lengths[0] - 1, log=lambda line: None)
    no_reasoning = load_chains(write_chains(tmp_path / "nr.jsonl", [{**ROWS[0], "reasoning": " "}]))
    with pytest.raises(BadRecordError, match="record 'a': empty reasoning"):
        training_rows(tokenizer, bench, no_reasoning, 1000)


def test_a_finished_student_is_not_reused_for_changed_chains(tmp_path, tiny_model_dir):
    cfg = config(tmp_path, tiny_model_dir, steps=1)
    train_student(cfg, log=lambda line: None)
    write_chains(cfg.chains, ROWS[:1])  # the same file, other chains (e.g. a teacher run extended)
    with pytest.raises(PrunelensError, match="another version of"):
        train_student(cfg, log=lambda line: None)


def test_multiple_choice_chains_need_their_options(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from prunelens.datasets.chains import load_chains

    tokenizer, bench = AutoTokenizer.from_pretrained(tiny_model_dir), get_benchmark("mmlu_pro")
    rows = [{"id": "m", "question": "Which?", "reasoning": "It is B.", "answer": "B"}]
    with pytest.raises(BadRecordError, match="record 'm': no answer options"):
        training_rows(tokenizer, bench, load_chains(write_chains(tmp_path / "mc.jsonl", rows)), 1000)
    rows[0]["options"] = ["one", "two"]
    assert len(training_rows(tokenizer, bench, load_chains(write_chains(tmp_path / "mc.jsonl", rows)), 1000)[0]) == 1
