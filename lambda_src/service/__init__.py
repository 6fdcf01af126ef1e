"""The FastAPI service deployed to AWS Lambda (handler: ``service.handler.handler``)."""

from fastapi_lambda import lifecycle

# First, before FastAPI loads: on Lambda the garbage collector waits until the handler is built.
lifecycle.hold_gc()

from fastapi_lambda.fastapi_compat import defer_openapi_models, defer_pydantic_v1_import  # noqa: E402

# FastAPI loads here, its OpenAPI models built with the first schema (on Lambda, lazy mode).
defer_openapi_models()
# Before any route is built (service.main and its routers): keeps pydantic.v1 off the cold start.
defer_pydantic_v1_import()
