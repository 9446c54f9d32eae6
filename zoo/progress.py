"""Progress bars for long work the zoo does outside a Trainer: predicting, testing, decoding images."""

from __future__ import annotations


class progress_bar:
    """A rich progress bar on stderr over ``total`` steps when ``enabled``, else nothing; yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, description: str = "predicting") -> None:
        self.enabled, self.total, self.description, self.bar = enabled, total, description, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)  # stdout is for the results
        self.bar.start()
        task = self.bar.add_task(self.description, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
