from .imports import ImportConsumer
from .runs import RunConsumer

__all__ = ["ImportConsumer", "RunConsumer"]
