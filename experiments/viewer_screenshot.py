"""results/viewer.png: `prunelens view` of the demo's GSM8K test chains (smollm2-135m), greedy pruning beside
Surprisal and H2O at keep 0.5, coloured by the offline annotator's categories, a token H2O removed hovered.

    python experiments/viewer_screenshot.py      # reuses runs/demo, else runs `prunelens demo` (~1–2 min)
"""

import argparse
import re
from pathlib import Path

from prunelens.annotate.labels import annotations_path
from prunelens.annotate.run import AnnotateConfig, annotate_rankings
from prunelens.demo import DemoConfig, run_demo
from prunelens.core.ranking import rankings_file
from prunelens.viewer.browser import headless_chromium
from prunelens.viewer.page import ViewConfig, view_folders

METHODS = ("greedy", "surprisal", "h2o")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("results/viewer.png"))
    args = parser.parse_args(argv)
    folders = [args.runs_dir / method for method in METHODS]
    if not all(rankings_file(folder).exists() for folder in folders):
        run_demo(DemoConfig(out=args.runs_dir, threads=1))
    if not annotations_path(folders[0], "offline").exists():
        annotate_rankings(AnnotateConfig(rankings=folders[0], annotator="offline"), progress=False)
    page = view_folders(ViewConfig(runs=folders, out=args.runs_dir / "view.html"))
    with headless_chromium() as browser:
        tab = browser.new_page(viewport={"width": 1440, "height": 640})
        tab.goto(page.resolve().as_uri())
        tab.fill("#keep", str(args.keep))
        tab.check("#categories")
        removed = tab.locator(f'.col[data-m="{len(METHODS) - 1}"] .chain span.x').filter(has_text=re.compile(r"\w"))
        removed.last.hover()  # in the last column: the tooltip opens below its chain, over nothing
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=args.out)
    print(f"{page}\n{args.out}")


if __name__ == "__main__":
    main()
