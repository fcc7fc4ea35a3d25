"""A surrogate that predicts greedy-pruning scores from attention features (paper §5.3).

Input: a token's L·H attention features, standardised. Target: the token's post-deletion likelihood
at keep 1.0 (step 0's candidate score from greedy pruning), or its deletion rank. The default model is
a 2-layer MLP trained with 1 − Pearson correlation computed within each example; an MSE loss and a
ridge regression are there for comparison (both on targets z-scored within each example, since
attention carries no information about an example's overall likelihood level).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from prunelens.core.bootstrap import bootstrap_interval
from prunelens.core.errors import PrunelensError
from prunelens.core.jsonl import replace_atomically

KINDS = ("mlp", "ridge")
LOSSES = ("pearson", "mse")
TARGETS = ("score", "rank")


@dataclass
class ExampleData:
    """One example: features X (n × L·H) and target y (n)."""

    id: str
    x: np.ndarray
    y: np.ndarray


@dataclass
class SurrogateConfig:
    kind: str = "mlp"
    loss: str = "pearson"
    target: str = "score"
    hidden: int = 256
    epochs: int = 150
    batch_examples: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ridge_alpha: float = 10.0
    seed: int = 0

    def __post_init__(self):
        for value, known, what in ((self.kind, KINDS, "kind"), (self.loss, LOSSES, "loss"), (self.target, TARGETS, "target")):
            if value not in known:
                raise PrunelensError(f"unknown surrogate {what} {value!r} (known: {', '.join(known)})")


def _zscore(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / (y.std() + 1e-8)


def pearson_loss(prediction, target, lengths):
    """1 − mean over examples of the Pearson correlation within each example."""
    import torch

    losses = []
    for p, t in zip(torch.split(prediction, lengths), torch.split(target, lengths)):
        p, t = p - p.mean(), t - t.mean()
        losses.append((p * t).sum() / (p.norm() * t.norm() + 1e-8))
    return 1 - torch.stack(losses).mean()


@dataclass
class Surrogate:
    """A trained surrogate: standardisation, the model, and where its features came from."""

    config: SurrogateConfig
    mean: np.ndarray
    std: np.ndarray
    state: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def _mlp(self):
        import torch

        net = torch.nn.Sequential(
            torch.nn.Linear(len(self.mean), self.config.hidden), torch.nn.GELU(), torch.nn.Linear(self.config.hidden, 1)
        )
        if self.state:
            net.load_state_dict(self.state)
        return net

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted target per token (rows of x)."""
        import torch

        z = (x - self.mean) / self.std
        if self.config.kind == "ridge":
            return z @ self.state["weights"]
        with torch.no_grad():
            return self._mlp()(torch.tensor(z, dtype=torch.float32)).squeeze(-1).double().numpy()

    def save(self, path: Path) -> None:
        import torch

        saved = {"config": asdict(self.config), "mean": self.mean, "std": self.std, "state": self.state, "meta": self.meta}
        replace_atomically(Path(path), lambda staging: torch.save(saved, staging))  # a kill never leaves half a file

    @classmethod
    def load(cls, path: Path) -> "Surrogate":
        import torch

        if Path(path).is_dir():
            raise PrunelensError(f"--surrogate {path}: is a folder; the file saved by `prunelens surrogate train` "
                                 "is expected")  # fmt: skip
        if not Path(path).is_file():
            raise PrunelensError(f"--surrogate {path}: no such file (save one with `prunelens surrogate train`)")
        try:
            saved = torch.load(path, weights_only=False)
        except Exception as exc:  # torch raises many types for a file that is not a checkpoint
            raise PrunelensError(f"--surrogate {path}: not a saved surrogate ({type(exc).__name__})") from None
        return cls(SurrogateConfig(**saved["config"]), saved["mean"], saved["std"], saved["state"], saved["meta"])


