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
from marketplace.services.datasets import HOLDOUT_MAX, PUBLIC_ROW_COUNT_MAX, ListingFields, public_row_count_suggest
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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
        label="Delta (δ) per job",
        initial="0.00001",
        help_text="Above 0 and below 0.01; typically well below 1 / number of rows.",
    )
    delta_total = forms.FloatField(
        label="Total delta (δ), all jobs together",
        required=False,
        initial="0.0001",
        help_text="Delta composes across jobs too: once the jobs' deltas add up to this, no more jobs run. "
        "At least the delta per job.",
    )
    holdout_fraction = forms.FloatField(
        label="Holdout fraction",
        required=False,
        min_value=0,
        max_value=HOLDOUT_MAX,
        initial="0.2",
        help_text="Share of rows the runner keeps out of training to report metrics on (0 to 0.5). "
        "Which rows is decided by a secret key per dataset, so no buyer can choose them.",
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
        "delta_total",
        "holdout_fraction",
    ]

    @classmethod
    def initial_for(cls, dataset: Dataset) -> dict[str, Any]:
        # An edit waiting for a moderator is what the owner last wrote: they go on from it.
        text = dataset.pending_edit or {
            "title": dataset.title,
            "description": dataset.description,
            "tags": [t.name for t in dataset.tags.all()],
            "licence": dataset.licence,
        }
        return {
            "title": text["title"],
            "description": text["description"],
            "tags": ", ".join(text["tags"]),
            "licence": text["licence"],
            "price": dataset.price.normalize() if dataset.price else Decimal("0"),
            "price_token": dataset.price_token,
            "epsilon_total": dataset.epsilon_total.normalize(),
            "epsilon_per_job": dataset.epsilon_per_job.normalize(),
            "delta": format(Decimal(repr(dataset.delta)), "f"),  # 0.00001, not 1e-05
            "delta_total": format(Decimal(repr(dataset.delta_total)), "f"),
            "holdout_fraction": plain_number(dataset.holdout_fraction),
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
            delta_total=data.get("delta_total"),  # blank: unchanged (or the default on upload)
            holdout_fraction=data.get("holdout_fraction"),
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


class SchemaConfirmForm(NoColonMixin, forms.Form):
    """What the owner declares with the schema besides the columns: the public row count and the
    holdout fraction. The service has the final word on both."""

    public_row_count = forms.IntegerField(
        label="Public row count (about how many rows)",
        min_value=1,
        max_value=PUBLIC_ROW_COUNT_MAX,
        help_text="This number will be public. The runner derives batch sampling and the number of training "
        "steps from it, never from the exact private count. We pre-filled the file's row count rounded to "
        "2 significant figures; round it further if you like.",
    )
    holdout_fraction = forms.FloatField(
        label="Holdout fraction",
        required=False,
        min_value=0,
        max_value=HOLDOUT_MAX,
        help_text="Share of rows kept out of training to report metrics on (0 to 0.5; default 0.2). "
        "Which rows is decided by a secret key per dataset that no one is shown.",
    )

    def __init__(self, *args: Any, dataset: Dataset, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "public_row_count": dataset.public_row_count or public_row_count_suggest(dataset.row_count),
                "holdout_fraction": plain_number(dataset.holdout_fraction),
            },
        )
        super().__init__(*args, **kwargs)
        # Required to confirm; a schema that already has one may be saved without retyping it.
        self.fields["public_row_count"].required = dataset.public_row_count is None


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

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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
    ("edit_pending", "Edits awaiting review"),
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


# --- compute jobs ----------------------------------------------------------------------------

PARAM_LABELS = {
    "target": "Target column",
    "features": "Feature columns",
    "columns": "Columns to describe",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "learning_rate": "Learning rate",
    "max_grad_norm": "Clipping bound C",
    "hidden_sizes": "Hidden layer sizes",
    "private_metrics": "Release DP metrics",
    "statistics": "Statistics",
    "bins": "Histogram bins",
    "quantiles": "Quantile levels",
    "epsilon": "Epsilon (ε)",
    "delta": "Delta (δ)",
    "accountant": "Privacy accountant",
}
CHOICE_LABELS = {
    "rdp": "RDP (Rényi DP)",
    "prv": "PRV (tighter)",
    "count": "Count",
    "sum": "Sum",
    "mean": "Mean",
    "histogram": "Histogram",
    "quantiles": "Quantiles",
}
# Which fieldset a parameter is shown in; anything else is a setting of the algorithm itself.
COLUMN_PARAMS = ("target", "features", "columns")
PRIVACY_PARAMS = ("epsilon", "delta", "accountant")
# Column types a job can use (free text has no declared bounds), and the target types per kind.
USABLE_COLUMN_TYPES = ("integer", "float", "boolean", "categorical", "datetime")
TARGET_TYPES = {"classifier": ("categorical", "boolean", "integer"), "regressor": ("integer", "float")}
EPSILON_STEP = Decimal("0.0001")  # the precision an order carries


