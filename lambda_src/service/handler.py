"""Lambda entry point of the example app (``service.handler.handler``).

Everything Lambda-specific (dispatch before Mangum, warmup, import mode, SnapStart
hooks) comes from the runtime package; this module only names the app.
"""

from fastapi_lambda import lambda_handler

from service.main import create_app

# Built once per execution environment (at init), reused by every invocation.
app = create_app()
handler = lambda_handler(app)
