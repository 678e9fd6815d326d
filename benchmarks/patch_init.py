"""What a patch_init block costs: entering and leaving one, and building a small
layer inside one against building it plainly (torch's generator). Per call, not per
byte: the block's price is its overhead, which a small layer shows best."""

import fastinit

from .common import import_torch


class PatchInitBlock:
    """Seconds per call of: an empty ``with patch_init(g):`` block; ``Linear(4, 4)``
    built inside a block (the decorator form: one block per call); the same Linear
    built plainly."""

    params = (["enter and exit", "Linear(4, 4) in a block", "Linear(4, 4) plain"],)
    param_names = ["operation"]
    timeout = 120

    def setup(self, operation):
        torch = import_torch("1")
        import fastinit.torch as ft
        gen = fastinit.Generator(0)
        if operation == "enter and exit":
            def run():
                with ft.patch_init(gen):
                    pass
        elif operation == "Linear(4, 4) in a block":
            run = ft.patch_init(gen)(lambda: torch.nn.Linear(4, 4))
        else:
            def run():
                return torch.nn.Linear(4, 4)
        self.run = run

    def time_run(self, operation):
        self.run()
