"""Wrap the router you already have with @route, and the LLM call with @guard.

Your router keeps deciding; policy only removes the choices it forbids for *this*
message (here: health data may not leave the device, under eu-gdpr.yaml).

    python examples/route_existing_router.py
"""

from __future__ import annotations

from typing import Any

from _sandbox import sandbox

from trustlayer import TrustLayer, conversation, guard, route


def my_router(prompt: str) -> str:
    """The router you already had: long prompts go to the big cloud model."""
    return "us-cloud" if len(prompt) > 40 else "phone"


def main() -> None:
    with sandbox() as (ws, cloud, _), TrustLayer.from_config(ws.phone) as tl:
        pick = route(layer=tl)(my_router)

        @guard(layer=tl, to="us-cloud")
        def ask(messages: list[dict[str, Any]], endpoint: str = "us-cloud") -> dict[str, Any]:
            return tl.client(endpoint).complete(messages, max_tokens=32, temperature=0)

        for cid, prompt in [("c1", "Explain in one sentence why the sky looks blue to people on Earth."),
                            ("c2", "My medical record number is MRN 48213377; which vaccines are due?")]:
            with conversation(cid):
                endpoint = pick(prompt)
                reply = ask([{"role": "user", "content": prompt}], endpoint=endpoint)
            print(f"{cid}: routed to {endpoint}: {reply['choices'][0]['message']['content']!r}")
        print(f"requests the cloud received: {len(cloud.received)}")


if __name__ == "__main__":
    main()
