"""The evaluate stage's section of the project file (`pass_at_k`): generation and sandboxed execution of code."""

from __future__ import annotations

from pydantic import Field, model_validator

from zipfit_pipeline.engine.core.settings import Settings


class PassAtKSettings(Settings):
    """Functional correctness of generated code on the target's held-out problems (HumanEval's fields by default)."""

    enabled: bool = Field(
        False, description="adds the pass_at_k asset: generation and sandboxed execution per fine-tune"
    )
    samples: int = Field(1, ge=1, description="completions per problem (n); one is greedy, more are sampled")
    ks: list[int] = Field([1], min_length=1, description="the k of each reported pass@k; each at most samples")
    temperature: float = Field(0.8, gt=0, description="sampling temperature when samples > 1")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(384, ge=1)
    batch_size: int = Field(16, ge=1, description="prompts per generate call")
    max_problems: int | None = Field(None, ge=1, description="the first this many held-out problems; none: all")
    timeout_seconds: float = Field(10.0, gt=0, description="wall time of one sample's tests")
    allow_unsandboxed: bool = Field(
        False,
        description="run generated code without namespaces where none can be made "
        "(only the limits, a temporary folder and the timeout then hold)",
    )
    prompt_field: str = "prompt"
    test_field: str = "test"
    entry_point_field: str = "entry_point"

    @model_validator(mode="after")
    def _ks_fit(self) -> PassAtKSettings:
        if any(k < 1 or k > self.samples for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct and between 1 and samples ({self.samples}): got {self.ks}")
        return self
