"""Offline guard layers on eval_sets/safety.jsonl: injection recall and false-positive rate, PII recall, latency.

Llama Guard weights are not available offline, so this measures the rule, PII and injection (regex +
nearest-neighbour over the bundled MiniLM) layers. The latency baseline, measured in the same run, is one bare
MiniLM encode of the same input: the guard's cost is reported as a ratio to it.

    .venv/bin/python benchmarks/guard_layers.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from guardrails.injection import InjectionGuard  # noqa: E402
from guardrails.pii import PIIGuard  # noqa: E402
from guardrails.rules import EncodingGuard, SizeGuard  # noqa: E402
from pipeline.retrieval.embed import load_embedder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAFETY = ROOT / "eval_sets" / "safety.jsonl"
OUT = ROOT / ".benchmarks_out"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7")
    args = parser.parse_args()
    rows = [json.loads(line) for line in SAFETY.read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = load_embedder()
    injections = [r for r in rows if r["kind"] in ("direct_injection", "indirect_injection")]
    benign = [r for r in rows if r["kind"] in ("benign", "benign_lookalike")]

    print(f"safety set: {len(rows)} rows ({len(injections)} injections, {len(benign)} benign incl. look-alikes)\n")
    print("injection layer (regex + kNN on MiniLM)")
    print(f"{'threshold':>9} {'recall':>7} {'direct':>7} {'indirect':>8} {'FPR':>6}")
    results = {}
    for threshold in [float(t) for t in args.thresholds.split(",")]:
        guard = InjectionGuard(embedder=embedder, threshold=threshold)
        flagged = {r["id"]: not guard.check(r["text"]).allowed for r in injections + benign}
        recall = sum(flagged[r["id"]] for r in injections) / len(injections)
        by_kind = {
            kind: sum(flagged[r["id"]] for r in injections if r["kind"] == kind)
            / max(1, sum(r["kind"] == kind for r in injections))
            for kind in ("direct_injection", "indirect_injection")
        }
        fpr = sum(flagged[r["id"]] for r in benign) / len(benign)
        results[threshold] = {"recall": recall, "fpr": fpr, **by_kind}
        print(f"{threshold:>9.2f} {recall:>7.3f} {by_kind['direct_injection']:>7.3f} {by_kind['indirect_injection']:>8.3f} {fpr:>6.3f}")
    default = InjectionGuard(embedder=embedder)
    false_positives = [r["text"][:70] for r in benign if not default.check(r["text"]).allowed]
    missed = [r["text"][:70] for r in injections if default.check(r["text"]).allowed]

    pii_rows = [r for r in rows if r["kind"] == "pii"]
    pii = PIIGuard()
    expected = found = 0
    per_type: dict[str, list[int]] = {}
    for row in pii_rows:
        spans = [(m.start, m.end) for m in pii.find_pii(row["text"])]
        for item in row["pii"]:
            start = row["text"].index(item["value"])
            hit = any(s <= start and start + len(item["value"]) <= e for s, e in spans)
            expected += 1
            found += hit
            per_type.setdefault(item["type"], [0, 0])
            per_type[item["type"]][0] += hit
            per_type[item["type"]][1] += 1
    benign_pii_flags = sum(bool(pii.find_pii(r["text"])) for r in benign)
    print(f"\nPII recall: {found}/{expected} = {found / expected:.3f}   ("
          + ", ".join(f"{t} {h}/{n}" for t, (h, n) in sorted(per_type.items())) + ")")
    print(f"PII found in benign rows: {benign_pii_flags}/{len(benign)}")

    layers = [SizeGuard(), EncodingGuard(), default, pii]
    texts = [r["text"] for r in rows]
    for text in texts[:20]:
        embedder.encode([text])
        for layer in layers:
            layer.check(text)
    guard_ms, encode_ms = [], []
    for text in texts:
        started = time.perf_counter()
        embedder.encode([text])
        encode_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for layer in layers:
            layer.check(text)
        guard_ms.append((time.perf_counter() - started) * 1000)
    p50, p99 = percentile(guard_ms, 50), percentile(guard_ms, 99)
    base50 = percentile(encode_ms, 50)
    print(f"\nlatency per input, size+encoding+injection+PII: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(baseline: one bare MiniLM encode, p50 {base50:.1f} ms; ratio {p50 / base50:.2f})")
    print(f"\nat the default threshold {default.threshold}: {len(missed)} injections missed, {len(false_positives)} false positives")
    for text in false_positives:
        print(f"  FP: {text}")
    for text in missed:
        print(f"  missed: {text}")

    OUT.mkdir(exist_ok=True)
    (OUT / "guard_layers.json").write_text(json.dumps({
        "injection": {str(k): v for k, v in results.items()},
        "pii_recall": found / expected,
        "pii_per_type": per_type,
        "latency_ms": {"p50": p50, "p99": p99, "bare_encode_p50": base50, "mean": statistics.mean(guard_ms)},
    }, indent=2))


if __name__ == "__main__":
    main()
