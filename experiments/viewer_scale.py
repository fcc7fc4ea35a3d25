"""How large `prunelens view` pages get and how fast they respond: synthetic rankings of C chains of T
tokens (greedy with step scores down to keep 0.5, a scored baseline, uniform, and one annotator's labels)
written as rankings folders, viewed with `prunelens view`, then opened in chromium-headless-shell.
Writes results/viewer_scale.md.

    python experiments/viewer_scale.py                                  # 20 and 1,000 chains of 300 tokens
    python experiments/viewer_scale.py --chains 20 --out-dir /tmp/vs --runs-dir /tmp/vs   # a smoke run
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from prunelens.annotate.labels import (
    CATEGORIES,
    Annotation,
    annotations_path,
    tokens_digest,
)
from prunelens.core.keep import n_keep
from prunelens.core.ranking import RANKINGS_NAME, GreedyRanking, Ranking
from prunelens.report import markdown_table, write_report
from prunelens.viewer.browser import headless_chromium
from prunelens.viewer.page import ViewConfig, view_folders

WORDS = ["The", "apples", "cost", "$", "12", "3.5", "+", "=", "*", "so", "each", "she", "total", "Then", "we",
         "need", "to", "find", "half", "of", "it", "Tom", ",", ".", ":"]  # fmt: skip
ANNOTATOR = "synthetic"


def synthetic_rankings(chains: int, tokens: int, seed: int = 0) -> tuple[dict[str, list[Ranking]], list[Annotation]]:
    """{method: rankings} of ``chains`` random chains of ``tokens`` pieces (some newlines), and labels."""
    rng = np.random.default_rng(seed)
    found, annotations = {"greedy": [], "surprisal": [], "uniform": []}, []
    steps = tokens - n_keep(tokens, 0.5)
    for index in range(chains):
        words, newline = rng.choice(WORDS, tokens).tolist(), rng.random(tokens) < 0.04
        pieces = [words[0]] + ["\n" if newline[p] else " " + words[p] for p in range(1, tokens)]
        ends = np.cumsum([len(piece) for piece in pieces]).tolist()
        ids = rng.integers(0, 49152, tokens).tolist()
        common = dict(id=f"synthetic-{index}", model="synthetic", reasoning="".join(pieces), reasoning_ids=ids,
                      reasoning_tokens=pieces, offsets=[[end - len(p), end] for p, end in zip(pieces, ends)],
                      question=f"Synthetic question {index}: how many apples?", answer=str(index), dataset="synthetic")  # fmt: skip
        step_scores = -60.0 - np.cumsum(rng.exponential(0.3, steps))
        found["greedy"].append(GreedyRanking(**common, deletion_order=rng.permutation(tokens)[:steps].tolist(),
                                             objective="joint", step_scores=step_scores.tolist(), base_score=-60.0))  # fmt: skip
        surprisal = rng.exponential(2.0, tokens)
        found["surprisal"].append(Ranking(**common, method="surprisal", scores=surprisal.tolist(),
                                          deletion_order=np.argsort(surprisal, kind="stable").tolist(),
                                          score_meaning="synthetic surprisal; lowest removed first"))  # fmt: skip
        found["uniform"].append(Ranking(**common, method="uniform", deletion_order=rng.permutation(tokens).tolist()))
        annotations.append(Annotation(id=common["id"], annotator=ANNOTATOR, model="synthetic",
                                      digest=tokens_digest("synthetic", ids),
                                      labels=[CATEGORIES[c] for c in rng.integers(0, len(CATEGORIES), tokens)]))  # fmt: skip
    return found, annotations


def write_runs(root: Path, rankings: dict[str, list[Ranking]], annotations: list[Annotation]) -> list[Path]:
    """One rankings folder per method under ``root`` (the labels beside the first); the folders."""
    folders = []
    for method, records in rankings.items():
        folder = root / method
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RANKINGS_NAME).write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
        folders.append(folder)
    annotations_path(folders[0], ANNOTATOR).write_text("".join(json.dumps(a.to_dict()) + "\n" for a in annotations))
    return folders


BROWSER_TIMINGS = """(repeats) => {
  const time = (action) => {
    const t = performance.now();
    action();
    document.body.getBoundingClientRect();  // forces layout
    return performance.now() - t;
  };
  const median = (values) => values.sort((a, b) => a - b)[values.length >> 1];
  const slider = document.getElementById("keep"), search = document.getElementById("search");
  const moves = [], switches = [], searches = [];
  for (let r = 0; r < repeats; r++) {
    moves.push(time(() => { slider.value = r % 2 ? slider.min : 1; slider.dispatchEvent(new Event("input")); }));
    switches.push(time(() => document.getElementById("next").click()));
    searches.push(time(() => { search.value = r % 2 ? "" : "synthetic-9"; search.dispatchEvent(new Event("input")); }));
  }
  return {slider: median(moves), example: median(switches), search: median(searches)};
}"""


def browser_timings(page: Path, repeats: int = 21) -> dict[str, float]:
    """Seconds to open the page until its first chain shows, and median ms (script and layout) to move
    the slider across its range, show the next chain, and filter the list."""
    with headless_chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        started = time.perf_counter()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function("document.getElementById('example-id').textContent !== ''")
        opened = time.perf_counter() - started
        return {"open": opened, **tab.evaluate(BROWSER_TIMINGS, repeats)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/viewer_scale"))
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    rows = []
    for chains in args.chains:
        folders = write_runs(args.runs_dir / f"c{chains}-t{args.tokens}", *synthetic_rankings(chains, args.tokens))
        started = time.perf_counter()
        page = view_folders(ViewConfig(runs=folders, out=args.runs_dir / f"view-c{chains}-t{args.tokens}.html"))
        built = time.perf_counter() - started
        timings = browser_timings(page)
        rows.append([chains, args.tokens, f"{page.stat().st_size / 1e6:.2f}", f"{built:.2f}", f"{timings['open']:.2f}",
                     f"{timings['slider']:.1f}", f"{timings['example']:.1f}", f"{timings['search']:.1f}"])  # fmt: skip
        print(f"{chains} chains: {page}", flush=True)
    table = markdown_table(["chains", "tokens", "page MB", "build s", "open s", "slider ms", "next chain ms",
                            "search ms"], rows)  # fmt: skip
    text = ("# Viewer page size and responsiveness\n\nSynthetic rankings folders (greedy · joint to keep 0.5 "
            "with step scores, a scored baseline, uniform; one annotator's labels), `prunelens view` of all three, "
            "opened in chromium-headless-shell (viewport 1400×900). *build*: `view_folders` (reading the folders "
            "included); *open*: from navigation until the first chain shows; slider / next chain / search: median "
            f"of 21 (script and layout, measured in the page).\n\n{table}\n")  # fmt: skip
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_report(args.out_dir / "viewer_scale.md", text)


if __name__ == "__main__":
    main()
