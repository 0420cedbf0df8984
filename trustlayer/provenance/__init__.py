"""trustlayer.provenance."""
