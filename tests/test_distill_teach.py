"""`prunelens distill teach`: rejection sampling with a scripted generator, gold chains, resume and refusal; the HF
generator on a tiny random model (seeded samples, the answer-line stop rule and cut); the vLLM generator's GPU-free
parts."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from completions_stub import CompletionsServer
from conftest import DATA_DIR, interrupt_on_call, write_chains
from typer.testing import CliRunner

from prunelens.datasets import get_benchmark, load_examples
from prunelens.distill.generate import (
    Generation,
    HFGenerator,
    Sampling,
    _AnswerLineStop,
    cut_completion,
)
from prunelens.core.settings import build_config
from prunelens.distill.teach import SamplingOptions, TeachConfig, run_teach
from prunelens.distill.vllm_generate import VLLMGenerator, prompt_seed
from prunelens.core.errors import PrunelensError, SettingsError
from prunelens.core.jsonl import read_finished
from prunelens.core.registry import GENERATORS

SCRIPT = {  # question -> the completions the scripted teacher returns (gold answers: q1 5, q2 4, q3 7)
    "Q1?": ["wrong\n#### 3", "step a\n#### 5", "#### 5", "step b\n#### 5", "step c\n#### 5.0"],
    "Q2?": ["nope\n#### 1", "still no\n#### 2"],
    "Q3?": ["no marker but 7", "r\n#### 7"],
    "Q4?": ["s4\n#### 9"],
}
CORRECT = {"q1": ["step a", "step b", "step c"], "q3": ["r"], "q4": ["s4"]}


class Scripted:
    """A teacher with HFGenerator's interface that answers each question with its SCRIPT completions."""

    tokenizer = None  # prompts in the plain layout
    calls: list[list[str]] = []

    @classmethod
    def load(cls, model, *, device, dtype, batch_size):
        return cls()

    def generate(self, bench, prompts, sampling):
        Scripted.calls.append(prompts)
        questions = [next(q for q in SCRIPT if q in prompt) for prompt in prompts]
        return [[Generation(text, len(text), "#### " in text) for text in SCRIPT[q]] for q in questions]


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(GENERATORS, "load", lambda name: Scripted)
    Scripted.calls = []
    return Scripted


@pytest.fixture
def chains(tmp_path):
    rows = [{"id": "q1", "question": "Q1?", "answer": "5", "reasoning": "gold one"},
            {"id": "q2", "question": "Q2?", "answer": "4", "reasoning": "gold two"},
            {"id": "q3", "question": "Q3?", "answer": "7"},
            {"id": "q4", "question": "Q4?", "answer": "9", "reasoning": "gold four"}]  # fmt: skip
    return write_chains(tmp_path / "questions.jsonl", rows)


def config(chains, out, **settings) -> TeachConfig:
    defaults = {"chains": chains, "dataset": "gsm8k", "limit": None, "out": out, "samples": 4, "batch_size": 8}
    return build_config(TeachConfig, {**defaults, **settings})  # sampling settings flat, as in a TOML table


def test_keeps_one_seeded_correct_chain_and_rejects_the_rest(scripted, chains, tmp_path):
    summary = run_teach(config(chains, tmp_path / "out", seed=3), log=lambda line: None)
    assert (summary.kept, summary.rejected, summary.new) == (3, 1, 4)
    rows = read_finished(tmp_path / "out" / "chains.jsonl")
    assert [r["id"] for r in rows] == ["q1", "q3", "q4"]
    for row in rows:
        assert row["reasoning"] == random.Random(f"3:{row['id']}").choice(CORRECT[row["id"]])
    assert rows[0] == {"id": "q1", "question": "Q1?", "reasoning": rows[0]["reasoning"], "answer": "5", "teacher":
                       "smollm2-135m", "samples": 5, "correct_samples": 3, "finished_samples": 5,
                       "generated_tokens": sum(map(len, SCRIPT["Q1?"])),
                       "sources": {"example": rows[0]["sources"]["example"]}}  # fmt: skip
    assert rows[1]["correct_samples"] == 1  # "no marker but 7" is graded right but has no reasoning before "####"
    (rejected,) = read_finished(tmp_path / "out" / "rejected.jsonl")
    assert rejected == {"id": "q2", "samples": 2, "correct_samples": 0, "finished_samples": 2,
                        "generated_tokens": sum(map(len, SCRIPT["Q2?"])), "reason": "no correct sample among 2",
                        "sources": {"example": rejected["sources"]["example"]}}  # fmt: skip
    assert rows[0]["sources"]["example"] != rejected["sources"]["example"]  # each question's own content
    assert len(scripted.calls) == 2 and len(scripted.calls[0]) == 2  # batch_size 8 // 4 samples: 2 questions a call
    seeds = {seed: [r["reasoning"] for r in read_finished(run_teach(config(chains, tmp_path / f"s{seed}", seed=seed),
                                                                      log=lambda line: None).out_dir / "chains.jsonl")]
             for seed in range(8)}  # fmt: skip
    assert seeds[3] == [r["reasoning"] for r in rows]  # the same choice on a second run
    assert len({tuple(v) for v in seeds.values()}) > 1  # and the seed does choose


