"""trustlayer.intercept."""
