"""`--executor ray`: a job's examples on a pool of Ray actors, this process the only writer.

Each actor builds the job once (``validate`` + ``start``: the model loads once per actor) and processes
one example per call; it returns the ranking as a dict and its store part as bytes (written to a temporary
folder of the actor and read back through ``Job.part_files``), so no job needs code of its own for Ray.
The driver tokenises the selection (tokenizer only), hands examples out longest first (by prompt +
reasoning + answer tokens, so one long chain starts early instead of holding back the end), and writes
parts and appends rankings exactly as the local loop does; after the last example it rewrites
``rankings.jsonl`` in selection order, so the folder is the one a single-process run writes (timings
apart). Folders, settings check and resume are the local loop's: a run started locally finishes on Ray
and the reverse.

Faults: an example whose worker dies (the actor is replaced) or whose ``process`` raises goes to another
worker when one is free (to the same one only when every live worker has failed on it), up to ``RETRIES``
more times, then recorded in ``skipped.jsonl`` with the reason; a BadRecordError is handled as locally
(raise, or skip with ``--skip-bad``). Ctrl-C stops the actors; every finished example is on disk, so a
rerun resumes.

Why a small hand-out loop over ``ray.wait`` rather than ``ray.util.ActorPool``: the pool cannot replace
a dead actor or steer a retry away from the worker that failed, and its results come back without the
example they belong to; the loop needs about as many lines as the pool's bookkeeping would.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import time
from collections import deque
from pathlib import Path

from prunelens.core.errors import BadRecordError, PrunelensError, reason
from prunelens.core.jsonl import append_jsonl, read_finished, write_atomic, write_jsonl
from prunelens.core.progress import progress_bar
from prunelens.core.ranking import rankings_file
from prunelens.jobs.run_folder import record_settings
from prunelens.jobs.workers import load_for, set_threads
from prunelens.models import load_tokenizer
from prunelens.selection import tokenized_chains

RETRIES = 2  # further attempts of an example after its first failure


def import_ray():
    try:
        import ray
    except ImportError:
        raise PrunelensError("--executor ray needs Ray: pip install 'prunelens[ray]'") from None
    return ray


def chain_tokens(chain) -> int:
    return len(chain.prompt_ids) + len(chain.reasoning_ids) + len(chain.answer_ids)


class Worker:
    """One actor: the job built once, then ``process`` per example returning plain data for the driver."""

    def __init__(self, job_type, config, cwd: str):

        if os.path.isdir(cwd):  # relative paths in the config (chains, folders a ranker reads) as on the driver
            os.chdir(cwd)
        self.job = job_type(config)
        self.job.progress = False
        self.job.validate()
        set_threads(config.threads or max(1, int(config.cpus_per_worker)))
        self.job.start(load_for(self.job))
        self.parts = Path(tempfile.mkdtemp(prefix="prunelens-parts-"))

    def ready(self) -> int:
        return os.getpid()

    def process(self, example, chain) -> tuple[dict, list[bytes]]:
        started = time.perf_counter()
        processed = self.job.process(example, chain)
        if processed.ranking.seconds is None:  # rankings passed on from another run keep their own time
            processed.ranking.seconds = round(time.perf_counter() - started, 3)
        parts = []
        if processed.write_part is not None:
            processed.write_part(self.parts)
            for path in type(self.job).part_files(self.parts, example.id):
                parts.append(path.read_bytes())
                path.unlink()
        return processed.ranking.to_dict(), parts


def init_error(error) -> str:
    """The exception an actor's ``__init__`` raised, from Ray's error (its last line: ``Type: message``)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    last = [line for line in lines if line][-1] if any(lines) else type(error).__name__
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", last)  # prunelens.core.errors.PrunelensError: … → PrunelensError: …


def in_selection_order(records_path: Path, new_ids: list[str]) -> None:
    """Rewrite ``rankings.jsonl`` with this run's records in selection order (earlier records first, as
    they were): what the local loop writes. Atomic, so a kill leaves the old or the new file."""
    records, new = read_finished(records_path), set(new_ids)
    by_id = {record["id"]: record for record in records}
    ordered = [r for r in records if r["id"] not in new] + [by_id[i] for i in new_ids if i in by_id]
    write_jsonl(records_path, ordered)


