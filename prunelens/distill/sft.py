"""Fine-tune a student on (pruned) chains with TRL's SFTTrainer, keeping the checkpoint with the best dev accuracy.

Rows are token ids in exactly the layout pruning scored (``prunelens.datasets.tokenize.tokenize_chain``): the prompt
(``build_prompt``, the chat template applied once), the reasoning and the answer segment, each tokenised on its own,
then the tokenizer's EOS, so the student learns to stop. TRL receives them tokenised, with a completion mask: the
loss covers reasoning, answer and EOS only, and no re-tokenisation can merge the prompt's last token with the first
of a pruned reasoning. Full fine-tuning by default; ``lora`` trains LoRA adapters on the attention and MLP
projections and saves the merged model, so every output is a plain checkpoint.

Every ``eval_every`` steps and at the last step the model is evaluated (``prunelens.distill.evaluate``) on the first
``dev_limit`` questions of the dataset's dev split into ``out/dev/step-<N>/``; ``out/model`` holds the best step so
far, ranked by dev accuracy, then by the mean answer log-likelihood (far less noisy at this scale). An exact tie on
both keeps the earlier step. ``out/train.json`` is written last: a folder holding it is finished, and a rerun returns
it without training. Training does not resume: an unfinished folder restarts from step 0 (its dev evaluations and
model are discarded, since they came from an interrupted run).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prunelens.datasets import get_benchmark, load_examples
from prunelens.datasets.base import Benchmark, Example
from prunelens.datasets.chains import load_chains
from prunelens.distill.evaluate import evaluate
from prunelens.core.errors import BadRecordError, PrunelensError
from prunelens.core.jsonl import replace_atomically, write_atomic
from prunelens.core.progress import log_line
from prunelens.core.settings import THREADS_HELP, Variants, folder_name, name_parts, setting, settle_variant
from prunelens.datasets.tokenize import tokenize_chain
from prunelens.models import LoadedModel, load_model
from prunelens.jobs.run_folder import check_settings, record_settings
from prunelens.jobs.workers import set_threads

JOB = "train"
SUMMARY_NAME = "train.json"
MODEL_DIR = "model"
DEV_DIR = "dev"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraOptions:
    """LoRA adapters' settings (full fine-tuning has none)."""

    lora_r: int = setting(16, "adapter rank", result=True, minimum=1)
    lora_alpha: float = setting(32.0, "adapter scaling alpha", result=True)


FINETUNING = Variants("--lora", {False: None, True: LoraOptions})


@dataclass
class TrainConfig:
    """`prunelens distill train`: supervised fine-tuning of a student on a chains file."""

    chains: Path = setting(help="training chains: JSONL of {id, question, reasoning, answer} (e.g. a compress "
                           "keep0.5.jsonl); other keys are ignored", result=True, prefix=True, input=True)  # fmt: skip
    student: str = setting("smollm2-135m", "the student: model alias, local dir or HF id", result=True, prefix=True)
    dataset: str = setting("gsm8k", "prompt and answer format, and the dev split", result=True, name="")
    learning_rate: float = setting(5e-5, "peak learning rate (cosine schedule after warm-up)", result=True, name="lr",
                                   minimum=0.0)  # fmt: skip
    steps: int = setting(100, "optimizer steps", result=True, name="steps", minimum=1)
    batch_size: int = setting(8, "sequences per forward pass", result=True, name="b", minimum=1)
    grad_accum: int = setting(1, "forward passes per optimizer step (effective batch = batch_size x grad_accum)",
                              result=True, name="ga", minimum=1)  # fmt: skip
    max_length: int = setting(256, "token cap of prompt + completion; longer rows are left out", result=True,
                              minimum=2)  # fmt: skip
    lora: bool = setting(False, "train LoRA adapters (peft) instead of all weights; saves the merged model",
                         result=True, name="lora", flag="--lora")  # fmt: skip
    adapters: LoraOptions | None = setting(None, "the LoRA adapters' settings (with --lora)", cli=False,
                                           variant_of=("lora", FINETUNING))  # fmt: skip
    warmup_ratio: float = setting(0.05, "share of steps with linear warm-up", result=True, minimum=0.0, maximum=1.0)
    seed: int = setting(0, "seed of initialisation (LoRA), shuffling and dropout", result=True)
    eval_every: int = setting(0, "evaluate on dev every N steps (0: only after the last step)", result=True,
                              minimum=0)  # fmt: skip
    dev_limit: int = setting(50, "dev questions evaluated (the first of the dataset's dev split)", result=True,
                             minimum=1)  # fmt: skip
    dev_max_new_tokens: int = setting(256, "token cap of dev generations", result=True, minimum=1)
    dev_batch_size: int = setting(16, "dev questions decoded together", minimum=1)
    bf16: bool = setting(False, "bf16 mixed precision (default: float32)", result=True, flag="--bf16")
    gradient_checkpointing: bool = setting(True, "recompute activations in the backward pass (less memory, slower)")
    device: str = setting("cpu", "cpu | cuda | auto")
    threads: int | None = setting(None, THREADS_HELP, minimum=1)
    data_dir: Path | None = setting(None, "folder with the benchmark JSONL files (for the dev split)")
    out: Path | None = setting(None, "output folder (default: runs/train-<chains dir>-<chains>-<student>-<settings>)")

    def __post_init__(self):
        settle_variant(self)

    def output_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        chains = Path(self.chains)  # its folder too: a bare keep0.5 or chains does not say which run
        source = [part for part in (chains.parent.name, chains.stem) if part]
        return Path("runs") / "-".join([JOB, *source, folder_name(self.student), *name_parts(self)])


