"""The learning-rate schedule: linear warmup, then linear decay to 0 at the run's last step.

It is a piecewise-linear factor of ``learning_rate`` (``LinearSchedule``), kept in the checkpoint
with the scheduler (``LambdaLR`` saves a callable object's attributes), so that a resumed run can
tell when its length changed and re-plan instead of jumping. What extending a run does:

- an unfinished run resumed with a new length (more epochs, another ``max_steps``): from the step
  it resumes at, the factor goes linearly from its current value to 0 at the new last step: no
  jump, and the decay is stretched over the steps that are left;
- a finished run (its learning rate has reached 0) resumed with more epochs: the extra steps are
  a new cycle, warmup over ``warmup_ratio`` of them to ``learning_rate``, then linear decay to 0.

Hugging Face's ``get_linear_schedule_with_warmup`` gives the same curve for a run that is never
resumed; it closes over its step counts, so a resumed run could not re-plan it.
"""

from __future__ import annotations

import math

__all__ = ["LinearSchedule"]


class LinearSchedule:
    """The factor of the base learning rate at each optimizer step, through ``points``
    ``[(step, factor), ...]`` (linear between them, 0 after the last)."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        total = max(1, total_steps)
        warmup = min(max(0, warmup_steps), total - 1)
        self.points: list[tuple[int, float]] = [(0, 0.0), (warmup, 1.0), (total, 0.0)] if warmup else []
        if not warmup:
            self.points = [(0, 1.0), (total, 0.0)]

    @property
    def total_steps(self) -> int:
        return self.points[-1][0]

    def __call__(self, step: int) -> float:
        for (left, low), (right, high) in zip(self.points, self.points[1:], strict=False):
            if left <= step < right:
                return low + (high - low) * (step - left) / (right - left)
        return 0.0

    def extend(self, step: int, total_steps: int, warmup_ratio: float) -> str:
        """Re-plan from ``step`` for a run that now ends at ``total_steps``; returns what was done."""
        factor = self(step)
        kept = [point for point in self.points if point[0] < step]
        if total_steps <= step:
            self.points = [*kept, (step, 0.0)]
            return f"the run already has {step} steps of {total_steps}: nothing left to train"
        if factor > 0:
            self.points = [*kept, (step, factor), (total_steps, 0.0)]
            return f"decaying linearly from {factor:.3g} x learning_rate to 0 at step {total_steps}"
        warmup = min(math.ceil((total_steps - step) * warmup_ratio), total_steps - step - 1)
        self.points = [*kept, (step, 0.0), (step + warmup, 1.0), (total_steps, 0.0)]
        if warmup == 0:
            self.points = [*kept, (step, 1.0), (total_steps, 0.0)]
        return f"a new cycle for steps {step}..{total_steps}: warmup over {warmup} steps, then linear decay"
