"""The FastAPI service deployed to AWS Lambda (handler: ``service.handler.handler``)."""
