"""Lambda entry point of the example app (``service.handler.handler``).

Everything Lambda-specific (dispatch before Mangum, warmup, import mode, SnapStart
hooks, the task worker) comes from the runtime package; this module only names the app
and the task registry, so the API function and the queue's worker share it.
"""

from fastapi_lambda import lambda_handler

from service.main import create_app

# Built once per execution environment (at init), reused by every invocation. The task
# registry is named, not imported: the first SQS batch imports it (at init in eager mode).
app = create_app()
handler = lambda_handler(app, tasks="service.tasks:registry")