def test_killed_run_resumes_without_redoing_questions(scripted, chains, tmp_path, monkeypatch):
    whole = run_teach(config(chains, tmp_path / "whole", batch_size=4), log=lambda line: None)  # one question a call
    scripted.calls = []
    interrupt_on_call(monkeypatch, Scripted, "generate", call=3)
    with pytest.raises(KeyboardInterrupt):
        run_teach(config(chains, tmp_path / "out", batch_size=4), log=lambda line: None)
    assert [r["id"] for r in read_finished(tmp_path / "out" / "chains.jsonl")] == ["q1"]
    assert [r["id"] for r in read_finished(tmp_path / "out" / "rejected.jsonl")] == ["q2"]
    monkeypatch.undo()
    monkeypatch.setattr(GENERATORS, "load", lambda name: Scripted)
    scripted.calls = []
    resumed = run_teach(config(chains, tmp_path / "out", batch_size=4), log=lambda line: None)
    assert [len(prompts) for prompts in scripted.calls] == [1, 1]
    assert all("Q3?" in p or "Q4?" in p for prompts in scripted.calls for p in prompts)
    assert (resumed.kept, resumed.rejected, resumed.new) == (3, 1, 2)
    assert read_finished(tmp_path / "out" / "chains.jsonl") == read_finished(whole.out_dir / "chains.jsonl")
    scripted.calls = []
    assert run_teach(config(chains, tmp_path / "out", batch_size=4), log=lambda line: None).new == 0
    assert scripted.calls == []


def test_gold_teacher_writes_the_datasets_chains(tmp_path, chains, monkeypatch):
    monkeypatch.setattr(GENERATORS, "load", lambda name: pytest.fail("--teacher gold loads no model"))
    summary = run_teach(TeachConfig(teacher="gold", data_dir=DATA_DIR, limit=3, out=tmp_path / "gsm8k"),
                        log=lambda line: None)  # fmt: skip
    gold = load_examples("gsm8k", "test", data_dir=DATA_DIR)[:3]
    rows = read_finished(summary.out_dir / "chains.jsonl")
    assert [(r["id"], r["question"], r["reasoning"], r["answer"], r["teacher"]) for r in rows] == [
        (e.id, e.question, e.reasoning, e.answer, "gold") for e in gold]  # fmt: skip
    summary = run_teach(TeachConfig(teacher="gold", chains=chains, limit=None, out=tmp_path / "chains"),
                        log=lambda line: None)  # fmt: skip
    assert (summary.kept, summary.rejected) == (3, 1)
    assert read_finished(summary.out_dir / "rejected.jsonl")[0]["reason"] == "no gold reasoning in the dataset"


def test_folder_names_and_refusals(scripted, chains, tmp_path):
    assert TeachConfig().output_dir().as_posix() == "runs/teach-gsm8k-test-smollm2-135m"
    sampled = TeachConfig(sampling=SamplingOptions(samples=4, temperature=1.0))
    assert sampled.output_dir().name == "teach-gsm8k-test-smollm2-135m-n4-t1"
    assert TeachConfig(teacher="gold").output_dir().name == "teach-gsm8k-test-gold"
    with pytest.raises(SettingsError, match="^samples is a setting of teacher model, not gold$"):
        build_config(TeachConfig, {"teacher": "gold", "samples": 4})
    run_teach(config(chains, tmp_path / "out"), log=lambda line: None)
    with pytest.raises(PrunelensError, match=r"other settings: seed='0' \(now '1'\)"):
        run_teach(config(chains, tmp_path / "out", seed=1), log=lambda line: None)
    assert run_teach(config(chains, tmp_path / "out", batch_size=2), log=lambda line: None).new == 0  # not a result
    for bad, message in [({"teacher": "oracle"}, "--teacher 'oracle'"), ({"generator": "tgi"}, "unknown generator"),
                         ({"top_p": 0.0}, "--top-p must lie in")]:  # fmt: skip
        with pytest.raises(PrunelensError, match=message):
            run_teach(config(chains, tmp_path / "bad", **bad))
        assert not (tmp_path / "bad").exists()


