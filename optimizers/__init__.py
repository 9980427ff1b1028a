"""Metrics, judges, optimizer factories and the compile routine that let a Tessera program optimize itself."""

from pipeline.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ["METRICS", "bleu", "citation_precision", "exact_match", "make_metric", "precision_at_k", "rouge_l", "token_f1"],
            "optimizers.metrics.answer",
        ),
        **dict.fromkeys(["mrr", "ndcg_at_k", "recall_at_k"], "optimizers.metrics.retrieval"),
        "WeightedMetric": "optimizers.metrics.composite",
        **dict.fromkeys(
            ["JUDGES", "AnswerRelevance", "ContextSufficiency", "Correctness", "Faithfulness", "Safety", "make_judge"],
            "optimizers.judges",
        ),
        **dict.fromkeys(["CompileRequest", "compile_program", "run_compile"], "optimizers.compile"),
        **dict.fromkeys(["ServedTrace", "find_served_traces", "get_served_trace"], "optimizers.served_traces"),
        **dict.fromkeys(["record_feedback", "human_rating"], "optimizers.feedback"),
        **dict.fromkeys(["calibrate_judges", "format_calibration"], "optimizers.calibration"),
        **dict.fromkeys(["monitor", "format_report"], "optimizers.monitoring"),
        "create_review_app": "optimizers.review_page",
    },
)