def plain_number(value: Any) -> str:
    """1e-05 -> "0.00001", 50.0 -> "50", Decimal("1.5000") -> "1.5"."""
    if value is None:
        return ""
    number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value))
    text = format(number.normalize(), "f")
    return text


class NumberListField(forms.Field):
    """Comma-separated numbers: "64, 32" -> [64, 32]. Their bounds are the runner's to check."""

    def __init__(self, *, integer: bool, **kwargs: Any) -> None:
        self.integer = integer
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[int | float] | None:
        text = "" if value in self.empty_values else str(value).strip()
        if not text:
            return None
        items = [part.strip() for part in text.split(",") if part.strip()]
        try:
            return [int(item) if self.integer else float(item) for item in items]
        except ValueError:
            example = "64, 32" if self.integer else "0.25, 0.5, 0.75"
            kind = "whole numbers" if self.integer else "numbers"
            raise forms.ValidationError(f"Enter {kind} separated by commas, e.g. {example}.", code="invalid")


class JobForm(NoColonMixin, forms.Form):
    """The parameters of one algorithm, built from the runner's catalogue
    (``compute_to_data.runner.params.algorithms_describe``). Fields only parse text into the types
    the runner expects and carry the catalogue's bounds as HTML attributes; the bounds themselves
    are checked by ``parameters_for``, whose error goes back next to its field (``attach_error``)."""

    algorithm = forms.CharField(widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        algorithm: dict[str, Any],
        dataset: Dataset,
        epsilon_left: Decimal | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auto_id", "job-%s")
        super().__init__(*args, **kwargs)
        self.spec = algorithm
        self.dataset = dataset
        per_job = dataset.epsilon_per_job
        self.epsilon_cap = per_job if epsilon_left is None or epsilon_left <= 0 else min(per_job, epsilon_left)
        self.columns = [c for c in (dataset.declared_schema or {}).get("columns", []) if isinstance(c, dict)]
        self.fields["algorithm"].initial = algorithm["name"]
        self.param_names: list[str] = []
        for spec in algorithm["parameters"]:
            self.fields[spec["name"]] = self._field(spec)
            self.param_names.append(spec["name"])

    # --- building the fields from the catalogue ---

    def _column_choices(self, types: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(c["name"], f"{c['name']} ({c.get('type', '?')})") for c in self.columns if c.get("type") in types]

    def _field(self, spec: dict[str, Any]) -> forms.Field:
        name, kind = spec["name"], spec["type"]
        label = PARAM_LABELS.get(name, name.replace("_", " ").capitalize())
        help_text = spec.get("help") or ""
        default = spec.get("default")
        required = bool(spec.get("required")) or default is not None
        low = None if spec.get("min") is None or spec.get("min_exclusive") else plain_number(spec["min"])
        high = None if spec.get("max") is None else plain_number(spec["max"])
        common = {"label": label, "required": required}

        if name == "epsilon":
            cap = plain_number(self.epsilon_cap)
            initial = plain_number(min(Decimal(1), self.epsilon_cap))
            help_text += f" On this dataset: at most ε {plain_number(self.dataset.epsilon_per_job)} per job" + (
                f", and ε {cap} can still be spent." if self.epsilon_cap < self.dataset.epsilon_per_job else "."
            )
            attrs = {"min": str(EPSILON_STEP), "max": cap, "step": str(EPSILON_STEP), "inputmode": "decimal"}
            return forms.FloatField(
                **{**common, "required": True}, initial=initial, help_text=help_text, widget=forms.NumberInput(attrs)
            )
        if name == "delta":
            cap = plain_number(self.dataset.delta)
            attrs = {"min": "0", "max": cap, "step": "any", "inputmode": "decimal"}
            return forms.FloatField(
                **{**common, "required": True},
                initial=cap,
                help_text=f"{help_text} On this dataset: above 0, at most δ {cap}.",
                widget=forms.NumberInput(attrs),
            )
        if kind in ("integer", "float"):
            attrs = {"step": "1" if kind == "integer" else "any"}
            if low is not None:
                attrs["min"] = low
            if high is not None:
                attrs["max"] = high
            if low is not None and high is not None:
                help_text += f" From {low} to {high}."
            field_class = forms.IntegerField if kind == "integer" else forms.FloatField
            return field_class(
                **common, initial=plain_number(default), help_text=help_text, widget=forms.NumberInput(attrs)
            )
        if kind == "boolean":
            return forms.BooleanField(label=label, required=False, initial=bool(default), help_text=help_text)
        if kind == "choice":
            choices = [(c, CHOICE_LABELS.get(c, c)) for c in spec.get("choices") or []]
            return forms.ChoiceField(**common, choices=choices, initial=default, help_text=help_text)
        if kind == "choice_list":
            choices = [(c, CHOICE_LABELS.get(c, c)) for c in spec.get("choices") or []]
            return forms.MultipleChoiceField(
                **common,
                choices=choices,
                initial=list(default or []),
                help_text=help_text,
                widget=forms.CheckboxSelectMultiple,
            )
        if kind == "column":
            types = TARGET_TYPES.get(self.spec.get("kind", ""), USABLE_COLUMN_TYPES)
            return forms.ChoiceField(
                label=label,
                required=True,
                choices=[("", "Choose a column"), *self._column_choices(types)],
                help_text=help_text,
            )
        if kind == "column_list":
            return forms.MultipleChoiceField(
                label=label,
                required=False,
                choices=self._column_choices(USABLE_COLUMN_TYPES),
                help_text=f"{help_text} Tick none for the default.",
                widget=forms.CheckboxSelectMultiple,
            )
        if kind in ("integer_list", "float_list"):
            items = ""
            if spec.get("min_items") is not None and spec.get("max_items") is not None:
                items = f" {spec['min_items']} to {spec['max_items']} values"
            bounds = f", each from {low or plain_number(spec.get('min'))} to {high}" if high is not None else ""
            hint = f" Comma-separated{items}{bounds}."
            return NumberListField(
                **common,
                integer=kind == "integer_list",
                initial=", ".join(plain_number(v) for v in default or []),
                help_text=help_text + hint,
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            )
        # A parameter type this form does not know yet: free text, checked by the runner.
        return forms.CharField(label=label, required=False, help_text=help_text)

    # --- reading it back ---

    def clean_epsilon(self) -> float:
        epsilon = self.cleaned_data["epsilon"]
        if Decimal(repr(epsilon)) != Decimal(repr(epsilon)).quantize(EPSILON_STEP):
            raise forms.ValidationError("Epsilon can have at most 4 decimal places.", code="precision")
        return epsilon

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The parameters grouped for the page: columns, the algorithm's settings, privacy."""
        settings_legend = "Statistics" if self.spec.get("kind") == "statistics" else "Training"
        groups: list[tuple[str, list[str]]] = [
            ("Columns", [n for n in self.param_names if n in COLUMN_PARAMS]),
            (settings_legend, [n for n in self.param_names if n not in COLUMN_PARAMS and n not in PRIVACY_PARAMS]),
            ("Privacy", [n for n in self.param_names if n in PRIVACY_PARAMS]),
        ]
        return [(legend, [self[n] for n in names]) for legend, names in groups if names]

    def parameters(self) -> dict[str, Any]:
        """The cleaned values as the runner's parameters; an empty optional field is left out, so
        the catalogue's default applies."""
        out: dict[str, Any] = {}
        for name in self.param_names:
            value = self.cleaned_data.get(name)
            if value is None or value == "" or value == []:
                continue
            out[name] = value
        return out

    def attach_error(self, exc: Exception) -> bool:
        """Put a service's ``InvalidInput`` (``extra["field"]``) next to its field; False when the
        error names no field of this form."""
        field = (getattr(exc, "extra", None) or {}).get("field")
        if field in self.param_names and hasattr(self, "cleaned_data"):
            self.add_error(field, getattr(exc, "detail", str(exc)))
            return True
        return False
