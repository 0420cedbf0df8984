"""Rich renderings for the audit CLI: entry tables, provenance trees, reputation, reports."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection, Sequence

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from trustlayer.audit.record_view import RecordView
from trustlayer.audit.store import IndexedEntry, Reputation
from trustlayer.audit.verify import VerifyReport

__all__ = ["entries_table", "provenance_tree", "report_lines", "reputation_table"]


def _when(millis: int) -> str:
    """Unix milliseconds (the record time format) as UTC text."""
    if not millis:
        return "-"
    return _dt.datetime.fromtimestamp(millis / 1000, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def entries_table(rows: Sequence[tuple[int, RecordView | IndexedEntry | None, str | None]], title: str) -> Table:
    """A table of entries; a row whose record did not verify shows why instead of its fields."""
    table = Table(title=f"{title} (times UTC)", show_lines=False)
    for name, justify in (("#", "right"), ("time", "left"), ("conversation", "left"), ("dir", "left"),
                          ("route", "left"), ("outcome", "left"), ("rules", "left"), ("entities", "left"),
                          ("seq", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for index, view, problem in rows:
        if view is None:
            table.add_row(str(index), "-", f"[red]UNVERIFIED: {escape(problem or 'signature did not verify')}[/red]",
                          "", "", "", "", "", "")
            continue
        # Record fields are signed but not ours: escape them so '[...]' is never read as markup.
        table.add_row(str(index), _when(view.time), escape(view.conversation_id), view.direction,
                      escape(f"{view.sender} → {view.recipient}"), escape(view.outcome),
                      escape(", ".join(view.rule_ids) or "-"), escape(", ".join(view.entity_types) or "-"),
                      str(view.sequence))
    return table


def provenance_tree(conversation: str, records: Sequence[tuple[int, RecordView]]) -> Tree:
    """The conversation's records as a tree: each record under the parents it names.

    A record whose parents are not in this conversation's records hangs from the root
    (marked with the missing parent digests); a record with several parents appears
    under the first one found, with the others listed.
    """
    root = Tree(f"[bold]conversation {escape(conversation)}[/bold] ({len(records)} records)")
    by_digest = {view.digest: (index, view) for index, view in records}
    nodes: dict[str, Tree] = {}

    def label(index: int, view: RecordView) -> str:
        rules = f" rules={','.join(view.rule_ids)}" if view.rule_ids else ""
        ents = f" entities={','.join(view.entity_types)}" if view.entity_types else ""
        text = f"#{index} {view.direction} {view.sender} → {view.recipient} ({view.outcome or '-'}){rules}{ents}"
        return f"{escape(text)} [dim]{view.digest[:12]}[/dim]"

    for index, view in sorted(records, key=lambda r: r[0]):
        known = [p for p in view.parents if p in nodes]
        parent = nodes[known[0]] if known else root
        text = label(index, view)
        missing = [p[:12] for p in view.parents if p not in by_digest]
        if missing:
            text += f" [yellow](parent not in this log: {', '.join(missing)})[/yellow]"
        if len(known) > 1:
            text += f" [dim](also child of {', '.join(p[:12] for p in known[1:])})[/dim]"
        nodes[view.digest] = parent.add(text)
    return root


def reputation_table(rows: Sequence[Reputation], flagged: Collection[str] = ()) -> Table:
    """Per-endpoint agreement history; ``flagged`` endpoints are marked."""
    table = Table(title="endpoint reputation")
    for name in ("endpoint", "agreements", "dissents", "abstentions", "dissent rate", "updated", "flag"):
        table.add_column(name, justify="left" if name in ("endpoint", "flag") else "right")
    for r in rows:
        decided = r.agreements + r.dissents
        rate = f"{100 * r.dissents / decided:.1f}%" if decided else "-"
        flag = "[red]FLAGGED[/red]" if r.endpoint in flagged else ""
        table.add_row(escape(r.endpoint), str(r.agreements), str(r.dissents), str(r.abstentions), rate,
                      _when(r.updated_at * 1000), flag)
    return table


def report_lines(report: VerifyReport) -> list[str]:
    """The verification report as plain lines (problems first)."""
    lines = [f"PROBLEM [{p.kind}] {p.message}" for p in report.problems]
    lines += [f"warning: {w}" for w in report.warnings]
    latest = report.latest.describe() if report.latest else "none"
    status = "intact" if report.ok else f"TAMPERED ({len(report.problems)} problem(s))"
    lines.append(f"{status}: {report.size} entries, root {report.root.hex()[:16]}..., "
                 f"{report.checkpoints} valid checkpoint(s), latest: {latest}")
    return lines
