"""The embedded LMs on the CPU: load time, prefill and decode speed, seconds per RAG answer and memory, per dtype.

Every measurement runs in a fresh child process (so peak RSS is that configuration's own), and the children of the
dtypes compared alternate within one run (float32, bfloat16, bfloat16, float32, ...): the ratios between them are
measured under the same machine load.

    cold    bare transformers reads the GGUF (parse + de-quantise) in the dtype: what the first ever load costs
    steady  make_lm(--model, dtype=...) loads the cached de-quantised copy, then, on a RAG prompt (~600 tokens of
            eval_sets/corpus passages, the answer instruction and a question: ~700 prompt tokens), greedy:
              prefill  model.generate with one new token: prompt tokens / seconds
              decode   the same with 64 new tokens forced (min_new_tokens): 63 / (t64 - t1)
              answer   the same 64 forced tokens through the dspy.LM (the path the RAG program takes); dspy / bare
                       is the throughput kept on that path
              natural  the unforced greedy answer, compared across dtypes with the forced tokens' first divergence

`--adapters` instead asks, in each dtype of --dtype, RAG probes (the first question of each package in
eval_sets/qa_thirdparty.jsonl and the passage of its source file that holds the gold answer) through
dspy.Predict(AnswerFromContext) with DSPy's ChatAdapter (no JSON fallback, so a missed `[[ ## answer ## ]]` marker
counts as a parse failure), with it stopped at its closing marker (MarkerStopChatAdapter) and with the PlainAdapter:
parse rate, token F1 against the gold, and how many answers each dtype shares word for word with the first.

    .venv/bin/python benchmarks/embedded_lm.py                                         # SmolLM2, float32 vs bfloat16
    .venv/bin/python benchmarks/embedded_lm.py --model local/qwen2.5-coder-0.5b --runs 2
    .venv/bin/python benchmarks/embedded_lm.py --model local/qwen2.5-coder-0.5b --adapters
    .venv/bin/python benchmarks/embedded_lm.py --threads 1    # on a shared machine whose other load starves torch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT_DIR = ROOT / ".benchmarks_out"
CONTEXT_TOKENS = 600
NEW_TOKENS = 64
QUESTION = "How do I rotate the API keys, and how long does the old key stay valid?"
CONTEXT_FILES = ("security/api-keys.md", "operations/production-checklist.md", "getting-started/faq.md")
SYSTEM = ("Answer the question in one short sentence, using only facts stated in the context.\n"
          "If the context does not contain the answer, say that the documents do not say.")
PROBE_WINDOW = 700

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local/smollm2", help="an embedded LM of pipeline.lm.models.MODELS")
    parser.add_argument("--dtype", default="float32,bfloat16",
                        help="comma-separated dtypes to compare (float32, bfloat16, auto); the first is the baseline")
    parser.add_argument("--runs", type=int, default=2, help="steady-state children per dtype (median reported)")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold GGUF loads per dtype (0 skips them)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads in every child (default: torch's choice)")
    parser.add_argument("--adapters", action="store_true", help="compare ChatAdapter and PlainAdapter on RAG probes")
    parser.add_argument("--probes", type=int, default=10, help="RAG probes for --adapters: one per third-party package")
    parser.add_argument("--child", choices=["cold", "steady"], help=argparse.SUPPRESS)
    return parser.parse_args()


def rag_messages(tokenizer) -> list[dict[str, str]]:
    """A system instruction and a user turn holding CONTEXT_TOKENS tokens of numbered passages and a question."""
    corpus = ROOT / "eval_sets" / "corpus"
    passages = "\n\n".join(
        f"[{number}] ({name})\n{(corpus / name).read_text(encoding='utf-8').strip()}"
        for number, name in enumerate(CONTEXT_FILES, start=1)
    )
    ids = tokenizer(passages, add_special_tokens=False)["input_ids"][:CONTEXT_TOKENS]
    context = tokenizer.decode(ids)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Context: {context}\nQuestion: {QUESTION}"}]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# -- children: one configuration each, reporting one JSON line --------------------------------------------------


def cold_child(model_name: str, dtype: str, threads: int | None) -> dict:
    """The first load a user ever pays: transformers parses and de-quantises the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from pipeline.cpu import resolve_dtype
    from pipeline.lm.models import embedded_model, gguf_path

    set_threads(threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = gguf_path(embedded_model(model_name))
    dtype = resolve_dtype(dtype)
    started = time.perf_counter()
    AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=getattr(torch, dtype))
    return {"dtype": dtype, "cold_load_s": time.perf_counter() - started, "cold_peak_rss_mb": peak_rss_mb()}


