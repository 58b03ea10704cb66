"""The vendor side the box talks to: claim page, enrollment API, MQTT ingest into a database, staff pages.

A Django project in one app (``meterbox_cloud``): the ORM, migrations, admin and auth come
with the framework; ``python -m meterbox_cloud`` runs it (see cli.py).
"""
