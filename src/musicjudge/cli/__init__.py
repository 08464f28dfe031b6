"""musicjudge command-line interface (typer). Each concern registers its commands from its own
module here (``register(app)``), so ``musicjudge --help`` lists everything."""
