"""The auditor's report: who had what access when, read back from the audit log.

`summarize` turns audit events into grant spans and counts (pure); `render_html` makes a
self-contained page (CSS inline, the timeline chart an inline PNG drawn by matplotlib).
matplotlib is optional (requirements-report.txt): without it the page has every table
and count, and says how to add the chart.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .audit import VerifyResult
from .certification import evidence
from .domain import DurationError, format_duration, from_iso, parse_duration
from .messages import inert, link_text, redact_urls, sessions_sentence

BREAK_GLASS_ACTOR = "policy"  # the actor of an approval made by a policy hook


@dataclass
class GrantSpan:
    """One grant: from `start` until `end` (None: still held at the report's end)."""

    request_id: str
    user: str
    resource: str
    start: datetime
    end: datetime | None = None
    ended: str = "holding"  # expired, revoked or holding
    approved_by: str = ""
    reason: str = ""
    duration: str = ""
    break_glass: bool = False
    reviewed_by: str = ""
    revoke_failures: int = 0
    failing_since: datetime | None = None
    ends_at: datetime | None = None  # the planned end, moved by extensions
    extensions: int = 0
    links: dict = field(default_factory=dict)  # checked fields, as the tracker told them
    closed: str = ""  # why it ended with its ticket ("OPS-12 moved to Done")
    sessions: dict | None = None  # what the revoke did to sessions opened before

    def held_for(self, until: datetime) -> timedelta:
        return (self.end or until) - self.start


@dataclass
class Summary:
    since: datetime
    until: datetime
    verify: VerifyResult
    counts: Counter = field(default_factory=Counter)
    spans: list[GrantSpan] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)  # requests that led to no access
    extensions: list[dict] = field(default_factory=list)  # grants given more time
    reloads: list[dict] = field(default_factory=list)  # policy reloads, failed ones too
    checkpoints: list[dict] = field(default_factory=list)  # chain heads pinned
    sink_events: list[dict] = field(default_factory=list)  # sinks failing, recovering
    sinks: list = field(default_factory=list)  # SinkStatus of each configured sink, now
    events: int = 0
    standing: StandingSummary | None = None
    certifications: list[dict] = field(default_factory=list)  # certification.evidence

    @property
    def break_glass(self) -> list[GrantSpan]:
        return [s for s in self.spans if s.break_glass]

    @property
    def unreviewed(self) -> list[GrantSpan]:
        return [s for s in self.break_glass if not s.reviewed_by]


COUNTED = (
    ("requests", "Requests"),
    ("approvals", "Approved by a person"),
    ("denials", "Denied"),
    ("break_glass", "Break-glass uses"),
    ("unreviewed", "Unreviewed break-glass grants"),
    ("grants", "Grants"),
    ("extensions", "Extensions"),
    ("grant_failures", "Grant failures"),
    ("expired", "Expired"),
    ("revoked", "Revoked early"),
    ("revoke_failures", "Failed revoke attempts"),
    ("cancelled", "Cancelled"),
    ("timed_out", "Timed out"),
)


def summarize(
    events: Iterable[dict], since: datetime, until: datetime, verify: VerifyResult
) -> Summary:
    """Counts of what happened in [since, until], and every grant that overlaps it."""
    summary = Summary(since, until, verify)
    records = [e for e in events if from_iso(e.get("ts"))]
    unsaved = _unsaved(records)
    grants = _Grants()
    for record in records:
        if (record.get("request_id"), record.get("event")) in unsaved:
            continue  # refused: audited as attempted, but nothing changed
        at = from_iso(record["ts"])
        inside = since <= at <= until
        summary.events += inside
        grants.take(record, at)
        _note(summary, record, inside, grants.requested, grants.spans)
        if inside:
            _count(summary, record, grants.requested)
    for rid, span in grants.spans.items():
        span.reviewed_by = grants.reviewed.get(rid, "")
        if span.start <= until and (span.end is None or span.end >= since):
            summary.spans.append(span)
    summary.spans.sort(key=lambda s: (s.resource, s.start))
    summary.counts["unreviewed"] = len(summary.unreviewed)
    summary.standing = summarize_standing(records, since, until)
    summary.certifications = evidence((r for r in records if from_iso(r["ts"]) <= until), since)
    return summary


