from .cli import rate_app

rate_app(prog_name="genlab rate")
