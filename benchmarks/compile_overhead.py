"""Tessera's compile vs DSPy's bare optimizer on the same program, data and budget: LM calls and wall time.

Both sides run the same DSPy optimizer object on the same RAG program (demo corpus, MiniLM, guards on) and the
same train / dev split of the demo QA set (seed 0, the sizes `make compile` uses):
  bare     teleprompter.compile(student, trainset=…, valset=…)                     — DSPy alone
  tessera  optimizers.compile.compile_program(…) inside an MLflow run with DSPy autolog tracing of the compile,
           i.e. the budget meter, usage tracking, candidate bookkeeping and compile traces that `scripts/compile.py` adds

The LM is `pipeline.lm.scripted.FieldLM`, which answers instantly: the wall time is then all framework (DSPy,
retrieval, guards, Tessera), so the ratio is an upper bound on Tessera's overhead — with a real LM each call adds
seconds to both sides and the same absolute overhead shrinks. `--embedded` adds BootstrapFewShot on the real
SmolLM2 with the LM cache off.

    .venv/bin/python benchmarks/compile_overhead.py [--repeats 2] [--optimizers bootstrap,mipro] [--embedded]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.cli import offline_defaults

offline_defaults()

import dspy  # noqa: E402
import mlflow  # noqa: E402

from optimizers.budget import Budget, LMMeter  # noqa: E402
from optimizers.compile import compile_program  # noqa: E402
from optimizers.evaluation import split_examples  # noqa: E402
from optimizers.factories import OPTIMIZERS, make_optimizer  # noqa: E402
from optimizers.metrics.composite import WeightedMetric  # noqa: E402
from optimizers.tracking import compile_run  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.lm.scripted import FieldLM  # noqa: E402
from pipeline.qa_set import DEMO_CORPUS, load_qa  # noqa: E402
from pipeline.wiring import build_ingestor, build_rag, open_configured_store  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / ".benchmarks_out"
# The small overrides keep MIPROv2/GEPA runs to minutes on 2 cores; the same arguments go to both sides.
ARGS = {
    "bootstrap": {},
    "random_search": {},
    "mipro": {},
    "gepa": {"max_metric_calls": 150},
    "simba": {},
}


def counted_lm(lm):
    return lm.calls if isinstance(lm, FieldLM) else len(lm.history)


def run_once(kind: str, name: str, student, split, lm) -> tuple[float, int]:
    metric = WeightedMetric({"token_f1": 1.0}, feedback=name == "gepa")
    before = counted_lm(lm)
    started = time.perf_counter()
    with dspy.context(lm=lm):
        optimizer = make_optimizer(name, metric, "light", **ARGS[name])
        if kind == "bare":
            optimizer.compile(student, split.train, split.dev)
        else:
            with compile_run(f"overhead-{name}"):
                compile_program(optimizer, student, split.train, split.dev, LMMeter(Budget()))
    return time.perf_counter() - started, counted_lm(lm) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--embedded", action="store_true", help="also time BootstrapFewShot on the real SmolLM2 (cache off)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tessera-overhead-"))
    mlflow.set_tracking_uri(f"sqlite:///{scratch}/mlflow.db")
    mlflow.set_experiment("overhead")
    settings = load_settings(None, store={"path": str(scratch / "store")})
    split = split_examples(load_qa(), seed=0, train=16, dev=20, test=40)
    results = []
    with open_configured_store(settings) as store:
        build_ingestor(settings, store).sync(DEMO_CORPUS)
        student = build_rag(settings, store)
        cases = [(name, FieldLM) for name in args.optimizers.split(",")]
        if args.embedded:
            from pipeline.lm.factory import make_lm
            from pipeline.lm.plain_adapter import PlainAdapter

            embedded = make_lm("local/smollm2", max_tokens=64, cache=False)
            cases.append(("bootstrap", lambda: embedded))
        for name, make in cases:
            lm = make()
            timings = {"bare": [], "tessera": []}
            calls = {}
            for repeat in range(args.repeats):
                # Alternate which side runs first so warm-up and machine noise do not favour one.
                for kind in (("bare", "tessera") if repeat % 2 == 0 else ("tessera", "bare")):
                    context = dspy.context(adapter=PlainAdapter()) if not isinstance(lm, FieldLM) else dspy.context()
                    with context:
                        seconds, count = run_once(kind, name, student, split, lm)
                    timings[kind].append(seconds)
                    calls[kind] = count
            bare, ours = statistics.median(timings["bare"]), statistics.median(timings["tessera"])
            label = f"{name}{'' if isinstance(lm, FieldLM) else ' (SmolLM2)'}"
            results.append({"optimizer": label, "bare_s": bare, "tessera_s": ours, "ratio": ours / bare, "bare_calls": calls["bare"], "tessera_calls": calls["tessera"], "runs": timings})
            print(f"{label:<22} bare {bare:7.1f}s {calls['bare']:5d} calls   tessera {ours:7.1f}s {calls['tessera']:5d} calls   overhead {100 * (ours / bare - 1):+.1f}%", flush=True)
    OUT.mkdir(exist_ok=True)
    path = OUT / "compile_overhead.json"
    earlier = [row for row in json.loads(path.read_text())] if path.is_file() else []
    labels = {row["optimizer"] for row in results}
    path.write_text(json.dumps([row for row in earlier if row["optimizer"] not in labels] + results, indent=2))


if __name__ == "__main__":
    main()
