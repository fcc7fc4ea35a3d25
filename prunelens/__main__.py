from prunelens.cli import app

app()
