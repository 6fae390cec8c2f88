"""Alerts: rules over what the mirror sees (rules.py), the incidents they open and close
(incidents.py), the notifications that tell people (notify.py, channels.py, messages.py)
and the page that lists them (views.py)."""
