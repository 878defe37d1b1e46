"""genlab.metrics."""
