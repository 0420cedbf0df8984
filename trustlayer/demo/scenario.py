"""The scripted scenario of ``trustlayer demo``, under ``policies/eu-gdpr.yaml``.

1. A device assistant routes a request carrying personal data and a credential; it goes
   to the "US cloud" pseudonymized and the answer comes back restored.
2. A request carrying health data is picked for the cloud by the router; policy keeps it
   on the device, so it is rerouted to the local model (and the refusal is recorded).
3. Two agents exchange signed messages; a forged and a replayed message are rejected.
4. The audit log is verified.

Every check is a fact the demo measures (what the cloud received, which rules decided,
which messages were rejected and why); the exit code is 0 only if all of them held.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from trustlayer.demo.cloud import RecordingCloud
from trustlayer.demo.workspace import Workspace
from trustlayer.errors import Blocked
from trustlayer.intercept.agent import agent, receive_message, send_message
from trustlayer.intercept.guard import conversation, guard
from trustlayer.intercept.route import route
from trustlayer.layer import TrustLayer
from trustlayer.stages import Signed
from trustlayer.types import Hop

__all__ = ["Check", "Scenario"]

NAME = "Maria Schmidt"
EMAIL = "maria.schmidt@example.de"
AWS_KEY = "AKIA4QW7ZX2P9LKM3HJD"
MRN = "MRN 48213377"
PASSWORD = "Tr0ub4dor&3xQ"
_PLACEHOLDER = re.compile(r"<[A-Z_]+_[0-9a-f]{6}>")


@dataclass
class Check:
    """One thing the demo promised, and whether it held."""

    name: str
    held: bool
    detail: str = ""


@dataclass
class Scenario:
    """Runs the four steps against a prepared workspace and a running cloud stand-in."""

    console: Console
    workspace: Workspace
    cloud: RecordingCloud
    max_tokens: int = 48
    checks: list[Check] = field(default_factory=list)
    hops: list[tuple[str, Hop]] = field(default_factory=list)

    def _observe(self, who: str) -> Any:
        def observer(hop: Hop, signed: Signed) -> None:
            self.hops.append((who, hop))
        return observer

    def check(self, name: str, held: bool, detail: str = "") -> None:
        """Record and print one check."""
        self.checks.append(Check(name, held, detail))
        mark = "[green]held[/]" if held else "[red]FAILED[/]"
        self.console.print(f"  {mark}  {name}" + (f" [dim]({detail})[/]" if detail else ""))

    def show_hops(self, start: int) -> None:
        """Print the hops recorded since ``start`` as a table (from the gate's observer)."""
        table = Table(show_header=True, header_style="bold", expand=False)
        for col in ("#", "who", "hop", "route", "found", "decision", "rules"):
            table.add_column(col)
        for i, (who, hop) in enumerate(self.hops[start:], start + 1):
            found = ", ".join(f"{k}×{v}" for k, v in sorted(hop.entity_counts.items())) or "-"
            d = hop.decision
            outcome = d.outcome.value if d else "-"
            if hop.direction == "block":
                outcome = f"[red]block at {hop.stage}[/]"
            rules = ", ".join(d.rule_ids) if d and d.rule_ids else "-"
            table.add_row(str(i), who, hop.direction, f"{hop.route.sender.id} → {hop.route.recipient.id}", found,
                          outcome, rules)
        self.console.print(table)

    # ── step 1 and 2: the device assistant ─────────────────────────────────────────────────

    def device(self) -> None:
        """Steps 1 and 2: the device assistant."""
        tl = TrustLayer.from_config(self.workspace.phone, observer=self._observe("phone"))
        try:
            self._assistant(tl)
        finally:
            tl.close()

    def _assistant(self, tl: TrustLayer) -> None:
        max_tokens = self.max_tokens

        @route(layer=tl)
        def pick(prompt: str) -> str:
            # The app's own router: long requests go to the big cloud model.
            return "us-cloud" if len(prompt) > 40 else "phone"

        @guard(layer=tl, to="us-cloud")
        def assistant(messages: list[dict[str, Any]], endpoint: str = "us-cloud") -> dict[str, Any]:
            return tl.client(endpoint).complete(messages, max_tokens=max_tokens, temperature=0.0)

        self.console.rule("[bold]1. Personal data and a credential, to the US cloud")
        prompt = (f"Hi, I am {NAME} ({EMAIL}). Our AWS key {AWS_KEY} leaked. Write one sentence asking "
                  f"{NAME} to rotate the key {AWS_KEY}.")
        start, sent_before = len(self.hops), len(self.cloud.received)
        with conversation("demo-assistant-1"):
            chosen = pick(prompt)
            reply = assistant([{"role": "user", "content": prompt}], endpoint=chosen)
        answer = reply["choices"][0]["message"].get("content") or ""
        outbound = [h for _, h in self.hops[start:] if h.direction == "outbound"]
        sent = outbound[-1].content.decode() if outbound else ""
        self.console.print(f"[bold]left the device:[/] {sent}")
        self.console.print(f"[bold]answer, restored on the device:[/] {answer.strip()}")
        self.show_hops(start)
        received = self.cloud.everything().decode("utf-8", "replace")
        self.check("the router's pick, the US cloud, was allowed", chosen == "us-cloud", chosen)
        leaked = [label for label, value in (("name", NAME), ("e-mail", EMAIL), ("AWS key", AWS_KEY))
                  if value in received]
        self.check("the cloud received a request, and none of the raw values",
                   len(self.cloud.received) > sent_before and not leaked,
                   f"leaked: {', '.join(leaked)}" if leaked else "name, e-mail and key pseudonymized")
        rules = set(outbound[-1].decision.rule_ids) if outbound and outbound[-1].decision else set()
        self.check("policy rules secrets-never-leave-raw and eu-transfer-pseudonymized decided",
                   {"secrets-never-leave-raw", "eu-transfer-pseudonymized"} <= rules, ", ".join(sorted(rules)))
        self.check("no placeholder is left in the answer the user sees", not _PLACEHOLDER.search(answer))

        self.console.rule("[bold]2. Health data: the router picks the cloud, policy keeps it on the device")
        prompt = f"My medical record number is {MRN}. Which vaccinations are due for me this year?"
        start, sent_before = len(self.hops), len(self.cloud.received)
        with conversation("demo-assistant-2"):
            chosen = pick(prompt)
            reply = assistant([{"role": "user", "content": prompt}], endpoint=chosen)
        answer = reply["choices"][0]["message"].get("content") or ""
        self.console.print(f"[bold]answer from the local model:[/] {answer.strip()}")
        self.show_hops(start)
        refusal = [h for _, h in self.hops[start:] if h.direction == "block" and h.stage == "route"]
        self.check("the router's pick was refused and rerouted to the device", chosen == "phone" and bool(refusal),
                   refusal[0].reason or "" if refusal else chosen)
        self.check("the cloud received nothing for this request", len(self.cloud.received) == sent_before)

    # ── step 3: agents ─────────────────────────────────────────────────────────────────────

    def agents(self) -> None:
        """Step 3: two agents, one forged and one replayed message."""
        self.console.rule("[bold]3. Two agents exchange signed messages")
        planner = TrustLayer.from_config(self.workspace.planner, observer=self._observe("planner"))
        reviewer = TrustLayer.from_config(self.workspace.reviewer, observer=self._observe("reviewer"))
        try:
            self._exchange(planner, reviewer)
        finally:
            planner.close()
            reviewer.close()

    def _exchange(self, planner: TrustLayer, reviewer: TrustLayer) -> None:
        @agent("reviewer", layer=reviewer)
        def review(text: str, sender: str) -> str:
            words = len(text.split())
            return f"Reviewed the {words}-word plan from {sender}: approved, rotate the staging password first."

        start = len(self.hops)
        msg = send_message(planner, to="reviewer", conversation_id="demo-agents",
                           text=f"Please review the rollout plan for {NAME}; staging uses password={PASSWORD}")
        self.console.print(f"[bold]planner → reviewer:[/] {msg.text}")
        reply = review(msg)
        back = receive_message(planner, reply)
        self.console.print(f"[bold]reviewer → planner (verified):[/] {back.message.text}")
        self.check("the reviewer authenticated the planner's message and signed its reply",
                   back.peer is not None and back.peer.sender == "reviewer")
        self.check("the password never crossed between the agents", PASSWORD not in msg.text)

        forged = msg.model_copy(update={"text": msg.text.replace("review", "delete")})
        self._rejected(review, forged, "a forged message (text changed after signing) is rejected")
        self._rejected(review, msg, "a replayed message is rejected")
        self.show_hops(start)

    def _rejected(self, handler: Any, message: Any, name: str) -> None:
        try:
            handler(message)
        except Blocked as blocked:
            self.check(name, blocked.stage == "authenticate", blocked.reason)
            return
        self.check(name, False, "it was accepted")

    # ── step 4: the audit log ──────────────────────────────────────────────────────────────

    def verify(self) -> bool:
        """Step 4: verify the whole audit log with the three public keys."""
        from trustlayer.audit.store import open_store
        from trustlayer.audit.verify import verify_log
        from trustlayer.provenance import Keyring, VerifyKey

        self.console.rule("[bold]4. Verify the audit log")
        ring = Keyring()
        for path in self.workspace.public_keys:
            ring.add(VerifyKey.from_file(path), owner=path.name.split(".")[0])
        store = open_store(f"sqlite:///{self.workspace.audit_db}")
        try:
            report = verify_log(store, record_keys=ring, log_keys=ring)
        finally:
            store.close()
        kinds = Counter(h.direction for _, h in self.hops)
        detail = (f"{report.size} signed records ({dict(kinds)}), {report.checkpoints} checkpoints, "
                  f"root {report.root.hex()[:16]}…")
        for problem in report.problems:
            self.console.print(f"  [red]{problem.kind}[/] entry {problem.index}: {problem.message}")
        self.check("the audit log verifies: every record signed, tree and checkpoints consistent", report.ok,
                   detail)
        self.check("every hop and every block has a record in the log", report.size == len(self.hops),
                   f"{report.size} in the log, {len(self.hops)} hops seen")
        trust = " ".join(f"--trust {p.relative_to(self.workspace.root)}" for p in self.workspace.public_keys)
        self.console.print(f"\nThe log: [bold]{self.workspace.audit_db}[/]\nReview it with: "
                           f"cd {self.workspace.root} && trustlayer audit verify audit.db {trust}")
        return report.ok
