"""The machinery of training, the same for every model: the :class:`Trainer` contract
(``trainer``), the epoch loop with Ctrl-C and NaN handling (``loop``), checkpoints
(``checkpoint``), the progress bar (``progress``) and the per-epoch log (``runlog``).

Nothing here is needed to read the math; see ``docs/package_map.md`` for which way the
imports point.
"""
