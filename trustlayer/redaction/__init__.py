"""trustlayer.redaction."""