def _unsaved(records: list[dict]) -> set[tuple[str, str]]:
    """(request id, event) of every change the store refused after it was audited."""
    return {
        (record.get("request_id"), str(record.get("detail", "")).split(" was not saved")[0])
        for record in records
        if record.get("event") == "store_write_failed"
    }


class _Grants:
    """Each request's request, approval and review events, and the span of each grant."""

    def __init__(self):
        self.requested: dict[str, dict] = {}
        self.approved: dict[str, dict] = {}
        self.reviewed: dict[str, str] = {}
        self.spans: dict[str, GrantSpan] = {}

    def take(self, record: dict, at: datetime) -> None:
        event, rid = record.get("event"), record.get("request_id")
        if event == "requested":
            self.requested[rid] = record
        elif event == "approved":
            self.approved[rid] = record
        elif event == "reviewed":
            self.reviewed[rid] = record.get("actor", "")
        elif event == "granted":
            self.spans[rid] = self._span(rid, record, at)
        elif event in ("expired", "revoked") and rid in self.spans:
            self.spans[rid].end, self.spans[rid].ended = at, event
            self.spans[rid].sessions = record.get("sessions")
        elif event == "link_closed" and rid in self.spans:
            self.spans[rid].closed = str(record.get("detail", ""))
        elif event == "revoke_failed" and rid in self.spans:
            self.spans[rid].revoke_failures += 1
            self.spans[rid].failing_since = self.spans[rid].failing_since or at

    def _span(self, rid: str, record: dict, at: datetime) -> GrantSpan:
        first = self.requested.get(rid, {})
        decision = self.approved.get(rid, {})
        return GrantSpan(
            request_id=rid,
            user=record.get("user", "?"),
            resource=record.get("resource", "?"),
            start=at,
            approved_by=decision.get("actor", ""),
            reason=first.get("reason", ""),
            duration=first.get("duration", ""),
            break_glass=decision.get("actor") == BREAK_GLASS_ACTOR,
            ends_at=_moment(record.get("expires_at")),
            links=first.get("links") if isinstance(first.get("links"), dict) else {},
        )