def steady_child(model_name: str, dtype: str, threads: int | None) -> dict:
    import torch

    from pipeline.lm.factory import make_lm

    set_threads(threads)
    lm = make_lm(model_name, max_tokens=NEW_TOKENS, cache=False, dtype=dtype)
    engine = lm._engine_spec  # the TransformersEngine make_lm built; its model is the one the LM calls
    started = time.perf_counter()
    local = engine.local_model()
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mb()
    tokenizer, model = local.tokenizer, local.model
    messages = rag_messages(tokenizer)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    prompt_tokens = int(inputs["input_ids"].shape[1])

    def generate(new_tokens: int, forced: bool) -> tuple[float, list[int]]:
        began = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens if forced else None,
                                    do_sample=False, pad_token_id=tokenizer.eos_token_id)
        return time.perf_counter() - began, output[0, prompt_tokens:].tolist()

    generate(1, forced=True)  # warm-up: the first call initialises torch's kernels
    prefill_s, _ = generate(1, forced=True)
    forced_s, forced_ids = generate(NEW_TOKENS, forced=True)
    _, natural_ids = generate(NEW_TOKENS, forced=False)
    # The dspy path calls generate on this same model object; the generation config makes it emit NEW_TOKENS too.
    model.generation_config.min_new_tokens = NEW_TOKENS
    began = time.perf_counter()
    lm(messages=messages)
    answer_s = time.perf_counter() - began
    model.generation_config.min_new_tokens = None
    return {
        "dtype": str(model.dtype).removeprefix("torch."),
        "cached_load_s": load_s,
        "loaded_rss_mb": rss_loaded,
        "prompt_tokens": prompt_tokens,
        "prefill_s": prefill_s,
        "prefill_tok_s": prompt_tokens / prefill_s,
        "decode_tok_s": (NEW_TOKENS - 1) / max(forced_s - prefill_s, 1e-9),
        "bare_answer_s": forced_s,
        "answer_s": answer_s,
        "dspy_over_bare": forced_s / answer_s,
        "forced_ids": forced_ids,
        "natural_answer": tokenizer.decode(natural_ids, skip_special_tokens=True).strip(),
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }


