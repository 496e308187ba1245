"""The ``nbo-recorder`` command line, on typer; :func:`nbo_recorder.cli.main.main` runs it."""
