"""Fill-in-the-middle prompt formats, per model family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FimFormat:
    prefix: str
    suffix: str
    middle: str
    # tokens that mean the model has finished the middle part
    stop: tuple[str, ...]

    def render(self, prefix: str, suffix: str, order: str = "psm", middle_start: str = "") -> str:
        """Prefix-suffix-middle order (as the Qwen2.5-Coder models were trained), or suffix-prefix-middle,
        where typing at the cursor changes only the prompt's end.

        ``middle_start`` is text just before the cursor given as the start of the middle instead of
        the end of the prefix: the model continues it, and the prompt before it stays the same
        while the user types it (see builder.middle_anchor).
        """
        if order == "spm":
            return f"{self.suffix}{suffix}{self.prefix}{prefix}{self.middle}{middle_start}"
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}{middle_start}"

    def render_repo(self, repo: str, files: list[tuple[str, str]], path: str, prefix: str, suffix: str,
                    order: str = "psm", middle_start: str = "") -> str:
        """Qwen2.5-Coder's repository-level format: other files first, then the current one in FIM order."""
        head = f"<|repo_name|>{repo}\n" + "".join(f"<|file_sep|>{p}\n{text}\n" for p, text in files)
        return f"{head}<|file_sep|>{path}\n{self.render(prefix, suffix, order, middle_start)}"


QWEN = FimFormat(
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>", "<|fim_prefix|>"),
)


def format_for(model_name: str) -> FimFormat:
    """The FIM format for a model; Qwen's is the default (the only family shipped)."""
    return QWEN
