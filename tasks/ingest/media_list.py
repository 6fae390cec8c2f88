"""A record's media beyond image_url: the pictures of a grid (imageUrls) and videos
(videoUrls, an MP4 image_url), as stored in Task.media, Task.is_video and
Task.video_duration. Pure functions over the standard library, like records.py."""


def media_of(item):
    """(media, is_video, video_duration) of one record in the proxy's camelCase shape."""
    return [], False, None
