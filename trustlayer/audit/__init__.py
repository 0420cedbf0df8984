"""trustlayer.audit."""
