"""REST API of integrations: webhook endpoints and their delivery log, and the server-sent events
of a job. Views parse input, call one service or selector, and render output."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api.errors import error_responses as _errors
from common.pagination import StandardPagination
from compute_to_data.services import jobs as job_services
from integrations import selectors
from integrations.api.serializers import (
    DeliverySerializer,
    SecretSerializer,
    WebhookCreatedSerializer,
    WebhookInput,
    WebhookSerializer,
    WebhookUpdateInput,
)
from integrations.services import events as event_services
from integrations.services import webhooks as webhook_services

TAGS = ["integrations"]

EXAMPLE_DELIVERY_SUMMARY = {
    "id": 41,
    "event_id": "evt_5d1c0c6f0a3e4d7e9b1f2a3c4d5e6f70",
    "event_type": "job.finished",
    "job": 12,
    "status": "succeeded",
    "attempts": 1,
    "response_status": 200,
    "error": "",
    "created_at": "2026-03-02T10:15:07.120Z",
    "last_attempt_at": "2026-03-02T10:15:07.150Z",
    "next_attempt_at": None,
    "delivered_at": "2026-03-02T10:15:07.310Z",
}
EXAMPLE_WEBHOOK = {
    "id": 3,
    "url": "https://hooks.example.com/marketplace",
    "description": "CI pipeline",
    "events": ["job.finished", "job.failed"],
    "is_active": True,
    "disabled_reason": "",
    "consecutive_failures": 0,
    "secret_hint": "whsec_\u2026Qx3k",
    "last_delivery": EXAMPLE_DELIVERY_SUMMARY,
    "created_at": "2026-03-01T09:00:00Z",
    "updated_at": "2026-03-01T09:00:00Z",
}
EXAMPLE_SECRET = "whsec_n6bX0r2kF7yqz1mS9vT4wL8pH3cJ5dA0eG2iK6oQx3k"  # noqa: S105 (an example)
EXAMPLE_EVENT = {
    "id": "evt_5d1c0c6f0a3e4d7e9b1f2a3c4d5e6f70",
    "type": "job.finished",
    "created_at": "2026-03-02T10:15:07.118Z",
    "data": {
        "status": "finished",
        "previous_status": "publishing",
        "role": "buyer",
        "job": {
            "id": 12,
            "dataset": 1,
            "status": "finished",
            "progress": {"phase": "finished", "percent": 100, "epoch": 5, "epochs": 5, "epsilon": 0.98},
            "epsilon_spent": "0.980000",
            "reason": "",
            "...": "every field of GET /api/v1/jobs/{id}/",
        },
    },
}
EXAMPLE_DELIVERY = {
    **EXAMPLE_DELIVERY_SUMMARY,
    "duration_ms": 160,
    "response_body": "ok",
    "payload": EXAMPLE_EVENT,
}
EXAMPLE_STREAM = (
    "retry: 1000\n\n"
    "id: 3f0a9c1e2b4d5f6a7b8c\n"
    "event: status\n"
    'data: {"id":12,"status":"running","progress":{"phase":"training","epoch":2,"epochs":5,'
    '"step":40,"steps":100,"epsilon":0.41,"percent":40},"reason":"", ...}\n\n'
    ": heartbeat\n\n"
    "id: 9e8d7c6b5a4f3e2d1c0b\n"
    "event: status\n"
    'data: {"id":12,"status":"finished","progress":{"phase":"finished","percent":100},'
    '"epsilon_spent":"0.980000", ...}\n\n'
)


def _webhook_response(endpoint) -> dict:
    return WebhookSerializer(endpoint).data


class WebhookListCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        responses={200: WebhookSerializer(many=True), **_errors(401)},
        tags=TAGS,
        summary="My webhook endpoints",
        examples=[OpenApiExample("One endpoint", value=[EXAMPLE_WEBHOOK], response_only=True)],
    )
    def get(self, request):
        return Response(WebhookSerializer(selectors.webhooks_of(user=request.user), many=True).data)

    @extend_schema(
        request=WebhookInput,
        responses={201: WebhookCreatedSerializer, **_errors(400, 401, 409)},
        tags=TAGS,
        summary="Register a webhook endpoint; the answer carries its signing secret, shown this once",
        description="You receive the events of the jobs you buy and of the jobs run on your datasets, as "
        "signed JSON POSTs (see docs/integrations.md for verifying `X-Marketplace-Signature`). "
        "Events: `job.status_changed` (every change), `job.finished`, `job.failed`, `job.cancelled`, "
        "`job.rejected`. URLs must be http(s) and, in production, reach a public address.",
        examples=[
            OpenApiExample(
                "Finished and failed jobs",
                value={
                    "url": "https://hooks.example.com/marketplace",
                    "events": ["job.finished", "job.failed"],
                    "description": "CI pipeline",
                },
                request_only=True,
            ),
            OpenApiExample("Created", value={**EXAMPLE_WEBHOOK, "secret": EXAMPLE_SECRET}, response_only=True),
        ],
    )
    def post(self, request):
        data = WebhookInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = webhook_services.webhook_create(owner=request.user, **data.validated_data)
        body = {**_webhook_response(created.endpoint), "secret": created.secret}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class WebhookDetailView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        responses={200: WebhookSerializer, **_errors(401, 404)},
        tags=TAGS,
        summary="One of my webhook endpoints (without its secret)",
        examples=[OpenApiExample("Endpoint", value=EXAMPLE_WEBHOOK, response_only=True)],
    )
    def get(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        return Response(_webhook_response(endpoint))

    @extend_schema(
        request=WebhookUpdateInput,
        responses={200: WebhookSerializer, **_errors(400, 401, 404)},
        tags=TAGS,
        summary="Change a webhook endpoint: URL, events, description, or switch it off or on",
        examples=[
            OpenApiExample("Switch on again", value={"is_active": True}, request_only=True),
            OpenApiExample("Endpoint", value=EXAMPLE_WEBHOOK, response_only=True),
        ],
    )
    def patch(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        data = WebhookUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_services.webhook_update(endpoint=endpoint, **data.validated_data)
        return Response(_webhook_response(endpoint))

    @extend_schema(
        responses={204: OpenApiResponse(description="Deleted, with its delivery log"), **_errors(401, 404)},
        tags=TAGS,
        summary="Delete a webhook endpoint",
    )
    def delete(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        webhook_services.webhook_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPingView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={202: DeliverySerializer, **_errors(401, 404)},
        tags=TAGS,
        summary="Send a signed `ping` event to the endpoint now, to test the receiver",
        examples=[
            OpenApiExample(
                "Queued ping",
                value={
                    **EXAMPLE_DELIVERY,
                    "event_type": "ping",
                    "job": None,
                    "status": "pending",
                    "attempts": 0,
                    "response_status": None,
                    "delivered_at": None,
                    "payload": {
                        "id": "evt_0b6f5c1d2e3f4a5b6c7d8e9f0a1b2c3d",
                        "type": "ping",
                        "created_at": "2026-03-02T10:00:00Z",
                        "data": {"webhook": 3, "message": "It works: this endpoint receives marketplace events."},
                    },
                },
                response_only=True,
                status_codes=[202],
            )
        ],
    )
    def post(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        delivery = webhook_services.webhook_ping(endpoint=endpoint)
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookRotateSecretView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: SecretSerializer, **_errors(401, 404)},
        tags=TAGS,
        summary="Replace the endpoint's signing secret; the new one is shown this once and is in force at once",
        examples=[OpenApiExample("New secret", value={"secret": EXAMPLE_SECRET}, response_only=True)],
    )
    def post(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        secret = webhook_services.webhook_rotate_secret(endpoint=endpoint)
        return Response({"secret": secret}, headers={"Cache-Control": "no-store"})


class WebhookDeliveriesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", str, enum=["pending", "succeeded", "failed"], description="Only deliveries in this state"
            )
        ],
        responses={200: DeliverySerializer(many=True), **_errors(401, 404)},
        tags=TAGS,
        summary="The endpoint's delivery log, newest first: event, attempts, answer code, error, payload",
        examples=[
            OpenApiExample(
                "One page",
                value={"count": 1, "next": None, "previous": None, "results": [EXAMPLE_DELIVERY]},
                response_only=True,
            )
        ],
    )
    def get(self, request, webhook_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        paginator = StandardPagination()
        deliveries = selectors.deliveries_of(endpoint=endpoint, status=request.query_params.get("status"))
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class WebhookRedeliverView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={202: DeliverySerializer, **_errors(401, 404, 409)},
        tags=TAGS,
        summary="Send a delivered or given-up event again (same event id)",
        examples=[
            OpenApiExample(
                "Queued again",
                value={**EXAMPLE_DELIVERY, "status": "pending", "attempts": 0, "delivered_at": None},
                response_only=True,
                status_codes=[202],
            )
        ],
    )
    def post(self, request, webhook_id: int, delivery_id: int):
        endpoint = webhook_services.webhook_get_owned(user=request.user, endpoint_id=webhook_id)
        delivery = selectors.delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        delivery = webhook_services.delivery_redeliver(delivery=delivery)
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class EventStreamRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: text/event-stream``; the stream itself is not rendered."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # pragma: no cover
        return JSONRenderer().render(data)


class JobEventsView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                description="The id of the last event you received (EventSource sends it when it reconnects).",
            )
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="`event: status` with the job (as `GET jobs/{id}/` shows it) whenever its status, "
                "progress or reason changes; `: heartbeat` comments every 15 s; the stream ends after the "
                "terminal status, or after its maximum lifetime (reconnect with `Last-Event-ID`).",
                examples=[OpenApiExample("A job finishing", value=EXAMPLE_STREAM)],
            ),
            204: OpenApiResponse(description="The job has ended and `Last-Event-ID` is its last event: stop."),
            **_errors(401, 404),
        },
        tags=["compute", *TAGS],
        summary="Follow a job live: server-sent events with its status and progress",
        description="For the job's buyer, the dataset's provider and staff. Works with a browser's "
        "`EventSource` (session) or any HTTP client (`Authorization: Token ...`, `Accept: text/event-stream`).",
    )
    def get(self, request, job_id: int):
        job = job_services.job_get_visible(job_id=job_id, user=request.user)
        last_event_id = request.headers.get("Last-Event-ID") or None
        if event_services.job_events_finished_for(job_id=job.pk, last_event_id=last_event_id):
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        response = StreamingHttpResponse(
            event_services.job_event_stream(job_id=job.pk, last_event_id=last_event_id),
            content_type="text/event-stream; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):  # errors are JSON whatever the client accepts
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
            # DRF sets renderer_context on the response at run time; its stubs do not declare it.
            response.renderer_context = self.get_renderer_context()  # type: ignore[attr-defined]
        return response
