"""How far each LLM judge agrees with people: the judges that need no ground truth, run on the served answers
that a reviewer rated (scripts/feedback.py, scripts/review.py), against those ratings.

A judge's verdict is "good" when its score is at least 0.5. Agreement is Cohen's kappa (agreement beyond what the
two raters' base rates give by chance: 1 perfect, 0 chance, below 0 worse than chance) with accuracy and the
confusion counts beside it. A judge is trusted when it was compared on at least `min_labels` rated answers
(default 20) and its kappa is at least `min_kappa` (default 0.6, "substantial agreement" on the Landis & Koch
scale); with fewer labels the report says so instead of trusting a number from a handful of answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from optimizers.feedback import human_rating
from optimizers.served_traces import ServedTrace, find_served_traces
from optimizers.trace_checks import JUDGED, JudgeLM, judge_inputs, run_judge

log = logging.getLogger(__name__)

MIN_LABELS = 20
TRUSTED_KAPPA = 0.6
GOOD_SCORE = 0.5


@dataclass
class JudgeAgreement:
    """One judge against the human ratings. `good_good` counts answers both called good, `judge_good_human_bad`
    answers the judge passed and the reviewer rated bad, and so on."""

    judge: str
    good_good: int = 0
    bad_bad: int = 0
    judge_good_human_bad: int = 0
    judge_bad_human_good: int = 0
    failed: int = 0
    not_applicable: int = 0
    trusted: bool = False
    verdict: str = ""

    @property
    def compared(self) -> int:
        return self.good_good + self.bad_bad + self.judge_good_human_bad + self.judge_bad_human_good

    @property
    def accuracy(self) -> float | None:
        return (self.good_good + self.bad_bad) / self.compared if self.compared else None

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa; None when undefined (no comparisons, or both raters gave one verdict throughout)."""
        n = self.compared
        if not n:
            return None
        judge_good = (self.good_good + self.judge_good_human_bad) / n
        human_good = (self.good_good + self.judge_bad_human_good) / n
        chance = judge_good * human_good + (1 - judge_good) * (1 - human_good)
        if chance >= 1.0:
            return None
        return (self.accuracy - chance) / (1 - chance)


@dataclass
class Calibration:
    rated: int
    agreements: list[JudgeAgreement]
    min_labels: int
    min_kappa: float

    @property
    def failed(self) -> int:
        return sum(agreement.failed for agreement in self.agreements)


def calibrate_judges(
    judge_lm: JudgeLM,
    *,
    judges: Sequence[str] = JUDGED,
    since_ms: int | None = None,
    experiment_ids: Sequence[str] | None = None,
    min_labels: int = MIN_LABELS,
    min_kappa: float = TRUSTED_KAPPA,
    progress: Callable[[int, int], None] | None = None,
) -> Calibration:
    """Run each judge on every human-rated served answer (traced since `since_ms`) and measure its agreement.
    A judge that fails on an answer (its LM raised) counts that answer as failed and goes on."""
    rated = [(trace, rating) for trace in find_served_traces(since_ms, experiment_ids=experiment_ids)
             if (rating := human_rating(trace)) is not None]
    agreements = [JudgeAgreement(name) for name in judges]
    total = len(rated) * len(agreements)
    for done, (agreement, (trace, rating)) in enumerate(
        ((agreement, pair) for agreement in agreements for pair in rated), start=1
    ):
        _compare(agreement, trace, rating, judge_lm)
        if progress is not None:
            progress(done, total)
    for agreement in agreements:
        agreement.trusted, agreement.verdict = _verdict(agreement, min_labels, min_kappa)
    return Calibration(len(rated), agreements, min_labels, min_kappa)


def _compare(agreement: JudgeAgreement, trace: ServedTrace, rating: bool, judge_lm: JudgeLM) -> None:
    if judge_inputs(agreement.judge, trace) is None:
        agreement.not_applicable += 1
        return
    try:
        judged = run_judge(agreement.judge, trace, judge_lm)
    except Exception as exc:  # noqa: BLE001 - one failed judge call is one failed row, the job goes on
        log.warning("judge %s failed on trace %s: %s: %s", agreement.judge, trace.trace_id, type(exc).__name__, exc)
        agreement.failed += 1
        return
    good = float(judged.score) >= GOOD_SCORE
    if good and rating:
        agreement.good_good += 1
    elif not good and not rating:
        agreement.bad_bad += 1
    elif good:
        agreement.judge_good_human_bad += 1
    else:
        agreement.judge_bad_human_good += 1


def _verdict(agreement: JudgeAgreement, min_labels: int, min_kappa: float) -> tuple[bool, str]:
    if agreement.compared < min_labels:
        return False, f"too few labels ({agreement.compared} < {min_labels}): rate more answers before trusting it"
    kappa = agreement.kappa
    if kappa is None:
        return False, "kappa undefined: the reviewers or the judge gave one verdict throughout; rate varied answers"
    if kappa >= min_kappa:
        return True, f"trusted (kappa {kappa:.2f} >= {min_kappa:.2f})"
    return False, f"not trusted (kappa {kappa:.2f} < {min_kappa:.2f})"


def format_calibration(calibration: Calibration) -> str:
    """The report scripts print: one line per judge, then what was counted."""
    lines = [
        f"{'judge':<18} {'compared':>8} {'kappa':>6} {'accuracy':>8}  good/good bad/bad judge+human- judge-human+"
        f" {'failed':>6} {'n/a':>4}  verdict"
    ]
    for a in calibration.agreements:
        kappa = f"{a.kappa:.2f}" if a.kappa is not None else "-"
        accuracy = f"{a.accuracy:.2f}" if a.accuracy is not None else "-"
        lines.append(
            f"{a.judge:<18} {a.compared:>8} {kappa:>6} {accuracy:>8}  {a.good_good:>9} {a.bad_bad:>7}"
            f" {a.judge_good_human_bad:>12} {a.judge_bad_human_good:>12} {a.failed:>6} {a.not_applicable:>4}"
            f"  {a.verdict}"
        )
    lines.append(
        f"\n{calibration.rated} rated answer(s); a judge is trusted with >= {calibration.min_labels} compared and "
        f"kappa >= {calibration.min_kappa:.2f}. Judge verdict: good when its score >= {GOOD_SCORE}."
    )
    if calibration.failed:
        lines.append(f"{calibration.failed} judge call(s) failed; those answers are left out of the agreement.")
    if not calibration.rated:
        lines.append("No served answer has a human rating yet: rate some with scripts/review.py or "
                     "scripts/feedback.py.")
    return "\n".join(lines)
