"""The example's second service, mounted on ``/billing`` of the same API (``services`` in cdk.json).

A FastAPI app of its own, in its own function (``app="service.billing:app"``): its routes are
written from its root (``/invoices``), and the gateway's prefix reaches it as ``root_path``
(:mod:`fastapi_lambda.edge`), so ``/billing/invoices``, ``/billing/docs`` and
``/billing/openapi.json`` work as they are. ``GET /billing/health`` is public; every other
route needs a signed-in caller (the gateway checks the token; the app reads who it is).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path
from fastapi_lambda.auth import AUTH_RESPONSES, User, current_user
from pydantic import BaseModel

#: The prefix cdk.json mounts this service on (``services.billing.prefix``).
PREFIX = "/billing"


class Invoice(BaseModel):
    id: str
    customer: str
    amount_cents: int
    currency: str
    status: str


#: Sample data: a real service reads its own store.
INVOICES = {invoice.id: invoice for invoice in (
    Invoice(id="inv-1001", customer="acme", amount_cents=129900, currency="EUR", status="paid"),
    Invoice(id="inv-1002", customer="globex", amount_cents=4500, currency="EUR", status="open"),
)}
InvoiceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

# OpenTelemetry off, as in service.main: Lambda traces through X-Ray.
app = FastAPI(title="Billing", telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness of the billing service."""
    return {"status": "ok", "service": "billing"}


@app.get("/invoices", responses=AUTH_RESPONSES)
async def list_invoices(user: Annotated[User, Depends(current_user)]) -> list[Invoice]:
    """Every invoice the caller may see."""
    return list(INVOICES.values())


@app.get("/invoices/{invoice_id}", responses={404: {"description": "No such invoice"}, **AUTH_RESPONSES})
async def get_invoice(invoice_id: InvoiceId, user: Annotated[User, Depends(current_user)]) -> Invoice:
    """One invoice: 404 when there is none by that id."""
    if invoice_id not in INVOICES:
        raise HTTPException(404, f"No invoice {invoice_id}")
    return INVOICES[invoice_id]
