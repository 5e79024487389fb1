"""The buyer's orders: the list and one order's page (its payment transaction and status), and the
buyer's reclaim of an order past its on-chain deadline."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chain.client import ChainUnavailable
from chain.models import ChainTransaction, Order, Wallet
from chain.services import orders as order_services
from common.errors import DomainError
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
    is_buyer = order.buyer_id == user.pk
    reclaimable = False
    if is_buyer and order.status == Order.Status.CONFIRMED and order.deadline is not None:
        try:
            reclaimable = order_services.order_reclaimable(order)
        except ChainUnavailable:
            reclaimable = False
    managed = Wallet.objects.filter(user=user, address=order.consumer_address, kind=Wallet.Kind.MANAGED).exists()
    reclaiming = ChainTransaction.objects.filter(
        order=order,
        purpose=ChainTransaction.Purpose.RECLAIM,
        status__in=[ChainTransaction.Status.PENDING, ChainTransaction.Status.SENT],
    ).exists()
    # Settlements credit accounts; each withdrawal that pays one out is its own transaction (a
    # recipient the token refuses fails only its own, shown here with its reason).
    payouts = ChainTransaction.objects.filter(order=order, purpose=ChainTransaction.Purpose.WITHDRAW).order_by("pk")
    return render(
        request,
        "frontend/order_detail.html",
        {
            "order": order,
            "payouts": payouts,
            "tx_hash": tx_hash,
            "waiting": waiting,
            "is_buyer": is_buyer,
            "reclaimable": reclaimable and not reclaiming,
            "reclaiming": reclaiming,
            "managed": managed,
        },
    )


@login_required
@require_POST
def order_reclaim(request: HttpRequest, order_id: int) -> HttpResponse:
    """The buyer reclaims an order past its deadline from their managed wallet (an own wallet sends
    the reclaim itself: the page's wallet button)."""
    user = signed_in_user(request)
    order = order_services.order_get_visible(order_id=order_id, user=user)
    try:
        order_services.order_reclaim(order=order, user=user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Reclaim sent: the payment goes back to your wallet and the epsilon is released.")
    return redirect("frontend:order", order_id=order.pk)
