"""trustlayer.routing."""
