from agentictagger.cli.main import app

app()
