from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tasks.api.tokens import create_token


class Command(BaseCommand):
    help = (
        "Create a token for the mirror API (/mj/task/...) and print it as the last line. "
        "It is shown once: only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the user the token acts as")

    def handle(self, *args, username, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f"no user named {username!r}; create one first "
                "(manage.py createsuperuser, or in the admin)"
            ) from None
        if not user.is_active:
            raise CommandError(
                f"user {username!r} is inactive, and tokens of inactive users are refused; "
                "activate the user in the admin first"
            )
        row, token = create_token(user)
        self.stdout.write(
            f"Created API token {row.prefix}… for {username}. Store it now, it is not shown "
            "again. Send it as 'mj-api-secret: <token>' or 'Authorization: Bearer <token>':"
        )
        self.stdout.write(token)