def _moment(text) -> datetime | None:
    try:
        return from_iso(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _extension(record: dict, requested: dict[str, dict], span: GrantSpan | None) -> dict:
    """One extension: who approved it, how much, the new end. Logs written before the
    `extended` event named its extension and end carry them only in its detail."""
    detail = str(record.get("detail", ""))
    extension = record.get("extension") or (
        detail.split()[1] if detail.startswith("by ") and len(detail.split()) > 1 else ""
    )
    asked = requested.get(extension, {})
    new_end = _moment(record.get("expires_at"))
    if new_end is None and span is not None and span.ends_at and asked.get("duration"):
        try:
            new_end = span.ends_at + parse_duration(asked["duration"])
        except DurationError:
            new_end = None
    if span is not None:
        span.extensions += 1
        span.ends_at = new_end or span.ends_at
    return {
        "ts": record.get("ts", ""),
        "request_id": record.get("request_id", ""),
        "extension": extension,
        "user": record.get("user", ""),
        "resource": record.get("resource", ""),
        "approved_by": record.get("actor", ""),
        "duration": asked.get("duration", ""),
        "reason": asked.get("reason", ""),
        "new_end": new_end,
    }


SINK_EVENTS = ("sink_failing", "sink_recovered", "audit_tampering_suspected", "audit_repaired")


def _note(
    summary: Summary,
    record: dict,
    inside: bool,
    requested: dict[str, dict],
    spans: dict[str, GrantSpan],
) -> None:
    """The events the report lists besides grants: extensions (which also move a grant's
    planned end, inside the period or before it), reloads, checkpoints, sink trouble."""
    event = record.get("event")
    if event == "extended":
        extension = _extension(record, requested, spans.get(record.get("request_id")))
        if inside:
            summary.extensions.append(extension)
    elif not inside:
        return
    elif event in ("policy_reloaded", "policy_reload_failed"):
        summary.reloads.append(record)
    elif event == "checkpoint":
        summary.checkpoints.append(record)
    elif event in SINK_EVENTS:
        summary.sink_events.append(record)


def _count(summary: Summary, record: dict, requested: dict[str, dict]) -> None:
    event, actor = record.get("event"), record.get("actor")
    key = {
        "requested": "requests",
        "denied": "denials",
        "granted": "grants",
        "extended": "extensions",
        "grant_failed": "grant_failures",
        "expired": "expired",
        "revoked": "revoked",
        "revoke_failed": "revoke_failures",
        "cancelled": "cancelled",
        "timed_out": "timed_out",
    }.get(event)
    if event == "approved":
        key = "break_glass" if actor == BREAK_GLASS_ACTOR else "approvals"
    if key:
        summary.counts[key] += 1
    if event in ("denied", "cancelled", "timed_out", "grant_failed"):
        first = requested.get(record.get("request_id"), {})
        summary.refused.append({**record, "reason": first.get("reason", "")})


# -- standing access: held at a target with no grant (standing.py) ----------------------


@dataclass
class StandingSpan:
    """One finding of the standing-access sweep: from when it was found until it was
    removed or cleared (None: still present at the report's end)."""

    finding: str
    resource: str
    user: str
    account: str
    found: datetime
    end: datetime | None = None
    ended: str = "present"  # removed, cleared or present
    why: str = ""


@dataclass
class StandingSummary:
    spans: list[StandingSpan]  # every finding that overlaps the period
    since: datetime
    until: datetime

    def found(self) -> list[StandingSpan]:
        return [s for s in self.spans if self.since <= s.found <= self.until]

    def ended(self, how: str) -> list[StandingSpan]:
        return [s for s in self.spans if s.ended == how and self.since <= s.end <= self.until]

    def present(self) -> list[StandingSpan]:
        return [s for s in self.spans if s.end is None or s.end > self.until]


def summarize_standing(
    records: Iterable[dict], since: datetime, until: datetime
) -> StandingSummary:
    """The findings (`standing_found`), and how each ended (`standing_removed`,
    `standing_cleared`), as far as the events up to `until` say."""
    spans: dict[str, StandingSpan] = {}
    for record in records:
        event, at = record.get("event"), from_iso(record.get("ts"))
        key = record.get("finding")
        if not key or at is None or at > until:
            continue
        if event == "standing_found":
            spans[key] = StandingSpan(
                key,
                record.get("resource", "?"),
                record.get("user", "?"),
                record.get("account") or "",
                at,
            )
        elif event in ("standing_removed", "standing_cleared") and key in spans:
            span = spans[key]
            span.end, span.ended = at, event.removeprefix("standing_")
            span.why = record.get("detail", "")
    overlapping = [s for s in spans.values() if s.end is None or s.end >= since]
    overlapping.sort(key=lambda s: (s.resource, s.found))
    return StandingSummary(overlapping, since, until)


def standing_section(standing: StandingSummary | None) -> str:
    """The report's "Standing access" section: found, removed, cleared, still present."""
    parts = ["<h2>Standing access</h2>"]
    if standing is None or not standing.spans:
        parts.append(
            "<p>Nobody was found holding access at a target without a grant in this period "
            "(the standing-access sweep, ACCESS_STANDING_SWEEP).</p>"
        )
        return "\n".join(parts)
    parts.append(
        f"<p>{len(standing.found())} found in the period, {len(standing.ended('removed'))} "
        f"removed, {len(standing.ended('cleared'))} cleared, {len(standing.present())} still "
        "present at its end: accounts a target listed that no grant and no `standing` entry "
        "explained.</p>"
    )
    rows = []
    for s in standing.spans:
        if s.end is None or s.end > standing.until:
            outcome = "<span class='tag bg'>still present</span>"
        else:
            outcome = f"{_e(s.ended)} {_e(_when(s.end))}" + (
                f" ({_e(inert(redact_urls(s.why), 120))})" if s.why else ""
            )
        rows.append(
            f"<tr><td>{_e(s.resource)}</td><td>{_e(inert(s.user, 80))}</td>"
            f"<td><code>{_e(inert(s.account, 80))}</code></td><td>{_e(_when(s.found))}</td>"
            f"<td>{outcome}</td></tr>"
        )
    parts.append(
        "<table><tr><th>Resource</th><th>Who (at the target)</th><th>Account</th>"
        "<th>Found</th><th>Outcome</th></tr>" + "".join(rows) + "</table>"
    )
    return "\n".join(parts)


def certifications_section(certifications: list[dict]) -> str:
    """The report's "Access certifications" section: each certification opened in the
    period (when, resource, reviewers), each item with its decision, by whom, when, the
    note and the removal's outcome at the target; a target that could not be listed."""
    parts = ["<h2>Access certifications</h2>"]
    if not certifications:
        parts.append("<p>No access certification was opened in this period.</p>")
        return "\n".join(parts)
    for c in certifications:
        state = f"closed {_ts(c['closed_at'])}" if c["closed_at"] else "still open"
        parts.append(
            f"<h3>{_e(c['resource'])}: certification <code>{_e(c['certification'])}</code></h3>"
            f"<p>Opened {_ts(c['opened_at'])} by {_e(c['opened_by'])}; reviewers "
            f"{_e(', '.join(c['reviewers']) or 'nobody')}; deadline {_ts(c['deadline_at'])}; "
            f"{state}; {len(c['items'])} item(s).</p>"
        )
        if c["unlisted"]:
            parts.append(
                "<p class='alert'>Its target could not be listed: "
                f"{_e(inert(redact_urls(c['unlisted']), 200))}. Nobody was reviewed.</p>"
            )
        rows = [
            f"<tr><td><code>{_e(i['item'])}</code></td>"
            f"<td>{_e(inert(i.get('user') or i.get('user_email') or '?', 80))}</td>"
            f"<td><code>{_e(inert(i.get('account') or '', 80))}</code></td>"
            f"<td>{_e(i.get('why'))}{(' (' + _e(i.get('entry')) + ')') if i.get('entry') else ''}</td>"
            f"<td>{_e(i.get('decision') or 'undecided')}</td><td>{_e(i.get('decided_by'))}</td>"
            f"<td>{_ts(i.get('decided_at'))}</td><td>{_e(inert(i.get('note') or '', 200))}</td>"
            f"<td>{_e(inert(redact_urls(i.get('outcome') or ''), 200))}</td></tr>"
            for i in c["items"]
        ]
        parts.append(
            _table(
                ["Item", "Member", "Account", "Why there", "Decision", "By", "When", "Note",
                 "Outcome at the target"],
                rows,
                "items",
            )
        )  # fmt: skip
    return "\n".join(parts)


# -- the chart -----------------------------------------------------------------------

COLORS = {"approved": "#4c78a8", "break_glass": "#e45756", "failing": "#f58518"}
CHART_NEEDS = (
    "the timeline chart needs matplotlib, which the bot itself does not: "
    "pip install -r requirements-report.txt"
)


def chart_missing() -> str | None:
    """Why there can be no chart (matplotlib is not installed), or None."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return CHART_NEEDS
    return None


# The plot is about 1,000 pixels wide: no grant is drawn narrower than 4 of them, so a
# 10-minute grant still shows in a 30-day report.
MIN_BAR_FRACTION = 0.004


def drawn_span(start: float, end: float, left: float, right: float) -> tuple[float, float]:
    """(left edge, width) of a grant's bar, in the axis' units: at least
    MIN_BAR_FRACTION of the axis wide, and inside it."""
    width = max(end - start, (right - left) * MIN_BAR_FRACTION)
    start = min(start, right - width)
    return start, width


def timeline_png(summary: Summary) -> bytes | None:
    """One lane per user, one panel per resource; None when nobody held access."""
    if not summary.spans:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    by_resource: dict[str, list[GrantSpan]] = defaultdict(list)
    for span in summary.spans:
        by_resource[span.resource].append(span)
    lanes = {r: sorted({s.user for s in spans}) for r, spans in by_resource.items()}
    heights = [max(len(users), 1) * 0.45 + 0.9 for users in lanes.values()]
    figure, axes = plt.subplots(
        len(lanes),
        1,
        figsize=(11, sum(heights) + 0.6),
        sharex=True,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    left, right = summary.since, summary.until
    for ax, (resource, spans) in zip(axes[:, 0], sorted(by_resource.items())):
        users = lanes[resource]
        for span in spans:
            row = users.index(span.user)
            start = max(span.start, left)
            end = min(span.end or right, right)
            color = COLORS["break_glass"] if span.break_glass else COLORS["approved"]
            bar_left, bar_width = drawn_span(
                mdates.date2num(start),
                mdates.date2num(end),
                mdates.date2num(left),
                mdates.date2num(right),
            )
            ax.barh(
                row,
                bar_width,
                left=bar_left,
                height=0.6,
                color=color,
                hatch="//" if span.end is None else None,
                edgecolor="white" if span.end else "black",
                linewidth=0.5,
            )
            if span.failing_since:
                failing = max(span.failing_since, left)
                ax.barh(
                    row,
                    mdates.date2num(end) - mdates.date2num(failing),
                    left=mdates.date2num(failing),
                    height=0.25,
                    color=COLORS["failing"],
                )
        # parse_math=False: user text is never mathtext ("$\frac{$" would not draw).
        ax.set_yticks(range(len(users)), [f"@{inert(u, 40)}" for u in users], parse_math=False)
        ax.set_ylim(-0.7, len(users) - 0.3)
        ax.invert_yaxis()
        ax.set_title(
            inert(resource, 80), loc="left", fontsize=11, fontweight="bold", parse_math=False
        )
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    last = axes[-1, 0]
    last.set_xlim(mdates.date2num(left), mdates.date2num(right))
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    last.xaxis.set_major_locator(locator)
    last.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.legend(
        handles=[
            Patch(color=COLORS["approved"], label="approved by a person"),
            Patch(color=COLORS["break_glass"], label="break-glass (approved by policy)"),
            Patch(color=COLORS["failing"], label="revoke failing, retried"),
            Patch(facecolor="white", edgecolor="black", hatch="//", label="still held"),
        ],
        loc="upper right",
        ncol=4,
        frameon=False,
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


# -- the page ------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328;
margin:0;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a}.banner{padding:10px 14px;border-radius:6px;margin:16px 0;
font-weight:600}.ok{background:#dafbe1;color:#116329;border:1px solid #4ac26b}
.bad{background:#ffebe9;color:#82071e;border:1px solid #ff8182}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:24px}.card.alert{border-color:#ff8182;background:#fff5f5}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;
padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa}td.reason{max-width:320px;overflow-wrap:anywhere}
.tag{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px}
.bg{background:#ffebe9;color:#82071e}.hold{background:#fff8c5;color:#7d4e00}
img{max-width:100%}code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
input.filter{margin:4px 0 6px;padding:4px 8px;width:260px;border:1px solid #d0d7de;
border-radius:6px}h3{font-size:15px;margin:18px 0 6px}
"""


def _e(value) -> str:
    return html.escape(str(value if value is not None else ""))


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "still held"


def render_html(summary: Summary, *, log_files: list[str], generated: datetime) -> str:
    missing = chart_missing() if summary.spans else None
    png = None if missing else timeline_png(summary)
    verdict = "ok" if summary.verify.ok else "bad"
    mark = "&#10003;" if summary.verify.ok else "&#10007;"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Access audit report {_e(summary.since.date())} to {_e(summary.until.date())}</title>",
        f"<style>{CSS}</style><script>{FILTER_JS}</script></head><body><main>",
        "<h1>Access audit report</h1>",
        f"<div class='meta'>Period {_e(_when(summary.since))} to {_e(_when(summary.until))} "
        f"&middot; generated {_e(_when(generated))} &middot; {summary.events} audit events "
        f"in the period &middot; log: {', '.join(f'<code>{_e(p)}</code>' for p in log_files)}</div>",
        f"<div class='banner {verdict}'>{mark} Hash chain: {_e(summary.verify)}</div>",
        "<h2>Summary</h2><div class='cards'>",
    ]
    for key, label in COUNTED:
        alert = " alert" if key in ("unreviewed", "grant_failures") and summary.counts[key] else ""
        parts.append(f"<div class='card{alert}'><b>{summary.counts[key]}</b>{_e(label)}</div>")
    parts.append("</div><h2>Who had what access when</h2>")
    if png:
        data = base64.b64encode(png).decode()
        parts.append(
            f"<img alt='Timeline of grants per resource' src='data:image/png;base64,{data}'>"
            "<p class='meta'>Every grant is drawn at least a few pixels wide, however short; "
            "the table below gives the exact times.</p>"
        )
    elif missing:
        parts.append(f"<p>No chart: {_e(missing)}. The table below lists every grant.</p>")
    else:
        parts.append("<p>Nobody held access in this period.</p>")
    parts.append(_grants_table(summary))
    for title, section, empty in (
        ("Extensions", _extensions_table, "No grant was extended in this period."),
        ("Break-glass grants", _break_glass_table, "No break-glass grants in this period."),
        ("Requests that led to no access", _refused_table, "None."),
        ("Policy reloads", _reloads_table, "The policies were not reloaded in this period."),
    ):
        parts.append(f"<h2>{title}</h2>" + (section(summary) or f"<p>{empty}</p>"))
    parts.append(standing_section(summary.standing))
    parts.append(certifications_section(summary.certifications))
    parts.append("<h2>Copies off this host</h2>" + _sinks_section(summary))
    parts.append(
        "<p class='meta'>Check the log yourself: <code>python -m accessbot audit verify</code>, "
        "and against a sink's copy: <code>python -m accessbot audit verify --against COPY"
        "</code>; export it: <code>python -m accessbot audit export --since 30d --format csv"
        "</code>.</p></main></body></html>"
    )
    return "\n".join(parts)


