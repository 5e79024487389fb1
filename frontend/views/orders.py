"""The buyer's orders: the list and one order's page (its payment transaction and status)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chain.models import ChainTransaction, Order
from chain.services import orders as order_services
from frontend.views.common import TABLE_PAGE_SIZE, paginate, signed_in_user


@login_required
def my_orders(request: HttpRequest) -> HttpResponse:
    orders = Order.objects.filter(buyer=signed_in_user(request)).select_related("dataset", "job")
    return render(request, "frontend/my_orders.html", {"page": paginate(request, orders, TABLE_PAGE_SIZE)})


@login_required
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    user = signed_in_user(request)
    order = order_services.order_get_visible(order_id=order_id, user=user)
    tx_hash = order.tx_hash
    if not tx_hash:
        # A managed-wallet order learns its hash when mined; the outgoing transaction has it once sent.
        tx_hash = (
            ChainTransaction.objects.filter(order=order, purpose=ChainTransaction.Purpose.ORDER)
            .exclude(tx_hash="")
            .values_list("tx_hash", flat=True)
            .first()
            or ""
        )
    waiting = order.status in (Order.Status.PENDING, Order.Status.CONFIRMING)
    return render(
        request,
        "frontend/order_detail.html",
        {"order": order, "tx_hash": tx_hash, "waiting": waiting, "is_buyer": order.buyer_id == user.pk},
    )
