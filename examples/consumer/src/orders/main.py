"""The orders API: a plain FastAPI app that knows nothing about Lambda."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

app = FastAPI(title="Orders")
ORDERS: dict[int, dict] = {1: {"id": 1, "item": "book", "quantity": 2}}


class Problem(BaseModel):
    detail: str


class NewOrder(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=100)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok", "service": "orders"}


@app.get("/orders/{order_id}", responses={404: {"model": Problem, "description": "No such order"}})
async def get_order(order_id: int) -> dict:
    if order_id not in ORDERS:
        raise HTTPException(status_code=404, detail="no such order")
    return ORDERS[order_id]


@app.post("/orders", status_code=201)
async def create_order(order: NewOrder) -> dict:
    order_id = max(ORDERS) + 1
    ORDERS[order_id] = {"id": order_id, **order.model_dump()}
    return ORDERS[order_id]
