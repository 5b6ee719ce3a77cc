from modelops.cli.main import app

app(prog_name="mops")
