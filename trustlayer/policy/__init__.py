"""trustlayer.policy."""
