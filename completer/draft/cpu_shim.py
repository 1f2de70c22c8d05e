"""Run speculators 0.9's trainer on a CPU (tests and tiny targets; real training wants a GPU).

Its Trainer moves the model to ``get_local_rank()`` (device 0, a GPU), autocasts for the
accelerator's device type (``cuda`` when there is none) and times steps with
``torch.accelerator.synchronize()``, which fails without an accelerator. install() points those
three at the CPU, in the trainer module only; on a machine with a GPU it is never called.
"""

from __future__ import annotations


def install() -> None:
    import speculators.train.trainer as trainer

    if getattr(trainer, "_completer_cpu", False):
        return

    class CpuStepTimer(trainer._StepTimer):
        """Step timing off: it synchronises an accelerator."""

        def __init__(self, enabled: bool = False):
            super().__init__(False)

        def reset(self, enabled: bool) -> None:
            super().reset(False)

    original_init = trainer.Trainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.device_type = "cpu"

    trainer.get_local_rank = lambda: "cpu"
    trainer._StepTimer = CpuStepTimer
    trainer.Trainer.__init__ = init
    trainer._completer_cpu = True
