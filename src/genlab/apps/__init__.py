"""genlab.apps."""
