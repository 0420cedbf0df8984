"""trustlayer.verifiers."""
