"""The forms of curation's actions: what each POST may say."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tasks.curation import sharing
from tasks.models import ShareLink
from tasks.web.filters import PksField

FIELD_LABELS = {
    "prompt": _("Prompt"),
    "action": _("Action"),
    "submitted": _("Submitted"),
    "finished": _("Finished"),
}


class ShareForm(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, max_value=sharing.MAX_DAYS)
    fields = forms.MultipleChoiceField(
        required=False, choices=[(name, FIELD_LABELS[name]) for name in ShareLink.FIELDS]
    )
    # Set by the page's form: its unticked boxes send nothing, which then means "none"
    # and not the default (every field).
    fields_given = forms.BooleanField(required=False)

    def link_options(self):
        data = self.cleaned_data
        fields = data["fields"] if data["fields_given"] else ShareLink.FIELDS
        return {"days": data["days"] or sharing.DEFAULT_DAYS, "fields": fields}


class SelectionForm(forms.Form):
    ACTIONS = ("favourite", "unfavourite", "tag", "untag", "collect")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    pk = PksField()
    tags = forms.CharField(required=False, max_length=1000)
    collection = forms.IntegerField(required=False, min_value=1)
    new_collection = forms.CharField(required=False, max_length=200, strip=True)


class CollectionForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    team = forms.BooleanField(required=False)


class CollectionEditForm(forms.Form):
    ACTIONS = ("rename", "up", "down", "cover", "remove", "reorder", "delete")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    name = forms.CharField(required=False, max_length=200, strip=True)
    pk = PksField(required=False)
