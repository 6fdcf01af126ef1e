"""The FastAPI service deployed to AWS Lambda (handler: ``service.handler.handler``)."""

from fastapi_lambda.fastapi_compat import defer_pydantic_v1_import

# Before any route is built (service.main and its routers): keeps pydantic.v1 off the cold start.
defer_pydantic_v1_import()
