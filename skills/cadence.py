"""A skill's cadence: which numbers of a record are texted, in what order and how often.

Only the destinations of the skill's channel take part: an SMS skill's cadence never names an
email column, and an email skill's "any destination" means any address of the record."""

from __future__ import annotations

from dataclasses import dataclass

from skills.models import CadenceStep, Destination, Skill


@dataclass(frozen=True)
class Step:
    field: str | None  # lower-case source field; None: any number (a skill without cadence)
    attempts: int
    rest_minutes: int
    row: CadenceStep | None


class Cadence:
    """Which numbers of a record are texted, in what order and how often."""

    def __init__(self, skill: Skill, steps: list[CadenceStep]) -> None:
        self.channel = skill.channel
        self.repeat = skill.attempt_mode == Skill.AttemptMode.REPEAT
        self.sequential = skill.record_mode == Skill.RecordMode.SEQUENTIAL
        self.steps = [
            Step(s.phone_field.strip().lower(), max(1, s.attempts), s.rest_minutes, s)
            for s in steps
        ]

    @classmethod
    def for_skill(cls, skill: Skill) -> Cadence:
        return cls(skill, list(skill.cadence_steps.all()))

    def numbers(self, destinations: list[Destination]) -> list[tuple[Step, Destination]]:
        """The record's numbers the cadence texts, in cadence order, finalized ones included."""
        destinations = [d for d in destinations if d.channel == self.channel]
        if not self.steps:
            return [(Step(None, 1, 0, None), d) for d in destinations]
        by_field: dict[str, list[Destination]] = {}
        for d in destinations:
            by_field.setdefault(d.source_field.strip().lower(), []).append(d)
        return [(s, d) for s in self.steps for d in by_field.get(s.field, [])]

    def candidates(self, numbers: list[tuple[Step, Destination]]) -> list:
        """The numbers that still have attempts in the current pass through the cadence."""
        if not numbers:
            return []
        rounds = 0
        if self.repeat:
            rounds = min(d.attempts // s.attempts for s, d in numbers)
        return [(s, d) for s, d in numbers if d.attempts < s.attempts * (rounds + 1)]

    def exhausted(self, destinations: list[Destination]) -> bool:
        """A single pass that has used every attempt of every open number."""
        if self.repeat:
            return False
        numbers = [(s, d) for s, d in self.numbers(destinations) if not d.is_final]
        return bool(numbers) and not self.candidates(numbers)

    def step_of(self, destination_id: int, numbers: list[tuple[Step, Destination]]):
        return next((s for s, d in numbers if d.id == destination_id), None)
