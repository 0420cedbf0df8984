"""Starting and stopping the proxy: settings checks before binding, graceful shutdown, reroute to the device."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from integration.proxy_upstream import CLIENT_KEY, UPSTREAM_KEY_ENV, Upstream, cloud_endpoint, create_upstream
from stagekit import DEVICE, make_gate

from trustlayer.errors import ConfigError
from trustlayer.intercept.proxy import create_app
from trustlayer.intercept.proxy_cli import BackgroundServer, ProxySettings, is_loopback, serve

CONFIG = """\
version: 1
identity: {{id: phone, key: keys/phone.key}}
endpoints:
  - {{id: phone, kind: device, jurisdiction: DE, box: white}}
  - {{id: cloud, kind: cloud, jurisdiction: US, url: "http://127.0.0.1:9/v1", model: m, api_key_env: {key_env}}}
  - {{id: edge, kind: edge, jurisdiction: DE, url: "http://127.0.0.1:10/v1"}}
{proxy}
"""


def write_config(tmp_path: Path, proxy: str = "proxy: {upstream: cloud}", key_env: str = UPSTREAM_KEY_ENV) -> Path:
    path = tmp_path / "trustlayer.yaml"
    path.write_text(CONFIG.format(proxy=proxy, key_env=key_env))
    return path


ENV = {UPSTREAM_KEY_ENV: "sk-up", "TL_CLIENT_KEYS": "k1, k2,,"}


def test_settings_resolve_upstream_flags_and_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "proxy: {upstream: cloud, api_keys: [k0], api_keys_env: TL_CLIENT_KEYS, port: 9000}")
    settings = ProxySettings.from_config(path, upstream="http://127.0.0.1:8000/v1/", environ=ENV)
    assert settings.upstream.id == "cloud" and settings.upstream.url == "http://127.0.0.1:8000/v1"
    assert (settings.host, settings.port) == ("127.0.0.1", 9000)
    assert settings.api_keys == ("k0", "k1", "k2")
    assert "k1" not in repr(settings) and "api_keys=<3>" in repr(settings)
    assert ProxySettings.from_config(path, host="0.0.0.0", port=1, environ=ENV).port == 1


def test_upstream_url_picks_the_declared_endpoint_it_belongs_to(tmp_path: Path) -> None:
    path = write_config(tmp_path, "proxy: {}")
    assert ProxySettings.from_config(path, upstream="http://127.0.0.1:10/v1/", environ=ENV).upstream.id == "edge"


def test_binding_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=r"refusing to listen on '0.0.0.0' without client API keys"):
        ProxySettings.from_config(path, host="0.0.0.0", environ=ENV)
    assert ProxySettings.from_config(path, host="127.0.0.2", environ=ENV).api_keys == ()
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.2")


@pytest.mark.parametrize(("proxy", "flags", "env", "message"), [
    ("proxy: {}", {}, ENV, r"config '.*trustlayer.yaml', proxy.upstream: must name the proxy's upstream endpoint "
                           r"\(declared: phone, cloud"),
    ("proxy: {upstream: cloud}", {"upstream": "ftp://x/v1"}, ENV, r"--upstream 'ftp://x/v1' must be an http\(s\)"),
    ("proxy: {upstream: cloud, api_keys_env: NOPE_KEYS}", {}, ENV,
     r"trustlayer.yaml', proxy.api_keys_env: names \$NOPE_KEYS, which is not set"),
    ("proxy: {upstream: cloud}", {}, {}, rf"endpoint 'cloud' takes its API key from \${UPSTREAM_KEY_ENV}"),
    ("proxy: {upstream: nowhere}", {}, ENV, r"line 7.*names endpoint 'nowhere', which is not declared"),
])
def test_settings_errors_name_the_problem(tmp_path: Path, proxy: str, flags: dict[str, str], env: dict[str, str],
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProxySettings.from_config(write_config(tmp_path, proxy), environ=env, **flags)


def test_serve_reports_config_errors_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    result = CliRunner().invoke(serve, ["--config", str(path), "--host", "0.0.0.0"], env=ENV)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "refusing to listen on '0.0.0.0'" in result.output
    missing = CliRunner().invoke(serve, ["--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_serve_on_a_busy_port_fails_fast_with_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(serve, ["--config", str(path), "--port", str(port)], env=ENV)
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output


def test_graceful_shutdown_finishes_the_stream_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-up")
    state = Upstream(chunk_delay=0.15)
    closed = threading.Event()
    with BackgroundServer(create_upstream(state)) as upstream:
        app = create_app(make_gate(), sender=DEVICE, upstream=cloud_endpoint(upstream.url), api_keys=(CLIENT_KEY,),
                         on_shutdown=(closed.set,))
        proxy = BackgroundServer(app)
        proxy.start()
        received: list[str] = []

        def consume() -> None:
            with httpx.stream("POST", proxy.url + "/v1/chat/completions", timeout=20,
                              headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                              json={"model": "m", "stream": True,
                                    "messages": [{"role": "user", "content": "a fairly long question here"}]}) as r:
                for text in r.iter_text():
                    received.append(text)

        reader = threading.Thread(target=consume)
        reader.start()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received, "the stream never started"
        proxy.stop()
        reader.join(10)
    body = "".join(received)
    assert body.rstrip().endswith("data: [DONE]"), "the stream in flight was cut"
    assert closed.is_set(), "the shutdown hook did not run"
    with pytest.raises(httpx.ConnectError):
        httpx.get(proxy.url + "/healthz")


@pytest.mark.slow
def test_health_data_is_rerouted_to_the_device_model_and_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-up")
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as upstream, \
            BackgroundServer(create_app(make_gate(), sender=DEVICE, upstream=cloud_endpoint(upstream.url),
                                        api_keys=(CLIENT_KEY,))) as proxy:
        body = {"model": "m", "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "I was diagnosed with diabetes. What should I eat?"}]}
        reply = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=120,
                           headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        streamed = httpx.post(proxy.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=120,
                              headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"].startswith("SmolLM2")
    assert reply.json()["choices"][0]["message"]["content"]
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert state.received == []
