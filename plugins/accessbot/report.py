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
from .domain import format_duration, from_iso
from .messages import inert, redact_urls

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
    events: int = 0
    standing: StandingSummary | None = None

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
    requested: dict[str, dict] = {}
    approved: dict[str, dict] = {}
    reviewed: dict[str, str] = {}
    spans: dict[str, GrantSpan] = {}
    unsaved: set[tuple[str, str]] = set()
    records = [e for e in events if from_iso(e.get("ts"))]
    for record in records:
        if record.get("event") == "store_write_failed":
            detail = str(record.get("detail", ""))
            unsaved.add((record.get("request_id"), detail.split(" was not saved")[0]))

    for record in records:
        event, rid = record.get("event"), record.get("request_id")
        if (rid, event) in unsaved:
            continue  # refused: audited as attempted, but nothing changed
        at = from_iso(record["ts"])
        inside = since <= at <= until
        summary.events += inside
        if event == "requested":
            requested[rid] = record
        elif event == "approved":
            approved[rid] = record
        elif event == "reviewed":
            reviewed[rid] = record.get("actor", "")
        elif event == "granted":
            first = requested.get(rid, {})
            decision = approved.get(rid, {})
            spans[rid] = GrantSpan(
                request_id=rid,
                user=record.get("user", "?"),
                resource=record.get("resource", "?"),
                start=at,
                approved_by=decision.get("actor", ""),
                reason=first.get("reason", ""),
                duration=first.get("duration", ""),
                break_glass=decision.get("actor") == BREAK_GLASS_ACTOR,
            )
        elif event in ("expired", "revoked") and rid in spans:
            spans[rid].end, spans[rid].ended = at, event
        elif event == "revoke_failed" and rid in spans:
            spans[rid].revoke_failures += 1
            spans[rid].failing_since = spans[rid].failing_since or at
        if inside:
            _count(summary, record, requested)
    for rid, span in spans.items():
        span.reviewed_by = reviewed.get(rid, "")
        if span.start <= until and (span.end is None or span.end >= since):
            summary.spans.append(span)
    summary.spans.sort(key=lambda s: (s.resource, s.start))
    summary.counts["unreviewed"] = len(summary.unreviewed)
    summary.standing = summarize_standing(records, since, until)
    return summary


def _count(summary: Summary, record: dict, requested: dict[str, dict]) -> None:
    event, actor = record.get("event"), record.get("actor")
    key = {
        "requested": "requests",
        "denied": "denials",
        "granted": "grants",
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
            ax.barh(
                row,
                mdates.date2num(end) - mdates.date2num(start),
                left=mdates.date2num(start),
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
        f"<style>{CSS}</style></head><body><main>",
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
        )
    elif missing:
        parts.append(f"<p>No chart: {_e(missing)}. The table below lists every grant.</p>")
    else:
        parts.append("<p>Nobody held access in this period.</p>")
    parts.append(_grants_table(summary))
    parts.append("<h2>Break-glass grants</h2>")
    if summary.break_glass:
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
        parts.append(
            "<table><tr><th>Request</th><th>User</th><th>Resource</th><th>Granted</th>"
            "<th>Reason</th><th>Review</th></tr>" + "".join(rows) + "</table>"
        )
    else:
        parts.append("<p>No break-glass grants in this period.</p>")
    parts.append(standing_section(summary.standing))
    parts.append("<h2>Requests that led to no access</h2>")
    if summary.refused:
        rows = [
            f"<tr><td>{_e(r.get('ts', '')[:16].replace('T', ' '))}</td>"
            f"<td><code>{_e(r.get('request_id'))}</code></td><td>@{_e(r.get('user'))}</td>"
            f"<td>{_e(r.get('resource'))}</td><td>{_e(r.get('event', '').replace('_', ' '))}"
            f" by {_e(r.get('actor'))}</td><td class='reason'>{_e(inert(r.get('reason', '')))}</td>"
            f"<td class='reason'>{_e(inert(redact_urls(r.get('detail', '')), 160))}</td></tr>"
            for r in summary.refused
        ]
        parts.append(
            "<table><tr><th>When</th><th>Request</th><th>User</th><th>Resource</th>"
            "<th>Outcome</th><th>Reason given</th><th>Detail</th></tr>" + "".join(rows) + "</table>"
        )
    else:
        parts.append("<p>None.</p>")
    parts.append(
        "<p class='meta'>Check the log yourself: <code>python -m accessbot audit verify</code>; "
        "export it: <code>python -m accessbot audit export --since 30d --format csv</code>.</p>"
        "</main></body></html>"
    )
    return "\n".join(parts)


def _grants_table(summary: Summary) -> str:
    if not summary.spans:
        return ""
    rows = []
    for s in summary.spans:
        ended = {
            "expired": "expired",
            "revoked": "revoked early",
            "holding": "<span class='tag hold'>still held</span>",
        }[s.ended]
        if s.revoke_failures:
            ended += f" ({s.revoke_failures} failed revoke attempt(s))"
        by = (
            "policy <span class='tag bg'>break-glass</span>"
            if s.break_glass
            else "@" + _e(s.approved_by)
        )
        rows.append(
            f"<tr><td>{_e(s.resource)}</td><td>@{_e(s.user)}</td><td>{_e(_when(s.start))}</td>"
            f"<td>{_e(_when(s.end))}</td><td>{_e(format_duration(s.held_for(summary.until)))}</td>"
            f"<td>{ended}</td><td>{by}</td><td><code>{_e(s.request_id)}</code></td>"
            f"<td class='reason'>{_e(inert(s.reason))}</td></tr>"
        )
    return (
        "<table><tr><th>Resource</th><th>User</th><th>From</th><th>Until</th><th>Held</th>"
        "<th>Ended</th><th>Approved by</th><th>Request</th><th>Reason</th></tr>"
        + "".join(rows)
        + "</table>"
    )
