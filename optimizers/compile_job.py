"""A compile as `scripts/compile.py` runs it: the LMs from the settings, every check before the first LM call,
the collection indexed when it is empty, the compile in one MLflow run, and the compiled program registered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dspy

from optimizers import lineage, tracking
from optimizers.compile import CompileProgress, CompileReport, CompileRequest, prepare, run_compile
from optimizers.programs import program_spec
from pipeline.config import Settings
from pipeline.ingest.report import IngestReport
from pipeline.lm.factory import check_lm, make_lm
from pipeline.lm.plain_adapter import adapter_for
from pipeline.qa_set import DEMO_CORPUS
from pipeline.store.factory import require_collection
from pipeline.store.record import read_record
from pipeline.wiring import build_ingestor, open_configured_store


@dataclass
class CompileJob:
    """A compile request with what it runs on: the settings (LMs, store, collection) and where results go."""

    request: CompileRequest
    settings: Settings
    reflection_lm: str | None = None
    corpus: Path | None = None  # ingested first; None: the bundled demo corpus, when the collection is empty
    track: bool = True


@dataclass
class CompileJobReport:
    compile: CompileReport
    tracking_uri: str | None = None
    indexed: IngestReport | None = None
    model_uri: str | None = None


def run_compile_job(job: CompileJob, progress: CompileProgress | None = None) -> CompileJobReport:
    """Run a compile end to end; `progress` hears each stage (see `CompileProgress`), nothing is printed.

    Everything checkable without an LM call is checked first (eval set, splits, metric and optimizer names,
    prices for a cost cap, the MLflow store); then one test call per LM; then the work. Making an LM object
    calls nothing (the embedded model loads on its first call).
    """
    settings, request = job.settings, job.request
    say = progress or (lambda stage, done, total: None)
    task_lm = make_lm(settings.lm, max_tokens=settings.max_tokens, dtype=settings.embedded_dtype)
    adapter = adapter_for(settings.lm)
    judge_lm = make_lm(settings.judge_lm, max_tokens=512, dtype=settings.embedded_dtype) if settings.judge_lm and settings.judge_lm != settings.lm else None
    reflection_lm = make_lm(job.reflection_lm, temperature=1.0, max_tokens=4000, dtype=settings.embedded_dtype) if job.reflection_lm else None
    uri, indexed, model_uri = None, None, None
    with dspy.context(lm=task_lm, **({"adapter": adapter} if adapter is not None else {})):
        prepared = prepare(request, judge_lm=judge_lm, reflection_lm=reflection_lm)
        if job.track:
            uri = tracking.open_tracking(settings.tracking.experiment)
            say(f"MLflow: {uri} (experiment {settings.tracking.experiment!r})", 0, 0)
        say(f"LM: {settings.lm}   judge LM: {settings.judge_lm or settings.lm}   embedder: {settings.embedder}", 0, 0)
        check_lm(task_lm)
        if judge_lm is not None:
            check_lm(judge_lm, "judge")
        if reflection_lm is not None:
            check_lm(reflection_lm, "reflection")

        with open_configured_store(settings) as store:
            corpus = job.corpus or (DEMO_CORPUS if not store.has_collection(settings.collection) else None)
            if corpus is not None:
                say(f"indexing {corpus} into {settings.collection!r}", 0, 0)
                indexed = build_ingestor(settings, store).sync(corpus)
                say(f"indexed {corpus}: {indexed.chunks_written} chunks written, {len(indexed.unchanged)} files unchanged", 0, 0)
            require_collection(store, settings.collection)
            record = read_record(store, settings.collection)
            manifests = record.current_manifests() if record is not None else []
            student = program_spec(request.program).build(settings, store)
            try:
                compiled = run_compile(request, student, prepared=prepared, settings=settings, track=job.track,
                                       progress=progress)
            finally:
                if hasattr(student, "close"):
                    student.close()  # the agent's MCP servers
    if compiled.run_id:
        say(f"registering the compiled program as {settings.tracking.registered_model!r}", 0, 0)
        # After the store is closed, so the index snapshot in the model is complete.
        model_uri = tracking.log_program_model(
            compiled.run_id, compiled.program_path, settings, index_path=settings.store.path, program=request.program,
            comparisons=compiled.comparisons, description=compiled.summary().splitlines()[-1],
        )
        lineage.log_index_manifests(compiled.run_id, manifests)
        lineage.tag_model_lineage(model_uri, compiled.run_id, manifests)
    return CompileJobReport(compiled, uri, indexed, model_uri)