@dataclass
class TrainSummary:
    """What ``out/train.json`` holds: per-step training loss, the dev curve, the best step and timings."""

    steps: int
    loss: list[float]
    dev: list[dict]  # {"step", **Evaluation.to_dict()} per evaluation, in step order
    best_step: int
    rows: int  # training rows used
    left_out: list[str]  # ids of rows longer than max_length
    trainable_parameters: int
    seconds: float
    eval_seconds: float
    settings: dict = field(default_factory=dict)
    chains_sha256: str = ""  # of the chains file trained on: a finished student is reused only for the same chains

    def to_dict(self) -> dict:
        return asdict(self)


def training_rows(tokenizer, bench: Benchmark, examples: list[Example], max_length: int,
                  log=log_line) -> tuple[list[dict], list[str]]:  # fmt: skip
    """Tokenised rows {input_ids, completion_mask} in the pruning layout, and the ids of rows left out for exceeding
    ``max_length`` tokens (truncation would cut the answer and the EOS). The ids are ``tokenize_chain``'s prompt,
    reasoning and answer ids (each tokenised on its own, as pruning scored them) and the EOS; the mask marks the
    completion, the only tokens with a loss. A record without reasoning or answer raises BadRecordError."""
    if tokenizer.eos_token_id is None:
        raise PrunelensError("the student's tokenizer has no EOS token, so it cannot learn to stop")
    rows, left_out = [], []
    for example in examples:
        if bench.multiple_choice and not example.options:
            raise BadRecordError(example.id, "no answer options: a multiple-choice question needs its choices")
        chain = tokenize_chain(tokenizer, bench, example, None)
        completion = chain.reasoning_ids + chain.answer_ids + [tokenizer.eos_token_id]
        if len(chain.prompt_ids) + len(completion) > max_length:
            left_out.append(example.id)
            continue
        rows.append({"input_ids": chain.prompt_ids + completion,
                     "completion_mask": [0] * len(chain.prompt_ids) + [1] * len(completion)})  # fmt: skip
    if left_out:
        log(f"left out {len(left_out)} of {len(examples)} rows longer than {max_length} tokens")
    if not rows:
        raise PrunelensError(f"no training row fits in --max-length {max_length}")
    return rows, left_out


def build_trainer(config: TrainConfig, loaded, rows: list[dict], callbacks=()):
    """A ``trl.SFTTrainer`` over ``rows`` with the config's schedule, loss on completions only."""
    import datasets
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()  # TRL's preparation passes; progress here is one line per step

    on_cpu = next(loaded.model.parameters()).device.type == "cpu"
    args = SFTConfig(
        output_dir=str(config.output_dir() / "trainer"),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(config.warmup_ratio * config.steps),
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.bf16,
        use_cpu=on_cpu,
        activation_checkpointing=config.gradient_checkpointing,
        max_length=config.max_length,
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.adapters.lora_r, lora_alpha=config.adapters.lora_alpha, lora_dropout=0.0,
                                 target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")  # fmt: skip
    trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=loaded.tokenizer, peft_config=peft_config, callbacks=list(callbacks))  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # the log-dict printer; _DevCallback logs one line per step
    return trainer


