"""The one error type every parser of the project raises for bad input."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input: where, what, and what form was expected."""

    field: str
    message: str
    expected: str | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class ValidationError(ValueError):
    """Bad input. Carries every problem found, each naming its field and the expected form."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        if not self.problems:
            raise ValueError("ValidationError needs at least one problem")
        super().__init__("; ".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[ValidationError], tuple[list[Problem]]]:
        """Picklable with its problems (it crosses to and from worker processes)."""
        return (type(self), (self.problems,))

    @classmethod
    def single(cls, field: str, message: str, expected: str | None = None) -> ValidationError:
        return cls(Problem(field, message, expected))

    def prefixed(self, prefix: str) -> ValidationError:
        """The same problems, their fields nested under `prefix` (e.g. a document path)."""
        return ValidationError(
            [Problem(f"{prefix}.{p.field}" if p.field else prefix, p.message, p.expected) for p in self.problems]
        )