# Type in the box above a table to show only the rows that contain the text.
FILTER_JS = (
    "function filterRows(box){var q=box.value.toLowerCase(),t=box.nextElementSibling;"
    "for(var i=1;i<t.rows.length;i++){var r=t.rows[i];"
    "r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':''}}"
)


def _table(head: list[str], rows: list[str], what: str) -> str:
    """A table with a search box above it that filters its rows as one types."""
    if not rows:
        return ""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        f"<input type='search' class='filter' placeholder='Search {_e(what)}...' "
        f"aria-label='Search {_e(what)}' oninput='filterRows(this)'>"
        f"<table><tr>{header}</tr>" + "".join(rows) + "</table>"
    )


def _ts(text) -> str:
    return _e(str(text or "")[:16].replace("T", " "))


def _grants_table(summary: Summary) -> str:
    rows = []
    for s in summary.spans:
        ended = {
            "expired": "expired",
            "revoked": "revoked early",
            "holding": "<span class='tag hold'>still held</span>",
        }[s.ended]
        if s.revoke_failures:
            ended += f" ({s.revoke_failures} failed revoke attempt(s))"
        if s.extensions:
            ended += f" (extended {s.extensions} time(s))"
        if s.closed:
            ended += f": {_e(inert(s.closed))}"
        if s.sessions:
            ended += f". {_e(sessions_sentence(s.sessions).strip())}"
        by = (
            "policy <span class='tag bg'>break-glass</span>"
            if s.break_glass
            else "@" + _e(s.approved_by)
        )
        rows.append(
            f"<tr><td>{_e(s.resource)}</td><td>@{_e(s.user)}</td><td>{_e(_when(s.start))}</td>"
            f"<td>{_e(_when(s.end))}</td><td>{_e(format_duration(s.held_for(summary.until)))}</td>"
            f"<td>{ended}</td><td>{by}</td><td><code>{_e(s.request_id)}</code></td>"
            f"<td class='reason'>{_e(inert(s.reason))}{_links_cell(s.links)}</td></tr>"
        )
    head = ["Resource", "User", "From", "Until", "Held", "Ended", "Approved by", "Request"]
    return _table([*head, "Reason"], rows, "grants")