def surrogate_refusal(surrogate: Surrogate, model: str, definition: str | None, width: int,
                      source: str) -> str | None:  # fmt: skip
    """Why ``surrogate`` cannot predict from features of ``model`` defined as ``definition`` with ``width`` values
    per token, or None: it must have been trained on features of that definition (``source`` says who defines
    them, for the message), of the same model (a surrogate that records none passes) and of that width."""
    defined = surrogate.meta.get("feature_definition")
    if defined != definition:
        return (f"trained on features defined as {defined!r}, not as {source} ({definition!r}); "
                "retrain it on a current `prunelens features` store")  # fmt: skip
    trained_on = surrogate.meta.get("model")
    if trained_on not in (None, model):
        return f"trained on features of {trained_on!r}, not {model!r}"
    if surrogate.mean.shape[0] != width:
        return f"expects {surrogate.mean.shape[0]} features per token, not {width}"
    return None


def train_surrogate(train: list[ExampleData], config: SurrogateConfig, meta: dict | None = None) -> Surrogate:
    """Fit a surrogate on training examples (each needs ≥ 2 tokens); its meta records their ids (``train_ids``), so
    an evaluation can tell held-out examples from in-sample ones."""
    import torch

    train = [e for e in train if len(e.y) >= 2]
    if not train:
        raise PrunelensError("no training examples with at least 2 tokens")
    x_all = np.concatenate([e.x for e in train])
    mean, std = x_all.mean(0), x_all.std(0) + 1e-6
    surrogate = Surrogate(config, mean, std, meta={**(meta or {}), "train_ids": [e.id for e in train]})
    zs = [((e.x - mean) / std).astype(np.float32) for e in train]
    ys = [_zscore(e.y) for e in train]
    if config.kind == "ridge":
        z, y = np.concatenate(zs), np.concatenate(ys)
        weights = np.linalg.solve(z.T @ z + config.ridge_alpha * np.eye(z.shape[1]), z.T @ y)
        surrogate.state = {"weights": weights}
        return surrogate
    torch.manual_seed(config.seed)
    net = surrogate._mlp()
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    for _epoch in range(config.epochs):
        order = rng.permutation(len(train))
        for start in range(0, len(order), config.batch_examples):
            chosen = order[start : start + config.batch_examples]
            x = torch.tensor(np.concatenate([zs[i] for i in chosen]))
            y = torch.tensor(np.concatenate([ys[i] for i in chosen]), dtype=torch.float32)
            prediction = net(x).squeeze(-1)
            if config.loss == "pearson":
                loss = pearson_loss(prediction, y, [len(ys[i]) for i in chosen])
            else:
                loss = torch.nn.functional.mse_loss(prediction, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    surrogate.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return surrogate


@dataclass
class Correlations:
    """Per-example Pearson and Spearman correlations, their means and 95% bootstrap intervals."""

    ids: list[str]
    pearson: np.ndarray
    spearman: np.ndarray

    def summary(self, seed: int = 0, resamples: int = 2000) -> dict:
        rng = np.random.default_rng(seed)
        out = {"n_examples": len(self.ids)}
        for name, values in (("pearson", self.pearson), ("spearman", self.spearman)):
            values = values[np.isfinite(values)]
            low, high = bootstrap_interval((values,), np.mean, resamples=resamples, rng=rng)
            out[name] = float(np.mean(values)) if len(values) else float("nan")
            out[f"{name}_ci"] = [float(low), float(high)]
        return out


def correlations(examples: list[ExampleData], predictions: list[np.ndarray]) -> Correlations:
    """Within-example correlation of predictions with targets (examples with < 3 tokens are skipped)."""
    from scipy.stats import pearsonr, spearmanr

    ids, pearsons, spearmans = [], [], []
    for example, predicted in zip(examples, predictions):
        if len(example.y) < 3 or np.std(predicted) == 0 or np.std(example.y) == 0:
            continue
        ids.append(example.id)
        pearsons.append(pearsonr(predicted, example.y).statistic)
        spearmans.append(spearmanr(predicted, example.y).statistic)
    return Correlations(ids, np.array(pearsons), np.array(spearmans))
