"""The official openai SDK, unchanged, with TrustTransport in its httpx client.

    python examples/openai_sdk_transport.py
"""

from __future__ import annotations

import httpx
import openai
from _sandbox import sandbox

from trustlayer import TrustLayer, TrustTransport


def main() -> None:
    with sandbox() as (ws, cloud, url), TrustLayer.from_config(ws.phone) as tl:
        client = openai.OpenAI(base_url=url, api_key="not-needed-locally",
                               http_client=httpx.Client(transport=TrustTransport(tl)))
        prompt = "Write a one-line greeting to Jane Doe (jane.doe@example.com)."
        reply = client.chat.completions.create(model="smollm2", max_tokens=32,
                                               messages=[{"role": "user", "content": prompt}])
        print("answer:", reply.choices[0].message.content)
        stream = client.chat.completions.create(model="smollm2", max_tokens=32, stream=True,
                                                messages=[{"role": "user", "content": prompt}])
        print("streamed:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        print("the cloud saw the e-mail address:", b"jane.doe@example.com" in cloud.everything())
        client.close()


if __name__ == "__main__":
    main()
