"""REST API v1. Views parse input, call one service or selector, and render output."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.pagination import BasePagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from common.api.errors import PAGE_NOT_FOUND, ErrorSerializer
from common.api.errors import error_responses as _errors
from common.errors import InvalidInput, NotFound, PermissionDenied
from common.pagination import StandardPagination
from marketplace.api import catalogue_cache
from marketplace.api.pagination import CataloguePagination
from marketplace.api.serializers import (
    SCHEMA_EXAMPLE,
    DatasetDetailSerializer,
    DatasetListSerializer,
    ModerationLogEntrySerializer,
    OwnerDatasetSerializer,
    QueueItemSerializer,
    ReportSerializer,
    dataset_data,
)
from marketplace.lockout import lockout_error
from marketplace.models import Dataset, Licence, Report
from marketplace.selectors import catalog
from marketplace.selectors import moderation as moderation_selectors
from marketplace.services import accounts as account_services
from marketplace.services import datasets as dataset_services
from marketplace.services import moderation as moderation_services
from marketplace.services.datasets import ListingFields
from marketplace.services.mock import MOCK_DEFAULT_ROWS, dataset_mock_csv


class _PagedListView(APIView):
    """A view whose GET answers one page of a queryset (``_paginate``), paged by its own class."""

    pagination_class: type[BasePagination]


def _paginate(
    view: _PagedListView,
    request: Request,
    queryset: QuerySet[Any],
    serializer_class: type[BaseSerializer[Any]],
    **kwargs: Any,
) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(
        serializer_class(page, many=True, context={"request": request}, **kwargs).data
    )


class ObtainTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    class TokenInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, max_length=4096)

    class TokenOutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        username = serializers.CharField()

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: TokenOutputSerializer, **_errors(400, 429)},
        tags=["auth"],
        summary="Exchange a username and password for an API token",
        description="After 5 failed attempts for one account, or from one address, log-ins are refused for 15 "
        "minutes (429 `login_locked`, with `Retry-After`), on this endpoint and the log-in page alike.",
        examples=[
            OpenApiExample("Demo buyer", value={"username": "buyer", "password": "buyer-demo-2026"}, request_only=True),
            OpenApiExample(
                "Token",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "username": "buyer"},
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        data = self.TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The Django request, not DRF's wrapper: django-axes marks a locked-out attempt on it.
        user = authenticate(
            request._request, username=data.validated_data["username"], password=data.validated_data["password"]
        )
        if user is None:
            if getattr(request._request, "axes_locked_out", False):
                raise lockout_error()
            raise InvalidInput("Unable to sign in with those credentials.", code="invalid_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "username": user.get_username()})


class SignupView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    class SignupInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
        email = serializers.EmailField(help_text="For notices: moderation decisions, finished jobs.")
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, max_length=128)
        organisation = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(
        request=SignupInputSerializer,
        responses={201: ObtainTokenView.TokenOutputSerializer, **_errors(400, 409)},
        tags=["auth"],
        summary="Create an account (as the sign-up page does) and get its API token",
        description="A managed wallet is created on first use. Usernames are unique regardless of case (409 "
        "`username_taken`); the password must pass the server's password rules (400 `weak_password`). A link that "
        "confirms `email` is mailed; until it is followed, submitting a dataset for review answers 403 "
        "`email_unverified` (`POST me/email/resend/` sends it again).",
        examples=[
            OpenApiExample(
                "New integrator",
                value={
                    "username": "acme-ml",
                    "email": "ml@acme.example",
                    "password": "a long and unusual passphrase",
                    "organisation": "Acme AI Ltd",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "username": "acme-ml"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        data = self.SignupInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = account_services.user_signup(**data.validated_data)
        return Response({"token": token.key, "username": user.get_username()}, status=status.HTTP_201_CREATED)


class TokenRegenerateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: ObtainTokenView.TokenOutputSerializer, **_errors(401)},
        tags=["auth"],
        summary="Replace my API token (the old one stops working at once)",
    )
    def post(self, request):
        token = account_services.api_token_regenerate(user=request.user)
        return Response({"token": token.key, "username": request.user.get_username()})


class EmailResendView(APIView):
    permission_classes = [IsAuthenticated]

    class ResendOutput(serializers.Serializer):
        sent = serializers.BooleanField(help_text="A new confirmation link went out now.")
        email_verified = serializers.BooleanField()
        detail = serializers.CharField()

    @extend_schema(
        request=None,
        responses={200: ResendOutput, **_errors(401)},
        tags=["auth"],
        summary="Mail my e-mail address its confirmation link again (at most one every 5 minutes)",
        description="Sign-up and an e-mail change send the link already. Until the address is confirmed, "
        "submitting a dataset for review answers 403 `email_unverified`.",
    )
    def post(self, request):
        user = request.user
        if user.email_verified:
            sent, detail = False, "Your e-mail address is already confirmed."
        elif not user.email:
            sent, detail = False, "Add an e-mail address first (PATCH me/)."
        elif account_services.email_verification_send(user=user):
            sent, detail = True, f"A new confirmation link was sent to {user.email}."
        else:
            sent, detail = False, "No link was sent: one went out in the last few minutes, or the mail server failed."
        return Response({"sent": sent, "email_verified": user.email_verified, "detail": detail})


class MeView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    class ProfileSerializer(serializers.Serializer):
        username = serializers.CharField(read_only=True)
        email = serializers.EmailField(required=False, allow_blank=True)
        organisation = serializers.CharField(required=False, allow_blank=True, max_length=200)
        bio = serializers.CharField(required=False, allow_blank=True, max_length=2000)
        is_staff = serializers.BooleanField(read_only=True, help_text="A moderator.")
        email_verified = serializers.BooleanField(
            read_only=True,
            help_text="The e-mail address was confirmed by its link; needed to submit a dataset for review.",
        )
        date_joined = serializers.DateTimeField(read_only=True)

    @extend_schema(
        responses={200: ProfileSerializer, **_errors(401)}, tags=["auth"], summary="My profile (who the token is)"
    )
    def get(self, request):
        return Response(self.ProfileSerializer(request.user).data)

    @extend_schema(
        request=ProfileSerializer,
        responses={200: ProfileSerializer, **_errors(400, 401)},
        tags=["auth"],
        summary="Edit my profile: e-mail (for notices), organisation, bio",
        examples=[
            OpenApiExample(
                "Profile",
                value={"email": "ml@startup.example", "organisation": "Startup Ltd", "bio": "We train risk models."},
                request_only=True,
            )
        ],
    )
    def patch(self, request):
        data = self.ProfileSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = request.user
        current = {"email": user.email, "organisation": user.organisation, "bio": user.bio}
        user = account_services.user_profile_update(user=user, **{**current, **data.validated_data})
        return Response(self.ProfileSerializer(user).data)


class ListingFieldsSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    tags = serializers.CharField(required=False, allow_blank=True, help_text="Comma-separated tags.")
    licence = serializers.ChoiceField(choices=Licence.choices, required=False)
    price = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=0, required=False)
    price_token = serializers.CharField(required=False, max_length=12)
    epsilon_total = serializers.DecimalField(max_digits=10, decimal_places=4, required=False)
    epsilon_per_job = serializers.DecimalField(max_digits=10, decimal_places=4, required=False)
    delta = serializers.FloatField(required=False)
    delta_total = serializers.FloatField(
        required=False, help_text="Cumulative delta cap over all jobs on the dataset; at least delta."
    )
    holdout_fraction = serializers.FloatField(
        required=False, help_text="Share of rows the runner holds out for metrics, 0 to 0.5 (default 0.2)."
    )

    def to_fields(self) -> ListingFields:
        return ListingFields(**self.validated_data)


class DatasetListCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    pagination_class = CataloguePagination  # also what the schema's paginated list is drawn from

    class DatasetCreateSerializer(ListingFieldsSerializer):
        file = serializers.FileField(
            allow_empty_file=True, help_text="CSV or Parquet, up to the upload limit (default 1 GiB)."
        )

    @extend_schema(
        summary="Search the catalogue of listed datasets",
        parameters=[
            OpenApiParameter("q", str, description="Full-text query (e.g. `heart disease`)."),
            OpenApiParameter(
                "tags",
                str,
                description="Comma-separated tags (or the parameter repeated); all must match. At most 10 "
                "distinct tags (400 `too_many_tags`).",
            ),
            OpenApiParameter("licence", str, enum=Licence.values),
            OpenApiParameter("price_min", float),
            OpenApiParameter("price_max", float),
            OpenApiParameter("sort", str, enum=list(catalog.SORTS)),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses={200: DatasetListSerializer(many=True), **_errors(400), **PAGE_NOT_FOUND},
        tags=["datasets"],
    )
    def get(self, request):
        if getattr(self, "_cached_page", None) is not None:
            return self._cached_page
        params = request.query_params
        prices = {}
        for key in ("price_min", "price_max"):
            if params.get(key):
                prices[key] = dataset_services.decimal_parse(params[key], field=key)
        search = catalog.catalogue_search(
            query=params.get("q", ""),
            # Comma-separated, repeated (tags=a&tags=b), or both; duplicates count once.
            tags=[t for value in params.getlist("tags") for t in value.split(",") if t.strip()],
            licence=params.get("licence") or None,
            sort=params.get("sort") or None,
            **prices,
        )
        if self._page_generation is not None:
            # The stored page carries its total: count it at this generation.
            search = dataclasses.replace(search, count_cache_seconds=0)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(search, request, view=self)
        return paginator.get_paginated_response(
            DatasetListSerializer(page, many=True, context={"request": request}).data
        )

    # Catalogue pages from memory while the catalogue is unchanged (marketplace/api/catalogue_cache.py).
    _page_generation: int | None = None

    def _page_from_memory(self, request) -> HttpResponse | None:
        if request.method != "GET" or getattr(request.accepted_renderer, "format", None) != "json":
            return None
        self._page_generation = catalogue_cache.generation()
        if self._page_generation is None:
            return None
        self._page_key = catalogue_cache.page_key(request.query_params)
        body = catalogue_cache.get(self._page_generation, self._page_key)
        if body is None:
            return None
        return HttpResponse(body, content_type=request.accepted_renderer.media_type)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles, negotiation
        self._cached_page = self._page_from_memory(request)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if (
            self._page_generation is not None
            and getattr(self, "_cached_page", None) is None
            and isinstance(response, Response)
            and response.status_code == 200
        ):
            response.render()
            catalogue_cache.put(self._page_generation, self._page_key, response.content)
        return response

    @extend_schema(
        summary="Upload a dataset (multipart); it starts as a draft with a proposed schema",
        request={"multipart/form-data": DatasetCreateSerializer},
        examples=[
            OpenApiExample(
                "CSV with a listing",
                value={
                    "file": "age,sex,cholesterol,heart_disease\n54,F,212.5,0\n61,M,245.0,1\n47,M,198.0,0\n",
                    "title": "Cardiology outpatients 2019-2023",
                    "description": "Anonymised outpatient visits: age, sex, **cholesterol** and diagnosis.",
                    "tags": "health,cardiology",
                    "licence": "CC-BY-4.0",
                    "price": "12.50",
                    "epsilon_total": "5",
                    "epsilon_per_job": "1",
                    "delta": 1e-6,
                },
                request_only=True,
                media_type="multipart/form-data",
            )
        ],
        responses={
            201: OwnerDatasetSerializer,
            413: OpenApiResponse(ErrorSerializer, description="File too large"),
            **_errors(400, 401),
            400: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "Invalid listing fields or file. File codes: unsupported_format, empty_file, not_utf8, "
                    "malformed_csv, header_too_long, too_many_columns, invalid_parquet, uncompressed_too_large, "
                    "file_limit_exceeded (reading it needs more memory or time than an upload check may take; "
                    "`limit` says which)."
                ),
            ),
        },
        tags=["datasets"],
    )
    def post(self, request):
        if not request.user.is_authenticated:
            self.permission_denied(request)
        data = self.DatasetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.pop("file")
        try:
            dataset = dataset_services.dataset_create(
                owner=request.user,
                file=upload,
                filename=upload.name,
                fields=ListingFields(**data.validated_data),
            )
        finally:
            upload.close()
        return Response(OwnerDatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class DatasetUpdateSerializer(ListingFieldsSerializer):
        title = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        summary="Read a dataset (the owner and staff also see the owner-only fields)",
        responses={200: DatasetDetailSerializer, **_errors(404)},
        tags=["datasets"],
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        return Response(dataset_data(dataset, request.user))

    @extend_schema(
        summary="Update a dataset's listing (owner)",
        request=DatasetUpdateSerializer,
        examples=[
            OpenApiExample(
                "New price and tags", value={"price": "15.00", "tags": "health,cardiology,ehr"}, request_only=True
            )
        ],
        responses={200: OwnerDatasetSerializer, **_errors(400, 401, 403, 404)},
        tags=["datasets"],
    )
    def patch(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        data = self.DatasetUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        dataset = dataset_services.dataset_update(
            dataset=dataset, actor=request.user, fields=ListingFields(**data.validated_data)
        )
        return Response(OwnerDatasetSerializer(dataset).data)

    @extend_schema(
        summary="Delete a draft or rejected dataset and its file (owner)",
        responses={204: None, **_errors(401, 403, 404, 409)},
        tags=["datasets"],
    )
    def delete(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        dataset_services.dataset_delete(dataset=dataset, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchemaView(APIView):
    parser_classes = [JSONParser]

    class SchemaInputSerializer(serializers.Serializer):
        columns = serializers.ListField(child=serializers.DictField(), min_length=1)
        public_row_count = serializers.IntegerField(
            min_value=1,
            required=False,
            help_text="Public: about how many rows the file has. Required to confirm the schema (it may be left out "
            "only when editing a schema that has one). The runner derives batch sampling and steps from it, never "
            "from the private count.",
        )
        holdout_fraction = serializers.FloatField(
            required=False, help_text="Share of rows held out for metrics, 0 to 0.5 (default 0.2)."
        )

    class SchemaOutputSerializer(serializers.Serializer):
        declared = serializers.DictField(allow_null=True, help_text="The public declared schema.")
        confirmed_at = serializers.DateTimeField(allow_null=True)
        public_row_count = serializers.IntegerField(allow_null=True, help_text="Declared by the owner; public.")
        holdout_fraction = serializers.FloatField()
        proposed = serializers.DictField(required=False, help_text="Owner only: the platform's proposal.")
        suggested_public_row_count = serializers.IntegerField(
            required=False, allow_null=True, help_text="Owner only: the private row count to 2 significant figures."
        )

    def _out(self, dataset, user):
        out = {
            "declared": dataset.declared_schema,
            "confirmed_at": dataset.schema_confirmed_at,
            "public_row_count": dataset.public_row_count,
            "holdout_fraction": dataset.holdout_fraction,
        }
        if catalog.can_edit(dataset=dataset, user=user) or (user.is_authenticated and user.is_staff):
            out["proposed"] = dataset.proposed_schema
            out["suggested_public_row_count"] = dataset_services.public_row_count_suggest(dataset.row_count)
        return out

    @extend_schema(
        summary="Read the declared schema (and, for the owner, the proposal)",
        responses={200: SchemaOutputSerializer, **_errors(404)},
        tags=["datasets"],
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        return Response(self._out(dataset, request.user))

    @extend_schema(
        summary="Confirm or edit the declared schema (owner; draft or rejected only)",
        request=SchemaInputSerializer,
        examples=[
            OpenApiExample(
                "schema",
                value={**SCHEMA_EXAMPLE, "public_row_count": 12000, "holdout_fraction": 0.2},
                request_only=True,
            )
        ],
        responses={200: SchemaOutputSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["datasets"],
    )
    def put(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        if not request.user.is_authenticated:
            self.permission_denied(request)
        body = request.data if isinstance(request.data, dict) else {}
        dataset = dataset_services.dataset_schema_declare(
            dataset=dataset,
            actor=request.user,
            schema=request.data,
            public_row_count=body.get("public_row_count"),
            holdout_fraction=body.get("holdout_fraction"),
        )
        return Response(self._out(dataset, request.user))


class MockView(APIView):
    parser_classes = [MultiPartParser]

    class MockUploadSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=True, help_text="A CSV with exactly the declared columns.")

    @extend_schema(
        summary="Download mock data (CSV) built from the declared schema, or the provider's mock file",
        parameters=[
            OpenApiParameter("rows", int, description=f"Synthetic rows (default {MOCK_DEFAULT_ROWS}, max 10000)."),
            OpenApiParameter("seed", int, description="Seed for reproducible synthetic rows."),
            OpenApiParameter("source", str, enum=["auto", "synthetic", "uploaded"]),
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, **_errors(400, 404, 409)},
        tags=["datasets"],
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        try:
            rows = int(request.query_params.get("rows", MOCK_DEFAULT_ROWS))
            seed = int(request.query_params["seed"]) if request.query_params.get("seed") else None
        except ValueError as exc:
            raise InvalidInput("rows and seed must be whole numbers.", code="invalid_rows") from exc
        body, kind = dataset_mock_csv(
            dataset=dataset, source=request.query_params.get("source", "auto"), rows=rows, seed=seed
        )
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-mock.csv"'
        response["X-Mock-Data"] = kind
        return response

    @extend_schema(
        summary="Upload a mock CSV (owner)",
        request={"multipart/form-data": MockUploadSerializer},
        examples=[
            OpenApiExample(
                "Mock rows",
                value={"file": "age,income,group\n31,1200,a\n45,2100,b\n"},
                request_only=True,
                media_type="multipart/form-data",
            )
        ],
        responses={200: OwnerDatasetSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["datasets"],
    )
    def post(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        if not request.user.is_authenticated:
            self.permission_denied(request)
        data = self.MockUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        dataset = dataset_services.dataset_mock_upload(
            dataset=dataset, actor=request.user, file=upload, filename=upload.name
        )
        return Response(OwnerDatasetSerializer(dataset).data)

    @extend_schema(
        summary="Remove the uploaded mock file (owner)",
        responses={200: OwnerDatasetSerializer, **_errors(401, 403, 404, 409)},
        tags=["datasets"],
    )
    def delete(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        if not request.user.is_authenticated:
            self.permission_denied(request)
        dataset = dataset_services.dataset_mock_remove(dataset=dataset, actor=request.user)
        return Response(OwnerDatasetSerializer(dataset).data)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


def _transition_view(action: str, summary: str, reason: str):
    class TransitionView(APIView):
        permission_classes = [IsAuthenticated]
        parser_classes = [JSONParser, FormParser, MultiPartParser]

        @extend_schema(
            summary=summary,
            request=ReasonSerializer,
            responses={
                200: OwnerDatasetSerializer,
                409: OpenApiResponse(ErrorSerializer, description="Illegal state transition"),
                **_errors(400, 401, 403, 404),
            },
            tags=["moderation"],
            operation_id=f"datasets_{action}",
            examples=[OpenApiExample("Reason", value={"reason": reason}, request_only=True)],
        )
        def post(self, request, dataset_id: int):
            dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
            data = ReasonSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            dataset = moderation_services.dataset_transition(
                dataset=dataset, actor=request.user, action=action, reason=data.validated_data.get("reason", "")
            )
            return Response(OwnerDatasetSerializer(dataset).data)

    TransitionView.__name__ = f"Dataset{action.capitalize()}View"
    return TransitionView


DatasetSubmitView = _transition_view(
    "submit", "Submit a draft or rejected dataset for review (owner)", "Schema confirmed; ready for review."
)
DatasetApproveView = _transition_view(
    "approve", "Approve a pending dataset (staff, reason required)", "Schema, licence and description checked."
)
DatasetRejectView = _transition_view(
    "reject", "Reject a pending dataset (staff, reason required)", "The description does not say how consent was given."
)
DatasetDelistView = _transition_view(
    "delist", "Delist a listed dataset (staff, reason required)", "Report upheld: the data holds direct identifiers."
)
DatasetRelistView = _transition_view(
    "relist", "Relist a delisted dataset (staff, reason required)", "The provider removed the identifying columns."
)


class EditDecisionSerializer(ReasonSerializer):
    submitted_at = serializers.DateTimeField(
        required=False,
        help_text="`pending_edit.submitted_at` of the edit you reviewed: if the owner has changed it since, "
        "the answer is 409 `pending_edit_changed` and nothing is decided.",
    )


def _edit_decision_view(approve: bool, summary: str, reason: str):
    class EditDecisionView(APIView):
        permission_classes = [IsAuthenticated]
        parser_classes = [JSONParser, FormParser, MultiPartParser]

        @extend_schema(
            summary=summary,
            description="An owner's edit of a listed dataset's title, description, tags or licence is not shown "
            "until a moderator approves it (`pending_edit`); the listing stays up meanwhile.",
            request=EditDecisionSerializer,
            responses={
                200: OwnerDatasetSerializer,
                409: OpenApiResponse(
                    ErrorSerializer,
                    description="No edit is waiting (`no_pending_edit`), or it changed since `submitted_at` "
                    "(`pending_edit_changed`)",
                ),
                **_errors(400, 401, 403, 404),
            },
            tags=["moderation"],
            operation_id=f"datasets_edit_{'approve' if approve else 'reject'}",
            examples=[OpenApiExample("Reason", value={"reason": reason}, request_only=True)],
        )
        def post(self, request, dataset_id: int):
            dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
            data = EditDecisionSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            dataset = moderation_services.dataset_edit_decide(
                dataset=dataset,
                actor=request.user,
                approve=approve,
                reason=data.validated_data.get("reason", ""),
                submitted_at=data.validated_data.get("submitted_at"),
            )
            return Response(OwnerDatasetSerializer(dataset).data)

    EditDecisionView.__name__ = f"DatasetEdit{'Approve' if approve else 'Reject'}View"
    return EditDecisionView


DatasetEditApproveView = _edit_decision_view(
    True, "Approve the owner's pending edit of a listed dataset (staff, reason required)", "New wording checked."
)
DatasetEditRejectView = _edit_decision_view(
    False,
    "Reject the owner's pending edit of a listed dataset (staff, reason required)",
    "The new title promises identifiable records.",
)


class DatasetReportsView(_PagedListView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    pagination_class = StandardPagination

    class ReportInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(
        summary="Reports on this dataset (staff: all; others: their own)",
        responses={200: ReportSerializer(many=True), **_errors(401, 404)},
        tags=["moderation"],
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        qs = moderation_selectors.reports_visible(actor=request.user, dataset=dataset)
        return _paginate(self, request, qs, ReportSerializer)

    @extend_schema(
        summary="Report a listed dataset to the moderators",
        request=ReportInputSerializer,
        examples=[
            OpenApiExample(
                "Report",
                value={"reason": "The description says anonymised, but the mock data has a name column."},
                request_only=True,
            )
        ],
        responses={201: ReportSerializer, **_errors(400, 401, 404, 409)},
        tags=["moderation"],
    )
    def post(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        data = self.ReportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = moderation_services.report_create(
            dataset=dataset, reporter=request.user, reason=data.validated_data["reason"]
        )
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)


class ReportResolveView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    class ReportResolveInputSerializer(serializers.Serializer):
        resolution = serializers.CharField(max_length=2000)
        dismiss = serializers.BooleanField(default=False)

    @extend_schema(
        summary="Answer a report (staff)",
        request=ReportResolveInputSerializer,
        examples=[
            OpenApiExample(
                "Resolve",
                value={"resolution": "Checked with the provider: the column holds synthetic names.", "dismiss": True},
                request_only=True,
            )
        ],
        responses={200: ReportSerializer, **_errors(400, 401, 403, 404, 409)},
        tags=["moderation"],
    )
    def post(self, request, report_id: int):
        if not request.user.is_staff:
            raise PermissionDenied("Only moderators can resolve reports.")
        report = Report.objects.filter(pk=report_id).first()
        if report is None:
            raise NotFound("No such report.")
        data = self.ReportResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = moderation_services.report_resolve(report=report, actor=request.user, **data.validated_data)
        return Response(ReportSerializer(report).data)


class ModerationQueueView(_PagedListView):
    permission_classes = [IsAuthenticated]
    pagination_class = StandardPagination

    @extend_schema(
        summary="Datasets awaiting moderation (staff)",
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=[*Dataset.Status.values, "all", moderation_selectors.EDIT_PENDING],
                description="Default pending_review; edit_pending: listed datasets whose owner's edit awaits review.",
            ),
            OpenApiParameter("q", str, description="Title or owner contains."),
            OpenApiParameter("reported", bool, description="Only datasets with open reports."),
        ],
        responses={200: QueueItemSerializer(many=True), **_errors(400, 401, 403), **PAGE_NOT_FOUND},
        tags=["moderation"],
    )
    def get(self, request):
        params = request.query_params
        qs = moderation_selectors.moderation_queue(
            actor=request.user,
            status=params.get("status", Dataset.Status.PENDING_REVIEW),
            query=params.get("q", ""),
            reported_only=params.get("reported") in ("1", "true", "yes"),
        )
        return _paginate(self, request, qs, QueueItemSerializer)


class ModerationLogView(_PagedListView):
    permission_classes = [IsAuthenticated]
    pagination_class = StandardPagination

    @extend_schema(
        summary="Audit log (staff: everything; providers: their own datasets)",
        parameters=[OpenApiParameter("dataset", int)],
        responses={200: ModerationLogEntrySerializer(many=True), **_errors(401, 404)},
        tags=["moderation"],
    )
    def get(self, request):
        dataset = None
        if request.query_params.get("dataset"):
            dataset = catalog.dataset_get_visible(dataset_id=request.query_params["dataset"], user=request.user)
        qs = moderation_selectors.moderation_log(actor=request.user, dataset=dataset)
        return _paginate(self, request, qs, ModerationLogEntrySerializer)


class MyDatasetsView(_PagedListView):
    permission_classes = [IsAuthenticated]
    pagination_class = StandardPagination

    @extend_schema(
        summary="My datasets, in every state",
        responses={200: OwnerDatasetSerializer(many=True), **_errors(401), **PAGE_NOT_FOUND},
        tags=["datasets"],
    )
    def get(self, request):
        return _paginate(self, request, catalog.datasets_of_owner(owner=request.user), OwnerDatasetSerializer)
