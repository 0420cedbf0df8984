"""``trustlayer init``: write a commented starter ``trustlayer.yaml`` and an Ed25519 key pair."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["STARTER", "init"]

STARTER = """\
# trustlayer.yaml: who this process is, which endpoints it talks to, and the policy between them.
# Reference: README.md ("Config reference"). Relative paths are resolved against this file's folder.
version: 1

identity:
  id: {identity}                  # the endpoint this process speaks for (declared below)
  key: keys/{identity}.key        # Ed25519 private key (mode 0600); public key in keys/{identity}.key.pub
  # passphrase_env: TRUSTLAYER_KEY_PASSPHRASE   # when the key file is encrypted

endpoints:
  - id: {identity}
    kind: device                  # device | edge | cloud | agent
    jurisdiction: {jurisdiction}  # ISO 3166 code of where it runs
    box: white                    # white: local weights and log-probs (llama.cpp, SmolLM2 by default)
  - id: cloud
    kind: cloud
    jurisdiction: US
    region: us-east-1
    attestations: [dpa, scc]      # what the provider has signed: baa, dpa, scc, zero_retention, ...
    url: https://api.openai.com/v1
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY   # the key is read from this environment variable, never stored here

# peers:                          # other agents whose signed messages we accept
#   - id: reviewer
#     public_key: <base64 raw Ed25519 public key, from 'trustlayer keys show'>

policy: default                   # a shipped policy (default, eu-gdpr, hipaa, pci-dss, device-only-special) or a file
subject_jurisdiction: {jurisdiction}

audit:
  store: sqlite:///.trustlayer/audit.db   # or postgresql://user@host/db for a fleet
  checkpoint_every: 256

vault:
  path: .trustlayer/vault.db      # placeholder <-> value, AES-GCM encrypted, never leaves the device
  key_file: .trustlayer/vault.key
  ttl_seconds: 604800

proxy:
  upstream: cloud                 # 'trustlayer serve' forwards here
  host: 127.0.0.1
  port: 8787
  # api_keys_env: TRUSTLAYER_PROXY_KEYS   # required when binding anything but loopback

router:
  fallback: reroute               # when a router picks a forbidden endpoint: reroute (to 'local') or block
  local: {identity}
"""


@click.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to write trustlayer.yaml and keys/ into.")
@click.option("--id", "identity", default="my-device", show_default=True, help="This process's endpoint id.")
@click.option("--jurisdiction", default="DE", show_default=True, help="Where this device and its users are.")
@click.option("--force", is_flag=True, help="Overwrite an existing trustlayer.yaml (never an existing key).")
def init(directory: Path, identity: str, jurisdiction: str, force: bool) -> None:
    """Write a commented starter trustlayer.yaml and an Ed25519 key pair."""
    from trustlayer.provenance import SigningKey

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "trustlayer.yaml"
    if config.exists() and not force:
        raise click.UsageError(f"{config} already exists (use --force to overwrite it)")
    key_path = directory / "keys" / f"{identity}.key"
    if key_path.exists():
        click.echo(f"keeping existing key {key_path}")
    else:
        key = SigningKey.generate()
        key.save(key_path)
        key.public.save(key_path.with_name(key_path.name + ".pub"))
        click.echo(f"wrote key {key_path} and {key_path.name}.pub (key id {key.key_id[:16]}...)")
    config.write_text(STARTER.format(identity=identity, jurisdiction=jurisdiction.upper()), encoding="utf-8")
    click.echo(f"wrote {config}; next: export OPENAI_API_KEY=... and 'trustlayer serve --config {config}'")