def process_on_ray(job, todo: list, out_dir: Path, summary, skip, progress: bool, log, sources: dict[str, dict]) -> None:
    """Step 3 of ``run_job`` on Ray actors (see the module docstring)."""

    ray = import_ray()
    config = job.config
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=config.ray_address, log_to_driver=False, configure_logging=False)
    try:
        chains = list(tokenized_chains(config, todo, load_tokenizer(config.model), skip))
        order = {example.id: index for index, (example, _) in enumerate(chains)}
        chains.sort(key=lambda item: -chain_tokens(item[1]))  # longest first (stable: ties in selection order)
        if not chains:
            return
        records_path = rankings_file(out_dir)
        started = time.perf_counter()
        results = hand_out(ray, job, chains, skip)
        if progress:
            log(f"{job.name}: Ray workers ready in {time.perf_counter() - started:.1f} s")
        done = progress_bar(results, total=len(chains), desc=job.name, enabled=progress, log=log,
                            tokens=lambda item: chain_tokens(item[1]))  # fmt: skip
        try:
            for example, _, record, parts in done:
                if record is None:  # skipped
                    continue
                record["sources"] = sources[example.id]
                record_settings(out_dir, job.name, config)  # with the first result, as locally
                for path, data in zip(type(job).part_files(out_dir, example.id), parts):
                    write_atomic(path, data)
                append_jsonl(records_path, record)
                summary.new_ids.append(example.id)
        finally:
            results.close()  # stops the actors (also on Ctrl-C)
        summary.new_ids.sort(key=order.__getitem__)
        in_selection_order(records_path, summary.new_ids)
    finally:
        if started_here:
            ray.shutdown()


def hand_out(ray, job, chains: list, skip):
    """Start the actors (waiting until each has built the job), then return an iterator of
    (example, chain, ranking dict or None if skipped, part bytes) as examples finish."""
    from ray.exceptions import RayActorError, RayError, RayTaskError

    config = job.config
    remote = ray.remote(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker)(Worker)
    count = config.workers or default_workers(ray.cluster_resources(), config.cpus_per_worker, config.gpus_per_worker)
    actors: dict[int, object] = {}  # serial number → handle (a replacement gets a new number)
    serials = itertools.count()

    def spawn() -> int:
        serial = next(serials)
        actors[serial] = remote.remote(type(job), config, os.getcwd())
        return serial

    idle = [spawn() for _ in range(min(count, len(chains)))]
    try:
        ray.get([actors[serial].ready.remote() for serial in idle])
    except BaseException as error:  # a worker that cannot build the job (bad model, settings), or Ctrl-C
        stop(ray, actors)
        if not isinstance(error, RayError):
            raise
        raise PrunelensError(f"a Ray worker could not start the {job.name} job: {init_error(error)}") from None

    def results():
        pending = deque(chains)
        failures: dict[str, list[int]] = {}  # example id → serials of the workers it failed on
        running = {}  # object ref → (serial, example, chain)
        try:
            while pending or running:
                for serial in list(idle):
                    item = next_for(serial, pending, failures, list(actors))
                    if item is None:
                        continue
                    pending.remove(item)
                    idle.remove(serial)
                    running[actors[serial].process.remote(*item)] = (serial, *item)
                [ref], _ = ray.wait(list(running), num_returns=1)
                serial, example, chain = running.pop(ref)
                try:
                    record, parts = ray.get(ref)
                except RayActorError as error:  # the worker died: replace it
                    del actors[serial]
                    idle.append(spawn())
                    problem = f"worker died ({reason(error)})"
                except RayTaskError as error:
                    idle.append(serial)
                    if isinstance(error.cause, BadRecordError):
                        if not config.skip_bad:
                            raise error.cause from None
                        skip(error.cause)
                        yield example, chain, None, []
                        continue
                    problem = f"{type(error.cause).__name__}: {reason(error.cause)}"
                else:
                    idle.append(serial)
                    yield example, chain, record, parts
                    continue
                failures.setdefault(example.id, []).append(serial)
                if len(failures[example.id]) > RETRIES:
                    skip(BadRecordError(example.id, f"failed on {len(failures[example.id])} Ray workers: {problem}"))
                    yield example, chain, None, []
                else:
                    pending.appendleft((example, chain))
        finally:
            stop(ray, actors)

    return results()


def next_for(serial: int, pending, failures: dict[str, list[int]], live: list[int]):
    """The pending (example, chain) an idle worker takes next: the first it has not failed on; else the first
    that every live worker has failed on (nobody else can take it); else None (it waits, so that a retry goes
    to another worker when that one is free)."""
    for item in pending:
        if serial not in failures.get(item[0].id, ()):
            return item
    for item in pending:
        if all(other in failures.get(item[0].id, ()) for other in live):
            return item
    return None


def default_workers(resources: dict, cpus: float, gpus: float) -> int:
    """As many actors as the cluster's CPUs (and GPUs, when each needs some) hold, at least one."""
    fits = [resources.get("CPU", 1) / cpus] if cpus else []
    fits += [resources.get("GPU", 0) / gpus] if gpus else []
    return max(1, int(min(fits))) if fits else 1


def stop(ray, actors: dict) -> None:
    for handle in actors.values():
        ray.kill(handle)
