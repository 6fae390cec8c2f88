"""What the bench scripts share: progress lines and a free port on loopback."""

import socket


def say(text):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
