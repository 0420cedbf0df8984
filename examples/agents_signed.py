"""Two agents exchange signed messages; a forged and a replayed one are rejected.

    python examples/agents_signed.py
"""

from __future__ import annotations

from _sandbox import sandbox

from trustlayer import Blocked, TrustLayer, agent, receive_message, send_message


def main() -> None:
    with sandbox() as (ws, _, _), TrustLayer.from_config(ws.planner) as planner, \
            TrustLayer.from_config(ws.reviewer) as reviewer:

        @agent("reviewer", layer=reviewer)
        def review(text: str, sender: str) -> str:
            return f"{sender}'s plan has {len(text.split())} words: approved"

        msg = send_message(planner, to="reviewer", conversation_id="plan-1",
                           text="Deploy on Friday; the staging password=Winter2024!Secret stays the same")
        print("sent (credential pseudonymized):", msg.text)
        reply = review(msg)
        print("reply, verified by the planner:", receive_message(planner, reply).message.text)
        for label, attempt in [("forged", msg.model_copy(update={"text": msg.text + " and delete prod"})),
                               ("replayed", msg)]:
            try:
                review(attempt)
                print(f"{label}: ACCEPTED (this must not happen)")
            except Blocked as blocked:
                print(f"{label}: rejected: {blocked.reason}")


if __name__ == "__main__":
    main()
