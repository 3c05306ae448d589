"""WSGI entry point for gunicorn: `gunicorn erp.wsgi:app`."""

from erp import create_app

app = create_app()
