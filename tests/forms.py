"""Helpers that turn an admin change page into the POST a browser would send back."""

from __future__ import annotations


def _field_data(form, data: dict) -> None:
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        value = form[name].value()
        widget = field.widget
        if hasattr(widget, "widgets"):  # a MultiWidget, e.g. the date and time of a datetime
            if not isinstance(value, list | tuple):
                value = widget.decompress(value)
            for index, part in enumerate(value):
                data[f"{key}_{index}"] = "" if part is None else str(part)
            continue
        if isinstance(value, bool):
            if value:
                data[key] = "on"
            continue
        if isinstance(value, list | tuple):
            data[key] = [str(getattr(v, "pk", v)) for v in value]
            continue
        data[key] = "" if value is None else str(getattr(value, "pk", value))


def admin_form_data(response) -> dict:
    """The change page's main form and every inline row as they stand, ready to POST."""
    data: dict = {}
    _field_data(response.context["adminform"].form, data)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = str(management[name].value())
        for form in formset.forms:
            _field_data(form, data)
    return data
