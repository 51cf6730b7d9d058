"""The one error a publishing step raises: the push could not be done, and its message says why and what to
do. Its own module so that every publishing module (push, visibility, the Space) can raise it without
importing one another."""


class HubPushError(RuntimeError):
    """The push could not be done; the message says why and what to do."""
