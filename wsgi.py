"""WSGI entry point: builds the app from the factory and nothing else."""

from webmap import create_app

app = create_app()
