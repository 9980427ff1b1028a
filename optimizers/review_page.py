"""The review page: recent served answers with their question and citations, and a thumbs up, thumbs down or a
corrected answer for each, recorded on the trace by `optimizers.feedback.record_feedback` (as scripts/feedback.py).

Plain HTML forms, no script. scripts/review.py serves it on 127.0.0.1 only; the app also refuses requests for any
other host name (a web page cannot reach it by DNS rebinding) and any form without the page's own token (a web
page cannot post feedback through the reviewer's browser).
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote

from optimizers.feedback import human_rating, record_feedback
from optimizers.served_traces import ServedTrace, find_served_traces
from pipeline.errors import TesseraError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
MAX_FORM_BYTES = 64_000
_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; }
article { border: 1px solid #ccc; border-radius: .4rem; padding: .6rem 1rem; margin: .8rem 0; }
article.recorded { border-color: #2a7; }
.meta { color: #666; font-size: .85rem; } .answer { white-space: pre-wrap; }
form { display: inline; } textarea { width: 100%; } .notice { background: #e8f7ee; padding: .5rem; }
"""


def create_review_app(reviewer: str, *, limit: int = 50, experiment_ids: Sequence[str] | None = None):
    """The Starlette app of the review page, recording feedback as `reviewer`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    token = secrets.token_urlsafe(24)
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
               "X-Frame-Options": "DENY", "Cache-Control": "no-store"}

    async def page(request: Request) -> Response:
        traces = find_served_traces(limit=limit, experiment_ids=experiment_ids)
        recorded = request.query_params.get("recorded")
        return HTMLResponse(render_page(traces, reviewer, token, recorded), headers=headers)

    async def feedback(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return HTMLResponse(_error_page("The form is too large."), status_code=413, headers=headers)
        form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", errors="replace")).items()}
        if not secrets.compare_digest(form.get("token", ""), token):
            return HTMLResponse(_error_page("This form is not from this review page; reload the page."),
                                status_code=403, headers=headers)
        action, trace_id = form.get("action"), form.get("trace_id", "")
        if action not in ("up", "down", "edit"):
            return HTMLResponse(_error_page("Unknown action."), status_code=400, headers=headers)
        try:
            record_feedback(
                trace_id, reviewer=reviewer, rating={"up": True, "down": False}.get(action),
                comment=form.get("comment"), correct_answer=form.get("correct_answer") if action == "edit" else None,
            )
        except TesseraError as exc:
            return HTMLResponse(_error_page(str(exc)), status_code=400, headers=headers)
        return RedirectResponse(f"/?recorded={quote(trace_id)}#{quote(trace_id)}", status_code=303)

    return Starlette(
        routes=[Route("/", page, methods=["GET"]), Route("/feedback", feedback, methods=["POST"])],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES))],
    )


def render_page(traces: Sequence[ServedTrace], reviewer: str, token: str, recorded: str | None = None) -> str:
    """The page's HTML; every text from a trace is escaped."""
    notice = f'<p class="notice" id="notice">Recorded feedback on {_e(recorded)}.</p>' if recorded else ""
    cards = "\n".join(_card(trace, token, trace.trace_id == recorded) for trace in traces)
    empty = "" if traces else "<p id=\"empty\">No served requests are traced in this store yet.</p>"
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera review</title>"
        f"<style>{_STYLE}</style></head><body><h1>Served answers</h1>"
        f"<p class=\"meta\">Reviewing as <b id=\"reviewer\">{_e(reviewer)}</b>; newest first. Thumbs up: a good "
        "answer; thumbs down: a bad one; a corrected answer also rates it bad.</p>"
        f"{notice}{empty}{cards}</body></html>"
    )


def _card(trace: ServedTrace, token: str, recorded: bool) -> str:
    when = datetime.fromtimestamp(trace.timestamp_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    rating = human_rating(trace)
    rated = {None: "not rated", True: "rated good", False: "rated bad"}[rating]
    question = _e(trace.question) if trace.question else "<i>(question not recorded)</i>"
    citations = "".join(f"<li>{_e(source)}</li>" for source in trace.sources) or "<li><i>none</i></li>"
    hidden = f'<input type="hidden" name="token" value="{_e(token)}"><input type="hidden" name="trace_id" ' \
             f'value="{_e(trace.trace_id)}">'
    blocked = " · blocked by a guard" if trace.blocked else ""
    return (
        f'<article id="{_e(trace.trace_id)}" class="{"recorded" if recorded else ""}">'
        f'<p class="meta">{when} · {_e(trace.trace_id)} · {_e(trace.model or "")}{blocked} · '
        f'<span class="rating">{rated}</span></p>'
        f'<p><b>Q:</b> <span class="question">{question}</span></p>'
        f'<p class="answer"><b>A:</b> {_e(trace.answer)}</p>'
        f'<p><b>Citations:</b></p><ul class="citations">{citations}</ul>'
        f'<form method="post" action="/feedback">{hidden}<button name="action" value="up" class="up">👍 good</button>'
        f'</form> <form method="post" action="/feedback">{hidden}<button name="action" value="down" class="down">'
        '👎 bad</button></form>'
        f'<details><summary>Edit answer</summary><form method="post" action="/feedback">{hidden}'
        f'<textarea name="correct_answer" rows="3">{_e(trace.answer)}</textarea>'
        '<input name="comment" placeholder="why (optional)" size="60"> '
        '<button name="action" value="edit" class="save">Save corrected answer</button></form></details></article>'
    )


def _error_page(message: str) -> str:
    return f"<!doctype html><html><body><p id=\"error\">{_e(message)}</p><p><a href=\"/\">Back</a></p></body></html>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
