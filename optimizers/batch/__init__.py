"""Batch evaluation: any program (file, run, registry alias) answered and scored on local threads or Spark, the
retriever apart from the generator, failures classified, and a paired regression gate against a baseline."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["EvaluationJob", "run_evaluation_job"], "optimizers.batch.job"),
        "EvaluationReport": "optimizers.batch.summary",
        **dict.fromkeys(["EvaluationTarget", "load_target"], "optimizers.batch.target"),
        "evaluate_rows": "optimizers.batch.local_engine",
        **dict.fromkeys(["Summary", "format_summary", "markdown_report", "summarize"], "optimizers.batch.summary"),
        **dict.fromkeys(["answer_table", "read_questions", "start_spark"], "optimizers.batch.spark_engine"),
    },
)