def _links_cell(links: dict) -> str:
    """A grant's checked tickets and incidents, as the tracker told them at request."""
    return "".join(
        f"<br>{_e(name)}: {_e(link_text(link))}"
        for name, link in links.items()
        if isinstance(link, dict)
    )


def _extensions_table(summary: Summary) -> str:
    rows = [
        f"<tr><td>{_ts(x['ts'])}</td><td><code>{_e(x['request_id'])}</code></td>"
        f"<td>@{_e(x['user'])}</td><td>{_e(x['resource'])}</td><td>{_e(x['approved_by'])}</td>"
        f"<td>{_e(x['duration'] or '?')}</td><td>{_e(_when(x['new_end']) if x['new_end'] else '?')}"
        f"</td><td><code>{_e(x['extension'])}</code></td>"
        f"<td class='reason'>{_e(inert(x['reason']))}</td></tr>"
        for x in summary.extensions
    ]
    head = ["When", "Grant", "User", "Resource", "Approved by", "Added", "New end", "Extension"]
    return _table([*head, "Reason"], rows, "extensions")


def _break_glass_table(summary: Summary) -> str:
    rows = [
        (
            f"<tr><td><code>{_e(s.request_id)}</code></td><td>@{_e(s.user)}</td>"
            f"<td>{_e(s.resource)}</td><td>{_e(_when(s.start))}</td>"
            f"<td class='reason'>{_e(inert(s.reason))}</td><td>"
            + (
                f"reviewed by @{_e(s.reviewed_by)}"
                if s.reviewed_by
                else "<span class='tag bg'>not reviewed</span> "
                f"<code>!access ack {_e(s.request_id)}</code>"
            )
            + "</td></tr>"
        )
        for s in summary.break_glass
    ]
    head = ["Request", "User", "Resource", "Granted", "Reason", "Review"]
    return _table(head, rows, "break-glass grants")