def test_cli_teach_output_is_read_by_rank(tmp_path, tiny_model_dir):
    from prunelens.cli import app

    out = tmp_path / "teach"
    args = ["distill", "teach", "--teacher", "gold", "--data-dir", str(DATA_DIR), "--limit", "3", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 chains kept, 0 questions rejected (3 new" in result.output
    ranked = CliRunner().invoke(app, ["rank", "--method", "uniform", "--chains", str(out / "chains.jsonl"),
                                      "--model", str(tiny_model_dir), "--limit", "100", "--out",
                                      str(tmp_path / "rank")])  # fmt: skip
    assert ranked.exit_code == 0, ranked.output
    rankings = read_finished(tmp_path / "rank" / "rankings.jsonl")
    assert [r["id"] for r in rankings] == [r["id"] for r in read_finished(out / "chains.jsonl")]
    refused = CliRunner().invoke(app, [*args[:2], "--data-dir", str(DATA_DIR), "--out", str(out)])  # teacher model
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "teacher='gold' (now 'model')" in lines[0]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from prunelens.models import load_model

    return load_model(str(tiny_model_dir))


def test_hf_generator_is_seeded(loaded):
    bench = get_benchmark("gsm8k")
    prompts = ["Question: 2 + 3?\nAnswer: ", "Question: how many legs do 4 cats have, in all?\nAnswer: "]
    generator = HFGenerator(loaded, batch_size=3)  # one prompt (3 samples) a call
    draw = lambda seed: generator.generate(bench, prompts, Sampling(3, 1.0, 1.0, 6, seed))  # noqa: E731
    first = draw(5)
    assert [len(samples) for samples in first] == [3, 3]
    assert all(g.new_tokens == 6 and not g.finished for samples in first for g in samples)  # no marker: the cap
    assert draw(5) == first
    assert draw(6) != first
    assert len({g.text for g in first[0]}) > 1  # samples of one prompt differ
    (greedy,) = HFGenerator(loaded, batch_size=8).generate(bench, prompts[:1], Sampling(2, 0.0, 1.0, 6))
    assert greedy[0] == greedy[1]


def test_cut_at_the_answer_line(loaded):
    tokenizer, bench = loaded.tokenizer, get_benchmark("gsm8k")
    generator = HFGenerator(loaded)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    kept = "Add 2 and 3.\n#### 5"
    assert generator._cut(bench, encode(kept + "\nthen more text")) == Generation(kept, len(encode(kept)), True)
    ended = encode("So #### 5") + [tokenizer.eos_token_id, tokenizer.pad_token_id]  # end-of-sequence ends the line
    assert generator._cut(bench, ended) == Generation("So #### 5", len(encode("So #### 5")), True)
    open_line = encode("So #### 5")  # the cap came first: no newline yet
    assert generator._cut(bench, open_line) == Generation("So #### 5", len(open_line), False)
    assert generator._cut(bench, encode("####\n5")) == Generation("####\n5", len(encode("####\n5")), False)
    math = get_benchmark("math500")
    assert cut_completion(tokenizer, math, "x\nThe final answer is 4\ny", 9, False).text == "x\nThe final answer is 4"


def test_stop_rule_marks_rows_with_a_complete_answer_line(loaded):
    tokenizer, bench = loaded.tokenizer, get_benchmark("gsm8k")
    prompt = tokenizer("Q: ", add_special_tokens=False)["input_ids"]
    rows = [prompt + tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("a\n#### 5\n", "a\n#### 5")]
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in rows])
    done = _AnswerLineStop(tokenizer, bench, len(prompt))(ids, None)
    assert done.tolist() == [True, False]


class FakeLLM:
    """vllm.LLM's generate and get_tokenizer, answering each request with fixed CompletionOutput-like records."""

    def __init__(self, tokenizer, completions):
        self.tokenizer, self.completions, self.calls = tokenizer, completions, []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        return [SimpleNamespace(outputs=[SimpleNamespace(text=text, token_ids=[0] * 7, finish_reason=reason)
                                         for text, reason in self.completions]) for _ in prompts]  # fmt: skip


