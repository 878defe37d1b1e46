"""genlab rate: subjective evaluation (MOS, pairwise preference, MUSHRA, HYPE∞ real-vs-generated).

    from genlab.apps.rate import create, serve, analyze
    create("design.yaml", "tests/my-test")      # stimuli copied under blind names, manifest with hashes
    serve("tests/my-test")                      # web server on 127.0.0.1; prints link and admin token
    analyze("tests/my-test")                    # summary.md/.html, plots, responses.csv

Command line: ``genlab rate create|serve|analyze`` (also ``python -m genlab.apps.rate``).
"""
from .design import Design, DesignError, load_design, parse_design
from .create import create, load_manifest, participant_plan


def serve(test_dir, host: str = "127.0.0.1", port: int = 8765, db=None, admin_token=None, log_level="warning",
          workers: int = 1):
    """Serve a test folder (see :func:`genlab.apps.rate.server.serve`)."""
    from .server import serve as _serve
    return _serve(test_dir, host=host, port=port, db=db, admin_token=admin_token, log_level=log_level,
                  workers=workers)


def analyze(test_dir, out=None, db=None, n_boot: int = 2000, seed: int = 0):
    """Analyse the stored responses (see :func:`genlab.apps.rate.analysis.analyze`)."""
    from .analysis import analyze as _analyze
    return _analyze(test_dir, out=out, db=db, n_boot=n_boot, seed=seed)


__all__ = ["create", "serve", "analyze", "load_design", "parse_design", "Design", "DesignError",
           "load_manifest", "participant_plan"]
