"""Answer a question from an indexed collection, with cited sources and time per stage.

With --agent the question goes to the agent, which picks tools step by step (document search, calculator, SQL
functions, MCP tools); each step is printed with its arguments and a one-line result before the answer.
"""

import argparse
import sys
import time

from pipeline.cli import EXIT_BLOCKED, entry_point
from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.programs.rag import check_question
from pipeline.store.factory import require_collection
from pipeline.store.where import where_filter
from pipeline.terminal import printable
from pipeline.wiring import build_agent, build_rag, configure_lm, open_configured_store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", help="the question, or - to read it from standard input (for a long one)")
    parser.add_argument("--collection", help="collection name (default from tessera.yaml: docs)")
    parser.add_argument("--store", help="embedded store folder (default .tessera/store)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    parser.add_argument("--lm", help="LiteLLM model string or an embedded local/... model (default: TESSERA_LM, else the embedded default for this CPU)")
    parser.add_argument("--agent", action="store_true", help="answer with the tool-using agent instead of the RAG program")
    parser.add_argument("--where", help='metadata filter, e.g. \'product = "gateway" AND version >= 4\'')
    return parser.parse_args()


def read_stdin() -> str:
    # Decoded as Python decodes the command line, so bytes that are not UTF-8 reach the encoding guard either way.
    return sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")


def print_answer(prediction, load_seconds: float) -> None:
    # The answer and the sources come from documents: a planted escape sequence must not reach the terminal raw.
    print("\n".join(printable(line) for line in prediction.answer.strip().splitlines()))
    print("\nsources:")
    for number, hit in enumerate(prediction.hits, start=1):
        chunk = hit.chunk
        heading = f" > {chunk.heading_path}" if chunk.heading else ""
        print(f"  [{number}] {printable(chunk.source + heading)}  (chunk {chunk.id}, chars {chunk.start}-{chunk.end})")
    stages = "  ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in prediction.timings.items())
    print(f"\ntime: load {load_seconds:.1f} s  {stages}")


def print_steps(prediction) -> None:
    # Tool results come from documents, databases and other processes: escaped like the answer.
    print("steps:" if prediction.steps else "steps: none (answered without a tool)")
    for number, step in enumerate(prediction.steps, start=1):
        mark = "" if step["ok"] else "  [failed]" if step["kind"] == "call" else f"  [{step['kind']}]"
        print(f"  {number}. {printable(step['tool'])}({printable(step['arguments'])}) -> {printable(step['summary'])}{mark}")
    print()


def run_agent(settings, store, question: str, started: float):
    if not store.has_collection(settings.collection):
        print(f"note: no collection {settings.collection!r} yet, so search_documents finds nothing; index documents "
              "with scripts/ingest.py DOCS_DIR", file=sys.stderr)
    agent = build_agent(settings, store)
    try:
        load_seconds = time.perf_counter() - started
        prediction = agent(question=question)
    finally:
        agent.close()
    print_steps(prediction)
    if prediction.stopped == "budget":
        print(f"note: the agent stopped at its step budget ({settings.tools.max_steps} steps, tools.max_steps)",
              file=sys.stderr)
    return prediction, load_seconds


@entry_point
def main() -> int:
    args = parse_args()
    overrides = {"collection": args.collection, "lm": args.lm}
    if args.store:
        overrides["store"] = {"path": args.store}
    settings = load_settings(args.config, **overrides)
    question = check_question(read_stdin() if args.question == "-" else args.question)
    where = where_filter(args.where)
    if where is not None and args.agent:
        raise ConfigError("--where filters the RAG program's search; the agent searches with its own arguments.")
    started = time.perf_counter()
    configure_lm(settings)
    with open_configured_store(settings) as store:
        if args.agent:
            prediction, load_seconds = run_agent(settings, store, question, started)
        else:
            require_collection(store, settings.collection)
            rag = build_rag(settings, store, where=where)
            load_seconds = time.perf_counter() - started
            prediction = rag(question=question)
    print_answer(prediction, load_seconds)
    if prediction.unchecked:
        print(f"warning: {prediction.unchecked} text(s) went unchecked: a guard failed open (see the log)", file=sys.stderr)
    if prediction.blocked:
        reasons = "; ".join(f"{r.guard}: {r.reason}" for r in prediction.guard_results if not r.allowed)
        print(f"refused by a guard ({printable(reasons)})", file=sys.stderr)
        return EXIT_BLOCKED
    return 0


if __name__ == "__main__":
    main()
