"""The demo: index the bundled Corvid Gateway docs, then answer a few questions from the QA set offline."""

import argparse
import time

from pipeline.cli import entry_point
from pipeline.config import load_settings
from pipeline.qa_set import DEMO_CORPUS, DEMO_QA, load_qa
from pipeline.wiring import build_ingestor, build_rag, configure_lm, open_configured_store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=3, help="how many QA-set questions to answer")
    parser.add_argument("--collection", help="collection to index the demo corpus into (default from tessera.yaml: docs)")
    parser.add_argument("--config", help="settings file (default ./tessera.yaml when present)")
    return parser.parse_args()


@entry_point
def main() -> int:
    args = parse_args()
    settings = load_settings(args.config, collection=args.collection)
    print(f"LM: {settings.lm}   embedder: {settings.embedder}   store: {settings.store.url or settings.store.path}")
    with open_configured_store(settings) as store:
        report = build_ingestor(settings, store).sync(DEMO_CORPUS)
        print(
            f"indexed {DEMO_CORPUS.name}/: {len(report.indexed)} files re-indexed, {len(report.unchanged)} unchanged, "
            f"{report.chunks_written} chunks written in {report.seconds:.1f}s"
        )
        configure_lm(settings)
        rag = build_rag(settings, store)
        for example in load_qa(DEMO_QA)[: args.questions]:
            started = time.perf_counter()
            prediction = rag(question=example.question)
            sources = sorted({hit.chunk.source for hit in prediction.hits})
            print(f"\nQ: {example.question}\nA: {prediction.answer.strip()}\ngold: {example.answer}")
            print(f"cited: {', '.join(sources)}   (gold: {', '.join(example.sources)})   {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    main()
