"""Page forms. They parse and shape input for the services; the rules themselves (budgets, schema,
tags, transitions) live in ``marketplace.services`` and come back as ``DomainError`` messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from marketplace.models import Dataset, Licence
from marketplace.selectors.catalog import SORTS
from marketplace.services.datasets import ListingFields
from marketplace.services.schema import COLUMN_TYPES

User = get_user_model()

SORT_LABELS = {
    "relevance": "Best match",
    "newest": "Newest",
    "oldest": "Oldest",
    "price": "Price: low to high",
    "-price": "Price: high to low",
}


class NoColonMixin:
    """Labels read "Email", not "Email:" (screen readers announce the colon)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


# --- accounts ------------------------------------------------------------------------------


class SignUpForm(NoColonMixin, UserCreationForm):
    email = forms.EmailField(required=True, help_text="Used for moderation notices about your datasets.")
    organisation = forms.CharField(max_length=200, required=False)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email", "organisation")


class LoginForm(NoColonMixin, AuthenticationForm):
    pass


class ProfileForm(NoColonMixin, forms.ModelForm):
    class Meta:
        model = User
        fields = ("email", "organisation", "bio")
        widgets = {"bio": forms.Textarea(attrs={"rows": 4})}


# --- datasets ------------------------------------------------------------------------------


class ListingForm(NoColonMixin, forms.Form):
    """Listing metadata. Bounds here are only the obvious ones; the service has the final word."""

    title = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown. Say what the data covers, how it was collected and what it is good for.",
    )
    tags = forms.CharField(
        required=False,
        max_length=600,
        help_text="Comma-separated, e.g. health, cardiology (letters, digits and dashes; at most 10).",
    )
    licence = forms.ChoiceField(choices=Licence.choices, initial=Licence.CC_BY_4)
    price = forms.DecimalField(
        min_value=Decimal("0"),
        decimal_places=6,
        max_digits=18,
        initial=Decimal("0"),
        help_text="Price of one compute job.",
    )
    price_token = forms.CharField(max_length=12, initial="USDC", label="Payment token")
    epsilon_total = forms.DecimalField(
        label="Total epsilon (ε)",
        max_digits=10,
        decimal_places=4,
        initial=Decimal("10"),
        help_text="Privacy budget for all jobs on this dataset together. Above 0, at most 1000.",
    )
    epsilon_per_job = forms.DecimalField(
        label="Epsilon per job",
        max_digits=10,
        decimal_places=4,
        initial=Decimal("1"),
        help_text="The most one job may spend; at most the total.",
    )
    delta = forms.FloatField(
        label="Delta (δ)",
        initial="0.00001",
        help_text="Above 0 and below 0.01; typically well below 1 / number of rows.",
    )

    field_order = [
        "title",
        "description",
        "tags",
        "licence",
        "price",
        "price_token",
        "epsilon_total",
        "epsilon_per_job",
        "delta",
    ]

    @classmethod
    def initial_for(cls, dataset: Dataset) -> dict[str, Any]:
        return {
            "title": dataset.title,
            "description": dataset.description,
            "tags": ", ".join(t.name for t in dataset.tags.all()),
            "licence": dataset.licence,
            "price": dataset.price.normalize() if dataset.price else Decimal("0"),
            "price_token": dataset.price_token,
            "epsilon_total": dataset.epsilon_total.normalize(),
            "epsilon_per_job": dataset.epsilon_per_job.normalize(),
            "delta": format(Decimal(repr(dataset.delta)), "f"),  # 0.00001, not 1e-05
        }

    def listing_fields(self) -> ListingFields:
        data = self.cleaned_data
        return ListingFields(
            title=data["title"],
            description=data["description"],
            tags=data["tags"].split(","),
            licence=data["licence"],
            price=data["price"],
            price_token=data["price_token"],
            epsilon_total=data["epsilon_total"],
            epsilon_per_job=data["epsilon_per_job"],
            delta=data["delta"],
        )


class DatasetUploadForm(ListingForm):
    file = forms.FileField(
        label="Data file",
        help_text="CSV with a header row, or Parquet. It is encrypted at rest and never served to anyone.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.parquet,.pq,text/csv"}),
    )

    field_order = ["file", *ListingForm.field_order]