def _refused_table(summary: Summary) -> str:
    rows = [
        f"<tr><td>{_ts(r.get('ts'))}</td>"
        f"<td><code>{_e(r.get('request_id'))}</code></td><td>@{_e(r.get('user'))}</td>"
        f"<td>{_e(r.get('resource'))}</td><td>{_e(r.get('event', '').replace('_', ' '))}"
        f" by {_e(r.get('actor'))}</td><td class='reason'>{_e(inert(r.get('reason', '')))}</td>"
        f"<td class='reason'>{_e(inert(redact_urls(r.get('detail', '')), 160))}</td></tr>"
        for r in summary.refused
    ]
    head = ["When", "Request", "User", "Resource", "Outcome", "Reason given", "Detail"]
    return _table(head, rows, "requests")


def _reloads_table(summary: Summary) -> str:
    rows = [
        f"<tr><td>{_ts(r.get('ts'))}</td><td>{_e(r.get('actor'))}</td>"
        f"<td>{'loaded' if r.get('event') == 'policy_reloaded' else '<b>failed</b>: old kept'}"
        f"</td><td class='reason'>{_e(inert(redact_urls(r.get('detail', '')), 600))}</td></tr>"
        for r in summary.reloads
    ]
    return _table(["When", "By", "Outcome", "What changed"], rows, "policy reloads")


