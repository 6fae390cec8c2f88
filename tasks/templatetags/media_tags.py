"""The pages' grids and videos: what the detail page and the gallery show of Task.media
and its archived copies (tasks/archive/display.py decides which link; this loads the
copies, one query, and only for tasks that have media)."""

from django import template

from tasks.archive.display import (
    fitted,
    media_items,
    media_list,
    picture_count,
    shows_video,
    video_poster,
)
from tasks.models import ImageState, TaskMedia

register = template.Library()


@register.simple_tag
def task_media(task):
    """The detail page's grid pictures and videos, in the record's order."""
    if not media_list(task):
        return []
    copies = {copy.position: copy for copy in TaskMedia.objects.filter(task_id=task.pk)}
    return media_items(task, copies)


@register.simple_tag
def main_video(task):
    """{src, poster} when the task's own image_url is a video (trueai's VIDEO), else None."""
    if not shows_video(task) or not task.large:
        return None
    return {"src": task.large, "poster": video_poster(task)}


@register.simple_tag
def gallery_media(tasks):
    """Give each card of a gallery page what it shows of a grid or a video: `card_poster`
    (a video's poster) or the grid's first picture as its thumb and large image, and
    `card_pictures` (the badge's count). One query for the page, none without media."""
    with_media = [task for task in tasks if media_list(task)]
    firsts = TaskMedia.objects.filter(
        task_id__in=[task.pk for task in with_media], position=0, state=ImageState.ARCHIVED
    )
    firsts = {copy.task_id: copy for copy in firsts} if with_media else {}
    for task in tasks:
        task.card_pictures = picture_count(task)
        if task.is_video:
            task.card_poster = video_poster(task) if shows_video(task) else task.thumb
            continue
        first = media_items(task, {0: firsts[task.pk]} if task.pk in firsts else {})[:1]
        if task.card_pictures and first and first[0]["kind"] == "image" and first[0]["thumb"]:
            task.thumb, task.large = first[0]["thumb"], first[0]["src"] or first[0]["thumb"]
            task.size = fitted(first[0]["width"], first[0]["height"]) or task.size
    return ""


@register.filter
def seconds_clock(value):
    """A duration in seconds as a player shows it: 0:05, 1:02:03."""
    try:
        total = round(float(value))
    except (TypeError, ValueError, OverflowError):
        return ""
    if total < 0:
        return ""
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