class MockUploadForm(NoColonMixin, forms.Form):
    file = forms.FileField(
        label="Mock CSV",
        help_text="Exactly the declared columns, in order. Everyone can download it: use made-up values only.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


TYPE_CHOICES = [(t, t) for t in COLUMN_TYPES]


class SchemaColumnForm(NoColonMixin, forms.Form):
    """One declared column. The name is not taken from the request: the view pairs rows with the
    file's columns by position."""

    type = forms.ChoiceField(choices=TYPE_CHOICES)
    min = forms.CharField(required=False, max_length=40)
    max = forms.CharField(required=False, max_length=40)
    categories = forms.CharField(required=False, max_length=10_000, help_text="Comma-separated.")
    max_length = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Max length")
    nullable = forms.BooleanField(required=False)
    description = forms.CharField(required=False, max_length=500)

    @staticmethod
    def initial_for(column: dict[str, Any]) -> dict[str, Any]:
        def text(value: Any) -> str:
            return "" if value is None else str(value)

        return {
            "type": column.get("type", "text"),
            "min": text(column.get("min")),
            "max": text(column.get("max")),
            "categories": ", ".join(str(c) for c in column.get("categories") or []),
            "max_length": column.get("max_length"),
            "nullable": bool(column.get("nullable")),
            "description": column.get("description", ""),
        }

    def column_spec(self, name: str) -> dict[str, Any]:
        """The column as ``schema_validate`` expects it. Unparseable bounds are passed through as
        text so the service names the problem."""
        data = self.cleaned_data
        kind = data["type"]
        spec: dict[str, Any] = {
            "name": name,
            "type": kind,
            "nullable": data["nullable"],
            "description": data["description"],
        }
        if kind in ("integer", "float"):
            spec["min"], spec["max"] = _number(data["min"], kind), _number(data["max"], kind)
        elif kind == "datetime":
            spec["min"], spec["max"] = data["min"].strip() or None, data["max"].strip() or None
        elif kind == "categorical":
            spec["categories"] = [c.strip() for c in data["categories"].split(",") if c.strip()]
        elif kind == "text" and data["max_length"]:
            spec["max_length"] = data["max_length"]
        return spec


def _number(raw: str, kind: str) -> int | float | str | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if kind == "integer" and value.is_integer() else value


SchemaFormSet = forms.formset_factory(SchemaColumnForm, extra=0, max_num=500, absolute_max=500)


# --- catalogue and moderation -----------------------------------------------------------------


class CatalogueFilterForm(NoColonMixin, forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search datasets"}),
    )
    tags = forms.CharField(required=False, max_length=300, help_text="Comma-separated; all must match.")
    licence = forms.ChoiceField(required=False, choices=[("", "Any licence"), *Licence.choices])
    price_min = forms.DecimalField(
        required=False, min_value=Decimal("0"), max_digits=18, decimal_places=6, label="Min price"
    )
    price_max = forms.DecimalField(
        required=False, min_value=Decimal("0"), max_digits=18, decimal_places=6, label="Max price"
    )
    sort = forms.ChoiceField(required=False, choices=[(s, SORT_LABELS.get(s, s)) for s in SORTS])

    def clean(self):
        data = super().clean()
        lo, hi = data.get("price_min"), data.get("price_max")
        if lo is not None and hi is not None and lo > hi:
            raise forms.ValidationError("The minimum price must not be above the maximum price.")
        return data

    def search_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "query": data["q"],
            "tags": [t for t in (data["tags"] or "").split(",") if t.strip()],
            "licence": data["licence"] or None,
            "price_min": data["price_min"],
            "price_max": data["price_max"],
            "sort": data["sort"] or None,
        }


QUEUE_STATUS_CHOICES = [
    (Dataset.Status.PENDING_REVIEW, "Pending review"),
    ("all", "All"),
    (Dataset.Status.LISTED, "Listed"),
    (Dataset.Status.DELISTED, "Delisted"),
    (Dataset.Status.REJECTED, "Rejected"),
    (Dataset.Status.DRAFT, "Draft"),
]


class ModerationFilterForm(NoColonMixin, forms.Form):
    status = forms.ChoiceField(required=False, choices=QUEUE_STATUS_CHOICES)
    q = forms.CharField(
        required=False, max_length=200, label="Title or owner", widget=forms.TextInput(attrs={"type": "search"})
    )
    reported = forms.BooleanField(required=False, label="Reported only")


class TransitionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in Dataset.TRANSITIONS])
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ReportForm(NoColonMixin, forms.Form):
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What is wrong with this listing?"
    )


class ResolveReportForm(forms.Form):
    decision = forms.ChoiceField(choices=[("resolve", "Resolve"), ("dismiss", "Dismiss")])
    resolution = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


# --- chain: compute orders ------------------------------------------------------------------

ALGORITHM_CHOICES = [
    ("dp-logistic-regression", "DP logistic regression"),
    ("dp-mlp-classifier", "DP neural network classifier (MLP)"),
    ("dp-linear-regression", "DP linear regression"),
    ("dp-statistics", "DP summary statistics"),
]


class OrderForm(NoColonMixin, forms.Form):
    """A compute order on one dataset. Only the dataset's own caps are checked here; the budget
    left on chain, the price and the wallet are the order service's and the chain's to check."""

    epsilon = forms.DecimalField(
        label="Epsilon (ε)",
        max_digits=10,
        decimal_places=4,
        help_text="Privacy budget this job spends. Smaller means stronger privacy and noisier results.",
    )
    delta = forms.FloatField(label="Delta (δ)")
    algorithm = forms.ChoiceField(choices=ALGORITHM_CHOICES, initial="dp-logistic-regression")

    def __init__(self, *args, dataset: Dataset, epsilon_left: Decimal | None = None, **kwargs):
        self.dataset = dataset
        per_job = dataset.epsilon_per_job
        default = per_job if epsilon_left is None or epsilon_left <= 0 else min(per_job, epsilon_left)
        kwargs.setdefault(
            "initial", {"epsilon": default.normalize(), "delta": format(Decimal(repr(dataset.delta)), "f")}
        )
        super().__init__(*args, **kwargs)
        self.fields["epsilon"].help_text += f" At most {format(per_job.normalize(), 'f')} per job."
        self.fields["epsilon"].widget.attrs.update({"min": "0.0001", "max": str(per_job), "step": "0.0001"})
        self.fields["delta"].help_text = f"Above 0, at most {format(Decimal(repr(dataset.delta)), 'f')}."

    def clean_epsilon(self) -> Decimal:
        epsilon = self.cleaned_data["epsilon"]
        if epsilon <= 0:
            raise forms.ValidationError("Epsilon must be greater than 0.")
        if epsilon > self.dataset.epsilon_per_job:
            cap = format(self.dataset.epsilon_per_job.normalize(), "f")
            raise forms.ValidationError(f"At most ε {cap} per job on this dataset.")
        return epsilon

    def clean_delta(self) -> float:
        delta = self.cleaned_data["delta"]
        if delta <= 0:
            raise forms.ValidationError("Delta must be greater than 0.")
        if delta > self.dataset.delta:
            raise forms.ValidationError(f"At most δ {format(Decimal(repr(self.dataset.delta)), 'f')} on this dataset.")
        return delta
