"""trustlayer.endpoints."""
