"""A Midjourney proxy simulator (novicezk, trueai or an API relay) for tests and demos.

Standalone on purpose: only the standard library and Pillow, nothing from the tasks app.
"""

from .clock import ManualClock, RealClock
from .simulator import Simulator

__all__ = ["ManualClock", "RealClock", "Simulator"]
