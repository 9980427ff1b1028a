"""Deterministic answer metrics (exact match, token F1, ROUGE-L, BLEU) and citation precision, plus the
`metric(example, pred, trace=None) -> float` form every DSPy optimizer takes."""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from optimizers.metrics.retrieval import mrr, ndcg_at_k, recall_at_k

ProgramMetric = Callable[..., float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and English articles, collapse white space (the SQuAD normalisation)."""
    _check_strings(text)
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _check_strings(*answers: object) -> None:
    for answer in answers:
        if not isinstance(answer, str):
            raise ValueError(f"an answer must be a string, not {type(answer).__name__}")


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised prediction equals the normalised gold answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall between normalised prediction and gold (bag of words)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F-measure (longest common subsequence, stemmed) through the `rouge-score` package."""
    _check_strings(prediction, gold)
    return float(_rouge_scorer().score(gold, prediction)["rougeL"].fmeasure)


def bleu(prediction: str, gold: str) -> float:
    """Sentence BLEU through `sacrebleu`, scaled to [0, 1] (smoothed, so short answers are not all zero)."""
    import sacrebleu

    _check_strings(prediction, gold)
    return float(sacrebleu.sentence_bleu(prediction, [gold]).score / 100.0)


def precision_at_k(retrieved_sources: Sequence[str], gold_sources: Sequence[str], k: int) -> float:
    """Share of the first `k` distinct retrieved sources that are gold sources."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    distinct = list(dict.fromkeys(retrieved_sources))[:k]
    gold = set(gold_sources)
    if not gold:
        raise ValueError("gold_sources is empty: each example needs at least one gold source")
    return sum(source in gold for source in distinct) / len(distinct) if distinct else 0.0


def citation_precision(cited_sources: Sequence[str], gold_sources: Sequence[str]) -> float:
    """Share of cited chunks whose document is a gold source; 0.0 for an answer that cites nothing.

    Every example has a gold source, so citing nothing is a miss, not a perfect score: a program cannot raise
    its citation precision by refusing or by dropping its context (as `precision_at_k` scores no retrieval).
    """
    gold = set(gold_sources)
    if not gold:
        raise ValueError("gold_sources is empty: each example needs at least one gold source")
    return sum(source in gold for source in cited_sources) / len(cited_sources) if cited_sources else 0.0


def _answer(text_metric: Callable[[str, str], float]) -> ProgramMetric:
    def metric(example, pred, trace=None) -> float:
        return text_metric(pred.answer, example.answer)

    metric.__name__ = text_metric.__name__
    return metric


def _sources(pred) -> list[str]:
    return [hit.chunk.source for hit in getattr(pred, "hits", [])]


METRICS: dict[str, ProgramMetric] = {
    "exact_match": _answer(exact_match),
    "token_f1": _answer(token_f1),
    "rouge_l": _answer(rouge_l),
    "bleu": _answer(bleu),
    "recall@5": lambda example, pred, trace=None: recall_at_k(_sources(pred), example.sources, 5),
    "precision@5": lambda example, pred, trace=None: precision_at_k(_sources(pred), example.sources, 5),
    "mrr": lambda example, pred, trace=None: mrr(_sources(pred), example.sources),
    "ndcg@5": lambda example, pred, trace=None: ndcg_at_k(_sources(pred), example.sources, 5),
    "citation_precision": lambda example, pred, trace=None: citation_precision(_sources(pred), example.sources),
}


def make_metric(name: str) -> ProgramMetric:
    """The program metric called `name`; a ValueError lists the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"Unknown metric {name!r}. Valid metrics: {', '.join(METRICS)}.") from None