def run_child(kind: str, args: argparse.Namespace, dtype: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--model", args.model, "--dtype", dtype]
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{kind} child ({args.model}, {dtype}) failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def alternated(dtypes: list[str], runs: int) -> list[str]:
    """float32, bfloat16, bfloat16, float32, ...: each dtype leads every other run, so drift in load cancels."""
    order: list[str] = []
    for run in range(runs):
        order += dtypes if run % 2 == 0 else dtypes[::-1]
    return order


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """The index of the first differing token, None when the sequences are identical."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def speed(args: argparse.Namespace) -> dict:
    from pipeline.cpu import resolve_dtype
    from pipeline.lm.embedded import converted_model_dir
    from pipeline.lm.models import embedded_model, gguf_path

    entry = embedded_model(args.model)
    dtypes = list(dict.fromkeys(resolve_dtype(d.strip(), bf16_ok=entry.bf16) for d in args.dtype.split(",")))
    path = gguf_path(entry)  # assembles a multi-part model once, before anything is timed
    first_load: dict[str, float] = {}
    for dtype in dtypes:
        if not (converted_model_dir(path, dtype) / "config.json").is_file():
            print(f"  {dtype}: no cached copy yet; converting (not counted in the medians)", file=sys.stderr)
            first_load[dtype] = run_child("steady", args, dtype)["cached_load_s"]
    cold: dict[str, list[dict]] = {dtype: [] for dtype in dtypes}
    for dtype in alternated(dtypes, args.cold_runs):
        cold[dtype].append(run_child("cold", args, dtype))
        print(f"  cold {dtype}: {cold[dtype][-1]['cold_load_s']:.1f}s", file=sys.stderr)
    steady: dict[str, list[dict]] = {dtype: [] for dtype in dtypes}
    for dtype in alternated(dtypes, args.runs):
        steady[dtype].append(run_child("steady", args, dtype))
        row = steady[dtype][-1]
        print(f"  steady {dtype}: prefill {row['prefill_tok_s']:.0f} tok/s, decode {row['decode_tok_s']:.1f} tok/s, "
              f"answer {row['answer_s']:.1f}s", file=sys.stderr)
    medians = {
        dtype: {key: statistics.median(r[key] for r in runs) for key in
                ("cached_load_s", "prefill_tok_s", "decode_tok_s", "answer_s", "dspy_over_bare", "peak_rss_mb")}
        | ({"cold_load_s": statistics.median(r["cold_load_s"] for r in cold[dtype]),
            "cold_peak_rss_mb": max(r["cold_peak_rss_mb"] for r in cold[dtype])} if cold[dtype] else {})
        for dtype, runs in steady.items()
    }
    base = dtypes[0]
    agreement = {
        dtype: {"natural_answer": steady[dtype][-1]["natural_answer"],
                "same_natural_answer": steady[dtype][-1]["natural_answer"] == steady[base][-1]["natural_answer"],
                "forced_first_divergence": first_divergence(steady[dtype][-1]["forced_ids"], steady[base][-1]["forced_ids"])}
        for dtype in dtypes
    }
    print_speed(args, dtypes, medians, agreement, steady, first_load)
    return {"model": args.model, "dtypes": dtypes, "first_load_s": first_load, "medians": medians,
            "agreement": agreement, "cold_runs": cold, "steady_runs": steady}


def print_speed(args, dtypes, medians, agreement, steady, first_load) -> None:
    base = dtypes[0]
    sample = steady[base][0]
    print(f"\n{args.model}: {sample['prompt_tokens']} prompt tokens + {NEW_TOKENS} new (forced), greedy, "
          f"{sample['torch_threads']} torch threads; medians of {args.runs} steady and {args.cold_runs} cold children "
          f"per dtype, alternated")
    columns = (("cold_load_s", "cold GGUF s", ".1f"), ("cached_load_s", "cached s", ".1f"),
               ("prefill_tok_s", "prefill tok/s", ".0f"), ("decode_tok_s", "decode tok/s", ".1f"),
               ("answer_s", "RAG answer s", ".1f"), ("dspy_over_bare", "dspy/bare", ".2f"),
               ("peak_rss_mb", "peak RSS MB", ".0f"))
    header = f"{'dtype':<17} | " + " | ".join(f"{label:>13}" for _, label, _ in columns)
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        cells = [format(medians[dtype][key], fmt) if key in medians[dtype] else "-" for key, _, fmt in columns]
        print(f"{dtype:<17} | " + " | ".join(f"{cell:>13}" for cell in cells))
    for dtype in dtypes[1:]:
        ratios = []
        for key, _, _ in columns:
            if key not in medians[dtype] or key == "dspy_over_bare":
                ratios.append("-")
                continue
            faster = key.endswith("tok_s")  # a speed: higher is better; times and memory: lower is better
            value = medians[dtype][key] / medians[base][key] if faster else medians[base][key] / medians[dtype][key]
            ratios.append(f"{value:.2f}x")
        print(f"{dtype + ' / ' + base:<17} | " + " | ".join(f"{cell:>13}" for cell in ratios) + "   (>1: better)")
    if first_load:
        print("first load (GGUF read, de-quantised copy saved): "
              + ", ".join(f"{dtype} {seconds:.1f}s" for dtype, seconds in first_load.items()))
    for dtype in dtypes:
        row = agreement[dtype]
        divergence = row["forced_first_divergence"]
        forced = "identical" if divergence is None else f"differ from token {divergence}"
        same = "" if dtype == base else f"  same as {base}: {row['same_natural_answer']}; forced {NEW_TOKENS} tokens {forced}"
        print(f"answer {dtype}: {row['natural_answer'][:150]!r}{same}")


# -- the adapter check ------------------------------------------------------------------------------------------


def probes(count: int) -> list[dict[str, str]]:
    """The first QA row of each package of the third-party set whose gold answer is verbatim in its source file (up
    to `count` packages), each with the passage of that file around the answer."""
    from optimizers.metrics.answer import normalize_answer

    found: dict[str, dict[str, str]] = {}
    for row in map(json.loads, (ROOT / "eval_sets" / "qa_thirdparty.jsonl").open(encoding="utf-8")):
        source = row["sources"][0]
        package = source.split("/")[0]
        text = (ROOT / "eval_sets" / "thirdparty" / source).read_text(encoding="utf-8")
        at = text.find(row["answer"])
        if package in found or at < 0 or not normalize_answer(row["answer"]):  # "{#" normalises to no tokens
            continue
        start = text.rfind("\n\n", 0, max(at - PROBE_WINDOW // 2, 0)) + 1
        end = text.find("\n\n", at + PROBE_WINDOW // 2)
        passage = text[start:end if end > 0 else len(text)].strip()
        found[package] = {"id": row["id"], "question": row["question"], "answer": row["answer"],
                          "context": f"[1] ({source})\n{passage}"}
    return list(found.values())[:count]


def adapter_check(args: argparse.Namespace) -> dict:
    """Each adapter on each probe, in each dtype of --dtype (alternated per probe); with two dtypes, also how often
    the answers of the second match the first's word for word."""
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    from optimizers.metrics.answer import token_f1
    from pipeline.cpu import resolve_dtype
    from pipeline.lm.factory import make_lm
    from pipeline.lm.plain_adapter import MarkerStopChatAdapter, PlainAdapter, adapter_for
    from signatures import AnswerFromContext

    set_threads(args.threads)
    dtypes = list(dict.fromkeys(resolve_dtype(d.strip()) for d in args.dtype.split(",")))
    lms = {dtype: make_lm(args.model, max_tokens=NEW_TOKENS, cache=False, dtype=dtype) for dtype in dtypes}
    adapters = {"ChatAdapter": dspy.ChatAdapter(use_json_adapter_fallback=False),
                "MarkerStopChat": MarkerStopChatAdapter(use_json_adapter_fallback=False), "PlainAdapter": PlainAdapter()}
    results: dict[str, dict[str, list[dict]]] = {dtype: {name: [] for name in adapters} for dtype in dtypes}
    for probe in probes(args.probes):
        for dtype, lm in lms.items():
            for name, adapter in adapters.items():
                began = time.perf_counter()
                try:
                    with dspy.context(lm=lm, adapter=adapter):
                        answer = dspy.Predict(AnswerFromContext)(context=probe["context"], question=probe["question"]).answer
                    parsed = True
                except AdapterParseError:
                    answer, parsed = "", False
                row = {"id": probe["id"], "parsed": parsed, "answer": answer, "gold": probe["answer"],
                       "f1": token_f1(answer, probe["answer"]) if parsed else 0.0, "s": time.perf_counter() - began,
                       "raw": lm.history[-1]["outputs"][0] if lm.history else ""}
                results[dtype][name].append(row)
                print(f"  {probe['id']} {dtype:<8} {name:<14} parsed={parsed} f1={row['f1']:.2f} {answer[:60]!r}",
                      file=sys.stderr)
    chosen = adapter_for(args.model)
    base = dtypes[0]
    summary = {
        dtype: {name: {"parsed": sum(r["parsed"] for r in rows), "probes": len(rows),
                       "mean_f1": statistics.mean(r["f1"] for r in rows),
                       "median_s": statistics.median(r["s"] for r in rows),
                       "same_answer_as_" + base: sum(a["answer"] == b["answer"]
                                                     for a, b in zip(rows, results[base][name]))}
                for name, rows in by_adapter.items()}
        for dtype, by_adapter in results.items()
    }
    count = len(results[base]["PlainAdapter"])
    print(f"\n{args.model}: {count} RAG probes over eval_sets/thirdparty, greedy, {NEW_TOKENS} new tokens max")
    header = f"{'dtype':<9} | {'adapter':<15} | {'parsed':>6} | {'token F1':>8} | {'median s':>8} | {'same as ' + base:>16}"
    print(header)
    print("-" * len(header))
    for dtype, by_adapter in summary.items():
        for name, row in by_adapter.items():
            print(f"{dtype:<9} | {name:<15} | {row['parsed']:>3}/{row['probes']} | {row['mean_f1']:>8.2f} | "
                  f"{row['median_s']:>8.1f} | {row['same_answer_as_' + base]:>13}/{row['probes']}")
    print(f"adapter_for({args.model!r}) -> {type(chosen).__name__ if chosen else 'None (DSPy default)'}")
    return {"model": args.model, "dtypes": dtypes, "summary": summary, "probes": results}


def main() -> None:
    args = parse_args()
    if args.child:
        dtype = args.dtype
        result = (cold_child if args.child == "cold" else steady_child)(args.model, dtype, args.threads)
        print("RESULT " + json.dumps(result), flush=True)
        return
    report = adapter_check(args) if args.adapters else speed(args)
    OUT_DIR.mkdir(exist_ok=True)
    name = args.model.removeprefix("local/").replace("/", "_")
    path = OUT_DIR / f"embedded_lm-{name}{'-adapters' if args.adapters else ''}.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