def _dev_callback(config: TrainConfig, loaded, bench: Benchmark, dev: list[Example], out_dir: Path, log):
    """A ``transformers.TrainerCallback`` (built here so importing this module does not import transformers) that
    logs each step's loss and evaluates on dev every ``eval_every`` steps and after the last, saving the best model."""
    from transformers import TrainerCallback

    class DevCallback(TrainerCallback):
        def __init__(self):
            self.loss: list[float] = []
            self.dev: list[dict] = []
            self.best: tuple[float, float] | None = None
            self.best_step = 0
            self.eval_seconds = 0.0
            self.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss.append(float(logs["loss"]))
                log(f"train step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}, "
                    f"{time.perf_counter() - self.started:.1f} s")  # fmt: skip

        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if step == state.max_steps or (config.eval_every and step % config.eval_every == 0):
                started = time.perf_counter()
                self.evaluate(model, step)
                self.eval_seconds += time.perf_counter() - started

        def evaluate(self, model, step: int) -> None:
            folder = out_dir / DEV_DIR / f"step-{step}"
            folder.mkdir(parents=True, exist_ok=True)
            model.eval()
            plain = model.get_base_model() if config.lora else model  # scorers read the plain model's parts
            result = evaluate(LoadedModel(plain, loaded.tokenizer, loaded.name), bench, dev, folder,
                              batch_size=config.dev_batch_size,
                              max_new_tokens=config.dev_max_new_tokens, log=lambda line: None)  # fmt: skip
            model.train()
            self.dev.append({"step": step, **result.to_dict()})
            key = (result.accuracy, result.mean_answer_logprob)
            best = self.best is None or key > self.best
            log(f"dev at step {step}: accuracy {result.accuracy:.3f} ({result.correct}/{result.n}), answer "
                f"log-likelihood {result.mean_answer_logprob:.3f}{' (best so far)' if best else ''}")  # fmt: skip
            if best:
                self.best, self.best_step = key, step
                save_model(model, loaded.tokenizer, out_dir / MODEL_DIR, merge=config.lora)

    return DevCallback()


def save_model(model, tokenizer, target: Path, *, merge: bool) -> None:
    """Save ``model`` (a LoRA model merged into a copy of its base) with its tokenizer to ``target``, replacing it
    (``replace_atomically``)."""
    plain = copy.deepcopy(model).merge_and_unload() if merge else model

    def write(staging: Path) -> None:
        training_cache, plain.config.use_cache = plain.config.use_cache, True  # off while training (checkpointing)
        plain.save_pretrained(staging)
        plain.config.use_cache = training_cache
        tokenizer.save_pretrained(staging)

    replace_atomically(target, write)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes; a one-line error when it cannot be read."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise PrunelensError(f"cannot read chains file {path}: {error.strerror or error}") from None


def read_summary(out_dir: Path) -> TrainSummary | None:
    """A finished training's summary, or None when ``out_dir/train.json`` is absent."""
    path = Path(out_dir) / SUMMARY_NAME
    if not path.exists():
        return None
    try:
        return TrainSummary(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        raise PrunelensError(f"{path} is not a training summary; delete it or choose another --out") from None


def train_student(config: TrainConfig, log=log_line) -> TrainSummary:
    """Fine-tune ``config.student`` on ``config.chains`` into ``config.output_dir()``: the best dev checkpoint in
    ``model/``, dev predictions per evaluated step in ``dev/step-<N>/``, the summary in ``train.json``. A finished
    folder returns its summary; a folder with other result settings is refused."""

    out_dir = config.output_dir()
    check_settings(out_dir, JOB, config)
    finished = read_summary(out_dir)
    digest = file_sha256(config.chains)
    if finished is not None:
        if finished.chains_sha256 and finished.chains_sha256 != digest:
            raise PrunelensError(f"{out_dir} holds a student trained on another version of {config.chains}; "
                                 "choose another --out or delete the folder")  # fmt: skip
        log(f"{out_dir}: training already finished (best step {finished.best_step})")
        return finished
    bench = get_benchmark(config.dataset)
    examples = load_chains(config.chains, dataset=config.dataset)
    dev = load_examples(config.dataset, "dev", data_dir=config.data_dir)[: config.dev_limit]
    shared = sorted({e.id for e in examples} & {e.id for e in dev})
    if shared:
        raise PrunelensError(f"{len(shared)} training chains are dev questions (e.g. {shared[0]!r}); dev accuracy "
                             "would pick checkpoints on training data")  # fmt: skip
    set_threads(config.threads)
    loaded = load_model(config.student, device=config.device, dtype="float32")
    rows, left_out = training_rows(loaded.tokenizer, bench, examples, config.max_length, log)
    # from an interrupted run (with the staging folder of a model save it was killed in): training restarts
    for stale in (out_dir / DEV_DIR, out_dir / MODEL_DIR, *out_dir.glob(f"{MODEL_DIR}.tmp*")):
        shutil.rmtree(stale, ignore_errors=True)
    callback = _dev_callback(config, loaded, bench, dev, out_dir, log)
    trainer = build_trainer(config, loaded, rows, [callback])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log(f"training {config.student} on {len(rows)} rows for {config.steps} steps ({trainable:,} trainable parameters)")
    started = time.perf_counter()
    trainer.train()
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)
    summary = TrainSummary(config.steps, callback.loss, callback.dev, callback.best_step, len(rows), left_out,
                           trainable, round(time.perf_counter() - started, 3), round(callback.eval_seconds, 3),
                           json.loads(json.dumps(asdict(config), default=str)), digest)  # fmt: skip
    record_settings(out_dir, JOB, config)  # with the result: a failed or killed training blocks no corrected rerun
    write_atomic(out_dir / SUMMARY_NAME, json.dumps(summary.to_dict(), indent=2))
    return summary
