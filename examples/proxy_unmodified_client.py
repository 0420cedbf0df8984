"""The proxy in front of a client that knows nothing about trustlayer (any language works the same).

Starts ``trustlayer serve`` as a separate process, then talks plain OpenAI HTTP to it.

    python examples/proxy_unmodified_client.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from _sandbox import sandbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    with sandbox() as (ws, cloud, url):
        port = free_port()
        proxy = subprocess.Popen([sys.executable, "-m", "trustlayer", "serve", "--config", str(ws.phone),
                                  "--upstream", url, "--port", str(port)])
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            body = {"model": "smollm2", "max_tokens": 32,
                    "messages": [{"role": "user", "content": "Say hello to Jane Doe, jane.doe@example.com"}]}
            reply = httpx.post(base + "/v1/chat/completions", json=body, timeout=120).json()
            print("answer:", reply["choices"][0]["message"]["content"])
            print("the cloud saw the e-mail address:", b"jane.doe@example.com" in cloud.everything())
        finally:
            proxy.terminate()
            proxy.wait(30)


if __name__ == "__main__":
    main()
