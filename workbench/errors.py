"""The one exception type users see.

Everything the user can get wrong (a file that is not an image, an oversized upload, a missing
model) raises :class:`InputError` with a single sentence that says what is wrong and what to do.
The CLI prints it as ``error: <sentence>`` with exit status 2; the app shows it as ``gr.Error``.
"""


class InputError(ValueError):
    """A problem with what the user gave; its message is one line, shown as is."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class WeightsNotFoundError(InputError):
    """No model folder for a task: neither in ``weights/`` nor in the Hub cache."""
