"""``genlab rate create|serve|analyze`` as a typer app (the main CLI mounts ``rate_app``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

rate_app = typer.Typer(help="Subjective evaluation: build, serve and analyse listening/viewing tests.",
                       no_args_is_help=True)


@rate_app.command("create")
def create_cmd(design: Path = typer.Argument(..., help="test design, JSON or YAML"),
               out: Path = typer.Option(..., "--out", "-o", help="new test folder")):
    """Build a test folder: stimuli copied under blind names, manifest with SHA-256 hashes."""
    from .create import create
    from .design import DesignError
    try:
        p = create(design, out)
    except DesignError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    from .create import load_manifest
    m = load_manifest(p)
    typer.echo(f"created {p}: {len(m['trials'])} trials in the pool, {m['n_trials']} per participant, "
               f"{len(m['files'])} stimuli")


@rate_app.command("serve")
def serve_cmd(test_dir: Path = typer.Argument(..., help="folder made by `genlab rate create`"),
              host: str = typer.Option("127.0.0.1", help="bind address (loopback by default)"),
              port: int = typer.Option(8765, help="TCP port"),
              db: Optional[str] = typer.Option(None, help="SQLite path or postgresql:// URL "
                                                          "(default TEST_DIR/responses.sqlite)"),
              admin_token: Optional[str] = typer.Option(None, help="admin token (default: kept in TEST_DIR)"),
              workers: int = typer.Option(1, help="uvicorn worker processes sharing the database")):
    """Serve the test; prints the participant link and the admin token."""
    from .design import DesignError
    from .server import serve
    try:
        serve(test_dir, host=host, port=port, db=db, admin_token=admin_token, workers=workers)
    except (DesignError, FileNotFoundError, RuntimeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)


@rate_app.command("analyze")
def analyze_cmd(test_dir: Path = typer.Argument(...),
                out: Optional[Path] = typer.Option(None, help="report folder (default TEST_DIR/analysis)"),
                db: Optional[str] = typer.Option(None, help="SQLite path or postgresql:// URL"),
                n_boot: int = typer.Option(2000, help="bootstrap replicates"),
                seed: int = typer.Option(0)):
    """Scores with 95 % intervals, tests, exclusions, plots, summary.md/.html and responses.csv."""
    from .analysis import analyze
    from .design import DesignError
    try:
        res = analyze(test_dir, out=out, db=db, n_boot=n_boot, seed=seed)
    except (DesignError, FileNotFoundError, RuntimeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(res["summary_markdown"])
    typer.echo(f"report written to {res['out']}")


def main():  # pragma: no cover
    rate_app()


if __name__ == "__main__":  # pragma: no cover
    main()
