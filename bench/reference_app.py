"""The reference: the minimal example from the original article, unchanged."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/")
async def root():
    return {"message": "Hello World"}


handler = Mangum(app)
