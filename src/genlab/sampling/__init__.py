"""genlab.sampling."""
