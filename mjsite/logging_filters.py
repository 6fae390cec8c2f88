import logging
import re

HOOK_PATH = re.compile(r"(/hooks/mj/)([^/\s]{4})[^/\s]*")


class MaskSecrets(logging.Filter):
    """Every secret and hook token that this process has loaded is masked in each log
    line, its traceback included; a hook URL keeps only its token's first characters."""

    def filter(self, record):
        from tasks.redaction import redact, remembered

        secrets = remembered()
        message = record.getMessage()
        masked = hook_paths(redact(message, secrets))
        if masked != message:
            record.msg = masked
            record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = hook_paths(redact(record.exc_text, secrets))
        return True


def hook_paths(text):
    return HOOK_PATH.sub(r"\1\2…", text) if "/hooks/mj/" in text else text
