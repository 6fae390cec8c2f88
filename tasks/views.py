from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404

from .models import Task


@login_required
def task_detail(request, task_id):
    # Replaced by the dashboard's detail page; kept so get_absolute_url resolves.
    task = get_object_or_404(Task, task_id=task_id)
    return HttpResponse(task.task_id, content_type="text/plain")
