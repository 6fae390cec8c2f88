"""Curation: what a team adds to the mirrored tasks (favourites, tags, collections) and
shows to people without a login (share links), with the pages and actions for them.

Rows live in tasks/models.py (Favourite, Tag, TaskTag, Collection, CollectionItem,
ShareLink); this room reads and writes them, reuses the list's pages (tasks.web) for
thumbnails and exports, and never touches `Task.raw` or a proxy.
"""
