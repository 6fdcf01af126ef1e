"""A handler module of one's own, for full control (e.g. registering more event kinds)."""

from fastapi_lambda import lambda_handler

from orders.main import app

handler = lambda_handler(app)