def _sinks_section(summary: Summary) -> str:
    """Where the log is copied, how far each copy got, and the chain heads pinned."""
    if summary.sinks:
        rows = [
            f"<tr><td>{_e(s.name)}</td><td>{s.seq} of {s.head}</td><td>{s.lag}</td>"
            f"<td>{_ts(s.shipped_at) or 'never'}</td><td>"
            + ("<span class='tag bg'>failing</span> " if s.failing else "")
            + f"{_ts(s.error_at)} {_e(inert(s.error, 300))}</td></tr>"
            for s in summary.sinks
        ]
        head = ["Sink", "Acknowledged up to", "Behind", "Last delivery", "Last error"]
        parts = ["<p>How far each sink has acknowledged the log, now:</p>"]
        parts.append(_table(head, rows, "sinks"))
    else:
        parts = [
            "<p>No audit sinks are configured (ACCESS_AUDIT_SINKS): this log is only on its "
            "host, where the hash chain proves that nothing changed in its middle but not that "
            "nothing was removed from its end.</p>"
        ]
    if summary.sink_events:
        rows = [
            f"<tr><td>{_ts(r.get('ts'))}</td><td>{_e(r.get('seq'))}</td>"
            f"<td>{_e(str(r.get('event', '')).replace('_', ' '))}</td>"
            f"<td class='reason'>{_e(inert(redact_urls(r.get('detail', '')), 400))}</td></tr>"
            for r in summary.sink_events
        ]
        parts.append("<h3>Sink and log events</h3>")
        parts.append(_table(["When", "Seq", "Event", "Detail"], rows, "sink events"))
    if summary.checkpoints:
        rows = [
            f"<tr><td>{_ts(r.get('ts'))}</td><td>{_e(r.get('seq'))}</td>"
            f"<td>{_e(r.get('head_seq'))}</td><td><code>{_e(r.get('head_hash'))}</code></td></tr>"
            for r in summary.checkpoints
        ]
        parts.append(f"<h3>Checkpoints ({len(rows)})</h3>")
        parts.append(_table(["When", "Seq", "Chain head (seq)", "Head hash"], rows, "checkpoints"))
    else:
        parts.append("<p>No checkpoint was written in this period.</p>")
    return "".join(parts)