def test_vllm_generator_cuts_recorded_completions(loaded):
    llm = FakeLLM(loaded.tokenizer, [("a\n#### 5\nmore", "length"), ("b\n#### 6", "stop"), ("c\n#### 7", "length")])
    generator = VLLMGenerator("unused", llm=llm)
    generator.token_prompt = lambda prompt: {"prompt": prompt}
    generator.sampling_params = lambda sampling, prompt: (sampling.seed, prompt)
    result = generator.generate(get_benchmark("gsm8k"), ["p1", "p2"], Sampling(3, 0.7, 1.0, 7, seed=2))
    assert [[(g.text, g.finished) for g in samples] for samples in result] == [
        [("a\n#### 5", True), ("b\n#### 6", True), ("c\n#### 7", False)]] * 2  # fmt: skip
    assert llm.calls == [([{"prompt": "p1"}, {"prompt": "p2"}], [(2, "p1"), (2, "p2")])]
    assert prompt_seed(2, "p1") == prompt_seed(2, "p1") != prompt_seed(2, "p2")


def test_missing_vllm_is_a_clear_error():
    try:
        import vllm  # noqa: F401
    except ImportError:
        for make in (lambda: VLLMGenerator("some/model"), lambda: VLLMGenerator.load("smollm2-135m")):
            with pytest.raises(PrunelensError, match=r"generator 'vllm' needs vLLM: pip install 'prunelens\[vllm\]'"):
                make()
    else:
        pytest.skip("vLLM is installed here")


def test_generators_are_registered():
    assert GENERATORS.load("hf") is HFGenerator and GENERATORS.load("vllm") is VLLMGenerator


def test_cli_interrupt_is_one_line(scripted, chains, tmp_path, monkeypatch):
    from prunelens.cli import app

    interrupt_on_call(monkeypatch, Scripted, "generate", call=1)
    result = CliRunner().invoke(app, ["distill", "teach", "--chains", str(chains), "--out", str(tmp_path / "out")])
    assert result.exit_code == 130
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: interrupted; finished examples are kept in {tmp_path}")


def test_a_sample_cut_by_the_token_cap_is_not_correct():
    from prunelens.datasets import get_benchmark
    from prunelens.datasets.base import Example
    from prunelens.distill.teach import sampled_outcome

    bench, example = get_benchmark("gsm8k"), Example("q", "Q?", "1")
    cut = Generation("r\n#### 1", 5, False)  # the cap came inside "#### 12"
    row, rejected = sampled_outcome(bench, example, [cut], 0, "teacher")
    assert rejected and row["correct_samples"] == 0
    row, rejected = sampled_outcome(bench, example, [cut, Generation("s\n#### 1", 5, True)], 0, "teacher")
    assert not rejected and row["reasoning"] == "s" and row["correct_samples"] == 1
    assert row["generated_tokens"] == 10  # both samples' decoding cost


def test_server_generator_draws_each_sample_in_its_own_seeded_request(tmp_path, chains, tiny_model_dir):
    from transformers import AutoTokenizer

    gold = {"Q1?": "5", "Q2?": "4", "Q3?": "7", "Q4?": "9"}

    def completion(body):  # right for even seeds, wrong for odd ones
        question = next(q for q in gold if q in body["prompt"])
        return (f"work\n#### {gold[question]}" if body["seed"] % 2 == 0 else "work\n#### 0"), "stop"

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    settings = dict(model=str(tiny_model_dir), generator="server", retry_delay=0, seed=3, temperature=0.7,
                    max_new_tokens=40)  # fmt: skip
    with CompletionsServer(None, tokenizer, text_only=True, completion=completion) as server:
        summary = run_teach(config(chains, tmp_path / "out", base_url=server.url, **settings), log=lambda line: None)
        bodies = list(server.bodies)
        greedy = run_teach(config(chains, tmp_path / "greedy", base_url=server.url, **{**settings, "temperature": 0}),
                           log=lambda line: None)  # fmt: skip
        greedy_requests = len(server.bodies) - len(bodies)
    assert len(bodies) == 4 * 4 and {(b["temperature"], b["max_tokens"]) for b in bodies} == {(0.7, 40)}
    rows = read_finished(tmp_path / "out" / "chains.jsonl") + read_finished(tmp_path / "out" / "rejected.jsonl")
    for row in rows:
        seeds = [b["seed"] for b in bodies if f"Q{row['id'][1]}?" in b["prompt"]]
        assert len(set(seeds)) == 4 and row["correct_samples"] == sum(seed % 2 == 0 for seed in seeds)
    assert summary.kept == sum(r["correct_samples"] > 0 for r in rows) and summary.kept + summary.rejected == 4
    assert greedy_requests == 4 and greedy.kept + greedy.rejected == 4  # temperature 0: decoded once per question
